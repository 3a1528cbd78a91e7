using System.Management.Automation;
using Moltar.Engine;
using Moltar.Engine.FanOut;

namespace Moltar.Infrastructure;

/// <summary>
/// What every Moltar cmdlet shares: cancellation on Ctrl+C, and running engine work off the pipeline
/// thread while only the pipeline thread writes to PowerShell's streams.
/// </summary>
public abstract class MoltarCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    // What worker threads post for this thread to write: never waited on; lines and messages beyond room are dropped and counted.
    private readonly PipelineChannel<Action> _posted = new();
    private long _droppedLinesReported;
    private long _droppedMessagesReported;

    protected CancellationToken StopToken => _stopping.Token;

    protected override void StopProcessing() => _stopping.Cancel();

    /// <summary>
    /// Queues a write to run on the pipeline thread; safe from any thread and never waits. A Line or Message that finds
    /// no room is dropped and counted (the loop reports the count); a Result is always kept.
    /// </summary>
    protected void Post(PipelineItemKind kind, Action write, int chars = 0) => _posted.TryWrite(kind, write, chars);

    protected void PostVerbose(string message) => Post(PipelineItemKind.Message, () => WriteVerbose(message));
    protected void PostWarning(string message) => Post(PipelineItemKind.Message, () => WriteWarning(message));

    /// <summary>Runs engine work and drains what it posts until it completes; returns its result on this thread.</summary>
    protected T RunOnPipeline<T>(Func<CancellationToken, Task<T>> work)
    {
        var task = Task.Run(() => work(StopToken));
        // Wake the loop below the moment the work ends, instead of at its next 100 ms turn (kept: one per call).
        task.ContinueWith(static (_, state) => ((MoltarCmdlet)state!).Post(PipelineItemKind.Result, static () => { }), this,
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        Pump<object>(null, null, () => task.IsCompleted);
        if (task.IsCanceled || (task.IsFaulted && StopToken.IsCancellationRequested && task.Exception!.InnerException is OperationCanceledException))
            throw new PipelineStoppedException();
        return task.GetAwaiter().GetResult();
    }

    /// <summary>
    /// The one loop by which this (the pipeline) thread takes what worker threads hand it: until <paramref name="finished"/>
    /// holds, it writes what was posted to this cmdlet (Post, PostVerbose, PostWarning) and hands each item of the
    /// work's own channel (a fan-out's or an SSM run's events) to <paramref name="handle"/>, in the order written;
    /// <paramref name="eachTurn"/> runs at least every 100 ms (Ctrl+C, progress). Workers never wait for this loop.
    /// Afterwards it warns once about lines and messages that were dropped because this thread fell behind.
    /// </summary>
    protected void Pump<TItem>(PipelineChannel<TItem>? work, Action<TItem>? handle, Func<bool> finished, Action? eachTurn = null)
    {
        while (!finished())
        {
            eachTurn?.Invoke();
            bool wrote = DrainPosted();
            if (work is not null && work.TryRead(out var item))
            {
                handle!(item);
                continue;
            }
            if (!wrote)
                Task.WaitAny(work is null ? new[] { _posted.Readable } : new[] { _posted.Readable, work.Readable }, 100);
        }
        DrainPosted();
        WarnDropped(work?.MessagesDropped ?? 0);
    }

    /// <summary>Writes, on this (the pipeline) thread, what was posted so far (not what comes meanwhile); false when there was nothing.</summary>
    protected bool DrainPosted()
    {
        int waiting = _posted.Queued;
        bool wrote = false;
        for (int i = 0; i < waiting && _posted.TryRead(out var write); i++)
        {
            write();
            wrote = true;
        }
        return wrote;
    }

    /// <summary>
    /// Warns about lines and messages dropped since the last warning: this cmdlet's posts, plus the messages of a work that
    /// has ended (its lines are counted per host by the engine: SshFanOut's "not shown live" warning).
    /// </summary>
    private void WarnDropped(long workMessages)
    {
        long lines = _posted.LinesDropped - _droppedLinesReported;
        long messages = _posted.MessagesDropped - _droppedMessagesReported + workMessages;
        _droppedLinesReported = _posted.LinesDropped;
        _droppedMessagesReported = _posted.MessagesDropped;
        if (lines > 0)
            WriteWarning($"{lines} line(s) of output were not shown live: they came faster than they could be written.");
        if (messages > 0)
            WriteWarning($"{messages} verbose or warning message(s) were not shown: they came faster than they could be written.");
    }

    /// <summary>
    /// ShouldProcess(target, action), except that where nobody can answer a confirmation prompt it is a clear
    /// terminating error (ConfirmationNotPossible) that says to pass -Confirm:$false, never a hang or the host's own error.
    /// </summary>
    protected bool ShouldProcessOrRefuse(string target, string action) => Unattended(() => ShouldProcess(target, action));

    /// <summary>ShouldProcess(description, warning, caption) with the same refusal as <see cref="ShouldProcessOrRefuse(string, string)"/>.</summary>
    protected bool ShouldProcessOrRefuse(string description, string warning, string caption) =>
        Unattended(() => ShouldProcess(description, warning, caption));

    private bool Unattended(Func<bool> shouldProcess)
    {
        try
        {
            return shouldProcess();
        }
        // pwsh -NonInteractive: PSInvalidOperationException ("Read and Prompt functionality is not available"); a console
        // host whose standard input has ended (cron, a service) fails inside PromptForChoice with a NullReferenceException.
        catch (Exception e) when (e is PSInvalidOperationException or System.Management.Automation.Host.HostException or NullReferenceException)
        {
            string name = MyInvocation.MyCommand.Name;
            ThrowTerminatingError(new ErrorRecord(new InvalidOperationException(
                    $"{name} asks for confirmation before it changes hosts, and this session cannot ask (non-interactive: a scheduled task, " +
                    $"cron, CI). Pass -Confirm:$false to run without asking (or set $ConfirmPreference = 'None' in the script), or -WhatIf to only show what would run.", e),
                "ConfirmationNotPossible", ErrorCategory.InvalidOperation, null));
            throw; // not reached
        }
    }

    // Every message Moltar writes may quote a tag value, a host name, a remote file name or remote output: whatever
    // the message is built from, control characters (an escape sequence, a bidirectional override) show as '?'.
    // These hide PSCmdlet's own writers, so every Moltar cmdlet writes through them.

    /// <summary>WriteWarning with control characters shown as '?' (line breaks kept).</summary>
    protected new void WriteWarning(string text) => base.WriteWarning(DisplayText.PrintableLines(text));

    /// <summary>WriteVerbose with control characters shown as '?' (line breaks kept).</summary>
    protected new void WriteVerbose(string text) => base.WriteVerbose(DisplayText.PrintableLines(text));

    /// <summary>WriteError whose shown message has control characters as '?'; the exception keeps the raw text.</summary>
    protected new void WriteError(ErrorRecord record) => base.WriteError(Printable(record));

    /// <summary>ThrowTerminatingError whose shown message has control characters as '?'.</summary>
    protected new void ThrowTerminatingError(ErrorRecord record) => base.ThrowTerminatingError(Printable(record));

    /// <summary>The record, with ErrorDetails holding the printable message when its own has unsafe characters.</summary>
    protected static ErrorRecord Printable(ErrorRecord record)
    {
        string message = record.ErrorDetails?.Message is { Length: > 0 } details ? details : record.Exception?.Message ?? "";
        string printable = DisplayText.PrintableLines(message);
        if (!ReferenceEquals(printable, message))
            record.ErrorDetails = new ErrorDetails(printable) { RecommendedAction = record.ErrorDetails?.RecommendedAction };
        return record;
    }

    /// <summary>Turns an engine failure into a terminating error with its stable id.</summary>
    protected void ThrowFailure(MoltarException failure, object? target = null) =>
        ThrowTerminatingError(ToErrorRecord(failure, target));

    protected static ErrorRecord ToErrorRecord(MoltarException failure, object? target) =>
        new(failure, failure.ErrorId, CategoryOf(failure.Category), target);

    /// <summary>The ErrorCategory of an engine failure's category (the same name).</summary>
    protected static ErrorCategory CategoryOf(FailureCategory category) => category switch
    {
        FailureCategory.AuthenticationError => ErrorCategory.AuthenticationError,
        FailureCategory.ConnectionError => ErrorCategory.ConnectionError,
        FailureCategory.InvalidArgument => ErrorCategory.InvalidArgument,
        FailureCategory.InvalidData => ErrorCategory.InvalidData,
        FailureCategory.InvalidOperation => ErrorCategory.InvalidOperation,
        FailureCategory.InvalidResult => ErrorCategory.InvalidResult,
        FailureCategory.NotImplemented => ErrorCategory.NotImplemented,
        FailureCategory.ObjectNotFound => ErrorCategory.ObjectNotFound,
        FailureCategory.OperationStopped => ErrorCategory.OperationStopped,
        FailureCategory.OperationTimeout => ErrorCategory.OperationTimeout,
        FailureCategory.PermissionDenied => ErrorCategory.PermissionDenied,
        FailureCategory.ResourceExists => ErrorCategory.ResourceExists,
        FailureCategory.ResourceUnavailable => ErrorCategory.ResourceUnavailable,
        FailureCategory.SecurityError => ErrorCategory.SecurityError,
        FailureCategory.WriteError => ErrorCategory.WriteError,
        _ => ErrorCategory.NotSpecified,
    };

    /// <summary>A terminating error for bad input: which parameter, what was wrong, what to do.</summary>
    protected void ThrowInvalidArgument(string errorId, string message, object? target = null) =>
        ThrowTerminatingError(new ErrorRecord(new ArgumentException(message), errorId, ErrorCategory.InvalidArgument, target));

    public void Dispose()
    {
        _stopping.Dispose();
        GC.SuppressFinalize(this);
    }
}
