using System.Globalization;

namespace Moltar.Sandbox.Ec2;

/// <summary>
/// The parameters of one Query API request (form body and query string), with the EC2 list
/// conventions: <c>Name.N</c> lists and <c>Filter.N.Name</c> / <c>Filter.N.Value.M</c> filters,
/// N counting from 1. Parameter names are case-sensitive, as in EC2.
/// </summary>
public sealed class Ec2Parameters
{
    private readonly Dictionary<string, string> values;

    public Ec2Parameters(IEnumerable<KeyValuePair<string, string>> parameters)
    {
        values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in parameters)
        {
            values[key] = value;
        }
    }

    public IReadOnlyDictionary<string, string> All => values;

    public string? Get(string name) => values.TryGetValue(name, out var value) ? value : null;

    /// <summary>
    /// Rejects parameters the action does not know (EC2's UnknownParameter). Signing parameters of
    /// presigned URLs (X-Amz-*) are ignored.
    /// </summary>
    public void RejectUnknown(IReadOnlyCollection<string> scalars, IReadOnlyCollection<string> lists, bool filters)
    {
        foreach (var key in values.Keys)
        {
            if (key is "Action" or "Version" || key.StartsWith("X-Amz-", StringComparison.Ordinal) || scalars.Contains(key))
            {
                continue;
            }
            var parts = key.Split('.');
            if (lists.Contains(parts[0]) && (parts.Length == 1 || (parts.Length == 2 && IsIndex(parts[1]))))
            {
                continue;
            }
            if (filters && parts[0] == "Filter")
            {
                // Filter (an empty list), Filter.N.Name, Filter.N.Value (an empty value list), Filter.N.Value.M
                if (parts.Length == 1
                    || (parts.Length == 3 && IsIndex(parts[1]) && parts[2] is "Name" or "Value")
                    || (parts.Length == 4 && IsIndex(parts[1]) && parts[2] == "Value" && IsIndex(parts[3])))
                {
                    continue;
                }
            }
            throw Ec2Error.UnknownParameter(key);
        }
    }

    /// <summary>
    /// A <c>Name.N</c> list in N order, or null when the request has none. A bare <c>Name=</c>
    /// (how some SDKs send an empty list) or an empty member is EC2's MissingParameter.
    /// </summary>
    public IReadOnlyList<string>? GetList(string name)
    {
        SortedList<int, string>? items = null;
        foreach (var (key, value) in values)
        {
            if (key == name)
            {
                throw Ec2Error.MissingParameter(name);
            }
            if (key.Length > name.Length + 1 && key.StartsWith(name, StringComparison.Ordinal) && key[name.Length] == '.'
                && TryIndex(key[(name.Length + 1)..], out var index))
            {
                if (value.Length == 0)
                {
                    throw Ec2Error.MissingParameter(name);
                }
                items ??= [];
                items[index] = value;
            }
        }
        return items?.Values.ToArray();
    }

    /// <summary>
    /// The filters in N order, values in M order. An empty filter list (<c>Filter=</c>) or a filter
    /// without a name is "The filter 'null' is invalid"; a filter without values, or with the
    /// empty-list form <c>Filter.N.Value=</c>, is rejected too. An empty value (<c>Filter.N.Value.1=</c>) is a value.
    /// </summary>
    public IReadOnlyList<Ec2Filter> GetFilters()
    {
        var names = new SortedDictionary<int, string>();
        var filterValues = new SortedDictionary<int, SortedList<int, string>>();
        var emptyValueLists = new HashSet<int>();
        foreach (var (key, value) in values)
        {
            if (key == "Filter")
            {
                throw Ec2Error.InvalidFilter(null);
            }
            if (!key.StartsWith("Filter.", StringComparison.Ordinal))
            {
                continue;
            }
            var parts = key.Split('.');
            if (parts.Length < 3 || !TryIndex(parts[1], out var n))
            {
                continue;
            }
            if (parts.Length == 3 && parts[2] == "Name")
            {
                names[n] = value;
            }
            else if (parts.Length == 3 && parts[2] == "Value")
            {
                emptyValueLists.Add(n);
            }
            else if (parts.Length == 4 && parts[2] == "Value" && TryIndex(parts[3], out var m))
            {
                if (!filterValues.TryGetValue(n, out var list))
                {
                    list = [];
                    filterValues.Add(n, list);
                }
                list[m] = value;
            }
        }

        var result = new List<Ec2Filter>();
        foreach (var n in names.Keys.Union(filterValues.Keys).Union(emptyValueLists).Order())
        {
            if (!names.TryGetValue(n, out var name) || name.Length == 0)
            {
                throw Ec2Error.InvalidFilter(null);
            }
            if (!filterValues.TryGetValue(n, out var list) || list.Count == 0)
            {
                throw Ec2Error.InvalidParameterValue($"The filter '{name}' requires at least one value");
            }
            if (emptyValueLists.Contains(n))
            {
                throw Ec2Error.UnknownParameter($"Filter.{n}.Value");
            }
            result.Add(new Ec2Filter(name, list.Values.ToArray()));
        }
        return result;
    }

    /// <summary>MaxResults as an int in [min, max], or null when absent.</summary>
    public int? GetMaxResults(int min, int max)
    {
        var text = Get("MaxResults");
        if (text is null)
        {
            return null;
        }
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            throw Ec2Error.InvalidParameterValue($"Invalid value '{text}' for maxResults");
        }
        if (value < min || value > max)
        {
            throw Ec2Error.InvalidParameterValue(
                $"Value ( {value} ) for parameter maxResults is invalid. Expecting a value between {min} and {max}.");
        }
        return value;
    }

    public bool GetBool(string name)
    {
        var text = Get(name);
        if (text is null)
        {
            return false;
        }
        if (string.Equals(text, "true", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        if (string.Equals(text, "false", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        throw Ec2Error.InvalidParameterValue($"Invalid value '{text}' for {char.ToLowerInvariant(name[0])}{name[1..]}");
    }

    private static bool IsIndex(string text) => TryIndex(text, out _);

    private static bool TryIndex(string text, out int index) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out index) && index >= 1;
}
