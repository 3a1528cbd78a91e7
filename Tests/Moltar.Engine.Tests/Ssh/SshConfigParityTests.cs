using System.Diagnostics;
using Moltar.Engine.Ssh;
using Xunit;
using Xunit.Abstractions;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>A theory that needs the system OpenSSH client: skipped visibly without it, except under CI.</summary>
public sealed class SshClientTheoryAttribute : TheoryAttribute
{
    public SshClientTheoryAttribute()
    {
        if (SshdEnvironment.Which("ssh") is null && !SshdEnvironment.IsCi)
        {
            Skip = "Skipped: the OpenSSH client (ssh) is not installed";
        }
    }
}

/// <summary>
/// One oracle: each config of the corpus is resolved by Moltar and by `ssh -G` (and, for the paths ssh expands
/// only when it uses them, by `ssh -v` itself), and every setting Moltar reads must be the one ssh uses.
/// </summary>
public sealed class SshConfigParityTests(ITestOutputHelper output)
{
    private static readonly string Dir = CreateRemovedAtExit("moltar-parity-18-");

    /// <summary>A folder of this test run's own (the corpus, keys): static, so it is removed when the test host exits.</summary>
    private static string CreateRemovedAtExit(string prefix)
    {
        var dir = Directory.CreateTempSubdirectory(prefix).FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        return dir;
    }

    /// <summary>ssh expands ~ and %d with the passwd entry's home, not $HOME.</summary>
    private static readonly string PasswdHome = PasswdHomeOf(Environment.UserName);

    private static readonly Dictionary<string, string> Corpus = new()
    {
        ["hosts"] = """
            Host web-* !web-bad
              User deploy
              Port 2201
            Host web-bad
              User nobody
            Host db-1 db-2
              HostName %h.internal.example
              IdentitiesOnly yes
              IdentityFile ~/.ssh/db_%h
              IdentityFile ~/.ssh/db_common
            Host *
              User fallback
              StrictHostKeyChecking accept-new
              ConnectTimeout 9
              ServerAliveInterval 30
              HashKnownHosts yes
            """,
        ["include"] = """
            Host inc-*
              Include {DIR}/inc.d/*.conf
            Host *
              Port 2299
            """,
        ["match"] = """
            Match originalhost alias-* !host *.skip
              HostName real-%h
            Match host real-alias-1
              User matched-by-host
            Match user cli-user
              Port 2500
            Match localuser {LOCALUSER} host real-alias-2
              IdentityFile ~/.ssh/local_%u
            Match exec "test -e {DIR}/flag-%h"
              StrictHostKeyChecking no
            Match !exec "test -e {DIR}/flag-%h" host real-*
              StrictHostKeyChecking yes
            Match final host real-alias-3
              ConnectTimeout 33
            Match canonical
              ServerAliveInterval 44
            Host real-alias-4
              User final-pass-host-pattern
            Match all
              User last-resort
            """,
        ["proxy"] = """
            Host pj-first
              ProxyJump alice@bastion-1:2222,bastion-2
              ProxyCommand never-used %h
            Host pc-first
              ProxyCommand ssh -W "[%h]:%p" -l %r gate # via %n
              ProxyJump never-used
            Host none-jump
              ProxyJump none
            Host none-command
              ProxyCommand none
            Host jump-none-then-command
              ProxyJump none
              ProxyJump not-used
            Host *
              ProxyCommand fallback-proxy %h %p
            """,
        ["paths"] = """
            Host tok-*
              HostName %h.example
              User tokuser
              Port 2022
              IdentityFile ~/id_%h_%r_%p_%n_%d_%u_%i_%l_%L_%C_${MOLTAR_PARITY_18}
              CertificateFile {DIR}/cert_%h_%r-cert.pub
              UserKnownHostsFile ~/.ssh/kh_%h ${MOLTAR_PARITY_18}/kh2
              GlobalKnownHostsFile {DIR}/global_%h
              IdentityAgent {DIR}/agent_%h.sock
            Host agent-none
              IdentityAgent none
            Host known-none
              UserKnownHostsFile none
            Host algs
              KexAlgorithms curve25519-sha256,diffie-hellman-group14-sha256
              Ciphers aes256-ctr,aes128-gcm@openssh.com
              HostKeyAlgorithms ssh-ed25519,rsa-sha2-512
            """,
    };

