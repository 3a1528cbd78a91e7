using System.Globalization;
using Moltar.Sandbox.Ec2;

namespace Moltar.Sandbox.Ssm;

/// <summary>One copy of a command on one instance, as ListCommandInvocations and GetCommandInvocation report it.</summary>
public sealed class SsmInvocation(SsmCommand command, string instanceId, string instanceName)
{
    private readonly Lock gate = new();

    public SsmCommand Command { get; } = command;
    public string InstanceId { get; } = instanceId;
    public string InstanceName { get; } = instanceName;
    public string Status { get; private set; } = "Pending";
    public string StatusDetails { get; private set; } = "Pending";
    public int ResponseCode { get; private set; } = -1;
    public DateTimeOffset? Started { get; private set; }
    public DateTimeOffset? Finished { get; private set; }
    public string StandardOutput { get; private set; } = "";
    public string StandardError { get; private set; } = "";

    /// <summary>Cancelled by CancelCommand (or the execution timeout, via the reason).</summary>
    internal CancellationTokenSource Stop { get; } = new();
    internal string? StopReason { get; private set; }

    public bool IsTerminal => Status is "Success" or "Failed" or "TimedOut" or "Cancelled";

    /// <summary>Errors in the MaxErrors sense: failures, execution timeouts and refusals; not undeliverable ones.</summary>
    public bool CountsAsError => StatusDetails is "Failed" or "ExecutionTimedOut" or "AccessDenied";

    internal void Start()
    {
        lock (gate)
        {
            Status = StatusDetails = "InProgress";
            Started = DateTimeOffset.UtcNow;
        }
    }

    internal void Finish(string status, string details, int responseCode, string stdout = "", string stderr = "")
    {
        lock (gate)
        {
            if (IsTerminal)
            {
                return;
            }
            Status = status;
            StatusDetails = details;
            ResponseCode = responseCode;
            StandardOutput = stdout;
            StandardError = stderr;
            Finished = DateTimeOffset.UtcNow;
        }
    }

    internal void RequestStop(string reason)
    {
        lock (gate)
        {
            if (IsTerminal || StopReason is not null)
            {
                return;
            }
            StopReason = reason;
            if (Status == "InProgress")
            {
                Status = StatusDetails = "Cancelling";
            }
        }
        Stop.Cancel();
    }
}

/// <summary>A command sent with SendCommand: its request, its invocations (one per target instance, in target order).</summary>
public sealed class SsmCommand
{
    public required string CommandId { get; init; }
    public required string DocumentName { get; init; }
    public string Comment { get; init; } = "";
    public required IReadOnlyList<string> Commands { get; init; }
    public required int ExecutionTimeoutSeconds { get; init; }
    public string? WorkingDirectory { get; init; }
    public required int DeliveryTimeoutSeconds { get; init; }
    public required string MaxConcurrency { get; init; }
    public required string MaxErrors { get; init; }
    public required IReadOnlyList<string> InstanceIds { get; init; }
    public required IReadOnlyList<KeyValuePair<string, IReadOnlyList<string>>> Targets { get; init; }
    public string? OutputS3BucketName { get; init; }
    public string? OutputS3KeyPrefix { get; init; }
    public required DateTimeOffset Requested { get; init; }
    public List<SsmInvocation> Invocations { get; } = [];

    /// <summary>The script the agent writes to _script.sh: one command per line.</summary>
    public string Script => string.Join("\n", Commands) + "\n";

    public int CompletedCount => Invocations.Count(i => i.IsTerminal);
    public int ErrorCount => Invocations.Count(i => i.CountsAsError);
    public int DeliveryTimedOutCount => Invocations.Count(i => i.StatusDetails is "DeliveryTimedOut" or "Undeliverable");

