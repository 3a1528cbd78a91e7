using Moltar.Engine.FanOut;

namespace Moltar.Engine.Ssh;

/// <summary>The fan-out of one command over many targets, and the mapping of its events to result objects.</summary>
public static class SshFanOut
{
    /// <summary>
    /// A runner that, per target, connects, runs the command (lines stream as Output events) and closes.
    /// Completed events carry the ExecOutcome (which may be a CommandFailed/Timeout/ConnectionLost) or, when the
    /// host could not be reached, an SshFailure as Error (OperationCanceledException when cancelled).
    /// Add targets, Complete(), then drain with TryTake/ReadAll on the pipeline thread.
    /// With streamLines false no Output events are made (the outcome still keeps the output): for callers that
    /// would drop them anyway, output is then neither decoded nor split into lines as it arrives.
    /// </summary>
    public static FanOutRunner<SshTarget, ExecOutcome> RunCommand(SshConnector connector, string command, ExecOptions? exec = null,
        FanOutOptions? options = null, CancellationToken cancellationToken = default, bool streamLines = true)
    {
        exec ??= new ExecOptions();
        return new FanOutRunner<SshTarget, ExecOutcome>(
            ctx =>
            {
                ctx.Status("connecting");
                using var connection = connector.Connect(ctx.Item, ctx.CancellationToken);
                ctx.Status("running");
                var run = streamLines ? exec.WithOnLine((stream, line) => ctx.Output(line, stream == ExecStream.Stderr)) : exec;
                return connection.Run(command, run, ctx.CancellationToken);
            },
            options,
            cancellationToken,
            isFailure: outcome => !outcome.Succeeded);
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
                StartTime = outcome.StartTime,
                Duration = outcome.Duration,
            };
        }

        var failure = completed.Error;
        return new MoltarCommandResult
        {
            InstanceId = target.InstanceId,
            Name = target.Name,
            Address = target.Address,
            Command = command,
            Succeeded = false,
            Error = failure?.Message ?? "",
            ErrorId = ErrorIdOf(failure),
            StartTime = DateTimeOffset.Now - completed.Duration,
            Duration = completed.Duration,
        };
    }

    /// <summary>
    /// The exception for a failed item's ErrorRecord: the SshFailure that stopped it, or one made from the
    /// outcome's ErrorId and message. Null when the item succeeded.
    /// </summary>
    public static Exception? FailureOf(FanOutEvent<SshTarget, ExecOutcome> completed)
    {
        if (completed.Error is not null)
        {
            return completed.Error;
        }

        var outcome = completed.Result;
        if (outcome is null || outcome.Succeeded)
        {
            return null;
        }

        return new SshFailure(outcome.ErrorId!, outcome.ErrorMessage ?? outcome.ErrorId!, completed.Item?.Address);
    }

    /// <summary>Stable id for an exception: its ErrorId, "Cancelled", "Skipped", else "ConnectFailed".</summary>
    public static string ErrorIdOf(Exception? error) => error switch
    {
        null => "",
        MoltarException m => m.ErrorId,
        OperationCanceledException => "Cancelled",
        FanOutSkippedException => "Skipped",
        _ => SshErrorIds.ConnectFailed,
    };
}
