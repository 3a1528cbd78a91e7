using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>A scratch home with an ssh config of our own: never the real ~/.ssh or /etc/ssh/ssh_config.</summary>
public sealed class ScratchHome : IDisposable
{
    public ScratchHome()
    {
        Home = Directory.CreateTempSubdirectory("moltar-openssh-").FullName;
        Directory.CreateDirectory(Path.Combine(Home, ".ssh"));
    }

    public string Home { get; }

    public string Config(string text)
    {
        var path = Path.Combine(Home, ".ssh", "config");
        File.WriteAllText(path, text);
        return path;
    }

    public SshOptions Options(Func<SshOptions, SshOptions>? change = null)
    {
        var options = new SshOptions { HomeDirectory = Home, SystemConfigPath = "none" };
        return change is null ? options : change(options);
    }

    public void Dispose() => Directory.Delete(Home, recursive: true);
}

public class OpenSshCommandLineTests : IDisposable
{
    private const string Ssh = "/usr/bin/ssh";
    private readonly ScratchHome _home = new();

    public void Dispose() => _home.Dispose();

    private static SshOptions With(SshOptions o, string? user = null, int? port = null, string[]? keys = null, string[]? knownHosts = null,
        StrictHostKeyChecking? policy = null, string? jump = null, string? config = null, TimeSpan? timeout = null, string? passphrase = null) => new()
    {
        HomeDirectory = o.HomeDirectory,
        SystemConfigPath = o.SystemConfigPath,
        User = user,
        Port = port,
        KeyFiles = keys ?? Array.Empty<string>(),
        KnownHostsPaths = knownHosts,
        StrictHostKeyChecking = policy,
        JumpHost = jump,
        ConfigPath = config,
        ConnectTimeout = timeout,
        Passphrase = passphrase,
    };

    private OpenSshCommandLine Build(SshOptions options, string address = "10.0.0.5", IReadOnlyList<string>? command = null,
        OpenSshPlatform platform = OpenSshPlatform.Unix) =>
        OpenSshCommandLine.Create(Ssh, new SshTarget(address, "i-0123456789abcdef0", "web-1"), options, command, platform);

    [Fact]
    public void WithNothingExplicitOnlyTheDefaultUserIsAdded()
    {
        var line = Build(_home.Options());
        Assert.Equal(new[] { "ubuntu@10.0.0.5" }, line.Arguments);
        Assert.Equal(Ssh, line.FileName);
        Assert.Empty(line.Environment);
        Assert.Equal("/usr/bin/ssh ubuntu@10.0.0.5", line.ToDisplayString());
    }

    [Fact]
    public void ExplicitOptionsGoOnTheCommandLineInOrder()
    {
        var config = _home.Config("");
        var line = Build(With(_home.Options(), user: "deploy", port: 2222, keys: new[] { "/k/id_ed25519", "~/.ssh/other" },
            knownHosts: new[] { "/k/known_hosts" }, policy: StrictHostKeyChecking.AcceptNew, config: config, timeout: TimeSpan.FromSeconds(7.5)));
        Assert.Equal(new[]
        {
            "-F", config,
            "-i", "/k/id_ed25519",
            "-i", Path.Combine(_home.Home, ".ssh/other"),
            "-o", "UserKnownHostsFile=/k/known_hosts",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ConnectTimeout=8",
            "-p", "2222",
            "deploy@10.0.0.5",
        }, line.Arguments);
    }

    [Theory]
    [InlineData(StrictHostKeyChecking.Yes, "yes")]
    [InlineData(StrictHostKeyChecking.AcceptNew, "accept-new")]
    [InlineData(StrictHostKeyChecking.No, "no")]
    public void HostKeyPoliciesUseOpenSshNames(StrictHostKeyChecking policy, string name)
    {
        var line = Build(With(_home.Options(), policy: policy));
        Assert.Equal(new[] { "-o", "StrictHostKeyChecking=" + name, "ubuntu@10.0.0.5" }, line.Arguments);
    }

    [Fact]
    public void TheUserComesFromSshConfigWhenNotGivenAndAnExplicitOneWins()
    {
        var config = _home.Config("Host 10.0.0.*\n  User admin\n");
        Assert.Equal("admin@10.0.0.5", Build(With(_home.Options(), config: config)).Arguments[^1]);
        Assert.Equal("ops@10.0.0.5", Build(With(_home.Options(), config: config, user: "ops")).Arguments[^1]);
        // The default ~/.ssh/config of the (scratch) home is read too when no -F is given.
        Assert.Equal(new[] { "admin@10.0.0.5" }, Build(_home.Options()).Arguments);
    }

