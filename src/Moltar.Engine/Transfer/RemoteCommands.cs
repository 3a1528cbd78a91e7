namespace Moltar.Engine.Transfer;

/// <summary>The few shell commands a copy runs on the host, every path single-quoted, and how their output is read.</summary>
public static class RemoteCommands
{
    /// <summary>Longest command line built from paths (far below any ARG_MAX); more paths make more commands.</summary>
    public const int MaxCommandLength = 64 * 1024;

    /// <summary>sha256sum of one file. "--" ends options, so a name starting with '-' is still a name.</summary>
    public static string Sha256Sum(string path) => "sha256sum -- " + RemotePath.Quote(path);

    /// <summary>mkdir -p for directories, in as few commands as MaxCommandLength allows.</summary>
    public static IReadOnlyList<string> MakeDirectories(IEnumerable<string> directories)
    {
        const string prefix = "mkdir -p --";
        var commands = new List<string>();
        var current = new System.Text.StringBuilder(prefix);
        bool any = false;
        foreach (var directory in directories)
        {
            var word = " " + RemotePath.Quote(directory);
            if (any && current.Length + word.Length > MaxCommandLength)
            {
                commands.Add(current.ToString());
                current.Clear().Append(prefix);
                any = false;
            }

            current.Append(word);
            any = true;
        }

        if (any)
        {
            commands.Add(current.ToString());
        }

        return commands;
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
