using Moltar.Engine.Ssh;

namespace Moltar.Engine.Ssm;

/// <summary>The stable error ids of the SSM transport (ids shared with SSH where the meaning is the same).</summary>
public static class SsmErrorIds
{
    /// <summary>The command ran and exited non-zero (as over SSH).</summary>
    public const string CommandFailed = SshErrorIds.CommandFailed;
    /// <summary>The command ran past -TimeoutSeconds and Systems Manager stopped it (as over SSH).</summary>
    public const string Timeout = SshErrorIds.Timeout;
    /// <summary>Cancelled (Ctrl+C: CancelCommand), as over SSH.</summary>
    public const string Cancelled = "Cancelled";
    /// <summary>The instance is not a managed node (no SSM agent registered, or no instance role that lets it register).</summary>
    public const string NotManaged = "SsmNotManaged";
    /// <summary>Systems Manager could not deliver the command: the agent stopped reporting.</summary>
    public const string Undeliverable = "SsmUndeliverable";
    /// <summary>The agent did not pick the command up before the delivery timeout.</summary>
    public const string DeliveryTimedOut = "SsmDeliveryTimedOut";
    /// <summary>Not run: the command's error budget (MaxErrors; -ErrorAction Stop = 0) was spent on other instances.</summary>
    public const string Terminated = "SsmTerminated";
    /// <summary>The service or the instance refused the command document.</summary>
    public const string AccessDenied = "SsmAccessDenied";
    /// <summary>An invocation status Moltar does not know.</summary>
    public const string Failed = "SsmFailed";
    /// <summary>
    /// A warning, not an error: a stream Systems Manager truncated could not be read whole from the S3 output bucket
    /// (no object, access denied, no bucket); the result keeps the first 24,000 characters and Truncated.
    /// </summary>
    public const string OutputUnreadable = "SsmOutputUnreadable";
    /// <summary>A parameter that has no meaning over SSM (-Pty, -Stdin, -User, -JumpHost...).</summary>
    public const string ParameterNotSupported = "SsmParameterNotSupported";
    /// <summary>A selection SSM tag targets cannot express (substring -Name, -Package, wildcards).</summary>
    public const string SelectionNotSupported = "SsmSelectionNotSupported";
    /// <summary>A Systems Manager call failed (after the SDK's retries), so the command could not be sent or followed.</summary>
    public const string RequestFailed = "SsmRequestFailed";

    /// <summary>True for the ids that mean the command never ran to an exit code because Systems Manager did not get it there.</summary>
    public static bool IsDeliveryFailure(string? errorId) =>
        errorId is NotManaged or Undeliverable or DeliveryTimedOut or Terminated or AccessDenied or Failed or RequestFailed;

    /// <summary>The category that fits an SSM error id.</summary>
    public static FailureCategory CategoryOf(string errorId) => errorId switch
    {
        CommandFailed => FailureCategory.InvalidResult,
        Timeout or DeliveryTimedOut => FailureCategory.OperationTimeout,
        Cancelled or Terminated => FailureCategory.OperationStopped,
        NotManaged => FailureCategory.ObjectNotFound,
        Undeliverable or RequestFailed => FailureCategory.ConnectionError,
        AccessDenied => FailureCategory.PermissionDenied,
        ParameterNotSupported or SelectionNotSupported => FailureCategory.InvalidArgument,
        _ => FailureCategory.NotSpecified,
    };

    /// <summary>The failure value for an SSM error id about one instance; null for no id.</summary>
    public static MoltarFailure? FailureOf(string? errorId, string? message, string? instanceId) =>
        errorId is null ? null : new MoltarFailure(errorId, CategoryOf(errorId), message ?? errorId, instanceId);
}
