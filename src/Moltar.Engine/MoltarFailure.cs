using System.Net.Sockets;
using Moltar.Engine.FanOut;
using Renci.SshNet.Common;

namespace Moltar.Engine;

/// <summary>
/// The PowerShell ErrorCategory a failure belongs to, by name (the engine knows nothing of PowerShell; the cmdlets
/// map each member to the ErrorCategory of the same name).
/// </summary>
public enum FailureCategory
{
    NotSpecified,
    AuthenticationError,
    ConnectionError,
    InvalidArgument,
    InvalidData,
    InvalidOperation,
    InvalidResult,
    NotImplemented,
    ObjectNotFound,
    OperationStopped,
    OperationTimeout,
    PermissionDenied,
    ResourceExists,
    ResourceUnavailable,
    SecurityError,
    WriteError,
}

/// <summary>The error ids that are not any one part's: a bug, a cancelled or a skipped host.</summary>
public static class MoltarErrorIds
{
    /// <summary>Moltar itself failed (a bug): the exception is kept; never reported as a network error.</summary>
    public const string Unexpected = "Unexpected";
    /// <summary>The host's work was cancelled (Ctrl+C) while it ran.</summary>
    public const string Cancelled = "Cancelled";
    /// <summary>The host was never started (cancelled before it started, or -ErrorAction Stop after a failure).</summary>
    public const string Skipped = "Skipped";
}

/// <summary>
/// One failure, carried unchanged from where it happens to the error record: the stable error id, its category, the
/// message (naming the host), the host it is about, and the exception behind it when there is one (always for
/// Unexpected: the bug's own exception).
/// </summary>
public sealed record MoltarFailure(string ErrorId, FailureCategory Category, string Message, string? Host = null, Exception? Exception = null)
{
    /// <summary>
    /// The failure an exception stands for: a MoltarException's own; cancellation and skipping as such; a network
    /// error that reached here without a Moltar error id as ConnectFailed; anything else is a bug: Unexpected, with
    /// the exception kept.
    /// </summary>
    public static MoltarFailure Of(Exception exception, string? host = null)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception switch
        {
            MoltarException m => m.Failure.Host is null && host is not null ? m.Failure with { Host = host } : m.Failure,
            FanOutSkippedException => new(MoltarErrorIds.Skipped, FailureCategory.OperationStopped, exception.Message, host, exception),
            OperationCanceledException => new(MoltarErrorIds.Cancelled, FailureCategory.OperationStopped, exception.Message, host, exception),
            SocketException or SshConnectionException or ProxyException =>
                new(Ssh.SshErrorIds.ConnectFailed, FailureCategory.ConnectionError, exception.Message, host, exception),
            _ => new(MoltarErrorIds.Unexpected, FailureCategory.NotSpecified,
                $"Moltar failed unexpectedly ({exception.GetType().FullName}: {exception.Message}). This is a bug in Moltar, not " +
                "an answer from the host: please report it with this error's exception (Get-Error shows it).", host, exception),
        };
    }

    public override string ToString() => $"{ErrorId}: {Message}";
}
