using System.Management.Automation;
using Moltar.Engine;
using Moltar.Engine.Ssm;

namespace Moltar.Infrastructure;

/// <summary>The instances an SSM call names: by id (pipeline, -InstanceId) with what the user gave for each, or tag targets.</summary>
internal sealed record SsmSelection(IReadOnlyList<MoltarInstance> Instances, IReadOnlyList<object> Origins, IReadOnlyList<SsmTarget> Targets);

/// <summary>-Transport Ssm: targeting, refusing what cannot apply, and draining a run on the pipeline thread.</summary>
public abstract partial class MoltarSshCmdlet
{
    /// <summary>The SSH-only parameters and why they do not apply over Systems Manager.</summary>
    private static readonly (string Name, string Why)[] SshOnlyParameters =
    {
        ("Pty", "Run Command has no terminal"),
        ("Stdin", "Run Command gives the script no standard input"),
        ("StdinPath", "Run Command gives the script no standard input"),
        ("User", "the SSM agent runs commands as root; use sudo -u USER in the command"),
        ("Port", "no connection is made to the instance"),
        ("KeyFile", "no SSH key is used"),
        ("Credential", "no SSH key is used"),
        ("JumpHost", "Systems Manager reaches the instance through its agent, with no jump host"),
        ("AddressType", "no address is connected to"),
        ("StrictHostKeyChecking", "no SSH host key is checked"),
        ("KnownHostsPath", "no SSH host key is checked"),
        ("SshConfigPath", "ssh config is not read"),
        ("ConnectTimeoutSeconds", "no connection is made to the instance"),
    };

    /// <summary>A -Transport parameter's value (ValidateSet has checked it) for the context request; null when not given.</summary>
    protected static Moltar.Transport? TransportOf(string? parameter) =>
        parameter is null ? null : Enum.Parse<Moltar.Transport>(parameter, ignoreCase: true);

    /// <summary>A terminating SsmParameterNotSupported for the first SSH-only parameter given (never silently ignored).</summary>
    protected void RefuseSshOnlyParameters(IEnumerable<string>? more = null)
    {
        var extra = (more ?? Array.Empty<string>()).Select(name => (name, "it has no meaning over Systems Manager"));
        foreach (var (name, why) in SshOnlyParameters.Concat(extra))
        {
            if (MyInvocation.BoundParameters.ContainsKey(name))
                ThrowInvalidArgument(SsmErrorIds.ParameterNotSupported,
                    $"-Transport Ssm: -{name} does not apply: {why}. Leave -{name} out, or use -Transport Ssh.", name);
        }
    }

    /// <summary>
    /// -OutputS3BucketName / -OutputS3KeyPrefix (Invoke-MoltarCommand, Invoke-MoltarDeploy): a prefix needs a bucket
    /// (OutputS3BucketNameMissing), and a bucket means something over Systems Manager only (SsmOnlyParameter).
    /// </summary>
    protected void CheckOutputBucket(MoltarContext context, string? bucketName, string? keyPrefix)
    {
        if (keyPrefix is not null && bucketName is null)
            ThrowInvalidArgument("OutputS3BucketNameMissing", "-OutputS3KeyPrefix names a folder in the output bucket: give -OutputS3BucketName too.", keyPrefix);
        if (bucketName is not null && context.Transport != Moltar.Transport.Ssm)
            ThrowInvalidArgument("SsmOnlyParameter", "-OutputS3BucketName applies to -Transport Ssm only (over SSH Moltar reads the output whole from the connection). " +
                                 "Leave it out, or add -Transport Ssm.", bucketName);
    }

