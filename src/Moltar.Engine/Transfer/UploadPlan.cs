namespace Moltar.Engine.Transfer;

/// <summary>One local file to send, and where it goes relative to the destination directory ('/'-separated).</summary>
public sealed record UploadSource(string LocalPath, string RelativePath, long Length, int Mode);

/// <summary>What -Destination names on the remote side.</summary>
public enum DestinationKind
{
    /// <summary>A directory: every file goes under it (several sources, a tree, a trailing '/', or the home directory).</summary>
    Directory,
    /// <summary>One file was given: the destination is that file's new path, unless it is an existing directory on the host.</summary>
    FileOrDirectory,
}

/// <summary>Call-level planning errors (bad input: nothing was contacted).</summary>
public static class PlanErrorIds
{
    /// <summary>A -Path matched nothing.</summary>
    public const string PathNotFound = "PathNotFound";
    /// <summary>A directory was named without -Recurse.</summary>
    public const string PathIsDirectory = "PathIsDirectory";
    /// <summary>Two sources would be written to the same destination path.</summary>
    public const string DuplicateDestination = "DuplicateDestination";
    /// <summary>A symbolic link inside the tree being uploaded leads outside it (and -FollowSymlink was not given).</summary>
    public const string SymlinkOutsideTree = "SymlinkOutsideTree";
}

/// <summary>The local side of an upload, planned once and sent to every host.</summary>
public sealed class UploadPlan
{
    public required IReadOnlyList<UploadSource> Files { get; init; }
    /// <summary>Directories of the copied trees (relative, '/'-separated), empty ones included, parents first.</summary>
    public required IReadOnlyList<string> Directories { get; init; }
    /// <summary>Things left out on purpose (symlinked directories, directories matched by a wildcard without -Recurse).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
    /// <summary>-Destination as the user wrote it ("" = the home directory).</summary>
    public required string Destination { get; init; }
    public required DestinationKind Kind { get; init; }

    public long TotalBytes => Files.Sum(f => f.Length);

    /// <summary>
    /// Where a file lands, given the destination resolved on the host (absolute) and whether that path is an
    /// existing directory there (only asked for FileOrDirectory).
    /// </summary>
    public string RemotePathOf(UploadSource file, string resolvedDestination, bool destinationIsDirectory) =>
        Kind == DestinationKind.Directory || destinationIsDirectory
            ? RemotePath.Join(resolvedDestination, file.RelativePath)
            : resolvedDestination;

    /// <summary>The remote directories a host needs (absolute), parents before children, for mkdir -p.</summary>
    public IReadOnlyList<string> RemoteDirectoriesFor(string resolvedDestination, bool destinationIsDirectory)
    {
        var needed = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(string directory)
        {
            if (seen.Add(directory))
            {
                needed.Add(directory);
            }
        }

        if (Kind == DestinationKind.Directory || destinationIsDirectory)
        {
            Add(resolvedDestination);
            foreach (var directory in Directories)
            {
                Add(RemotePath.Join(resolvedDestination, directory));
            }
        }

        foreach (var file in Files)
        {
            Add(RemotePath.GetDirectory(RemotePathOf(file, resolvedDestination, destinationIsDirectory)));
        }

        return needed;
    }
}

