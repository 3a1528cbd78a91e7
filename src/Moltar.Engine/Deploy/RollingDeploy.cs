using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;

namespace Moltar.Engine.Deploy;

/// <summary>One batch of a rolling deploy: its hosts in selection order, where they start in that order, and its number.</summary>
public sealed record DeployBatch(int Number, int BatchCount, IReadOnlyList<SshTarget> Targets, int FirstPosition)
{
    /// <summary>The batch's index from 0.</summary>
    public int Index => Number - 1;
}

/// <summary>One host's end in a rolling deploy: its result, its position among the selected hosts, and the failure (null on success).</summary>
public sealed record DeployedHost(MoltarDeployResult Result, int Position, SshTarget Target, MoltarFailure? Failure);

/// <summary>Which of the project's hooks (file and script block) runs at the end of a deploy.</summary>
public enum DeployHookKind
{
    /// <summary>Nothing failed, but not every host was deployed (declined or not started): no hook runs.</summary>
    None,
    /// <summary>Every host succeeded: .moltar-after-deploy and -AfterDeploy.</summary>
    AfterDeploy,
    /// <summary>Some host failed: .moltar-failed-deploy and -OnFailure.</summary>
    FailedDeploy,
}

/// <summary>
/// What a rolling deploy asks of its caller, each on the thread that called <see cref="RollingDeploy.Run"/> (the
/// pipeline thread for a cmdlet: it may prompt, write and run script blocks there).
/// </summary>
public sealed class RollingDeploySteps
{
    /// <summary>Whether a batch may run (ShouldProcess); false declines it: its hosts are counted as declined.</summary>
    public required Func<DeployBatch, bool> Approve { get; init; }
    /// <summary>Runs one batch to its end (every host finishes), handing each host's Completed event to the action as it comes.</summary>
    public required Action<DeployBatch, Action<FanOutEvent<SshTarget, DeployOutcome>>> RunBatch { get; init; }
    /// <summary>Before each batch after one has run (the pause between batches).</summary>
    public Action<DeployBatch>? BetweenBatches { get; init; }
    /// <summary>No further batch starts (-MaxFailures exceeded): the warning that says so.</summary>
    public Action<string>? Stopping { get; init; }
    /// <summary>A host's result as soon as it is known: completed (in completion order), or not started.</summary>
    public Action<DeployedHost>? HostFinished { get; init; }
    /// <summary>A batch ran to its end: its failed hosts (none when all succeeded).</summary>
    public Action<DeployBatch, IReadOnlyList<DeployedHost>>? BatchFinished { get; init; }
    /// <summary>Every host has its result: the summary, before the hook runs.</summary>
    public Action<RollingDeployReport>? Finished { get; init; }
    /// <summary>Runs the hook the deploy's outcome calls for (None: say why none runs).</summary>
    public Action<DeployHookKind, RollingDeployReport>? RunHook { get; init; }
}

/// <summary>The end of a rolling deploy: every host's result in selection order, the counts, and the hook its outcome calls for.</summary>
public sealed class RollingDeployReport
{
    internal RollingDeployReport(IReadOnlyList<DeployedHost> hosts, int declined, int batchCount)
    {
        Hosts = hosts;
        Results = hosts.Select(h => h.Result).ToArray();
        Declined = declined;
        BatchCount = batchCount;
        Succeeded = Results.Count(r => r.Status == DeployStatus.Succeeded);
        Failed = Results.Count(r => r.Status == DeployStatus.Failed);
        NotStarted = Results.Count(r => r.Status == DeployStatus.NotStarted);
        Hook = Failed > 0 ? DeployHookKind.FailedDeploy
            : Declined == 0 && Results.Count > 0 && Results.All(r => r.Succeeded) ? DeployHookKind.AfterDeploy
            : DeployHookKind.None;
    }

    /// <summary>Every host that ran or was not started, in the order the hosts were selected (whatever order they finished in).</summary>
    public IReadOnlyList<DeployedHost> Hosts { get; }
    public IReadOnlyList<MoltarDeployResult> Results { get; }
    public int Succeeded { get; }
    public int Failed { get; }
    public int NotStarted { get; }
    /// <summary>Hosts of batches the caller declined (-WhatIf, -Confirm answered no).</summary>
    public int Declined { get; }
    public int BatchCount { get; }
    public DeployHookKind Hook { get; }

    /// <summary>FAILED_HOSTS for a hook: each failed host's Name when it is a safe token, else its address, else its instance id.</summary>
    public IEnumerable<string> FailedHosts => Labels(DeployStatus.Failed);
    /// <summary>NOT_STARTED_HOSTS for a hook, listed as FailedHosts.</summary>
    public IEnumerable<string> NotStartedHosts => Labels(DeployStatus.NotStarted);

    /// <summary>The summary line: counts, batches and how long it took; <paramref name="where"/> is e.g. "staging/web" or null.</summary>
    public string Summary(string what, string? where, TimeSpan elapsed) =>
        $"Invoke-MoltarDeploy {what}{(where is null ? "" : " to " + where)}: {Succeeded} succeeded, {Failed} failed, {NotStarted} not started" +
        (Declined > 0 ? $", {Declined} declined" : "") +
        $" ({BatchCount} batch{(BatchCount == 1 ? "" : "es")}, {elapsed.TotalSeconds:0.0} s).";

    private IEnumerable<string> Labels(DeployStatus status) =>
        Results.Where(r => r.Status == status).Select(r => DeployHook.HostToken(r.Name, r.Address, r.InstanceId) ?? "?");
}

