using System.Globalization;
using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>Which OpenSSH the command line is for: Windows' ssh runs ProxyCommand without a POSIX shell.</summary>
public enum OpenSshPlatform
{
    Unix,
    Windows,
}

/// <summary>
/// The system ssh command line that reaches a target the way the SSH engine does: the same user (explicit,
/// else ssh config, else "ubuntu"), port, key files, jump hosts, known_hosts files, host-key policy, connect
/// timeout and ssh config file. Explicit options go on the command line (-p, -i, -o, -F, -J) so they win over
/// ssh config as they do in the engine; everything else ssh reads from its config itself.
/// <para>
/// Jump hosts: ssh's -J hands the jump ssh only -F, the user and the port — not -i or -o. When key files,
/// known_hosts files, a host-key policy or a connect timeout were given, each jump host is reached through a
/// ProxyCommand that carries them (ssh -W, as -J does internally), so the bastion's host key is checked
/// against the same known_hosts as in the engine. On Windows (no POSIX shell for ProxyCommand) -J is used and
/// a note says what the jump hosts do not get.
/// </para>
/// Nothing secret goes into the command line: a key's passphrase is asked for by ssh itself.
/// </summary>
public sealed class OpenSshCommandLine
{
    private OpenSshCommandLine(string fileName, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment,
        SshHostSettings settings, IReadOnlyList<string> jumpHosts, bool proxyCommand, IReadOnlyList<string> notes)
    {
        FileName = fileName;
        Arguments = arguments;
        Environment = environment;
        Settings = settings;
        JumpHosts = jumpHosts;
        JumpsUseProxyCommand = proxyCommand;
        Notes = notes;
    }

    /// <summary>The ssh executable.</summary>
    public string FileName { get; }

    /// <summary>The arguments, one per element (for ProcessStartInfo.ArgumentList: no further quoting).</summary>
    public IReadOnlyList<string> Arguments { get; }

    /// <summary>Variables to set for the ssh process: SHELL=/bin/sh when a ProxyCommand reaches the jump hosts.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; }

    /// <summary>How the engine would reach the target (user, host name, jumps...), after ssh config.</summary>
    public SshHostSettings Settings { get; }

    /// <summary>The jump hosts as user@host[:port], first hop first.</summary>
    public IReadOnlyList<string> JumpHosts { get; }

    /// <summary>True when the jump hosts are reached through a ProxyCommand rather than -J.</summary>
    public bool JumpsUseProxyCommand { get; }

    /// <summary>Things the user should know (for the verbose or warning stream).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>The command line as PowerShell would take it (arguments quoted where needed).</summary>
    public string ToDisplayString()
    {
        var sb = new StringBuilder();
        var exe = QuotePowerShell(FileName);
        sb.Append(exe == FileName ? exe : "& " + exe);
        foreach (var argument in Arguments)
        {
            sb.Append(' ').Append(QuotePowerShell(argument));
        }

        return sb.ToString();
    }

    public override string ToString() => ToDisplayString();

    /// <summary>
    /// Builds the command line for one target. Reads ssh config the way SshConnector does (options.ConfigPath,
    /// options.SystemConfigPath); a -SshConfigPath that does not exist or a bad jump host is an SshFailure
    /// (InvalidConfiguration). remoteCommand (optional) is run instead of a login shell; ssh joins its words
    /// with spaces, as it always does.
    /// </summary>
    public static OpenSshCommandLine Create(string sshPath, SshTarget target, SshOptions options,
        IReadOnlyList<string>? remoteCommand = null, OpenSshPlatform? platform = null, Action<string>? log = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(sshPath);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        var os = platform ?? (OperatingSystem.IsWindows() ? OpenSshPlatform.Windows : OpenSshPlatform.Unix);
        var home = options.HomeDirectory ?? SshPaths.DefaultHome();
        var config = new SshConfigFiles(options with { Platform = options.Platform ?? os }, home, log);

        var settings = SshHostSettings.Resolve(target.Address, target.Port, target.User, options with { Platform = options.Platform ?? os },
            config.Lookup(target.Address, target.User ?? options.User, target.Port ?? options.Port, options.JumpHost), home);
        // The user goes on the command line as user@host: a leading '-' would make ssh read it as an option
        // (-oProxyCommand=...), whichever source it came from (parameter, project file, ssh config).
        if (!SshNames.IsValidUser(settings.User))
        {
            throw new SshFailure(SshErrorIds.InvalidConfiguration, $"User '{settings.User}' for {target.Address} is not {SshNames.UserRule}.");
        }
        var notes = new List<string>();
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);

