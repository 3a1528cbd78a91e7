using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Moltar.Sandbox.Ec2;

/// <summary>One tag of an instance. Keys and values are case-sensitive, as in EC2.</summary>
public sealed record Ec2Tag(string Key, string Value);

/// <summary>
/// An instance as the sandbox serves it. Immutable; the fleet is replaced as a whole.
/// <see cref="Tags"/> is empty for an untagged instance (then the XML has no tagSet).
/// </summary>
public sealed record Ec2Instance
{
    public required string InstanceId { get; init; }
    public string State { get; init; } = "running";
    public string InstanceType { get; init; } = "t3.micro";
    public string AvailabilityZone { get; init; } = "us-east-1a";
    public string? PrivateIpAddress { get; init; }
    public string? PublicIpAddress { get; init; }
    public string PrivateDnsName { get; init; } = "";
    public string PublicDnsName { get; init; } = "";
    public DateTimeOffset LaunchTime { get; init; } = Ec2Defaults.LaunchTime;
    public required string ReservationId { get; init; }
    public string OwnerId { get; init; } = Ec2Defaults.OwnerId;
    public string ImageId { get; init; } = Ec2Defaults.ImageId;
    public IReadOnlyList<Ec2Tag> Tags { get; init; } = [];

    public int StateCode => Ec2States.Code(State);

    public string? TagValue(string key)
    {
        foreach (var tag in Tags)
        {
            if (string.Equals(tag.Key, key, StringComparison.Ordinal))
            {
                return tag.Value;
            }
        }
        return null;
    }
}

public static class Ec2Defaults
{
    public const string OwnerId = "123456789012";
    public const string ImageId = "ami-0c7217cdde317cfec";
    public const string Region = "us-east-1";
    public static readonly DateTimeOffset LaunchTime = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>"i-" + 17 lowercase hex chars, deterministic from a seed string (a host name).</summary>
    public static string InstanceIdFor(string seed) => "i-" + HexOf("instance:" + seed, 17);

    /// <summary>"r-" + 17 lowercase hex chars, deterministic from a seed string.</summary>
    public static string ReservationIdFor(string seed) => "r-" + HexOf("reservation:" + seed, 17);

    /// <summary>EC2's private DNS name for an IPv4 address: ip-10-0-0-5.ec2.internal.</summary>
    public static string PrivateDnsNameFor(string? address) =>
        string.IsNullOrEmpty(address) ? "" : "ip-" + address.Replace('.', '-') + ".ec2.internal";

    internal static string HexOf(string seed, int length)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(seed));
        return Convert.ToHexStringLower(hash)[..length];
    }
}

public static class Ec2States
{
    public static readonly IReadOnlyList<string> Names = ["pending", "running", "shutting-down", "terminated", "stopping", "stopped"];

    public static bool IsValid(string name) => Names.Contains(name, StringComparer.Ordinal);

    public static int Code(string name) => name switch
    {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        "stopped" => 80,
        _ => throw new ArgumentException($"Unknown instance state '{name}'.", nameof(name)),
    };
}

/// <summary>The fleet JSON document (CONTRACT.md "Fleet JSON"): camelCase, missing fields get defaults.</summary>
public sealed class FleetDocument
{
    [JsonPropertyName("instances")]
    public List<FleetInstance>? Instances { get; set; }
}

/// <summary>One instance in fleet JSON. Everything but <see cref="InstanceId"/> is optional.</summary>
public sealed class FleetInstance
{
    [JsonPropertyName("instanceId")] public string? InstanceId { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("instanceType")] public string? InstanceType { get; set; }
    [JsonPropertyName("availabilityZone")] public string? AvailabilityZone { get; set; }
    [JsonPropertyName("privateIpAddress")] public string? PrivateIpAddress { get; set; }
    [JsonPropertyName("publicIpAddress")] public string? PublicIpAddress { get; set; }
    [JsonPropertyName("privateDnsName")] public string? PrivateDnsName { get; set; }
    [JsonPropertyName("publicDnsName")] public string? PublicDnsName { get; set; }
    [JsonPropertyName("launchTime")] public DateTimeOffset? LaunchTime { get; set; }
    [JsonPropertyName("reservationId")] public string? ReservationId { get; set; }
    [JsonPropertyName("ownerId")] public string? OwnerId { get; set; }
    [JsonPropertyName("imageId")] public string? ImageId { get; set; }
    [JsonPropertyName("tags")] public Dictionary<string, string>? Tags { get; set; }
}

