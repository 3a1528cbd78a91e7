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
        "JumpHost", "ThrottleLimit", "TagNames", "KeyFile", "KnownHostsPath", "StrictHostKeyChecking",
    };

    public static readonly string[] TagRoles = { "Project", "Environment", "Cluster", "Name", "Packages" };

    /// <summary>The folder the file was found in: hooks and relative paths are taken from here.</summary>
    public string Directory { get; }
    /// <summary>The files that were read, in the order read.</summary>
    public IReadOnlyList<string> Paths { get; }
    public IReadOnlyDictionary<string, object?> Values { get; }

    private ProjectFile(string directory, IReadOnlyList<string> paths, IReadOnlyDictionary<string, object?> values)
    {
        Directory = directory;
        Paths = paths;
        Values = values;
    }

    /// <summary>Walks up from <paramref name="start"/> to the first folder holding a project file.</summary>
    public static ProjectFile? Find(string start)
    {
        for (var folder = new DirectoryInfo(start); folder is not null; folder = folder.Parent)
        {
            var found = Load(folder.FullName);
            if (found is not null)
                return found;
        }
        return null;
    }

    /// <summary>Reads the project files of one folder; null when it has none.</summary>
    public static ProjectFile? Load(string directory)
    {
        var values = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
        var paths = new List<string>();

        string dataFile = Path.Combine(directory, DataFileName);
        if (File.Exists(dataFile))
        {
            paths.Add(dataFile);
            foreach (var (key, value) in ParseDataFile(File.ReadAllText(dataFile), dataFile))
                values[key] = value;
        }

        // The dotfiles fill in what the data file leaves out.
        string? projectFile = FirstExisting(directory, ProjectDotfiles);
        if (projectFile is not null)
        {
            paths.Add(projectFile);
            var names = Words(File.ReadAllText(projectFile));
            if (!values.ContainsKey("Project") && names.Length > 0)
                values["Project"] = string.Join(" ", names);
        }
        string? packageFile = FirstExisting(directory, PackageDotfiles);
        if (packageFile is not null)
        {
            paths.Add(packageFile);
            if (!values.ContainsKey("Packages"))
                values["Packages"] = Words(File.ReadAllText(packageFile));
        }

        return paths.Count == 0 ? null : new ProjectFile(directory, paths, values);
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
