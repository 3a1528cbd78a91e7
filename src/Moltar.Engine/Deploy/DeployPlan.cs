namespace Moltar.Engine.Deploy;

public enum DeployStepKind
{
    /// <summary>dpkg-query before anything changes: the previous versions.</summary>
    Previous,
    /// <summary>apt-get update.</summary>
    Update,
    /// <summary>apt-cache policy: the candidate versions (only when no version is pinned).</summary>
    Policy,
    /// <summary>apt-get install.</summary>
    Install,
    /// <summary>apt-get autoremove (-Clean).</summary>
    Autoremove,
    /// <summary>apt-get clean (-Clean).</summary>
    Clean,
    /// <summary>dpkg-query after the install: what is installed now.</summary>
    Verify,
}

/// <summary>One remote command of a host's deploy.</summary>
public sealed record DeployStep(DeployStepKind Kind, string Command)
{
    public override string ToString() => Command;
}

/// <summary>
/// The exact commands a deploy runs on one host, in order. Values from the request are single-quoted for
/// the remote POSIX shell even though they were validated; everything else is fixed text.
/// </summary>
public static class DeployPlan
{
    /// <summary>dpkg-query's output format: one line per package, tab-separated.</summary>
    public const string QueryFormat = "${Package}\\t${Version}\\t${Status}\\n";

    /// <summary>How long apt-get waits for the dpkg lock (another apt, unattended-upgrades) before failing.</summary>
    public const int LockTimeoutSeconds = 60;

    public static IReadOnlyList<DeployStep> For(DeployRequest request, string user)
    {
        ArgumentNullException.ThrowIfNull(request);
        // "NAME=value command" is sh syntax (csh has none): sudo reads it itself; as root, env(1) sets it, whatever the login shell.
        string root = IsRoot(user) ? "env " : "sudo -n ";
        string apt = root + "DEBIAN_FRONTEND=noninteractive apt-get";
        string packages = string.Join(" ", request.Packages.Select(Quote));
        string query = $"dpkg-query -W -f={Quote(QueryFormat)} {packages}";

        var steps = new List<DeployStep>
        {
            new(DeployStepKind.Previous, query),
            new(DeployStepKind.Update, $"{apt} update -q"),
        };
        if (request.Version is null)
            steps.Add(new(DeployStepKind.Policy, $"env LC_ALL=C apt-cache policy {packages}"));
        string downgrades = request.Version is null ? "" : " --allow-downgrades";
        string install = string.Join(" ", request.InstallArguments.Select(Quote));
        steps.Add(new(DeployStepKind.Install,
            $"{apt} install -y -q -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout={LockTimeoutSeconds}{downgrades} {install}"));
        if (request.Clean)
        {
            steps.Add(new(DeployStepKind.Autoremove, $"{apt} autoremove -y -q -o DPkg::Lock::Timeout={LockTimeoutSeconds}"));
            steps.Add(new(DeployStepKind.Clean, $"{apt} clean"));
        }
        steps.Add(new(DeployStepKind.Verify, query));
        return steps;
    }

    public static bool IsRoot(string? user) => string.Equals(user, "root", StringComparison.Ordinal);

    /// <summary>Single-quotes a word for a POSIX shell ('it'\''s'); the result is always one literal word.</summary>
    public static string Quote(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }
}
