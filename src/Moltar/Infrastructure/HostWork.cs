using Moltar.Engine.Ssh;

namespace Moltar.Infrastructure;

/// <summary>One host to work on, and what the user gave for it (the error records' target object: InstanceInput.OriginOf).</summary>
internal sealed record HostWork(SshTarget Target, object Origin)
{
    /// <summary>An instance Moltar looked up (selection, -InstanceId): the instance is the origin.</summary>
    public static HostWork Of(MoltarInstance instance) => new(SshTarget.FromInstance(instance), instance);
}
