using Amazon.SimpleSystemsManagement;

namespace Moltar.Engine.Ssm;

/// <summary>What to run over SSM Run Command, and on which instances (ids, or server-side tag targets).</summary>
public sealed record SsmCommandRequest
{
    public required string Command { get; init; }
    /// <summary>Instances named by id (the pipeline, -InstanceId); checked against the managed nodes first.</summary>
    public IReadOnlyList<string> InstanceIds { get; init; } = Array.Empty<string>();
    /// <summary>Tag targets the service resolves (the selection parameters); used when there are no ids.</summary>
    public IReadOnlyList<SsmTarget> Targets { get; init; } = Array.Empty<SsmTarget>();
    /// <summary>-ThrottleLimit: MaxConcurrency.</summary>
    public int MaxConcurrency { get; init; } = 32;
    /// <summary>-ErrorAction Stop: MaxErrors 0 (after the first failure the service starts no more); otherwise 100%.</summary>
    public bool StopOnFirstError { get; init; }
    /// <summary>-TimeoutSeconds: the document's executionTimeout (the service default is 3600).</summary>
    public int? TimeoutSeconds { get; init; }
    public string Comment { get; init; } = "Moltar Invoke-MoltarCommand";
    /// <summary>-OutputS3BucketName: the agent also writes each stream whole there; truncated streams are read back from it.</summary>
    public string? OutputS3BucketName { get; init; }
    /// <summary>-OutputS3KeyPrefix: the folder in the bucket the agent writes under.</summary>
    public string? OutputS3KeyPrefix { get; init; }
    /// <summary>-MaxOutputBytes: bytes of each stream read back from the bucket.</summary>
    public long MaxOutputBytes { get; init; } = Ssh.ExecOptions.DefaultMaxOutputBytes;
}

/// <summary>What one instance's invocation came to.</summary>
public sealed record SsmOutcome
{
    public required string InstanceId { get; init; }
    /// <summary>The invocation's StatusDetails (Success, Failed, ExecutionTimedOut, Undeliverable...), or NotManaged.</summary>
    public required string StatusDetails { get; init; }
    public int? ExitCode { get; init; }
    public string Output { get; init; } = "";
    public string Error { get; init; } = "";
    /// <summary>Standard output is not whole: the service kept its first 24,000 characters (and the bucket could not fill it in), or -MaxOutputBytes cut it.</summary>
    public bool OutputTruncated { get; init; }
    /// <summary>Standard error is not whole (as <see cref="OutputTruncated"/>).</summary>
    public bool ErrorTruncated { get; init; }
    /// <summary>A stream is not whole.</summary>
    public bool Truncated => OutputTruncated || ErrorTruncated;
    /// <summary>Why a stream is not whole though an output bucket was given: unreadable (starts with SsmOutputUnreadable) or past -MaxOutputBytes; else null.</summary>
    public string? OutputProblem { get; init; }
    public DateTimeOffset StartTime { get; init; }
    public TimeSpan Duration { get; init; }
    /// <summary>Null when the command succeeded; else the failure (an SsmErrorIds id), naming the instance.</summary>
    public MoltarFailure? Failure { get; init; }
    public string? ErrorId => Failure?.ErrorId;
    /// <summary>Why it failed, in words (for the error record).</summary>
    public string? ErrorMessage => Failure?.Message;
    public bool Succeeded => Failure is null;

    /// <summary>
    /// The warning for output that is not whole, null when it is: why the bucket did not fill it in (SsmOutputUnreadable),
    /// or that the service keeps 24,000 characters and -OutputS3BucketName would have it read whole.
    /// </summary>
    public string? OutputWarning(string who) =>
        OutputProblem ?? (Truncated
            ? $"{who}: Systems Manager returns the first {SsmCommandPoller.ServiceOutputLimit} characters of each stream; " +
              "the rest of the output is not in the result (-OutputS3BucketName has the agent write it whole to S3, and Moltar reads it from there)."
            : null);
}

public enum SsmEventKind { Completed, Verbose, Warning }

/// <summary>One event for the pipeline thread: an instance finished, or a message.</summary>
public sealed record SsmEvent(SsmEventKind Kind, SsmOutcome? Outcome = null, string? Text = null);

