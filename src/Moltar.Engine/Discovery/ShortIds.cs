namespace Moltar.Engine.Discovery;

/// <summary>Short ids a person can type back: the shortest prefix (3+) of the id's hex part unique in the set.</summary>
public static class ShortIds
{
    public const int MinimumLength = 3;

    public static IReadOnlyDictionary<string, string> Assign(IEnumerable<string> instanceIds)
    {
        var hexParts = instanceIds.Distinct(StringComparer.Ordinal).ToDictionary(id => id, HexPart, StringComparer.Ordinal);
        var sorted = hexParts.Values.Distinct(StringComparer.Ordinal).OrderBy(h => h, StringComparer.Ordinal).ToList();
        var lengths = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < sorted.Count; i++)
        {
            // In sorted order the longest shared prefix of an entry is with one of its neighbours.
            int shared = 0;
            if (i > 0) shared = Math.Max(shared, CommonPrefix(sorted[i], sorted[i - 1]));
            if (i < sorted.Count - 1) shared = Math.Max(shared, CommonPrefix(sorted[i], sorted[i + 1]));
            lengths[sorted[i]] = Math.Min(sorted[i].Length, Math.Max(MinimumLength, shared + 1));
        }
        return hexParts.ToDictionary(p => p.Key, p => p.Value[..lengths[p.Value]], StringComparer.Ordinal);
    }

    public static string HexPart(string instanceId)
    {
        int dash = instanceId.IndexOf('-');
        return dash >= 0 ? instanceId[(dash + 1)..] : instanceId;
    }

    private static int CommonPrefix(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length), i = 0;
        while (i < n && a[i] == b[i]) i++;
        return i;
    }
}
