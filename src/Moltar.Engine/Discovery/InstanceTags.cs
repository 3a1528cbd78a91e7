namespace Moltar.Engine.Discovery;

/// <summary>
/// The one reading of an instance's tags, wherever they come from (DescribeInstances, or the Tags of an object piped
/// to a cmdlet): the tag that holds each role under the project's TagNames (Project falls back to App), and the
/// Packages tag's list (|app-web|app-worker|).
/// </summary>
public sealed class InstanceTags
{
    private readonly IReadOnlyDictionary<string, string> _tags;
    private readonly MoltarContext _context;

    /// <summary>The tags as key and value (the dictionary's comparer decides whether keys match case-insensitively).</summary>
    public InstanceTags(IReadOnlyDictionary<string, string> tags, MoltarContext context)
    {
        _tags = tags ?? throw new ArgumentNullException(nameof(tags));
        _context = context ?? throw new ArgumentNullException(nameof(context));
    }

    public IReadOnlyDictionary<string, string> All => _tags;

    /// <summary>The value of the tag that holds a role (Name, Project, Environment, Cluster, Packages); null when there is none.</summary>
    public string? Role(string role)
    {
        if (_tags.TryGetValue(_context.TagName(role), out var value))
            return value;
        // Some accounts say App where others say Project.
        return role == "Project" && _context.TagName(role) == "Project" && _tags.TryGetValue("App", out var app) ? app : null;
    }

    public string? Name => Role("Name");

    /// <summary>The packages the Packages tag lists; null when the instance has no such tag (an empty tag is an empty list).</summary>
    public string[]? Packages => Role("Packages") is { } text ? ParsePackages(text) : null;

    /// <summary>The Packages tag lists packages between bars: |app-web|app-worker|.</summary>
    public static string[] ParsePackages(string? tag) =>
        string.IsNullOrWhiteSpace(tag)
            ? Array.Empty<string>()
            : tag.Split(new[] { '|', ' ', ',' }, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
