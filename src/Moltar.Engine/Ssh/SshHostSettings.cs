using System.Globalization;

namespace Moltar.Engine.Ssh;

/// <summary>One hop of a ProxyJump: [user@]host[:port].</summary>
public sealed record SshJumpHop(string Host, int? Port = null, string? User = null)
{
    /// <summary>Parses a ProxyJump value: "none" (or empty) = no jump; hops separated by commas.</summary>
    public static IReadOnlyList<SshJumpHop> ParseList(string? spec)
    {
        if (string.IsNullOrWhiteSpace(spec) || spec.Trim().Equals("none", StringComparison.OrdinalIgnoreCase))
        {
            return Array.Empty<SshJumpHop>();
        }

        return spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Parse).ToList();
    }

    public static SshJumpHop Parse(string hop)
    {
        var text = hop.Trim();
        if (text.StartsWith("ssh://", StringComparison.OrdinalIgnoreCase))
        {
            text = text.Substring(6).TrimEnd('/');
        }

        string? user = null;
        var at = text.LastIndexOf('@');
        if (at >= 0)
        {
            user = text.Substring(0, at);
            text = text.Substring(at + 1);
        }

        int? port = null;
        string host;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0)
            {
                throw new FormatException($"Jump host '{hop}': missing ']'.");
            }

            host = text.Substring(1, close - 1);
            var rest = text.Substring(close + 1);
            if (rest.StartsWith(':'))
            {
                port = ParsePort(rest.Substring(1), hop);
            }
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon >= 0 && text.IndexOf(':') == colon)
            {
                host = text.Substring(0, colon);
                port = ParsePort(text.Substring(colon + 1), hop);
            }
            else
            {
                host = text;
            }
        }

        if (host.Length == 0)
        {
            throw new FormatException($"Jump host '{hop}' has no host name.");
        }

        // The hop reaches ssh's -J or a ProxyCommand that /bin/sh runs (Enter-MoltarInstance): no shell
        // metacharacters, and nothing ssh would read as an option.
        if (!SshNames.IsValidHost(host))
        {
            throw new FormatException($"Jump host '{hop}': '{host}' is not {SshNames.HostRule}.");
        }

        if (!string.IsNullOrEmpty(user) && !SshNames.IsValidUser(user))
        {
            throw new FormatException($"Jump host '{hop}': '{user}' is not {SshNames.UserRule}.");
        }

        return new SshJumpHop(host, port, string.IsNullOrEmpty(user) ? null : user);
    }

    private static int ParsePort(string text, string hop) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is > 0 and < 65536
            ? p
            : throw new FormatException($"Jump host '{hop}' has a bad port '{text}'.");

    public override string ToString() => $"{(User is null ? "" : User + "@")}{Host}{(Port is null ? "" : ":" + Port)}";
}

/// <summary>
/// Everything that decides how one host is reached, after target overrides, options, ssh config and defaults
/// are merged. Enter-MoltarInstance can hand the same values to the system ssh.
/// </summary>
public sealed class SshHostSettings
{
    /// <summary>The name matched against ssh config Host patterns (the target's address).</summary>
    public string Alias { get; init; } = "";
    /// <summary>The host connected to (ssh config HostName, else the alias); known_hosts is checked for this name.</summary>
    public string HostName { get; init; } = "";
    public int Port { get; init; } = 22;
    public string User { get; init; } = SshOptions.DefaultUser;
    /// <summary>Key files in the order tried (options' KeyFiles, then IdentityFile; else the default files).</summary>
    public IReadOnlyList<string> IdentityFiles { get; init; } = Array.Empty<string>();
    /// <summary>True when IdentityFiles are the defaults (~/.ssh/id_ed25519, id_ecdsa, id_rsa): missing ones are skipped quietly.</summary>
    public bool IdentityFilesAreDefaults { get; init; }
    public bool IdentitiesOnly { get; init; }
    /// <summary>The agent socket or pipe; null = no agent.</summary>
    public string? IdentityAgent { get; init; }
    public IReadOnlyList<SshJumpHop> Jumps { get; init; } = Array.Empty<SshJumpHop>();
    /// <summary>ssh config's ProxyCommand with its tokens expanded (null: none, or a jump host / -JumpHost applies).</summary>
    public string? ProxyCommand { get; init; }
    /// <summary>ssh config's CertificateFile values (expanded), offered with the matching keys.</summary>
    public IReadOnlyList<string> CertificateFiles { get; init; } = Array.Empty<string>();
    /// <summary>Which OpenSSH's rules apply (paths, how ProxyCommand runs).</summary>
    public OpenSshPlatform Platform { get; init; } = SshPaths.CurrentPlatform;
    /// <summary>User known_hosts files; AcceptNew writes to the first.</summary>
    public IReadOnlyList<string> UserKnownHostsFiles { get; init; } = Array.Empty<string>();
    public IReadOnlyList<string> GlobalKnownHostsFiles { get; init; } = Array.Empty<string>();
    public StrictHostKeyChecking StrictHostKeyChecking { get; init; } = StrictHostKeyChecking.Yes;
    public bool HashKnownHosts { get; init; }
    public TimeSpan ConnectTimeout { get; init; } = SshOptions.DefaultConnectTimeout;
    public TimeSpan? ServerAliveInterval { get; init; }
    public string? KexAlgorithms { get; init; }
    public string? Ciphers { get; init; }
    public string? HostKeyAlgorithms { get; init; }
    /// <summary>ssh config keywords that applied to this host and that Moltar ignores.</summary>
    public IReadOnlyList<SshConfigValue> Unsupported { get; init; } = Array.Empty<SshConfigValue>();
    /// <summary>Problems with values (bad numbers, unknown policies), for the verbose stream.</summary>
    public IReadOnlyList<string> Notes { get; init; } = Array.Empty<string>();