/// <summary>
/// One Invoke-MoltarCommand over Systems Manager Run Command: the request run by an <see cref="SsmCommandPoller"/> on a
/// task of its own, each instance's outcome and the poller's messages queued for the pipeline thread; nothing here
/// writes to PowerShell. Cancelling stops polling; <see cref="CancelSent"/> sends CancelCommand for what was sent.
/// </summary>
public sealed class SsmCommandRun : IDisposable
{
    private readonly IAmazonSimpleSystemsManagement _client;
    private readonly SsmOutputBucket? _bucket;
    private readonly SsmCommandRequest _request;
    private readonly SsmCommandPoller _poller;
    // Outcomes are kept (one per instance); messages beyond room are dropped and counted, never waited for.
    private readonly FanOut.PipelineChannel<SsmEvent> _events = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _task;
    private int _completed;
    private int _total;

    /// <summary>A run with a Systems Manager client of the session (its region, credentials and SSM endpoint).</summary>
    public SsmCommandRun(Aws.AwsSession session, SsmCommandRequest request)
        : this(session.CreateSsmClient(), request,
               request.OutputS3BucketName is { Length: > 0 } ? session.CreateS3Client() : null)
    {
    }

    internal SsmCommandRun(IAmazonSimpleSystemsManagement client, SsmCommandRequest request, Amazon.S3.IAmazonS3? s3 = null)
    {
        _client = client;
        _bucket = SsmOutputBucket.For(s3, request);
        _request = request;
        _total = request.InstanceIds.Count;
        _poller = new SsmCommandPoller(client, _bucket, text => Post(SsmEventKind.Verbose, text));
    }

    /// <summary>Instances known so far (ids given, or the targets' count once the service resolved them).</summary>
    public int TotalCount => Volatile.Read(ref _total);
    public int CompletedCount => Volatile.Read(ref _completed);
    public bool IsFinished => _events.IsDrained;
    /// <summary>The channel the events come through (its count of dropped messages, its Readable task).</summary>
    public FanOut.PipelineChannel<SsmEvent> Events => _events;
    /// <summary>What ended the run early (a Systems Manager call that kept failing), else null.</summary>
    public MoltarException? Failure { get; private set; }
    /// <summary>The commands sent, by id (what CancelCommand cancels).</summary>
    public IReadOnlyCollection<string> SentCommandIds => _poller.SentCommandIds;

    /// <summary>The SendCommand requests this run starts with, as -WhatIf shows them (named instances before the managed-node check).</summary>
    public static IReadOnlyList<string> DescribePlan(SsmCommandRequest request) => SsmCommandPoller.Plan(request).Select(SsmCommandPoller.Describe).ToList();

    public void Start(CancellationToken cancellation)
    {
        var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellation, _stop.Token);
        _task = Task.Run(async () =>
        {
            try
            {
                await _poller.RunAsync(_request, Complete, count => Interlocked.Exchange(ref _total, count), linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (linked.Token.IsCancellationRequested)
            {
            }
#pragma warning disable CA1031 // A bug here must end the call as Unexpected, not vanish with the task (the pipeline would wait for nothing).
            catch (Exception e)
#pragma warning restore CA1031
            {
                Failure = SsmCommandPoller.FailureOf(e) ?? new MoltarException(MoltarErrorIds.Unexpected, FailureCategory.NotSpecified, MoltarFailure.Of(e).Message, e);
            }
            finally
            {
                linked.Dispose();
                _events.Complete(); // after Failure is set: the reader sees the end, then the failure
            }
        }, CancellationToken.None);
    }

    public bool TryTake(out SsmEvent? e, int millisecondsTimeout) => _events.TryRead(out e, millisecondsTimeout);

    /// <summary>Stops polling and cancels every command sent (CancelCommand), waiting at most <paramref name="limit"/>.</summary>
    public void CancelSent(TimeSpan limit)
    {
        _stop.Cancel();
        _poller.CancelSent(limit);
    }

    private void Post(SsmEventKind kind, string text) => _events.TryWrite(FanOut.PipelineItemKind.Message, new SsmEvent(kind, Text: text));

    private void Complete(SsmOutcome outcome)
    {
        Interlocked.Increment(ref _completed);
        _events.TryWrite(FanOut.PipelineItemKind.Result, new SsmEvent(SsmEventKind.Completed, outcome));
    }

    public void Dispose()
    {
        _stop.Cancel();
        try { _task?.Wait(TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
        _stop.Dispose();
        _client.Dispose();
        _bucket?.Dispose();
    }
}
