using System.Collections;
using System.Management.Automation;
using System.Net;
using Moltar.Engine;
using Moltar.Engine.Context;
using Moltar.Engine.Discovery;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;

namespace Moltar.Infrastructure;

/// <summary>
/// The base of every cmdlet that works on instances over SSH: the SSH parameters, instances from the
/// pipeline or from the selection parameters, and draining a fan-out's events on the pipeline thread.
/// </summary>
public abstract partial class MoltarSshCmdlet : MoltarAwsCmdlet
{
    protected const string PipelineSet = "Pipeline";
    protected const string SelectionSet = "Selection";
    protected const string InstanceIdSet = "InstanceId";

    /// <summary>Instances (Get-MoltarInstance, (Get-EC2Instance).Instances, anything with InstanceId and an address) or host names.</summary>
    [Parameter(ParameterSetName = PipelineSet, Mandatory = true, ValueFromPipeline = true)]
    public PSObject[]? InputObject { get; set; }

    [Parameter(ParameterSetName = SelectionSet)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(EnvironmentCompleter))] public virtual string? Environment { get; set; }
    [Parameter(ParameterSetName = SelectionSet)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(ClusterCompleter))] public virtual string? Cluster { get; set; }
    [Parameter(ParameterSetName = SelectionSet)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(NameCompleter))] public string? Name { get; set; }
    [Parameter(ParameterSetName = SelectionSet)] [ValidateNotNullOrEmpty] public Hashtable? Tag { get; set; }
    /// <summary>Exactly these instances, looked up by id (in any project of the account; running ones).</summary>
    [Parameter(ParameterSetName = InstanceIdSet, Mandatory = true)] [ValidateNotNullOrEmpty] [ValidatePattern(InstanceInput.InstanceIdPattern)]
    public string[]? InstanceId { get; set; }

    [Parameter] [ValidateNotNullOrEmpty] [ValidateUserName] public string? User { get; set; }
    [Parameter] [ValidateRange(1, 65535)] public int? Port { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [Alias("IdentityFile")] public string[]? KeyFile { get; set; }
    /// <summary>A password is not used for login; the credential's password is the key files' passphrase.</summary>
    [Parameter] [Credential] public PSCredential? Credential { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? JumpHost { get; set; }
    [Parameter] [ValidateSet("Auto", "Public", "Private", IgnoreCase = true)] public string? AddressType { get; set; }
    [Parameter] [ValidateSet("Yes", "AcceptNew", "No", IgnoreCase = true)] public string? StrictHostKeyChecking { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [Alias("UserKnownHostsFile")] public string? KnownHostsPath { get; set; }
    /// <summary>The ssh config file to read instead of ~/.ssh/config and /etc/ssh/ssh_config (as ssh -F); 'none' reads none.</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string? SshConfigPath { get; set; }
    [Parameter] [ValidateRange(1, 3600)] public int? ConnectTimeoutSeconds { get; set; }
    /// <summary>How long this call's connections stay open for the next call (0: closed when the call ends).</summary>
    [Parameter] [ValidateRange(0, ContextResolver.MaxConnectionIdleSeconds)] public int? ConnectionIdleSeconds { get; set; }

    private readonly List<PSObject> _input = new();

    /// <summary>The selection parameters' Package filter, for cmdlets that have one (deploy uses its packages).</summary>
    protected virtual string[]? SelectionPackages => null;

    /// <summary>
    /// The cmdlet's -ThrottleLimit (1 under -Series), handed to the context so the fan-out's limit is resolved in one
    /// place with its source (parameter, MOLTAR_THROTTLE_LIMIT, project file, default): the fan-out then takes
    /// context.ThrottleLimit, and -Verbose's context line says where it came from. Null: not given, or no fan-out.
    /// </summary>
    protected virtual int? ThrottleLimitParameter => null;

    protected override ContextRequest AddToRequest(ContextRequest request) => request with
    {
        User = User ?? CredentialUser(),
        Port = Port,
        KeyFile = KeyFile?.FirstOrDefault() is { } first ? GetUnresolvedProviderPathFromPSPath(first) : null,
        KnownHostsPath = KnownHostsPath is null ? null : GetUnresolvedProviderPathFromPSPath(KnownHostsPath),
        JumpHost = JumpHost,
        AddressType = AddressType is null ? null : Enum.Parse<Moltar.AddressType>(AddressType, ignoreCase: true),
        StrictHostKeyChecking = StrictHostKeyChecking is null ? null : Enum.Parse<Moltar.StrictHostKeyChecking>(StrictHostKeyChecking, ignoreCase: true),
        ConnectionIdleSeconds = ConnectionIdleSeconds,
        ThrottleLimit = ThrottleLimitParameter,
    };

    /// <summary>As in Posh-SSH: -Credential's user name is the SSH user when -User is not given (its password is the key passphrase).</summary>
    private string? CredentialUser()
    {
        string? name = Credential?.UserName;
        if (string.IsNullOrEmpty(name))
            return null;
        if (!SshNames.IsValidUser(name))
            ThrowInvalidArgument("InvalidCredentialUser",
                $"-Credential's user name '{name}' is not {SshNames.UserRule}. It is the SSH user (as in Posh-SSH); give -User to choose the user, and the credential's password stays the key passphrase.");
        return name;
    }

    protected override void ProcessRecord()
    {
        if (InputObject is not null)
            _input.AddRange(InputObject.Where(o => o is not null));
    }

    /// <summary>What to work on: the piped objects, or the instances the selection parameters find.</summary>
    private protected IReadOnlyList<HostWork> ResolveTargets(MoltarContext context)
    {
        if (ParameterSetName == PipelineSet)
            return TargetsFromInput(_input, context);
        if (ParameterSetName == InstanceIdSet)
            return LookUpInstanceIds(context, InstanceId!).Select(HostWork.Of).ToList();
        return FindInstances(context).Select(HostWork.Of).ToList();
    }

    /// <summary>
    /// Piped objects as targets, in order: instances and anything with an address as they are, a Reservation
    /// (Get-EC2Instance) as its instances, instance-id strings looked up (all in one DescribeInstances), other strings as host names.
    /// </summary>
    private protected List<HostWork> TargetsFromInput(IEnumerable<PSObject> inputs, MoltarContext context)
    {
        var slots = new List<(HostWork? Work, string? InstanceId)>();
        foreach (var input in inputs)
        {
            if (input.BaseObject is string text && InstanceInput.IsInstanceId(text.Trim()))
            {
                slots.Add((null, text.Trim()));
                continue;
            }
            foreach (var item in InstanceInput.Expand(new[] { input }))
            {
                try { slots.Add((new HostWork(InstanceInput.ToTarget(item, context), InstanceInput.OriginOf(item)), null)); }
                catch (ArgumentException e) { ThrowInvalidArgument("InvalidInputObject", e.Message, item); }
            }
        }
        var ids = slots.Where(s => s.InstanceId is not null).Select(s => s.InstanceId!).ToList();
        if (ids.Count == 0)
            return slots.Select(s => s.Work!).ToList();
        var found = LookUpInstanceIds(context, ids).ToDictionary(i => i.InstanceId, StringComparer.Ordinal);
        var targets = new List<HostWork>();
        foreach (var (work, id) in slots)
        {
            if (work is not null)
                targets.Add(work);
            else if (found.TryGetValue(id!, out var instance))
                targets.Add(HostWork.Of(instance));
        }
        return targets;
    }

    /// <summary>
    /// The running instances with these ids (any project: the id says which); an id not found is a terminating
    /// InstanceNotFound that names it. Instances without a usable address are reported and left out, as in FindInstances.
    /// </summary>
    protected IReadOnlyList<MoltarInstance> LookUpInstanceIds(MoltarContext context, IReadOnlyList<string> ids)
    {
        var distinct = ids.Distinct(StringComparer.Ordinal).ToList();
        var selection = new InstanceSelection { InstanceIds = distinct };
        var instances = DiscoverInstances(context, selection);
        var missing = distinct.Where(id => instances.All(i => i.InstanceId != id)).ToList();
        if (missing.Count > 0)
        {
            ThrowTerminatingError(new ErrorRecord(
                new ItemNotFoundException($"No running instance has the id {string.Join(", ", missing)} in this account and region; nothing was run."),
                "InstanceNotFound", ErrorCategory.ObjectNotFound, missing.ToArray()));
        }
        return WithAddresses(context, instances);
    }

    /// <summary>Discovery with the selection parameters, as Get-MoltarInstance would do it; none found is a terminating error.</summary>
    protected IReadOnlyList<MoltarInstance> FindInstances(MoltarContext context)
    {
        var instances = DiscoverInstances(context, MakeSelection(context, Environment, Cluster, Name, Tag, first: false));
        return WithAddresses(context, instances);
    }

    /// <summary>The instances that have an address SSH may use; the others are reported (NoAddress, InvalidAddress) and left out.</summary>
    private IReadOnlyList<MoltarInstance> WithAddresses(MoltarContext context, IReadOnlyList<MoltarInstance> instances)
    {
        var missingAddress = instances.Where(i => i.Address is null).ToList();
        foreach (var instance in missingAddress)
            WriteError(new ErrorRecord(new InvalidOperationException(
                $"{instance.DisplayName} has no {AddressWord(context)}IP address; it is left out. Try -AddressType Private or Public."),
                "NoAddress", ErrorCategory.ResourceUnavailable, instance));
        // An address is handed to SSH and to ssh's command line: one that is not a host name or IP is never used.
        var badAddress = instances.Where(i => i.Address is not null && !SshNames.IsValidHost(i.Address)).ToList();
        foreach (var instance in badAddress)
            WriteError(InvalidAddressError(instance));
        return instances.Where(i => i.Address is not null && !badAddress.Contains(i)).ToList();
    }

    /// <summary>The error for an instance whose address is not a host name or IP address (it is not connected to).</summary>
    protected static ErrorRecord InvalidAddressError(MoltarInstance instance) =>
        new(new ArgumentException($"{instance.DisplayName}: the address '{DisplayText.Printable(instance.Address)}' is not {SshNames.HostRule}; it is left out."),
            "InvalidAddress", ErrorCategory.InvalidData, instance);

    /// <summary>The engine's selection for these filters (running instances only); a bad -Tag is a terminating InvalidTagFilter.</summary>
    protected InstanceSelection MakeSelection(MoltarContext context, string? environment, string? cluster, string? name, Hashtable? tag, bool first)
    {
        try
        {
            return Selection.From(context, environment, cluster, name, SelectionPackages, tag, null, first);
        }
        catch (ArgumentException e)
        {
            ThrowInvalidArgument("InvalidTagFilter", e.Message);
            throw;
        }
    }

    /// <summary>Every instance the selection finds, with or without an address; none is a terminating InstanceNotFound.</summary>
    protected IReadOnlyList<MoltarInstance> DiscoverInstances(MoltarContext context, InstanceSelection selection)
    {
        var instances = Discover(context, selection, out var session);
        if (instances.Count == 0)
        {
            ThrowTerminatingError(new ErrorRecord(
                new ItemNotFoundException($"No instance matches {selection.Describe()} in region {session.RegionName}; nothing was run."),
                "InstanceNotFound", ErrorCategory.ObjectNotFound, selection.Describe()));
        }
        return instances;
    }

    protected SshOptions BuildSshOptions(MoltarContext context)
    {
        var keyFiles = (KeyFile ?? Array.Empty<string>()).Select(GetUnresolvedProviderPathFromPSPath).ToList();
        if (keyFiles.Count == 0 && context.KeyFile is not null)
            keyFiles.Add(ExpandHome(context.KeyFile));
        foreach (var key in keyFiles)
        {
            if (!File.Exists(key))
                ThrowInvalidArgument("KeyFileNotFound", $"-KeyFile '{key}' does not exist. Give the path of a private key (ed25519, ecdsa or rsa), or leave -KeyFile out to use ssh-agent and ~/.ssh keys.", key);
        }
        return new SshOptions
        {
            User = context.User,
            Port = context.Port,
            KeyFiles = keyFiles,
            Passphrase = Credential?.GetNetworkCredential().Password is { Length: > 0 } passphrase ? passphrase : null,
            JumpHost = context.JumpHost,
            StrictHostKeyChecking = ParsePolicy(context),
            StricterHostKeyChecking = ProjectPolicy(context),
            // Not chosen by the user, not in ssh config: AcceptNew, as the help says (a project file's value is only a floor).
            DefaultStrictHostKeyChecking = Moltar.StrictHostKeyChecking.AcceptNew,
            KnownHostsPaths = context.KnownHostsPath is null ? null : new[] { ExpandHome(context.KnownHostsPath) },
            ConfigPath = SshConfigPath is null ? null : SshConfigPath == "none" ? "none" : GetUnresolvedProviderPathFromPSPath(SshConfigPath),
            // As ssh -F: a config file given on the command line replaces /etc/ssh/ssh_config too.
            SystemConfigPath = SshConfigPath is null ? null : "none",
            ConnectTimeout = ConnectTimeoutSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            ConnectionIdle = TimeSpan.FromSeconds(context.ConnectionIdleSeconds),
        };
    }

    /// <summary>
    /// The call's connector, made from BuildSshOptions' options with its log posted to the pipeline thread; a call-level
    /// problem (a key file or ssh config that cannot be used) is the terminating error.
    /// </summary>
    protected SshConnector CreateConnector(SshOptions options)
    {
        try
        {
            return new SshConnector(options, PostSshLog);
        }
        catch (MoltarException e)
        {
            ThrowFailure(e);
            throw; // not reached
        }
    }

    /// <summary>"public " or "private " before "IP address" in messages; nothing for Auto.</summary>
    protected static string AddressWord(MoltarContext context) =>
        context.AddressType == Moltar.AddressType.Auto ? "" : context.AddressType.ToString().ToLowerInvariant() + " ";

    /// <summary>
    /// Only the user's explicit choice (parameter, environment) overrides ssh config's StrictHostKeyChecking; the
    /// context's default does not, and a (trusted) project file's only makes it stricter (ProjectPolicy).
    /// </summary>
    private static Moltar.StrictHostKeyChecking? ParsePolicy(MoltarContext context) =>
        PolicySource(context) is SettingSource.Parameter or SettingSource.Environment ? context.StrictHostKeyChecking : null;

    private static Moltar.StrictHostKeyChecking? ProjectPolicy(MoltarContext context) =>
        PolicySource(context) is SettingSource.ProjectFile ? context.StrictHostKeyChecking : null;

    private static SettingSource? PolicySource(MoltarContext context) =>
        context.Settings.FirstOrDefault(s => s.Name == "StrictHostKeyChecking")?.Source;

    private static string ExpandHome(string path) =>
        path.StartsWith("~/", StringComparison.Ordinal) || path == "~"
            ? Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), path.TrimStart('~').TrimStart('/'))
            : path;

    /// <summary>Writes the engine's log entries on the pipeline thread (connector messages come from worker threads).</summary>
    protected void PostSshLog(SshLogEntry entry)
    {
        string text = entry.Target is null ? entry.Message : $"{entry.Target.DisplayName}: {entry.Message}";
        if (entry.Level == SshLogLevel.Warning) PostWarning(text); else PostVerbose(text);
    }

    /// <summary>
    /// A host's non-terminating error from the engine's failure value: its id and category as they were made, the
    /// message naming the host, the object the user gave as target.
    /// </summary>
    protected static ErrorRecord HostError(MoltarFailure failure, SshTarget target, object origin)
    {
        string message = failure.Message.Contains(target.DisplayName, StringComparison.Ordinal)
            ? failure.Message
            : $"{target}: {failure.Message}";
        return new ErrorRecord(new MoltarHostException(message, failure), failure.ErrorId, CategoryOf(failure.Category), origin);
    }

    /// <summary>Whether -ErrorAction (or the caller's $ErrorActionPreference) is Stop: the first WriteError would end the call.</summary>
    protected bool ErrorActionIsStop()
    {
        object? preference = MyInvocation.BoundParameters.TryGetValue("ErrorAction", out var bound) ? bound : GetVariableValue("ErrorActionPreference");
        return LanguagePrimitives.TryConvertTo<ActionPreference>(preference, out var action) && action == ActionPreference.Stop;
    }

    /// <summary>
    /// The one summary line a fan-out ends with, on the Information stream: shown like Write-Host, and tagged so
    /// transcripts, 6>&amp;1 and -InformationVariable keep it (and -InformationAction Ignore drops it).
    /// </summary>
    protected void WriteSummary(string text) =>
        WriteInformation(new HostInformationMessage { Message = text }, new[] { "PSHOST", "Moltar", "summary" });

    /// <summary>
    /// Drains a fan-out and tallies it: per completed host, <paramref name="completed"/> writes the results and returns
    /// the host's error records (none when it succeeded). Errors are written as they come, except under -ErrorAction Stop:
    /// there the first failure stops new hosts from starting (the runner was made with StopOnFailure), hosts already
    /// running finish and their results are written, then the summary, then one terminating error naming the failed hosts.
    /// </summary>
    private protected void DrainAndSummarize<TResult>(FanOutRunner<SshTarget, TResult> runner, IReadOnlyList<HostWork> work, string activity, bool quiet,
                                              bool stopOnError, FanOutTally tally,
                                              Func<FanOutEvent<SshTarget, TResult>, IReadOnlyList<ErrorRecord>> completed,
                                              Func<int, int, int, (string Status, int Percent)>? describeProgress = null)
    {
        Drain(runner, activity, quiet, e =>
        {
            var errors = completed(e);
            tally.Add(e, errors.Count > 0 ? errors[0].FullyQualifiedErrorId : null, work[e.Index].Origin);
            // Under Stop the failed hosts are named by the one terminating error at the end.
            if (!stopOnError)
            {
                foreach (var error in errors)
                    WriteError(error);
            }
        }, describeProgress);
        WriteSummary(tally.Summary);
        if (stopOnError && tally.Failed > 0)
            ThrowTerminatingError(tally.StoppedError());
    }

    /// <summary>
    /// Drains a fan-out on the pipeline thread until every item completed: output lines (prefixed with the host,
    /// on the Information stream unless quiet), warnings, verbose, progress, and each item's completion.
    /// describeProgress (optional) gives the progress status and percent from (hosts done, hosts, hosts failed);
    /// it is asked on each completion and every quarter second, for work whose progress moves between completions.
    /// </summary>
    protected void Drain<TResult>(FanOutRunner<SshTarget, TResult> runner, string activity, bool quiet,
                                  Action<FanOutEvent<SshTarget, TResult>> completed,
                                  Func<int, int, int, (string Status, int Percent)>? describeProgress = null)
    {
        // A new record per write: whoever keeps the records (a runspace's Progress stream) sees each state, not the last.
        string status = "starting";
        int percent = -1;
        void Report(ProgressRecordType type = ProgressRecordType.Processing) =>
            WriteProgress(new ProgressRecord(1, activity, status) { PercentComplete = percent, RecordType = type });
        int failed = 0;
        bool bold = !Console.IsOutputRedirected && Host?.UI?.SupportsVirtualTerminal == true;
        var sinceProgress = System.Diagnostics.Stopwatch.StartNew();
        void EachTurn()
        {
            if (StopToken.IsCancellationRequested) runner.Cancel();
            if (describeProgress is not null && sinceProgress.ElapsedMilliseconds >= 250)
            {
                (status, percent) = describeProgress(runner.CompletedCount, runner.TotalCount, failed);
                Report();
                sinceProgress.Restart();
            }
        }
        // Messages posted by discovery or the connector (other threads) are written by the same loop.
        Pump(runner.Events, e =>
        {
            switch (e.Kind)
            {
                case FanOutEventKind.Output when !quiet:
                    string prefix = bold ? $"\u001b[1m{e.Item!.DisplayName}\u001b[0m" : e.Item!.DisplayName;
                    // A host message (as Write-Host makes) shows by default, and still goes away with -Quiet or 6>$null.
                    WriteInformation(new HostInformationMessage { Message = $"{prefix}: {e.Text}" },
                                     new[] { "PSHOST", "Moltar", e.IsError ? "stderr" : "stdout" });
                    break;
                case FanOutEventKind.Warning:
                    WriteWarning(e.HasItem ? $"{e.Item!.DisplayName}: {e.Text}" : e.Text ?? "");
                    break;
                case FanOutEventKind.Verbose:
                    WriteVerbose(e.HasItem ? $"{e.Item!.DisplayName}: {e.Text}" : e.Text ?? "");
                    break;
                case FanOutEventKind.Completed:
                    if (e.Failed) failed++;
                    completed(e);
                    if (describeProgress is not null)
                    {
                        (status, percent) = describeProgress(e.CompletedCount, e.TotalCount, failed);
                    }
                    else
                    {
                        status = $"{e.CompletedCount} of {e.TotalCount} hosts done, {failed} failed";
                        percent = e.TotalCount == 0 ? 100 : (int)(100.0 * e.CompletedCount / e.TotalCount);
                    }
                    Report();
                    sinceProgress.Restart();
                    break;
            }
        }, () => runner.IsFinished, EachTurn);
        Report(ProgressRecordType.Completed);
        if (StopToken.IsCancellationRequested)
            throw new PipelineStoppedException();
    }
}
