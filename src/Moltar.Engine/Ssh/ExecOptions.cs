using System.Text;

namespace Moltar.Engine.Ssh;

#pragma warning disable CA1711 // which output stream of a command (stdout, stderr): the name says what it is
public enum ExecStream
#pragma warning restore CA1711
{
    Stdout,
    Stderr,
}

/// <summary>How to run one command on a connection.</summary>
public sealed record ExecOptions
{
    /// <summary>
    /// 16 MiB per stream and host: kept as bytes and then as text (twice that in memory), so a fan-out of 32 hosts
    /// that all flood holds about 1.5 GiB at worst. Bigger outputs belong in a file (Copy-MoltarFile -FromRemote).
    /// </summary>
    public const long DefaultMaxOutputBytes = 16L * 1024 * 1024;

    /// <summary>Ends the command (signal TERM, connection closed) after this long: outcome Timeout. Null = no limit.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>Bytes of each stream kept in the outcome; beyond it output is counted (and still streamed as lines), not kept.</summary>
    public long MaxOutputBytes { get; init; } = DefaultMaxOutputBytes;
    /// <summary>Sent to the command's standard input, then end-of-file. Null = end-of-file at once.</summary>
    public byte[]? Stdin { get; init; }
    /// <summary>
    /// Run under a pseudo-terminal (for sudo with requiretty, programs that need a tty). Output arrives on
    /// stdout only (the terminal merges stderr); the exit code comes from a marker the engine prints after the command.
    /// </summary>
    public bool Pty { get; init; }
    public string TerminalType { get; init; } = "xterm";
    public uint TerminalColumns { get; init; } = 200;
    public uint TerminalRows { get; init; } = 50;
    /// <summary>Called as each line arrives (on an engine thread: enqueue, do not block). Line ends are removed.</summary>
    public Action<ExecStream, string>? OnLine { get; init; }
    /// <summary>
    /// Asked (on an engine thread) before each chunk of output is split into lines for OnLine: false = no room
    /// now. The chunk's lines are then skipped (counted in ExecOutcome.LinesNotShown, still kept in the outcome up
    /// to MaxOutputBytes), so reading never waits for the consumer: SSH.NET would buffer the difference without limit.
    /// With LineRoom set, lines are also skipped while more than 4 MB wait unread in SSH.NET (splitting fell behind).
    /// Null = every line is delivered.
    /// </summary>
    public Func<bool>? LineRoom { get; init; }
    /// <summary>How remote output is decoded; UTF-8 by default.</summary>
    public Encoding? Encoding { get; init; }
    /// <summary>Longest line handed to OnLine; longer lines are split (the kept output is unaffected).</summary>
    public int MaxLineLength { get; init; } = 64 * 1024;

    /// <summary>A copy with another line callback.</summary>
    public ExecOptions WithOnLine(Action<ExecStream, string>? onLine) => this with { OnLine = onLine };
}

/// <summary>What one command did on one host.</summary>
public sealed class ExecOutcome
{
    public string Command { get; init; } = "";
    /// <summary>The exit status; null when the command was killed by a signal, timed out or the connection dropped.</summary>
    public int? ExitCode { get; init; }
    /// <summary>The signal that ended the command (TERM, KILL, ...), if the server reported one.</summary>
    public string? ExitSignal { get; init; }
    /// <summary>Standard output (in PTY mode: everything the terminal showed), up to MaxOutputBytes.</summary>
    public string Stdout { get; init; } = "";
    public string Stderr { get; init; } = "";
    /// <summary>All bytes received on stdout, kept or not.</summary>
    public long StdoutBytes { get; init; }
    public long StderrBytes { get; init; }
    public bool StdoutTruncated { get; init; }
    public bool StderrTruncated { get; init; }
    /// <summary>Lines not handed to OnLine because ExecOptions.LineRoom said there was no room (they are in the output).</summary>
    public long LinesNotShown { get; init; }
    public DateTimeOffset StartTime { get; init; }
    public TimeSpan Duration { get; init; }
    /// <summary>Null on success; else the failure: CommandFailed, Timeout or ConnectionLost (see SshErrorIds), naming the host.</summary>
    public MoltarFailure? Failure { get; init; }
    public string? ErrorId => Failure?.ErrorId;
    /// <summary>False when the command never reached the host (the connection was already gone): running it again cannot run it twice.</summary>
    public bool Started { get; init; } = true;
    /// <summary>A sentence saying what went wrong, for ErrorRecords; null on success.</summary>
    public string? ErrorMessage => Failure?.Message;
    public bool Succeeded => ErrorId is null;

    public override string ToString() => Succeeded ? "ok" : $"{ErrorId}: {ErrorMessage}";
}
