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
        // Which credential and region source wins (no credentials are fetched): a source that cannot be found is the
        // same error a call would get, written here as a non-terminating error beside the context.
        try
        {
            var session = BuildAwsSession(context);
            context.CredentialSource = session.CredentialSource;
            context.RegionSource = session.RegionSource;
            context.Region ??= session.RegionName;
        }
        catch (Moltar.Engine.MoltarException e)
        {
            WriteError(ToErrorRecord(e, null));
        }
        WriteObject(context);
    }
}
