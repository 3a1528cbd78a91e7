using Moltar.Engine.Deploy;
using Xunit;

namespace Moltar.Engine.Tests.Deploy;

public class BatchTests
{
    [Theory]
    [InlineData("2", 6, 2)]
    [InlineData("10", 6, 6)]
    [InlineData("1", 6, 1)]
    [InlineData("25%", 6, 2)]    // 1.5 rounds up
    [InlineData("50%", 6, 3)]
    [InlineData("34%", 6, 3)]    // 2.04 rounds up
    [InlineData("1%", 6, 1)]     // at least one host
    [InlineData("100%", 6, 6)]
    [InlineData("33.3333%", 3, 1)]
    [InlineData(" 20 % ", 10, 2)]
    public void SizeIsACountOrAPercentageRoundedUp(string text, int total, int size) =>
        Assert.Equal(size, BatchSize.Parse(text).For(total));

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("0%")]
    [InlineData("101%")]
    [InlineData("half")]
    [InlineData("2 hosts")]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("1e3")]
    public void ASizeThatIsNeitherIsAnError(string? text)
    {
        var e = Assert.Throws<MoltarException>(() => BatchSize.Parse(text));
        Assert.Equal(DeployErrorIds.InvalidBatchSize, e.ErrorId);
        Assert.Contains("25%", e.Message);
    }

    [Fact]
    public void AllIsOneBatch()
    {
        Assert.Equal(7, BatchSize.All.For(7));
        Assert.Single(DeployBatches.Split(Enumerable.Range(1, 7).ToList(), BatchSize.All.For(7)));
    }

    [Fact]
    public void SplitKeepsTheOrderAndTheLastBatchTakesTheRest()
    {
        var batches = DeployBatches.Split(new[] { "a", "b", "c", "d", "e" }, 2);
        Assert.Equal(new[] { new[] { "a", "b" }, new[] { "c", "d" }, new[] { "e" } }, batches.Select(b => b.ToArray()));
        Assert.Empty(DeployBatches.Split(Array.Empty<string>(), 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => DeployBatches.Split(new[] { "a" }, 0));
    }

    [Theory]
    [InlineData(0, 0, true)]
    [InlineData(1, 0, false)]   // -MaxFailures 0: the first failure stops new batches
    [InlineData(2, 2, true)]
    [InlineData(3, 2, false)]
    public void NewBatchesStartOnlyWhileFailuresDoNotExceedTheLimit(int failures, int max, bool next) =>
        Assert.Equal(next, DeployBatches.MayStartNext(failures, max));

    [Fact]
    public void ABatchLoopStopsAfterTheFirstBatchThatExceedsTheLimit()
    {
        // Six hosts in batches of two; the third host fails; -MaxFailures 0.
        var hosts = new[] { "h1", "h2", "h3", "h4", "h5", "h6" };
        var failing = new HashSet<string> { "h3" };
        var ran = new List<string>();
        int failures = 0;
        foreach (var batch in DeployBatches.Split(hosts, BatchSize.Parse("2").For(hosts.Length)))
        {
            if (ran.Count > 0 && !DeployBatches.MayStartNext(failures, 0)) break;
            ran.AddRange(batch);                       // the whole batch runs, failing host or not
            failures += batch.Count(failing.Contains);
        }
        Assert.Equal(new[] { "h1", "h2", "h3", "h4" }, ran);
    }
}

public class DeployVerificationTests
{
    private static readonly string[] Packages = { "app-web", "app-worker" };

    [Fact]
    public void ParsesDpkgQueryOutput()
    {
        var states = DeployVerification.ParseDpkgQuery(
            "app-web\t1.4.2\tinstall ok installed\n" +
            "app-worker:amd64\t1.4.1\tinstall ok half-configured\r\n" +
            "old-thing\t\tdeinstall ok config-files\n" +
            "garbage line\n\n");
        Assert.Equal(new DpkgPackageState("app-web", "1.4.2", "install ok installed"), states["app-web"]);
        Assert.Equal(new DpkgPackageState("app-worker", "1.4.1", "install ok half-configured"), states["app-worker"]);
        Assert.True(states["app-web"].IsInstalled);
        Assert.False(states["app-worker"].IsInstalled);
        Assert.False(states["old-thing"].IsInstalled);
        Assert.Equal(3, states.Count);
    }

