namespace Moltar.Engine.Ssh;

/// <summary>One host to connect to: an instance and the address SSH uses for it.</summary>
public sealed record SshTarget
{
    public SshTarget(string address, string? instanceId = null, string? name = null)
    {
        if (string.IsNullOrWhiteSpace(address))
        {
            throw new ArgumentException("A target needs an address.", nameof(address));
        }

        // Addresses reach SSH.NET, the system ssh's command line and (through jump hosts) a ProxyCommand run by
        // /bin/sh: a value with shell metacharacters or a leading '-' is refused here, whatever its source.
        Address = SshNames.CheckHost(address.Trim(), "The address");
        InstanceId = instanceId ?? "";
        Name = name;
    }

    public string InstanceId { get; init; }
    public string? Name { get; init; }
    /// <summary>What ssh config Host patterns are matched against, and the host connected to unless HostName says otherwise.</summary>
    public string Address { get; init; }
    /// <summary>Overrides options and ssh config for this target only.</summary>
    public int? Port { get; init; }
    /// <summary>Overrides options and ssh config for this target only.</summary>
    public string? User { get; init; }

    /// <summary>Name, else instance id, else address, control characters as '?': what a person reads in prefixed output.</summary>
    public string DisplayName => HostLabel.Of(Name, InstanceId, Address);

    public static SshTarget FromInstance(MoltarInstance instance)
    {
        var address = instance.Address ?? instance.PrivateIpAddress ?? instance.PublicIpAddress
            ?? throw new ArgumentException($"Instance {instance.InstanceId} has no address to connect to.", nameof(instance));
        return new SshTarget(address, instance.InstanceId, instance.Name);
    }

    public override string ToString() => DisplayName == Address ? Address : $"{DisplayName} ({Address})";
}
