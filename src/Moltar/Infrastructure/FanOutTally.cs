using System.Diagnostics;
using System.Management.Automation;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;

namespace Moltar.Infrastructure;

/// <summary>
/// How a fan-out went, host by host: the one summary line every fan-out cmdlet ends with, and under
/// -ErrorAction Stop the one terminating error that names the failed hosts (written after the hosts
/// already running have finished and their results are out).
/// </summary>
internal sealed class FanOutTally
{
    /// <summary>Failed hosts named in the terminating error; the rest are counted.</summary>
    private const int NamedFailures = 20;

    private readonly List<(string Label, string ErrorId)> _failed = new();
    private readonly List<object> _failedOrigins = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public FanOutTally(string activity) => Activity = activity;

    /// <summary>What ran, as the summary and the error name it ("Invoke-MoltarCommand 'uptime'").</summary>
    public string Activity { get; }
    public int Succeeded { get; private set; }
    public int Failed => _failed.Count;
    public int NotStarted { get; private set; }

    /// <summary>Counts one finished host: skipped (never started), failed (it has an error id) or succeeded.</summary>
    public void Add<TResult>(FanOutEvent<SshTarget, TResult> completed, string? errorId, object origin)
    {
        if (completed.Skipped)
        {
            NotStarted++;
        }
        else if (errorId is not null)
        {
            _failed.Add((completed.Item!.DisplayName, errorId));
            _failedOrigins.Add(origin);
        }
        else
        {
            Succeeded++;
        }
    }

    /// <summary>Counts one finished instance of a transport without SSH targets (SSM): by its label and error id.</summary>
    public void Add(string label, string? errorId, object origin, bool notStarted = false)
    {
        if (notStarted)
        {
            NotStarted++;
        }
        else if (errorId is not null)
        {
            _failed.Add((label, errorId));
            _failedOrigins.Add(origin);
        }
        else
        {
            Succeeded++;
        }
    }

    public string Summary =>
        $"{Activity}: {Succeeded} succeeded, {Failed} failed, {NotStarted} not started " +
        $"({Succeeded + Failed + NotStarted} host{(Succeeded + Failed + NotStarted == 1 ? "" : "s")}, {_clock.Elapsed.TotalSeconds:0.0} s).";

    /// <summary>
    /// The terminating error of a fan-out stopped by -ErrorAction Stop: which hosts failed (label and error id,
    /// never remote text), the counts, and that hosts already running were let finish.
    /// </summary>
    public ErrorRecord StoppedError()
    {
        string named = string.Join(", ", _failed.Take(NamedFailures).Select(f => $"{f.Label} ({f.ErrorId})"));
        if (_failed.Count > NamedFailures)
            named += $" and {_failed.Count - NamedFailures} more";
        string message =
            $"{Activity}: {Failed} host{(Failed == 1 ? "" : "s")} failed: {named}. -ErrorAction Stop: no host was started after the first failure " +
            $"({NotStarted} not started); hosts already running finished ({Succeeded} succeeded). Each host's result, with its error, was written to the output.";
        var record = new ErrorRecord(new InvalidOperationException(message), "HostsFailed", ErrorCategory.OperationStopped, _failedOrigins.ToArray());
        record.ErrorDetails = new ErrorDetails(message)
        {
            RecommendedAction = "Look at the failed hosts' results (their Error and ErrorId), fix them, and run again for those hosts.",
        };
        return record;
    }
}
