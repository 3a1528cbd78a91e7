namespace Moltar;

/// <summary>What one command did on one instance.</summary>
public sealed class MoltarCommandResult
{
    public string InstanceId { get; init; } = "";
    public string? Name { get; init; }
    public string? Address { get; init; }
    public string Command { get; init; } = "";
    /// <summary>The remote exit status; null when the command never ran or ended by a signal.</summary>
    public int? ExitCode { get; init; }
    public bool Succeeded { get; init; }
    public string Output { get; init; } = "";
    /// <summary>The remote standard error, or the reason the host failed (connect, auth, timeout).</summary>
    public string Error { get; init; } = "";
    /// <summary>The stable error id when the host failed (CommandFailed, ConnectFailed, ...), else null.</summary>
    public string? ErrorId { get; init; }
    /// <summary>Bytes the command wrote to standard output, kept in Output or not (see -MaxOutputBytes).</summary>
    public long OutputBytes { get; init; }
    /// <summary>Bytes the command wrote to standard error, kept in Error or not.</summary>
    public long ErrorBytes { get; init; }
    /// <summary>True when Output or Error holds only the first -MaxOutputBytes of what the host sent.</summary>
    public bool Truncated { get; init; }
    public DateTimeOffset StartTime { get; init; }
    public TimeSpan Duration { get; init; }

    public override string ToString() => $"{Name ?? InstanceId}: {(Succeeded ? "ok" : ErrorId ?? "failed")}";
}
