using System.Text.Json.Serialization;

namespace Moltar.Sandbox.Ec2;

/// <summary>One EC2 request as the control API reports it (<c>GET /_sandbox/requests</c>).</summary>
public sealed record Ec2RequestRecord
{
    [JsonPropertyName("action")] public string? Action { get; init; }
    [JsonPropertyName("parameters")] public required IReadOnlyDictionary<string, string> Parameters { get; init; }
    [JsonPropertyName("status")] public int Status { get; init; }
    [JsonPropertyName("errorCode")] public string? ErrorCode { get; init; }
    [JsonPropertyName("accessKeyId")] public string? AccessKeyId { get; init; }
    [JsonPropertyName("region")] public string? Region { get; init; }
    [JsonPropertyName("requestId")] public required string RequestId { get; init; }
    [JsonPropertyName("method")] public required string Method { get; init; }
    [JsonPropertyName("userAgent")] public string? UserAgent { get; init; }
    [JsonPropertyName("time")] public DateTimeOffset Time { get; init; }
    [JsonPropertyName("durationMs")] public double DurationMs { get; init; }
}

/// <summary>The request log, oldest first, bounded so a long Bench run cannot exhaust memory.</summary>
public sealed class Ec2RequestLog
{
    public const int Capacity = 100_000;
    private readonly Lock gate = new();
    private readonly Queue<Ec2RequestRecord> records = new();

    public void Add(Ec2RequestRecord record)
    {
        lock (gate)
        {
            if (records.Count == Capacity)
            {
                records.Dequeue();
            }
            records.Enqueue(record);
        }
    }

    public IReadOnlyList<Ec2RequestRecord> Snapshot()
    {
        lock (gate)
        {
            return records.ToArray();
        }
    }

    public void Clear()
    {
        lock (gate)
        {
            records.Clear();
        }
    }
}
