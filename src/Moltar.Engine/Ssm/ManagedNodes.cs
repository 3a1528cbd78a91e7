using System.Collections.Concurrent;

namespace Moltar.Engine.Ssm;

/// <summary>
/// Instances Systems Manager said are managed nodes, kept across the runs of one deploy (its steps on every host), so
/// DescribeInstanceInformation is asked once per instance rather than once per step: the call's rate limit is the
/// account's, shared with every other tool. A run whose SendCommand is refused for one of them forgets it and checks again.
/// </summary>
internal sealed class ManagedNodes
{
    private readonly ConcurrentDictionary<string, byte> _ids = new(StringComparer.Ordinal);

    public bool Contains(string instanceId) => _ids.ContainsKey(instanceId);

    public void Add(string instanceId) => _ids.TryAdd(instanceId, 0);

    public void Forget(IEnumerable<string> instanceIds)
    {
        foreach (var id in instanceIds)
            _ids.TryRemove(id, out _);
    }
}