    [Fact]
    public void ConfigPathNoneIsPassedAsNone()
    {
        _home.Config("Host *\n  User admin\n");
        var line = Build(With(_home.Options(), config: "none"));
        Assert.Equal(new[] { "-F", "none", "ubuntu@10.0.0.5" }, line.Arguments);
    }

    [Fact]
    public void AMissingConfigFileIsInvalidConfiguration()
    {
        var failure = Assert.Throws<SshFailure>(() => Build(With(_home.Options(), config: Path.Combine(_home.Home, "nope"))));
        Assert.Equal(SshErrorIds.InvalidConfiguration, failure.ErrorId);
        Assert.Contains("nope", failure.Message);
    }

    [Fact]
    public void JumpHostsUseDashJWithEachHopsResolvedUser()
    {
        var config = _home.Config("Host bastion.example\n  User jumper\n");
        var line = Build(With(_home.Options(), config: config, user: "deploy", jump: "bastion.example:2200,ops@inner,[fd00::1]:22"));
        Assert.Equal(new[] { "-F", config, "-J", "jumper@bastion.example:2200,ops@inner,deploy@[fd00::1]:22", "deploy@10.0.0.5" }, line.Arguments);
        Assert.Equal(new[] { "jumper@bastion.example:2200", "ops@inner", "deploy@[fd00::1]:22" }, line.JumpHosts);
        Assert.False(line.JumpsUseProxyCommand);
        Assert.Empty(line.Notes);
    }

    [Fact]
    public void ProxyJumpFromSshConfigIsResolvedLikeTheEngine()
    {
        var config = _home.Config("Host 10.0.0.*\n  ProxyJump gate\n");
        var line = Build(With(_home.Options(), config: config));
        Assert.Equal(new[] { "-F", config, "-J", "ubuntu@gate", "ubuntu@10.0.0.5" }, line.Arguments);
    }

    [Fact]
    public void JumpHostNoneOverridesSshConfig()
    {
        var config = _home.Config("Host *\n  ProxyJump gate\n");
        var line = Build(With(_home.Options(), config: config, jump: "none"));
        Assert.Equal(new[] { "-F", config, "-J", "none", "ubuntu@10.0.0.5" }, line.Arguments);
        Assert.Empty(line.JumpHosts);
    }

    [Fact]
    public void ABadJumpHostIsInvalidConfiguration()
    {
        var failure = Assert.Throws<SshFailure>(() => Build(With(_home.Options(), jump: "bastion:notaport")));
        Assert.Equal(SshErrorIds.InvalidConfiguration, failure.ErrorId);
    }

    [Fact]
    public void JumpHostsGetKeysKnownHostsAndPolicyThroughAProxyCommand()
    {
        var line = Build(With(_home.Options(), keys: new[] { "/k/id" }, knownHosts: new[] { "/k/known_hosts" }, policy: StrictHostKeyChecking.Yes,
            jump: "root@127.0.41.1"));
        Assert.True(line.JumpsUseProxyCommand);
        Assert.Equal(new[]
        {
            "-i", "/k/id", "-o", "UserKnownHostsFile=/k/known_hosts", "-o", "StrictHostKeyChecking=yes",
            "-o", "ProxyCommand=/usr/bin/ssh -i /k/id -o UserKnownHostsFile=/k/known_hosts -o StrictHostKeyChecking=yes -l root -W '[%h]:%p' 127.0.41.1",
            "ubuntu@10.0.0.5",
        }, line.Arguments);
        // ssh runs ProxyCommand with $SHELL -c: the POSIX quoting needs a POSIX shell.
        Assert.Equal("/bin/sh", line.Environment["SHELL"]);
    }

    [Fact]
    public void AChainOfJumpHostsNestsProxyCommandsEscapingPercentOncePerLevel()
    {
        var line = Build(With(_home.Options(), knownHosts: new[] { "/k/known_hosts" }, jump: "a,b:2200"));
        const string first = "/usr/bin/ssh -o UserKnownHostsFile=/k/known_hosts -l ubuntu -W '[%h]:%p' a";
        const string second = "/usr/bin/ssh -o UserKnownHostsFile=/k/known_hosts -l ubuntu -p 2200 "
            + "-o 'ProxyCommand=/usr/bin/ssh -o UserKnownHostsFile=/k/known_hosts -l ubuntu -W '\\''[%%h]:%%p'\\'' a' -W '[%h]:%p' b";
        Assert.Equal(new[] { "-o", "UserKnownHostsFile=/k/known_hosts", "-o", "ProxyCommand=" + second, "ubuntu@10.0.0.5" }, line.Arguments);
        Assert.Contains(OpenSshCommandLine.EscapePercent(OpenSshCommandLine.QuotePosix("ProxyCommand=" + first)), second);
    }

