namespace Moltar.Engine.Transfer;

public enum RemoteEntryKind
{
    File,
    Directory,
    Symlink,
    /// <summary>Sockets, pipes, devices: never copied (reading a pipe could wait forever).</summary>
    Other,
}

/// <summary>
/// A remote file system entry. From a listing: Kind is the entry itself (Symlink for a link) and FullPath is
/// the listed path. From Stat: links are followed, FullPath is the server's canonical path, and Kind is Symlink
/// only for a link that leads nowhere.
/// </summary>
public sealed record RemoteEntry(string Name, string FullPath, RemoteEntryKind Kind, long Length, int Mode);

/// <summary>What remote expansion needs from the host (SFTP in practice; anything in tests).</summary>
public interface IRemoteFileSystem
{
    /// <summary>The absolute home directory (where relative paths start).</summary>
    string Home { get; }
    /// <summary>The entry at a path, following symlinks; null when nothing is there.</summary>
    RemoteEntry? Stat(string path);
    /// <summary>The entries of a directory, symlinks not followed ("." and ".." may be included; they are ignored).</summary>
    IReadOnlyList<RemoteEntry> List(string directory);
}

/// <summary>One remote file to fetch and the local path under the host folder ('/'-separated) it goes to.</summary>
public sealed record RemoteSource(string RemotePath, string RelativePath, long Length, int Mode);

/// <summary>What the remote -Path values of a download name on one host.</summary>
public sealed class DownloadPlan
{
    public List<RemoteSource> Files { get; } = new();
    /// <summary>Directories of copied trees (relative), empty ones included, parents first.</summary>
    public List<string> Directories { get; } = new();
    /// <summary>Names refused or not found: reported per file, the rest still copies.</summary>
    public List<TransferFailure> Failures { get; } = new();
    /// <summary>Entries left out on purpose (pipes, sockets, symlinked directories, directories without -Recurse).</summary>
    public List<string> Warnings { get; } = new();
}

/// <summary>
/// Expands remote paths (wildcards in any segment, -Recurse trees) on one host, refusing anything that would
/// escape: names that are not plain names ("..", "/", empty) and symlinks whose target lies outside the part of
/// the tree the user pointed at (the path itself for a named directory, the wildcard-free prefix for a pattern).
/// A path named exactly (no wildcard) is followed wherever it leads: the user asked for it by name.
/// </summary>
public static class RemoteExpansion
{
    public static DownloadPlan Expand(IRemoteFileSystem fs, IReadOnlyList<string> paths, bool recurse)
    {
        var plan = new DownloadPlan();
        var taken = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            var resolved = RemotePath.Resolve(fs.Home, path);
            try
            {
                if (!RemotePath.HasWildcard(resolved) || fs.Stat(resolved) is not null)
                {
                    ExpandNamed(fs, resolved, recurse, plan, taken);
                }
                else
                {
                    ExpandPattern(fs, resolved, recurse, plan, taken);
                }
            }
            catch (TransferFailure failure)
            {
                // Stat refused (permission denied): this path fails, the others still expand.
                plan.Failures.Add(failure);
            }
        }

