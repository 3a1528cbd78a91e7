namespace Moltar.Sandbox.Ec2;

/// <summary>
/// One EC2 filter: a name and values. An item matches when any value matches (OR); a request's
/// filters all have to match (AND). Values are case-sensitive and may use EC2 wildcards:
/// <c>*</c> (zero or more characters), <c>?</c> (exactly one), escaped with a backslash (<c>\*</c>, <c>\?</c>, <c>\\</c>).
/// </summary>
public sealed class Ec2Filter
{
    public Ec2Filter(string name, IReadOnlyList<string> values)
    {
        Name = name;
        Values = values;
        Patterns = values.Select(WildcardPattern.Parse).ToArray();
    }

    public string Name { get; }
    public IReadOnlyList<string> Values { get; }
    public IReadOnlyList<WildcardPattern> Patterns { get; }

    /// <summary>True when any value matches the candidate (a null candidate never matches).</summary>
    public bool Matches(string? candidate)
    {
        if (candidate is null)
        {
            return false;
        }
        foreach (var pattern in Patterns)
        {
            if (pattern.IsMatch(candidate))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>True when any value matches any of the candidates.</summary>
    public bool MatchesAny(IEnumerable<string?> candidates)
    {
        foreach (var candidate in candidates)
        {
            if (Matches(candidate))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A stable text form of the filters, used to tie a NextToken to the request that made it.</summary>
    public static string Signature(IEnumerable<Ec2Filter> filters) =>
        string.Join("\u0001", filters.Select(f => f.Name + "\u0002" + string.Join("\u0003", f.Values)));
}

/// <summary>An EC2 filter value compiled for matching: literal characters, <c>?</c> and <c>*</c>.</summary>
public sealed class WildcardPattern
{
    // Each element is a literal char, or AnyOne / AnyMany.
    private const int AnyOne = -1;
    private const int AnyMany = -2;
    private readonly int[] tokens;
    private readonly string? literal;

    private WildcardPattern(int[] tokens, string? literal)
    {
        this.tokens = tokens;
        this.literal = literal;
    }

    public static WildcardPattern Parse(string value)
    {
        var tokens = new List<int>(value.Length);
        var hasWildcard = false;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\\' && i + 1 < value.Length && value[i + 1] is '*' or '?' or '\\')
            {
                tokens.Add(value[++i]);
            }
            else if (c == '*')
            {
                hasWildcard = true;
                if (tokens.Count == 0 || tokens[^1] != AnyMany)
                {
                    tokens.Add(AnyMany);
                }
            }
            else if (c == '?')
            {
                hasWildcard = true;
                tokens.Add(AnyOne);
            }
            else
            {
                tokens.Add(c);
            }
        }
        var literal = hasWildcard ? null : new string(tokens.Select(t => (char)t).ToArray());
        return new WildcardPattern(tokens.ToArray(), literal);
    }

    public bool IsMatch(string text)
    {
        if (literal is not null)
        {
            return string.Equals(literal, text, StringComparison.Ordinal);
        }
        // Greedy match with backtracking to the last '*'.
        int t = 0, p = 0, star = -1, starText = 0;
        while (t < text.Length)
        {
            if (p < tokens.Length && (tokens[p] == AnyOne || tokens[p] == text[t]))
            {
                t++;
                p++;
            }
            else if (p < tokens.Length && tokens[p] == AnyMany)
            {
                star = p++;
                starText = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++starText;
            }
            else
            {
                return false;
            }
        }
        while (p < tokens.Length && tokens[p] == AnyMany)
        {
            p++;
        }
        return p == tokens.Length;
    }
}
