using System.Diagnostics;

namespace Moltar.Engine.FanOut;

public sealed class FanOutOptions
{
    /// <summary>At most this many items run at once (each on a dedicated thread); 1 runs them one at a time, in the order added.</summary>
    public int ThrottleLimit { get; init; } = 32;
    /// <summary>After an item fails, items not yet started are skipped (for rolling work such as deploys).</summary>
    public bool StopOnFailure { get; init; }
    /// <summary>Output lines queued but not yet taken by the pipeline thread; more are dropped and counted (never waited for).</summary>
    public int OutputCapacity { get; init; } = 10_000;
    /// <summary>
    /// Characters of output queued, whatever the number of lines (a host printing long lines fills memory long before
    /// 10,000 of them are queued); more are dropped and counted. One line longer than this still passes, alone.
    /// </summary>
    public long OutputCharCapacity { get; init; } = 4L * 1024 * 1024;
    /// <summary>Warning, verbose and status messages queued; more are dropped and counted (never waited for).</summary>
    public int MessageCapacity { get; init; } = 10_000;
    public string ThreadName { get; init; } = "Moltar fan-out";
}

public enum FanOutEventKind
{
    /// <summary>An item started (Item, Index).</summary>
    Started,
    /// <summary>A line of output from an item (Text; IsError for stderr).</summary>
    Output,
    /// <summary>A warning (Text; Item may be unset for call-wide warnings).</summary>
    Warning,
    /// <summary>A verbose message (Text; Item may be unset).</summary>
    Verbose,
    /// <summary>An item reported what it is doing (Text), e.g. "connecting".</summary>
    Status,
    /// <summary>An item finished: Result, or Error (SshFailure, OperationCanceledException, ...), or Skipped.</summary>
    Completed,
}

/// <summary>Something the pipeline thread should write: output, messages, or an item's result.</summary>
public sealed class FanOutEvent<TItem, TResult>
{
    public FanOutEventKind Kind { get; init; }
    /// <summary>The item the event is about; default when HasItem is false (call-wide messages).</summary>
    public TItem? Item { get; init; }
    public bool HasItem { get; init; }
    /// <summary>The item's position in the order added (0-based); -1 for call-wide messages.</summary>
    public int Index { get; init; } = -1;
    public string? Text { get; init; }
    /// <summary>For Output: the line came from standard error.</summary>
    public bool IsError { get; init; }
    /// <summary>For Completed: the work's return value (when Error is null and not Skipped).</summary>
    public TResult? Result { get; init; }
    /// <summary>For Completed: what the work threw (or why it was skipped).</summary>
    public Exception? Error { get; init; }
    /// <summary>For Completed: the item never ran (cancelled before it started, or StopOnFailure).</summary>
    public bool Skipped { get; init; }
    /// <summary>For Completed: the item failed (an error other than cancellation, a result the runner's isFailure judged failed, or skipped).</summary>
    public bool Failed { get; init; }
    /// <summary>For Completed: how long the item ran.</summary>
    public TimeSpan Duration { get; init; }
    /// <summary>Items finished and items added so far, when the event was made (for progress).</summary>
    public int CompletedCount { get; init; }
    public int TotalCount { get; init; }

    public override string ToString() => $"{Kind} #{Index} {Text ?? Error?.Message ?? Result?.ToString()}";
}

/// <summary>What a work function gets: its item, the cancellation token, and a thread-safe way to report.</summary>
public sealed class FanOutContext<TItem, TResult>
{
    private readonly FanOutRunner<TItem, TResult> _runner;

    internal FanOutContext(FanOutRunner<TItem, TResult> runner, TItem item, int index, CancellationToken token)
    {
        _runner = runner;
        Item = item;
        Index = index;
        CancellationToken = token;
    }