    public string Status
    {
        get
        {
            if (Invocations.All(i => i.IsTerminal))
            {
                if (Invocations.Any(i => i.Status == "Cancelled")) return "Cancelled";
                return Invocations.Any(i => i.Status != "Success") ? "Failed" : "Success";
            }
            return Invocations.Any(i => i.Status != "Pending") ? "InProgress" : "Pending";
        }
    }

    /// <summary>MaxConcurrency or MaxErrors ("N" or "N%") as a count of this command's targets (a percentage rounds up, at least 1 for concurrency).</summary>
    public static int Resolve(string value, int targets, int minimum)
    {
        var count = value.EndsWith('%')
            ? (int)Math.Ceiling(targets * int.Parse(value[..^1], CultureInfo.InvariantCulture) / 100.0)
            : int.Parse(value, CultureInfo.InvariantCulture);
        return Math.Max(minimum, count);
    }
}

/// <summary>
/// The commands the stand-in holds and the simulated agents that run them: MaxConcurrency invocations at a time,
/// in target order; past MaxErrors the invocations not yet started end Terminated; undeliverable and refused instances
/// end as the service reports them; an execution timeout or CancelCommand kills the running script.
/// </summary>
public sealed class SsmCommandStore
{
    private readonly Lock gate = new();
    private readonly List<SsmCommand> commands = [];
    private readonly Dictionary<string, SsmCommand> byId = new(StringComparer.Ordinal);

    /// <summary>The sshd host behind an instance id, or null (synthetic: the agent runs locally).</summary>
    public Func<string, SsmHostTarget?> Hosts { get; set; } = _ => null;

    public Func<SsmSettings> Settings { get; set; } = () => new SsmSettings();

    /// <summary>The S3 stand-in the agents write a command's full output to (OutputS3BucketName), as the real agent does.</summary>
    public S3Endpoint? Outputs { get; set; }

    public IReadOnlyList<SsmCommand> Snapshot()
    {
        lock (gate)
        {
            return commands.ToArray();
        }
    }

    public SsmCommand? Find(string commandId)
    {
        lock (gate)
        {
            return byId.GetValueOrDefault(commandId);
        }
    }

    public void Clear()
    {
        foreach (var command in Snapshot())
        {
            foreach (var invocation in command.Invocations)
            {
                invocation.RequestStop("Cancelled");
            }
        }
        lock (gate)
        {
            commands.Clear();
            byId.Clear();
        }
    }

    public void Add(SsmCommand command, IEnumerable<Ec2Instance> targets)
    {
        foreach (var instance in targets)
        {
            command.Invocations.Add(new SsmInvocation(command, instance.InstanceId, instance.PrivateDnsName));
        }
        lock (gate)
        {
            commands.Add(command);
            byId[command.CommandId] = command;
        }
        _ = Task.Run(() => RunAsync(command));
    }

    /// <summary>CancelCommand: every invocation (or the given instances') not yet finished stops.</summary>
    public void Cancel(SsmCommand command, IReadOnlyCollection<string>? instanceIds)
    {
        foreach (var invocation in command.Invocations)
        {
            if (instanceIds is null || instanceIds.Count == 0 || instanceIds.Contains(invocation.InstanceId))
            {
                invocation.RequestStop("Cancelled");
            }
        }
    }

    private async Task RunAsync(SsmCommand command)
    {
        var total = command.Invocations.Count;
        using var slots = new SemaphoreSlim(SsmCommand.Resolve(command.MaxConcurrency, total, 1));
        var maxErrors = SsmCommand.Resolve(command.MaxErrors, total, 0);
        var running = new List<Task>(total);
        foreach (var invocation in command.Invocations)
        {
            try
            {
                await slots.WaitAsync(invocation.Stop.Token);
            }
            catch (OperationCanceledException)
            {
                invocation.Finish("Cancelled", "Cancelled", -1);
                continue;
            }
            if (invocation.Stop.IsCancellationRequested)
            {
                slots.Release();
                invocation.Finish("Cancelled", "Cancelled", -1);
                continue;
            }
            if (command.ErrorCount > maxErrors)
            {
                slots.Release();
                invocation.Finish("Failed", "Terminated", -1);
                continue;
            }
            running.Add(RunInvocationAsync(invocation, slots));
        }
        await Task.WhenAll(running);
    }

