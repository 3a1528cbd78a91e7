using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;
using Amazon.Runtime;
using Amazon.SimpleSystemsManagement;
using Amazon.SimpleSystemsManagement.Model;

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
    /// <summary>A stream is not whole: the service kept its first 24,000 characters (and the bucket could not fill it in), or -MaxOutputBytes cut it.</summary>
    public bool Truncated { get; init; }
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
}

public enum SsmEventKind { Completed, Verbose, Warning }

/// <summary>One event for the pipeline thread: an instance finished, or a message.</summary>
public sealed record SsmEvent(SsmEventKind Kind, SsmOutcome? Outcome = null, string? Text = null);

/// <summary>
/// One Invoke-MoltarCommand over Systems Manager Run Command: checks that named instances are managed nodes
/// (DescribeInstanceInformation, 50 ids a call), sends AWS-RunShellScript (one SendCommand per 50 ids, or one with
/// tag targets), then polls ListCommandInvocations with backoff (throttling lengthens it) and reads each finished
/// invocation with GetCommandInvocation. Results and messages are queued for the pipeline thread; nothing here
/// writes to PowerShell. Cancelling stops polling; <see cref="CancelSent"/> sends CancelCommand for what was sent.
/// </summary>
public sealed class SsmCommandRun : IDisposable
{
    public const string Document = "AWS-RunShellScript";
    /// <summary>GetCommandInvocation returns at most this many characters of each stream.</summary>
    public const int ServiceOutputLimit = 24_000;

    private static readonly TimeSpan FirstPoll = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan LongestPoll = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan LongestThrottledPoll = TimeSpan.FromSeconds(20);
    private static readonly Regex AgentExitLine = new(@"\n?failed to run commands: exit status -?\d+(?: \(execution timed out[^\n]*\))?\n?$", RegexOptions.CultureInvariant);

    private readonly IAmazonSimpleSystemsManagement _client;
    private readonly SsmOutputBucket? _bucket;
    private readonly SsmCommandRequest _request;
    // Outcomes are kept (one per instance); messages beyond room are dropped and counted, never waited for.
    private readonly FanOut.PipelineChannel<SsmEvent> _events = new();
    private readonly ConcurrentBag<string> _sent = new();
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
        _bucket = s3 is null || string.IsNullOrEmpty(request.OutputS3BucketName) ? null
            : new SsmOutputBucket(s3, request.OutputS3BucketName, request.OutputS3KeyPrefix, request.MaxOutputBytes);
        _request = request;
        _total = request.InstanceIds.Count;
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
    public IReadOnlyCollection<string> SentCommandIds => _sent.ToArray();

    /// <summary>The SendCommand requests this run makes for the given (managed) ids, or for the targets: what -WhatIf shows.</summary>
    internal static IReadOnlyList<SendCommandRequest> Plan(SsmCommandRequest request, IReadOnlyList<string>? managedIds = null)
    {
        SendCommandRequest Make() => new()
        {
            DocumentName = Document,
            Comment = request.Comment,
            Parameters = new Dictionary<string, List<string>>
            {
                ["commands"] = new() { request.Command },
                ["executionTimeout"] = new() { (request.TimeoutSeconds ?? 3600).ToString(CultureInfo.InvariantCulture) },
            },
            MaxConcurrency = request.MaxConcurrency.ToString(CultureInfo.InvariantCulture),
            MaxErrors = request.StopOnFirstError ? "0" : "100%",
            OutputS3BucketName = string.IsNullOrEmpty(request.OutputS3BucketName) ? null : request.OutputS3BucketName,
            OutputS3KeyPrefix = string.IsNullOrEmpty(request.OutputS3BucketName) || string.IsNullOrEmpty(request.OutputS3KeyPrefix) ? null : request.OutputS3KeyPrefix,
        };
        var ids = managedIds ?? request.InstanceIds;
        if (ids.Count == 0)
        {
            var send = Make();
            send.Targets = request.Targets.Select(t => new Target { Key = t.Key, Values = t.Values.ToList() }).ToList();
            return new[] { send };
        }
        return SsmTargets.Chunks(ids).Select(chunk =>
        {
            var send = Make();
            send.InstanceIds = chunk;
            return send;
        }).ToList();
    }

    /// <summary>The SendCommand requests this run starts with, as -WhatIf shows them (named instances before the managed-node check).</summary>
    public static IReadOnlyList<string> DescribePlan(SsmCommandRequest request) => Plan(request).Select(Describe).ToList();

