namespace Moltar.Engine.Transfer;

/// <summary>The one command a copy runs on the host (hashing; directories are made over SFTP), and how its output is read.</summary>
public static class RemoteCommands
{
    /// <summary>
    /// sha256sum of the files whose paths come NUL-separated on standard input (<see cref="NulSeparated"/>). The
    /// command line is fixed text with nothing to quote, so it means the same to every login shell (sh, bash, fish,
    /// csh); "--" ends options, so a name starting with '-' is still a name. xargs exits 127 when sha256sum is missing.
    /// </summary>
    public const string Sha256Sum = "xargs -0 sha256sum --";

    /// <summary>Paths as standard input for <see cref="Sha256Sum"/>: UTF-8, each ended by NUL (which no path contains).</summary>
    public static byte[] NulSeparated(params string[] paths)
    {
        foreach (var path in paths)
        {
            if (path.Contains('\0'))
                throw new ArgumentException("A remote path cannot contain NUL.", nameof(paths));
        }

        return System.Text.Encoding.UTF8.GetBytes(string.Concat(paths.Select(p => p + "\0")));
    }

    /// <summary>
    /// The hash in sha256sum's output: 64 hex digits at the start of the first line (GNU prefixes the line
    /// with '\' when the name needed escaping). Null when the output is not that shape.
    /// </summary>
    public static string? ParseSha256Sum(string output)
    {
        var line = output.AsSpan().TrimStart();
        if (line.StartsWith("\\"))
        {
            line = line[1..];
        }

        if (line.Length < 64)
        {
            return null;
        }

        var hex = line[..64];
        foreach (char c in hex)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return null;
            }
        }

        if (line.Length > 64 && !char.IsWhiteSpace(line[64]))
        {
            return null;
        }

        return hex.ToString().ToLowerInvariant();
    }

    /// <summary>Exit 127 is the shell's "command not found".</summary>
    public static bool IsCommandNotFound(int? exitCode) => exitCode == 127;
}
