using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// Settings resolution on its own: a target's effective settings from the call's options and an ssh config file (user,
/// port, identities, jump chain or ProxyCommand, host key policy, algorithms), once per target, with unsupported
/// keywords reported once per call. SshConfigParityTests holds the merged values against `ssh -G`.
/// </summary>
public sealed class SshSettingsResolverTests : IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("moltar-21-settings-").FullName;
    private readonly List<SshLogEntry> _log = new();

    public void Dispose() => Directory.Delete(_home, recursive: true);

    private SshSettingsResolver Resolver(string config, SshOptions? options = null)
    {
        var path = Path.Combine(_home, $"config-{Guid.NewGuid():N}");
        File.WriteAllText(path, config);
        var effective = (options ?? new SshOptions()) with { ConfigPath = path, SystemConfigPath = "none", HomeDirectory = _home, UseAgent = false };
        return new SshSettingsResolver(effective, _home, new SshLog(entry => { lock (_log) _log.Add(entry); }));
    }

    private const string Config = """
        Host web1
          HostName 10.9.8.7
          User cfguser
          Port 2201
          IdentityFile ~/keys/web
          IdentitiesOnly yes
          StrictHostKeyChecking no
          KexAlgorithms curve25519-sha256
          ConnectTimeout 9
          ProxyJump admin@bastion1:2200,bastion2
        Host db1
          ProxyCommand nc %h %p
          User dbuser
        """;

    [Fact]
    public void A_target_gets_ssh_config_s_user_port_identities_jump_chain_policy_and_algorithms()
    {
        var web = Resolver(Config).For(new SshTarget("web1"));

        Assert.Equal(("web1", "10.9.8.7", "cfguser", 2201), (web.Alias, web.HostName, web.User, web.Port));
        Assert.Equal(new[] { Path.Combine(_home, "keys/web") }, web.IdentityFiles);
        Assert.False(web.IdentityFilesAreDefaults);
        Assert.True(web.IdentitiesOnly);
        Assert.Null(web.IdentityAgent);
        Assert.Equal(StrictHostKeyChecking.No, web.StrictHostKeyChecking);
        Assert.Equal("curve25519-sha256", web.KexAlgorithms);
        Assert.Equal(TimeSpan.FromSeconds(9), web.ConnectTimeout);
        Assert.Equal(new[] { new SshJumpHop("bastion1", 2200, "admin"), new SshJumpHop("bastion2") }, web.Jumps);
        Assert.Null(web.ProxyCommand);

        var db = Resolver(Config).For(new SshTarget("db1"));
        Assert.Equal("nc db1 22", db.ProxyCommand);
        Assert.Empty(db.Jumps);
        Assert.True(db.IdentityFilesAreDefaults);
    }

    [Fact]
    public void The_target_beats_the_options_which_beat_ssh_config()
    {
        var options = new SshOptions { User = "optuser", Port = 2300, KeyFiles = new[] { "~/keys/explicit" }, StrictHostKeyChecking = StrictHostKeyChecking.Yes, JumpHost = "none" };
        var resolver = Resolver(Config, options);

        var fromOptions = resolver.For(new SshTarget("web1"));
        Assert.Equal(("optuser", 2300, StrictHostKeyChecking.Yes), (fromOptions.User, fromOptions.Port, fromOptions.StrictHostKeyChecking));
        Assert.Equal(new[] { Path.Combine(_home, "keys/explicit"), Path.Combine(_home, "keys/web") }, fromOptions.IdentityFiles);
        Assert.Empty(fromOptions.Jumps);

        var fromTarget = resolver.For(new SshTarget("web1") { User = "tuser", Port = 2400 });
        Assert.Equal(("tuser", 2400), (fromTarget.User, fromTarget.Port));
    }

    [Fact]
    public void A_jump_hop_is_resolved_as_itself_not_with_the_target_s_user_and_port()
    {
        var resolver = Resolver(Config + "\nHost bastion1\n  HostName 10.0.0.1\n", new SshOptions { User = "optuser", Port = 2300 });
        var hop = resolver.ForJump(new SshJumpHop("bastion1", 2200, "admin"));
        Assert.Equal(("10.0.0.1", "admin", 2200), (hop.HostName, hop.User, hop.Port));

        var bare = resolver.ForJump(new SshJumpHop("bastion2"));
        Assert.Equal(("bastion2", "optuser", 22), (bare.HostName, bare.User, bare.Port));
    }

    [Fact]
    public void Each_target_is_resolved_once_per_call()
    {
        var resolver = Resolver(Config);
        var first = resolver.For(new SshTarget("web1", "i-1", "web1"));
        Assert.Same(first, resolver.For(new SshTarget("web1", "i-1", "web1")));
        Assert.NotSame(first, resolver.For(new SshTarget("web1") { User = "other" }));
    }

    [Fact]
    public void An_unsupported_keyword_that_could_change_the_route_is_one_warning_per_call_a_harmless_one_verbose()
    {
        var resolver = Resolver("""
            Host *
              RemoteCommand uptime
              LogLevel DEBUG
            """);
        resolver.For(new SshTarget("web1"));
        resolver.For(new SshTarget("web2"));

        var warning = Assert.Single(_log, e => e.Level == SshLogLevel.Warning);
        Assert.Contains("'RemoteCommand uptime'", warning.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("could change where or how ssh connects", warning.Message, StringComparison.Ordinal);
        var harmless = Assert.Single(_log, e => e.Message.Contains("LogLevel", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(SshLogLevel.Verbose, harmless.Level);
    }

    [Fact]
    public void A_config_file_given_that_does_not_exist_is_InvalidConfiguration_before_anything_resolves()
    {
        var options = new SshOptions { ConfigPath = Path.Combine(_home, "missing"), SystemConfigPath = "none", HomeDirectory = _home };
        var failure = Assert.Throws<SshFailure>(() => new SshSettingsResolver(options, _home, new SshLog(null)));
        Assert.Equal(SshErrorIds.InvalidConfiguration, failure.ErrorId);
        Assert.Contains(Path.Combine(_home, "missing"), failure.Message, StringComparison.Ordinal);
    }
}