        // What every ssh in the chain gets: the target's ssh and, through ProxyCommand, each jump host's.
        var shared = SharedOptions(options, home);
        var arguments = new List<string>(shared);
        if ((target.Port ?? options.Port) is int port)
        {
            arguments.Add("-p");
            arguments.Add(port.ToString(CultureInfo.InvariantCulture));
        }

        var hops = settings.Jumps
            .Select(hop => SshHostSettings.Resolve(hop.Host, hop.Port, hop.User, options, config.Lookup(hop.Host, hop.User, hop.Port), home, isJump: true) is var hs
                ? (Hop: hop, User: hs.User, Strict: hs.StrictHostKeyChecking) : default)
            .ToList();
        foreach (var (hop, user, _) in hops.Where(h => !SshNames.IsValidUser(h.User)))
        {
            throw new SshFailure(SshErrorIds.InvalidConfiguration, $"User '{user}' for the jump host {hop.Host} is not {SshNames.UserRule}.");
        }

        var jumpHosts = hops.Select(h => JumpSpec(h.Hop, h.User)).ToList();
        // A project file's stricter policy is combined with each host's own (ssh config) policy, so ssh gets the result per host.
        var combined = options.StrictHostKeyChecking is null && options.StricterHostKeyChecking is not null;
        if (combined)
        {
            arguments.Add("-o");
            arguments.Add("StrictHostKeyChecking=" + PolicyName(settings.StrictHostKeyChecking));
        }

        var forwarded = options.KeyFiles.Count > 0 || options.KnownHostsPaths is not null
            || options.StrictHostKeyChecking is not null || options.ConnectTimeout is not null || combined;
        var proxyCommand = false;
        if (hops.Count == 0)
        {
            if (options.JumpHost is not null)
            {
                // -JumpHost none: no jump host, whatever ssh config's ProxyJump says.
                arguments.Add("-J");
                arguments.Add("none");
            }
        }
        else if (forwarded && os == OpenSshPlatform.Unix)
        {
            proxyCommand = true;
            arguments.Add("-o");
            arguments.Add("ProxyCommand=" + ProxyCommand(sshPath, shared, hops, hops.Count - 1, combined));
            // ssh runs ProxyCommand with $SHELL -c; the command is quoted for a POSIX shell, not for pwsh or fish.
            environment["SHELL"] = "/bin/sh";
        }
        else
        {
            arguments.Add("-J");
            arguments.Add(string.Join(",", jumpHosts));
            if (forwarded)
            {
                notes.Add("ssh's -J passes only the user, port and -F to the jump hosts: their keys, known_hosts and host-key policy come from ssh config.");
            }
        }

        if (os == OpenSshPlatform.Unix && (settings.ProxyCommand is not null || config.HasMatchExec))
        {
            // ssh runs ssh config's ProxyCommand and Match exec with $SHELL -c; the engine runs them with /bin/sh,
            // so ssh gets the same shell (a user's $SHELL may be pwsh or fish) and takes the same path.
            environment["SHELL"] = "/bin/sh";
        }

        arguments.Add(settings.User + "@" + target.Address);
        if (remoteCommand is { Count: > 0 })
        {
            // ssh reads options after the destination too; "--" keeps a command such as "-v" from being one.
            if (remoteCommand[0].StartsWith('-'))
            {
                arguments.Add("--");
            }

            arguments.AddRange(remoteCommand);
        }