    private async Task RunInvocationAsync(SsmInvocation invocation, SemaphoreSlim slots)
    {
        try
        {
            var settings = Settings();
            var command = invocation.Command;
            if (settings.IsUndeliverable(invocation.InstanceId))
            {
                // The agent never picks the command up: it stays Pending until the service gives up on the instance.
                var wait = Math.Min(settings.UndeliverableAfterMs ?? 1000, command.DeliveryTimeoutSeconds * 1000);
                try
                {
                    await Task.Delay(wait, invocation.Stop.Token);
                    invocation.Finish("Failed", "Undeliverable", -1);
                }
                catch (OperationCanceledException)
                {
                    invocation.Finish("Cancelled", "Cancelled", -1);
                }
                return;
            }
            if (settings.IsAccessDenied(invocation.InstanceId))
            {
                invocation.Finish("Failed", "AccessDenied", -1);
                return;
            }
            if (settings.StartDelayMs is > 0 and var delay)
            {
                try
                {
                    await Task.Delay(delay, invocation.Stop.Token);
                }
                catch (OperationCanceledException)
                {
                    invocation.Finish("Cancelled", "Cancelled", -1);
                    return;
                }
            }
            invocation.Start();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(command.ExecutionTimeoutSeconds));
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(invocation.Stop.Token, timeout.Token);
            SsmAgentResult result;
            try
            {
                result = await SsmAgent.RunAsync(Hosts(invocation.InstanceId), command.CommandId, invocation.InstanceId,
                                                 command.Script, command.WorkingDirectory, stop.Token);
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                invocation.Finish("Failed", "Failed", -1, "", "The sandbox agent could not start: " + ex.Message);
                return;
            }
            // The agent uploads the output before it reports the invocation finished (as the real agent does).
            void Report(string status, string details, int code, string stdout, string stderr)
            {
                Upload(invocation, settings, stdout, stderr);
                invocation.Finish(status, details, code, stdout, stderr);
            }
            if (invocation.Stop.IsCancellationRequested)
            {
                Report("Cancelled", "Cancelled", -1, result.StandardOutput, result.StandardError);
            }
            else if (timeout.IsCancellationRequested)
            {
                Report("TimedOut", "ExecutionTimedOut", -1, result.StandardOutput,
                       result.StandardError + $"\nfailed to run commands: exit status -1 (execution timed out after {command.ExecutionTimeoutSeconds} seconds)");
            }
            else if (result.ExitCode == 0)
            {
                Report("Success", "Success", 0, result.StandardOutput, result.StandardError);
            }
            else
            {
                Report("Failed", "Failed", result.ExitCode, result.StandardOutput,
                       result.StandardError + $"\nfailed to run commands: exit status {result.ExitCode}");
            }
        }
        finally
        {
            slots.Release();
        }
    }

    /// <summary>
    /// With an output bucket, the agent writes each non-empty stream whole to the key the real agent uses; an
    /// instance whose role may not write there (<see cref="SsmSettings.OutputUploadDenied"/>) uploads nothing.
    /// </summary>
    private void Upload(SsmInvocation invocation, SsmSettings settings, string stdout, string stderr)
    {
        var command = invocation.Command;
        if (Outputs is null || string.IsNullOrEmpty(command.OutputS3BucketName) || settings.IsOutputUploadDenied(invocation.InstanceId))
        {
            return;
        }
        foreach (var (stream, text) in new[] { ("stdout", stdout), ("stderr", stderr) })
        {
            if (text.Length > 0)
            {
                Outputs.Put(command.OutputS3BucketName, S3Endpoint.KeyOf(command.OutputS3KeyPrefix, command.CommandId, invocation.InstanceId, stream), text);
            }
        }
    }
}
