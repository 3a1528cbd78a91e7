namespace Moltar.Engine.Context;

/// <summary>What a repository says about itself: a .moltar.psd1, or the original tool's dotfiles.</summary>
public sealed class ProjectFile
{
    public const string DataFileName = ".moltar.psd1";
    public static readonly string[] ProjectDotfiles = { ".moltar-project", ".project-name" };
    public static readonly string[] PackageDotfiles = { ".moltar-packages", ".moltar-package", ".package-names", ".package-name" };

    public static readonly string[] AllowedKeys =
    {
        "Project", "ProfileName", "Region", "EndpointUrl", "Packages", "User", "Port", "AddressType",
        "JumpHost", "ThrottleLimit", "TagNames", "KeyFile", "KnownHostsPath", "StrictHostKeyChecking", "ConnectionIdleSeconds", "Transport",
    };

    public static readonly string[] TagRoles = { "Project", "Environment", "Cluster", "Name", "Packages" };

    /// <summary>Hook files (run by Invoke-MoltarDeploy): part of what the user trusts, so part of the hash.</summary>
    public static readonly string[] HookFiles = { Deploy.DeployHook.AfterDeployFile, Deploy.DeployHook.FailedDeployFile };

    /// <summary>Settings that decide where credentials go or which hosts are trusted: honoured only from a trusted project file.</summary>
    public static readonly string[] TrustedOnlyKeys =
    {
        "EndpointUrl", "StrictHostKeyChecking", "KnownHostsPath", "JumpHost", "KeyFile", "ProfileName", "User", "Transport",
    };

    /// <summary>The largest project file, dotfile or hook Moltar reads.</summary>
    public const long SizeLimit = 256 * 1024;

    /// <summary>The folder the file was found in: hooks and relative paths are taken from here.</summary>
    public string Directory { get; }
    /// <summary>The files that were read, in the order read.</summary>
    public IReadOnlyList<string> Paths { get; }
    public IReadOnlyDictionary<string, object?> Values { get; }
    /// <summary>SHA-256 over the folder's Moltar files (project file, dotfiles, hooks) as read: what a trust record names.</summary>
    public string ContentHash { get; }

    private ProjectFile(string directory, IReadOnlyList<string> paths, IReadOnlyDictionary<string, object?> values, string contentHash)
    {
        Directory = directory;
        Paths = paths;
        Values = values;
        ContentHash = contentHash;
    }

    /// <summary>
    /// Walks up from <paramref name="start"/> to the first folder holding a project file. As git's safe.directory,
    /// the walk stops at a folder that is not owned by the current user or is writable by others: someone else may
    /// have put a project file or hook there. <paramref name="notes"/> gets a line when such a folder holds Moltar files.
    /// </summary>
    public static ProjectFile? Find(string start, ICollection<string>? notes = null)
    {
        for (var folder = new DirectoryInfo(start); folder is not null; folder = folder.Parent)
        {
            if (Unsafe(folder.FullName) is { } reason)
            {
                var planted = MoltarFileNames.Select(n => Path.Combine(folder.FullName, n)).Where(File.Exists).ToList();
                if (planted.Count > 0)
                    notes?.Add($"{string.Join(", ", planted)} ignored: {folder.FullName} {reason}, so anyone could have put them there. Move the project to a folder you own.");
                return null;
            }
            var found = Load(folder.FullName);
            if (found is not null)
                return found;
        }
        return null;
    }

    /// <summary>Why a folder may not hold the user's project (not owned, writable by others); null when it may.</summary>
    public static string? Unsafe(string folder)
    {
        var status = FileStatus.Of(folder);
        if (status is null)
            return "does not exist";
        if (!status.OwnedByCurrentUser)
            return "is not owned by you";
        if (status.WritableByOthers)
            return "is writable by others";
        return null;
    }

    private static IEnumerable<string> MoltarFileNames =>
        new[] { DataFileName }.Concat(ProjectDotfiles).Concat(PackageDotfiles).Concat(HookFiles);

    /// <summary>The hash of the Moltar files in <paramref name="directory"/> as they are now.</summary>
    public static string HashOf(string directory) =>
        ProjectTrust.Hash(MoltarFileNames.Select(n => Path.Combine(directory, n)).Where(File.Exists)
            .Select(p => (Path.GetFileName(p), Read(p))));

    private static byte[] Read(string path)
    {
        try
        {
            return BoundedFile.ReadAllBytes(path, "The project file", SizeLimit);
        }
        catch (FileRefusedException e)
        {
            throw new FormatException(e.Message, e);
        }
    }

    /// <summary>Reads the project files of one folder; null when it has none.</summary>
    public static ProjectFile? Load(string directory)
    {
        var values = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
        var paths = new List<string>();
        // Each file is read once: what is parsed is what is hashed.
        var contents = MoltarFileNames.Select(n => Path.Combine(directory, n)).Where(File.Exists)
            .Select(p => (Path: p, Bytes: Read(p))).ToList();
        string TextOf(string path) => System.Text.Encoding.UTF8.GetString(contents.First(c => c.Path == path).Bytes);

        string dataFile = Path.Combine(directory, DataFileName);
        if (contents.Any(c => c.Path == dataFile))
        {
            paths.Add(dataFile);
            foreach (var (key, value) in ParseDataFile(TextOf(dataFile), dataFile))
                values[key] = value;
        }

        // The dotfiles fill in what the data file leaves out.
        string? projectFile = FirstExisting(directory, ProjectDotfiles);
        if (projectFile is not null && contents.Any(c => c.Path == projectFile))
        {
            paths.Add(projectFile);
            var names = Words(TextOf(projectFile));
            if (!values.ContainsKey("Project") && names.Length > 0)
                values["Project"] = string.Join(" ", names);
        }
        string? packageFile = FirstExisting(directory, PackageDotfiles);
        if (packageFile is not null && contents.Any(c => c.Path == packageFile))
        {
            paths.Add(packageFile);
            if (!values.ContainsKey("Packages"))
                values["Packages"] = Words(TextOf(packageFile));
        }

        string hash = ProjectTrust.Hash(contents.Select(c => (Path.GetFileName(c.Path), c.Bytes)));
        return paths.Count == 0 ? null : new ProjectFile(directory, paths, values, hash);
    }

    public static Dictionary<string, object?> ParseDataFile(string text, string path)
    {
        var values = DataFileParser.Parse(text, path);
        foreach (var key in values.Keys)
        {
            if (!AllowedKeys.Contains(key, StringComparer.OrdinalIgnoreCase))
                throw new FormatException(
                    $"{path}: '{key}' is not a project file setting. Known settings: {string.Join(", ", AllowedKeys)}.");
        }
        if (values.TryGetValue("TagNames", out var tagNames) && tagNames is not null)
        {
            if (tagNames is not Dictionary<string, object?> table)
                throw new FormatException($"{path}: TagNames must be a hashtable such as @{{ Project = 'App' }}.");
            foreach (var role in table.Keys)
            {
                if (!TagRoles.Contains(role, StringComparer.OrdinalIgnoreCase))
                    throw new FormatException(
                        $"{path}: TagNames has '{role}'; the tags it can rename are {string.Join(", ", TagRoles)}.");
            }
        }
        return values;
    }

    private static string? FirstExisting(string directory, IEnumerable<string> names) =>
        names.Select(n => Path.Combine(directory, n)).FirstOrDefault(File.Exists);

    private static string[] Words(string text) =>
        text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
}
