using Moltar.Engine.FanOut;

namespace Moltar.Engine.Ssh;

/// <summary>The fan-out of one command over many targets, and the mapping of its events to result objects.</summary>
public static class SshFanOut
{
    /// <summary>
    /// A runner that, per target, connects (or reuses a pooled connection), runs the command (lines stream as
    /// Output events) and returns the connection to the pool.
    /// Completed events carry the ExecOutcome (which may be a CommandFailed/Timeout/ConnectionLost) or, when the
    /// host could not be reached, an SshFailure as Error (OperationCanceledException when cancelled).
    /// Add targets, Complete(), then drain with TryTake/ReadAll on the pipeline thread.
    /// </summary>
    /// <remarks>liveOutput false: no Output events (nobody shows them); the outcome still keeps and counts the output.</remarks>
#pragma warning disable CA1068 // liveOutput came later as an optional last argument; callers name it
    public static FanOutRunner<SshTarget, ExecOutcome> RunCommand(SshConnector connector, string command, ExecOptions? exec = null,
        FanOutOptions? options = null, CancellationToken cancellationToken = default, bool liveOutput = true)
#pragma warning restore CA1068
    {
        exec ??= new ExecOptions();
        return new FanOutRunner<SshTarget, ExecOutcome>(ctx => RunOne(connector, ctx, command, exec, liveOutput), options, cancellationToken, IsFailure);
    }

    /// <summary>
    /// The per-target work of RunCommand, for callers that build the runner themselves (e.g. to create the
    /// connector after the runner, so the connector's log can be posted to it): connect (or take a pooled
    /// connection), run, and hand the connection back to the pool (closed when pooling is off or it failed).
    /// </summary>
    public static ExecOutcome RunOne(SshConnector connector, FanOutContext<SshTarget, ExecOutcome> ctx, string command, ExecOptions exec,
        bool liveOutput = true)
    {
        ctx.Status("connecting");
        // A warm connection from an earlier call when the pool has one (connector.Options.ConnectionIdle > 0).
        using var lease = ConnectionPool.Shared.Acquire(connector, ctx.Item, ctx.CancellationToken);
        var connection = lease.Connection;
        try
        {
            var outcome = Run(connector, ref connection, ctx, command, exec, liveOutput);
            lease.Update(connection);
            lease.Return();
            return outcome;
        }
        finally
        {
            lease.Update(connection); // a replaced connection is the one to close
        }
    }

    private static ExecOutcome Run(SshConnector connector, ref SshConnection connection, FanOutContext<SshTarget, ExecOutcome> ctx,
        string command, ExecOptions exec, bool liveOutput)
    {
        ctx.Status("running");
        var live = liveOutput ? new LiveLines<ExecOutcome>(ctx) : null;
        var outcome = connector.RunReconnecting(ref connection, command, live?.Options(exec) ?? exec.WithOnLine(null), ctx.CancellationToken);
        live?.Count(outcome);
        live?.WarnIfSkipped(exec.MaxOutputBytes);
        return outcome;
    }

    /// <summary>
    /// Live output lines of one host's commands, on the path that never makes the host's reader wait: SSH.NET has no
    /// flow control of its own (it takes whatever the host sends and buffers what is not read yet, without limit), so
    /// a host printing faster than the pipeline thread can write would otherwise fill memory. A line that finds the
    /// queue full is counted, not shown; the outcome keeps the output regardless (up to MaxOutputBytes).
    /// Invoke-MoltarCommand and Invoke-MoltarDeploy both use it.
    /// </summary>
    internal sealed class LiveLines<TResult>(FanOutContext<SshTarget, TResult> ctx)
    {
        private long _skipped;

        /// <summary>The exec options that hand lines to the fan-out without waiting.</summary>
        public ExecOptions Options(ExecOptions exec) =>
            exec.WithOnLine((stream, line) => Show(line, stream == ExecStream.Stderr)) with { LineRoom = () => ctx.HasOutputRoom };

