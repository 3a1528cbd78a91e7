using System.Diagnostics;
using System.Management.Automation;
using System.Text;
using Moltar.Engine;
using Moltar.Engine.Context;
using Moltar.Engine.Deploy;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>
/// Deploys Debian packages with apt-get on instances, in batches, and verifies with dpkg what each one has
/// installed; runs the project's deploy hooks at the end.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "MoltarDeploy", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High,
        DefaultParameterSetName = SelectionSet)]
[OutputType(typeof(MoltarDeployResult))]
public sealed class InvokeMoltarDeployCommand : MoltarSshCmdlet
{
    /// <summary>Required when selecting: a deploy never spans every environment by accident.</summary>
    [Parameter(ParameterSetName = SelectionSet, Mandatory = true, Position = 0)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(EnvironmentCompleter))]
    public override string? Environment { get; set; }
    [Parameter(ParameterSetName = SelectionSet, Position = 1)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(ClusterCompleter))]
    public override string? Cluster { get; set; }

    /// <summary>The packages; else MOLTAR_PACKAGES, else the project file's Packages or .moltar-packages.</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string[]? Package { get; set; }
    /// <summary>Pins every package to this version, allowing downgrades (the rollback); else apt's candidate.</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string? Version { get; set; }
    /// <summary>Hosts per batch: a number ("2") or a percentage ("25%"); all at once when not given.</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string? BatchSize { get; set; }
    /// <summary>No new batch starts once more hosts than this have failed (hosts of the running batch finish).</summary>
    [Parameter] [ValidateRange(0, int.MaxValue)] public int MaxFailures { get; set; }
    [Parameter] [ValidateRange(0, 86400)] public int PauseSeconds { get; set; }
    /// <summary>apt-get autoremove and apt-get clean after the install.</summary>
    [Parameter] public SwitchParameter Clean { get; set; }
    /// <summary>Deploys to piped instances whose Packages tag lacks a package (with a warning) instead of refusing.</summary>
    [Parameter] public SwitchParameter Force { get; set; }
    /// <summary>Run once at the end when every host succeeded; gets the results as its argument.</summary>
    [Parameter] public ScriptBlock? AfterDeploy { get; set; }
    /// <summary>Run once at the end when some host failed; gets the results as its argument.</summary>
    [Parameter] public ScriptBlock? OnFailure { get; set; }
    [Parameter] [ValidateRange(1, 1024)] public int? ThrottleLimit { get; set; }
    /// <summary>Per remote command (apt-get update, install...): ended after this many seconds.</summary>
    [Parameter] [ValidateRange(1, int.MaxValue)] public int? TimeoutSeconds { get; set; }
    /// <summary>No live remote output (results, warnings, errors and the summary still come).</summary>
    [Parameter] public SwitchParameter Quiet { get; set; }

    private DeployRequest? _request;
    private IReadOnlyList<HostWork> _targets = Array.Empty<HostWork>();

    protected override string[]? SelectionPackages => _request?.Packages.ToArray();

    protected override int? ThrottleLimitParameter => ThrottleLimit;

    protected override ContextRequest AddToRequest(ContextRequest request) =>
        base.AddToRequest(request) with
        {
            Packages = Package,
            Transport = TransportOf(Transport),
        };

    /// <summary>Ssh (Moltar's own connections) or Ssm (each step through Systems Manager Run Command, as root).</summary>
    [Parameter] [ValidateSet("Ssh", "Ssm", IgnoreCase = true)] public string? Transport { get; set; }
    /// <summary>-Transport Ssm: the S3 bucket the SSM agent writes each step's streams to; a step's output Systems Manager truncated is read from it.</summary>
    [Parameter] [ValidateLength(3, 63)] public string? OutputS3BucketName { get; set; }
    /// <summary>-Transport Ssm: the folder in the output bucket.</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string? OutputS3KeyPrefix { get; set; }

    protected override void EndProcessing()
    {
        var clock = Stopwatch.StartNew();
        // Everything the user typed or the project says is checked before anything is contacted.
        var batchSize = Validate(() => BatchSize is null ? Engine.Deploy.BatchSize.All : Engine.Deploy.BatchSize.Parse(BatchSize));
        var context = ResolveContext();
        CheckOutputBucket(context, OutputS3BucketName, OutputS3KeyPrefix);
        var request = Validate(() => DeployRequest.Create(context.Packages, Version, Clean, PackageSource(context)));
        _request = request;

        var targets = _targets = ResolveTargets(context);
        if (ParameterSetName != SelectionSet)
            CheckPackageTags(targets, request, context);
        if (targets.Count == 0)
            return;

        // Over SSM each step is one Run Command (as root: the agent's user); over SSH, Moltar's own connections.
        bool overSsm = context.Transport == Moltar.Transport.Ssm;
        if (overSsm)
            RefuseSshOnlyParameters();
        using var ssm = overSsm ? new Engine.Ssm.SsmStepRunner(CreateAwsSession(context), TimeoutSeconds, OutputS3BucketName, OutputS3KeyPrefix) : null;
        using var connector = overSsm ? null : CreateConnector(BuildSshOptions(context));
        var exec = new ExecOptions
        {
            Timeout = TimeoutSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            MaxOutputBytes = DeployFanOut.MaxStepOutputBytes,
        };
        var fanOut = new FanOutOptions { ThrottleLimit = context.ThrottleLimit, ThreadName = "Moltar deploy" };
        var deploy = new RollingDeploy(request, targets.Select(t => t.Target).ToList(), batchSize.For(targets.Count), MaxFailures);

        // Under -ErrorAction Stop the first error would end the call at once: the errors then wait until the
        // results, the summary and the hooks are out. Otherwise each batch's errors come when the batch is done.
        bool deferErrors = ErrorActionIsStop();
        var errors = new List<ErrorRecord>();
        deploy.Run(new RollingDeploySteps
        {
            Approve = batch => Approve(batch, request, connector, context),
            BetweenBatches = Pause,
            Stopping = WriteWarning,
            RunBatch = (batch, completed) =>
            {
                using var runner = ssm is not null
                    ? DeployFanOut.RunOverSsm(ssm, request, fanOut, StopToken)
                    : DeployFanOut.Run(connector!, request, exec, fanOut, StopToken);
                foreach (var target in batch.Targets)
                    runner.Add(target);
                runner.Complete();
                Drain(runner, $"Invoke-MoltarDeploy {request.Describe()}: batch {batch.Number} of {batch.BatchCount}", Quiet, completed);
            },
            HostFinished = host => WriteObject(host.Result),
            // The batch runs to its end (every host finishes) before any of its errors is written.
            BatchFinished = (_, failed) =>
            {
                var batchErrors = failed.Select(host => HostError(host.Failure!, host.Target, targets[host.Position].Origin));
                if (deferErrors)
                    errors.AddRange(batchErrors);
                else
                    foreach (var error in batchErrors) WriteError(error);
            },
            Finished = report => WriteSummary(report.Summary(request.Describe(), Environment is null ? null : Environment + (Cluster is null ? "" : "/" + Cluster), clock.Elapsed)),
            RunHook = (hook, report) => errors.AddRange(RunHooks(context, request, hook, report)),
        });
        errors.ForEach(WriteError);
    }

    private T Validate<T>(Func<T> check)
    {
        try
        {
            return check();
        }
        catch (MoltarException e)
        {
            ThrowFailure(e);
            throw; // not reached
        }
    }

    /// <summary>How a bad package name's message names where it came from: -Package, the variable, or the project's file(s).</summary>
    private static string PackageSource(MoltarContext context) =>
        context.Settings.FirstOrDefault(s => s.Name == "Packages") is { Source: SettingSource.Environment or SettingSource.ProjectFile, SourceDetail: { } detail }
            ? detail : "-Package";

    /// <summary>Piped instances must carry every package in their Packages tag, unless -Force (then a warning each).</summary>
    private void CheckPackageTags(IReadOnlyList<HostWork> targets, DeployRequest request, MoltarContext context)
    {
        var untagged = new List<string>();
        foreach (var work in targets)
        {
            var tagged = InstanceInput.PackagesOf(work.Origin, context);
            var missing = request.Packages.Where(p => tagged is null || !tagged.Contains(p, StringComparer.Ordinal)).ToList();
            if (missing.Count == 0)
                continue;
            string what = tagged is null
                ? $"{work.Target} has no {context.TagName("Packages")} tag"
                : $"{work.Target}'s {context.TagName("Packages")} tag ({(tagged.Length == 0 ? "empty" : "|" + string.Join("|", tagged) + "|")}) lacks {string.Join(", ", missing)}";
            if (Force)
                WriteWarning($"{what}; deploying anyway (-Force).");
            else
                untagged.Add(what);
        }
        if (untagged.Count > 0)
        {
            ThrowTerminatingError(new ErrorRecord(new InvalidOperationException(
                    $"Not deploying {request.Describe()}: {string.Join("; ", untagged)}. Pipe only instances that run the package, " +
                    "fix their tags, or add -Force to deploy to them anyway. Nothing was deployed."),
                DeployErrorIds.PackageNotTagged, ErrorCategory.InvalidArgument, untagged));
        }
    }

    /// <summary>
    /// One ShouldProcess per batch: -WhatIf prints every host of the batch with the exact commands it would run;
    /// -Confirm (or ConfirmImpact High against $ConfirmPreference) asks once for the batch.
    /// </summary>
    /// <summary>Which hook files would run after the deploy (or why they would not): for -WhatIf and the confirmation.</summary>
    private static string HookNote(MoltarContext context)
    {
        var hooks = new[] { DeployHook.AfterDeployFile, DeployHook.FailedDeployFile }
            .Select(f => DeployHook.Find(context.ProjectDirectory, f)).OfType<string>().ToList();
        if (hooks.Count == 0)
            return "";
        string? refusal = DeployHook.WhyNotRun(context.ProjectDirectory!, new ProjectTrust());
        return refusal is null
            ? $"Afterwards runs the hook {string.Join(" or ", hooks)} (after-deploy when every host succeeded, failed-deploy when any failed)."
            : $"The hook {string.Join(" and ", hooks)} will not run: {refusal}.";
    }

    private bool Approve(DeployBatch batch, DeployRequest request, SshConnector? connector, MoltarContext context)
    {
        var description = new StringBuilder();
        description.Append(System.Globalization.CultureInfo.CurrentCulture, $"Deploying {request.Describe()}, batch {batch.Number} of {batch.BatchCount}, to {batch.Targets.Count} instance(s):");
        foreach (var target in batch.Targets)
        {
            string user = connector is null ? "root" : connector.Resolve(target).User;
            description.AppendLine().Append(System.Globalization.CultureInfo.CurrentCulture, $"  {target} as {user}:");
            foreach (var step in DeployPlan.For(request, user))
                description.AppendLine().Append("    ").Append(step.Command);
        }
        string hosts = string.Join(", ", batch.Targets.Select(t => t.ToString()));
        string hooks = HookNote(context);
        if (hooks.Length > 0)
            description.AppendLine().Append(hooks);
        return ShouldProcessOrRefuse(description.ToString(),
            $"Deploy {request.Describe()} to batch {batch.Number} of {batch.BatchCount}: {hosts}?" + (hooks.Length > 0 ? " " + hooks : ""),
            "Invoke-MoltarDeploy");
    }

    private void Pause(DeployBatch next)
    {
        if (PauseSeconds <= 0)
            return;
        WriteVerbose($"Pausing {PauseSeconds} s before batch {next.Number}.");
        var until = DateTime.UtcNow.AddSeconds(PauseSeconds);
        // The pause is a turn of the one loop: what workers posted is still written, Ctrl+C ends it.
        Pump<object>(null, null, () => DateTime.UtcNow >= until, () =>
        {
            if (StopToken.IsCancellationRequested)
                throw new PipelineStoppedException();
        });
    }

    /// <summary>
    /// The project's hook file and the script block for the hook the deploy chose: failure hooks when any host
    /// failed, after-deploy hooks when every host succeeded. Returns the HookFailed errors (written by the caller).
    /// </summary>
    private List<ErrorRecord> RunHooks(MoltarContext context, DeployRequest request, DeployHookKind hook, RollingDeployReport report)
    {
        var errors = new List<ErrorRecord>();
        if (hook == DeployHookKind.None)
        {
            WriteVerbose("No deploy hook runs: nothing failed, but not every host was deployed (declined or not started).");
            return errors;
        }

        bool failed = hook == DeployHookKind.FailedDeploy;
        string file = DeployHook.FileFor(hook);
        var block = failed ? OnFailure : AfterDeploy;
        string blockName = failed ? "-OnFailure" : "-AfterDeploy";
        var results = report.Results.ToArray();
        var variables = DeployHook.Variables(HookEnvironment(), request.Packages, request.Version, report.FailedHosts, report.NotStartedHosts);

        string? refusal = null;
        if (DeployHook.Find(context.ProjectDirectory, file) is { } untrustedPath
            && (refusal = DeployHook.WhyNotRun(context.ProjectDirectory!, new ProjectTrust())) is not null)
        {
            WriteWarning($"The deploy hook {untrustedPath} was not run: {refusal}.");
        }
        else if (DeployHook.Find(context.ProjectDirectory, file) is { } path)
        {
            WriteVerbose($"Running the deploy hook {path} (FAILED_HOSTS='{variables["FAILED_HOSTS"]}').");
            try
            {
                int exitCode = RunOnPipeline(ct => DeployHook.RunAsync(path, context.ProjectDirectory!, variables,
                    (line, isError) => Post(PipelineItemKind.Line, () => WriteHookLine(file, line, isError), line.Length), ct));
                if (exitCode != 0)
                    errors.Add(HookError($"The deploy hook {path} exited with code {exitCode}.", path));
            }
            catch (MoltarException e)
            {
                errors.Add(HookError(e.Message, path, e));
            }
        }
        else if (context.ProjectDirectory is not null)
        {
            WriteVerbose($"No {file} in {context.ProjectDirectory}.");
        }

        if (block is not null)
        {
            try
            {
                var output = block.InvokeWithContext(null, new List<PSVariable> { new("_", results) }, new object[] { results });
                foreach (var item in output.Where(o => o is not null))
                    WriteHookLine(blockName, item.ToString(), isError: false);
            }
            catch (RuntimeException e)
            {
                errors.Add(HookError($"The {blockName} script block failed: {e.Message}", blockName, e));
            }
        }
        return errors;
    }

    private void WriteHookLine(string hook, string line, bool isError) =>
        WriteInformation(new HostInformationMessage { Message = $"{hook}: {line}" }, new[] { "PSHOST", "Moltar", "hook", isError ? "stderr" : "stdout" });

    private static ErrorRecord HookError(string message, object target, Exception? inner = null) =>
        new(new InvalidOperationException(message, inner), DeployErrorIds.HookFailed, ErrorCategory.InvalidResult, target);

    /// <summary>ENV for hooks: -Environment, else the environment(s) of the piped instances.</summary>
    private string HookEnvironment() =>
        Environment ?? string.Join(" ", _targets.Select(t => t.Origin).OfType<MoltarInstance>().Select(i => DeployHook.SafeToken(i.Environment))
            .OfType<string>().Distinct(StringComparer.Ordinal));
}
