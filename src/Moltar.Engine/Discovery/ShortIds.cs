namespace Moltar.Engine.Discovery;

/// <summary>Short ids a person can type back: the shortest prefix (3+) of the id's hex part unique in the set.</summary>
public static class ShortIds
{
    public const int MinimumLength = 3;

    public static IReadOnlyDictionary<string, string> Assign(IEnumerable<string> instanceIds)
    {
        var ids = instanceIds.Distinct(StringComparer.Ordinal).ToArray();
        var hexParts = new string[ids.Length];
        for (int i = 0; i < ids.Length; i++)
            hexParts[i] = HexPart(ids[i]);
        // Sorting the hex parts with their ids beside them keeps every step an array walk (10,000 instances a call).
        Array.Sort(hexParts, ids, StringComparer.Ordinal);

        var result = new Dictionary<string, string>(ids.Length, StringComparer.Ordinal);
        for (int i = 0; i < hexParts.Length; i++)
        {
            // In sorted order the longest shared prefix of an entry is with one of its neighbours; ids whose hex
            // parts are equal share their short id, so the neighbours that count are the nearest different ones.
            int before = i - 1, after = i + 1;
            while (before >= 0 && hexParts[before] == hexParts[i]) before--;
            while (after < hexParts.Length && hexParts[after] == hexParts[i]) after++;
            int shared = 0;
            if (before >= 0) shared = CommonPrefix(hexParts[i], hexParts[before]);
            if (after < hexParts.Length) shared = Math.Max(shared, CommonPrefix(hexParts[i], hexParts[after]));
            string hex = hexParts[i];
            int length = Math.Min(hex.Length, Math.Max(MinimumLength, shared + 1));
            result[ids[i]] = length == hex.Length ? hex : hex[..length];
        }
        return result;
    }

    public static string HexPart(string instanceId)
    {
        int dash = instanceId.IndexOf('-');
        return dash >= 0 ? instanceId[(dash + 1)..] : instanceId;
    }

    private static int CommonPrefix(string a, string b) => a.AsSpan().CommonPrefixLength(b);
}
