using System.Management.Automation;
using System.Text;
using Moltar.Engine;
using Moltar.Engine.FanOut;
using Moltar.Engine.Context;
using Moltar.Engine.Ssh;
using Moltar.Engine.Ssm;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>Runs one command on many instances over SSH in parallel, or through Systems Manager Run Command (-Transport Ssm).</summary>
[Cmdlet(VerbsLifecycle.Invoke, "MoltarCommand", SupportsShouldProcess = true, DefaultParameterSetName = SelectionSet)]
[OutputType(typeof(MoltarCommandResult))]
public sealed class InvokeMoltarCommandCommand : MoltarSshCmdlet
{
    [Parameter(Mandatory = true, Position = 0)] [ValidateNotNullOrEmpty] public string Command { get; set; } = "";
    [Parameter] [ValidateRange(1, 1024)] public int? ThrottleLimit { get; set; }
    /// <summary>Per host: the command is ended (TERM, connection closed) after this many seconds.</summary>
    [Parameter] [ValidateRange(1, int.MaxValue)] public int? TimeoutSeconds { get; set; }
    [Parameter] public SwitchParameter Pty { get; set; }
    [Parameter] public string? Stdin { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? StdinPath { get; set; }
    [Parameter] public SwitchParameter Series { get; set; }
    [Parameter] public SwitchParameter Quiet { get; set; }
    /// <summary>Bytes of each host's stdout and stderr kept in the result; the rest is counted, not kept.</summary>
    [Parameter] [ValidateRange(0, long.MaxValue)] public long MaxOutputBytes { get; set; } = ExecOptions.DefaultMaxOutputBytes;
    /// <summary>Ssh (Moltar's own fan-out) or Ssm (Systems Manager Run Command); default: MOLTAR_TRANSPORT, project file, Ssh.</summary>
    [Parameter] [ValidateSet("Ssh", "Ssm", IgnoreCase = true)] public string? Transport { get; set; }
    /// <summary>-Transport Ssm: the S3 bucket the SSM agent writes each stream to (as Send-SSMCommand's); output Systems Manager truncated is read from it.</summary>
    [Parameter] [ValidateLength(3, 63)] public string? OutputS3BucketName { get; set; }
    /// <summary>-Transport Ssm: the folder in the output bucket.</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string? OutputS3KeyPrefix { get; set; }

    protected override int? ThrottleLimitParameter => Series ? 1 : ThrottleLimit;

    protected override ContextRequest AddToRequest(ContextRequest request) =>
        base.AddToRequest(request) with { Transport = TransportOf(Transport) };

    protected override void EndProcessing()
    {
        if (Stdin is not null && StdinPath is not null)
            ThrowInvalidArgument("StdinConflict", "-Stdin and -StdinPath both give standard input; use one of them.");
        var context = ResolveContext();
        CheckOutputBucket(context, OutputS3BucketName, OutputS3KeyPrefix);
        if (context.Transport == Moltar.Transport.Ssm)
        {
            RunOverSsm(context);
            return;
        }
        var targets = ResolveTargets(context);
        var sshOptions = BuildSshOptions(context);
        byte[]? stdin = ReadStdin();

        var approved = targets.Where(t => ShouldProcessOrRefuse(t.Target.ToString(), $"Run '{Command}'")).ToList();
        if (approved.Count == 0)
            return;

        var exec = new ExecOptions
        {
            Timeout = TimeoutSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            Stdin = stdin,
            Pty = Pty,
            MaxOutputBytes = MaxOutputBytes,
        };
        // -ErrorAction Stop stops starting, not running: the first failure keeps new hosts from starting, and the
        // hosts already running finish (bounded by -TimeoutSeconds) before the one terminating error.
        bool stopOnError = ErrorActionIsStop();
        var fanOut = new FanOutOptions { ThrottleLimit = context.ThrottleLimit, StopOnFailure = stopOnError };
        using var connector = CreateConnector(sshOptions);
        using var runner = SshFanOut.RunCommand(connector, Command, exec, fanOut, StopToken, liveOutput: !Quiet);
        foreach (var work in approved)
            runner.Add(work.Target);
        runner.Complete();
        var tally = new FanOutTally($"Invoke-MoltarCommand '{Abbreviate(Command)}'");
        DrainAndSummarize(runner, approved, $"Invoke-MoltarCommand: {Command}", Quiet, stopOnError, tally, completed =>
        {
            var result = SshFanOut.ToResult(completed, Command);
            WarnTruncated(completed);
            WriteObject(result);
            return SshFanOut.FailureOf(completed) is { } failure
                ? new[] { HostError(failure, completed.Item!, approved[completed.Index].Origin) }
                : Array.Empty<ErrorRecord>();
        });
    }

    /// <summary>
    /// -Transport Ssm: AWS-RunShellScript through Systems Manager (-ThrottleLimit = MaxConcurrency, -Series = 1,
    /// -TimeoutSeconds = executionTimeout, -ErrorAction Stop = MaxErrors 0); one result per instance as each finishes.
    /// </summary>
    private void RunOverSsm(MoltarContext context)
    {
        // -MaxOutputBytes bounds what is read back from the output bucket; without one, the service's 24,000 characters are all there is.
        RefuseSshOnlyParameters(MaxOutputBytes != ExecOptions.DefaultMaxOutputBytes && OutputS3BucketName is null ? new[] { "MaxOutputBytes" } : null);
        var selection = ResolveSsmSelection(context);
        bool stopOnError = ErrorActionIsStop();
        var request = new SsmCommandRequest
        {
            Command = Command,
            InstanceIds = selection.Instances.Select(i => i.InstanceId).ToList(),
            Targets = selection.Targets,
            MaxConcurrency = context.ThrottleLimit,
            StopOnFirstError = stopOnError,
            TimeoutSeconds = TimeoutSeconds,
            OutputS3BucketName = OutputS3BucketName,
            OutputS3KeyPrefix = OutputS3KeyPrefix,
            MaxOutputBytes = MaxOutputBytes,
        };
        // -WhatIf: the SendCommand requests that would be sent (before the managed-node check, which needs AWS).
        var plan = SsmCommandRun.DescribePlan(request);
        if (!plan.All(send => ShouldProcessOrRefuse(send, $"Run '{Command}' through Systems Manager")))
            return;

        var session = CreateAwsSession(context);
        WriteVerbose($"Systems Manager in {session.RegionName}{(session.SsmEndpointUrl is null ? "" : $" at {session.SsmEndpointUrl}")}.");
        var byId = selection.Instances.Select((instance, index) => (instance, index)).ToDictionary(p => p.instance.InstanceId, StringComparer.Ordinal);
        using var run = new SsmCommandRun(session, request);
        run.Start(StopToken);
        var tally = new FanOutTally($"Invoke-MoltarCommand '{Abbreviate(Command)}' (SSM)");
        DrainSsm(run, $"Invoke-MoltarCommand (SSM): {Command}", stopOnError, tally, outcome =>
        {
            byId.TryGetValue(outcome.InstanceId, out var known);
            var instance = known.instance;
            object origin = instance is null ? outcome.InstanceId : selection.Origins[known.index];
            if (outcome.OutputWarning(instance?.DisplayName ?? outcome.InstanceId) is { } warning)
                WriteWarning(warning);
            WriteObject(new MoltarCommandResult
            {
                InstanceId = outcome.InstanceId,
                Name = instance?.Name,
                Address = instance?.Address,
                Command = Command,
                ExitCode = outcome.ExitCode,
                Succeeded = outcome.Succeeded,
                Output = outcome.Output,
                Error = outcome.Error,
                ErrorId = outcome.ErrorId,
                OutputBytes = System.Text.Encoding.UTF8.GetByteCount(outcome.Output),
                ErrorBytes = System.Text.Encoding.UTF8.GetByteCount(outcome.Error),
                Truncated = outcome.Truncated,
                StartTime = outcome.StartTime,
                Duration = outcome.Duration,
            });
            IReadOnlyList<ErrorRecord> errors = outcome.Succeeded ? Array.Empty<ErrorRecord>() : new[] { SsmHostError(outcome.Failure!, origin) };
            return (errors, origin);
        });
    }

    /// <summary>The command as the summary names it: one line, at most 60 characters.</summary>
    private static string Abbreviate(string command)
    {
        string line = new(command.Select(c => char.IsControl(c) ? ' ' : c).ToArray());
        return line.Length <= 60 ? line : line[..57] + "...";
    }

    /// <summary>Output beyond -MaxOutputBytes is not in the result: say so rather than hand back a silently cut text.</summary>
    private void WarnTruncated(FanOutEvent<SshTarget, ExecOutcome> completed)
    {
        if (completed.Result is not { } outcome)
            return;
        if (outcome.StdoutTruncated)
            WriteWarning($"{completed.Item!.DisplayName}: kept the first {MaxOutputBytes} bytes of {outcome.StdoutBytes} bytes of output (-MaxOutputBytes).");
        if (outcome.StderrTruncated)
            WriteWarning($"{completed.Item!.DisplayName}: kept the first {MaxOutputBytes} bytes of {outcome.StderrBytes} bytes of error output (-MaxOutputBytes).");
    }

    private byte[]? ReadStdin()
    {
        if (Stdin is not null)
            return Encoding.UTF8.GetBytes(Stdin);
        if (StdinPath is null)
            return null;
        string path = GetUnresolvedProviderPathFromPSPath(StdinPath);
        if (!File.Exists(path))
            ThrowInvalidArgument("StdinPathNotFound", $"-StdinPath '{path}' does not exist.", path);
        return File.ReadAllBytes(path);
    }
}