    /// <summary>How a SendCommand request reads in -WhatIf and -Verbose.</summary>
    internal static string Describe(SendCommandRequest send) =>
        $"SendCommand {send.DocumentName} " +
        (send.InstanceIds is { Count: > 0 } ids ? $"InstanceIds={string.Join(",", ids)}" : "Targets=" + string.Join(" ", send.Targets.Select(t => $"{t.Key}={string.Join(",", t.Values)}"))) +
        $" MaxConcurrency={send.MaxConcurrency} MaxErrors={send.MaxErrors} executionTimeout={send.Parameters["executionTimeout"][0]}" +
        (string.IsNullOrEmpty(send.OutputS3BucketName) ? "" : $" OutputS3=s3://{send.OutputS3BucketName}/{send.OutputS3KeyPrefix}");

    public void Start(CancellationToken cancellation)
    {
        var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellation, _stop.Token);
        _task = Task.Run(async () =>
        {
            try
            {
                await RunAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (linked.Token.IsCancellationRequested)
            {
            }
            catch (MoltarException e)
            {
                Failure = e;
            }
            catch (AmazonServiceException e)
            {
                Failure = new MoltarException(SsmErrorIds.RequestFailed, FailureCategory.ConnectionError, $"Systems Manager: {e.ErrorCode}: {e.Message}", e);
            }
            catch (AmazonClientException e)
            {
                Failure = new MoltarException(SsmErrorIds.RequestFailed, FailureCategory.ConnectionError, $"Systems Manager could not be reached: {e.Message}", e);
            }
#pragma warning disable CA1031 // A bug here must end the call as Unexpected, not vanish with the task (the pipeline would wait for nothing).
            catch (Exception e)
#pragma warning restore CA1031
            {
                Failure = new MoltarException(MoltarErrorIds.Unexpected, FailureCategory.NotSpecified, MoltarFailure.Of(e).Message, e);
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
        using var timeout = new CancellationTokenSource(limit);
        var cancels = SentCommandIds.Select(id => _client.CancelCommandAsync(new CancelCommandRequest { CommandId = id }, timeout.Token)).ToArray();
        try
        {
            Task.WaitAll(cancels, limit);
        }
        catch (AggregateException)
        {
            // Best effort: a command that already ended cannot be cancelled.
        }
    }

    private void Post(SsmEventKind kind, string text) => _events.TryWrite(FanOut.PipelineItemKind.Message, new SsmEvent(kind, Text: text));

    private void Complete(SsmOutcome outcome)
    {
        Interlocked.Increment(ref _completed);
        _events.TryWrite(FanOut.PipelineItemKind.Result, new SsmEvent(SsmEventKind.Completed, outcome));
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var commands = new List<(string Id, int Expected)>();
        if (_request.InstanceIds.Count > 0)
        {
            var managed = await ManagedAsync(_request.InstanceIds, ct).ConfigureAwait(false);
            foreach (var id in _request.InstanceIds.Where(id => !managed.Contains(id)))
            {
                string message = $"{id} is not a node Systems Manager manages (no SSM agent registered: the agent must run and the instance " +
                                 "needs a role with AmazonSSMManagedInstanceCore); nothing was run on it.";
                Complete(new SsmOutcome
                {
                    InstanceId = id,
                    StatusDetails = "NotManaged",
                    StartTime = DateTimeOffset.Now,
                    Error = message,
                    Failure = SsmErrorIds.FailureOf(SsmErrorIds.NotManaged, message, id),
                });
            }
            var ids = _request.InstanceIds.Where(managed.Contains).ToList();
            foreach (var send in Plan(_request, ids).Where(_ => ids.Count > 0))
            {
                var sent = await SendAsync(send, ct).ConfigureAwait(false);
                commands.Add((sent.CommandId, send.InstanceIds.Count));
            }
        }
        else
        {
            var send = Plan(_request).Single();
            var sent = await SendAsync(send, ct).ConfigureAwait(false);
            int count = sent.TargetCount ?? 0;
            Interlocked.Exchange(ref _total, count);
            if (count == 0)
                throw new MoltarException("InstanceNotFound", FailureCategory.ObjectNotFound,
                    $"No managed instance matches {string.Join(" ", send.Targets.Select(t => $"{t.Key}={string.Join(",", t.Values)}"))}; nothing was run. " +
                    "Instances without a registered SSM agent are not targeted: check them with Get-MoltarInstance and pipe them in to see each one's state.");
            commands.Add((sent.CommandId, count));
        }
        await PollAsync(commands, ct).ConfigureAwait(false);
    }

    /// <summary>The ids among these that are managed nodes (DescribeInstanceInformation, 50 ids per call, every page).</summary>
    private async Task<HashSet<string>> ManagedAsync(IReadOnlyList<string> ids, CancellationToken ct)
    {
        var managed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var chunk in SsmTargets.Chunks(ids.Distinct(StringComparer.Ordinal).ToList()))
        {
            string? token = null;
            do
            {
                var request = new DescribeInstanceInformationRequest
                {
                    Filters = new List<InstanceInformationStringFilter> { new() { Key = "InstanceIds", Values = chunk } },
                    MaxResults = 50,
                    NextToken = token,
                };
                var page = await Throttled(c => _client.DescribeInstanceInformationAsync(request, c), "DescribeInstanceInformation", ct).ConfigureAwait(false);
                foreach (var info in page.InstanceInformationList ?? new List<InstanceInformation>())
                    managed.Add(info.InstanceId);
                token = page.NextToken;
            } while (!string.IsNullOrEmpty(token));
        }
        return managed;
    }

    private async Task<Command> SendAsync(SendCommandRequest send, CancellationToken ct)
    {
        Post(SsmEventKind.Verbose, Describe(send));
        var response = await Throttled(c => _client.SendCommandAsync(send, c), "SendCommand", ct).ConfigureAwait(false);
        _sent.Add(response.Command.CommandId);
        Post(SsmEventKind.Verbose, $"Command {response.Command.CommandId} sent ({response.Command.TargetCount} instance(s)).");
        return response.Command;
    }

    /// <summary>
    /// A call retried while Systems Manager throttles it beyond the SDK's own retries, with growing pauses (the
    /// service's rate limits are per account: other tools share them).
    /// </summary>
    private async Task<T> Throttled<T>(Func<CancellationToken, Task<T>> call, string operation, CancellationToken ct)
    {
        var pause = TimeSpan.FromSeconds(1);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await call(ct).ConfigureAwait(false);
            }
            catch (AmazonSimpleSystemsManagementException e) when (IsThrottling(e) && attempt < 8)
            {
                Post(SsmEventKind.Verbose, $"{operation} throttled by Systems Manager; trying again in {pause.TotalSeconds:0.#} s.");
                await Task.Delay(pause, ct).ConfigureAwait(false);
                pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, LongestThrottledPoll.Ticks));
            }
        }
    }

    private static bool IsThrottling(AmazonServiceException e) =>
        e.ErrorCode is "ThrottlingException" or "Throttling" or "TooManyRequestsException" or "RequestLimitExceeded";

    private async Task PollAsync(List<(string Id, int Expected)> commands, CancellationToken ct)
    {
        var reported = new HashSet<(string, string)>();
        var pending = commands.ToDictionary(c => c.Id, c => c.Expected, StringComparer.Ordinal);
        var pause = FirstPoll;
        while (pending.Count > 0)
        {
            await Task.Delay(pause, ct).ConfigureAwait(false);
            bool progress = false;
            bool throttled = false;
            foreach (var commandId in pending.Keys.ToList())
            {
                try
                {
                    foreach (var invocation in await ListAsync(commandId, ct).ConfigureAwait(false))
                    {
                        if (!IsTerminal(invocation.Status) || reported.Contains((commandId, invocation.InstanceId)))
                            continue;
                        var outcome = await ReadAsync(commandId, invocation, ct).ConfigureAwait(false);
                        reported.Add((commandId, invocation.InstanceId));
                        Complete(outcome);
                        progress = true;
                        if (--pending[commandId] == 0)
                            pending.Remove(commandId);
                    }
                }
                catch (AmazonSimpleSystemsManagementException e) when (IsThrottling(e))
                {
                    throttled = true;
                }
            }
            if (throttled)
            {
                pause = TimeSpan.FromTicks(Math.Min(Math.Max(pause.Ticks * 2, TimeSpan.FromSeconds(1).Ticks), LongestThrottledPoll.Ticks));
                Post(SsmEventKind.Verbose, $"Systems Manager throttled polling; next poll in {pause.TotalSeconds:0.#} s.");
            }
            else
            {
                pause = progress ? FirstPoll : TimeSpan.FromTicks(Math.Min((long)(pause.Ticks * 1.5), LongestPoll.Ticks));
            }
        }
    }

    private async Task<List<CommandInvocation>> ListAsync(string commandId, CancellationToken ct)
    {
        var all = new List<CommandInvocation>();
        string? token = null;
        do
        {
            var page = await _client.ListCommandInvocationsAsync(new ListCommandInvocationsRequest
            {
                CommandId = commandId,
                MaxResults = 50,
                NextToken = token,
            }, ct).ConfigureAwait(false);
            all.AddRange(page.CommandInvocations ?? new List<CommandInvocation>());
            token = page.NextToken;
        } while (!string.IsNullOrEmpty(token));
        return all;
    }

    private static bool IsTerminal(CommandInvocationStatus? status) =>
        status is not null && (status == CommandInvocationStatus.Success || status == CommandInvocationStatus.Failed ||
                               status == CommandInvocationStatus.TimedOut || status == CommandInvocationStatus.Cancelled);

    private async Task<SsmOutcome> ReadAsync(string commandId, CommandInvocation invocation, CancellationToken ct)
    {
        var detail = await Throttled(c => _client.GetCommandInvocationAsync(new GetCommandInvocationRequest
        {
            CommandId = commandId,
            InstanceId = invocation.InstanceId,
        }, c), "GetCommandInvocation", ct).ConfigureAwait(false);
        var streams = _bucket is null ? null : await _bucket.ReadAsync(detail, ct).ConfigureAwait(false);
        return ToOutcome(detail, _request.TimeoutSeconds ?? 3600, streams);
    }

    /// <summary>
    /// An invocation as Moltar reports it: exit code, both streams (less the agent's own exit line), status and error id.
    /// <paramref name="streams"/>: the streams read whole from the output bucket, else the service's (at most 24,000 characters each).
    /// </summary>
    public static SsmOutcome ToOutcome(GetCommandInvocationResponse detail, int timeoutSeconds, SsmStreams? streams = null)
    {
        streams ??= SsmStreams.Of(detail);
        string stdout = streams.Stdout;
        bool truncated = streams.Truncated;
        string stderr = AgentExitLine.Replace(streams.Stderr, "");
        var start = ParseTime(detail.ExecutionStartDateTime) ?? DateTimeOffset.Now;
        var end = ParseTime(detail.ExecutionEndDateTime) ?? start;
        string details = detail.StatusDetails ?? detail.Status?.Value ?? "";
        int? code = detail.ResponseCode is { } rc && rc >= 0 ? rc : null;
        string id = detail.InstanceId;
        var (errorId, message, exitCode) = details switch
        {
            "Success" => ((string?)null, (string?)null, (int?)0),
            "Failed" => (SsmErrorIds.CommandFailed, $"{id}: the command exited with code {code}.", code),
            "ExecutionTimedOut" => (SsmErrorIds.Timeout, $"{id}: the command did not finish within {timeoutSeconds} s (-TimeoutSeconds); Systems Manager stopped it.", null),
            "DeliveryTimedOut" => (SsmErrorIds.DeliveryTimedOut, $"{id}: the SSM agent did not pick the command up before the delivery timeout; nothing ran.", null),
            "Undeliverable" => (SsmErrorIds.Undeliverable, $"{id}: Systems Manager could not deliver the command: the instance's SSM agent is not reporting " +
                                                         "(instance stopped, no network path to Systems Manager, or its role lost AmazonSSMManagedInstanceCore); nothing ran.", null),
            "Terminated" => (SsmErrorIds.Terminated, $"{id}: not run: another instance failed first and -ErrorAction Stop (MaxErrors 0) stopped the command.", null),
            "AccessDenied" => (SsmErrorIds.AccessDenied, $"{id}: access denied: Systems Manager or the instance refused the command document.", null),
            "Cancelled" or "Canceled" => (SsmErrorIds.Cancelled, $"{id}: cancelled.", null),
            _ => (SsmErrorIds.Failed, $"{id}: the invocation ended {detail.Status?.Value} ({details}).", code),
        };
        return new SsmOutcome
        {
            InstanceId = id,
            StatusDetails = details,
            ExitCode = exitCode,
            Output = stdout,
            // As over SSH: the command's stderr; where nothing ran (or it was stopped), the reason first.
            Error = errorId is null or SsmErrorIds.CommandFailed ? stderr : message + (stderr.Length > 0 ? "\n" + stderr : ""),
            Truncated = truncated,
            OutputProblem = streams.Problem,
            StartTime = start,
            Duration = end >= start ? end - start : TimeSpan.Zero,
            Failure = SsmErrorIds.FailureOf(errorId, message, id),
        };
    }

    private static DateTimeOffset? ParseTime(string? text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) ? time : null;

    public void Dispose()
    {
        _stop.Cancel();
        try { _task?.Wait(TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
        _stop.Dispose();
        _client.Dispose();
        _bucket?.Dispose();
    }
}