    public IEnumerable<string> AllKnownHostsFiles => UserKnownHostsFiles.Concat(GlobalKnownHostsFiles);

    public override string ToString() => $"{User}@{HostName}:{Port}";

    /// <summary>
    /// Merges one host's settings. Precedence: overrides (target or jump spec) → options → ssh config → defaults.
    /// For a jump host (isJump) the options' Port and JumpHost do not apply and the options' User is only a fallback.
    /// </summary>
    public static SshHostSettings Resolve(string alias, int? portOverride, string? userOverride, SshOptions options,
        SshConfigMatch config, string home, bool isJump = false)
    {
        var notes = new List<string>();
        var platform = SshPaths.Platform(options.Platform ?? SshPaths.CurrentPlatform);

        var hostName = config.Get("HostName") is { } hn ? SshPaths.ExpandTokens(hn.Value, new SshPaths.TokenValues(home, alias)) : alias;

        var port = portOverride ?? (isJump ? null : options.Port) ?? IntValue(config.Get("Port"), notes) ?? 22;

        var user = userOverride
            ?? (isJump ? null : options.User)
            ?? config.Get("User")?.Value
            ?? (isJump ? options.User : null)
            ?? SshOptions.DefaultUser;

        var tokens = new SshPaths.TokenValues(home, hostName, user, port, alias);

        var identityFiles = new List<string>();
        identityFiles.AddRange(options.KeyFiles.Select(k => SshPaths.ExpandTilde(k, home)));
        foreach (var v in config.GetAll("IdentityFile"))
        {
            if (!v.Value.Equals("none", StringComparison.OrdinalIgnoreCase))
            {
                identityFiles.Add(SshPaths.ExpandPath(v.Value, tokens));
            }
        }

        var defaults = identityFiles.Count == 0;
        if (defaults)
        {
            identityFiles.AddRange((platform with { Home = home }).DefaultIdentityFiles);
        }

        string? agent = null;
        if (options.UseAgent)
        {
            if (options.AgentPath is not null)
            {
                agent = options.AgentPath;
            }
            else if (config.Get("IdentityAgent") is { } ia)
            {
                agent = ia.Value.Equals("none", StringComparison.OrdinalIgnoreCase) ? null
                    : ia.Value == "SSH_AUTH_SOCK" ? SshAgentClient.DefaultPath()
                    : ia.Value.StartsWith('$') && !ia.Value.StartsWith("${", StringComparison.Ordinal) ? Environment.GetEnvironmentVariable(ia.Value.Substring(1))
                    : SshPaths.ExpandPath(ia.Value, tokens);
            }
            else
            {
                agent = SshAgentClient.DefaultPath();
            }

            if (string.IsNullOrEmpty(agent))
            {
                agent = null;
            }
        }

        IReadOnlyList<SshJumpHop> jumps;
        try
        {
            jumps = !isJump && options.JumpHost is not null
                ? SshJumpHop.ParseList(options.JumpHost)
                : SshJumpHop.ParseList(config.Get("ProxyJump")?.Value);
        }
        catch (FormatException e)
        {
            throw new SshFailure(SshErrorIds.InvalidConfiguration, e.Message);
        }

        // -JumpHost reaches the config lookup as ssh's -J does: a jump host replaces ProxyCommand, "none" does not.
        string? proxyCommand = null;
        if ((isJump || options.JumpHost is null || jumps.Count == 0) && config.Get("ProxyCommand") is { } pc && pc.Text != "none")
        {
            // ssh expands %h %p %r %n (and the other client tokens) and hands the rest to the shell untouched.
            proxyCommand = SshPaths.ExpandTokens(pc.Text, tokens);
        }

        var certificateFiles = config.GetAll("CertificateFile")
            .Where(v => !v.Value.Equals("none", StringComparison.OrdinalIgnoreCase))
            .Select(v => SshPaths.ExpandPath(v.Value, tokens)).Distinct(StringComparer.Ordinal).ToList();

        IReadOnlyList<string> userKnown = options.KnownHostsPaths?.Select(p => SshPaths.ExpandTilde(p, home)).ToList()
            ?? PathList(config.Get("UserKnownHostsFile"), tokens)
            ?? (platform with { Home = home }).UserKnownHosts;
        IReadOnlyList<string> globalKnown = options.GlobalKnownHostsPaths?.Select(p => SshPaths.ExpandTilde(p, home)).ToList()
            ?? GlobalPathList(config.Get("GlobalKnownHostsFile"))
            ?? platform.GlobalKnownHosts;

        var strict = options.StrictHostKeyChecking ?? ParseStrict(config.Get("StrictHostKeyChecking"), notes)
            ?? options.DefaultStrictHostKeyChecking ?? StrictHostKeyChecking.Yes;
        // Where the project file's policy meets the user's own (parameter, environment, ssh config, default):
        // it may make checking stricter, never looser.
        if (options.StricterHostKeyChecking is { } project && Strictness(project) > Strictness(strict))
        {
            strict = project;
        }

        var connectTimeout = options.ConnectTimeout
            ?? (IntValue(config.Get("ConnectTimeout"), notes) is int ct && ct > 0 ? TimeSpan.FromSeconds(ct) : (TimeSpan?)null)
            ?? SshOptions.DefaultConnectTimeout;

        TimeSpan? alive = options.ServerAliveInterval;
        if (alive is null && IntValue(config.Get("ServerAliveInterval"), notes) is int sa && sa > 0)
        {
            alive = TimeSpan.FromSeconds(sa);
        }

        return new SshHostSettings
        {
            Alias = alias,
            HostName = hostName,
            Port = port,
            User = user,
            IdentityFiles = identityFiles.Distinct(StringComparer.Ordinal).ToList(),
            IdentityFilesAreDefaults = defaults,
            IdentitiesOnly = YesNo(config.Get("IdentitiesOnly"), notes) ?? false,
            IdentityAgent = agent,
            Jumps = jumps,
            ProxyCommand = proxyCommand,
            CertificateFiles = certificateFiles,
            Platform = platform.Platform,
            UserKnownHostsFiles = userKnown,
            GlobalKnownHostsFiles = globalKnown,
            StrictHostKeyChecking = strict,
            HashKnownHosts = YesNo(config.Get("HashKnownHosts"), notes) ?? false,
            ConnectTimeout = connectTimeout,
            ServerAliveInterval = alive,
            KexAlgorithms = options.KexAlgorithms ?? config.Get("KexAlgorithms")?.Value,
            Ciphers = options.Ciphers ?? config.Get("Ciphers")?.Value,
            HostKeyAlgorithms = config.Get("HostKeyAlgorithms")?.Value,
            Unsupported = config.Unsupported,
            Notes = notes,
        };
    }

