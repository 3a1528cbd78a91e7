using System.Globalization;

namespace Moltar.Sandbox.Ec2;

/// <summary>A page of DescribeInstances: instances in reservation order, and the token for the next page.</summary>
public sealed record DescribeInstancesPage(IReadOnlyList<Ec2Instance> Instances, string? NextToken);

/// <summary>One region as DescribeRegions reports it.</summary>
public sealed record Ec2Region(string Name, string OptInStatus)
{
    public string Endpoint => $"ec2.{Name}.amazonaws.com";
}

/// <summary>One (instance, tag) pair as DescribeTags reports it.</summary>
public sealed record Ec2ResourceTag(string ResourceId, string ResourceType, string Key, string Value);

public sealed record DescribeTagsPage(IReadOnlyList<Ec2ResourceTag> Tags, string? NextToken);

/// <summary>
/// The semantics of the actions the sandbox serves, separate from HTTP and XML:
/// parameter validation, filters, instance ids and paging, as EC2 does them.
/// </summary>
public sealed class Ec2Actions(Ec2Fleet fleet, Ec2PageToken tokens)
{
    public const int MinMaxResults = 5;
    public const int MaxMaxResults = 1000;

    /// <summary>Filter names DescribeInstances understands here (a subset of EC2's; others are rejected as EC2 rejects unknown ones).</summary>
    public static readonly IReadOnlySet<string> InstanceFilterNames = new HashSet<string>(StringComparer.Ordinal)
    {
        "tag-key", "tag-value", "instance-state-name", "instance-state-code", "instance-id", "private-ip-address",
        "ip-address", "private-dns-name", "dns-name", "instance-type", "availability-zone", "reservation-id",
        "owner-id", "image-id",
    };

    public static readonly IReadOnlyList<Ec2Region> Regions =
    [
        new("ap-south-1", "opt-in-not-required"), new("eu-north-1", "opt-in-not-required"),
        new("eu-west-3", "opt-in-not-required"), new("eu-west-2", "opt-in-not-required"),
        new("eu-west-1", "opt-in-not-required"), new("ap-northeast-3", "opt-in-not-required"),
        new("ap-northeast-2", "opt-in-not-required"), new("ap-northeast-1", "opt-in-not-required"),
        new("ca-central-1", "opt-in-not-required"), new("sa-east-1", "opt-in-not-required"),
        new("ap-southeast-1", "opt-in-not-required"), new("ap-southeast-2", "opt-in-not-required"),
        new("eu-central-1", "opt-in-not-required"), new("us-east-1", "opt-in-not-required"),
        new("us-east-2", "opt-in-not-required"), new("us-west-1", "opt-in-not-required"),
        new("us-west-2", "opt-in-not-required"), new("af-south-1", "not-opted-in"),
        new("ap-east-1", "not-opted-in"), new("eu-south-1", "not-opted-in"), new("me-south-1", "not-opted-in"),
    ];

    public DescribeInstancesPage DescribeInstances(Ec2Parameters p)
    {
        p.RejectUnknown(["DryRun", "MaxResults", "NextToken"], ["InstanceId"], filters: true);
        var filters = p.GetFilters();
        foreach (var filter in filters)
        {
            if (!IsInstanceFilter(filter.Name))
            {
                throw Ec2Error.InvalidFilter(filter.Name);
            }
        }
        var ids = p.GetList("InstanceId");
        var maxResults = p.GetMaxResults(MinMaxResults, MaxMaxResults);
        if (maxResults is not null && ids is not null)
        {
            throw Ec2Error.InvalidParameterCombination("The parameter instancesSet cannot be used with the parameter maxResults");
        }
        var snapshot = fleet.Snapshot;
        HashSet<string>? wanted = null;
        if (ids is not null)
        {
            foreach (var id in ids)
            {
                if (!Ec2Ids.IsInstanceId(id))
                {
                    throw new Ec2Error(400, "InvalidInstanceID.Malformed", $"Invalid id: \"{id}\"");
                }
            }
            var missing = ids.Distinct(StringComparer.Ordinal).Where(id => !snapshot.ById.ContainsKey(id)).ToArray();
            if (missing.Length > 0)
            {
                throw new Ec2Error(400, "InvalidInstanceID.NotFound", missing.Length == 1
                    ? $"The instance ID '{missing[0]}' does not exist"
                    : $"The instance IDs '{string.Join(", ", missing)}' do not exist");
            }
            wanted = new HashSet<string>(ids, StringComparer.Ordinal);
        }
        if (p.GetBool("DryRun"))
        {
            throw Ec2Error.DryRunOperation();
        }

        var signature = Ec2Filter.Signature(filters) + "\u0004" + string.Join(",", ids ?? []);
        var nextToken = p.Get("NextToken");
        var offset = string.IsNullOrEmpty(nextToken) ? 0 : tokens.Parse("DescribeInstances", signature, nextToken);

        var matched = new List<Ec2Instance>();
        foreach (var instance in snapshot.InReservationOrder)
        {
            if ((wanted is null || wanted.Contains(instance.InstanceId)) && MatchesAll(instance, filters))
            {
                matched.Add(instance);
            }
        }
        return Page(matched, offset, maxResults, (items, next) => new DescribeInstancesPage(items, next), "DescribeInstances", signature);
    }

