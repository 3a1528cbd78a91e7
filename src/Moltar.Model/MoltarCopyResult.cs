namespace Moltar;

/// <summary>Which way a file went: to the instance, or from it.</summary>
public enum MoltarCopyDirection
{
    Upload,
    Download,
}

/// <summary>One file copied to or from one instance, and how it was checked.</summary>
public sealed class MoltarCopyResult
{
    public string InstanceId { get; init; } = "";
    public string? Name { get; init; }
    public string? Address { get; init; }
    /// <summary>Name, else the instance id, else the address; control characters shown as '?'.</summary>
    public string DisplayName => HostLabel.Of(Name, InstanceId, Address);
    public MoltarCopyDirection Direction { get; init; }
    /// <summary>Upload: the local file. Download: the remote path on the instance.</summary>
    public string Source { get; init; } = "";
    /// <summary>Upload: the absolute remote path written. Download: the local file written.</summary>
    public string Destination { get; init; } = "";
    public long Bytes { get; init; }
    /// <summary>SHA-256 (lower-case hex) of the bytes sent or received, computed locally while they streamed.</summary>
    public string Sha256 { get; init; } = "";
    /// <summary>True when the remote side's sha256sum gave the same hash (and the sizes matched).</summary>
    public bool Verified { get; init; }
    /// <summary>How the copy was checked, or why it could not be fully checked (e.g. no sha256sum on the host).</summary>
    public string VerificationNote { get; init; } = "";
    /// <summary>The file's permissions as set (octal, e.g. "644").</summary>
    public string? Mode { get; init; }
    public TimeSpan Duration { get; init; }

    public override string ToString() => $"{DisplayName}: {DisplayText.Printable(Source)} -> {DisplayText.Printable(Destination)} ({Bytes} bytes{(Verified ? ", verified" : "")})";
}