    public static IEnumerable<object?[]> Cases() => new (string Config, string Host, string? User, int? Port)[]
    {
        ("hosts", "web-1", null, null), ("hosts", "web-bad", null, null), ("hosts", "db-2", null, null),
        ("hosts", "other", null, null), ("hosts", "web-2", "cli", 2400),
        ("include", "inc-a", null, null), ("include", "inc-b", null, null), ("include", "plain", null, null),
        ("match", "alias-1", null, null), ("match", "alias-2", null, null), ("match", "alias-3", null, null),
        ("match", "alias-4", null, null), ("match", "alias-5.skip", null, null), ("match", "alias-6", "cli-user", null),
        ("match", "flagged", null, null), ("match", "elsewhere", null, null),
        ("proxy", "pj-first", null, null), ("proxy", "pc-first", "ops", null), ("proxy", "none-jump", null, null),
        ("proxy", "none-command", null, null), ("proxy", "anything", null, 2022), ("proxy", "jump-none-then-command", null, null),
        ("paths", "tok-1", null, null), ("paths", "agent-none", null, null), ("paths", "known-none", null, null),
        ("paths", "algs", null, null),
    }.Select(c => new object?[] { c.Config, c.Host, c.User, c.Port });

    [SshClientTheory]
    [MemberData(nameof(Cases))]
    public void Moltar_resolves_what_ssh_G_resolves(string configName, string host, string? user, int? port)
    {
        var config = WriteCorpus(configName);
        var ssh = SshG(config, host, user, port);
        var settings = Moltar(config, host, user, port);
        var raw = new SshConfigFiles(MoltarOptions(config, user, port), PasswdHome, null).Lookup(host, user, port);
        var tokens = new SshPaths.TokenValues(PasswdHome, settings.HostName, settings.User, settings.Port, host);
        string Expand(string v) => SshPaths.ExpandPath(v, tokens);

        Assert.Equal(ssh["hostname"].Single(), settings.HostName);
        Assert.Equal(int.Parse(ssh["port"].Single()), settings.Port);
        // ssh's default user is the local one, Moltar's "ubuntu": the difference README names. Set anywhere, they agree.
        Assert.Equal(ssh["user"].Single(), user ?? raw.Get("User")?.Value ?? Environment.UserName);
        if (user is not null || raw.Get("User") is not null)
        {
            Assert.Equal(ssh["user"].Single(), settings.User);
        }

        if (raw.GetAll("IdentityFile").Count > 0)
        {
            Assert.Equal(ssh["identityfile"].Select(Expand), settings.IdentityFiles);
        }
        else
        {
            Assert.Contains("~/.ssh/id_ed25519", ssh["identityfile"]);
            Assert.True(settings.IdentityFilesAreDefaults);
        }

        Assert.Equal(ssh.GetValueOrDefault("certificatefile", new()).Select(Expand), settings.CertificateFiles);
        Assert.Equal(ssh["userknownhostsfile"].Where(v => v != "none"), settings.UserKnownHostsFiles);
        Assert.Equal(ssh["globalknownhostsfile"].Single().Split(' ', StringSplitOptions.RemoveEmptyEntries), settings.GlobalKnownHostsFiles);
        Assert.Equal(ssh["stricthostkeychecking"].Single() switch
        {
            "true" or "ask" => StrictHostKeyChecking.Yes,
            "false" => StrictHostKeyChecking.No,
            "accept-new" => StrictHostKeyChecking.AcceptNew,
            var other => throw new InvalidOperationException(other),
        }, settings.StrictHostKeyChecking);
        Assert.Equal(ssh["identitiesonly"].Single() == "yes", settings.IdentitiesOnly);
        Assert.Equal(ssh["hashknownhosts"].Single() == "yes", settings.HashKnownHosts);
        Assert.Equal(ssh["connecttimeout"].Single() == "none" ? SshOptions.DefaultConnectTimeout : TimeSpan.FromSeconds(int.Parse(ssh["connecttimeout"].Single())), settings.ConnectTimeout);
        Assert.Equal(ssh["serveraliveinterval"].Single() == "0" ? null : TimeSpan.FromSeconds(int.Parse(ssh["serveraliveinterval"].Single())), settings.ServerAliveInterval);

        if (ssh.TryGetValue("identityagent", out var agent))
        {
            Assert.Equal(agent.Single() switch
            {
                "none" => null,
                "SSH_AUTH_SOCK" => Environment.GetEnvironmentVariable("SSH_AUTH_SOCK"),
                var path => path,
            }, settings.IdentityAgent);
        }

        // ProxyCommand as ssh will run it (ssh expands its tokens only when it connects), and the jump chain.
        Assert.Equal(ssh.TryGetValue("proxycommand", out var pc) ? SshPaths.ExpandTokens(pc.Single(), tokens) : null, settings.ProxyCommand);
        Assert.Equal(ssh.TryGetValue("proxyjump", out var pj) ? SshJumpHop.ParseList(pj.Single()) : Array.Empty<SshJumpHop>(), settings.Jumps);

        // A plain algorithm list (no +, -, ^) is taken as written by both.
        foreach (var (keyword, value) in new[] { ("kexalgorithms", settings.KexAlgorithms), ("ciphers", settings.Ciphers), ("hostkeyalgorithms", settings.HostKeyAlgorithms) })
        {
            if (value is not null)
            {
                Assert.Equal(ssh[keyword].Single(), value);
            }
        }
    }

