using System.Management.Automation;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>Shows the project, profile, region, tag names, packages and SSH defaults a call would use, and where each came from.</summary>
[Cmdlet(VerbsCommon.Get, "MoltarContext")]
[OutputType(typeof(MoltarContext))]
public sealed class GetMoltarContextCommand : MoltarAwsCmdlet
{
    protected override void EndProcessing()
    {
        var context = ResolveContext();
        // Which credential and region source wins (no credentials are fetched). When none can be found, the error a
        // call would get (every source tried) goes to the verbose stream: the rest of the context is still worth showing.
        try
        {
            var session = BuildAwsSession(context);
            context.CredentialSource = session.CredentialSource;
            context.RegionSource = session.RegionSource;
            context.Region ??= session.RegionName;
        }
        catch (Moltar.Engine.MoltarException e)
        {
            WriteVerbose($"No AWS credentials or region: {e.ErrorId}: {e.Message}");
        }
        WriteObject(context);
    }
}
