using System.Collections;
using Moltar.Engine.Discovery;

namespace Moltar.Infrastructure;

/// <summary>Turns the selection parameters every cmdlet shares into the engine's InstanceSelection.</summary>
internal static class Selection
{
    public static InstanceSelection From(MoltarContext context, string? environment, string? cluster, string? name,
                                         string[]? packages, Hashtable? tags, string[]? states, bool first) => new()
    {
        Project = context.Project,
        Environment = environment,
        Cluster = cluster,
        Name = name,
        Packages = packages ?? Array.Empty<string>(),
        Tags = ToTagFilters(tags),
        States = states is null ? new[] { "running" }
            : states.Any(s => s.Equals("All", StringComparison.OrdinalIgnoreCase)) ? Array.Empty<string>()
            : states.Select(s => s.ToLowerInvariant()).ToArray(),
        First = first,
    };

    private static IReadOnlyDictionary<string, string[]> ToTagFilters(Hashtable? tags)
    {
        var filters = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (tags is null) return filters;
        foreach (DictionaryEntry entry in tags)
        {
            string key = entry.Key?.ToString() ?? "";
            string[] values = entry.Value switch
            {
                null => Array.Empty<string>(),
                string s => new[] { s },
                IEnumerable many => many.Cast<object?>().Select(v => v?.ToString() ?? "").ToArray(),
                var other => new[] { other.ToString() ?? "" },
            };
            if (key.Length == 0 || values.Length == 0 || values.Any(string.IsNullOrEmpty))
                throw new ArgumentException($"-Tag needs a key and at least one non-empty value for every entry, as @{{ Role = 'api' }}; '{key}' has none.");
            filters[key] = values;
        }
        return filters;
    }
}
