using System.ComponentModel;
using System.Diagnostics;
using System.Management.Automation;
using System.Text;
using Moltar.Engine;
using Moltar.Engine.Context;
using Moltar.Engine.Ssh;
using Moltar.Engine.Ssm;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>
/// Opens an interactive ssh session (or runs one remote command) on exactly one instance, with the system
/// OpenSSH client attached to the console.
/// </summary>
/// <remarks>
/// One parameter set: the selection (Environment, Cluster, Name by position, as Get-MoltarInstance) and pipeline
/// input live side by side so that `... | Enter-MoltarInstance -- uptime` binds (with two sets PowerShell would
/// bind 'uptime' to the selection set's Environment and then refuse the piped object). Words after "--" are
/// given back to the remote command from whatever positional parameter PowerShell put them in (DashDashSplit).
/// </remarks>
[Cmdlet(VerbsCommon.Enter, "MoltarInstance", SupportsShouldProcess = true, DefaultParameterSetName = SelectionSet)]
public sealed class EnterMoltarInstanceCommand : MoltarSshCmdlet
{
    /// <summary>One instance (Get-MoltarInstance, Get-EC2Instance-shaped, anything with an address) or a host name.</summary>
    [Parameter(ValueFromPipeline = true)] public new PSObject[]? InputObject { get; set; }
    /// <summary>The one instance to enter, by id.</summary>
    [Parameter] [ValidateNotNullOrEmpty] [ValidateCount(1, 1)] [ValidatePattern(InstanceInput.InstanceIdPattern)] public new string[]? InstanceId { get; set; }

