using Moltar.Engine.Ssh;

namespace Moltar.Engine.Transfer;

/// <summary>
/// Where downloads land locally: one folder per host under the destination (&lt;Destination&gt;/&lt;Name or
/// InstanceId&gt;/...), so hosts never overwrite each other, and nothing a remote name says can place a file
/// outside that host's folder.
/// </summary>
public static class DownloadLayout
{
    // Refused on every OS, so a folder made on Linux means the same on Windows (and the reverse).
    private static readonly char[] Unsafe = ['/', '\\', ':', '*', '?', '"', '<', '>', '|'];

    /// <summary>
    /// One folder name per target, in order: the Name tag (else instance id, else address) made safe as a single
    /// folder name; names shared by several targets (case-insensitively) get "_&lt;InstanceId or Address&gt;" added.
    /// </summary>
    public static IReadOnlyList<string> HostFolderNames(IReadOnlyList<SshTarget> targets)
    {
        var names = targets.Select(t => SafeFolderName(t.DisplayName)).ToList();
        var counts = names.GroupBy(n => n, StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.Count(), StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < names.Count; i++)
        {
            if (counts[names[i]] > 1)
            {
                var target = targets[i];
                var suffix = !string.IsNullOrEmpty(target.InstanceId) && target.InstanceId != target.DisplayName ? target.InstanceId : target.Address;
                names[i] = SafeFolderName($"{names[i]}_{suffix}");
            }
        }

        // The same instance given twice (or suffixes that still collide): number the later ones.
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < names.Count; i++)
        {
            var name = names[i];
            for (int n = 2; !used.Add(name); n++)
            {
                name = $"{names[i]}_{n}";
            }

            names[i] = name;
        }

        return names;
    }

    /// <summary>
    /// A single, portable folder name from a Name tag (anyone's to set): separators, reserved and control characters
    /// become '_'; a leading '.' becomes '_' (no hidden folder such as .ssh or .git); a Windows device name (CON, NUL,
    /// COM1, LPT¹, with or without an extension) gets a leading '_'.
    /// </summary>
    public static string SafeFolderName(string name)
    {
        var chars = name.Select(c => char.IsControl(c) || Moltar.DisplayText.IsUnsafe(c) || Array.IndexOf(Unsafe, c) >= 0 ? '_' : c).ToArray();
        var safe = new string(chars).Trim().TrimEnd('.');
        if (safe.Length == 0)
            return "_";
        if (safe[0] == '.')
            safe = "_" + safe[1..];
        return IsDeviceName(safe) ? "_" + safe : safe;
    }

    private static readonly string[] DeviceNames = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];

    /// <summary>Windows opens a device, not a file, for these names (before any extension, trailing spaces ignored).</summary>
    public static bool IsDeviceName(string name)
    {
        var stem = name.Split('.')[0].TrimEnd(' ');
        if (DeviceNames.Contains(stem, StringComparer.OrdinalIgnoreCase))
            return true;
        return stem.Length == 4
            && (stem.StartsWith("COM", StringComparison.OrdinalIgnoreCase) || stem.StartsWith("LPT", StringComparison.OrdinalIgnoreCase))
            && (char.IsAsciiDigit(stem[3]) || stem[3] is '\u00B9' or '\u00B2' or '\u00B3');
    }

    /// <summary>
    /// The local file for a remote file's relative path ('/'-separated) under a host folder. Throws
    /// PathOutsideDestination for anything that is not a plain relative path made of plain names
    /// ("..", ".", absolute, empty parts), and CopyFailed for names this OS cannot hold.
    /// </summary>
    public static string LocalPathFor(string hostFolder, string relativePath)
    {
        if (relativePath.Length == 0 || RemotePath.IsAbsolute(relativePath) || relativePath.Contains('\\') && OperatingSystem.IsWindows())
        {
            throw Outside(hostFolder, relativePath);
        }

        var parts = relativePath.Split('/');
        foreach (var part in parts)
        {
            if (!RemotePath.IsSafeName(part))
            {
                throw Outside(hostFolder, relativePath);
            }

            if (part.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
            {
                throw new TransferFailure(TransferErrorIds.CopyFailed,
                    $"'{relativePath}' cannot be a local file name here (it has characters this system does not allow in names).", relativePath);
            }
        }

        var root = Path.GetFullPath(hostFolder);
        var full = Path.GetFullPath(Path.Combine(new[] { root }.Concat(parts).ToArray()));
        var prefix = Path.EndsInDirectorySeparator(root) ? root : root + Path.DirectorySeparatorChar;
        if (!full.StartsWith(prefix, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
        {
            throw Outside(hostFolder, relativePath);
        }

        // An existing symbolic link (or Windows reparse point) as the host folder or a folder under it would carry the
        // file elsewhere: whoever made it (a planted link in a shared destination) chose where.
        var folder = root;
        foreach (var part in parts.SkipLast(1).Prepend(""))
        {
            folder = part.Length == 0 ? folder : Path.Combine(folder, part);
            var info = new DirectoryInfo(folder);
            if (info.Exists && (info.LinkTarget is not null || info.Attributes.HasFlag(FileAttributes.ReparsePoint)))
            {
                throw new TransferFailure(TransferErrorIds.PathOutsideDestination,
                    $"'{folder}' is a symbolic link (to '{info.LinkTarget}'); '{relativePath}' was not written through it. Remove the link, or download to another -Destination.", relativePath);
            }
        }

        return full;
    }

    private static TransferFailure Outside(string hostFolder, string relativePath) =>
        new(TransferErrorIds.PathOutsideDestination,
            $"The remote name '{relativePath}' would be written outside '{hostFolder}'; it was refused.", relativePath);
}