    public TItem Item { get; }
    public int Index { get; }
    /// <summary>Fires on Cancel/Dispose or the caller's token: stop within a second or two and close connections.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>
    /// Queues a line of output if there is room now (OutputCapacity, OutputCharCapacity), else returns false at once:
    /// the line is dropped and counted, never waited for (SSH.NET buffers whatever its reader does not take, without limit).
    /// </summary>
    public bool Output(string line, bool isError = false) => _runner.PostOutput(Item, Index, line, isError);
    /// <summary>Whether a line of output would be queued now (a hint: another worker may take the room first).</summary>
    public bool HasOutputRoom => _runner.HasOutputRoom;
    public void Warning(string message) => _runner.Post(FanOutEventKind.Warning, message, Item, Index);
    public void Verbose(string message) => _runner.Post(FanOutEventKind.Verbose, message, Item, Index);
    public void Status(string status) => _runner.Post(FanOutEventKind.Status, status, Item, Index);
}

/// <summary>Raised as the Error of a skipped item.</summary>
public sealed class FanOutSkippedException(string message) : Exception(message);

/// <summary>
/// Runs work for many items on a bounded pool of dedicated threads (not the shared ThreadPool: SSH.NET's
/// connect blocks its thread). Items are added as they arrive (Add), results and output come back as events
/// in one <see cref="PipelineChannel{T}"/> that only the pipeline thread drains (TryTake / ReadAll): workers never
/// touch PowerShell and never wait for that thread (results are kept, lines and messages beyond room dropped and counted).
/// Each item's Completed event is queued the moment it finishes. Cancel (or the token, or Dispose) skips
/// items not started and signals the running ones through their token.
/// </summary>
public sealed class FanOutRunner<TItem, TResult> : IDisposable
{
    private readonly Func<FanOutContext<TItem, TResult>, TResult> _work;
    private readonly Func<TResult, bool>? _isFailure;
    private readonly FanOutOptions _options;
    private readonly int _throttle;
    private readonly CancellationTokenSource _cts;
    private readonly CancellationTokenRegistration _callerRegistration;
    private readonly object _gate = new();
    private readonly Queue<(TItem Item, int Index)> _pending = new();
    private readonly List<Thread> _threads = new();
    private readonly PipelineChannel<FanOutEvent<TItem, TResult>> _events;
    private int _added;
    private int _completed;
    private int _idle;
    private bool _addingComplete;
    private bool _finishQueued;
    private bool _stopped;

#pragma warning disable CA1068 // isFailure came later as an optional last argument; callers name it
    public FanOutRunner(Func<FanOutContext<TItem, TResult>, TResult> work, FanOutOptions? options = null,
        CancellationToken cancellationToken = default, Func<TResult, bool>? isFailure = null)
#pragma warning restore CA1068
    {
        _work = work ?? throw new ArgumentNullException(nameof(work));
        _options = options ?? new FanOutOptions();
        _throttle = Math.Clamp(_options.ThrottleLimit, 1, 1024);
        _isFailure = isFailure;
        _events = new PipelineChannel<FanOutEvent<TItem, TResult>>(new PipelineChannelOptions
        {
            LineCapacity = _options.OutputCapacity,
            LineCharCapacity = _options.OutputCharCapacity,
            MessageCapacity = _options.MessageCapacity,
        });
        _cts = new CancellationTokenSource();
        if (cancellationToken.CanBeCanceled)
        {
            _callerRegistration = cancellationToken.UnsafeRegister(static r => ((FanOutRunner<TItem, TResult>)r!).Cancel(), this);
        }
    }

    public CancellationToken CancellationToken => _cts.Token;
    public int TotalCount => Volatile.Read(ref _added);
    public int CompletedCount => Volatile.Read(ref _completed);
    /// <summary>True once every item has completed and the last event was taken.</summary>
    public bool IsFinished => _events.IsDrained;
    /// <summary>The channel the events come through (its counts of dropped lines and messages, its Readable task).</summary>
    public PipelineChannel<FanOutEvent<TItem, TResult>> Events => _events;
    public bool IsCancellationRequested => _cts.IsCancellationRequested;

