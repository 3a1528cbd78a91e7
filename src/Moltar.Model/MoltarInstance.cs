namespace Moltar;

/// <summary>An EC2 instance as Moltar found it: the tags it is known by and the address SSH will use.</summary>
public sealed class MoltarInstance
{
    public string InstanceId { get; init; } = "";
    /// <summary>The shortest prefix of the id's hex part (3+ characters) unique within the listing it came from.</summary>
    public string ShortId { get; set; } = "";
    public string? Name { get; init; }
    public string? Project { get; init; }
    public string? Environment { get; init; }
    public string? Cluster { get; init; }
    public string[] Packages { get; init; } = Array.Empty<string>();
    public string State { get; init; } = "";
    public string? InstanceType { get; init; }
    public string? AvailabilityZone { get; init; }
    public string? Region { get; init; }
    public string? PrivateIpAddress { get; init; }
    public string? PublicIpAddress { get; init; }
    public string? PrivateDnsName { get; init; }
    public string? PublicDnsName { get; init; }
    /// <summary>The address SSH connects to, chosen by the AddressType in force when the instance was listed.</summary>
    public string? Address { get; init; }
    public DateTime? LaunchTime { get; init; }
    public IReadOnlyDictionary<string, string> Tags { get; init; } = new Dictionary<string, string>();

    /// <summary>The name a person reads in output: the Name tag, else the instance id; control characters as '?'.</summary>
    public string DisplayName => HostLabel.Of(Name, InstanceId);

    public override string ToString() => DisplayName;
}
