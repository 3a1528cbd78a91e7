using System.Collections;
using System.Management.Automation;
using Moltar.Engine.Discovery;
using Moltar.Engine.Ssh;

namespace Moltar.Infrastructure;

/// <summary>
/// Turns whatever came down the pipeline into SSH targets: MoltarInstance objects, objects shaped like
/// Get-EC2Instance output (InstanceId plus PublicIpAddress/PrivateIpAddress and a Tags list), anything with
/// an Address property, or plain host names and addresses. The one place that reads a piped object: its address,
/// its tags (through InstanceTags, as discovery reads them) and what its error records name (OriginOf).
/// </summary>
internal static class InstanceInput
{
    /// <summary>An EC2 instance id as AWS writes it (i- and 8 or 17 hex digits): looked up, never used as a host name.</summary>
    public const string InstanceIdPattern = "^i-([0-9a-f]{8}|[0-9a-f]{17})$";

    public static bool IsInstanceId(string text) => System.Text.RegularExpressions.Regex.IsMatch(text, InstanceIdPattern);

    /// <summary>
    /// The one Origin rule, for every cmdlet and transport: a host's error records name what the user gave for it. A
    /// piped object as it was piped (a PSCustomObject whole, as its PSObject: its base object is empty; anything else
    /// as its base object); an instance Moltar looked up (selection, -InstanceId) is the instance (HostWork.Of).
    /// </summary>
    public static object OriginOf(PSObject piped) => piped.BaseObject is PSCustomObject ? piped : piped.BaseObject;

    /// <summary>The instances of a Get-EC2Instance Reservation (an object with ReservationId and an Instances list); null for anything else.</summary>
    public static IReadOnlyList<PSObject>? ReservationInstances(PSObject input)
    {
        if (input.BaseObject is string || input.Properties["ReservationId"] is null || input.Properties["Instances"]?.Value is not { } instances)
            return null;
        return PSObject.AsPSObject(instances).BaseObject is IEnumerable list and not string
            ? list.Cast<object?>().Where(i => i is not null).Select(i => PSObject.AsPSObject(i!)).ToList()
            : new[] { PSObject.AsPSObject(instances) };
    }

    /// <summary>The piped objects one by one: a Reservation as its instances, anything else as itself.</summary>
    public static IEnumerable<PSObject> Expand(IEnumerable<PSObject> inputs) =>
        inputs.SelectMany(input => ReservationInstances(input) ?? new[] { input });

    public static SshTarget ToTarget(PSObject input, MoltarContext context)
    {
        if (input.BaseObject is MoltarInstance instance)
            return SshTarget.FromInstance(instance);
        if (input.BaseObject is string text)
        {
            if (string.IsNullOrWhiteSpace(text))
                throw new ArgumentException("An empty string came down the pipeline where a host or instance was expected.");
            return new SshTarget(text.Trim());
        }

        string? instanceId = Property(input, "InstanceId");
        string? address = Property(input, "Address")
            ?? InstanceDiscovery.ChooseAddress(context.AddressType, Property(input, "PublicIpAddress"), Property(input, "PrivateIpAddress"))
            ?? Property(input, "PublicDnsName") ?? Property(input, "PrivateDnsName") ?? Property(input, "HostName");
        if (address is null)
            throw new ArgumentException(
                $"The input object{(instanceId is null ? "" : $" {instanceId}")} has no address: it needs an Address, PublicIpAddress or PrivateIpAddress property " +
                "(pipe Get-MoltarInstance, (Get-EC2Instance).Instances, or host names).");
        return new SshTarget(address, instanceId, Property(input, "Name") ?? NameTag(input, context));
    }

    /// <summary>
    /// An instance for Systems Manager, which needs its id only: a MoltarInstance, an object with an InstanceId (its
    /// name and address kept for the result when it has them), or an instance-id string; null for anything else.
    /// </summary>
    public static MoltarInstance? ToManagedInstance(PSObject input, MoltarContext context)
    {
        if (input.BaseObject is MoltarInstance instance)
            return instance;
        if (input.BaseObject is string text)
            return IsInstanceId(text.Trim()) ? new MoltarInstance { InstanceId = text.Trim() } : null;
        if (Property(input, "InstanceId") is not { } id || !IsInstanceId(id))
            return null;
        return new MoltarInstance
        {
            InstanceId = id,
            Name = Property(input, "Name") ?? NameTag(input, context),
            Address = Property(input, "Address") ?? Property(input, "PrivateIpAddress") ?? Property(input, "PublicIpAddress"),
        };
    }

    /// <summary>
    /// The packages an input object's tags list: MoltarInstance.Packages, a Packages property, or the Packages tag of
    /// its Tags; null when it has none (a host name, an object without such a tag).
    /// </summary>
    public static string[]? PackagesOf(object origin, MoltarContext context)
    {
        if (origin is MoltarInstance instance)
            return instance.Packages;
        var input = PSObject.AsPSObject(origin);
        if (input.BaseObject is string)
            return null;
        if (input.Properties["Packages"]?.Value is { } packages)
            return packages is string text ? InstanceTags.ParsePackages(text) : LanguagePrimitives.ConvertTo<string[]>(packages);
        return TagsOf(input, context)?.Packages;
    }

    /// <summary>
    /// A piped object's Tags, read as discovery reads an instance's: an EC2 SDK-shaped list (objects with Key and Value;
    /// keys as EC2 has them, case-sensitive) or a dictionary (a hashtable's keys match as the hashtable matches them).
    /// Null when it has no Tags.
    /// </summary>
    private static InstanceTags? TagsOf(PSObject input, MoltarContext context)
    {
        if (input.Properties["Tags"]?.Value is not { } value)
            return null;
        var tags = PSObject.AsPSObject(value).BaseObject;
        if (tags is IDictionary dictionary)
            return new InstanceTags(new DictionaryTags(dictionary), context);
        if (tags is IEnumerable list and not string)
        {
            var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var item in list)
            {
                var tag = PSObject.AsPSObject(item);
                if (tag.Properties["Key"]?.Value?.ToString() is { } key)
                    pairs.TryAdd(key, tag.Properties["Value"]?.Value?.ToString() ?? "");
            }
            return new InstanceTags(pairs, context);
        }
        return null;
    }

    private static string? NameTag(PSObject input, MoltarContext context) => TagsOf(input, context)?.Name is { Length: > 0 } name ? name : null;

    private static string? Property(PSObject input, string name) => input.Properties[name]?.Value?.ToString() is { Length: > 0 } value ? value : null;

    /// <summary>A dictionary's entries as tags, looked up with the dictionary's own key matching.</summary>
    private sealed class DictionaryTags(IDictionary dictionary) : IReadOnlyDictionary<string, string>
    {
        public string this[string key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException(key);
        public IEnumerable<string> Keys => dictionary.Keys.Cast<object>().Select(k => k.ToString() ?? "");
        public IEnumerable<string> Values => dictionary.Values.Cast<object?>().Select(v => v?.ToString() ?? "");
        public int Count => dictionary.Count;
        public bool ContainsKey(string key) => dictionary.Contains(key);

        public bool TryGetValue(string key, out string value)
        {
            if (dictionary.Contains(key))
            {
                value = dictionary[key]?.ToString() ?? "";
                return true;
            }
            value = "";
            return false;
        }

        public IEnumerator<KeyValuePair<string, string>> GetEnumerator() =>
            dictionary.Cast<DictionaryEntry>().Select(e => new KeyValuePair<string, string>(e.Key.ToString() ?? "", e.Value?.ToString() ?? "")).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
