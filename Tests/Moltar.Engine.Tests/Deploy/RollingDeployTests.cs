using Moltar.Engine.Deploy;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Deploy;

/// <summary>
/// The rolling deploy's orchestration: batches, the -MaxFailures stop, not-started hosts, result order, counts and
/// the hook choice. Batches "run" here by handing back outcomes the way the fan-out does (each host's Completed
/// event, in completion order); the SSH side of a deploy is tested against real hosts in Invoke-MoltarDeploy.Tests.ps1.
/// </summary>
public class RollingDeployTests
{
    private static readonly DeployRequest Request = DeployRequest.Create(new[] { "moltar-test-app" }, "1.1.0");

    private static List<SshTarget> Hosts(int count) =>
        Enumerable.Range(1, count).Select(i => new SshTarget($"127.0.21.{i}", $"i-{i:x17}", $"web{i}")).ToList();

    private static DeployOutcome Ok() => new()
    {
        InstalledVersions = new Dictionary<string, string> { ["moltar-test-app"] = "1.1.0" },
        Output = "$ apt-get install\n",
        StartTime = DateTimeOffset.Now,
        Duration = TimeSpan.FromSeconds(2),
    };

    private static DeployOutcome Broken(string errorId = DeployErrorIds.DeployFailed) => new()
    {
        Failure = new MoltarFailure(errorId, errorId == SshErrorIds.Timeout ? FailureCategory.OperationTimeout : FailureCategory.InvalidResult,
            "web: apt-get install failed (exit 100): E: broken", "127.0.21.9"),
        Error = "web: apt-get install failed (exit 100): E: broken\nE: broken",
        StartTime = DateTimeOffset.Now,
        Duration = TimeSpan.FromSeconds(1),
    };

    /// <summary>What happens on each host: an outcome, or the exception that stopped it (as the fan-out reports a host it could not reach).</summary>
    private sealed class Script
    {
        public Dictionary<string, DeployOutcome> Outcomes { get; } = new();
        public Dictionary<string, Exception> Errors { get; } = new();
        public List<string> Calls { get; } = new();
        public List<int> RanBatches { get; } = new();
        public List<DeployedHost> Written { get; } = new();
        public List<(int Batch, List<string> Failed)> BatchFailures { get; } = new();
        public Func<DeployBatch, bool> Approve { get; set; } = _ => true;

        public RollingDeploySteps Steps() => new()
        {
            Approve = batch => { Calls.Add($"approve {batch.Number}"); return Approve(batch); },
            BetweenBatches = batch => Calls.Add($"pause before {batch.Number}"),
            Stopping = warning => Calls.Add("stop: " + warning),
            RunBatch = (batch, completed) =>
            {
                RanBatches.Add(batch.Number);
                // The last host of a batch finishes first: results come in completion order, not selection order.
                for (int i = batch.Targets.Count - 1; i >= 0; i--)
                {
                    var target = batch.Targets[i];
                    Errors.TryGetValue(target.Name!, out var error);
                    completed(new FanOutEvent<SshTarget, DeployOutcome>
                    {
                        Kind = FanOutEventKind.Completed,
                        Item = target,
                        HasItem = true,
                        Index = i,
                        Error = error,
                        Result = error is null ? Outcomes.GetValueOrDefault(target.Name!) ?? Ok() : null,
                        Duration = TimeSpan.FromSeconds(3),
                    });
                }
            },
            HostFinished = Written.Add,
            BatchFinished = (batch, failed) => BatchFailures.Add((batch.Number, failed.Select(h => h.Target.Name!).ToList())),
            Finished = report => Calls.Add($"summary {report.Succeeded}/{report.Failed}/{report.NotStarted}"),
            RunHook = (hook, _) => Calls.Add($"hook {hook}"),
        };
    }

