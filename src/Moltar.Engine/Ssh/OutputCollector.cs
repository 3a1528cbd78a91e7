using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>
/// One output stream of a command: keeps the first MaxOutputBytes, counts the rest, and hands complete lines
/// to the callback as they arrive (a final unterminated line at the end).
/// </summary>
internal sealed class OutputCollector
{
    private readonly ExecStream _stream;
    private readonly long _max;
    private readonly Encoding _encoding;
    private readonly Action<ExecStream, string>? _onLine;
    private readonly int _maxLine;
    private readonly Decoder? _decoder;
    private readonly Func<bool>? _lineRoom;
    private readonly StringBuilder _line = new();
    private byte[] _kept = Array.Empty<byte>();
    private int _keptLength;
    private char[] _chars = Array.Empty<char>();
    private bool _skipping;
    private bool _skippedTail;

    /// <param name="lineRoom">
    /// Asked before each chunk is split into lines (when the encoding keeps '\n' a byte of its own, as UTF-8 and
    /// single-byte encodings do): false = nobody can take lines now. The chunk is then not decoded, its lines are
    /// counted in LinesNotShown, and splitting resumes after a line end once there is room. So a reader that must
    /// not fall behind (SSH.NET buffers what is not read, without limit) keeps pace at memory speed.
    /// </param>
    public OutputCollector(ExecStream stream, long maxBytes, Encoding encoding, Action<ExecStream, string>? onLine, int maxLine,
        Func<bool>? lineRoom = null)
    {
        _stream = stream;
        _max = Math.Max(0, maxBytes);
        _encoding = encoding;
        _onLine = onLine;
        _maxLine = Math.Max(1, maxLine);
        _decoder = onLine is null ? null : encoding.GetDecoder();
        _lineRoom = onLine is not null && (encoding is UTF8Encoding || encoding.IsSingleByte) ? lineRoom : null;
    }

    /// <summary>Lines not handed to the callback because LineRoom said there was no room.</summary>
    public long LinesNotShown { get; private set; }

    public long TotalBytes { get; private set; }
    public bool Truncated => TotalBytes > _keptLength;
    /// <summary>The first exception the line callback threw; lines stop being delivered after it.</summary>
    public Exception? CallbackFailure { get; private set; }

    public string Text => _encoding.GetString(_kept, 0, _keptLength);

    public void Append(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        TotalBytes += data.Length;
        var room = _max - _keptLength;
        if (room > 0)
        {
            var take = (int)Math.Min(room, data.Length);
            EnsureCapacity(_keptLength + take);
            data.Slice(0, take).CopyTo(_kept.AsSpan(_keptLength));
            _keptLength += take;
        }

        if (_decoder is null || CallbackFailure is not null)
        {
            return;
        }

        if (_lineRoom is not null)
        {
            if (!_skipping && !_lineRoom())
            {
                // The line begun so far is lost with the rest; it is counted when its end arrives.
                _skipping = true;
                _line.Clear();
                _decoder.Reset();
            }

            if (_skipping)
            {
                var first = data.IndexOf((byte)'\n');
                if (first < 0 || !_lineRoom())
                {
                    // Still no room (or the skipped line goes on): count the line ends, split nothing.
                    LinesNotShown += first < 0 ? 0 : data.Count((byte)'\n');
                    _skippedTail = first < 0 || data[^1] != (byte)'\n';
                    return;
                }

                // Room again: the skipped line ends here; splitting resumes with the next one.
                LinesNotShown++;
                _skipping = false;
                _skippedTail = false;
                data = data.Slice(first + 1);
                if (data.IsEmpty)
                {
                    return;
                }
            }
        }

        var needed = _encoding.GetMaxCharCount(data.Length);
        if (_chars.Length < needed)
        {
            _chars = new char[Math.Max(needed, 4096)];
        }

        var count = _decoder.GetChars(data, _chars, flush: false);
        Scan(_chars.AsSpan(0, count));
    }

