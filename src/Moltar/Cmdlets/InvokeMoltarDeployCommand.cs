using System.Collections;
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
    /// <summary>Each result's position in the order of the targets (results come in completion order).</summary>
    private readonly Dictionary<MoltarDeployResult, int> _order = new(ReferenceEqualityComparer.Instance);

    protected override string[]? SelectionPackages => _request?.Packages.ToArray();

    protected override ContextRequest AddToRequest(ContextRequest request) =>
        base.AddToRequest(request) with { Packages = Package, ThrottleLimit = ThrottleLimit };

    protected override void EndProcessing()
    {
        var clock = Stopwatch.StartNew();
        // Everything the user typed or the project says is checked before anything is contacted.
        var batchSize = Validate(() => BatchSize is null ? Engine.Deploy.BatchSize.All : Engine.Deploy.BatchSize.Parse(BatchSize));
        var context = ResolveContext();
        var request = Validate(() => DeployRequest.Create(context.Packages, Version, Clean, PackageSource(context)));
        _request = request;

        var targets = _targets = ResolveTargets(context);
        if (ParameterSetName != SelectionSet)
            CheckPackageTags(targets, request, context);
        if (targets.Count == 0)
            return;

        using var connector = CreateConnector(BuildSshOptions(context));
        var batches = DeployBatches.Split(targets, batchSize.For(targets.Count));
        var exec = new ExecOptions
        {
            Timeout = TimeoutSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            MaxOutputBytes = DeployFanOut.MaxStepOutputBytes,
        };
        var fanOut = new FanOutOptions { ThrottleLimit = ThrottleLimit ?? context.ThrottleLimit, ThreadName = "Moltar deploy" };

        var results = new List<MoltarDeployResult>();
        var errors = new List<ErrorRecord>();
        // Under -ErrorAction Stop the first error would end the call at once: the errors then wait until the
        // results, the summary and the hooks are out. Otherwise each batch's errors come when the batch is done.
        bool deferErrors = ErrorActionIsStop();
        int failures = 0, declined = 0, finishedBatches = 0, ranBatches = 0;
        for (int index = 0; index < batches.Count; index++)
        {
            var batch = batches[index];
            if (ranBatches > 0)
            {
                if (!DeployBatches.MayStartNext(failures, MaxFailures))
                {
                    WriteWarning($"{failures} host(s) failed, more than -MaxFailures {MaxFailures}: batches {index + 1} to {batches.Count} " +
                                 $"({batches.Skip(index).Sum(b => b.Count)} hosts) are not started.");
                    break;
                }
                Pause(index);
            }
            finishedBatches = index + 1;
            if (!Approve(batch, index, batches.Count, request, connector, context))
            {
                declined += batch.Count;
                continue;
            }
            ranBatches++;
            // The batch runs to its end (every host finishes) before any of its errors is written.
            var batchErrors = RunBatch(connector, request, exec, fanOut, batch, index, batches.Count, batches.Take(index).Sum(b => b.Count), results);
            failures += batchErrors.Count;
            if (deferErrors)
                errors.AddRange(batchErrors);
            else
                batchErrors.ForEach(WriteError);
        }
        if (ranBatches == 0)
            return; // -WhatIf, or every batch declined: nothing ran, nothing to report

        int position = batches.Take(finishedBatches).Sum(b => b.Count);
        foreach (var (work, batch) in batches.Skip(finishedBatches).SelectMany((b, i) => b.Select(w => (w, finishedBatches + i + 1))))
        {
            var notStarted = NotStartedResult(work, batch, request);
            results.Add(notStarted);
            _order[notStarted] = position++;
            WriteObject(notStarted);
        }
        // Hooks list hosts in the order they were selected, whatever order they finished in.
        results.Sort((a, b) => _order[a].CompareTo(_order[b]));

        WriteSummary(request, results, declined, batches.Count, clock.Elapsed);
        errors.AddRange(RunHooks(context, request, results, declined));
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

    private static string PackageSource(MoltarContext context)
    {
        string source = context.Settings.FirstOrDefault(s => s.Name == "Packages")?.Source ?? "";
        if (source == "Parameter") return "-Package";
        if (source.StartsWith("Environment ", StringComparison.Ordinal)) return source["Environment ".Length..];
        if (source.StartsWith("ProjectFile ", StringComparison.Ordinal)) return source["ProjectFile ".Length..];
        return source.Length == 0 ? "-Package" : source;
    }

    /// <summary>Piped instances must carry every package in their Packages tag, unless -Force (then a warning each).</summary>
    private void CheckPackageTags(IReadOnlyList<HostWork> targets, DeployRequest request, MoltarContext context)
    {
        var untagged = new List<string>();
        foreach (var work in targets)
        {
            var tagged = TaggedPackages(work.Origin, context.TagName("Packages"));
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

    /// <summary>The packages an input object's tags list (MoltarInstance.Packages, or a Packages tag/property); null when it has none.</summary>
    private static string[]? TaggedPackages(object origin, string tagKey)
    {
        if (origin is MoltarInstance instance)
            return instance.Packages;
        var input = PSObject.AsPSObject(origin);
        if (input.BaseObject is string)
            return null;
        if (input.Properties["Packages"]?.Value is { } packages)
            return packages is string text ? Engine.Discovery.InstanceDiscovery.ParsePackages(text) : LanguagePrimitives.ConvertTo<string[]>(packages);
        if (input.Properties["Tags"]?.Value is { } tags)
        {
            var tagList = PSObject.AsPSObject(tags).BaseObject;
            if (tagList is IDictionary dictionary)
                return dictionary.Contains(tagKey) ? Engine.Discovery.InstanceDiscovery.ParsePackages(dictionary[tagKey]?.ToString()) : null;
            if (tagList is IEnumerable list)
            {
                foreach (var item in list)
                {
                    var tag = PSObject.AsPSObject(item);
                    if (tag.Properties["Key"]?.Value?.ToString() == tagKey)
                        return Engine.Discovery.InstanceDiscovery.ParsePackages(tag.Properties["Value"]?.Value?.ToString());
                }
            }
        }
        return null;
    }

    private SshConnector CreateConnector(SshOptions options)
    {
        try
        {
            return new SshConnector(options, PostSshLog);
        }
        catch (MoltarException e)
        {
            ThrowFailure(e);
            throw;
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

    private bool Approve(IReadOnlyList<HostWork> batch, int index, int count, DeployRequest request, SshConnector connector, MoltarContext context)
    {
        var description = new StringBuilder();
        description.Append(System.Globalization.CultureInfo.CurrentCulture, $"Deploying {request.Describe()}, batch {index + 1} of {count}, to {batch.Count} instance(s):");
        foreach (var work in batch)
        {
            string user = connector.Resolve(work.Target).User;
            description.AppendLine().Append(System.Globalization.CultureInfo.CurrentCulture, $"  {work.Target} as {user}:");
            foreach (var step in DeployPlan.For(request, user))
                description.AppendLine().Append("    ").Append(step.Command);
        }
        string hosts = string.Join(", ", batch.Select(w => w.Target.ToString()));
        string hooks = HookNote(context);
        if (hooks.Length > 0)
            description.AppendLine().Append(hooks);
        return ShouldProcessOrRefuse(description.ToString(),
            $"Deploy {request.Describe()} to batch {index + 1} of {count}: {hosts}?" + (hooks.Length > 0 ? " " + hooks : ""),
            "Invoke-MoltarDeploy");
    }

    private void Pause(int nextIndex)
    {
        if (PauseSeconds <= 0)
            return;
        WriteVerbose($"Pausing {PauseSeconds} s before batch {nextIndex + 1}.");
        var until = DateTime.UtcNow.AddSeconds(PauseSeconds);
        while (DateTime.UtcNow < until)
        {
            if (StopToken.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(Math.Min(200, Math.Max(1, (until - DateTime.UtcNow).TotalMilliseconds)))))
                throw new PipelineStoppedException();
            DrainPosted();
        }
    }

    /// <summary>Runs one batch to the end (every host finishes); writes each result as it completes; returns the batch's errors.</summary>
    private List<ErrorRecord> RunBatch(SshConnector connector, DeployRequest request, ExecOptions exec, FanOutOptions fanOut,
                                       IReadOnlyList<HostWork> batch, int index, int count, int firstPosition, List<MoltarDeployResult> results)
    {
        var errors = new List<ErrorRecord>();
        using var runner = DeployFanOut.Run(connector, request, exec, fanOut, StopToken);
        foreach (var work in batch)
            runner.Add(work.Target);
        runner.Complete();
        Drain(runner, $"Invoke-MoltarDeploy {request.Describe()}: batch {index + 1} of {count}", Quiet, completed =>
        {
            var work = batch[completed.Index];
            var (result, failure) = ToResult(completed, work, index + 1, request);
            results.Add(result);
            _order[result] = firstPosition + completed.Index;
            WriteObject(result);
            if (failure is not null)
                errors.Add(InvokeMoltarCommandCommand.HostError(failure, work.Target, work.Origin));
        });
        return errors;
    }

    private static (MoltarDeployResult Result, Exception? Failure) ToResult(FanOutEvent<SshTarget, DeployOutcome> completed, HostWork work,
                                                                            int batch, DeployRequest request)
    {
        var target = work.Target;
        if (completed.Error is null && completed.Result is { } outcome)
        {
            Exception? failure = outcome.Succeeded ? null
                : outcome.ErrorId is SshErrorIds.Timeout or SshErrorIds.ConnectionLost
                    ? new SshFailure(outcome.ErrorId, outcome.ErrorMessage!, target.Address)
                    : new MoltarException(outcome.ErrorId!, "InvalidResult", outcome.ErrorMessage!);
            return (new MoltarDeployResult
            {
                InstanceId = target.InstanceId,
                Name = target.Name,
                Address = target.Address,
                Packages = request.Packages.ToArray(),
                Version = request.Version,
                PreviousVersions = outcome.PreviousVersions,
                InstalledVersions = outcome.InstalledVersions,
                Succeeded = outcome.Succeeded,
                Status = outcome.Succeeded ? "Succeeded" : "Failed",
                ErrorId = outcome.ErrorId,
                Batch = batch,
                Output = outcome.Output,
                Truncated = outcome.Truncated,
                Error = outcome.Error,
                StartTime = outcome.StartTime,
                Duration = outcome.Duration,
            }, failure);
        }

        var error = completed.Error;
        return (new MoltarDeployResult
        {
            InstanceId = target.InstanceId,
            Name = target.Name,
            Address = target.Address,
            Packages = request.Packages.ToArray(),
            Version = request.Version,
            Succeeded = false,
            Status = "Failed",
            ErrorId = SshFanOut.ErrorIdOf(error),
            Batch = batch,
            Error = error?.Message ?? "",
            StartTime = DateTimeOffset.Now - completed.Duration,
            Duration = completed.Duration,
        }, error);
    }

    private static MoltarDeployResult NotStartedResult(HostWork work, int batch, DeployRequest request) => new()
    {
        InstanceId = work.Target.InstanceId,
        Name = work.Target.Name,
        Address = work.Target.Address,
        Packages = request.Packages.ToArray(),
        Version = request.Version,
        Succeeded = false,
        Status = "NotStarted",
        ErrorId = DeployErrorIds.NotStarted,
        Batch = batch,
        Error = "Not started: an earlier batch had more failures than -MaxFailures allows.",
        StartTime = DateTimeOffset.Now,
    };

    private void WriteSummary(DeployRequest request, List<MoltarDeployResult> results, int declined, int batchCount, TimeSpan elapsed)
    {
        int succeeded = results.Count(r => r.Status == "Succeeded");
        int failed = results.Count(r => r.Status == "Failed");
        int notStarted = results.Count(r => r.Status == "NotStarted");
        string where = Environment is null ? "" : $" to {Environment}{(Cluster is null ? "" : "/" + Cluster)}";
        string text = $"Invoke-MoltarDeploy {request.Describe()}{where}: {succeeded} succeeded, {failed} failed, {notStarted} not started" +
                      (declined > 0 ? $", {declined} declined" : "") +
                      $" ({batchCount} batch{(batchCount == 1 ? "" : "es")}, {elapsed.TotalSeconds:0.0} s).";
        WriteSummary(text);
    }

    /// <summary>
    /// The project's hook file and the script block for the outcome: failure hooks when any host failed, after-deploy
    /// hooks when every host succeeded. Returns the HookFailed errors (written by the caller).
    /// </summary>
    private List<ErrorRecord> RunHooks(MoltarContext context, DeployRequest request, List<MoltarDeployResult> results, int declined)
    {
        var errors = new List<ErrorRecord>();
        bool failed = results.Any(r => r.Status == "Failed");
        bool allSucceeded = !failed && declined == 0 && results.Count > 0 && results.All(r => r.Succeeded);
        if (!failed && !allSucceeded)
        {
            WriteVerbose("No deploy hook runs: nothing failed, but not every host was deployed (declined or not started).");
            return errors;
        }

        string file = failed ? DeployHook.FailedDeployFile : DeployHook.AfterDeployFile;
        var block = failed ? OnFailure : AfterDeploy;
        string blockName = failed ? "-OnFailure" : "-AfterDeploy";
        var variables = DeployHook.Variables(HookEnvironment(), request.Packages, request.Version,
            results.Where(r => r.Status == "Failed").Select(HostLabel), results.Where(r => r.Status == "NotStarted").Select(HostLabel));

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
                    (line, isError) => Post(() => WriteHookLine(file, line, isError)), ct));
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
                var output = block.InvokeWithContext(null, new List<PSVariable> { new("_", results.ToArray()) }, new object[] { results.ToArray() });
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

    /// <summary>What FAILED_HOSTS lists: the Name when it is a safe token, else the address, else the instance id.</summary>
    private static string HostLabel(MoltarDeployResult result) =>
        DeployHook.HostToken(result.Name, result.Address, result.InstanceId) ?? "?";
}