        /// <summary>Shows one line if the queue has room, else counts it.</summary>
        public void Show(string line, bool isError = false)
        {
            if (!ctx.Output(line, isError))
            {
                Interlocked.Increment(ref _skipped);
            }
        }

        /// <summary>Adds the lines a command's reader skipped itself (ExecOutcome.LinesNotShown).</summary>
        public void Count(ExecOutcome outcome) => Interlocked.Add(ref _skipped, outcome.LinesNotShown);

        /// <summary>One warning for the host when any line was not shown live.</summary>
        public void WarnIfSkipped(long maxOutputBytes)
        {
            if (Interlocked.Read(ref _skipped) is > 0 and var count)
            {
                ctx.Warning($"{count} line(s) of output were not shown live: they came faster than they could be written. " +
                    $"The result keeps the first {maxOutputBytes} bytes of each stream.");
            }
        }
    }

    /// <summary>An outcome that should stop a StopOnFailure fan-out.</summary>
    public static bool IsFailure(ExecOutcome outcome) => !outcome.Succeeded;

    /// <summary>Queues a connector log entry on a runner (Warning or Verbose, about its target when it has one).</summary>
    public static void Post<TResult>(this FanOutRunner<SshTarget, TResult> runner, SshLogEntry entry)
    {
        var kind = entry.Level == SshLogLevel.Warning ? FanOutEventKind.Warning : FanOutEventKind.Verbose;
        if (entry.Target is { } target)
        {
            runner.Post(kind, entry.Message, target);
        }
        else
        {
            runner.Post(kind, entry.Message);
        }
    }

    /// <summary>The result object for a finished item (success, command failure, or a host that failed).</summary>
    public static MoltarCommandResult ToResult(FanOutEvent<SshTarget, ExecOutcome> completed, string command)
    {
        var target = completed.Item!;
        if (completed.Error is null && completed.Result is { } outcome)
        {
            var error = outcome.ErrorId is SshErrorIds.Timeout or SshErrorIds.ConnectionLost
                ? outcome.ErrorMessage + (outcome.Stderr.Length > 0 ? Environment.NewLine + outcome.Stderr : "")
                : outcome.Stderr;
            return new MoltarCommandResult
            {
                InstanceId = target.InstanceId,
                Name = target.Name,
                Address = target.Address,
                Command = command,
                ExitCode = outcome.ExitCode,
                Succeeded = outcome.Succeeded,
                Output = outcome.Stdout,
                Error = error ?? "",
                ErrorId = outcome.ErrorId,
                OutputBytes = outcome.StdoutBytes,
                ErrorBytes = outcome.StderrBytes,
                Truncated = outcome.StdoutTruncated || outcome.StderrTruncated,
                StartTime = outcome.StartTime,
                Duration = outcome.Duration,
            };
        }

        var failure = FailureOf(completed);
        return new MoltarCommandResult
        {
            InstanceId = target.InstanceId,
            Name = target.Name,
            Address = target.Address,
            Command = command,
            Succeeded = false,
            Error = failure?.Message ?? "",
            ErrorId = failure?.ErrorId ?? "",
            StartTime = DateTimeOffset.Now - completed.Duration,
            Duration = completed.Duration,
        };
    }

    /// <summary>
    /// A finished item's failure, for its result and its ErrorRecord: what stopped the host (MoltarFailure.Of: an
    /// unexpected exception is Unexpected, never a network error), else the outcome's own. Null when it succeeded.
    /// </summary>
    public static MoltarFailure? FailureOf<TResult>(FanOutEvent<SshTarget, TResult> completed, Func<TResult, MoltarFailure?> outcomeFailure)
    {
        if (completed.Error is not null)
        {
            return MoltarFailure.Of(completed.Error, completed.Item?.Address);
        }
        return completed.Result is { } outcome ? outcomeFailure(outcome) : null;
    }

    /// <summary>A finished command's failure (see the generic FailureOf); null when it succeeded.</summary>
    public static MoltarFailure? FailureOf(FanOutEvent<SshTarget, ExecOutcome> completed) => FailureOf(completed, outcome => outcome.Failure);
}
