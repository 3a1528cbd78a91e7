using System.Management.Automation;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>Shows the project, profile, region, tag names, packages and SSH defaults a call would use, and where each came from.</summary>
[Cmdlet(VerbsCommon.Get, "MoltarContext")]
[OutputType(typeof(MoltarContext))]
public sealed class GetMoltarContextCommand : MoltarAwsCmdlet
{
    protected override void EndProcessing() => WriteObject(ResolveContext());
}
