namespace Moltar.Engine.Discovery;

/// <summary>Which instances a call is about: tags, name terms, packages, state.</summary>
public sealed record InstanceSelection
{
    public string? Project { get; init; }
    public string? Environment { get; init; }
    public string? Cluster { get; init; }
    /// <summary>Terms joined by '/' must all match a substring of a tag value, the id, a DNS name or an IP.</summary>
    public string? Name { get; init; }
    public IReadOnlyList<string> Packages { get; init; } = Array.Empty<string>();
    public IReadOnlyDictionary<string, string[]> Tags { get; init; } = new Dictionary<string, string[]>();
    /// <summary>Exactly these instances (the instance-id filter); empty means any.</summary>
    public IReadOnlyList<string> InstanceIds { get; init; } = Array.Empty<string>();
    /// <summary>instance-state-name values; empty means every state.</summary>
    public IReadOnlyList<string> States { get; init; } = new[] { "running" };
    public bool First { get; init; }

    /// <summary>For messages: the filters in the words the user gave them.</summary>
    public string Describe()
    {
        var parts = new List<string>();
        if (InstanceIds.Count > 0) parts.Add($"InstanceId={string.Join(",", InstanceIds)}");
        if (Project is not null) parts.Add($"Project={Project}");
        if (Environment is not null) parts.Add($"Environment={Environment}");
        if (Cluster is not null) parts.Add($"Cluster={Cluster}");
        if (Name is not null) parts.Add($"Name~{Name}");
        if (Packages.Count > 0) parts.Add($"Packages={string.Join(",", Packages)}");
        foreach (var (key, values) in Tags) parts.Add($"tag:{key}={string.Join("|", values)}");
        parts.Add(States.Count == 0 ? "State=All" : $"State={string.Join(",", States)}");
        return string.Join(" ", parts);
    }
}
