using Amazon.Runtime;
using Amazon.S3;
using Amazon.SimpleSystemsManagement;
using Moltar.Engine.Ssh;
using Moltar.Engine.Ssm;
using Moltar.Sandbox;
using Moltar.Sandbox.Ec2;
using Moltar.Sandbox.Ssm;
using Xunit;

namespace Moltar.Engine.Tests.Ssm;

/// <summary>
/// The sandbox's Systems Manager stand-in, in this process, with three synthetic instances (no host behind them: their
/// simulated agents run each script here, never as root), one of them not a managed node. The real SDK talks to it.
/// </summary>
public sealed class SsmStandIn : IAsyncLifetime
{
    private static readonly BasicAWSCredentials Credentials = new("AKIASANDBOXPOLLER001", "sandbox-secret");

    public SandboxServer Server { get; private set; } = null!;
    public string Managed { get; private set; } = "";
    public string Unmanaged { get; private set; } = "";
    public SsmEndpoint Ssm => Server.Ssm;

    public async Task InitializeAsync()
    {
        var names = new InstanceGenerator("poller", ["production"], ["web"]);
        var instances = Enumerable.Range(0, 2).Select(i => InstanceGenerator.Synthetic(names.Next(), i)).ToArray();
        Managed = instances[0].InstanceId;
        Unmanaged = instances[1].InstanceId;
        Server = await SandboxServer.StartAsync(new Ec2Endpoint(new Ec2Fleet(instances)));
        Reset();
    }

    /// <summary>Replaces the stand-in's settings (the unmanaged instance stays unmanaged), forgets its commands and clears its request log.</summary>
    public void Reset(SsmSettings? settings = null)
    {
        Ssm.Commands.Clear();
        settings ??= new SsmSettings();
        settings.Unmanaged = [Unmanaged];
        Ssm.Settings = settings;
        Ssm.ClearRequests();
    }

    /// <summary>A deploy's step runner on SDK clients of the stand-in (with an S3 client when it has an output bucket).</summary>
    public SsmStepRunner StepRunner(int? timeoutSeconds = null, string? outputBucket = null) =>
        new(new AmazonSimpleSystemsManagementClient(Credentials, new AmazonSimpleSystemsManagementConfig
            {
                ServiceURL = Server.SsmEndpointUrl, AuthenticationRegion = "us-east-1", Timeout = HangGuard.Limit,
            }),
            timeoutSeconds, outputBucket, outputS3KeyPrefix: null,
            outputBucket is null ? null : new AmazonS3Client(Credentials, new AmazonS3Config
            {
                ServiceURL = Server.S3EndpointUrl, AuthenticationRegion = "us-east-1", ForcePathStyle = true, Timeout = HangGuard.Limit,
            }));

    public IReadOnlyList<SsmRequestRecord> Requests(string action) => Ssm.Requests.Where(r => r.Action == action).ToList();

    public async Task DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
    }
}

/// <summary>
/// A deploy step over SSM goes through the poller Invoke-MoltarCommand uses: it follows the command by listing its
/// invocations (ListCommandInvocations, with the throttling backoff), waits for invocations the service does not list
/// yet, reads a finished one once (GetCommandInvocation, then the output bucket), and shares timeout and cancel. The
/// request logs would differ if the step runner polled on its own (it used to poll GetCommandInvocation).
/// </summary>
public sealed class SsmPollerTests(SsmStandIn standIn) : IClassFixture<SsmStandIn>
{
    private const string LongOutput = "head -c 30000 /dev/zero | tr '\\0' x";

    private ExecOutcomeAndWarnings Step(SsmStepRunner runner, string command, string? instanceId = null, CancellationToken ct = default)
    {
        var warnings = new List<string>();
        var outcome = HangGuard.Run(() => runner.Run(instanceId ?? standIn.Managed, command, warnings.Add, ct), $"the step '{command}'");
        return new(outcome, warnings);
    }

    private sealed record ExecOutcomeAndWarnings(ExecOutcome Outcome, List<string> Warnings);

