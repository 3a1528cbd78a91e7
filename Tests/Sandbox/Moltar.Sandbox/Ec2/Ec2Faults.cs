using System.Text.Json.Serialization;

namespace Moltar.Sandbox.Ec2;

/// <summary>
/// Fault settings (control API <c>POST /_sandbox/faults</c>). All optional; posting replaces the current set.
/// </summary>
public sealed class Ec2FaultSettings
{
    /// <summary>The next K EC2 requests get HTTP 503 RequestLimitExceeded (the SDK retries it as throttling).</summary>
    [JsonPropertyName("throttleFirst")] public int? ThrottleFirst { get; set; }

    /// <summary>The next K EC2 requests (after any throttled ones) get HTTP 500 InternalError.</summary>
    [JsonPropertyName("errorFirst")] public int? ErrorFirst { get; set; }

    /// <summary>Each EC2 request fails with HTTP 500 InternalError with this probability (0.0 - 1.0).</summary>
    [JsonPropertyName("errorRate")] public double? ErrorRate { get; set; }

    /// <summary>Every EC2 request fails with HTTP 401 AuthFailure (not retried by the SDK).</summary>
    [JsonPropertyName("authFailure")] public bool? AuthFailure { get; set; }

    /// <summary>Seed for <see cref="ErrorRate"/>, so a run is repeatable.</summary>
    [JsonPropertyName("seed")] public int? Seed { get; set; }

    /// <summary>Delay in milliseconds before answering each EC2 request (timeouts, progress).</summary>
    [JsonPropertyName("delayMs")] public int? DelayMs { get; set; }

    public string? Validate()
    {
        if (ThrottleFirst < 0) return "throttleFirst must be >= 0";
        if (ErrorFirst < 0) return "errorFirst must be >= 0";
        if (ErrorRate is < 0 or > 1 || (ErrorRate is { } rate && double.IsNaN(rate))) return "errorRate must be between 0.0 and 1.0";
        if (DelayMs is < 0 or > 600_000) return "delayMs must be between 0 and 600000";
        return null;
    }
}

/// <summary>Decides, request by request, which fault (if any) to inject. Thread-safe.</summary>
public sealed class Ec2Faults
{
    private readonly Lock gate = new();
    private Ec2FaultSettings settings = new();
    private int throttleLeft;
    private int errorLeft;
    private Random random = new(0);

    public Ec2FaultSettings Current
    {
        get
        {
            lock (gate)
            {
                return new Ec2FaultSettings
                {
                    ThrottleFirst = throttleLeft,
                    ErrorFirst = errorLeft,
                    ErrorRate = settings.ErrorRate ?? 0,
                    AuthFailure = settings.AuthFailure ?? false,
                    Seed = settings.Seed,
                    DelayMs = settings.DelayMs ?? 0,
                };
            }
        }
    }

    public void Set(Ec2FaultSettings value)
    {
        lock (gate)
        {
            settings = value;
            throttleLeft = value.ThrottleFirst ?? 0;
            errorLeft = value.ErrorFirst ?? 0;
            random = value.Seed is { } seed ? new Random(seed) : new Random();
        }
    }

    public void Clear() => Set(new Ec2FaultSettings { Seed = 0 });

    public int DelayMs
    {
        get
        {
            lock (gate)
            {
                return settings.DelayMs ?? 0;
            }
        }
    }

    /// <summary>The error to answer with instead of the real result, or null.</summary>
    public Ec2Error? Next()
    {
        lock (gate)
        {
            if (settings.AuthFailure == true)
            {
                return Ec2Error.AuthFailure();
            }
            if (throttleLeft > 0)
            {
                throttleLeft--;
                return Ec2Error.RequestLimitExceeded();
            }
            if (errorLeft > 0)
            {
                errorLeft--;
                return Ec2Error.InternalError();
            }
            if (settings.ErrorRate is > 0.0 and var rate && random.NextDouble() < rate)
            {
                return Ec2Error.InternalError();
            }
            return null;
        }
    }
}
