namespace Moltar.Engine.Transfer;

/// <summary>
/// The stable error ids of file copies (per host, per file), besides the SSH engine's connection ids
/// (ConnectFailed, AuthenticationFailed, HostKey*, ConnectionLost) which a copy reports as they are.
/// </summary>
public static class TransferErrorIds
{
    /// <summary>The file could not be copied or did not verify (permission denied, missing, hash mismatch, disk full...).</summary>
    public const string CopyFailed = "CopyFailed";
    /// <summary>Upload: the remote file exists and -Force was not given. Nothing was changed.</summary>
    public const string RemoteFileExists = "RemoteFileExists";
    /// <summary>Download: the local file exists and -Force was not given. Nothing was changed.</summary>
    public const string LocalFileExists = "LocalFileExists";
    /// <summary>A remote name would land outside the destination folder (.., absolute, a symlink leading out): refused.</summary>
    public const string PathOutsideDestination = "PathOutsideDestination";

    public static FailureCategory CategoryOf(string errorId) => errorId switch
    {
        CopyFailed => FailureCategory.WriteError,
        RemoteFileExists or LocalFileExists => FailureCategory.ResourceExists,
        PathOutsideDestination => FailureCategory.SecurityError,
        _ => FailureCategory.NotSpecified,
    };
}

/// <summary>One file that was not copied, and why.</summary>
public sealed class TransferFailure : MoltarException
{
    /// <summary>The path the failure is about (remote or local, as the message says).</summary>
    public string? Path { get; }

    public TransferFailure(string errorId, string message, string? path = null, Exception? inner = null)
        : base(errorId, TransferErrorIds.CategoryOf(errorId), message, inner)
    {
        Path = path;
    }
}