    [Fact]
    public void AStepRidesOutThrottledPollingOnTheSharedPollersBackoff()
    {
        standIn.Reset(new SsmSettings { ThrottleFirst = 4, ThrottleActions = ["ListCommandInvocations"] });
        using var runner = standIn.StepRunner();
        var (outcome, _) = Step(runner, "echo polled");
        Assert.True(outcome.Succeeded, outcome.ToString());
        Assert.Equal(0, outcome.ExitCode);
        Assert.Equal("polled\n", outcome.Stdout);
        // Every throttled answer went to the listing (the shared poll), and the finished invocation was read once.
        Assert.Equal(4, standIn.Requests("ListCommandInvocations").Count(r => r.ErrorCode == "ThrottlingException"));
        Assert.Single(standIn.Requests("GetCommandInvocation"));
        Assert.Single(standIn.Requests("SendCommand"));
    }

    [Fact]
    public void AStepWaitsForInvocationsTheServiceDoesNotListYet()
    {
        standIn.Reset(new SsmSettings { VisibleAfterMs = 3000 });
        using var runner = standIn.StepRunner();
        var (outcome, _) = Step(runner, "echo seen");
        Assert.True(outcome.Succeeded, outcome.ToString());
        Assert.Equal("seen\n", outcome.Stdout);
        var sent = Assert.Single(standIn.Requests("SendCommand")).Time;
        Assert.Contains(standIn.Requests("ListCommandInvocations"), r => r.Time < sent.AddMilliseconds(3000));
        // Only read once listed finished: never asked for an invocation the service did not know yet.
        var read = Assert.Single(standIn.Requests("GetCommandInvocation"));
        Assert.Null(read.ErrorCode);
        Assert.True(read.Time >= sent.AddMilliseconds(3000));
    }

    [Fact]
    public void AStepOnAnInstanceThatIsNotManagedIsNotSent()
    {
        standIn.Reset();
        using var runner = standIn.StepRunner();
        var (outcome, _) = Step(runner, "true", standIn.Unmanaged);
        Assert.False(outcome.Started);
        Assert.Equal(SsmErrorIds.NotManaged, outcome.ErrorId);
        Assert.Contains("AmazonSSMManagedInstanceCore", outcome.ErrorMessage, StringComparison.Ordinal);
        Assert.Empty(standIn.Requests("SendCommand"));
        Assert.Single(standIn.Requests("DescribeInstanceInformation"));
    }

    [Fact]
    public void ADeployAsksWhetherAnInstanceIsManagedOnceForAllItsSteps()
    {
        standIn.Reset();
        using var runner = standIn.StepRunner();
        foreach (var command in new[] { "echo one", "echo two", "echo three" })
            Assert.True(Step(runner, command).Outcome.Succeeded, command);
        Assert.Equal(3, standIn.Requests("SendCommand").Count);
        Assert.Single(standIn.Requests("DescribeInstanceInformation"));
    }

    [Fact]
    public void AnInstanceThatStopsBeingManagedBetweenStepsEndsAsNotManaged()
    {
        standIn.Reset();
        using var runner = standIn.StepRunner();
        Assert.True(Step(runner, "echo before").Outcome.Succeeded);
        // Its agent deregistered after the first step: the next step's SendCommand is refused, and the step says why.
        standIn.Ssm.Settings = new SsmSettings { Unmanaged = [standIn.Unmanaged, standIn.Managed] };
        var (outcome, _) = Step(runner, "echo after");
        Assert.False(outcome.Started);
        Assert.Equal(SsmErrorIds.NotManaged, outcome.ErrorId);
        Assert.Equal(standIn.Managed, outcome.Failure!.Host);
        // Sent twice: the first step, and the second one the service refused (nothing sent again after the check).
        Assert.Collection(standIn.Requests("SendCommand"), first => Assert.Null(first.ErrorCode), refused => Assert.Equal("InvalidInstanceId", refused.ErrorCode));
        Assert.Equal(2, standIn.Requests("DescribeInstanceInformation").Count); // the first step's, and the check again after the refusal
    }

