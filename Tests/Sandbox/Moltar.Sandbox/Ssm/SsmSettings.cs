using System.Text.Json.Serialization;

namespace Moltar.Sandbox.Ssm;

/// <summary>
/// How the SSM stand-in's fleet and service behave (control API <c>POST /_sandbox/ssm/settings</c>; posting replaces
/// the current set). By default every running EC2 instance of the fleet is a managed node with an agent online.
/// </summary>
public sealed class SsmSettings
{
    /// <summary>Instances with no SSM agent registered: DescribeInstanceInformation leaves them out, SendCommand refuses them (InvalidInstanceId).</summary>
    [JsonPropertyName("unmanaged")] public List<string>? Unmanaged { get; set; }

    /// <summary>Managed instances whose agent never reports (PingStatus ConnectionLost): their invocations end Failed/Undeliverable.</summary>
    [JsonPropertyName("undeliverable")] public List<string>? Undeliverable { get; set; }

    /// <summary>How long an undeliverable invocation stays Pending before the service gives up on it (default 1000 ms).</summary>
    [JsonPropertyName("undeliverableAfterMs")] public int? UndeliverableAfterMs { get; set; }

    /// <summary>Managed instances whose agent is refused the command document: their invocations end Failed/AccessDenied.</summary>
    [JsonPropertyName("accessDenied")] public List<string>? AccessDenied { get; set; }

    /// <summary>The next K SSM requests are answered 400 ThrottlingException (the SDK retries throttling).</summary>
    [JsonPropertyName("throttleFirst")] public int? ThrottleFirst { get; set; }

    /// <summary>Only these operations are throttled by <see cref="ThrottleFirst"/> (all when absent), e.g. ["ListCommandInvocations"].</summary>
    [JsonPropertyName("throttleActions")] public List<string>? ThrottleActions { get; set; }

    /// <summary>Delay before an agent starts an invocation (ms), so a test can act while commands are in flight.</summary>
    [JsonPropertyName("startDelayMs")] public int? StartDelayMs { get; set; }

    /// <summary>
    /// How long a command's invocations stay out of sight after SendCommand (ms): the service is eventually consistent, so
    /// right after SendCommand ListCommandInvocations may list none of them and GetCommandInvocation answer InvocationDoesNotExist.
    /// </summary>
    [JsonPropertyName("visibleAfterMs")] public int? VisibleAfterMs { get; set; }

    /// <summary>
    /// How long the answer to a successful SendCommand is held after the command was registered and its invocations
    /// began (ms): a client that gives up meanwhile (Ctrl+C) has started a command it has no id for yet.
    /// </summary>
    [JsonPropertyName("sendCommandReplyDelayMs")] public int? SendCommandReplyDelayMs { get; set; }

    /// <summary>Instances whose role may not write to the output bucket (no s3:PutObject): their agents upload nothing, so the objects are missing.</summary>
    [JsonPropertyName("outputUploadDenied")] public List<string>? OutputUploadDenied { get; set; }

    public string? Validate()
    {
        if (ThrottleFirst < 0) return "throttleFirst must be >= 0";
        if (UndeliverableAfterMs is < 0 or > 600_000) return "undeliverableAfterMs must be between 0 and 600000";
        if (StartDelayMs is < 0 or > 600_000) return "startDelayMs must be between 0 and 600000";
        if (VisibleAfterMs is < 0 or > 600_000) return "visibleAfterMs must be between 0 and 600000";
        if (SendCommandReplyDelayMs is < 0 or > 600_000) return "sendCommandReplyDelayMs must be between 0 and 600000";
        return null;
    }

    public bool IsUnmanaged(string id) => Unmanaged?.Contains(id, StringComparer.Ordinal) == true;
    public bool IsUndeliverable(string id) => Undeliverable?.Contains(id, StringComparer.Ordinal) == true;
    public bool IsAccessDenied(string id) => AccessDenied?.Contains(id, StringComparer.Ordinal) == true;
    /// <summary>Whether a command sent at <paramref name="requested"/> is still out of sight (<see cref="VisibleAfterMs"/>).</summary>
    public bool IsHidden(DateTimeOffset requested) => VisibleAfterMs is > 0 and var ms && DateTimeOffset.UtcNow - requested < TimeSpan.FromMilliseconds(ms);
    public bool IsOutputUploadDenied(string id) => OutputUploadDenied?.Contains(id, StringComparer.Ordinal) == true;
}
