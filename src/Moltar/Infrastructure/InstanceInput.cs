using System.Collections;
using System.Management.Automation;
using Moltar.Engine.Discovery;
using Moltar.Engine.Ssh;

namespace Moltar.Infrastructure;

/// <summary>
/// Turns whatever came down the pipeline into SSH targets: MoltarInstance objects, objects shaped like
/// Get-EC2Instance output (InstanceId plus PublicIpAddress/PrivateIpAddress and a Tags list), anything with
/// an Address property, or plain host names and addresses.
/// </summary>
internal static class InstanceInput
{
    /// <summary>An EC2 instance id as AWS writes it (i- and 8 or 17 hex digits): looked up, never used as a host name.</summary>
    public const string InstanceIdPattern = "^i-([0-9a-f]{8}|[0-9a-f]{17})$";

    public static bool IsInstanceId(string text) => System.Text.RegularExpressions.Regex.IsMatch(text, InstanceIdPattern);

    /// <summary>The instances of a Get-EC2Instance Reservation (an object with ReservationId and an Instances list); null for anything else.</summary>
    public static IReadOnlyList<PSObject>? ReservationInstances(PSObject input)
    {
        if (input.BaseObject is string || input.Properties["ReservationId"] is null || input.Properties["Instances"]?.Value is not { } instances)
            return null;
        return PSObject.AsPSObject(instances).BaseObject is IEnumerable list and not string
            ? list.Cast<object?>().Where(i => i is not null).Select(i => PSObject.AsPSObject(i!)).ToList()
            : new[] { PSObject.AsPSObject(instances) };
    }

    public static SshTarget ToTarget(PSObject input, AddressType addressType)
    {
        if (input.BaseObject is MoltarInstance instance)
            return SshTarget.FromInstance(instance);
        if (input.BaseObject is string text)
        {
            if (string.IsNullOrWhiteSpace(text))
                throw new ArgumentException("An empty string came down the pipeline where a host or instance was expected.");
            return new SshTarget(text.Trim());
        }

        string? Property(string name) => input.Properties[name]?.Value?.ToString() is { Length: > 0 } value ? value : null;
        string? instanceId = Property("InstanceId");
        string? address = Property("Address")
            ?? InstanceDiscovery.ChooseAddress(addressType, Property("PublicIpAddress"), Property("PrivateIpAddress"))
            ?? Property("PublicDnsName") ?? Property("PrivateDnsName") ?? Property("HostName");
        if (address is null)
            throw new ArgumentException(
                $"The input object{(instanceId is null ? "" : $" {instanceId}")} has no address: it needs an Address, PublicIpAddress or PrivateIpAddress property " +
                "(pipe Get-MoltarInstance, (Get-EC2Instance).Instances, or host names).");
        return new SshTarget(address, instanceId, Property("Name") ?? NameTag(input.Properties["Tags"]?.Value));
    }

    /// <summary>
    /// An instance for Systems Manager, which needs its id only: a MoltarInstance, an object with an InstanceId (its
    /// name and address kept for the result when it has them), or an instance-id string; null for anything else.
    /// </summary>
    public static MoltarInstance? ToManagedInstance(PSObject input)
    {
        if (input.BaseObject is MoltarInstance instance)
            return instance;
        if (input.BaseObject is string text)
            return IsInstanceId(text.Trim()) ? new MoltarInstance { InstanceId = text.Trim() } : null;
        string? Property(string name) => input.Properties[name]?.Value?.ToString() is { Length: > 0 } value ? value : null;
        if (Property("InstanceId") is not { } id || !IsInstanceId(id))
            return null;
        return new MoltarInstance
        {
            InstanceId = id,
            Name = Property("Name") ?? NameTag(input.Properties["Tags"]?.Value),
            Address = Property("Address") ?? Property("PrivateIpAddress") ?? Property("PublicIpAddress"),
        };
    }

    /// <summary>The Name tag of an EC2 SDK-shaped Tags list (objects with Key and Value) or a dictionary.</summary>
    private static string? NameTag(object? tags)
    {
        if (tags is null) return null;
        if (PSObject.AsPSObject(tags).BaseObject is IDictionary dictionary)
            return dictionary.Contains("Name") ? dictionary["Name"]?.ToString() : null;
        if (PSObject.AsPSObject(tags).BaseObject is IEnumerable list)
        {
            foreach (var item in list)
            {
                var tag = PSObject.AsPSObject(item);
                if (tag.Properties["Key"]?.Value?.ToString() == "Name")
                    return tag.Properties["Value"]?.Value?.ToString();
            }
        }
        return null;
    }
}