    /// <summary>GlobalKnownHostsFile: ssh takes the paths as written (no tokens, no ~).</summary>
    private static IReadOnlyList<string>? GlobalPathList(SshConfigValue? value) =>
        value is null ? null
        : value.Args.Count == 1 && value.Value.Equals("none", StringComparison.OrdinalIgnoreCase) ? Array.Empty<string>()
        : value.Args.ToList();

    private static IReadOnlyList<string>? PathList(SshConfigValue? value, SshPaths.TokenValues tokens)
    {
        if (value is null)
        {
            return null;
        }

        if (value.Args.Count == 1 && value.Value.Equals("none", StringComparison.OrdinalIgnoreCase))
        {
            return Array.Empty<string>();
        }

        return value.Args.Select(a => SshPaths.ExpandPath(a, tokens)).ToList();
    }

    private static int? IntValue(SshConfigValue? value, List<string> notes)
    {
        if (value is null)
        {
            return null;
        }

        if (int.TryParse(value.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return n;
        }

        notes.Add($"{value.Location}: {value.Keyword} '{value.Value}' is not a number; ignored.");
        return null;
    }

    private static bool? YesNo(SshConfigValue? value, List<string> notes)
    {
        if (value is null)
        {
            return null;
        }

        switch (value.Value.ToLowerInvariant())
        {
            case "yes":
            case "true":
                return true;
            case "no":
            case "false":
                return false;
            default:
                notes.Add($"{value.Location}: {value.Keyword} '{value.Value}' is not yes or no; ignored.");
                return null;
        }
    }

    /// <summary>Higher is stricter: No, then AcceptNew, then Yes.</summary>
    public static int Strictness(StrictHostKeyChecking policy) => policy switch
    {
        StrictHostKeyChecking.No => 0,
        StrictHostKeyChecking.AcceptNew => 1,
        _ => 2,
    };

    /// <summary>yes/ask → Yes (nobody can answer a prompt), accept-new → AcceptNew, no/off → No.</summary>
    public static StrictHostKeyChecking? ParseStrict(string value) => value.ToLowerInvariant() switch
    {
        "yes" or "true" or "ask" => StrictHostKeyChecking.Yes,
        "accept-new" or "acceptnew" => StrictHostKeyChecking.AcceptNew,
        "no" or "off" or "false" => StrictHostKeyChecking.No,
        _ => null,
    };

    private static StrictHostKeyChecking? ParseStrict(SshConfigValue? value, List<string> notes)
    {
        if (value is null)
        {
            return null;
        }

        var parsed = ParseStrict(value.Value);
        if (parsed is null)
        {
            notes.Add($"{value.Location}: StrictHostKeyChecking '{value.Value}' is not yes, accept-new, no or ask; using yes.");
            return StrictHostKeyChecking.Yes;
        }

        return parsed;
    }
}