/// <summary>Reads and writes fleet JSON, validating what EC2 itself would never produce.</summary>
public static class FleetJson
{
    private static readonly JsonSerializerOptions ReadOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    private static readonly JsonSerializerOptions WriteOptions = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Parses fleet JSON. Throws <see cref="FormatException"/> with a clear message when it is invalid.</summary>
    public static IReadOnlyList<Ec2Instance> Parse(string json)
    {
        FleetDocument? doc;
        try
        {
            doc = JsonSerializer.Deserialize<FleetDocument>(json, ReadOptions);
        }
        catch (JsonException ex)
        {
            throw new FormatException("Fleet JSON is not valid: " + ex.Message, ex);
        }
        if (doc?.Instances is null)
        {
            throw new FormatException("Fleet JSON must be an object with an \"instances\" array.");
        }
        return FromDocument(doc);
    }

    public static IReadOnlyList<Ec2Instance> FromDocument(FleetDocument doc)
    {
        var result = new List<Ec2Instance>(doc.Instances?.Count ?? 0);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var index = 0;
        foreach (var item in doc.Instances ?? [])
        {
            index++;
            if (item is null)
            {
                throw new FormatException($"Fleet instance #{index} is null.");
            }
            var id = item.InstanceId;
            if (string.IsNullOrWhiteSpace(id) || !Ec2Ids.IsInstanceId(id))
            {
                throw new FormatException($"Fleet instance #{index}: instanceId '{id}' is not an EC2 instance id (i- and 8 or 17 lowercase hex chars).");
            }
            if (!seen.Add(id))
            {
                throw new FormatException($"Fleet instance #{index}: instanceId '{id}' appears twice.");
            }
            var state = item.State ?? "running";
            if (!Ec2States.IsValid(state))
            {
                throw new FormatException($"Fleet instance {id}: state '{state}' is not one of {string.Join(", ", Ec2States.Names)}.");
            }
            var tags = new List<Ec2Tag>();
            foreach (var (key, value) in item.Tags ?? [])
            {
                tags.Add(new Ec2Tag(key, value ?? ""));
            }
            result.Add(new Ec2Instance
            {
                InstanceId = id,
                State = state,
                InstanceType = item.InstanceType ?? "t3.micro",
                AvailabilityZone = item.AvailabilityZone ?? "us-east-1a",
                PrivateIpAddress = string.IsNullOrEmpty(item.PrivateIpAddress) ? null : item.PrivateIpAddress,
                PublicIpAddress = string.IsNullOrEmpty(item.PublicIpAddress) ? null : item.PublicIpAddress,
                PrivateDnsName = item.PrivateDnsName ?? Ec2Defaults.PrivateDnsNameFor(item.PrivateIpAddress),
                PublicDnsName = item.PublicDnsName ?? "",
                LaunchTime = item.LaunchTime ?? Ec2Defaults.LaunchTime,
                ReservationId = string.IsNullOrEmpty(item.ReservationId) ? Ec2Defaults.ReservationIdFor(id) : item.ReservationId,
                OwnerId = item.OwnerId ?? Ec2Defaults.OwnerId,
                ImageId = item.ImageId ?? Ec2Defaults.ImageId,
                Tags = tags,
            });
        }
        return result;
    }

    public static FleetDocument ToDocument(IEnumerable<Ec2Instance> instances) => new()
    {
        Instances = instances.Select(i => new FleetInstance
        {
            InstanceId = i.InstanceId,
            State = i.State,
            InstanceType = i.InstanceType,
            AvailabilityZone = i.AvailabilityZone,
            PrivateIpAddress = i.PrivateIpAddress,
            PublicIpAddress = i.PublicIpAddress,
            PrivateDnsName = i.PrivateDnsName,
            PublicDnsName = i.PublicDnsName,
            LaunchTime = i.LaunchTime,
            ReservationId = i.ReservationId,
            OwnerId = i.OwnerId,
            ImageId = i.ImageId,
            Tags = i.Tags.Count == 0 ? null : i.Tags.ToDictionary(t => t.Key, t => t.Value, StringComparer.Ordinal),
        }).ToList(),
    };

    public static string Serialize(IEnumerable<Ec2Instance> instances) =>
        JsonSerializer.Serialize(ToDocument(instances), WriteOptions);
}

public static class Ec2Ids
{
    /// <summary>EC2 instance ids: i- followed by 8 (old) or 17 lowercase hex characters.</summary>
    public static bool IsInstanceId(string id)
    {
        if (!id.StartsWith("i-", StringComparison.Ordinal))
        {
            return false;
        }
        var hex = id.AsSpan(2);
        if (hex.Length != 8 && hex.Length != 17)
        {
            return false;
        }
        foreach (var c in hex)
        {
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c))
            {
                return false;
            }
        }
        return true;
    }
}
