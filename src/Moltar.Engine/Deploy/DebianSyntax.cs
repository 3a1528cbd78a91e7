namespace Moltar.Engine.Deploy;

/// <summary>
/// Debian's syntax for package names and versions (Debian Policy 5.6.1 and 5.6.12). Deploy input is checked
/// against it before any host is contacted, so nothing else can reach a remote shell.
/// </summary>
public static class DebianSyntax
{
    /// <summary>Longest name or version accepted (dpkg has no hard limit; real ones are far shorter).</summary>
    public const int MaxLength = 200;

    /// <summary>
    /// Null when <paramref name="name"/> is a valid package name (^[a-z0-9][a-z0-9+.-]+$), else why not.
    /// </summary>
    public static string? PackageNameProblem(string? name)
    {
        if (string.IsNullOrEmpty(name))
            return "it is empty";
        if (name.Length > MaxLength)
            return $"it is longer than {MaxLength} characters";
        if (name.Length < 2)
            return "it has fewer than two characters";
        if (!IsLowerAlnum(name[0]))
            return $"it starts with '{Show(name[0])}'; it must start with a lowercase letter or a digit";
        foreach (char c in name)
        {
            if (!IsLowerAlnum(c) && c is not ('+' or '.' or '-'))
                return $"it contains '{Show(c)}'; only lowercase letters, digits, '+', '.' and '-' are allowed";
        }
        return null;
    }

    /// <summary>
    /// Null when <paramref name="version"/> is a valid Debian version ([epoch:]upstream[-revision]), else why not.
    /// Epoch: digits. Upstream: starts with a digit; letters, digits, '.', '+', '~', and '-' only when a revision follows.
    /// Revision (after the last '-'): letters, digits, '.', '+', '~'.
    /// </summary>
    public static string? VersionProblem(string? version)
    {
        if (string.IsNullOrEmpty(version))
            return "it is empty";
        if (version.Length > MaxLength)
            return $"it is longer than {MaxLength} characters";
        foreach (char c in version)
        {
            if (!IsAsciiAlnum(c) && c is not ('.' or '+' or '~' or '-' or ':'))
                return $"it contains '{Show(c)}'; a version has only letters, digits and '.', '+', '~', '-', ':'";
        }

        string rest = version;
        int colon = rest.IndexOf(':');
        if (colon >= 0)
        {
            string epoch = rest[..colon];
            if (epoch.Length == 0 || !epoch.All(char.IsAsciiDigit))
                return $"its epoch '{epoch}' (before ':') is not a number";
            rest = rest[(colon + 1)..];
            if (rest.Contains(':'))
                return "it has more than one ':' (only the epoch is followed by ':')";
        }

        string upstream = rest;
        int dash = rest.LastIndexOf('-');
        if (dash >= 0)
        {
            upstream = rest[..dash];
            string revision = rest[(dash + 1)..];
            if (revision.Length == 0)
                return "it ends with '-' (the Debian revision after the last '-' is empty)";
        }
        if (upstream.Length == 0)
            return "its upstream version is empty";
        if (!char.IsAsciiDigit(upstream[0]))
            return $"its upstream version '{upstream}' does not start with a digit";
        return null;
    }

    private static bool IsLowerAlnum(char c) => c is >= 'a' and <= 'z' or >= '0' and <= '9';

    private static bool IsAsciiAlnum(char c) => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9';

    /// <summary>A character as it can be shown in a message (control characters by code).</summary>
    private static string Show(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"U+{(int)c:X4}" : c.ToString();
}