    [Parameter(Position = 0)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(EnvironmentCompleter))]
    public new string? Environment { get; set; }
    [Parameter(Position = 1)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(ClusterCompleter))]
    public new string? Cluster { get; set; }
    [Parameter(Position = 2)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(NameCompleter))]
    public new string? Name { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? Package { get; set; }
    /// <summary>Take the first instance listed instead of requiring exactly one.</summary>
    [Parameter] public SwitchParameter First { get; set; }

    /// <summary>A command to run instead of a login shell (ssh joins the words with spaces); also everything after --.</summary>
    [Parameter(ValueFromRemainingArguments = true)] [AllowEmptyString] [AllowEmptyCollection] [Alias("Args")]
    public string[]? ArgumentList { get; set; }

    /// <summary>Ssh (the system ssh) or Ssm (a Session Manager session through the AWS CLI and its session-manager-plugin).</summary>
    [Parameter] [ValidateSet("Ssh", "Ssm", IgnoreCase = true)] public string? Transport { get; set; }

    private readonly List<PSObject> _piped = new();

    protected override ContextRequest AddToRequest(ContextRequest request) =>
        base.AddToRequest(request) with { Transport = TransportOf(Transport) };

    protected override string[]? SelectionPackages => Package;

    protected override void ProcessRecord()
    {
        if (InputObject is not null)
            _piped.AddRange(InputObject.Where(o => o is not null));
    }

    protected override void EndProcessing()
    {
        ApplyDashDash();
        var context = ResolveContext();
        if (context.Transport == Moltar.Transport.Ssm)
        {
            EnterOverSsm(context);
            return;
        }
        string ssh = OpenSshClient.FindForCurrentProcess() ?? ThrowSshClientNotFound();
        var work = ResolveOne(context);
        var options = BuildSshOptions(context);
        if (options.Passphrase is not null)
            WriteWarning("-Credential is not passed to ssh (it would show in the command line); ssh asks for the key's passphrase itself, or use ssh-agent.");

        OpenSshCommandLine line;
        try
        {
            line = OpenSshCommandLine.Create(ssh, work.Target, options, ArgumentList, log: WriteVerbose);
        }
        catch (MoltarException e)
        {
            ThrowFailure(e, work.Origin);
            return;
        }
        foreach (var note in line.Notes)
            WriteWarning(note);

        string display = line.ToDisplayString();
        WriteVerbose($"{work.Target}: {line.Settings.User}@{line.Settings.HostName}:{line.Settings.Port}" +
                     (line.JumpHosts.Count == 0 ? "" : $" through {string.Join(", ", line.JumpHosts)}{(line.JumpsUseProxyCommand ? " (ProxyCommand)" : "")}"));
        if (!ShouldProcessOrRefuse(display, $"Run {display}", "Enter-MoltarInstance"))
            return;

        // The command line, as the original printed it: on the console, not in the output.
        WriteInformation(new HostInformationMessage { Message = display }, new[] { "PSHOST", "Moltar" });
        RunAttached(line.FileName, line.Arguments, line.Environment.Select(e => new KeyValuePair<string, string?>(e.Key, e.Value)), "ssh");
    }

    /// <summary>
    /// -Transport Ssm: `aws ssm start-session --target ID` for the one instance (by id: no address needed), with the
    /// account Moltar resolved; a clear SessionManagerNotFound when the AWS CLI or its session-manager-plugin is missing.
    /// </summary>
    private void EnterOverSsm(MoltarContext context)
    {
        RefuseSshOnlyParameters(ArgumentList is { Length: > 0 } ? new[] { "ArgumentList" } : null);
        var (aws, plugin) = SessionManagerCommandLine.Find(System.Environment.GetEnvironmentVariable("PATH"), OperatingSystem.IsWindows());
        if (aws is null || plugin is null)
        {
            ThrowTerminatingError(new ErrorRecord(new CommandNotFoundException(SessionManagerCommandLine.NotFoundMessage(aws, plugin)),
                SessionManagerCommandLine.NotFoundErrorId, ErrorCategory.ObjectNotFound, aws is null ? "aws" : "session-manager-plugin"));
            return;
        }
        var (instanceId, origin) = ResolveOneId(context);
        var session = CreateAwsSession(context);
        SessionManagerCommandLine line;
        try
        {
            line = SessionManagerCommandLine.Create(aws, instanceId, session);
        }
        catch (MoltarException e)
        {
            ThrowFailure(e, origin);
            return;
        }
        string display = line.ToDisplayString();
        if (!ShouldProcessOrRefuse(display, $"Run {display}", "Enter-MoltarInstance"))
            return;
        WriteInformation(new HostInformationMessage { Message = display }, new[] { "PSHOST", "Moltar" });
        RunAttached(line.FileName, line.Arguments, line.Environment, "aws");
    }

    /// <summary>The one instance id to enter over SSM: piped, -InstanceId, or the one the selection finds.</summary>
    private (string InstanceId, object Origin) ResolveOneId(MoltarContext context)
    {
        bool piped = MyInvocation.ExpectingInput || MyInvocation.BoundParameters.ContainsKey(nameof(InputObject));
        if (piped)
        {
            var instances = InstanceInput.Expand(_piped).ToList();
            if (instances.Count != 1)
                ThrowInvalidArgument("AmbiguousInstance", $"{instances.Count} objects came down the pipeline; Enter-MoltarInstance enters exactly one.");
            var instance = InstanceInput.ToManagedInstance(instances[0], context);
            if (instance is null)
                ThrowInvalidArgument("SsmInputNotAnInstance",
                    $"-Transport Ssm: '{DisplayText.Printable(instances[0].ToString())}' is not an EC2 instance: Session Manager reaches instances by id.", instances[0]);
            return (instance!.InstanceId, InstanceInput.OriginOf(instances[0]));
        }
        if (InstanceId is not null)
        {
            var named = new MoltarInstance { InstanceId = InstanceId[0] };
            return (named.InstanceId, named);
        }
        var one = ResolveOne(context);
        return (one.Target.InstanceId, one.Origin);
    }

    /// <summary>
    /// Words after "--" belong to the remote command: move them back out of Environment/Cluster/Name, where
    /// PowerShell's positional binding put them. A "-Word" before "--" that is no parameter is an error here
    /// (ValueFromRemainingArguments would otherwise run it on the host).
    /// </summary>
    private void ApplyDashDash()
    {
        var split = DashDashSplit.Of(this);
        if (split is null)
            return;
        if (split.Unknown.Count > 0)
        {
            ThrowTerminatingError(new ErrorRecord(new ParameterBindingException(
                $"Enter-MoltarInstance has no parameter {string.Join(", ", split.Unknown)}. To pass words that start with - to the remote command, put them after --: Enter-MoltarInstance <environment> <cluster> <name> -- {string.Join(" ", split.Unknown)}"),
                "NamedParameterNotFound", ErrorCategory.InvalidArgument, split.Unknown[0]));
        }
        var slots = new List<(string Name, Func<string?> Get, Action Clear)>
        {
            ("Environment", () => Environment, () => Environment = null),
            ("Cluster", () => Cluster, () => Cluster = null),
            ("Name", () => Name, () => Name = null),
        }.Where(s => !split.Named.Contains(s.Name)).ToList();
        var moved = new List<string>();
        for (int i = split.PositionalBefore; i < slots.Count && i < split.PositionalBefore + split.After; i++)
        {
            if (slots[i].Get() is { } word)
            {
                moved.Add(word);
                slots[i].Clear();
            }
        }
        if (moved.Count > 0)
            ArgumentList = moved.Concat(ArgumentList ?? Array.Empty<string>()).ToArray();
    }

    /// <summary>The one host to enter: the piped object, or what the selection finds; none or several are terminating errors.</summary>
    private HostWork ResolveOne(MoltarContext context)
    {
        bool piped = MyInvocation.ExpectingInput || MyInvocation.BoundParameters.ContainsKey(nameof(InputObject));
        if (piped)
        {
            var selection = new[] { ("Environment", Environment), ("Cluster", Cluster), ("Name", Name) }.Where(p => p.Item2 is not null).ToList();
            if (selection.Count > 0 || Tag is not null || Package is not null || First)
            {
                string given = string.Join(", ", selection.Select(p => $"-{p.Item1} '{p.Item2}'").Concat(Tag is null ? Array.Empty<string>() : new[] { "-Tag" })
                    .Concat(Package is null ? Array.Empty<string>() : new[] { "-Package" }).Concat(First ? new[] { "-First" } : Array.Empty<string>()));
                ThrowInvalidArgument("SelectionWithInputObject",
                    $"Enter-MoltarInstance got an instance from the pipeline and a selection ({given}): give one or the other. To run a command on the piped instance, put it after --: ... | Enter-MoltarInstance -- uptime");
            }
            var targets = TargetsFromInput(_piped, context);
            if (targets.Count == 0)
            {
                ThrowTerminatingError(new ErrorRecord(
                    new ItemNotFoundException("Nothing came down the pipeline; Enter-MoltarInstance needs one instance (from Get-MoltarInstance) or host name."),
                    "InstanceNotFound", ErrorCategory.ObjectNotFound, null));
            }
            if (targets.Count > 1)
            {
                ThrowAmbiguous($"{targets.Count} objects came down the pipeline",
                    targets.Select(t => Candidate(t.Origin, t.Target)).ToList(),
                    "Pipe just one (... | Select-Object -First 1), or select it here: Enter-MoltarInstance <environment> <cluster> <short id or name>.",
                    targets.Select(t => t.Origin).ToArray());
            }
            return targets[0];
        }

        if (InstanceId is not null)
        {
            var byId = LookUpInstanceIds(context, InstanceId);
            if (byId.Count == 0)
                ThrowTerminatingError(new ErrorRecord(new InvalidOperationException($"{InstanceId[0]} has no address SSH can use."),
                    "NoAddress", ErrorCategory.ResourceUnavailable, InstanceId[0]));
            return HostWork.Of(byId[0]);
        }
        var filters = MakeSelection(context, Environment, Cluster, Name, Tag, First);
        var instances = DiscoverInstances(context, filters);
        if (instances.Count > 1)
        {
            ThrowAmbiguous($"{instances.Count} instances match {filters.Describe()}",
                instances.Select(i => (i.ShortId, i.DisplayName, i.Address)).ToList(),
                $"Narrow it down with a short id or part of a name ({Example(instances[0].ShortId)}), or add -First to take the first one listed.",
                instances.ToArray());
        }
        var instance = instances[0];
        if (instance.Address is null)
        {
            ThrowTerminatingError(new ErrorRecord(new InvalidOperationException(
                $"{instance.DisplayName} has no {AddressWord(context)}IP address to connect to. Try -AddressType Private or Public."),
                "NoAddress", ErrorCategory.ResourceUnavailable, instance));
        }
        if (!SshNames.IsValidHost(instance.Address))
            ThrowTerminatingError(InvalidAddressError(instance));
        return HostWork.Of(instance);
    }

    private static (string ShortId, string Name, string? Address) Candidate(object origin, SshTarget target) =>
        origin is MoltarInstance i ? (i.ShortId, i.DisplayName, i.Address)
            : (target.InstanceId.Length > 0 ? target.InstanceId : "-", target.DisplayName, target.Address);

    /// <summary>The command that would select one candidate, keeping the filters the user gave.</summary>
    private string Example(string shortId)
    {
        var words = new List<string> { "Enter-MoltarInstance" };
        bool positional = true;
        void Add(string parameter, string? value)
        {
            if (value is null) { positional = false; return; }
            words.Add(positional ? Quote(value) : $"-{parameter} {Quote(value)}");
        }
        Add("Environment", Environment);
        Add("Cluster", Cluster);
        Add("Name", shortId);
        return string.Join(" ", words);
    }

    private static string Quote(string value) => OpenSshCommandLine.QuotePowerShell(value);

    private void ThrowAmbiguous(string what, IReadOnlyList<(string ShortId, string Name, string? Address)> candidates, string hint, object target)
    {
        int idWidth = Math.Max("ShortId".Length, candidates.Max(c => c.ShortId.Length));
        int nameWidth = Math.Max("Name".Length, candidates.Max(c => c.Name.Length));
        var message = new StringBuilder()
            .Append(what).Append("; Enter-MoltarInstance enters exactly one:").AppendLine()
            .Append("  ").Append("ShortId".PadRight(idWidth)).Append("  ").Append("Name".PadRight(nameWidth)).Append("  Address").AppendLine();
        foreach (var (shortId, name, address) in candidates)
            message.Append("  ").Append(shortId.PadRight(idWidth)).Append("  ").Append(name.PadRight(nameWidth)).Append("  ").Append(address ?? "(no address)").AppendLine();
        message.Append(hint);
        ThrowInvalidArgument("AmbiguousInstance", message.ToString(), target);
    }

    private string ThrowSshClientNotFound()
    {
        ThrowTerminatingError(new ErrorRecord(new CommandNotFoundException(OpenSshClient.NotFoundMessage(OperatingSystem.IsWindows())),
            OpenSshClient.NotFoundErrorId, ErrorCategory.ObjectNotFound, "ssh"));
        throw new InvalidOperationException("not reached");
    }

    /// <summary>Runs ssh (or aws) on this console (stdin, stdout and stderr inherited) and sets $LASTEXITCODE as a native command does.</summary>
    private void RunAttached(string fileName, IEnumerable<string> arguments, IEnumerable<KeyValuePair<string, string?>> environment, string what)
    {
        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            WorkingDirectory = SessionState.Path.CurrentFileSystemLocation.ProviderPath,
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment)
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception("the process did not start");
        }
        catch (Win32Exception e)
        {
            ThrowTerminatingError(new ErrorRecord(new InvalidOperationException($"Could not start {fileName}: {e.Message}", e),
                what == "ssh" ? "SshStartFailed" : "SessionManagerStartFailed", ErrorCategory.OpenError, fileName));
            return;
        }
        using (process)
        {
            bool stopped = false;
            while (!process.WaitForExit(100))
            {
                if (!StopToken.IsCancellationRequested) continue;
                // Ctrl+C reached ssh as well (same terminal); give it a moment to end, then end it.
                stopped = true;
                if (!process.WaitForExit(2000))
                {
                    try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                    process.WaitForExit();
                }
                break;
            }
            process.WaitForExit();
            SessionState.PSVariable.Set("global:LASTEXITCODE", process.ExitCode);
            WriteVerbose($"{what} exited with {process.ExitCode}.");
            if (stopped)
                throw new PipelineStoppedException();
        }
    }
}