        return plan;
    }

    private static void ExpandNamed(IRemoteFileSystem fs, string path, bool recurse, DownloadPlan plan, Dictionary<string, string> taken)
    {
        var entry = fs.Stat(path);
        if (entry is null || entry.Kind == RemoteEntryKind.Symlink)
        {
            plan.Failures.Add(new TransferFailure(TransferErrorIds.CopyFailed,
                entry is null ? $"'{path}' does not exist." : $"'{path}' is a symbolic link to nothing.", path));
            return;
        }

        // The local name: the name given (a link keeps its own name), else the canonical one ("/tmp/.." → "/").
        var name = RemotePath.GetFileName(path);
        if (!RemotePath.IsSafeName(name))
        {
            name = RemotePath.GetFileName(entry.FullPath);
        }

        switch (entry.Kind)
        {
            case RemoteEntryKind.File:
                Add(plan, taken, new RemoteSource(path, name, entry.Length, entry.Mode));
                break;
            case RemoteEntryKind.Directory when !recurse:
                plan.Failures.Add(new TransferFailure(TransferErrorIds.CopyFailed,
                    $"'{path}' is a directory; add -Recurse to copy it and everything under it, or name the files (e.g. '{RemotePath.Join(path, "*")}').", path));
                break;
            case RemoteEntryKind.Directory:
                Walk(fs, path, name, entry.FullPath, plan, taken);
                break;
            default:
                plan.Failures.Add(new TransferFailure(TransferErrorIds.CopyFailed, $"'{path}' is not a regular file or directory (a pipe, socket or device); it was not copied.", path));
                break;
        }
    }

    private static void ExpandPattern(IRemoteFileSystem fs, string pattern, bool recurse, DownloadPlan plan, Dictionary<string, string> taken)
    {
        var segments = pattern.Split('/', StringSplitOptions.RemoveEmptyEntries);
        int first = Array.FindIndex(segments, RemotePath.HasWildcard);
        var basePath = "/" + string.Join('/', segments.Take(first));
        var baseEntry = fs.Stat(basePath);
        if (baseEntry is null || baseEntry.Kind != RemoteEntryKind.Directory)
        {
            plan.Failures.Add(new TransferFailure(TransferErrorIds.CopyFailed, $"Nothing matches '{pattern}' ('{basePath}' is not a directory).", pattern));
            return;
        }

        // Matches keep their path below the wildcard-free prefix: /var/log/*/app.log gives nginx/app.log, php/app.log.
        var root = baseEntry.FullPath;
        int failuresBefore = plan.Failures.Count;
        var current = new List<(string Remote, string Relative)> { (basePath, "") };
        var matches = new List<(RemoteEntry Listed, RemoteEntry Target, string Relative)>();
        for (int i = first; i < segments.Length; i++)
        {
            bool last = i == segments.Length - 1;
            var segment = segments[i];
            bool wildcard = RemotePath.HasWildcard(segment);
            var next = new List<(string, string)>();
            foreach (var (directory, relative) in current)
            {
                // Listed (not stat'ed) even for a plain segment, so a symlink is seen as one and checked.
                foreach (var listed in List(fs, directory, plan).Where(e => wildcard ? Glob.IsMatch(segment, e.Name) : e.Name == segment))
                {
                    var entry = RemotePath.IsSafeName(listed.Name) ? listed with { FullPath = RemotePath.Join(directory, listed.Name) } : listed;
                    var target = Follow(fs, entry, root, plan);
                    if (target is null)
                    {
                        continue;
                    }

                    var childRelative = relative.Length == 0 ? entry.Name : relative + "/" + entry.Name;
                    if (last)
                    {
                        matches.Add((entry, target, childRelative));
                    }
                    else if (target.Kind == RemoteEntryKind.Directory)
                    {
                        next.Add((entry.FullPath, childRelative));
                    }
                }
            }

            current = next;
        }

        if (matches.Count == 0 && plan.Failures.Count == failuresBefore)
        {
            plan.Failures.Add(new TransferFailure(TransferErrorIds.CopyFailed, $"Nothing matches '{pattern}'.", pattern));
            return;
        }

        foreach (var (listed, target, relative) in matches)
        {
            switch (target.Kind)
            {
                case RemoteEntryKind.File:
                    Add(plan, taken, new RemoteSource(listed.FullPath, relative, target.Length, target.Mode));
                    break;
                case RemoteEntryKind.Directory when !recurse:
                    plan.Warnings.Add($"'{listed.FullPath}' is a directory; it was left out (add -Recurse to copy directories).");
                    break;
                case RemoteEntryKind.Directory when listed.Kind == RemoteEntryKind.Symlink:
                    plan.Warnings.Add($"'{listed.FullPath}' is a symbolic link to a directory; it was not followed.");
                    break;
                case RemoteEntryKind.Directory:
                    Walk(fs, listed.FullPath, relative, root, plan, taken);
                    break;
                default:
                    plan.Warnings.Add($"'{listed.FullPath}' is not a regular file or directory (a pipe, socket or device); it was left out.");
                    break;
            }
        }
    }

    /// <summary>Copies a directory tree: plain names only, symlinks only to files inside root, symlinked directories not followed.</summary>
    private static void Walk(IRemoteFileSystem fs, string directory, string relative, string root, DownloadPlan plan, Dictionary<string, string> taken)
    {
        var pending = new Stack<(string Remote, string Relative)>();
        pending.Push((directory, relative));
        while (pending.Count > 0)
        {
            var (remote, rel) = pending.Pop();
            if (rel.Length > 0)
            {
                if (!Claim(plan, taken, rel, remote))
                {
                    continue;
                }

                plan.Directories.Add(rel);
            }

            var children = new List<(string, string)>();
            foreach (var entry in List(fs, remote, plan).OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                if (!RemotePath.IsSafeName(entry.Name))
                {
                    Follow(fs, entry, root, plan); // refuses it
                    continue;
                }

                var childRelative = rel.Length == 0 ? entry.Name : rel + "/" + entry.Name;
                var childRemote = RemotePath.Join(remote, entry.Name);
                var target = Follow(fs, entry with { FullPath = childRemote }, root, plan);
                switch (target?.Kind)
                {
                    case null:
                        break;
                    case RemoteEntryKind.File:
                        Add(plan, taken, new RemoteSource(childRemote, childRelative, target.Length, target.Mode));
                        break;
                    case RemoteEntryKind.Directory when entry.Kind == RemoteEntryKind.Symlink:
                        plan.Warnings.Add($"'{childRemote}' is a symbolic link to a directory; it was not followed.");
                        break;
                    case RemoteEntryKind.Directory:
                        children.Add((childRemote, childRelative));
                        break;
                    default:
                        plan.Warnings.Add($"'{childRemote}' is not a regular file or directory (a pipe, socket or device); it was left out.");
                        break;
                }
            }

            for (int i = children.Count - 1; i >= 0; i--)
            {
                pending.Push(children[i]);
            }
        }
    }

    /// <summary>
    /// A listed entry, checked: a name that is not a plain name, or a symlink leading outside root, is refused
    /// (PathOutsideDestination); a symlink leading nowhere is left out with a warning. Returns what to copy.
    /// </summary>
    private static RemoteEntry? Follow(IRemoteFileSystem fs, RemoteEntry entry, string root, DownloadPlan plan)
    {
        if (!RemotePath.IsSafeName(entry.Name))
        {
            plan.Failures.Add(new TransferFailure(TransferErrorIds.PathOutsideDestination,
                $"The remote name '{entry.Name}' (in '{RemotePath.GetDirectory(entry.FullPath)}') is not a plain file name and would escape the destination; it was refused.", entry.FullPath));
            return null;
        }

        if (entry.Kind != RemoteEntryKind.Symlink)
        {
            return entry;
        }

        RemoteEntry? target;
        try
        {
            target = fs.Stat(entry.FullPath);
        }
        catch (TransferFailure failure)
        {
            plan.Failures.Add(failure);
            return null;
        }

        if (target is null || target.Kind == RemoteEntryKind.Symlink)
        {
            plan.Warnings.Add($"'{entry.FullPath}' is a symbolic link to nothing; it was left out.");
            return null;
        }

        if (!RemotePath.IsUnder(root, target.FullPath))
        {
            plan.Failures.Add(new TransferFailure(TransferErrorIds.PathOutsideDestination,
                $"'{entry.FullPath}' is a symbolic link to '{target.FullPath}', outside '{root}'; it was refused.", entry.FullPath));
            return null;
        }

        return target;
    }

    private static IEnumerable<RemoteEntry> List(IRemoteFileSystem fs, string directory, DownloadPlan plan)
    {
        try
        {
            return fs.List(directory).Where(e => e.Name is not ("." or "..")).ToList();
        }
        catch (TransferFailure failure)
        {
            plan.Failures.Add(failure);
            return Array.Empty<RemoteEntry>();
        }
    }

    private static void Add(DownloadPlan plan, Dictionary<string, string> taken, RemoteSource source)
    {
        if (Claim(plan, taken, source.RelativePath, source.RemotePath))
        {
            plan.Files.Add(source);
        }
    }

    private static bool Claim(DownloadPlan plan, Dictionary<string, string> taken, string relative, string remote)
    {
        if (taken.TryGetValue(relative, out var other))
        {
            if (other != remote)
            {
                plan.Failures.Add(new TransferFailure(TransferErrorIds.CopyFailed,
                    $"'{other}' and '{remote}' would both be written to '{relative}'; '{remote}' was not copied. Copy them in separate calls.", remote));
            }

            return false;
        }

        taken[relative] = remote;
        return true;
    }
}
