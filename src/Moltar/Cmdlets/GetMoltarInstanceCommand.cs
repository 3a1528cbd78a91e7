using System.Collections;
using System.Management.Automation;
using Moltar.Engine.Discovery;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>Lists the project's EC2 instances by their tags.</summary>
[Cmdlet(VerbsCommon.Get, "MoltarInstance")]
[OutputType(typeof(MoltarInstance))]
public sealed class GetMoltarInstanceCommand : MoltarAwsCmdlet
{
    [Parameter(Position = 0)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(EnvironmentCompleter))] public string? Environment { get; set; }
    [Parameter(Position = 1)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(ClusterCompleter))] public string? Cluster { get; set; }
    [Parameter(Position = 2)] [ValidateNotNullOrEmpty] [ArgumentCompleter(typeof(NameCompleter))] public string? Name { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? Package { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public Hashtable? Tag { get; set; }
    [Parameter] [ValidateSet("pending", "running", "shutting-down", "terminated", "stopping", "stopped", "All", IgnoreCase = true)]
    public string[]? State { get; set; }
    [Parameter] [ValidateSet("Auto", "Public", "Private", IgnoreCase = true)] public string? AddressType { get; set; }
    [Parameter] public SwitchParameter First { get; set; }
    /// <summary>Exactly these instances, looked up by id (in any project of the account).</summary>
    [Parameter] [ValidateNotNullOrEmpty] [ValidatePattern(InstanceInput.InstanceIdPattern)] public string[]? InstanceId { get; set; }

    protected override Engine.Context.ContextRequest AddToRequest(Engine.Context.ContextRequest request) =>
        request with { AddressType = AddressType is null ? null : Enum.Parse<Moltar.AddressType>(AddressType, ignoreCase: true) };

    protected override void EndProcessing()
    {
        var context = ResolveContext();
        InstanceSelection selection;
        try
        {
            selection = Selection.From(context, Environment, Cluster, Name, Package, Tag, State, First);
            if (InstanceId is not null)
                selection = selection with { InstanceIds = InstanceId.Distinct(StringComparer.Ordinal).ToArray(), Project = null };
        }
        catch (ArgumentException e)
        {
            ThrowInvalidArgument("InvalidTagFilter", e.Message);
            return;
        }
        var instances = Discover(context, selection, out var session);
        if (instances.Count == 0)
        {
            WriteError(new ErrorRecord(
                new ItemNotFoundException($"No instance matches {selection.Describe()} in region {session.RegionName} " +
                                          $"(credentials from {session.CredentialSource}{(session.EndpointUrl is null ? "" : $", endpoint {session.EndpointUrl}")})."),
                "InstanceNotFound", ErrorCategory.ObjectNotFound, selection.Describe()));
            return;
        }
        // One call for the whole list: PowerShell then adds the items to the pipe without a per-object round trip.
        WriteObject(instances, enumerateCollection: true);
    }
}
