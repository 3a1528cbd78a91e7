using System.Threading.Channels;

namespace Moltar.Engine.FanOut;

/// <summary>What an item handed to the pipeline thread is, which decides what happens when that thread falls behind.</summary>
public enum PipelineItemKind
{
    /// <summary>
    /// A result, an error, or the start or end of an item of work: always queued at once, never dropped, and the writer
    /// never waits. Bounded by the work itself: one or two per item the pipeline thread added (kept per host).
    /// </summary>
    Result,
    /// <summary>
    /// A warning, verbose or status message: queued while fewer than MessageCapacity messages wait; beyond that dropped
    /// and counted (<see cref="PipelineChannel{T}.MessagesDropped"/>), never waited for.
    /// </summary>
    Message,
    /// <summary>
    /// A live output line: queued while fewer than LineCapacity lines and LineCharCapacity characters wait; beyond that
    /// dropped and counted (<see cref="PipelineChannel{T}.LinesDropped"/>), never waited for. One line longer than
    /// LineCharCapacity passes when no other line waits.
    /// </summary>
    Line,
}

/// <summary>How much a <see cref="PipelineChannel{T}"/> holds before it drops lines and messages.</summary>
public sealed record PipelineChannelOptions
{
    public int LineCapacity { get; init; } = 10_000;
    /// <summary>A host printing long lines fills memory long before 10,000 of them wait: characters are counted too.</summary>
    public long LineCharCapacity { get; init; } = 4L * 1024 * 1024;
    public int MessageCapacity { get; init; } = 10_000;
}

/// <summary>
/// The one way from worker threads to the pipeline thread (the only thread that may write to PowerShell): a
/// System.Threading.Channels channel that writers never wait on, bounded by a policy per kind of item
/// (<see cref="PipelineItemKind"/>): results and errors are always kept, lines and messages beyond their room are
/// dropped and counted. So a worker can never deadlock against the pipeline thread (it never waits for it), and a
/// pipeline thread that falls behind (a slow consumer downstream) costs dropped lines, never unbounded memory.
/// Items come out in the order they were written. Any thread writes; one thread (the pipeline's) reads.
/// </summary>
public sealed class PipelineChannel<T>
{
    private readonly Channel<(T Item, PipelineItemKind Kind, int Chars)> _channel =
        Channel.CreateUnbounded<(T, PipelineItemKind, int)>(new UnboundedChannelOptions { SingleWriter = false, AllowSynchronousContinuations = false });
    private readonly PipelineChannelOptions _options;
    private readonly object _room = new();
    private int _lines;
    private long _chars;
    private int _messages;
    private int _queued;
    private int _peakQueued;
    private long _linesDropped;
    private long _messagesDropped;
    private Task<bool>? _readable;

    public PipelineChannel(PipelineChannelOptions? options = null) => _options = options ?? new PipelineChannelOptions();

    /// <summary>Lines refused because LineCapacity or LineCharCapacity was reached (the pipeline thread was behind).</summary>
    public long LinesDropped => Interlocked.Read(ref _linesDropped);
    /// <summary>Messages refused because MessageCapacity was reached.</summary>
    public long MessagesDropped => Interlocked.Read(ref _messagesDropped);
    /// <summary>Items waiting for the pipeline thread now.</summary>
    public int Queued => Volatile.Read(ref _queued);
    /// <summary>The most items that ever waited at once (what the channel's memory grew to).</summary>
    public int PeakQueued => Volatile.Read(ref _peakQueued);
    /// <summary>Whether a line would be queued now (a hint: another writer may take the room first).</summary>
    public bool HasLineRoom
    {
        get
        {
            lock (_room)
            {
                return _lines < Math.Max(1, _options.LineCapacity) && _chars < Math.Max(1, _options.LineCharCapacity);
            }
        }
    }

    /// <summary>
    /// Queues an item without waiting. Returns false when it was not queued: a line or message without room (counted),
    /// or anything after <see cref="Complete"/>. A Result is always queued until then.
    /// </summary>
    public bool TryWrite(PipelineItemKind kind, T item, int chars = 0)
    {
        lock (_room)
        {
            switch (kind)
            {
                case PipelineItemKind.Line:
                    if (_lines >= Math.Max(1, _options.LineCapacity) || _lines > 0 && _chars + chars > Math.Max(1, _options.LineCharCapacity))
                    {
                        _linesDropped++;
                        return false;
                    }
                    break;
                case PipelineItemKind.Message:
                    if (_messages >= Math.Max(1, _options.MessageCapacity))
                    {
                        _messagesDropped++;
                        return false;
                    }
                    break;
            }

            if (!_channel.Writer.TryWrite((item, kind, chars)))
            {
                return false; // completed: nobody reads any more
            }

            if (kind == PipelineItemKind.Line)
            {
                _lines++;
                _chars += chars;
            }
            else if (kind == PipelineItemKind.Message)
            {
                _messages++;
            }

            _peakQueued = Math.Max(_peakQueued, ++_queued);
            return true;
        }
    }

    /// <summary>Ends writing: items already queued are still read; the ones written after are refused.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    /// <summary>Takes the next item if one waits. Reader thread only.</summary>
    public bool TryRead(out T item)
    {
        if (!_channel.Reader.TryRead(out var entry))
        {
            item = default!;
            return false;
        }

        lock (_room)
        {
            _queued--;
            if (entry.Kind == PipelineItemKind.Line)
            {
                _lines--;
                _chars -= entry.Chars;
            }
            else if (entry.Kind == PipelineItemKind.Message)
            {
                _messages--;
            }
        }

        item = entry.Item;
        return true;
    }

    /// <summary>Takes the next item, waiting up to <paramref name="millisecondsTimeout"/> (-1: until one comes or the end). Reader thread only.</summary>
    public bool TryRead(out T item, int millisecondsTimeout)
    {
        if (TryRead(out item))
        {
            return true;
        }

        return millisecondsTimeout != 0 && Readable.Wait(millisecondsTimeout) && TryRead(out item);
    }

    /// <summary>True once <see cref="Complete"/> was called and every item was read.</summary>
    public bool IsDrained => _channel.Reader.Completion.IsCompleted;

    /// <summary>
    /// A task that ends when an item can be read or the channel has ended: for a reader that waits on this and other
    /// things at once (Task.WaitAny). Reader thread only; the same task until it ends, so waiting costs nothing.
    /// </summary>
    public Task Readable
    {
        get
        {
            if (_readable is not { IsCompleted: false })
            {
                _readable = _channel.Reader.WaitToReadAsync().AsTask();
            }

            return _readable;
        }
    }
}