    [Fact]
    public void AFailingStepKeepsItsExitCodeAndStandardError()
    {
        standIn.Reset();
        using var runner = standIn.StepRunner();
        var (outcome, _) = Step(runner, "echo out; echo oops >&2; exit 3");
        Assert.True(outcome.Started);
        Assert.Equal(3, outcome.ExitCode);
        Assert.Equal(SsmErrorIds.CommandFailed, outcome.ErrorId);
        Assert.Equal("out\n", outcome.Stdout);
        Assert.StartsWith("oops", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("failed to run commands", outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AStepPastItsTimeoutIsStoppedByTheServiceAndReportedAsTimeout()
    {
        standIn.Reset();
        using var runner = standIn.StepRunner(timeoutSeconds: 1);
        var (outcome, _) = Step(runner, $"echo before; sleep {HangGuard.NeverWaitedSeconds}; echo after");
        Assert.Equal(SsmErrorIds.Timeout, outcome.ErrorId);
        Assert.Null(outcome.ExitCode);
        Assert.Equal("before\n", outcome.Stdout);
        Assert.Equal("1", Assert.Single(standIn.Requests("SendCommand")).Body!["Parameters"]!["executionTimeout"]![0]!.GetValue<string>());
    }

    [Fact]
    public void CancellingAStepSendsCancelCommandAndThrows()
    {
        standIn.Reset();
        using var runner = standIn.StepRunner();
        using var cancel = new CancellationTokenSource();
        var step = Task.Run(() => runner.Run(standIn.Managed, $"echo started; sleep {HangGuard.NeverWaitedSeconds}", null, cancel.Token));
        HangGuard.Until(() => standIn.Ssm.Commands.Snapshot().SelectMany(c => c.Invocations).Any(i => i.Status == "InProgress"), "the step started");
        cancel.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => HangGuard.Wait(step, "the cancelled step"));
        Assert.Single(standIn.Requests("CancelCommand"));
        HangGuard.Until(() => standIn.Ssm.Commands.Snapshot().Single().Invocations.Single().Status == "Cancelled", "the invocation was cancelled");
    }

    [Fact]
    public void CancellingWhileSendCommandIsAnsweredStillCancelsTheCommandThatStarted()
    {
        // Ctrl+C after the service took the command but before its answer (with the id) came back: the command runs
        // on the instance, so it must still be cancelled, never left running unreported.
        standIn.Reset(new SsmSettings { SendCommandReplyDelayMs = 1_500 });
        using var runner = standIn.StepRunner();
        using var cancel = new CancellationTokenSource();
        var step = Task.Run(() => runner.Run(standIn.Managed, $"sleep {HangGuard.NeverWaitedSeconds}", null, cancel.Token));
        HangGuard.Until(() => standIn.Ssm.Commands.Snapshot().SelectMany(c => c.Invocations).Any(), "the command registered, its answer held");
        cancel.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => HangGuard.Wait(step, "the cancelled step"));
        var commandId = standIn.Ssm.Commands.Snapshot().Single().CommandId;
        var cancelled = Assert.Single(standIn.Requests("CancelCommand"));
        Assert.Equal(commandId, cancelled.Body!["CommandId"]!.GetValue<string>());
        HangGuard.Until(() => standIn.Ssm.Commands.Snapshot().Single().Invocations.Single().Status == "Cancelled", "the invocation was cancelled");
    }

    [Fact]
    public void AStepsTruncatedOutputIsReadWholeFromTheOutputBucketOrSaysWhyNot()
    {
        standIn.Reset();
        using (var plain = standIn.StepRunner())
        {
            var (cut, warnings) = Step(plain, LongOutput);
            Assert.Equal(SsmCommandPoller.ServiceOutputLimit, cut.Stdout.Length);
            Assert.True(cut.StdoutTruncated);
            Assert.False(cut.StderrTruncated);
            Assert.Contains("-OutputS3BucketName", Assert.Single(warnings), StringComparison.Ordinal);
        }

        standIn.Reset();
        using var bucketed = standIn.StepRunner(outputBucket: "deploy-output");
        var (whole, none) = Step(bucketed, LongOutput);
        Assert.True(whole.Succeeded, whole.ToString());
        Assert.Equal(new string('x', 30_000), whole.Stdout);
        Assert.Equal(30_000, whole.StdoutBytes);
        Assert.False(whole.StdoutTruncated);
        Assert.Empty(none);
        Assert.Equal("deploy-output", Assert.Single(standIn.Requests("SendCommand")).Body!["OutputS3BucketName"]!.GetValue<string>());

        standIn.Reset(new SsmSettings { OutputUploadDenied = [standIn.Managed] });
        var (unread, problems) = Step(bucketed, LongOutput);
        Assert.Equal(SsmCommandPoller.ServiceOutputLimit, unread.Stdout.Length);
        Assert.True(unread.StdoutTruncated);
        Assert.StartsWith($"{SsmErrorIds.OutputUnreadable}: {standIn.Managed}: stdout could not be read from s3://deploy-output/", Assert.Single(problems), StringComparison.Ordinal);
    }
}