/// <summary>
/// Expands the local -Path values (absolute; wildcards allowed) into the files and directories to send.
/// A path that exists as written is taken literally (so a file named "a[1].txt" works); otherwise its
/// wildcards expand with <see cref="Glob"/>. A directory needs recurse and is copied into the destination
/// under its own name (use "dir/*" for its contents). Symlinked files are sent as their content — but a link inside a
/// tree (or matched by a wildcard) that leads outside it is refused unless followSymlinks, so a repository's
/// dist/robots.txt -> ~/.aws/credentials is not published; symlinked directories inside a tree are not followed (a
/// warning says so), which also rules out loops. FIFOs, devices and sockets are left out with a warning.
/// </summary>
public static class UploadPlanner
{
    public static UploadPlan Plan(IReadOnlyList<string> localPaths, bool recurse, string? destination, bool followSymlinks = false)
    {
        destination ??= "";
        var files = new List<UploadSource>();
        var directories = new List<string>();
        var warnings = new List<string>();
        var taken = new Dictionary<string, string>(StringComparer.Ordinal); // relative path -> local source
        bool anyDirectory = false;

        void Claim(string relative, string local)
        {
            if (taken.TryGetValue(relative, out var other))
            {
                throw new MoltarException(PlanErrorIds.DuplicateDestination, FailureCategory.InvalidArgument,
                    $"'{other}' and '{local}' would both be written to '{relative}' under the destination. Copy them in separate calls, or to different destinations.");
            }

            taken[relative] = local;
        }

        foreach (var path in localPaths)
        {
            var matches = Expand(path);
            if (matches.Count == 0)
            {
                throw new MoltarException(PlanErrorIds.PathNotFound, FailureCategory.ObjectNotFound,
                    RemotePath.HasWildcard(path)
                        ? $"-Path '{path}' matches no file."
                        : $"-Path '{path}' does not exist.");
            }

            bool wildcard = matches.Count > 1 || !string.Equals(matches[0], TrimSeparators(path), StringComparison.Ordinal);
            foreach (var match in matches)
            {
                if (Directory.Exists(match))
                {
                    if (!recurse)
                    {
                        if (wildcard)
                        {
                            warnings.Add($"'{match}' is a directory; it was left out (add -Recurse to copy directories).");
                            continue;
                        }

                        throw new MoltarException(PlanErrorIds.PathIsDirectory, FailureCategory.InvalidArgument,
                            $"-Path '{match}' is a directory. Add -Recurse to copy it and everything under it, or name the files (e.g. '{Path.Combine(match, "*")}').");
                    }

                    anyDirectory = true;
                    var name = Path.GetFileName(TrimSeparators(match));
                    if (name.Length == 0)
                    {
                        throw new MoltarException(PlanErrorIds.PathIsDirectory, FailureCategory.InvalidArgument,
                            $"-Path '{match}' is a root directory; name the files under it instead (e.g. '{Path.Combine(match, "*")}').");
                    }

                    Claim(name, match);
                    Walk(match, name, files, directories, warnings, Claim, followSymlinks);
                }
                else
                {
                    // A file named outright is the user's choice; one a wildcard found must stay inside the pattern's folder.
                    if (wildcard && !followSymlinks)
                        CheckInside(match, WildcardFreeFolder(path));
                    if (!IsReadable(match, warnings))
                        continue;
                    var name = Path.GetFileName(match);
                    Claim(name, match);
                    files.Add(Source(match, name));
                }
            }
        }

        bool namesDirectory = destination.Length == 0 || destination is "~" or "." or ".." || destination.EndsWith('/')
            || destination.EndsWith("/.", StringComparison.Ordinal) || destination.EndsWith("/..", StringComparison.Ordinal);
        var kind = namesDirectory || anyDirectory || files.Count != 1 ? DestinationKind.Directory : DestinationKind.FileOrDirectory;
        return new UploadPlan
        {
            Files = files,
            Directories = directories,
            Warnings = warnings,
            Destination = destination,
            Kind = kind,
        };
    }

    /// <summary>The existing paths a -Path value names: itself when it exists, else its wildcard matches (sorted).</summary>
    public static IReadOnlyList<string> Expand(string path)
    {
        var trimmed = TrimSeparators(path);
        if (File.Exists(trimmed) || Directory.Exists(trimmed))
        {
            return new[] { trimmed };
        }

        if (!RemotePath.HasWildcard(path))
        {
            return Array.Empty<string>();
        }

        var root = Path.GetPathRoot(trimmed) ?? "";
        var segments = trimmed[root.Length..].Split(Separators, StringSplitOptions.RemoveEmptyEntries);
        var current = new List<string> { root.Length == 0 ? "." : root };
        for (int i = 0; i < segments.Length; i++)
        {
            bool last = i == segments.Length - 1;
            var next = new List<string>();
            foreach (var directory in current)
            {
                if (!RemotePath.HasWildcard(segments[i]))
                {
                    var candidate = Path.Combine(directory, segments[i]);
                    if (last ? File.Exists(candidate) || Directory.Exists(candidate) : Directory.Exists(candidate))
                    {
                        next.Add(candidate);
                    }

                    continue;
                }

                IEnumerable<string> entries;
                try
                {
                    entries = Directory.EnumerateFileSystemEntries(directory).ToList();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    continue;
                }

                foreach (var entry in entries.OrderBy(e => e, StringComparer.Ordinal))
                {
                    if (Glob.IsMatch(segments[i], Path.GetFileName(entry)) && (last || Directory.Exists(entry)))
                    {
                        next.Add(entry);
                    }
                }
            }

            current = next;
        }

        return current;
    }