        return new OpenSshCommandLine(sshPath, arguments, environment, settings, jumpHosts, proxyCommand, notes);
    }

    /// <summary>-F, key files, known_hosts, host-key policy, connect timeout: the explicit options, as ssh takes them.</summary>
    private static List<string> SharedOptions(SshOptions options, string home)
    {
        var result = new List<string>();
        if (options.ConfigPath is not null)
        {
            result.Add("-F");
            result.Add(options.ConfigPath.Length == 0 ? "none" : SshPaths.ExpandTilde(options.ConfigPath, home));
        }

        foreach (var key in options.KeyFiles.Select(k => SshPaths.ExpandTilde(k, home)))
        {
            // ssh expands %-tokens in identity files, and -i checks the file before expanding: a '%' needs -o.
            if (key.Contains('%'))
            {
                result.Add("-o");
                result.Add("IdentityFile=" + QuoteConfigValue(EscapePercent(key)));
            }
            else
            {
                result.Add("-i");
                result.Add(key);
            }
        }

        if (options.KnownHostsPaths is { } knownHosts)
        {
            var files = knownHosts.Select(p => QuoteConfigValue(EscapePercent(SshPaths.ExpandTilde(p, home)))).ToList();
            result.Add("-o");
            result.Add("UserKnownHostsFile=" + (files.Count == 0 ? "none" : string.Join(" ", files)));
        }

        if (options.StrictHostKeyChecking is { } policy)
        {
            result.Add("-o");
            result.Add("StrictHostKeyChecking=" + PolicyName(policy));
        }

        if (options.ConnectTimeout is { } timeout)
        {
            result.Add("-o");
            result.Add("ConnectTimeout=" + Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds)).ToString(CultureInfo.InvariantCulture));
        }

        return result;
    }

    /// <summary>
    /// The ProxyCommand that opens a stdio channel to %h:%p through hops[0..last]: ssh -W through hops[last],
    /// itself reached through the hops before it. Each level is quoted for /bin/sh and %-escaped once more,
    /// because every ssh in the chain %-expands its own ProxyCommand once.
    /// </summary>
    private static string ProxyCommand(string sshPath, IReadOnlyList<string> shared, IReadOnlyList<(SshJumpHop Hop, string User, StrictHostKeyChecking Strict)> hops, int last, bool combined)
    {
        var (hop, user, strict) = hops[last];
        var words = new List<string> { sshPath };
        words.AddRange(shared);
        if (combined)
        {
            words.Add("-o");
            words.Add("StrictHostKeyChecking=" + PolicyName(strict));
        }

        words.Add("-l");
        words.Add(user);
        if (hop.Port is int port)
        {
            words.Add("-p");
            words.Add(port.ToString(CultureInfo.InvariantCulture));
        }

        if (last > 0)
        {
            words.Add("-o");
            words.Add("ProxyCommand=" + ProxyCommand(sshPath, shared, hops, last - 1, combined));
        }

        var parts = words.Select(w => EscapePercent(QuotePosix(w))).ToList();
        parts.Add("-W");
        parts.Add("'[%h]:%p'");
        parts.Add(EscapePercent(QuotePosix(hop.Host)));
        return string.Join(" ", parts);
    }

    private static string JumpSpec(SshJumpHop hop, string user)
    {
        var host = hop.Host.Contains(':') ? "[" + hop.Host + "]" : hop.Host;
        return user + "@" + host + (hop.Port is int port ? ":" + port.ToString(CultureInfo.InvariantCulture) : "");
    }

    public static string PolicyName(StrictHostKeyChecking policy) => policy switch
    {
        StrictHostKeyChecking.Yes => "yes",
        StrictHostKeyChecking.AcceptNew => "accept-new",
        StrictHostKeyChecking.No => "no",
        _ => throw new ArgumentOutOfRangeException(nameof(policy)),
    };

    /// <summary>ssh expands %-tokens in paths and ProxyCommand: a literal % is written %%.</summary>
    public static string EscapePercent(string value) => value.Replace("%", "%%", StringComparison.Ordinal);

    /// <summary>A value in ssh_config syntax (as -o takes it): double-quoted, with \ and " escaped, when it has spaces, quotes, \ or #.</summary>
    public static string QuoteConfigValue(string value)
    {
        if (value.Length > 0 && !value.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'' or '\\' or '#'))
        {
            return value;
        }

        return "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
    }

    /// <summary>One word for /bin/sh: as is when it is plain, else in single quotes (a ' written '\'').</summary>
    public static string QuotePosix(string value)
    {
        if (value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || "@%+=:,./_-".Contains(c)))
        {
            return value;
        }

        return "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    /// <summary>
    /// One argument as PowerShell reads it in a command: as is when it is plain (letters, digits and _-./:=+%\@,
    /// not starting with @, not -- or --%, and no "-name.more" or "-name:more" that PowerShell would split), else in single
    /// quotes with every kind of single quote PowerShell knows doubled.
    /// </summary>
    public static string QuotePowerShell(string value)
    {
        static bool Plain(char c) => char.IsLetterOrDigit(c) || "_-./:=+%\\@".Contains(c);
        var plain = value.Length > 0 && value.All(Plain) && value[0] != '@' && value is not ("--" or "--%")
            && !(value[0] == '-' && value.AsSpan().IndexOfAny('.', ':') > 0);
        if (plain)
        {
            return value;
        }

        var sb = new StringBuilder(value.Length + 2).Append('\'');
        foreach (var c in value)
        {
            sb.Append(c);
            if (c is '\'' or '\u2018' or '\u2019' or '\u201A' or '\u201B')
            {
                sb.Append(c);
            }
        }

        return sb.Append('\'').ToString();
    }
}
