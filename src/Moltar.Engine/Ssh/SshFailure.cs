namespace Moltar.Engine.Ssh;

/// <summary>
/// The stable error ids of the SSH engine. Per host: they go into MoltarCommandResult.ErrorId and the
/// ErrorRecord's FullyQualifiedErrorId; scripts and tests match on them exactly.
/// </summary>
public static class SshErrorIds
{
    /// <summary>The command ran and exited non-zero (or was killed by a signal).</summary>
    public const string CommandFailed = "CommandFailed";
    /// <summary>TCP connect, SSH handshake or the jump host failed (refused, unreachable, protocol error).</summary>
    public const string ConnectFailed = "ConnectFailed";
    /// <summary>The server refused every key and agent identity offered.</summary>
    public const string AuthenticationFailed = "AuthenticationFailed";
    /// <summary>The host offered a key different from the one in known_hosts.</summary>
    public const string HostKeyMismatch = "HostKeyMismatch";
    /// <summary>The host is not in known_hosts and StrictHostKeyChecking is yes.</summary>
    public const string HostKeyUnknown = "HostKeyUnknown";
    /// <summary>The host offered a key marked @revoked in known_hosts.</summary>
    public const string HostKeyRevoked = "HostKeyRevoked";
    /// <summary>
    /// A time limit ran out: the command did not finish within its timeout (it was signalled and the connection
    /// closed), or the host did not complete the TCP connect and SSH handshake within the connect timeout
    /// (a silent host: accepts TCP, never speaks SSH).
    /// </summary>
    public const string Timeout = "Timeout";
    /// <summary>The connection dropped while the command ran.</summary>
    public const string ConnectionLost = "ConnectionLost";
    /// <summary>A key file given explicitly could not be read or decrypted (a call-level error).</summary>
    public const string KeyFileInvalid = "KeyFileInvalid";
    /// <summary>An ssh config file or option could not be used (a call-level error).</summary>
    public const string InvalidConfiguration = "InvalidConfiguration";
    /// <summary>The loaded SSH.NET lacks a member Moltar relies on (no public API for it); nothing was run.</summary>
    public const string SshLibraryIncompatible = "SshLibraryIncompatible";
}

/// <summary>A failure of one host (or of the whole call, for KeyFileInvalid/InvalidConfiguration).</summary>
public sealed class SshFailure : MoltarException
{
    public SshFailure(string errorId, string message, string? host = null, Exception? inner = null)
        : base(errorId, CategoryOf(errorId), message, inner, host)
    {
    }

    /// <summary>The host name or address the failure is about (a jump host's when the jump failed).</summary>
    public string? Host => Failure.Host;

    /// <summary>The failure value for an SSH error id where no exception is thrown (a command's outcome); null for no id.</summary>
    public static MoltarFailure? ValueOf(string? errorId, string? message, string? host) =>
        errorId is null ? null : new MoltarFailure(errorId, CategoryOf(errorId), message ?? errorId, host);

    /// <summary>The one mapping of a lost connection: ConnectionLost for the target, the message saying when it was lost.</summary>
    internal static SshFailure ConnectionLost(SshTarget target, string message, Exception? cause = null) =>
        new(SshErrorIds.ConnectionLost, message, target.Address, cause);

    /// <summary>
    /// Whether what SSH.NET threw means the connection under the operation is gone (the server closed it, the socket
    /// failed, the client was closed, the server stopped answering) rather than a refusal or a bug.
    /// </summary>
    internal static bool MeansConnectionGone(Exception e) =>
        e is Renci.SshNet.Common.SshConnectionException or System.Net.Sockets.SocketException or ObjectDisposedException
            or Renci.SshNet.Common.SshOperationTimeoutException
        || IsLibraryFaultOnLostSession(e);

    /// <summary>
    /// SSH.NET's SshCommand can fail with a NullReferenceException from its own session-error handler when the
    /// session dies while the command's channel is opening (a kept connection the server dropped, found under load):
    /// the exec request was never sent, so it is a connection lost before the command started, not a bug of ours.
    /// </summary>
    internal static bool IsLibraryFaultOnLostSession(Exception e) =>
        e is NullReferenceException && e.TargetSite?.DeclaringType?.Assembly == typeof(Renci.SshNet.SshClient).Assembly;

    /// <summary>The category that fits an SSH error id.</summary>
    public static FailureCategory CategoryOf(string errorId) => errorId switch
    {
        SshErrorIds.CommandFailed => FailureCategory.InvalidResult,
        SshErrorIds.ConnectFailed => FailureCategory.ConnectionError,
        SshErrorIds.ConnectionLost => FailureCategory.ConnectionError,
        SshErrorIds.AuthenticationFailed => FailureCategory.AuthenticationError,
        SshErrorIds.HostKeyMismatch => FailureCategory.SecurityError,
        SshErrorIds.HostKeyUnknown => FailureCategory.SecurityError,
        SshErrorIds.HostKeyRevoked => FailureCategory.SecurityError,
        SshErrorIds.Timeout => FailureCategory.OperationTimeout,
        SshErrorIds.KeyFileInvalid => FailureCategory.InvalidArgument,
        SshErrorIds.InvalidConfiguration => FailureCategory.InvalidArgument,
        SshErrorIds.SshLibraryIncompatible => FailureCategory.NotImplemented,
        _ => FailureCategory.NotSpecified,
    };
}
