using System.Management.Automation;
using Moltar.Engine.Ssh;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>Lists the SSH connections kept open between calls (host, age, idle time, channels in use).</summary>
[Cmdlet(VerbsCommon.Get, "MoltarConnection")]
[OutputType(typeof(MoltarConnection))]
public sealed class GetMoltarConnectionCommand : MoltarCmdlet
{
    protected override void EndProcessing()
    {
        if (!ConnectionPool.SharedCreated)
            return;
        foreach (var info in ConnectionPool.Shared.List())
            WriteObject(PooledConnections.ToConnection(info));
    }
}
