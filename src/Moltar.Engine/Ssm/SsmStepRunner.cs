using System.Diagnostics;
using System.Globalization;
using Amazon.SimpleSystemsManagement;
using Amazon.SimpleSystemsManagement.Model;
using Moltar.Engine.Ssh;

namespace Moltar.Engine.Ssm;

/// <summary>
/// Runs one shell command on one instance through Systems Manager Run Command and waits for it: the per-host runner
/// a deploy's steps use over SSM (the same steps, verification and results as over SSH; the agent runs them as root).
/// </summary>
public sealed class SsmStepRunner : IDisposable
{
    private readonly IAmazonSimpleSystemsManagement _client;
    private readonly int? _timeoutSeconds;

    public SsmStepRunner(Aws.AwsSession session, int? timeoutSeconds) : this(session.CreateSsmClient(), timeoutSeconds)
    {
    }

    internal SsmStepRunner(IAmazonSimpleSystemsManagement client, int? timeoutSeconds)
    {
        _client = client;
        _timeoutSeconds = timeoutSeconds;
    }

    /// <summary>The step's outcome: exit code and streams, or an SSM error id when it did not run to an exit code.</summary>
    public ExecOutcome Run(string instanceId, string command, CancellationToken ct) =>
        RunAsync(instanceId, command, ct).ConfigureAwait(false).GetAwaiter().GetResult();

    private async Task<ExecOutcome> RunAsync(string instanceId, string command, CancellationToken ct)
    {
        var start = DateTimeOffset.Now;
        var clock = Stopwatch.StartNew();
        int timeout = _timeoutSeconds ?? 3600;
        ExecOutcome NotRun(string errorId, string message) => new()
        {
            Command = command, Failure = SsmErrorIds.FailureOf(errorId, message, instanceId), Started = false, StartTime = start, Duration = clock.Elapsed,
        };
        string commandId;
        try
        {
            var sent = await _client.SendCommandAsync(new SendCommandRequest
            {
                DocumentName = SsmCommandRun.Document,
                Comment = "Moltar Invoke-MoltarDeploy",
                InstanceIds = new List<string> { instanceId },
                Parameters = new Dictionary<string, List<string>>
                {
                    ["commands"] = new() { command },
                    ["executionTimeout"] = new() { timeout.ToString(CultureInfo.InvariantCulture) },
                },
            }, ct).ConfigureAwait(false);
            commandId = sent.Command.CommandId;
        }
        catch (InvalidInstanceIdException)
        {
            return NotRun(SsmErrorIds.NotManaged, $"{instanceId} is not a node Systems Manager manages (no SSM agent registered; the instance needs a role with AmazonSSMManagedInstanceCore).");
        }
        var pause = TimeSpan.FromMilliseconds(200);
        try
        {
            while (true)
            {
                await Task.Delay(pause, ct).ConfigureAwait(false);
                GetCommandInvocationResponse? detail = null;
                try
                {
                    detail = await _client.GetCommandInvocationAsync(new GetCommandInvocationRequest { CommandId = commandId, InstanceId = instanceId }, ct).ConfigureAwait(false);
                }
                catch (InvocationDoesNotExistException)
                {
                    // Not visible yet right after SendCommand.
                }
                catch (AmazonSimpleSystemsManagementException e) when (e.ErrorCode == "ThrottlingException")
                {
                    pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromSeconds(20).Ticks));
                    continue;
                }
                if (detail?.Status is { } status && (status == CommandInvocationStatus.Success || status == CommandInvocationStatus.Failed ||
                                                     status == CommandInvocationStatus.TimedOut || status == CommandInvocationStatus.Cancelled))
                {
                    var outcome = SsmCommandRun.ToOutcome(detail, timeout);
                    bool exited = outcome.ErrorId is null or SsmErrorIds.CommandFailed;
                    return new ExecOutcome
                    {
                        Command = command,
                        ExitCode = outcome.ExitCode,
                        Stdout = outcome.Output,
                        Stderr = outcome.Error,
                        StdoutBytes = outcome.Output.Length,
                        StderrBytes = outcome.Error.Length,
                        StdoutTruncated = outcome.Truncated,
                        StartTime = start,
                        Duration = clock.Elapsed,
                        Failure = !exited ? outcome.Failure
                            : outcome.ExitCode == 0 ? null
                            : SsmErrorIds.FailureOf(SsmErrorIds.CommandFailed, $"{instanceId}: the command exited with code {outcome.ExitCode}.", instanceId),
                        Started = true,
                    };
                }
                pause = TimeSpan.FromTicks(Math.Min((long)(pause.Ticks * 1.5), TimeSpan.FromSeconds(3).Ticks));
            }
        }
        catch (OperationCanceledException)
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _client.CancelCommandAsync(new CancelCommandRequest { CommandId = commandId }, limit.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is AmazonSimpleSystemsManagementException or OperationCanceledException or Amazon.Runtime.AmazonClientException)
            {
                // Best effort: the command may have ended already.
            }
            throw;
        }
    }

    public void Dispose() => _client.Dispose();
}
