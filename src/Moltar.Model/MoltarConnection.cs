namespace Moltar;

/// <summary>An SSH connection Moltar keeps open between calls (Get-MoltarConnection).</summary>
public sealed class MoltarConnection
{
    public string InstanceId { get; init; } = "";
    public string? Name { get; init; }
    /// <summary>The address the call was given for the host.</summary>
    public string Address { get; init; } = "";
    /// <summary>Name, else the instance id, else the address; control characters shown as '?'.</summary>
    public string DisplayName => HostLabel.Of(Name, InstanceId, Address);
    public string User { get; init; } = "";
    /// <summary>The host name connected to (ssh config's HostName, else the address).</summary>
    public string HostName { get; init; } = "";
    public int Port { get; init; }
    /// <summary>When the connection was opened (its key exchange and login).</summary>
    public DateTimeOffset Opened { get; init; }
    public TimeSpan Age { get; init; }
    /// <summary>How long it has waited for a call (zero while one uses it).</summary>
    public TimeSpan IdleTime { get; init; }
    /// <summary>How long it may wait before it is closed (the ConnectionIdleSeconds of the call that used it last).</summary>
    public TimeSpan IdleLimit { get; init; }
    /// <summary>Channels open on it now: a command or an SFTP session (one at a time per connection).</summary>
    public int ChannelsInUse { get; init; }
    /// <summary>How many times a call used it (1 = only the call that opened it).</summary>
    public long Uses { get; init; }
    /// <summary>False when the server has dropped it (it is replaced on next use).</summary>
    public bool IsConnected { get; init; }

    public override string ToString() => $"{DisplayName}: {User}@{HostName}:{Port} (age {Age.TotalSeconds:0} s, idle {IdleTime.TotalSeconds:0} s)";
}