/// <summary>
/// A deploy in batches: each batch runs to its end; once more hosts than -MaxFailures have failed no new batch
/// starts and the rest are reported NotStarted; results come back in the order the hosts were selected, with the
/// counts and the hook the outcome calls for. The caller runs each batch (the fan-out and its output) and the hooks.
/// </summary>
public sealed class RollingDeploy
{
    private readonly DeployRequest _request;
    private readonly int _maxFailures;

    /// <param name="batchSize">Hosts per batch (at least 1).</param>
    /// <param name="maxFailures">No new batch starts once more hosts than this have failed (0: after the first batch with a failure).</param>
    public RollingDeploy(DeployRequest request, IReadOnlyList<SshTarget> targets, int batchSize, int maxFailures)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentOutOfRangeException.ThrowIfNegative(maxFailures);
        _request = request;
        _maxFailures = maxFailures;
        var split = DeployBatches.Split(targets, batchSize);
        int position = 0;
        var batches = new List<DeployBatch>();
        foreach (var batch in split)
        {
            batches.Add(new DeployBatch(batches.Count + 1, split.Count, batch, position));
            position += batch.Count;
        }
        Batches = batches;
    }

    public IReadOnlyList<DeployBatch> Batches { get; }

    /// <summary>
    /// Runs the batches in order through <paramref name="steps"/>. Returns null when no batch ran (-WhatIf, or every
    /// batch declined): then nothing is reported, summarized or hooked. Otherwise the report, after Finished and RunHook.
    /// </summary>
    public RollingDeployReport? Run(RollingDeploySteps steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var hosts = new List<DeployedHost>();
        int failures = 0, declined = 0, ranBatches = 0;
        int firstNotStarted = Batches.Count;
        foreach (var batch in Batches)
        {
            if (ranBatches > 0)
            {
                if (!DeployBatches.MayStartNext(failures, _maxFailures))
                {
                    firstNotStarted = batch.Index;
                    steps.Stopping?.Invoke($"{failures} host(s) failed, more than -MaxFailures {_maxFailures}: batches {batch.Number} to {Batches.Count} " +
                                           $"({Batches.Skip(batch.Index).Sum(b => b.Targets.Count)} hosts) are not started.");
                    break;
                }
                steps.BetweenBatches?.Invoke(batch);
            }
            if (!steps.Approve(batch))
            {
                declined += batch.Targets.Count;
                continue;
            }
            ranBatches++;
            var batchFailures = new List<DeployedHost>();
            steps.RunBatch(batch, completed =>
            {
                var host = Completed(batch, completed);
                hosts.Add(host);
                steps.HostFinished?.Invoke(host);
                if (host.Failure is not null)
                    batchFailures.Add(host);
            });
            failures += batchFailures.Count;
            steps.BatchFinished?.Invoke(batch, batchFailures);
        }
        if (ranBatches == 0)
            return null;

        foreach (var batch in Batches.Skip(firstNotStarted))
        {
            for (int i = 0; i < batch.Targets.Count; i++)
            {
                var host = new DeployedHost(NotStartedResult(batch.Targets[i], batch.Number), batch.FirstPosition + i, batch.Targets[i], null);
                hosts.Add(host);
                steps.HostFinished?.Invoke(host);
            }
        }
        var report = new RollingDeployReport(hosts.OrderBy(h => h.Position).ToList(), declined, Batches.Count);
        steps.Finished?.Invoke(report);
        steps.RunHook?.Invoke(report.Hook, report);
        return report;
    }

    /// <summary>A host's result and failure from its Completed event: a DeployOutcome (which may be a failure), or the error that stopped it.</summary>
    private DeployedHost Completed(DeployBatch batch, FanOutEvent<SshTarget, DeployOutcome> completed)
    {
        var target = batch.Targets[completed.Index];
        int position = batch.FirstPosition + completed.Index;
        var failure = SshFanOut.FailureOf(completed, outcome => outcome.Failure);
        if (completed.Error is null && completed.Result is { } outcome)
        {
            return new DeployedHost(Result(target, batch.Number, outcome.Succeeded ? DeployStatus.Succeeded : DeployStatus.Failed, outcome.ErrorId, outcome.Error,
                outcome.StartTime, outcome.Duration, outcome), position, target, failure);
        }
        return new DeployedHost(Result(target, batch.Number, DeployStatus.Failed, failure?.ErrorId ?? "", failure?.Message ?? "",
            DateTimeOffset.Now - completed.Duration, completed.Duration), position, target, failure);
    }

    private MoltarDeployResult NotStartedResult(SshTarget target, int batch) =>
        Result(target, batch, DeployStatus.NotStarted, DeployErrorIds.NotStarted,
            "Not started: an earlier batch had more failures than -MaxFailures allows.", DateTimeOffset.Now, TimeSpan.Zero);

    /// <summary>The one place a MoltarDeployResult is made.</summary>
    private MoltarDeployResult Result(SshTarget target, int batch, DeployStatus status, string? errorId, string error, DateTimeOffset start,
                                      TimeSpan duration, DeployOutcome? outcome = null) => new()
    {
        InstanceId = target.InstanceId,
        Name = target.Name,
        Address = target.Address,
        Packages = _request.Packages.ToArray(),
        Version = _request.Version,
        PreviousVersions = outcome?.PreviousVersions ?? new Dictionary<string, string>(),
        InstalledVersions = outcome?.InstalledVersions ?? new Dictionary<string, string>(),
        Succeeded = status == DeployStatus.Succeeded,
        Status = status,
        ErrorId = errorId,
        Batch = batch,
        Output = outcome?.Output ?? "",
        Truncated = outcome?.Truncated ?? false,
        Error = error,
        StartTime = start,
        Duration = duration,
    };
}
