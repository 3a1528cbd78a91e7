using System.Text;

namespace Moltar.Engine.Transfer;

/// <summary>
/// POSIX path rules for the remote side (always '/', whatever the local OS) and safe quoting for the
/// remote shell. Pure string logic: nothing here touches a file system.
/// </summary>
public static class RemotePath
{
    /// <summary>
    /// One shell word for a POSIX shell: the text in single quotes, each ' written as '\''. Nothing inside
    /// single quotes is special to sh, bash, dash or zsh, so any name (spaces, $, `, ", unicode) passes through
    /// literally. NUL cannot be passed to a program at all and is refused.
    /// </summary>
    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Contains('\0'))
        {
            throw new ArgumentException("A path with a NUL character cannot be passed to a remote command.", nameof(value));
        }

        return "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    public static bool IsAbsolute(string path) => path.StartsWith('/');

    /// <summary>Joins a directory and a relative path with one '/' between them ("" and "." mean the directory itself).</summary>
    public static string Join(string directory, string relative)
    {
        if (relative.Length == 0 || relative == ".")
        {
            return directory;
        }

        if (IsAbsolute(relative))
        {
            throw new ArgumentException($"'{relative}' is absolute; only a relative path can be joined to a directory.", nameof(relative));
        }

        if (directory.Length == 0 || directory == ".")
        {
            return relative;
        }

        return directory.EndsWith('/') ? directory + relative : directory + "/" + relative;
    }

    /// <summary>
    /// A remote path as the user wrote it, made absolute: "" and "~" are the home directory, "~/x" and "x" are
    /// under it (SFTP and the remote shell both start there), "/x" stays. Repeated slashes collapse; a trailing
    /// slash is dropped (callers look at it before resolving). "." and ".." are kept: the server resolves them.
    /// </summary>
    public static string Resolve(string home, string path)
    {
        if (!IsAbsolute(home))
        {
            throw new ArgumentException($"The home directory '{home}' is not absolute.", nameof(home));
        }

        string resolved = path switch
        {
            "" or "~" or "." => home,
            _ when path.StartsWith("~/", StringComparison.Ordinal) => Join(home, path[2..]),
            _ when IsAbsolute(path) => path,
            _ => Join(home, path),
        };
        return Tidy(resolved);
    }

    /// <summary>Collapses repeated slashes and drops a trailing one ("/" stays "/").</summary>
    public static string Tidy(string path)
    {
        var builder = new StringBuilder(path.Length);
        foreach (char c in path)
        {
            if (c == '/' && builder.Length > 0 && builder[^1] == '/')
            {
                continue;
            }

            builder.Append(c);
        }

        if (builder.Length > 1 && builder[^1] == '/')
        {
            builder.Length--;
        }

        return builder.ToString();
    }

    /// <summary>The last segment ("" for "/").</summary>
    public static string GetFileName(string path)
    {
        var tidy = Tidy(path);
        int slash = tidy.LastIndexOf('/');
        return slash < 0 ? tidy : tidy[(slash + 1)..];
    }

    /// <summary>Everything before the last segment: "/a/b" → "/a", "/a" → "/", "a" → "" (relative: the current directory).</summary>
    public static string GetDirectory(string path)
    {
        var tidy = Tidy(path);
        int slash = tidy.LastIndexOf('/');
        return slash switch
        {
            < 0 => "",
            0 => "/",
            _ => tidy[..slash],
        };
    }

    /// <summary>
    /// Lexically resolves "." and ".." in an absolute path (".." at the root stays at the root). Only for
    /// comparing canonical paths the server already resolved; never to guess where a symlink leads.
    /// </summary>
    public static string Normalize(string absolutePath)
    {
        if (!IsAbsolute(absolutePath))
        {
            throw new ArgumentException($"'{absolutePath}' is not absolute.", nameof(absolutePath));
        }

        var parts = new List<string>();
        foreach (var segment in absolutePath.Split('/'))
        {
            if (segment.Length == 0 || segment == ".")
            {
                continue;
            }

            if (segment == "..")
            {
                if (parts.Count > 0)
                {
                    parts.RemoveAt(parts.Count - 1);
                }

                continue;
            }

            parts.Add(segment);
        }

        return "/" + string.Join('/', parts);
    }

    /// <summary>True when path is root itself or inside it (both absolute; compared after Normalize).</summary>
    public static bool IsUnder(string root, string path)
    {
        var r = Normalize(root);
        var p = Normalize(path);
        return r == "/" || p == r || p.StartsWith(r + "/", StringComparison.Ordinal);
    }

    /// <summary>
    /// A single name that is safe to use as one path component: not empty, not "." or "..", no '/', no NUL.
    /// Names that came from a remote listing are checked with this before they become local or remote paths.
    /// </summary>
    public static bool IsSafeName(string name) =>
        name.Length > 0 && name != "." && name != ".." && !name.Contains('/') && !name.Contains('\0');

    /// <summary>True when the text has a wildcard character (*, ? or [) that Glob gives meaning to.</summary>
    public static bool HasWildcard(string text) => text.IndexOfAny(['*', '?', '[']) >= 0;
}