    [Fact]
    public void OnWindowsJumpHostsUseDashJAndANoteSaysWhatTheyMiss()
    {
        var line = Build(With(_home.Options(), knownHosts: new[] { @"C:\k\known_hosts" }, jump: "bastion"), platform: OpenSshPlatform.Windows);
        Assert.Equal(new[] { "-o", @"UserKnownHostsFile=""C:\\k\\known_hosts""", "-J", "ubuntu@bastion", "ubuntu@10.0.0.5" }, line.Arguments);
        Assert.False(line.JumpsUseProxyCommand);
        Assert.Empty(line.Environment);
        Assert.Contains(line.Notes, n => n.Contains("-J") && n.Contains("known_hosts"));
    }

    [Fact]
    public void PathsWithSpacesOrPercentAreQuotedAndEscapedForSsh()
    {
        var line = Build(With(_home.Options(), keys: new[] { "/keys/50%/id" }, knownHosts: new[] { "/my dir/kh%1", "/plain" }));
        Assert.Equal(new[]
        {
            "-o", "IdentityFile=/keys/50%%/id",
            "-o", "UserKnownHostsFile=\"/my dir/kh%%1\" /plain",
            "ubuntu@10.0.0.5",
        }, line.Arguments);
    }

    [Fact]
    public void AnEmptyKnownHostsListIsNone()
    {
        var line = Build(With(_home.Options(), knownHosts: Array.Empty<string>()));
        Assert.Equal(new[] { "-o", "UserKnownHostsFile=none", "ubuntu@10.0.0.5" }, line.Arguments);
    }

    [Fact]
    public void TheRemoteCommandFollowsTheDestinationWordForWord()
    {
        var line = Build(_home.Options(), command: new[] { "hostname; exit 3" });
        Assert.Equal(new[] { "ubuntu@10.0.0.5", "hostname; exit 3" }, line.Arguments);
        Assert.Equal("/usr/bin/ssh ubuntu@10.0.0.5 'hostname; exit 3'", line.ToDisplayString());

        line = Build(_home.Options(), command: new[] { "ls", "-la", "/var/log" });
        Assert.Equal(new[] { "ubuntu@10.0.0.5", "ls", "-la", "/var/log" }, line.Arguments);
    }

    [Fact]
    public void ARemoteCommandStartingWithADashIsSeparatedByDashDash()
    {
        var line = Build(_home.Options(), command: new[] { "-v" });
        Assert.Equal(new[] { "ubuntu@10.0.0.5", "--", "-v" }, line.Arguments);
    }

    [Fact]
    public void TheTargetsOwnUserAndPortWin()
    {
        var target = new SshTarget("10.0.0.9") { User = "root", Port = 2022 };
        var line = OpenSshCommandLine.Create(Ssh, target, With(_home.Options(), user: "deploy", port: 22), platform: OpenSshPlatform.Unix);
        Assert.Equal(new[] { "-p", "2022", "root@10.0.0.9" }, line.Arguments);
    }

    [Theory]
    [InlineData("-oProxyCommand=touch /tmp/moltar-pwned")]
    [InlineData("a;b")]
    public void AUserThatSshWouldReadAsAnOptionOrAShellWouldSplitIsRefused(string user)
    {
        var fromOptions = Assert.Throws<SshFailure>(() => Build(With(_home.Options(), user: user)));
        Assert.Equal(SshErrorIds.InvalidConfiguration, fromOptions.ErrorId);
        // ssh config's User lands on the command line as user@host too.
        var config = _home.Config($"Host *\n  User {user}\n");
        var fromConfig = Assert.Throws<SshFailure>(() => Build(With(_home.Options(), config: config)));
        Assert.Contains("is not a user name", fromConfig.Message);
    }

    [Fact]
    public void ThePassphraseNeverReachesTheCommandLine()
    {
        var line = Build(With(_home.Options(), keys: new[] { "/k/id" }, passphrase: "s3cret-passphrase", jump: "b", knownHosts: new[] { "/k/kh" }));
        Assert.DoesNotContain(line.Arguments, a => a.Contains("s3cret-passphrase"));
        Assert.DoesNotContain("s3cret-passphrase", line.ToDisplayString());
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("ubuntu@10.0.0.5", "ubuntu@10.0.0.5")]
    [InlineData("-o", "-o")]
    [InlineData("UserKnownHostsFile=/tmp/a/known_hosts", "UserKnownHostsFile=/tmp/a/known_hosts")]
    [InlineData(@"C:\Windows\System32\OpenSSH\ssh.exe", @"C:\Windows\System32\OpenSSH\ssh.exe")]
    [InlineData("hostname; exit 3", "'hostname; exit 3'")]
    [InlineData("it's", "'it''s'")]
    [InlineData("it\u2019s", "'it\u2019\u2019s'")]
    [InlineData("", "''")]
    [InlineData("@splat", "'@splat'")]
    [InlineData("a,b", "'a,b'")]
    [InlineData("$HOME", "'$HOME'")]
    [InlineData("--", "'--'")]
    [InlineData("--%", "'--%'")]
    [InlineData("-name.more", "'-name.more'")]
    [InlineData("~/x", "'~/x'")]
    [InlineData("[%h]:%p", "'[%h]:%p'")]
    public void PowerShellQuoting(string value, string expected) =>
        Assert.Equal(expected, OpenSshCommandLine.QuotePowerShell(value));

