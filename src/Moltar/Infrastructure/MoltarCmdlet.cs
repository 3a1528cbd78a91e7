using System.Collections.Concurrent;
using System.Management.Automation;
using Moltar.Engine;

namespace Moltar.Infrastructure;

/// <summary>
/// What every Moltar cmdlet shares: cancellation on Ctrl+C, and running engine work off the pipeline
/// thread while only the pipeline thread writes to PowerShell's streams.
/// </summary>
public abstract class MoltarCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly BlockingCollection<Action> _pipelineWork = new();

    protected CancellationToken StopToken => _stopping.Token;

    protected override void StopProcessing() => _stopping.Cancel();

    /// <summary>Queues a write to run on the pipeline thread; safe from any thread.</summary>
    protected void Post(Action write)
    {
        try { _pipelineWork.Add(write); }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException) { /* the cmdlet has finished; late messages are dropped */ }
    }

    protected void PostVerbose(string message) => Post(() => WriteVerbose(message));
    protected void PostWarning(string message) => Post(() => WriteWarning(message));

    /// <summary>Runs engine work and drains what it posts until it completes; returns its result on this thread.</summary>
    protected T RunOnPipeline<T>(Func<CancellationToken, Task<T>> work)
    {
        var task = Task.Run(() => work(StopToken));
        // Wake the wait below the moment the work ends, instead of at the next 50 ms poll.
        task.ContinueWith(static (_, state) => ((MoltarCmdlet)state!).Post(static () => { }), this,
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        while (!task.IsCompleted)
        {
            if (_pipelineWork.TryTake(out var write, 50))
                write();
        }
        DrainPosted();
        if (task.IsCanceled || (task.IsFaulted && StopToken.IsCancellationRequested && task.Exception!.InnerException is OperationCanceledException))
            throw new PipelineStoppedException();
        return task.GetAwaiter().GetResult();
    }

    /// <summary>Writes, on this (the pipeline) thread, everything posted so far.</summary>
    protected void DrainPosted()
    {
        while (_pipelineWork.TryTake(out var write))
            write();
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
        _pipelineWork.Dispose();
        GC.SuppressFinalize(this);
    }
}
