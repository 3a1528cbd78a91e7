namespace Moltar.Engine.Ssh;

/// <summary>OpenSSH host pattern matching: '*' and '?' wildcards, '!' negation, case-insensitive.</summary>
public static class SshPattern
{
    /// <summary>Whether text matches one wildcard pattern (no negation).</summary>
    public static bool Match(string text, string pattern)
    {
        return MatchAt(text.AsSpan(), pattern.AsSpan());

        static bool MatchAt(ReadOnlySpan<char> s, ReadOnlySpan<char> p)
        {
            // Iterative glob match with backtracking over the last '*'.
            int si = 0, pi = 0, starP = -1, starS = 0;
            while (si < s.Length)
            {
                if (pi < p.Length && (p[pi] == '?' || char.ToLowerInvariant(p[pi]) == char.ToLowerInvariant(s[si])))
                {
                    si++;
                    pi++;
                }
                else if (pi < p.Length && p[pi] == '*')
                {
                    starP = pi++;
                    starS = si;
                }
                else if (starP >= 0)
                {
                    pi = starP + 1;
                    si = ++starS;
                }
                else
                {
                    return false;
                }
            }

            while (pi < p.Length && p[pi] == '*')
            {
                pi++;
            }

            return pi == p.Length;
        }
    }

    /// <summary>
    /// OpenSSH list semantics: true when some positive pattern matches and no negated ('!') pattern does.
    /// A list with only negated patterns never matches.
    /// </summary>
    public static bool MatchList(string text, IEnumerable<string> patterns)
    {
        var positive = false;
        foreach (var raw in patterns)
        {
            if (raw.Length == 0)
            {
                continue;
            }

            if (raw[0] == '!')
            {
                if (Match(text, raw.Substring(1)))
                {
                    return false;
                }
            }
            else if (!positive && Match(text, raw))
            {
                positive = true;
            }
        }

        return positive;
    }
}