    [Fact]
    public void ResultsComeBackInSelectionOrderWithTheirBatchAndTheAfterDeployHook()
    {
        var script = new Script();
        var report = new RollingDeploy(Request, Hosts(5), batchSize: 2, maxFailures: 0).Run(script.Steps())!;

        Assert.Equal(new[] { 1, 2, 3 }, script.RanBatches);
        Assert.Equal(new[] { "web1", "web2", "web3", "web4", "web5" }, report.Results.Select(r => r.Name));
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, report.Hosts.Select(h => h.Position));
        Assert.Equal(new[] { 1, 1, 2, 2, 3 }, report.Results.Select(r => r.Batch));
        // Written as they completed: the second host of the first batch first.
        Assert.Equal(new[] { "web2", "web1", "web4", "web3", "web5" }, script.Written.Select(h => h.Result.Name));
        Assert.All(report.Results, r =>
        {
            Assert.True(r.Succeeded);
            Assert.Equal(DeployStatus.Succeeded, r.Status);
            Assert.Null(r.ErrorId);
            Assert.Equal("1.1.0", r.Version);
            Assert.Equal(new[] { "moltar-test-app" }, r.Packages);
            Assert.Equal("1.1.0", r.InstalledVersions["moltar-test-app"]);
            Assert.Equal(TimeSpan.FromSeconds(2), r.Duration);
        });
        Assert.Equal((5, 0, 0, 0, 3), (report.Succeeded, report.Failed, report.NotStarted, report.Declined, report.BatchCount));
        Assert.Equal(DeployHookKind.AfterDeploy, report.Hook);
        Assert.Equal(new[] { "approve 1", "pause before 2", "approve 2", "pause before 3", "approve 3", "summary 5/0/0", "hook AfterDeploy" }, script.Calls);
        Assert.All(script.BatchFailures, b => Assert.Empty(b.Failed));
    }

    [Fact]
    public void MoreFailuresThanMaxFailuresStopNewBatchesAndTheRestAreNotStarted()
    {
        var script = new Script();
        script.Outcomes["web2"] = Broken();
        var report = new RollingDeploy(Request, Hosts(6), batchSize: 2, maxFailures: 0).Run(script.Steps())!;

        // The failing batch runs to its end; no batch after it starts.
        Assert.Equal(new[] { 1 }, script.RanBatches);
        Assert.Contains("stop: 1 host(s) failed, more than -MaxFailures 0: batches 2 to 3 (4 hosts) are not started.", script.Calls);
        Assert.DoesNotContain(script.Calls, c => c.StartsWith("pause", StringComparison.Ordinal));
        Assert.Equal(new[] { "web1", "web2", "web3", "web4", "web5", "web6" }, report.Results.Select(r => r.Name));
        Assert.Equal(new[] { DeployStatus.Succeeded, DeployStatus.Failed, DeployStatus.NotStarted, DeployStatus.NotStarted, DeployStatus.NotStarted, DeployStatus.NotStarted },
                     report.Results.Select(r => r.Status));
        Assert.Equal(new[] { 1, 1, 2, 2, 3, 3 }, report.Results.Select(r => r.Batch));
        var notStarted = report.Hosts.Where(h => h.Result.Status == DeployStatus.NotStarted).ToList();
        Assert.All(notStarted, h =>
        {
            Assert.Equal(DeployErrorIds.NotStarted, h.Result.ErrorId);
            Assert.False(h.Result.Succeeded);
            Assert.Null(h.Failure); // not an error of its own: the failures that stopped the deploy are
            Assert.Contains("-MaxFailures", h.Result.Error);
        });
        var failed = report.Hosts[1];
        Assert.Equal(DeployErrorIds.DeployFailed, failed.Result.ErrorId);
        Assert.Same(script.Outcomes["web2"].Failure, failed.Failure);
        Assert.Equal(Broken().Error, failed.Result.Error);
        Assert.Equal((1, 1, 4), (report.Succeeded, report.Failed, report.NotStarted));
        Assert.Equal(DeployHookKind.FailedDeploy, report.Hook);
        Assert.Equal(new[] { "web2" }, report.FailedHosts);
        Assert.Equal(new[] { "web3", "web4", "web5", "web6" }, report.NotStartedHosts);
        Assert.Equal(new[] { (1, new List<string> { "web2" }) }, script.BatchFailures.Select(b => (b.Batch, b.Failed)));
        // Not-started results are handed out too (after the batches that ran).
        Assert.Equal(6, script.Written.Count);
        Assert.Equal("hook FailedDeploy", script.Calls[^1]);
    }

    [Fact]
    public void FailuresUpToMaxFailuresLetTheNextBatchesStart()
    {
        var script = new Script();
        script.Outcomes["web1"] = Broken();
        script.Outcomes["web3"] = Broken(DeployErrorIds.VerifyFailed);
        var report = new RollingDeploy(Request, Hosts(4), batchSize: 1, maxFailures: 1).Run(script.Steps())!;

        // web1 fails (1 failure: batch 2 may start), web3 fails (2 > 1): batch 4 does not start.
        Assert.Equal(new[] { 1, 2, 3 }, script.RanBatches);
        Assert.Equal(new[] { DeployStatus.Failed, DeployStatus.Succeeded, DeployStatus.Failed, DeployStatus.NotStarted }, report.Results.Select(r => r.Status));
        Assert.Equal(DeployErrorIds.VerifyFailed, report.Results[2].ErrorId);
        Assert.Contains("stop: 2 host(s) failed, more than -MaxFailures 1: batches 4 to 4 (1 hosts) are not started.", script.Calls);
    }

    [Fact]
    public void AHostThatCouldNotBeReachedFailsWithTheEnginesErrorIdAndAConnectionFailureKeepsItsOwn()
    {
        var script = new Script();
        script.Errors["web1"] = new SshFailure(SshErrorIds.AuthenticationFailed, "web1: no key was accepted", "127.0.21.1");
        script.Outcomes["web2"] = Broken(SshErrorIds.Timeout);
        var report = new RollingDeploy(Request, Hosts(3), batchSize: 3, maxFailures: 5).Run(script.Steps())!;

        var unreachable = report.Hosts[0];
        Assert.Equal(DeployStatus.Failed, unreachable.Result.Status);
        Assert.Equal(SshErrorIds.AuthenticationFailed, unreachable.Result.ErrorId);
        Assert.Equal("web1: no key was accepted", unreachable.Result.Error);
        Assert.Equal(TimeSpan.FromSeconds(3), unreachable.Result.Duration);
        Assert.Equal((SshErrorIds.AuthenticationFailed, FailureCategory.AuthenticationError, "127.0.21.1"),
                     (unreachable.Failure!.ErrorId, unreachable.Failure.Category, unreachable.Failure.Host));
        Assert.Same(script.Errors["web1"], unreachable.Failure.Exception);

        var timedOut = report.Hosts[1].Failure!;
        Assert.Equal((SshErrorIds.Timeout, FailureCategory.OperationTimeout), (timedOut.ErrorId, timedOut.Category));
        Assert.Equal((1, 2), (report.Succeeded, report.Failed));
        Assert.Equal(DeployHookKind.FailedDeploy, report.Hook);
    }

    [Fact]
    public void ABugOnOneHostIsUnexpectedWithItsExceptionNotAConnectionError()
    {
        var script = new Script();
        var bug = new NullReferenceException("Object reference not set to an instance of an object.");
        script.Errors["web2"] = bug;
        var report = new RollingDeploy(Request, Hosts(2), batchSize: 2, maxFailures: 0).Run(script.Steps())!;

        var host = report.Hosts[1];
        Assert.Equal(DeployStatus.Failed, host.Result.Status);
        Assert.Equal(MoltarErrorIds.Unexpected, host.Result.ErrorId);
        Assert.Equal(MoltarErrorIds.Unexpected, host.Failure!.ErrorId);
        Assert.Equal(FailureCategory.NotSpecified, host.Failure.Category);
        Assert.Same(bug, host.Failure.Exception);
        Assert.Contains("bug in Moltar", host.Failure.Message);
        Assert.Equal(DeployHookKind.FailedDeploy, report.Hook);
    }

    [Fact]
    public void DeclinedBatchesAreCountedAndNoHookRunsWhenNotEveryHostWasDeployed()
    {
        var script = new Script { Approve = batch => batch.Number != 2 };
        var report = new RollingDeploy(Request, Hosts(5), batchSize: 2, maxFailures: 0).Run(script.Steps())!;

        Assert.Equal(new[] { 1, 3 }, script.RanBatches);
        Assert.Equal(new[] { "web1", "web2", "web5" }, report.Results.Select(r => r.Name));
        Assert.Equal((3, 0, 0, 2), (report.Succeeded, report.Failed, report.NotStarted, report.Declined));
        Assert.Equal(DeployHookKind.None, report.Hook);
        Assert.Equal("hook None", script.Calls[^1]);
        Assert.Equal("Invoke-MoltarDeploy moltar-test-app=1.1.0 to staging/web: 3 succeeded, 0 failed, 0 not started, 2 declined (3 batches, 1.5 s).",
                     report.Summary(Request.Describe(), "staging/web", TimeSpan.FromSeconds(1.5)));
    }

    [Fact]
    public void NothingIsReportedWhenNoBatchRan()
    {
        var script = new Script { Approve = _ => false };
        var report = new RollingDeploy(Request, Hosts(3), batchSize: 1, maxFailures: 0).Run(script.Steps());

        Assert.Null(report);
        Assert.Empty(script.RanBatches);
        Assert.Empty(script.Written);
        // Declined batches are not a pause's reason either: only a batch that ran is waited after.
        Assert.Equal(new[] { "approve 1", "approve 2", "approve 3" }, script.Calls);
    }

    [Fact]
    public void TheSummaryNamesOneBatchInTheSingular()
    {
        var report = new RollingDeploy(Request, Hosts(2), batchSize: 2, maxFailures: 0).Run(new Script().Steps())!;
        Assert.Equal("Invoke-MoltarDeploy moltar-test-app=1.1.0: 2 succeeded, 0 failed, 0 not started (1 batch, 0.0 s).",
                     report.Summary(Request.Describe(), null, TimeSpan.Zero));
    }
}
