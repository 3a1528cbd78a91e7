using Moltar.Engine.Discovery;

namespace Moltar.Engine.Ssm;

/// <summary>One Run Command target: "tag:KEY" (or "InstanceIds") and its values.</summary>
public sealed record SsmTarget(string Key, IReadOnlyList<string> Values)
{
    public override string ToString() => $"{Key}={string.Join(",", Values)}";
}

/// <summary>
/// The selection as SSM Run Command tag targets, resolved by the service (no listing): one target per tag the
/// selection names (tag:KEY with the account's tag names), values matched exactly. What tag targets cannot
/// express (substring -Name, -Package, wildcards, stopped instances) is a clear MoltarException.
/// </summary>
public static class SsmTargets
{
    private static readonly System.Buffers.SearchValues<char> Wildcards = System.Buffers.SearchValues.Create("*?");

    /// <summary>SendCommand's InstanceIds and a target's Values take at most this many.</summary>
    public const int MaxIdsPerRequest = 50;

    public static IReadOnlyList<SsmTarget> From(InstanceSelection selection, MoltarContext context)
    {
        if (selection.Name is not null)
            throw Unsupported("-Name matches parts of names, ids and addresses, which Systems Manager tag targets cannot do. " +
                              $"Use -Tag @{{ {context.TagName("Name")} = 'exact-name' }}, or pipe Get-MoltarInstance -Name ... into the command.");
        if (selection.Packages.Count > 0)
            throw Unsupported("-Package matches a part of the Packages tag, which Systems Manager tag targets cannot do. Pipe Get-MoltarInstance -Package ... into the command.");
        if (selection.States.Count != 1 || selection.States[0] != "running")
            throw Unsupported("Systems Manager runs commands on running managed instances only.");
        var targets = new List<SsmTarget>();
        void Add(string key, IReadOnlyList<string> values)
        {
            if (values.FirstOrDefault(v => v.AsSpan().IndexOfAny(Wildcards) >= 0) is { } wildcard)
                throw Unsupported($"the value '{wildcard}' of tag {key} has a wildcard; Systems Manager tag targets match exact values. " +
                                  "Give exact values, or pipe Get-MoltarInstance into the command.");
            if (values.Count > MaxIdsPerRequest)
                throw Unsupported($"tag {key} has {values.Count} values; a Systems Manager target takes at most {MaxIdsPerRequest}.");
            targets.Add(new SsmTarget("tag:" + key, values.ToList()));
        }
        if (selection.Project is not null) Add(context.TagName("Project"), new[] { selection.Project });
        if (selection.Environment is not null) Add(context.TagName("Environment"), new[] { selection.Environment });
        if (selection.Cluster is not null) Add(context.TagName("Cluster"), new[] { selection.Cluster });
        foreach (var (key, values) in selection.Tags)
            Add(key, values);
        if (targets.Count == 0)
            throw Unsupported("no Project, Environment, Cluster or -Tag narrows the selection, and Moltar does not send a command to every instance of the account. " +
                              "Name a project (project file, -Project), an environment or a cluster.");
        if (targets.Count > 5)
            throw Unsupported($"the selection names {targets.Count} tags; a Systems Manager command takes at most 5 targets.");
        return targets;
    }

    /// <summary>Instance ids in chunks SendCommand and DescribeInstanceInformation accept.</summary>
    public static IEnumerable<List<string>> Chunks(IReadOnlyList<string> ids)
    {
        for (int i = 0; i < ids.Count; i += MaxIdsPerRequest)
            yield return ids.Skip(i).Take(MaxIdsPerRequest).ToList();
    }

    private static MoltarException Unsupported(string message) =>
        new(SsmErrorIds.SelectionNotSupported, FailureCategory.InvalidArgument, "-Transport Ssm: " + message);
}
