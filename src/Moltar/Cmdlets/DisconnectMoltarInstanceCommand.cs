using System.Management.Automation;
using Moltar.Engine.Ssh;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>
/// Closes SSH connections kept open between calls: all of them, or those to the given addresses or instance ids
/// (Get-MoltarConnection and Get-MoltarInstance objects bind by property). A connection a running call uses closes
/// when that call is done with it.
/// </summary>
[Cmdlet(VerbsCommunications.Disconnect, "MoltarInstance")]
[OutputType(typeof(MoltarConnection))]
public sealed class DisconnectMoltarInstanceCommand : MoltarCmdlet
{
    /// <summary>Close the connections to these addresses (as the calls were given them) or host names.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string[]? Address { get; set; }

    /// <summary>Close the connections to these instances.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string[]? InstanceId { get; set; }

    /// <summary>Write the connections that were closed.</summary>
    [Parameter] public SwitchParameter PassThru { get; set; }

    private readonly HashSet<string> _addresses = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _instanceIds = new(StringComparer.Ordinal);
    private bool _named;

    protected override void ProcessRecord()
    {
        // An object with both (a connection, an instance) names one host either way: either picks it. An empty value
        // (a connection to a plain address has no instance id) picks nothing, but still means "not all".
        _named |= Address is not null || InstanceId is not null;
        foreach (var address in Address ?? Array.Empty<string>())
            if (!string.IsNullOrWhiteSpace(address))
                _addresses.Add(address.Trim());
        foreach (var id in InstanceId ?? Array.Empty<string>())
            if (!string.IsNullOrWhiteSpace(id))
                _instanceIds.Add(id.Trim());
    }

    protected override void EndProcessing()
    {
        // Nothing named closes everything; but an empty pipeline ($none | Disconnect-MoltarInstance) closes nothing.
        if (!ConnectionPool.SharedCreated || !_named && MyInvocation.ExpectingInput)
            return;
        var closed = new List<PooledConnectionInfo>();
        ConnectionPool.Shared.Close(info =>
        {
            var picked = !_named || _addresses.Contains(info.Target.Address) || _addresses.Contains(info.HostName)
                || _instanceIds.Contains(info.Target.InstanceId);
            if (picked)
                closed.Add(info);
            return picked;
        });
        WriteVerbose($"Closed {closed.Count} connection(s).");
        if (PassThru)
            foreach (var info in closed)
                WriteObject(PooledConnections.ToConnection(info));
    }
}
