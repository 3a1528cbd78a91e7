using System.Collections.Concurrent;

namespace Moltar.Engine.Ssh;

/// <summary>
/// How each host of one call is reached: the target's own user and port, the call's options, ssh config (the user's
/// then the system's file, read once) and the defaults merged into SshHostSettings (user, port, identity files,
/// jump chain or ProxyCommand, host key policy, algorithms), once per target and per jump hop. ssh config keywords
/// Moltar does not follow are reported once per call: a warning when they could change where or how ssh connects.
/// Thread-safe.
/// </summary>
internal sealed class SshSettingsResolver
{
    private readonly SshOptions _options;
    private readonly string _home;
    private readonly SshLog _log;
    private readonly SshConfigFiles _config;
    private readonly ConcurrentDictionary<string, SshHostSettings> _resolved = new(StringComparer.Ordinal);

    /// <summary>Reads ssh config (SshFailure InvalidConfiguration when a config file given does not exist).</summary>
    public SshSettingsResolver(SshOptions options, string home, SshLog log)
    {
        _options = options;
        _home = home;
        _log = log;
        _config = new SshConfigFiles(options, home, note => log.Write(SshLogLevel.Verbose, "ssh config: " + note));
    }

    /// <summary>The settings for a target (resolved on first use, then the same object).</summary>
    public SshHostSettings For(SshTarget target) =>
        _resolved.GetOrAdd($"{target.Address}\n{target.Port}\n{target.User}", _ => Report(SshHostSettings.Resolve(target.Address, target.Port, target.User, _options,
            _config.Lookup(target.Address, target.User ?? _options.User, target.Port ?? _options.Port, _options.JumpHost), _home)));

    /// <summary>The settings for one hop of a ProxyJump chain.</summary>
    public SshHostSettings ForJump(SshJumpHop hop) =>
        _resolved.GetOrAdd($"jump\n{hop}", _ => Report(SshHostSettings.Resolve(hop.Host, hop.Port, hop.User, _options,
            _config.Lookup(hop.Host, hop.User, hop.Port), _home, isJump: true)));

    private SshHostSettings Report(SshHostSettings settings)
    {
        foreach (var value in settings.Unsupported)
        {
            // Once per call: a keyword that could change where or how ssh connects (or what the host runs) is a
            // warning, since Moltar then behaves differently from ssh on the same config.
            if (SshConfig.HarmlessKeywords.Contains(value.Keyword.ToLowerInvariant()))
            {
                _log.Once("unsupported:" + value.Location, SshLogLevel.Verbose,
                    $"ssh config: '{value.Keyword}' ({value.Location}) is not supported by Moltar; ignored.");
            }
            else
            {
                _log.Once("unsupported:" + value.Location, SshLogLevel.Warning,
                    $"ssh config: '{value.Keyword} {value.Text}' ({value.Location}) is not supported by Moltar and could change where or how ssh connects; Moltar ignores it.");
            }
        }

        foreach (var note in settings.Notes)
        {
            _log.Once("note:" + note, SshLogLevel.Verbose, "ssh config: " + note);
        }

        return settings;
    }
}
