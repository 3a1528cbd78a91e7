using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

public sealed class SshConfigTests
{
    private const string Home = "/home/tester";

    [Theory]
    [InlineData("web-1", "web-*", true)]
    [InlineData("WEB-1", "web-*", true)]
    [InlineData("web-12", "web-?", false)]
    [InlineData("web-1", "web-?", true)]
    [InlineData("10.0.3.7", "10.0.*", true)]
    [InlineData("10.1.3.7", "10.0.*", false)]
    [InlineData("anything", "*", true)]
    [InlineData("abc", "a*b*c", true)]
    [InlineData("abbc", "a*c", true)]
    [InlineData("ab", "a*c", false)]
    [InlineData("", "*", true)]
    public void Wildcards_match_like_OpenSSH(string host, string pattern, bool expected)
    {
        Assert.Equal(expected, SshPattern.Match(host, pattern));
    }

    [Theory]
    [InlineData("web-1", true)]
    [InlineData("web-bad", false)]
    [InlineData("db-1", false)]
    public void Negation_excludes_even_when_another_pattern_matches(string host, bool expected)
    {
        Assert.Equal(expected, SshPattern.MatchList(host, new[] { "web-*", "!web-bad" }));
    }

    [Fact]
    public void A_list_of_only_negations_matches_nothing()
    {
        Assert.False(SshPattern.MatchList("db-1", new[] { "!web-*" }));
    }

    [Fact]
    public void First_value_wins_across_blocks_and_several_patterns_on_one_host_line()
    {
        var config = SshConfig.Parse("""
            Host db-1 web-*
              User deploy
              Port 2200
            Host web-1
              User other
              HostName 10.0.0.1
            Host *
              User fallback
              Port 22
              StrictHostKeyChecking accept-new
            """, homeDirectory: Home);

        var web = config.Resolve("web-1");
        Assert.Equal("deploy", web.Get("User")!.Value);
        Assert.Equal("2200", web.Get("port")!.Value);
        Assert.Equal("10.0.0.1", web.Get("HostName")!.Value);
        Assert.Equal("accept-new", web.Get("StrictHostKeyChecking")!.Value);

        var db = config.Resolve("db-1");
        Assert.Equal("deploy", db.Get("User")!.Value);
        Assert.Null(db.Get("HostName"));

        var other = config.Resolve("cache-1");
        Assert.Equal("fallback", other.Get("User")!.Value);
        Assert.Equal("22", other.Get("Port")!.Value);
    }

    [Fact]
    public void Lines_before_any_Host_apply_to_every_host()
    {
        var config = SshConfig.Parse("User global\nHost x\n  User x-user\n", homeDirectory: Home);
        Assert.Equal("global", config.Resolve("x").Get("User")!.Value);
        Assert.Equal("global", config.Resolve("y").Get("User")!.Value);
    }

    [Fact]
    public void IdentityFile_accumulates_in_order()
    {
        var config = SshConfig.Parse("""
            Host web-*
              IdentityFile ~/.ssh/web
            Host *
              IdentityFile ~/.ssh/all
            """, homeDirectory: Home);
        Assert.Equal(new[] { "~/.ssh/web", "~/.ssh/all" }, config.Resolve("web-2").GetAll("IdentityFile").Select(v => v.Value));
    }

    [Fact]
    public void Equals_sign_quotes_and_comments_are_understood()
    {
        var config = SshConfig.Parse("""
            Host=quoted
              IdentityFile = "/path/with space/key"   # trailing comment
              User="someone"
            """, homeDirectory: Home);
        var m = config.Resolve("quoted");
        Assert.Equal("/path/with space/key", m.GetAll("IdentityFile").Single().Value);
        Assert.Equal("someone", m.Get("User")!.Value);
    }

    [Fact]
    public void Unsupported_keywords_are_reported_not_dropped_silently()
    {
        var config = SshConfig.Parse("""
            Host web-*
              ForwardAgent yes
              ControlMaster auto
            Host db-*
              LocalForward 5432 localhost:5432
            """, sourceName: "cfg", homeDirectory: Home);
        var web = config.Resolve("web-1");
        Assert.Equal(new[] { "ForwardAgent", "ControlMaster" }, web.Unsupported.Select(u => u.Keyword));
        Assert.Equal("cfg:2", web.Unsupported[0].Location);
        Assert.Empty(config.Resolve("cache").Unsupported);
    }

    [Fact]
    public void Match_criteria_newer_than_OpenSSH_9_2_are_reported_and_their_blocks_ignored()
    {
        var config = SshConfig.Parse("""
            Match host web-* localnetwork 10.0.0.0/8
              User from-match
            Match all
              Port 2222
            """, sourceName: "cfg", homeDirectory: Home);
        Assert.Contains(config.Notes, n => n.Contains("'localnetwork' is not supported") && n.Contains("cfg:1"));
        var m = config.Resolve("web-1");
        Assert.Null(m.Get("User"));
        Assert.Equal("2222", m.Get("Port")!.Value);
    }