    public IReadOnlyList<Ec2Region> DescribeRegions(Ec2Parameters p)
    {
        p.RejectUnknown(["DryRun", "AllRegions"], ["RegionName"], filters: true);
        var filters = p.GetFilters();
        foreach (var filter in filters)
        {
            if (filter.Name is not ("region-name" or "endpoint" or "opt-in-status"))
            {
                throw Ec2Error.InvalidFilter(filter.Name);
            }
        }
        var names = p.GetList("RegionName");
        var all = p.GetBool("AllRegions");
        if (names is not null)
        {
            foreach (var name in names)
            {
                if (!Regions.Any(r => r.Name == name))
                {
                    throw Ec2Error.InvalidParameterValue($"Invalid region: {name}");
                }
            }
        }
        if (p.GetBool("DryRun"))
        {
            throw Ec2Error.DryRunOperation();
        }
        return Regions
            .Where(r => names is null ? all || r.OptInStatus != "not-opted-in" : names.Contains(r.Name))
            .Where(r => filters.All(f => f.Name switch
            {
                "region-name" => f.Matches(r.Name),
                "endpoint" => f.Matches(r.Endpoint),
                _ => f.Matches(r.OptInStatus),
            }))
            .ToArray();
    }

    public DescribeTagsPage DescribeTags(Ec2Parameters p)
    {
        p.RejectUnknown(["DryRun", "MaxResults", "NextToken"], [], filters: true);
        var filters = p.GetFilters();
        foreach (var filter in filters)
        {
            if (filter.Name is not ("key" or "value" or "resource-id" or "resource-type")
                && !(filter.Name.StartsWith("tag:", StringComparison.Ordinal) && filter.Name.Length > 4))
            {
                throw Ec2Error.InvalidFilter(filter.Name);
            }
        }
        var maxResults = p.GetMaxResults(MinMaxResults, MaxMaxResults);
        if (p.GetBool("DryRun"))
        {
            throw Ec2Error.DryRunOperation();
        }
        var signature = Ec2Filter.Signature(filters);
        var nextToken = p.Get("NextToken");
        var offset = string.IsNullOrEmpty(nextToken) ? 0 : tokens.Parse("DescribeTags", signature, nextToken);

        var matched = new List<Ec2ResourceTag>();
        foreach (var instance in fleet.Snapshot.InFleetOrder)
        {
            foreach (var tag in instance.Tags)
            {
                var item = new Ec2ResourceTag(instance.InstanceId, "instance", tag.Key, tag.Value);
                if (filters.All(f => TagMatches(item, f)))
                {
                    matched.Add(item);
                }
            }
        }
        return Page(matched, offset, maxResults, (items, next) => new DescribeTagsPage(items, next), "DescribeTags", signature);
    }

    private TPage Page<T, TPage>(List<T> matched, int offset, int? maxResults, Func<IReadOnlyList<T>, string?, TPage> make, string action, string signature)
    {
        if (offset >= matched.Count)
        {
            return make([], null);
        }
        var count = Math.Min(maxResults ?? int.MaxValue, matched.Count - offset);
        var end = offset + count;
        var next = end < matched.Count ? tokens.Create(action, signature, end) : null;
        return make(matched.GetRange(offset, count), next);
    }

    private static bool IsInstanceFilter(string name) =>
        InstanceFilterNames.Contains(name) || (name.StartsWith("tag:", StringComparison.Ordinal) && name.Length > 4);

    private static bool MatchesAll(Ec2Instance instance, IReadOnlyList<Ec2Filter> filters)
    {
        foreach (var filter in filters)
        {
            if (!InstanceMatches(instance, filter))
            {
                return false;
            }
        }
        return true;
    }

    private static bool InstanceMatches(Ec2Instance i, Ec2Filter f)
    {
        if (f.Name.StartsWith("tag:", StringComparison.Ordinal))
        {
            return f.Matches(i.TagValue(f.Name[4..]));
        }
        return f.Name switch
        {
            "tag-key" => f.MatchesAny(i.Tags.Select(t => t.Key)),
            "tag-value" => f.MatchesAny(i.Tags.Select(t => t.Value)),
            "instance-state-name" => f.Matches(i.State),
            "instance-state-code" => f.Matches(i.StateCode.ToString(CultureInfo.InvariantCulture)),
            "instance-id" => f.Matches(i.InstanceId),
            "private-ip-address" => f.Matches(i.PrivateIpAddress),
            "ip-address" => f.Matches(i.PublicIpAddress),
            "private-dns-name" => f.Matches(NullIfEmpty(i.PrivateDnsName)),
            "dns-name" => f.Matches(NullIfEmpty(i.PublicDnsName)),
            "instance-type" => f.Matches(i.InstanceType),
            "availability-zone" => f.Matches(i.AvailabilityZone),
            "reservation-id" => f.Matches(i.ReservationId),
            "owner-id" => f.Matches(i.OwnerId),
            "image-id" => f.Matches(i.ImageId),
            _ => throw Ec2Error.InvalidFilter(f.Name),
        };
    }

    private static bool TagMatches(Ec2ResourceTag t, Ec2Filter f)
    {
        if (f.Name.StartsWith("tag:", StringComparison.Ordinal))
        {
            return t.Key == f.Name[4..] && f.Matches(t.Value);
        }
        return f.Name switch
        {
            "key" => f.Matches(t.Key),
            "value" => f.Matches(t.Value),
            "resource-id" => f.Matches(t.ResourceId),
            _ => f.Matches(t.ResourceType),
        };
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;
}