    /// <summary>
    /// What an SSM call targets: piped instances and -InstanceId by id (no DescribeInstances), the selection
    /// parameters as tag targets the service resolves (no listing at all).
    /// </summary>
    private protected SsmSelection ResolveSsmSelection(MoltarContext context)
    {
        if (ParameterSetName == SelectionSet)
        {
            try
            {
                return new SsmSelection(Array.Empty<MoltarInstance>(), Array.Empty<object>(),
                    SsmTargets.From(MakeSelection(context, Environment, Cluster, Name, Tag, first: false), context));
            }
            catch (MoltarException e)
            {
                ThrowFailure(e);
                throw;
            }
        }
        var instances = new List<MoltarInstance>();
        var origins = new List<object>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(MoltarInstance instance, object origin)
        {
            if (seen.Add(instance.InstanceId))
            {
                instances.Add(instance);
                origins.Add(origin);
            }
        }
        if (ParameterSetName == InstanceIdSet)
        {
            foreach (var id in InstanceId!)
            {
                // As over SSH, an instance named by -InstanceId is its error records' target (here known by its id only).
                var instance = new MoltarInstance { InstanceId = id };
                Add(instance, instance);
            }
        }
        else
        {
            foreach (var item in InstanceInput.Expand(_input))
            {
                if (InstanceInput.ToManagedInstance(item, context) is { } instance)
                    Add(instance, InstanceInput.OriginOf(item));
                else
                    ThrowInvalidArgument("SsmInputNotAnInstance",
                        $"-Transport Ssm: '{DisplayText.Printable(item.ToString())}' is not an EC2 instance: Systems Manager reaches instances by id. " +
                        "Pipe Get-MoltarInstance (or objects with an InstanceId), or instance ids.", item);
            }
        }
        return new SsmSelection(instances, origins, Array.Empty<SsmTarget>());
    }

    /// <summary>
    /// Drains an SSM run on the pipeline thread until every instance is reported: each finished instance goes to
    /// <paramref name="completed"/> (which writes its result and returns its error records), messages to verbose and
    /// warning, progress as over SSH. Ctrl+C sends CancelCommand for every command sent, then stops the pipeline.
    /// Under -ErrorAction Stop the failed instances are named by one terminating error at the end.
    /// </summary>
    private protected void DrainSsm(SsmCommandRun run, string activity, bool stopOnError, FanOutTally tally,
                            Func<SsmOutcome, (IReadOnlyList<ErrorRecord> Errors, object Origin)> completed)
    {
        int failed = 0;
        void EachTurn()
        {
            if (StopToken.IsCancellationRequested)
            {
                run.CancelSent(TimeSpan.FromSeconds(15));
                throw new PipelineStoppedException();
            }
        }
        Pump(run.Events, e =>
        {
            switch (e.Kind)
            {
                case SsmEventKind.Verbose:
                    WriteVerbose(e.Text ?? "");
                    break;
                case SsmEventKind.Warning:
                    WriteWarning(e.Text ?? "");
                    break;
                case SsmEventKind.Completed:
                    var outcome = e.Outcome!;
                    var (errors, origin) = completed(outcome);
                    if (!outcome.Succeeded) failed++;
                    tally.Add(outcome.InstanceId, (errors.Count > 0 ? errors[0].FullyQualifiedErrorId : null), origin,
                              notStarted: outcome.ErrorId == SsmErrorIds.Terminated);
                    if (!stopOnError)
                    {
                        foreach (var error in errors)
                            WriteError(error);
                    }
                    int total = Math.Max(run.TotalCount, run.CompletedCount);
                    WriteProgress(new ProgressRecord(1, activity, $"{run.CompletedCount} of {total} instances done, {failed} failed")
                    {
                        PercentComplete = total == 0 ? 100 : (int)(100.0 * run.CompletedCount / total),
                    });
                    break;
            }
        }, () => run.IsFinished, EachTurn);
        // The run's own task ends on the same stop token: the loop can end before it saw the stop.
        if (StopToken.IsCancellationRequested)
        {
            run.CancelSent(TimeSpan.FromSeconds(15));
            throw new PipelineStoppedException();
        }
        WriteProgress(new ProgressRecord(1, activity, "done") { RecordType = ProgressRecordType.Completed });
        if (run.Failure is { } failure)
            ThrowFailure(failure);
        WriteSummary(tally.Summary);
        if (stopOnError && tally.Failed > 0)
            ThrowTerminatingError(tally.StoppedError());
    }

    /// <summary>An instance's error record: its error id, the instance (as the user gave it) as target.</summary>
    protected static ErrorRecord SsmHostError(MoltarFailure failure, object origin) =>
        new(new MoltarHostException(failure.Message, failure), failure.ErrorId, CategoryOf(failure.Category), origin);
}
