using Moltar.Engine.Ssh;

namespace Moltar.Infrastructure;

/// <summary>The engine's view of a pooled connection as the object users see.</summary>
internal static class PooledConnections
{
    public static MoltarConnection ToConnection(PooledConnectionInfo info) => new()
    {
        InstanceId = info.Target.InstanceId,
        Name = info.Target.Name,
        Address = info.Target.Address,
        User = info.User,
        HostName = info.HostName,
        Port = info.Port,
        Opened = info.Opened.ToLocalTime(),
        Age = info.Age,
        IdleTime = info.IdleTime,
        IdleLimit = info.IdleLimit,
        ChannelsInUse = info.ChannelsInUse,
        Uses = info.Uses,
        IsConnected = info.IsConnected,
    };
}