    /// <summary>
    /// ssh expands %-tokens and ${VAR} in IdentityFile and CertificateFile only when it loads them: `ssh -v`
    /// names them as it tries them (the connection goes to a ProxyCommand that exits at once).
    /// </summary>
    [SshClientTheory]
    [InlineData("tok-1", null)]
    [InlineData("tok-2", "cli")]
    public void Identity_and_certificate_paths_expand_as_ssh_expands_them_when_it_connects(string host, string? user)
    {
        var config = WriteCorpus("paths");
        var withProxy = Path.Combine(Dir, "paths-proxy.conf");
        // `true` and not `exit 0`: ssh runs it as `exec exit 0`, and the shell's "exit: not found", written in pieces
        // to the stderr it shares with ssh, could land inside one of ssh's debug lines under load.
        File.WriteAllText(withProxy, "Host *\n  ProxyCommand true\n" + File.ReadAllText(config));
        var env = new Dictionary<string, string> { ["MOLTAR_PARITY_18"] = "env-value" };
        Environment.SetEnvironmentVariable("MOLTAR_PARITY_18", "env-value");
        var args = new List<string> { "-v", "-F", withProxy, "-o", "BatchMode=yes" };
        if (user is not null)
        {
            args.AddRange(new[] { "-l", user });
        }

        args.AddRange(new[] { host, "true" });
        var (_, stderr) = RunSsh(env, args);
        var identities = Lines(stderr, "debug1: identity file ");
        var certificates = Lines(stderr, "debug1: certificate file ");
        output.WriteLine(string.Join("\n", identities.Concat(certificates)));

        var settings = Moltar(config, host, user, null);
        Assert.Equal(identities, settings.IdentityFiles);
        Assert.Equal(certificates, settings.CertificateFiles);
        Assert.Contains(identities, p => p.EndsWith("_env-value", StringComparison.Ordinal));
    }

    /// <summary>
    /// Match exec: ssh runs the command (tokens expanded); Moltar runs the same one and writes the same line. The
    /// user is given: with none, ssh's %r is the local user and Moltar's its default "ubuntu" (README names this).
    /// </summary>
    [SshClientTheory]
    [InlineData("alias-9", "root", null)]
    [InlineData("alias-9", "someone", 2345)]
    public void Match_exec_runs_the_command_with_the_tokens_ssh_gives_it(string host, string? user, int? port)
    {
        var outFile = Path.Combine(Dir, $"exec-{Guid.NewGuid():N}");
        var config = Path.Combine(Dir, $"exec-{Guid.NewGuid():N}.conf");
        File.WriteAllText(config, $"""
            Host alias-*
              HostName real-%h
            Match exec "echo '%C %d %h %L %l %n %p %r %u' >> {outFile}"
              User never-set-because-exec-prints-first
            """);
        SshG(config, host, user, port);
        var fromSsh = File.ReadAllLines(outFile);
        File.Delete(outFile);
        Moltar(config, host, user, port);
        var fromMoltar = File.ReadAllLines(outFile);
        Assert.Single(fromSsh);
        Assert.Equal(fromSsh[0], Assert.Single(fromMoltar));
    }

    [Fact]
    public void Windows_reads_ProgramData_and_USERPROFILE_never_etc_ssh()
    {
        var env = new Dictionary<string, string> { ["USERPROFILE"] = @"C:\Users\ann", ["ProgramData"] = @"D:\ProgramData", ["HOME"] = "/should/not/be/used" };
        var paths = SshPaths.Platform(OpenSshPlatform.Windows, n => env.GetValueOrDefault(n));
        Assert.Equal(@"C:\Users\ann", paths.Home);
        Assert.Equal(@"C:\Users\ann\.ssh\config", paths.UserConfig);
        Assert.Equal(@"D:\ProgramData\ssh\ssh_config", paths.SystemConfig);
        Assert.Equal(new[] { @"D:\ProgramData\ssh\ssh_known_hosts", @"D:\ProgramData\ssh\ssh_known_hosts2" }, paths.GlobalKnownHosts);
        Assert.Equal(new[] { @"C:\Users\ann\.ssh\known_hosts", @"C:\Users\ann\.ssh\known_hosts2" }, paths.UserKnownHosts);
        Assert.Equal(@"C:\Users\ann\.ssh\id_ed25519", paths.DefaultIdentityFiles[0]);

        // No ProgramData variable: the Windows default, still not C:\etc\ssh.
        var bare = SshPaths.Platform(OpenSshPlatform.Windows, n => n == "USERPROFILE" ? @"C:\Users\bob" : null);
        Assert.Equal(@"C:\ProgramData\ssh\ssh_config", bare.SystemConfig);

        var unix = SshPaths.Platform(OpenSshPlatform.Unix, n => n == "HOME" ? "/home/carol" : null);
        Assert.Equal("/home/carol/.ssh/config", unix.UserConfig);
        Assert.Equal("/etc/ssh/ssh_config", unix.SystemConfig);

        // The engine takes the platform as a parameter: Windows defaults for the global known_hosts.
        var settings = SshHostSettings.Resolve("web-1", null, null, new SshOptions { Platform = OpenSshPlatform.Windows },
            SshConfig.Empty.Resolve("web-1"), @"C:\Users\ann");
        Assert.StartsWith(@"C:\Users\ann\.ssh\known_hosts", settings.UserKnownHostsFiles[0]);
        Assert.DoesNotContain(settings.GlobalKnownHostsFiles, p => p.StartsWith("/etc/", StringComparison.Ordinal));
    }