    private static void Walk(string root, string relativeRoot, List<UploadSource> files, List<string> directories,
        List<string> warnings, Action<string, string> claim, bool followSymlinks)
    {
        var pending = new Stack<(string Local, string Relative)>();
        pending.Push((root, relativeRoot));
        while (pending.Count > 0)
        {
            var (local, relative) = pending.Pop();
            directories.Add(relative);
            var children = new List<(string Local, string Relative)>();
            foreach (var entry in new DirectoryInfo(local).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                var childRelative = relative + "/" + entry.Name;
                if (entry is DirectoryInfo)
                {
                    if (entry.LinkTarget is not null)
                    {
                        warnings.Add($"'{entry.FullName}' is a symbolic link to a directory; it was not followed.");
                        continue;
                    }

                    claim(childRelative, entry.FullName);
                    children.Add((entry.FullName, childRelative));
                }
                else
                {
                    if (entry.LinkTarget is not null && !File.Exists(entry.FullName))
                    {
                        warnings.Add($"'{entry.FullName}' is a symbolic link to nothing (or to a directory); it was left out.");
                        continue;
                    }

                    if (entry.LinkTarget is not null && !followSymlinks)
                        CheckInside(entry.FullName, root);
                    if (!IsReadable(entry.FullName, warnings))
                        continue;
                    claim(childRelative, entry.FullName);
                    files.Add(Source(entry.FullName, childRelative));
                }
            }

            // Depth first, in name order: parents are always listed before their children.
            for (int i = children.Count - 1; i >= 0; i--)
            {
                pending.Push(children[i]);
            }
        }
    }

    /// <summary>Refuses a symbolic link whose real target is outside <paramref name="root"/>.</summary>
    private static void CheckInside(string path, string root)
    {
        if (new FileInfo(path).LinkTarget is null)
            return;
        string target = RealPath(path);
        string realRoot = RealPath(root).TrimEnd(Separators) + Path.DirectorySeparatorChar;
        if (!target.StartsWith(realRoot, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
        {
            throw new MoltarException(PlanErrorIds.SymlinkOutsideTree, FailureCategory.SecurityError,
                $"'{path}' is a symbolic link to '{target}', outside '{root}'; nothing was copied. Remove the link, or add -FollowSymlink to send what it points to.");
        }
    }

    /// <summary>A FIFO, device or socket is left out (reading it could hang or never end).</summary>
    private static bool IsReadable(string path, List<string> warnings)
    {
        try
        {
            Context.BoundedFile.CheckRegular(path, "The file");
            return true;
        }
        catch (Context.FileRefusedException e)
        {
            warnings.Add(e.Message + " It was left out.");
            return false;
        }
    }

    /// <summary>The folder of a -Path value above its first wildcard (the tree a wildcard searches).</summary>
    private static string WildcardFreeFolder(string path)
    {
        var trimmed = TrimSeparators(path);
        var root = Path.GetPathRoot(trimmed) ?? "";
        var kept = new List<string>();
        foreach (var segment in trimmed[root.Length..].Split(Separators, StringSplitOptions.RemoveEmptyEntries))
        {
            if (RemotePath.HasWildcard(segment))
                break;
            kept.Add(segment);
        }
        return Path.Combine(root.Length == 0 ? "." : root, Path.Combine(kept.ToArray()));
    }

    /// <summary>
    /// The path with every symbolic link resolved, component by component (as realpath does): a link's '..' then
    /// starts from the folder the link is in, which is itself free of links by then.
    /// </summary>
    internal static string RealPath(string path, int depth = 0)
    {
        if (depth > 40)
            throw new IOException($"'{path}': too many levels of symbolic links.");
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full) ?? "";
        var parts = full[root.Length..].Split(Separators, StringSplitOptions.RemoveEmptyEntries);
        string current = root;
        for (int i = 0; i < parts.Length; i++)
        {
            string next = Path.Combine(current, parts[i]);
            if (new FileInfo(next).LinkTarget is { } link)
            {
                string resolved = Path.IsPathRooted(link) ? link : Path.Combine(current, link);
                return RealPath(Path.Combine(new[] { resolved }.Concat(parts.Skip(i + 1)).ToArray()), depth + 1);
            }
            current = next;
        }
        return current;
    }

    private static UploadSource Source(string path, string relative)
    {
        var info = new FileInfo(path);
        long length = info.LinkTarget is null ? info.Length : new FileInfo(info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path).Length;
        int mode = OperatingSystem.IsWindows() ? FileModes.Default : FileModes.PermissionBits((int)File.GetUnixFileMode(path));
        return new UploadSource(path, relative, length, mode);
    }

    private static readonly char[] Separators = Path.DirectorySeparatorChar == Path.AltDirectorySeparatorChar
        ? new[] { Path.DirectorySeparatorChar }
        : new[] { Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar };

    private static string TrimSeparators(string path)
    {
        var root = Path.GetPathRoot(path) ?? "";
        var trimmed = path.TrimEnd(Separators);
        return trimmed.Length < root.Length ? root : trimmed;
    }
}