    [Theory]
    [InlineData("install ok installed", true)]
    [InlineData("hold ok installed", true)]
    [InlineData("install ok half-configured", false)]
    [InlineData("install ok unpacked", false)]
    [InlineData("install reinstreq half-installed", false)]
    [InlineData("deinstall ok config-files", false)]
    [InlineData("purge ok not-installed", false)]
    [InlineData("install ok triggers-pending", false)]
    public void OnlyConfiguredPackagesCountAsInstalled(string status, bool installed) =>
        Assert.Equal(installed, new DpkgPackageState("p", "1.0", status).IsInstalled);

    [Fact]
    public void InstalledVersionsListsConfiguredPackagesOnly()
    {
        var states = DeployVerification.ParseDpkgQuery("app-web\t1.4.2\tinstall ok installed\napp-worker\t1.4.1\tinstall ok half-configured\n");
        var versions = DeployVerification.InstalledVersions(Packages, states);
        Assert.Equal(new Dictionary<string, string> { ["app-web"] = "1.4.2" }, versions);
    }

    [Fact]
    public void ParsesCandidatesFromAptCachePolicy()
    {
        const string policy = """
            app-web:
              Installed: 1.4.1
              Candidate: 1.4.2
              Version table:
                 1.4.2 500
                    500 file:/srv/apt ./ Packages
             *** 1.4.1 100
                    100 /var/lib/dpkg/status
            app-worker:amd64:
              Installed: (none)
              Candidate: (none)
              Version table:
            """;
        var candidates = DeployVerification.ParseCandidates(policy);
        Assert.Equal("1.4.2", candidates["app-web"]);
        Assert.True(candidates.ContainsKey("app-worker"));
        Assert.Null(candidates["app-worker"]);
        Assert.False(candidates.ContainsKey("unknown"));
    }

    [Fact]
    public void ExpectedIsThePinnedVersionOrTheCandidate()
    {
        var pinned = DeployRequest.Create(Packages, "2:1.0-1");
        Assert.Empty(DeployVerification.Expected(pinned, null, out var expected));
        Assert.Equal("2:1.0-1", expected["app-worker"]);

        var unpinned = DeployRequest.Create(Packages, null);
        var problems = DeployVerification.Expected(unpinned, new Dictionary<string, string?> { ["app-web"] = "1.4.2", ["app-worker"] = null }, out expected);
        Assert.Equal("1.4.2", expected["app-web"]);
        Assert.Equal(new[] { "app-worker has no installable version (apt-cache policy: Candidate: (none))" }, problems);

        problems = DeployVerification.Expected(unpinned, new Dictionary<string, string?>(), out _);
        Assert.Equal(2, problems.Count);
        Assert.Contains("app-web is not in any APT source", problems[0]);
    }

    [Fact]
    public void ProblemsNameEveryPackageThatIsNotTheExpectedVersionInstalled()
    {
        var expected = new Dictionary<string, string> { ["app-web"] = "1.4.2", ["app-worker"] = "1.4.2" };
        Assert.Empty(DeployVerification.Problems(Packages, expected, DeployVerification.ParseDpkgQuery(
            "app-web\t1.4.2\tinstall ok installed\napp-worker\t1.4.2\thold ok installed\n")));

        var problems = DeployVerification.Problems(Packages, expected, DeployVerification.ParseDpkgQuery("app-web\t1.4.1\tinstall ok installed\n"));
        Assert.Equal(new[] { "app-web is 1.4.1, expected 1.4.2", "app-worker is not installed (dpkg does not know it); expected 1.4.2" }, problems);

        problems = DeployVerification.Problems(Packages, expected, DeployVerification.ParseDpkgQuery(
            "app-web\t1.4.2\tinstall ok half-configured\napp-worker\t\tdeinstall ok config-files\n"));
        Assert.Equal(new[]
        {
            "app-web 1.4.2 is 'install ok half-configured', not 'install ok installed'",
            "app-worker is 'deinstall ok config-files', not 'install ok installed'",
        }, problems);
    }
}