    [Fact]
    public void Include_inside_a_Host_block_applies_conditionally_and_globs_sorted()
    {
        var dir = Directory.CreateTempSubdirectory("moltar-config-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "conf.d"));
            File.WriteAllText(Path.Combine(dir, "conf.d", "b.conf"), "User from-b\nPort 2\n");
            File.WriteAllText(Path.Combine(dir, "conf.d", "a.conf"), "User from-a\nHost nested\n  HostName nested.example\n");
            File.WriteAllText(Path.Combine(dir, "config"), """
                Host web-*
                  Include conf.d/*.conf
                Host *
                  Include missing/*.conf
                  User last
                """);
            var config = SshConfig.Load(Path.Combine(dir, "config"), Home, dir);

            var web = config.Resolve("web-1");
            Assert.Equal("from-a", web.Get("User")!.Value);     // a.conf before b.conf
            Assert.Equal("2", web.Get("Port")!.Value);

            var other = config.Resolve("db-1");
            Assert.Equal("last", other.Get("User")!.Value);     // the include only applied under web-*

            // A Host line inside the included file starts its own block, still under the including block's condition.
            Assert.Null(config.Resolve("nested").Get("HostName"));
            Assert.Null(config.Resolve("web-1").Get("HostName"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Missing_config_file_is_empty()
    {
        var config = SshConfig.Load("/nonexistent/moltar/config", Home);
        Assert.Null(config.Resolve("x").Get("User"));
    }

    [Fact]
    public void Settings_merge_overrides_options_config_and_defaults()
    {
        var config = SshConfig.Parse("""
            Host web-*
              HostName %h.internal
              User cfg-user
              Port 2200
              IdentityFile ~/.ssh/%r@%h
              ProxyJump ops@bastion:2222
              StrictHostKeyChecking ask
              UserKnownHostsFile ~/.ssh/kh1 %d/kh2
              ConnectTimeout 7
              ServerAliveInterval 30
              KexAlgorithms -sntrup*
              Ciphers ^aes256-gcm@openssh.com
              IdentitiesOnly yes
            """, homeDirectory: Home);
        var options = new SshOptions { KeyFiles = new[] { "~/explicit" }, HomeDirectory = Home, UseAgent = false };

        var s = SshHostSettings.Resolve("web-1", null, null, options, config.Resolve("web-1"), Home);
        Assert.Equal("web-1.internal", s.HostName);
        Assert.Equal("cfg-user", s.User);
        Assert.Equal(2200, s.Port);
        Assert.Equal(new[] { "/home/tester/explicit", "/home/tester/.ssh/cfg-user@web-1.internal" }, s.IdentityFiles);
        Assert.False(s.IdentityFilesAreDefaults);
        Assert.True(s.IdentitiesOnly);
        Assert.Equal(new SshJumpHop("bastion", 2222, "ops"), Assert.Single(s.Jumps));
        Assert.Equal(StrictHostKeyChecking.Yes, s.StrictHostKeyChecking);
        Assert.Equal(new[] { "/home/tester/.ssh/kh1", "/home/tester/kh2" }, s.UserKnownHostsFiles);
        Assert.Equal(TimeSpan.FromSeconds(7), s.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), s.ServerAliveInterval);
        Assert.Equal("-sntrup*", s.KexAlgorithms);
        Assert.Null(s.IdentityAgent);

        var overridden = SshHostSettings.Resolve("web-1", 2022, "target-user",
            options with { User = "opt-user", Port = 1, JumpHost = "none", StrictHostKeyChecking = StrictHostKeyChecking.No, Ciphers = "aes128-ctr" },
            config.Resolve("web-1"), Home);
        Assert.Equal("target-user", overridden.User);
        Assert.Equal(2022, overridden.Port);
        Assert.Empty(overridden.Jumps);
        Assert.Equal(StrictHostKeyChecking.No, overridden.StrictHostKeyChecking);
        Assert.Equal("aes128-ctr", overridden.Ciphers);

        var plain = SshHostSettings.Resolve("db-1", null, null, new SshOptions { HomeDirectory = Home, UseAgent = false }, config.Resolve("db-1"), Home);
        Assert.Equal("db-1", plain.HostName);
        Assert.Equal("ubuntu", plain.User);
        Assert.Equal(22, plain.Port);
        Assert.True(plain.IdentityFilesAreDefaults);
        Assert.Equal(new[] { "/home/tester/.ssh/id_ed25519", "/home/tester/.ssh/id_ecdsa", "/home/tester/.ssh/id_rsa" }, plain.IdentityFiles);
        Assert.Equal(new[] { "/home/tester/.ssh/known_hosts", "/home/tester/.ssh/known_hosts2" }, plain.UserKnownHostsFiles);
        Assert.Equal(SshOptions.DefaultConnectTimeout, plain.ConnectTimeout);
    }

    [Theory]
    [InlineData("yes", StrictHostKeyChecking.Yes)]
    [InlineData("ask", StrictHostKeyChecking.Yes)]
    [InlineData("accept-new", StrictHostKeyChecking.AcceptNew)]
    [InlineData("no", StrictHostKeyChecking.No)]
    [InlineData("off", StrictHostKeyChecking.No)]
    public void StrictHostKeyChecking_values(string value, StrictHostKeyChecking expected)
    {
        Assert.Equal(expected, SshHostSettings.ParseStrict(value));
    }

    [Fact]
    public void A_jump_host_gets_its_own_config_and_the_options_user_only_as_fallback()
    {
        var config = SshConfig.Parse("Host bastion\n  HostName 1.2.3.4\n  User ops\nHost other-bastion\n  HostName 5.6.7.8\n", homeDirectory: Home);
        var options = new SshOptions { User = "app", Port = 2222, HomeDirectory = Home, UseAgent = false };
        var b = SshHostSettings.Resolve("bastion", null, null, options, config.Resolve("bastion"), Home, isJump: true);
        Assert.Equal(("1.2.3.4", "ops", 22), (b.HostName, b.User, b.Port));
        var o = SshHostSettings.Resolve("other-bastion", null, null, options, config.Resolve("other-bastion"), Home, isJump: true);
        Assert.Equal(("5.6.7.8", "app", 22), (o.HostName, o.User, o.Port));
    }

    [Theory]
    [InlineData("bastion", "bastion", null, null)]
    [InlineData("ops@bastion", "bastion", null, "ops")]
    [InlineData("ops@bastion:2222", "bastion", 2222, "ops")]
    [InlineData("[fe80::1]:2222", "fe80::1", 2222, null)]
    [InlineData("ssh://me@host.example:22/", "host.example", 22, "me")]
    public void Jump_hops_parse(string text, string host, int? port, string? user)
    {
        Assert.Equal(new SshJumpHop(host, port, user), SshJumpHop.Parse(text));
    }

    [Fact]
    public void Jump_chains_and_none()
    {
        Assert.Equal(2, SshJumpHop.ParseList("a,b:2").Count);
        Assert.Empty(SshJumpHop.ParseList("none"));
        Assert.Empty(SshJumpHop.ParseList(null));
    }

    [Fact]
    public void Tokens_expand()
    {
        var t = new SshPaths.TokenValues("/home/u", "h.example", "root", 2200, "alias");
        Assert.Equal("/home/u/.ssh/root@h.example:2200-alias%", SshPaths.ExpandPath("~/.ssh/%r@%h:%p-%n%%", t));
        Assert.Equal("/home/u/x", SshPaths.ExpandPath("%d/x", t));
        Environment.SetEnvironmentVariable("MOLTAR_TEST_DIR", "/opt/keys");
        Assert.Equal("/opt/keys/k", SshPaths.ExpandPath("${MOLTAR_TEST_DIR}/k", t));
    }

    [Fact]
    public void Options_never_print_the_passphrase()
    {
        var text = new SshOptions { Passphrase = "hunter2", User = "u" }.ToString();
        Assert.DoesNotContain("hunter2", text);
        Assert.Contains("Passphrase = ***", text);
        Assert.Contains("User = u", text);
    }

    [Fact]
    public void Unsupported_keywords_that_could_change_the_connection_warn_once_per_call_others_are_verbose()
    {
        var dir = Directory.CreateTempSubdirectory("moltar-unsupported-18-").FullName;
        var path = Path.Combine(dir, "config");
        File.WriteAllText(path, "Host *\n  CanonicalizeHostname yes\n  HostKeyAlias other\n  LogLevel QUIET\n");
        var log = new List<SshLogEntry>();
        using var connector = new SshConnector(new SshOptions { ConfigPath = path, SystemConfigPath = "none", HomeDirectory = Home, UseAgent = false }, log.Add);
        connector.Resolve(new SshTarget("web-1"));
        connector.Resolve(new SshTarget("web-2"));
        var warnings = log.Where(e => e.Level == SshLogLevel.Warning).Select(e => e.Message).ToList();
        Assert.Equal(2, warnings.Count);
        Assert.Single(warnings, w => w.Contains("CanonicalizeHostname yes") && w.Contains($"{path}:2"));
        Assert.Single(warnings, w => w.Contains("HostKeyAlias other"));
        Assert.Single(log, e => e.Level == SshLogLevel.Verbose && e.Message.Contains("LogLevel"));
        Directory.Delete(dir, true);
    }
}
