namespace Moltar.Sandbox.Ec2;

/// <summary>
/// The instances the endpoint serves. Readers take an immutable snapshot; writers replace it whole,
/// so a request (or a page) never sees a half-replaced fleet.
/// </summary>
public sealed class Ec2Fleet
{
    private volatile Ec2FleetSnapshot snapshot = new([], 0);
    private readonly Lock writeLock = new();

    public Ec2Fleet(IEnumerable<Ec2Instance>? instances = null)
    {
        if (instances is not null)
        {
            Replace(instances);
        }
    }

    public Ec2FleetSnapshot Snapshot => snapshot;

    /// <summary>Replaces every instance. Throws <see cref="ArgumentException"/> on duplicate instance ids.</summary>
    public void Replace(IEnumerable<Ec2Instance> instances)
    {
        var list = instances.ToList();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var instance in list)
        {
            if (!ids.Add(instance.InstanceId))
            {
                throw new ArgumentException($"Instance id '{instance.InstanceId}' appears twice.", nameof(instances));
            }
        }
        lock (writeLock)
        {
            snapshot = new Ec2FleetSnapshot(list, snapshot.Generation + 1);
        }
    }
}

/// <summary>
/// An immutable view of the fleet. <see cref="InReservationOrder"/> keeps the instances of one
/// reservation next to each other (reservations in order of first appearance), which is the order
/// DescribeInstances pages over.
/// </summary>
public sealed class Ec2FleetSnapshot
{
    public Ec2FleetSnapshot(IReadOnlyList<Ec2Instance> instances, long generation)
    {
        InFleetOrder = instances;
        Generation = generation;
        var byId = new Dictionary<string, Ec2Instance>(instances.Count, StringComparer.Ordinal);
        var groups = new Dictionary<string, List<Ec2Instance>>(StringComparer.Ordinal);
        var order = new List<List<Ec2Instance>>();
        foreach (var instance in instances)
        {
            byId[instance.InstanceId] = instance;
            if (!groups.TryGetValue(instance.ReservationId, out var group))
            {
                group = [];
                groups.Add(instance.ReservationId, group);
                order.Add(group);
            }
            group.Add(instance);
        }
        ById = byId;
        InReservationOrder = order.SelectMany(g => g).ToArray();
    }

    public long Generation { get; }
    public IReadOnlyList<Ec2Instance> InFleetOrder { get; }
    public IReadOnlyList<Ec2Instance> InReservationOrder { get; }
    public IReadOnlyDictionary<string, Ec2Instance> ById { get; }
}