public class DeployHookTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("moltar-hook-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Script(string name, string body, bool executable = true)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, body.Replace("\r\n", "\n"));
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, executable ? (UnixFileMode)0b111_101_101 : (UnixFileMode)0b110_100_100);
        return path;
    }

    [Fact]
    public void FindsHookFilesInTheProjectDirectoryOnly()
    {
        Assert.Null(DeployHook.Find(null, DeployHook.AfterDeployFile));
        Assert.Null(DeployHook.Find(_dir, DeployHook.AfterDeployFile));
        string path = Script(DeployHook.FailedDeployFile, "#!/bin/sh\n");
        Assert.Equal(path, DeployHook.Find(_dir, DeployHook.FailedDeployFile));
    }

    [Fact]
    public async Task RunsWithTheVariablesInTheProjectDirectoryAndStreamsItsOutput()
    {
        if (OperatingSystem.IsWindows()) return;
        string path = Script(DeployHook.FailedDeployFile,
            "#!/bin/sh\necho \"env=$ENV packages=$PACKAGES version=$VERSION failed=$FAILED_HOSTS not=$NOT_STARTED_HOSTS pwd=$(pwd)\"\necho oops >&2\nexit 3\n");
        var lines = new List<(string, bool)>();
        var variables = DeployHook.Variables("production", new[] { "app-web", "app-worker" }, null, new[] { "web-1", "10.0.0.7" }, new[] { "web-3" });
        int exit = await DeployHook.RunAsync(path, _dir, variables, (line, err) => { lock (lines) lines.Add((line, err)); });
        Assert.Equal(3, exit);
        Assert.Contains(($"env=production packages=app-web app-worker version= failed=web-1 10.0.0.7 not=web-3 pwd={_dir}", false), lines);
        Assert.Contains(("oops", true), lines);
    }

    [Fact]
    public async Task AHookThatIsNotExecutableIsAHookFailure()
    {
        if (OperatingSystem.IsWindows()) return;
        string path = Script(DeployHook.AfterDeployFile, "#!/bin/sh\nexit 0\n", executable: false);
        var e = await Assert.ThrowsAsync<MoltarException>(() => DeployHook.RunAsync(path, _dir, new Dictionary<string, string>(), (_, _) => { }));
        Assert.Equal(DeployErrorIds.HookFailed, e.ErrorId);
        Assert.Contains("chmod +x", e.Message);
    }

    [Fact]
    public async Task AHookThatCannotStartIsAHookFailure()
    {
        if (OperatingSystem.IsWindows()) return;
        string path = Script(DeployHook.AfterDeployFile, "echo no interpreter line\n");
        var e = await Assert.ThrowsAsync<MoltarException>(() => DeployHook.RunAsync(path, _dir, new Dictionary<string, string>(), (_, _) => { }));
        Assert.Equal(DeployErrorIds.HookFailed, e.ErrorId);
        Assert.Contains("could not be started", e.Message);
    }

    [Fact]
    public void CancellingKillsTheHook()
    {
        if (OperatingSystem.IsWindows()) return;
        string pidFile = Path.Combine(_dir, "hook.pid");
        // The hook outlasts the hang guard: only killing it ends the run, and the hook's process, in time.
        string path = Script(DeployHook.AfterDeployFile, $"#!/bin/sh\necho $$ > '{pidFile}'\nexec sleep {HangGuard.NeverWaitedSeconds}\n");
        using var cts = new CancellationTokenSource();
        var run = Assert.ThrowsAnyAsync<OperationCanceledException>(() => DeployHook.RunAsync(path, _dir, new Dictionary<string, string>(), (_, _) => { }, cts.Token));
        HangGuard.Until(() => File.Exists(pidFile) && File.ReadAllText(pidFile).EndsWith('\n'), "the hook starting");
        string proc = $"/proc/{File.ReadAllText(pidFile).Trim()}";
        cts.Cancel();
        HangGuard.Wait(run, "a cancelled hook");
        HangGuard.Until(() => Ended(proc), "the hook's process ending");

        static bool Ended(string proc)
        {
            try
            {
                return File.ReadAllText(Path.Combine(proc, "stat")).Contains(") Z ", StringComparison.Ordinal); // a zombie has ended
            }
            catch (IOException)
            {
                return true; // gone
            }
        }
    }
}
