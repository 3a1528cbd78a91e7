using Moltar.Engine.Aws;
using Moltar.Engine.Ssh;

namespace Moltar.Engine.Ssm;

/// <summary>
/// Enter-MoltarInstance -Transport Ssm: the AWS CLI's `aws ssm start-session --target ID`, which hands the terminal to
/// the session-manager-plugin. Both must be installed; Moltar passes the account it resolved (credentials in the
/// child's environment, never on its command line), the region and the Systems Manager endpoint.
/// </summary>
public sealed class SessionManagerCommandLine
{
    /// <summary>The error id when the AWS CLI or the session-manager-plugin is missing.</summary>
    public const string NotFoundErrorId = "SessionManagerNotFound";

    private SessionManagerCommandLine(string fileName, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string?> environment)
    {
        FileName = fileName;
        Arguments = arguments;
        Environment = environment;
    }

    public string FileName { get; }
    public IReadOnlyList<string> Arguments { get; }
    /// <summary>Set in the child's environment (the resolved credentials and region; null = removed); never shown.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; }

    /// <summary>The command line as -WhatIf and the console show it (no secrets: they are in the environment).</summary>
    public string ToDisplayString() => string.Join(" ", new[] { FileName }.Concat(Arguments).Select(OpenSshCommandLine.QuotePowerShell));

    /// <summary>The aws executable and the plugin on PATH, each null when missing.</summary>
    public static (string? Aws, string? Plugin) Find(string? pathVariable, bool windows)
    {
        string? Search(string name)
        {
            foreach (var entry in (pathVariable ?? "").Split(windows ? ';' : ':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var candidate = Path.Combine(entry.Trim('"'), windows ? name + ".exe" : name);
                if (entry.Trim('"').Length > 0 && OpenSshClient.IsRunnable(candidate, windows))
                    return candidate;
            }
            return null;
        }
        return (Search("aws"), Search("session-manager-plugin"));
    }

    /// <summary>What to tell a user who lacks one of them, naming what is missing and how to install it.</summary>
    public static string NotFoundMessage(string? aws, string? plugin)
    {
        var missing = new List<string>();
        if (aws is null) missing.Add("the AWS CLI ('aws')");
        if (plugin is null) missing.Add("the Session Manager plugin ('session-manager-plugin')");
        return $"Enter-MoltarInstance -Transport Ssm starts a Session Manager session with 'aws ssm start-session', which needs the AWS CLI " +
               $"and its session-manager-plugin on PATH; {string.Join(" and ", missing)} {(missing.Count == 1 ? "was" : "were")} not found. " +
               "Install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html) and the Session Manager plugin " +
               "(https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html), then check with " +
               "'aws --version' and 'session-manager-plugin --version'. Or use -Transport Ssh.";
    }

    /// <summary>The command line for one instance, with the session's credentials, region and SSM endpoint.</summary>
    public static SessionManagerCommandLine Create(string aws, string instanceId, AwsSession session)
    {
        var arguments = new List<string> { "ssm", "start-session", "--target", instanceId, "--region", session.RegionName };
        if (session.SsmEndpointUrl is not null)
        {
            arguments.Add("--endpoint-url");
            arguments.Add(session.SsmEndpointUrl);
        }
        session.EnsureCredentials();
        var credentials = session.Credentials.GetCredentials();
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            // A profile named in the environment would win over the keys in the AWS CLI: the account is the one Moltar resolved.
            ["AWS_PROFILE"] = null,
            ["AWS_DEFAULT_PROFILE"] = null,
            ["AWS_SESSION_TOKEN"] = null,
            ["AWS_ACCESS_KEY_ID"] = credentials.AccessKey,
            ["AWS_SECRET_ACCESS_KEY"] = credentials.SecretKey,
            ["AWS_REGION"] = session.RegionName,
        };
        if (!string.IsNullOrEmpty(credentials.Token))
            environment["AWS_SESSION_TOKEN"] = credentials.Token;
        return new SessionManagerCommandLine(aws, arguments, environment);
    }
}