    [Theory]
    [InlineData("plain-1.2:3", "plain-1.2:3")]
    [InlineData("a b", "'a b'")]
    [InlineData("it's", "'it'\\''s'")]
    [InlineData("", "''")]
    [InlineData("$x", "'$x'")]
    public void PosixQuoting(string value, string expected) =>
        Assert.Equal(expected, OpenSshCommandLine.QuotePosix(value));

    [Theory]
    [InlineData("/plain", "/plain")]
    [InlineData("/a b", "\"/a b\"")]
    [InlineData(@"C:\x", @"""C:\\x""")]
    [InlineData("/a\"b", "\"/a\\\"b\"")]
    [InlineData("/a#b", "\"/a#b\"")]
    public void SshConfigValueQuoting(string value, string expected) =>
        Assert.Equal(expected, OpenSshCommandLine.QuoteConfigValue(value));

    [Fact]
    public void AnExecutableWithSpacesIsDisplayedWithTheCallOperator()
    {
        var line = OpenSshCommandLine.Create(@"C:\Program Files\OpenSSH\ssh.exe", new SshTarget("10.0.0.5"), _home.Options(), platform: OpenSshPlatform.Windows);
        Assert.Equal(@"& 'C:\Program Files\OpenSSH\ssh.exe' ubuntu@10.0.0.5", line.ToDisplayString());
    }
}

public class OpenSshClientTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("moltar-sshclient-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Dir(string name) => Directory.CreateDirectory(Path.Combine(_root, name)).FullName;

    private static string Touch(string path, bool executable)
    {
        File.WriteAllText(path, "#!/bin/sh\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, executable ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute : UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return path;
    }

    [Fact]
    public void FindsTheFirstRunnableSshOnPath()
    {
        var empty = Dir("empty");
        var notRunnable = Dir("noexec");
        Touch(Path.Combine(notRunnable, "ssh"), executable: false);
        var good = Dir("bin");
        var ssh = Touch(Path.Combine(good, "ssh"), executable: true);
        var later = Dir("later");
        Touch(Path.Combine(later, "ssh"), executable: true);

        var path = string.Join(':', empty, "", notRunnable, good, later);
        Assert.Equal(OperatingSystem.IsWindows() ? Path.Combine(notRunnable, "ssh") : ssh, OpenSshClient.Find(path, windows: false));
    }

    [Fact]
    public void NoSshOnPathIsNull()
    {
        Assert.Null(OpenSshClient.Find(Dir("empty"), windows: false));
        Assert.Null(OpenSshClient.Find(null, windows: false));
        Assert.Null(OpenSshClient.Find("", windows: false));
    }

    [Fact]
    public void OnWindowsPathComesFirstThenTheBuiltInClient()
    {
        var systemRoot = Dir("Windows");
        var builtIn = Touch(Path.Combine(Directory.CreateDirectory(Path.Combine(systemRoot, "System32", "OpenSSH")).FullName, "ssh.exe"), executable: false);
        Assert.Equal(builtIn, OpenSshClient.Find(Dir("other"), windows: true, systemRoot));

        var onPath = Touch(Path.Combine(Dir("git"), "ssh.exe"), executable: false);
        Assert.Equal(onPath, OpenSshClient.Find(Path.GetDirectoryName(onPath) + ";" + Dir("x"), windows: true, systemRoot));
        Assert.Null(OpenSshClient.Find(Dir("y"), windows: true, Dir("NoWindows")));
    }

    [Fact]
    public void TheNotFoundMessageSaysHowToInstallSshEverywhere()
    {
        foreach (var windows in new[] { false, true })
        {
            var message = OpenSshClient.NotFoundMessage(windows);
            Assert.Contains("apt-get install openssh-client", message);
            Assert.Contains("dnf install openssh-clients", message);
            Assert.Contains("macOS", message);
            Assert.Contains("Add-WindowsCapability -Online -Name OpenSSH.Client", message);
        }

        Assert.Contains("System32\\OpenSSH", OpenSshClient.NotFoundMessage(true));
    }
}