    private static SshOptions MoltarOptions(string config, string? user, int? port) => new()
    {
        ConfigPath = config,
        SystemConfigPath = "none",
        HomeDirectory = PasswdHome,
        User = user,
        Port = port,
    };

    private static SshHostSettings Moltar(string config, string host, string? user, int? port)
    {
        Environment.SetEnvironmentVariable("MOLTAR_PARITY_18", "env-value");
        using var connector = new SshConnector(MoltarOptions(config, user, port));
        return connector.Resolve(new SshTarget(host));
    }

    private static string WriteCorpus(string name)
    {
        var incDir = Path.Combine(Dir, "inc.d");
        Directory.CreateDirectory(incDir);
        File.WriteAllText(Path.Combine(incDir, "b.conf"), "Host inc-b\n  User from-b\nHost *\n  IdentityFile ~/.ssh/inc_%h\n");
        File.WriteAllText(Path.Combine(incDir, "a.conf"), "Host inc-a\n  User from-a\n  Port 2100\n");
        File.WriteAllText(Path.Combine(Dir, "flag-real-flagged"), "");
        var path = Path.Combine(Dir, name + ".conf");
        File.WriteAllText(path, Corpus[name].Replace("{DIR}", Dir).Replace("{LOCALUSER}", Environment.UserName));
        return path;
    }

    private static Dictionary<string, List<string>> SshG(string config, string host, string? user, int? port)
    {
        var args = new List<string> { "-G", "-F", config };
        if (user is not null)
        {
            args.AddRange(new[] { "-l", user });
        }

        if (port is not null)
        {
            args.AddRange(new[] { "-p", port.Value.ToString() });
        }

        args.Add(host);
        var (stdout, _) = RunSsh(new Dictionary<string, string> { ["MOLTAR_PARITY_18"] = "env-value" }, args, mustSucceed: true);
        var result = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var space = line.IndexOf(' ');
            var key = space < 0 ? line : line.Substring(0, space);
            var value = space < 0 ? "" : line.Substring(space + 1);
            if (!result.TryGetValue(key, out var list))
            {
                result[key] = list = new List<string>();
            }

            // userknownhostsfile is one line of several paths.
            list.AddRange(key == "userknownhostsfile" ? value.Split(' ', StringSplitOptions.RemoveEmptyEntries) : new[] { value });
        }

        return result;
    }

    private static (string Stdout, string Stderr) RunSsh(Dictionary<string, string> env, IEnumerable<string> args, bool mustSucceed = false)
    {
        var info = new ProcessStartInfo("ssh") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env)
        {
            info.Environment[k] = v;
        }

        info.Environment["SHELL"] = "/bin/sh";
        using var p = Process.Start(info)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), "ssh did not finish");
        if (mustSucceed)
        {
            Assert.True(p.ExitCode == 0, $"ssh {string.Join(' ', args)}: {stderr}");
        }

        return (stdout.Result, stderr);
    }

    private static List<string> Lines(string text, string prefix) =>
        text.Split('\n').Where(l => l.StartsWith(prefix, StringComparison.Ordinal))
            .Select(l => l.Substring(prefix.Length).Trim())
            .Select(l => l.Substring(0, l.LastIndexOf(" type ", StringComparison.Ordinal)))
            .ToList();

    private static string PasswdHomeOf(string user)
    {
        if (File.Exists("/etc/passwd"))
        {
            foreach (var line in File.ReadLines("/etc/passwd"))
            {
                var f = line.Split(':');
                if (f.Length > 5 && f[0] == user)
                {
                    return f[5];
                }
            }
        }

        return SshPaths.DefaultHome();
    }
}
