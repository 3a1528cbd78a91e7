namespace Moltar.Engine.Transfer;

/// <summary>
/// Shell-style matching of one path segment, the same for local and remote names: '*' any run of characters,
/// '?' one character, [abc] / [a-z] / [!x] (or [^x]) one character of a set, '\' makes the next character
/// literal. As in sh, a leading '.' is matched only by a pattern that starts with '.', so '*' skips hidden files.
/// </summary>
public static class Glob
{
    public static bool IsMatch(string pattern, string name)
    {
        if (name.StartsWith('.') && !pattern.StartsWith('.'))
        {
            return false;
        }

        return Match(pattern, 0, name, 0);
    }

    private static bool Match(string pattern, int p, string name, int n)
    {
        while (p < pattern.Length)
        {
            char c = pattern[p];
            switch (c)
            {
                case '*':
                    while (p < pattern.Length && pattern[p] == '*')
                    {
                        p++;
                    }

                    if (p == pattern.Length)
                    {
                        return true;
                    }

                    for (int i = n; i <= name.Length; i++)
                    {
                        if (Match(pattern, p, name, i))
                        {
                            return true;
                        }
                    }

                    return false;
                case '?':
                    if (n >= name.Length)
                    {
                        return false;
                    }

                    p++;
                    n++;
                    break;
                case '[':
                    if (n >= name.Length)
                    {
                        return false;
                    }

                    if (TryMatchSet(pattern, p, name[n], out int next, out bool matched))
                    {
                        if (!matched)
                        {
                            return false;
                        }

                        p = next;
                        n++;
                        break;
                    }

                    // An unclosed '[' is a literal character.
                    if (name[n] != '[')
                    {
                        return false;
                    }

                    p++;
                    n++;
                    break;
                case '\\' when p + 1 < pattern.Length:
                    if (n >= name.Length || name[n] != pattern[p + 1])
                    {
                        return false;
                    }

                    p += 2;
                    n++;
                    break;
                default:
                    if (n >= name.Length || name[n] != c)
                    {
                        return false;
                    }

                    p++;
                    n++;
                    break;
            }
        }

        return n == name.Length;
    }

    /// <summary>Reads a [...] set at pattern[start]; false when it is not closed (then '[' is literal).</summary>
    private static bool TryMatchSet(string pattern, int start, char c, out int next, out bool matched)
    {
        int i = start + 1;
        bool negate = i < pattern.Length && (pattern[i] == '!' || pattern[i] == '^');
        if (negate)
        {
            i++;
        }

        bool found = false;
        bool first = true;
        while (i < pattern.Length && (pattern[i] != ']' || first))
        {
            first = false;
            char low = pattern[i];
            if (i + 2 < pattern.Length && pattern[i + 1] == '-' && pattern[i + 2] != ']')
            {
                char high = pattern[i + 2];
                if (c >= low && c <= high)
                {
                    found = true;
                }

                i += 3;
            }
            else
            {
                if (c == low)
                {
                    found = true;
                }

                i++;
            }
        }

        if (i >= pattern.Length)
        {
            next = start;
            matched = false;
            return false;
        }

        next = i + 1;
        matched = found != negate;
        return true;
    }
}