    /// <summary>End of stream: flushes the decoder and the last partial line.</summary>
    public void Complete()
    {
        if (_skipping && _skippedTail)
        {
            LinesNotShown++; // a last line without a line end
        }

        if (_decoder is not null && CallbackFailure is null && !_skipping)
        {
            var count = _decoder.GetChars(ReadOnlySpan<byte>.Empty, _chars.Length > 0 ? _chars : _chars = new char[16], flush: true);
            Scan(_chars.AsSpan(0, count));
            if (_line.Length > 0)
            {
                Emit();
            }
        }
    }

    private void Scan(ReadOnlySpan<char> chars)
    {
        while (!chars.IsEmpty && CallbackFailure is null)
        {
            var newline = chars.IndexOf('\n');
            var segment = newline >= 0 ? chars.Slice(0, newline) : chars;
            while (_line.Length + segment.Length > _maxLine)
            {
                var fit = _maxLine - _line.Length;
                _line.Append(segment.Slice(0, fit));
                segment = segment.Slice(fit);
                Emit();
            }

            _line.Append(segment);
            if (newline < 0)
            {
                return;
            }

            Emit();
            chars = chars.Slice(newline + 1);
        }
    }

    private void Emit()
    {
        var length = _line.Length;
        if (length > 0 && _line[length - 1] == '\r')
        {
            length--;
        }

        var text = _line.ToString(0, length);
        _line.Clear();
        try
        {
            _onLine!(_stream, text);
        }
        catch (Exception e)
        {
            CallbackFailure = e;
        }
    }

    private void EnsureCapacity(int size)
    {
        if (_kept.Length >= size)
        {
            return;
        }

        var next = (int)Math.Min(Math.Max((long)size, Math.Max(_kept.Length * 2L, 8192)), Math.Min(_max, int.MaxValue - 64));
        Array.Resize(ref _kept, Math.Max(next, size));
    }
}

internal delegate void ByteSink(ReadOnlySpan<byte> data);

/// <summary>
/// Finds the start and exit-status markers the PTY mode prints around the command, so only the command's
/// output is kept (not the MOTD or prompt) and its exit code is known. The markers contain the byte 0x1E,
/// which the typed command line (even if echoed) only contains as the text "\036".
/// </summary>
internal sealed class PtyMarkerParser
{
    private readonly byte[] _start;
    private readonly byte[] _endPrefix;
    private byte[] _pending = Array.Empty<byte>();
    private bool _skipNewline;

    public PtyMarkerParser(string nonce)
    {
        _start = Encoding.ASCII.GetBytes($"\u001eM{nonce}S\u001e");
        _endPrefix = Encoding.ASCII.GetBytes($"\u001eM{nonce}E");
    }

    /// <summary>Digits of an exit status (and a sign) the end marker may carry; anything longer is not the marker.</summary>
    internal const int MaxExitStatusLength = 11;

    /// <summary>Bytes held back between calls (a possible marker's beginning): never more than a marker's length.</summary>
    internal int PendingBytes => _pending.Length;

    public bool Started { get; private set; }
    public bool Ended { get; private set; }
    public int? ExitCode { get; private set; }

    /// <summary>
    /// The line typed into the login shell: runs the command under the user's shell between markers, then waits for
    /// <see cref="Acknowledgement"/> before it ends. Linux hands what a process writes to a terminal on to the
    /// terminal's reader a moment later, and sshd may close the session as soon as the shell has exited: without the
    /// wait, under load, the command's last output and the exit marker were lost (seen about once in 500). Lines
    /// of input the command left unread are read and dropped; the wait gives up after 50 lines or ends of input
    /// that are not the acknowledgement (a terminal that hung up returns end of input at once), so it never spins.
    /// </summary>
    public static string CommandLine(string command, string nonce)
    {
        var quoted = "'" + command.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        return $"exec /bin/sh -c 'printf \"\\036M%sS\\036\\n\" {nonce}; \"${{SHELL:-/bin/sh}}\" -c \"$1\"; s=$?; printf \"\\036M%sE%d\\036\\n\" {nonce} \"$s\"; " +
               $"n=0; until IFS= read -r l && [ \"$l\" = {AcknowledgementWord(nonce)} ] || [ $((n=n+1)) -gt 50 ]; do :; done' moltar {quoted}\n";
    }

