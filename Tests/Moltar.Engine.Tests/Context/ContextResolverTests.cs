using Moltar.Engine.Context;
using Xunit;

namespace Moltar.Engine.Tests.Context;

public sealed class ContextResolverTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("moltar-context-").FullName;
    private readonly Dictionary<string, string> _environment = new();

    public ContextResolverTests()
    {
        // The trust file of these tests, never the developer's own.
        _environment["XDG_CONFIG_HOME"] = Path.Combine(_root, "config");
    }

    /// <summary>Trusts the project folder as Approve-MoltarProject does.</summary>
    private void Trust(string? folder = null) =>
        new ProjectTrust(environment: name => _environment.GetValueOrDefault(name)).Trust(ProjectFile.Load(folder ?? _root)!);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private MoltarContext Resolve(ContextRequest? request = null, string? from = null) =>
        new ContextResolver(name => _environment.GetValueOrDefault(name))
            .Resolve((request ?? new ContextRequest()) with { WorkingDirectory = from ?? _root });

    private string Sub(string relative)
    {
        string path = Path.Combine(_root, relative);
        Directory.CreateDirectory(path);
        return path;
    }

    [Fact]
    public void FindsTheProjectFileFromASubdirectory()
    {
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), "@{ Project = 'shop'; Region = 'eu-west-1'; User = 'deploy' }");
        Trust();
        var context = Resolve(from: Sub("src/deep/er"));
        Assert.Equal("shop", context.Project);
        Assert.Equal("deploy", context.User);
        Assert.Equal(_root, context.ProjectDirectory);
        Assert.Contains(context.Settings, s => s.Name == "Project" && s.Source == SettingSource.ProjectFile && s.SourceText == "ProjectFile " + s.SourceDetail);
    }

    [Fact]
    public void ParameterBeatsEnvironmentBeatsProjectFileBeatsDefault()
    {
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), "@{ Project = 'from-file'; Region = 'file-region'; User = 'file-user'; ThrottleLimit = 4 }");
        Trust();
        _environment["MOLTAR_PROJECT"] = "from-env";
        _environment["MOLTAR_REGION"] = "env-region";
        var context = Resolve(new ContextRequest { Project = "from-parameter" });

        Assert.Equal("from-parameter", context.Project);
        Assert.Equal("env-region", context.Region);
        Assert.Equal("file-user", context.User);
        Assert.Equal(4, context.ThrottleLimit);
        Assert.Equal(StrictHostKeyChecking.AcceptNew, context.StrictHostKeyChecking);
        Assert.Equal(SettingSource.Parameter, context.Settings.Single(s => s.Name == "Project").Source);
        var region = context.Settings.Single(s => s.Name == "Region");
        Assert.Equal((SettingSource.Environment, "MOLTAR_REGION", "Environment MOLTAR_REGION"), (region.Source, region.SourceDetail, region.SourceText));
        Assert.Equal(SettingSource.Default, context.Settings.Single(s => s.Name == "StrictHostKeyChecking").Source);
    }

    [Fact]
    public void TransportResolvesParameterThenEnvironmentThenTrustedProjectFileThenSsh()
    {
        Assert.Equal(Transport.Ssh, Resolve().Transport);
        string file = Path.Combine(_root, ".moltar.psd1");
        File.WriteAllText(file, "@{ Project = 'shop'; Transport = 'ssm' }");
        var untrusted = Resolve();
        Assert.Equal(Transport.Ssh, untrusted.Transport);
        Assert.Contains("Transport", untrusted.IgnoredProjectSettings);
        Trust();
        var trusted = Resolve();
        Assert.Equal(Transport.Ssm, trusted.Transport);
        Assert.Equal(SettingSource.ProjectFile, trusted.Settings.Single(s => s.Name == "Transport").Source);
        _environment["MOLTAR_TRANSPORT"] = "Ssh";
        Assert.Equal(Transport.Ssh, Resolve().Transport);
        Assert.Equal(Transport.Ssm, Resolve(new ContextRequest { Transport = Transport.Ssm }).Transport);
        _environment["MOLTAR_TRANSPORT"] = "telnet";
        var error = Assert.Throws<FormatException>(() => Resolve());
        Assert.Contains("MOLTAR_TRANSPORT", error.Message);
    }

    [Fact]
    public void AUserThatIsNotAUserNameIsRefusedNamingWhereItCameFrom()
    {
        string file = Path.Combine(_root, ".moltar.psd1");
        File.WriteAllText(file, "@{ Project = 'shop'; User = '-oProxyCommand=touch /tmp/moltar-pwned' }");
        Trust();
        var fromFile = Assert.Throws<FormatException>(() => Resolve());
        Assert.Contains(file, fromFile.Message);
        Assert.Contains("'-oProxyCommand=touch /tmp/moltar-pwned' is not a user name", fromFile.Message);

        _environment["MOLTAR_USER"] = "a;b";
        var fromEnvironment = Assert.Throws<FormatException>(() => Resolve());
        Assert.StartsWith("Environment MOLTAR_USER: User 'a;b' is not a user name", fromEnvironment.Message);
    }

    [Fact]
    public void DotfilesOfTheOriginalToolWork()
    {
        File.WriteAllText(Path.Combine(_root, ".project-name"), "legacy-shop\n");
        File.WriteAllText(Path.Combine(_root, ".package-names"), "app-web  app-worker\n");
        var context = Resolve(from: Sub("a"));
        Assert.Equal("legacy-shop", context.Project);
        Assert.Equal(new[] { "app-web", "app-worker" }, context.Packages);
    }

    [Fact]
    public void TheDataFileWinsOverDotfilesInTheSameFolder()
    {
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), "@{ Project = 'new' }");
        File.WriteAllText(Path.Combine(_root, ".moltar-project"), "old");
        File.WriteAllText(Path.Combine(_root, ".moltar-packages"), "pkg");
        var context = Resolve();
        Assert.Equal("new", context.Project);
        Assert.Equal(new[] { "pkg" }, context.Packages);
    }

    [Fact]
    public void TheNearestProjectFileWins()
    {
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), "@{ Project = 'outer' }");
        string inner = Sub("inner");
        File.WriteAllText(Path.Combine(inner, ".moltar-project"), "inner");
        Assert.Equal("inner", Resolve(from: Sub("inner/x")).Project);
    }

    [Fact]
    public void TagNamesRenameRoles()
    {
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), "@{ TagNames = @{ Project = 'App'; Cluster = 'Role' } }");
        var context = Resolve();
        Assert.Equal("App", context.TagName("Project"));
        Assert.Equal("Role", context.TagName("Cluster"));
        Assert.Equal("Environment", context.TagName("Environment"));
    }

    [Theory]
    [InlineData("@{ Projekt = 'typo' }", "'Projekt' is not a project file setting")]
    [InlineData("@{ Port = 'abc' }", "'abc' is not a TCP port")]
    [InlineData("@{ AddressType = 'Elastic' }", "not one of Auto, Public, Private")]
    [InlineData("@{ TagNames = @{ Team = 'Owner' } }", "TagNames has 'Team'")]
    [InlineData("@{ ThrottleLimit = 0 }", "not a positive whole number")]
    [InlineData("@{ ConnectionIdleSeconds = -1 }", "not a number of seconds from 0")]
    [InlineData("@{ ConnectionIdleSeconds = 86401 }", "not a number of seconds from 0")]
    public void BadProjectFilesSayWhatIsWrong(string text, string expected)
    {
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), text);
        var error = Assert.Throws<FormatException>(() => Resolve());
        Assert.Contains(expected, error.Message);
        Assert.Contains(".moltar.psd1", error.Message);
    }

    [Fact]
    public void ConnectionIdleSecondsComesFromTheParameterTheEnvironmentAnUntrustedProjectFileOrTheDefault()
    {
        Assert.Equal(60, Resolve().ConnectionIdleSeconds);
        Assert.Equal(SettingSource.Default, Resolve().Settings.Single(s => s.Name == "ConnectionIdleSeconds").Source);

        // Harmless (how long connections stay open, not where they go): honoured from a project file not trusted yet.
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), "@{ Project = 'shop'; ConnectionIdleSeconds = 0 }");
        Assert.Equal(0, Resolve().ConnectionIdleSeconds);
        Assert.Equal(SettingSource.ProjectFile, Resolve().Settings.Single(s => s.Name == "ConnectionIdleSeconds").Source);

        _environment["MOLTAR_CONNECTION_IDLE_SECONDS"] = "300";
        Assert.Equal(300, Resolve().ConnectionIdleSeconds);
        Assert.Equal(5, Resolve(new ContextRequest { ConnectionIdleSeconds = 5 }).ConnectionIdleSeconds);

        _environment["MOLTAR_CONNECTION_IDLE_SECONDS"] = "soon";
        var error = Assert.Throws<FormatException>(() => Resolve());
        Assert.Contains("MOLTAR_CONNECTION_IDLE_SECONDS", error.Message);
        Assert.Contains("'soon' is not a number of seconds from 0", error.Message);
    }

    [Fact]
    public void BadEnvironmentValuesNameTheVariable()
    {
        _environment["MOLTAR_PORT"] = "70000";
        var error = Assert.Throws<FormatException>(() => Resolve());
        Assert.Contains("MOLTAR_PORT", error.Message);
    }

    [Fact]
    public void RelativeKeyFilesAreTakenFromTheProjectFolder()
    {
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), "@{ KeyFile = 'keys/deploy_ed25519' }");
        Trust();
        Assert.Equal(Path.Combine(_root, "keys", "deploy_ed25519"), Resolve(from: Sub("x")).KeyFile);
    }

    [Fact]
    public void NoProjectFileMeansDefaultsOnly()
    {
        var context = Resolve(from: Sub("empty"));
        Assert.Null(context.ProjectFile);
        Assert.Null(context.Project);
        Assert.Equal(32, context.ThrottleLimit);
        Assert.Equal(AddressType.Auto, context.AddressType);
    }

    [Fact]
    public void AnUntrustedProjectFileChoosesNoEndpointKeyUserOrHostTrustAndOneWarningNamesThem()
    {
        string file = Path.Combine(_root, ".moltar.psd1");
        File.WriteAllText(file, "@{ Project = 'shop'; Region = 'eu-west-1'; EndpointUrl = 'https://attacker.example'; ProfileName = 'prod';" +
                                " User = 'root'; KeyFile = '~/.ssh/id_ed25519'; KnownHostsPath = '/dev/null'; JumpHost = 'evil.example'; StrictHostKeyChecking = 'No'; Transport = 'Ssm' }");
        var context = Resolve();
        Assert.Equal("NotTrusted", context.ProjectTrust);
        Assert.Equal(Transport.Ssh, context.Transport);
        // Project and Region are not about credentials or host trust: they stay.
        Assert.Equal("shop", context.Project);
        Assert.Equal("eu-west-1", context.Region);
        Assert.Null(context.EndpointUrl);
        Assert.Null(context.ProfileName);
        Assert.Null(context.User);
        Assert.Null(context.KeyFile);
        Assert.Null(context.KnownHostsPath);
        Assert.Null(context.JumpHost);
        Assert.Equal(StrictHostKeyChecking.AcceptNew, context.StrictHostKeyChecking);
        Assert.Equal(SettingSource.Default, context.Settings.Single(s => s.Name == "StrictHostKeyChecking").Source);
        Assert.Equal(ProjectFile.TrustedOnlyKeys.OrderBy(k => k), context.IgnoredProjectSettings.OrderBy(k => k));
        var warning = Assert.Single(context.Warnings);
        Assert.Contains(file, warning);
        Assert.Contains("EndpointUrl", warning);
        Assert.Contains("Approve-MoltarProject", warning);
    }

    [Fact]
    public void ATrustedProjectFileIsHonouredUntilAnyOfItsFilesChanges()
    {
        string file = Path.Combine(_root, ".moltar.psd1");
        File.WriteAllText(file, "@{ Project = 'shop'; EndpointUrl = 'http://127.0.0.1:1' }");
        Trust();
        var trusted = Resolve();
        Assert.Equal("Trusted", trusted.ProjectTrust);
        Assert.Equal("http://127.0.0.1:1", trusted.EndpointUrl);
        Assert.Empty(trusted.Warnings);

        File.WriteAllText(file, "@{ Project = 'shop'; EndpointUrl = 'https://attacker.example' }");
        var changed = Resolve();
        Assert.Equal("ChangedSinceTrusted", changed.ProjectTrust);
        Assert.Null(changed.EndpointUrl);
        Assert.Contains("has changed since you trusted it", Assert.Single(changed.Warnings));

        // A hook added after the approval is a change too.
        File.WriteAllText(file, "@{ Project = 'shop'; EndpointUrl = 'http://127.0.0.1:1' }");
        Assert.Equal("Trusted", Resolve().ProjectTrust);
        File.WriteAllText(Path.Combine(_root, ".moltar-after-deploy"), "#!/bin/sh\ntouch /tmp/pwned\n");
        Assert.Equal("ChangedSinceTrusted", Resolve().ProjectTrust);
    }

    [Fact]
    public void TheSearchStopsAtAFolderOthersCanWriteAndSaysWhatItIgnored()
    {
        if (OperatingSystem.IsWindows()) return;
        string shared = Sub("shared");
        File.WriteAllText(Path.Combine(shared, ".moltar-project"), "planted");
        File.SetUnixFileMode(shared, (UnixFileMode)Convert.ToInt32("777", 8));
        var context = Resolve(from: Sub("shared/mine"));
        Assert.Null(context.ProjectFile);
        Assert.Null(context.Project);
        Assert.Contains("is writable by others", Assert.Single(context.Warnings));

        File.SetUnixFileMode(shared, (UnixFileMode)Convert.ToInt32("755", 8));
        Assert.Equal("planted", Resolve(from: Sub("shared/mine")).Project);
    }

    [Fact]
    public void AProjectFileThatIsAFifoOrTooLargeIsRefusedWithAClearError()
    {
        if (OperatingSystem.IsWindows()) return;
        string fifo = Path.Combine(_root, ".moltar.psd1");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", fifo)) mkfifo.WaitForExit();
        var error = Assert.Throws<FormatException>(() => Resolve());
        Assert.Contains("is a FIFO (named pipe), not a regular file", error.Message);
        File.Delete(fifo);

        File.WriteAllText(fifo, "@{ Project = 'x' }" + new string(' ', (int)ProjectFile.SizeLimit));
        Assert.Contains("is larger than", Assert.Throws<FormatException>(() => Resolve()).Message);
    }

    [Fact]
    public void ATrustFileOthersCanWriteTrustsNothing()
    {
        if (OperatingSystem.IsWindows()) return;
        File.WriteAllText(Path.Combine(_root, ".moltar.psd1"), "@{ Project = 'shop'; EndpointUrl = 'http://127.0.0.1:1' }");
        Trust();
        var trustFile = new ProjectTrust(environment: name => _environment.GetValueOrDefault(name)).Path;
        File.SetUnixFileMode(trustFile, (UnixFileMode)Convert.ToInt32("666", 8));
        var error = Assert.Throws<MoltarException>(() => Resolve());
        Assert.Equal("UntrustedTrustFile", error.ErrorId);
    }
}
