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

    /// <summary>The Name tag, or the instance id (or address) when the instance has none; control characters as '?'.</summary>
    public string DisplayName => HostLabel.Of(Name, InstanceId, Address);

    /// <summary>"ok", or the error id: one column to sort and filter on.</summary>
    public string Status => Succeeded ? "ok" : ErrorId ?? "failed";

    public double Seconds => Duration.TotalSeconds;

    /// <summary>The first non-blank line of Output, or of Error when the host failed: what the table shows.</summary>
    public string Summary => DisplayText.Printable(FirstNonBlankLine(Succeeded ? Output : Error));

    public override string ToString() => $"{DisplayName}: {Status}";

    // Plain properties in the table view instead of script blocks: a fresh pwsh prints 100 results ~50 ms sooner.
    private static string FirstNonBlankLine(string text)
    {
        var rest = text.AsSpan();
        while (rest.Length > 0)
        {
            int end = rest.IndexOf('\n');
            var line = end < 0 ? rest : rest[..end];
            if (!line.IsWhiteSpace())
                return line.TrimEnd('\r').ToString();
            rest = end < 0 ? ReadOnlySpan<char>.Empty : rest[(end + 1)..];
        }
        return "";
    }
}