    /// <summary>Queues an item; it starts as soon as a worker is free. Call from one thread (the pipeline's).</summary>
    public void Add(TItem item)
    {
        lock (_gate)
        {
            if (_addingComplete)
            {
                throw new InvalidOperationException("Complete() was already called.");
            }

            var index = _added;
            Interlocked.Increment(ref _added);
            if (_cts.IsCancellationRequested || _stopped)
            {
                QueueSkipped(item, index, _cts.IsCancellationRequested ? "cancelled before it started" : "skipped after an earlier failure");
                return;
            }

            _pending.Enqueue((item, index));
            if (_idle > 0)
            {
                Monitor.Pulse(_gate);
            }
            else if (_threads.Count < _throttle)
            {
                var thread = new Thread(WorkerLoop)
                {
                    IsBackground = true,
                    Name = $"{_options.ThreadName} {_threads.Count + 1}",
                };
                _threads.Add(thread);
                thread.Start();
            }
        }
    }

    /// <summary>No more items will be added; workers exit when the queue is empty.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _addingComplete = true;
            Monitor.PulseAll(_gate);
            QueueFinishIfDone();
        }
    }

    /// <summary>Queues a message from outside a work item (e.g. the SSH connector's log). Thread-safe.</summary>
    public void Post(FanOutEventKind kind, string text) => Enqueue(KindOf(kind), new FanOutEvent<TItem, TResult>
    {
        Kind = kind,
        Text = text,
        CompletedCount = CompletedCount,
        TotalCount = TotalCount,
    });

    /// <summary>Queues a message about an item from outside its work (Index -1). Thread-safe.</summary>
    public void Post(FanOutEventKind kind, string text, TItem item) => Post(kind, text, item, -1);

    internal void Post(FanOutEventKind kind, string text, TItem item, int index) => Enqueue(KindOf(kind), new FanOutEvent<TItem, TResult>
    {
        Kind = kind,
        Text = text,
        Item = item,
        HasItem = true,
        Index = index,
        CompletedCount = CompletedCount,
        TotalCount = TotalCount,
    });

    internal bool HasOutputRoom => _events.HasLineRoom;

    /// <summary>Started is kept (one per item); warnings, verbose and status are messages (dropped and counted beyond room).</summary>
    private static PipelineItemKind KindOf(FanOutEventKind kind) =>
        kind is FanOutEventKind.Started or FanOutEventKind.Completed ? PipelineItemKind.Result : PipelineItemKind.Message;

    internal bool PostOutput(TItem item, int index, string line, bool isError)
    {
        if (_cts.IsCancellationRequested)
        {
            return false; // nobody wants the rest of the output
        }

        return _events.TryWrite(PipelineItemKind.Line, new FanOutEvent<TItem, TResult>
        {
            Kind = FanOutEventKind.Output,
            Text = line,
            IsError = isError,
            Item = item,
            HasItem = true,
            Index = index,
        }, line.Length);
    }

    /// <summary>
    /// Takes the next event, waiting up to millisecondsTimeout (0 = just look, -1 = until one comes).
    /// Returns false on timeout and when everything is done (then IsFinished is true). Pipeline thread only.
    /// </summary>
    public bool TryTake(out FanOutEvent<TItem, TResult> next, int millisecondsTimeout = 0) => _events.TryRead(out next, millisecondsTimeout);

    /// <summary>Every event until all items are done (call after Complete). Pipeline thread only.</summary>
    public IEnumerable<FanOutEvent<TItem, TResult>> ReadAll()
    {
        while (!IsFinished)
        {
            if (TryTake(out var ev, Timeout.Infinite))
            {
                yield return ev;
            }
        }
    }

    /// <summary>Skips items not started and cancels the running ones' tokens. Returns at once.</summary>
    public void Cancel()
    {
        lock (_gate)
        {
            if (_cts.IsCancellationRequested)
            {
                return;
            }

            try
            {
                _cts.Cancel();
            }
            catch (AggregateException)
            {
                // a work item's registration threw; the token is cancelled regardless
            }

            SkipPending("cancelled before it started");
            Monitor.PulseAll(_gate);
            QueueFinishIfDone();
        }
    }

    /// <summary>Waits for the worker threads to end (they end after Complete or Cancel).</summary>
    public bool WaitForWorkers(TimeSpan timeout)
    {
        Thread[] threads;
        lock (_gate)
        {
            threads = _threads.ToArray();
        }

        var clock = Stopwatch.StartNew();
        foreach (var t in threads)
        {
            var left = timeout - clock.Elapsed;
            if (left < TimeSpan.Zero || !t.Join(left))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Cancels what is still running and waits up to 2 s for the workers (they are background threads).</summary>
    public void Dispose()
    {
        Cancel();
        lock (_gate)
        {
            _addingComplete = true;
            Monitor.PulseAll(_gate);
        }

        WaitForWorkers(TimeSpan.FromSeconds(2));
        _callerRegistration.Dispose();
    }

    private void WorkerLoop()
    {
        while (true)
        {
            (TItem Item, int Index) next;
            lock (_gate)
            {
                while (_pending.Count == 0)
                {
                    if (_addingComplete || _cts.IsCancellationRequested)
                    {
                        return;
                    }

                    _idle++;
                    Monitor.Wait(_gate);
                    _idle--;
                }

                next = _pending.Dequeue();
            }

            RunOne(next.Item, next.Index);
        }
    }

    private void RunOne(TItem item, int index)
    {
        Post(FanOutEventKind.Started, "", item, index);
        var clock = Stopwatch.StartNew();
        TResult? result = default;
        Exception? error = null;
        try
        {
            result = _work(new FanOutContext<TItem, TResult>(this, item, index, _cts.Token));
        }
        catch (Exception e)
        {
            error = e;
        }

        var failed = error is not null && error is not OperationCanceledException
            || error is null && _isFailure is not null && _isFailure(result!);
        lock (_gate)
        {
            var done = Interlocked.Increment(ref _completed);
            Enqueue(PipelineItemKind.Result, new FanOutEvent<TItem, TResult>
            {
                Kind = FanOutEventKind.Completed,
                Item = item,
                HasItem = true,
                Index = index,
                Result = result,
                Error = error,
                Failed = failed,
                Duration = clock.Elapsed,
                CompletedCount = done,
                TotalCount = TotalCount,
            });
            if (failed && _options.StopOnFailure && !_stopped)
            {
                _stopped = true;
                SkipPending("skipped after an earlier failure");
            }

            QueueFinishIfDone();
        }
    }

    private void SkipPending(string reason)
    {
        while (_pending.Count > 0)
        {
            var (item, index) = _pending.Dequeue();
            QueueSkipped(item, index, reason);
        }
    }

    private void QueueSkipped(TItem item, int index, string reason)
    {
        var done = Interlocked.Increment(ref _completed);
        Enqueue(PipelineItemKind.Result, new FanOutEvent<TItem, TResult>
        {
            Kind = FanOutEventKind.Completed,
            Item = item,
            HasItem = true,
            Index = index,
            Skipped = true,
            Failed = true,
            Error = _cts.IsCancellationRequested
                ? new OperationCanceledException(reason, _cts.Token)
                : new FanOutSkippedException(reason),
            CompletedCount = done,
            TotalCount = TotalCount,
        });
    }

    private void QueueFinishIfDone()
    {
        if (_addingComplete && !_finishQueued && Volatile.Read(ref _completed) == Volatile.Read(ref _added))
        {
            _finishQueued = true;
            _events.Complete(); // the reader sees the end once it took every event before it
        }
    }

    private void Enqueue(PipelineItemKind kind, FanOutEvent<TItem, TResult> ev) => _events.TryWrite(kind, ev);
}
