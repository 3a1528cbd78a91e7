using System.Diagnostics;
using System.Text;
using Amazon.SimpleSystemsManagement;
using Moltar.Engine.Ssh;

namespace Moltar.Engine.Ssm;

/// <summary>
/// Runs one shell command on one instance through Systems Manager Run Command and waits for it: the per-host runner
/// a deploy's steps use over SSM (the same steps, verification and results as over SSH; the agent runs them as root).
/// Each step is a run of the <see cref="SsmCommandPoller"/> Invoke-MoltarCommand uses (managed-node check, SendCommand,
/// polling, output bucket, cancel), for one instance; its outcome in the shape the deploy judges SSH steps by. The
/// managed-node check is made once per instance for the whole deploy (<see cref="ManagedNodes"/>).
/// </summary>
public sealed class SsmStepRunner : IDisposable
{
    private readonly IAmazonSimpleSystemsManagement _client;
    private readonly SsmOutputBucket? _bucket;
    private readonly SsmCommandRequest _step;
    private readonly ManagedNodes _managed = new();

    /// <summary>A runner on clients of the session; with -OutputS3BucketName the agent writes each step's streams whole there, and a stream Systems Manager truncated is read back from it.</summary>
    public SsmStepRunner(Aws.AwsSession session, int? timeoutSeconds, string? outputS3BucketName = null, string? outputS3KeyPrefix = null)
        : this(session.CreateSsmClient(), timeoutSeconds, outputS3BucketName, outputS3KeyPrefix,
               outputS3BucketName is { Length: > 0 } ? session.CreateS3Client() : null)
    {
    }

    internal SsmStepRunner(IAmazonSimpleSystemsManagement client, int? timeoutSeconds, string? outputS3BucketName = null, string? outputS3KeyPrefix = null,
                           Amazon.S3.IAmazonS3? s3 = null)
    {
        _client = client;
        _step = new SsmCommandRequest
        {
            Command = "",
            TimeoutSeconds = timeoutSeconds,
            Comment = "Moltar Invoke-MoltarDeploy",
            MaxConcurrency = 1,
            OutputS3BucketName = outputS3BucketName,
            OutputS3KeyPrefix = outputS3KeyPrefix,
            // What a deploy keeps of each stream of a step, over either transport.
            MaxOutputBytes = Deploy.DeployFanOut.MaxStepOutputBytes,
        };
        _bucket = SsmOutputBucket.For(s3, _step);
    }

    /// <summary>
    /// The step's outcome: exit code and streams, or an SSM error id when it did not run to an exit code (Started is
    /// false when the instance is not a managed node: nothing was sent). <paramref name="warning"/> hears why output is
    /// not whole (the service's 24,000 characters, or SsmOutputUnreadable). Cancelling sends CancelCommand (best effort)
    /// and throws OperationCanceledException.
    /// </summary>
    public ExecOutcome Run(string instanceId, string command, Action<string>? warning, CancellationToken ct)
    {
        var start = DateTimeOffset.Now;
        var clock = Stopwatch.StartNew();
        var poller = new SsmCommandPoller(_client, _bucket, known: _managed);
        SsmOutcome? outcome = null;
        try
        {
            poller.RunAsync(_step with { Command = command, InstanceIds = new[] { instanceId } }, done => outcome = done, null, ct)
                .ConfigureAwait(false).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            poller.CancelSent(TimeSpan.FromSeconds(15));
            throw;
        }
        catch (Exception e) when (SsmCommandPoller.FailureOf(e) is { } failure)
        {
            return new ExecOutcome
            {
                Command = command, Failure = failure.Failure with { Host = instanceId }, Started = poller.SentCommandIds.Count > 0,
                StartTime = start, Duration = clock.Elapsed,
            };
        }
        var ran = outcome ?? throw new InvalidOperationException($"Systems Manager reported no invocation of the step on {instanceId}.");
        if (ran.OutputWarning(instanceId) is { } text)
            warning?.Invoke(text);
        return new ExecOutcome
        {
            Command = command,
            ExitCode = ran.ExitCode,
            Stdout = ran.Output,
            Stderr = ran.Error,
            StdoutBytes = Encoding.UTF8.GetByteCount(ran.Output),
            StderrBytes = Encoding.UTF8.GetByteCount(ran.Error),
            StdoutTruncated = ran.OutputTruncated,
            StderrTruncated = ran.ErrorTruncated,
            StartTime = start,
            Duration = clock.Elapsed,
            Failure = ran.Failure,
            Started = ran.ErrorId != SsmErrorIds.NotManaged,
        };
    }

    public void Dispose()
    {
        _client.Dispose();
        _bucket?.Dispose();
    }
}
