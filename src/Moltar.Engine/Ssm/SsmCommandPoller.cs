using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;
using Amazon.Runtime;
using Amazon.SimpleSystemsManagement;
using Amazon.SimpleSystemsManagement.Model;

namespace Moltar.Engine.Ssm;

/// <summary>
/// The one way Moltar runs a command through Systems Manager Run Command and waits for it: for Invoke-MoltarCommand's
/// many instances (<see cref="SsmCommandRun"/>) and for each deploy step on one instance (<see cref="SsmStepRunner"/>).
/// Checks that named instances are managed nodes (DescribeInstanceInformation, 50 ids a call), sends AWS-RunShellScript
/// (one SendCommand per 50 ids, or one with tag targets), then polls ListCommandInvocations with backoff (throttling
/// lengthens it; invocations the service does not list yet, right after SendCommand, are waited for) and reads each
/// finished invocation with GetCommandInvocation, and a stream Systems Manager truncated from the output bucket.
/// One poller per run: it owns no client and remembers the commands it sent, which <see cref="CancelSent"/> cancels.
/// </summary>
internal sealed class SsmCommandPoller
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
    private readonly Action<string> _verbose;
    private readonly ManagedNodes? _known;
    private readonly ConcurrentBag<string> _sent = new();

    /// <summary>
    /// A poller on the caller's clients; <paramref name="bucket"/> is where truncated streams are read back from
    /// (<see cref="SsmOutputBucket.For"/> of the same request; null: none), <paramref name="verbose"/> hears what is sent
    /// and when Systems Manager throttles (on the poller's thread). <paramref name="known"/>: managed nodes already
    /// checked by earlier runs (a deploy's steps), which are not asked about again.
    /// </summary>
    public SsmCommandPoller(IAmazonSimpleSystemsManagement client, SsmOutputBucket? bucket, Action<string>? verbose = null, ManagedNodes? known = null)
    {
        _client = client;
        _bucket = bucket;
        _verbose = verbose ?? (_ => { });
        _known = known;
    }

    /// <summary>The commands sent, by id (what CancelCommand cancels).</summary>
    public IReadOnlyCollection<string> SentCommandIds => _sent.ToArray();

    /// <summary>The SendCommand requests a run makes for the given (managed) ids, or for the targets: what -WhatIf shows.</summary>
    public static IReadOnlyList<SendCommandRequest> Plan(SsmCommandRequest request, IReadOnlyList<string>? managedIds = null)
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

    /// <summary>How a SendCommand request reads in -WhatIf and -Verbose.</summary>
    public static string Describe(SendCommandRequest send) =>
        $"SendCommand {send.DocumentName} " +
        (send.InstanceIds is { Count: > 0 } ids ? $"InstanceIds={string.Join(",", ids)}" : "Targets=" + string.Join(" ", send.Targets.Select(t => $"{t.Key}={string.Join(",", t.Values)}"))) +
        $" MaxConcurrency={send.MaxConcurrency} MaxErrors={send.MaxErrors} executionTimeout={send.Parameters["executionTimeout"][0]}" +
        (string.IsNullOrEmpty(send.OutputS3BucketName) ? "" : $" OutputS3=s3://{send.OutputS3BucketName}/{send.OutputS3KeyPrefix}");

    /// <summary>
    /// Runs the request to its end: each instance's outcome goes to <paramref name="completed"/> as it finishes (named
    /// instances that are not managed nodes first, as NotManaged, with nothing sent to them); <paramref name="targeted"/>
    /// learns how many instances the service resolved tag targets to. Throws what ends the whole run: a Systems Manager
    /// call that kept failing (<see cref="FailureOf"/> says what it means), no instance matching the targets, cancellation.
    /// </summary>
    public async Task RunAsync(SsmCommandRequest request, Action<SsmOutcome> completed, Action<int>? targeted, CancellationToken ct)
    {
        var commands = new List<(string Id, int Expected)>();
        if (request.InstanceIds.Count > 0)
        {
            var managed = await ManagedAsync(request.InstanceIds, ct).ConfigureAwait(false);
            foreach (var id in request.InstanceIds.Where(id => !managed.Contains(id)))
                completed(NotManaged(id));
            var ids = request.InstanceIds.Where(managed.Contains).ToList();
            foreach (var send in Plan(request, ids).Where(_ => ids.Count > 0))
            {
                if (await SendCheckedAsync(send, completed, ct).ConfigureAwait(false) is { } sent)
                    commands.Add((sent.CommandId, send.InstanceIds.Count));
            }
        }
        else
        {
            var send = Plan(request).Single();
            var sent = await SendAsync(send, ct).ConfigureAwait(false);
            int count = sent.TargetCount ?? 0;
            targeted?.Invoke(count);
            if (count == 0)
                throw new MoltarException("InstanceNotFound", FailureCategory.ObjectNotFound,
                    $"No managed instance matches {string.Join(" ", send.Targets.Select(t => $"{t.Key}={string.Join(",", t.Values)}"))}; nothing was run. " +
                    "Instances without a registered SSM agent are not targeted: check them with Get-MoltarInstance and pipe them in to see each one's state.");
            commands.Add((sent.CommandId, count));
        }
        await PollAsync(commands, request.TimeoutSeconds ?? 3600, completed, ct).ConfigureAwait(false);
    }

    /// <summary>Sends CancelCommand for every command sent, waiting at most <paramref name="limit"/> (best effort).</summary>
    public void CancelSent(TimeSpan limit)
    {
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

    /// <summary>What an exception that ended a run means for the user: its own failure, or SsmRequestFailed for a Systems Manager call that kept failing; null for anything else (a bug, cancellation).</summary>
    public static MoltarException? FailureOf(Exception exception) => exception switch
    {
        MoltarException e => e,
        AmazonServiceException e => new MoltarException(SsmErrorIds.RequestFailed, FailureCategory.ConnectionError, $"Systems Manager: {e.ErrorCode}: {e.Message}", e),
        AmazonClientException e => new MoltarException(SsmErrorIds.RequestFailed, FailureCategory.ConnectionError, $"Systems Manager could not be reached: {e.Message}", e),
        _ => null,
    };

    private static SsmOutcome NotManaged(string id)
    {
        string message = $"{id} is not a node Systems Manager manages (no SSM agent registered: the agent must run and the instance " +
                         "needs a role with AmazonSSMManagedInstanceCore); nothing was run on it.";
        return new SsmOutcome
        {
            InstanceId = id,
            StatusDetails = "NotManaged",
            StartTime = DateTimeOffset.Now,
            Error = message,
            Failure = SsmErrorIds.FailureOf(SsmErrorIds.NotManaged, message, id),
        };
    }

    /// <summary>
    /// SendCommand for ids taken as managed. With known managed nodes (every id sent is one of them), a refusal
    /// (InvalidInstanceId) means one stopped being a managed node since it was checked: the ids are checked again, as
    /// on a first run, those no longer managed end as NotManaged, and the command goes to the rest (once: a second
    /// refusal is the run's failure). Null when none is left.
    /// </summary>
    private async Task<Command?> SendCheckedAsync(SendCommandRequest send, Action<SsmOutcome> completed, CancellationToken ct)
    {
        try
        {
            return await SendAsync(send, ct).ConfigureAwait(false);
        }
        catch (AmazonSimpleSystemsManagementException e) when (e.ErrorCode == "InvalidInstanceId" && _known is not null)
        {
            _known.Forget(send.InstanceIds);
            var managed = await ManagedAsync(send.InstanceIds, ct).ConfigureAwait(false);
            foreach (var id in send.InstanceIds.Where(id => !managed.Contains(id)))
                completed(NotManaged(id));
            send.InstanceIds = send.InstanceIds.Where(managed.Contains).ToList();
            return send.InstanceIds.Count == 0 ? null : await SendAsync(send, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The ids among these that are managed nodes (DescribeInstanceInformation, 50 ids per call, every page; ids known managed are not asked about).</summary>
    private async Task<HashSet<string>> ManagedAsync(IReadOnlyList<string> ids, CancellationToken ct)
    {
        var managed = new HashSet<string>(ids.Where(id => _known?.Contains(id) == true), StringComparer.Ordinal);
        foreach (var chunk in SsmTargets.Chunks(ids.Where(id => !managed.Contains(id)).Distinct(StringComparer.Ordinal).ToList()))
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
                {
                    managed.Add(info.InstanceId);
                    _known?.Add(info.InstanceId);
                }
                token = page.NextToken;
            } while (!string.IsNullOrEmpty(token));
        }
        return managed;
    }

    private async Task<Command> SendAsync(SendCommandRequest send, CancellationToken ct)
    {
        _verbose(Describe(send));
        // The call itself is not cancelled: once the service has the command it runs, and only its id (in the answer)
        // lets CancelSent stop it. Cancellation takes effect right after (the pauses between throttled tries and the polls).
        var response = await Throttled(_ => _client.SendCommandAsync(send, CancellationToken.None), "SendCommand", ct).ConfigureAwait(false);
        _sent.Add(response.Command.CommandId);
        _verbose($"Command {response.Command.CommandId} sent ({response.Command.TargetCount} instance(s)).");
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
                _verbose($"{operation} throttled by Systems Manager; trying again in {pause.TotalSeconds:0.#} s.");
                await Task.Delay(pause, ct).ConfigureAwait(false);
                pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, LongestThrottledPoll.Ticks));
            }
        }
    }

    private static bool IsThrottling(AmazonServiceException e) =>
        e.ErrorCode is "ThrottlingException" or "Throttling" or "TooManyRequestsException" or "RequestLimitExceeded";

    private async Task PollAsync(List<(string Id, int Expected)> commands, int timeoutSeconds, Action<SsmOutcome> completed, CancellationToken ct)
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
                    // Right after SendCommand the service may list none of the invocations yet: they are waited for.
                    foreach (var invocation in await ListAsync(commandId, ct).ConfigureAwait(false))
                    {
                        if (!IsTerminal(invocation.Status) || reported.Contains((commandId, invocation.InstanceId)))
                            continue;
                        if (await ReadAsync(commandId, invocation, timeoutSeconds, ct).ConfigureAwait(false) is not { } outcome)
                            continue;
                        reported.Add((commandId, invocation.InstanceId));
                        completed(outcome);
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
                _verbose($"Systems Manager throttled polling; next poll in {pause.TotalSeconds:0.#} s.");
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

    internal static bool IsTerminal(CommandInvocationStatus? status) =>
        status is not null && (status == CommandInvocationStatus.Success || status == CommandInvocationStatus.Failed ||
                               status == CommandInvocationStatus.TimedOut || status == CommandInvocationStatus.Cancelled);

    /// <summary>A finished invocation read whole; null when GetCommandInvocation does not know it yet (the service is eventually consistent: read again next poll).</summary>
    private async Task<SsmOutcome?> ReadAsync(string commandId, CommandInvocation invocation, int timeoutSeconds, CancellationToken ct)
    {
        GetCommandInvocationResponse detail;
        try
        {
            detail = await Throttled(c => _client.GetCommandInvocationAsync(new GetCommandInvocationRequest
            {
                CommandId = commandId,
                InstanceId = invocation.InstanceId,
            }, c), "GetCommandInvocation", ct).ConfigureAwait(false);
        }
        catch (InvocationDoesNotExistException)
        {
            return null;
        }
        var streams = _bucket is null ? null : await _bucket.ReadAsync(detail, ct).ConfigureAwait(false);
        return ToOutcome(detail, timeoutSeconds, streams);
    }

    /// <summary>
    /// An invocation as Moltar reports it: exit code, both streams (less the agent's own exit line), status and error id.
    /// <paramref name="streams"/>: the streams read whole from the output bucket, else the service's (at most 24,000 characters each).
    /// </summary>
    public static SsmOutcome ToOutcome(GetCommandInvocationResponse detail, int timeoutSeconds, SsmStreams? streams = null)
    {
        streams ??= SsmStreams.Of(detail);
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
            Output = streams.Stdout,
            // As over SSH: the command's stderr; where nothing ran (or it was stopped), the reason first.
            Error = errorId is null or SsmErrorIds.CommandFailed ? stderr : message + (stderr.Length > 0 ? "\n" + stderr : ""),
            OutputTruncated = streams.StdoutTruncated,
            ErrorTruncated = streams.StderrTruncated,
            OutputProblem = streams.Problem,
            StartTime = start,
            Duration = end >= start ? end - start : TimeSpan.Zero,
            Failure = SsmErrorIds.FailureOf(errorId, message, id),
        };
    }

    private static DateTimeOffset? ParseTime(string? text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) ? time : null;
}