    /// <summary>What the client types once it has read the exit marker, so the wrapper may end (see CommandLine).</summary>
    public static byte[] Acknowledgement(string nonce) => Encoding.ASCII.GetBytes(AcknowledgementWord(nonce) + "\n");

    private static string AcknowledgementWord(string nonce) => "moltar-ack-" + nonce;

    /// <summary>Feeds received bytes; command output between the markers goes to emit.</summary>
    public void Feed(ReadOnlySpan<byte> data, ByteSink emit)
    {
        if (Ended)
        {
            return;
        }

        var buffer = new byte[_pending.Length + data.Length];
        _pending.CopyTo(buffer, 0);
        data.CopyTo(buffer.AsSpan(_pending.Length));
        _pending = Array.Empty<byte>();
        ReadOnlySpan<byte> span = buffer;

        if (!Started)
        {
            var at = span.IndexOf(_start);
            if (at < 0)
            {
                // Keep a tail that might be the start of the marker; drop the rest (MOTD, prompt).
                var keep = Math.Min(span.Length, _start.Length - 1);
                _pending = span.Slice(span.Length - keep).ToArray();
                return;
            }

            Started = true;
            _skipNewline = true;
            span = span.Slice(at + _start.Length);
        }

        if (_skipNewline)
        {
            if (span.Length > 0 && span[0] == (byte)'\r')
            {
                span = span.Slice(1);
            }

            if (span.Length > 0 && span[0] == (byte)'\n')
            {
                span = span.Slice(1);
                _skipNewline = false;
            }
            else if (span.Length > 0)
            {
                _skipNewline = false;
            }
        }

        var end = span.IndexOf(_endPrefix);
        while (end >= 0 && span.Slice(end + _endPrefix.Length) is var after && after.IndexOf((byte)0x1e) is var closing
               && (closing > MaxExitStatusLength || (closing < 0 && after.Length > MaxExitStatusLength)))
        {
            // Too long to be an exit status: output that merely looks like the marker's start (a host can print it;
            // the nonce is in the command line it was sent). Emit it and look again after it, instead of holding
            // everything that follows until a 0x1E that may never come.
            emit(span.Slice(0, end + 1));
            span = span.Slice(end + 1);
            end = span.IndexOf(_endPrefix);
        }

        if (end >= 0)
        {
            var rest = span.Slice(end + _endPrefix.Length);
            var close = rest.IndexOf((byte)0x1e);
            if (close < 0)
            {
                if (end > 0)
                {
                    emit(span.Slice(0, end));
                }

                _pending = span.Slice(end).ToArray();
                return;
            }

            if (end > 0)
            {
                emit(span.Slice(0, end));
            }

            Ended = true;
            if (int.TryParse(Encoding.ASCII.GetString(rest.Slice(0, close)), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code))
            {
                ExitCode = code;
            }

            return;
        }

        // Hold back a tail that could be the beginning of the end marker.
        var hold = 0;
        for (var k = Math.Min(span.Length, _endPrefix.Length - 1); k > 0; k--)
        {
            if (span.Slice(span.Length - k).SequenceEqual(_endPrefix.AsSpan(0, k)))
            {
                hold = k;
                break;
            }
        }

        if (span.Length - hold > 0)
        {
            emit(span.Slice(0, span.Length - hold));
        }

        _pending = span.Slice(span.Length - hold).ToArray();
    }
}
