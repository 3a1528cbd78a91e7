using System.Management.Automation;
using System.Security;
using Moltar.Engine;
using Moltar.Engine.Aws;
using Moltar.Engine.Context;
using Moltar.Engine.Discovery;

namespace Moltar.Infrastructure;

/// <summary>The AWS common parameters, named as AWS Tools for PowerShell names them, and context resolution.</summary>
public abstract class MoltarAwsCmdlet : MoltarCmdlet
{
    [Parameter] [ValidateNotNullOrEmpty] public string? Project { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [Alias("StoredCredentials", "AWSProfileName")] public string? ProfileName { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [Alias("AWSProfilesLocation", "ProfilesLocation")] public string? ProfileLocation { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [Alias("RegionToCall")] public string? Region { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? EndpointUrl { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [Alias("AK")] public string? AccessKey { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [Alias("SK")] public string? SecretKey { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] [Alias("ST")] public string? SessionToken { get; set; }

    /// <summary>Settings the derived cmdlet contributes (SSH user, port, packages...).</summary>
    protected virtual ContextRequest AddToRequest(ContextRequest request) => request;

    protected MoltarContext ResolveContext()
    {
        var request = AddToRequest(new ContextRequest
        {
            Project = Project,
            ProfileName = ProfileName,
            ProfileLocation = ProfileLocation is null ? null : GetUnresolvedProviderPathFromPSPath(ProfileLocation),
            Region = Region,
            EndpointUrl = EndpointUrl,
            WorkingDirectory = SessionState.Path.CurrentFileSystemLocation.ProviderPath,
        });
        try
        {
            var context = new ContextResolver().Resolve(request);
            foreach (var warning in context.Warnings)
                WriteWarning(warning);
            WriteVerbose("Context: " + string.Join("; ", context.Settings.Select(s => $"{s.Name}={Display(s)} from {s.SourceText}")));
            return context;
        }
        catch (FormatException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "InvalidProjectSetting", ErrorCategory.InvalidData, null));
            throw; // not reached
        }
        catch (MoltarException e)
        {
            ThrowFailure(e);
            throw; // not reached
        }
    }

    private static object? Display(Moltar.MoltarSetting setting) =>
        setting.Value is string[] values ? string.Join(",", values) : setting.Value;

    protected AwsSession CreateAwsSession(MoltarContext context)
    {
        try
        {
            var session = BuildAwsSession(context, CanPrompt() ? PromptForMfaCode : null);
            WriteVerbose($"AWS: credentials from {session.CredentialSource}; region {session.RegionName} from {session.RegionSource}" +
                         (session.EndpointUrl is null ? "" : $"; endpoint {session.EndpointUrl}"));
            // Fetched here, on the pipeline thread, so an MFA prompt reaches the console.
            session.EnsureCredentials();
            return session;
        }
        catch (MoltarException e)
        {
            ThrowFailure(e);
            throw;
        }
    }

    /// <summary>
    /// The one discovery path (Get-MoltarInstance and every cmdlet that selects instances): DescribeInstances with the
    /// context's account and region, run on the pipeline thread (its verbose messages written there); a failure is the
    /// terminating error. The session comes back for messages that name the region.
    /// </summary>
    protected IReadOnlyList<MoltarInstance> Discover(MoltarContext context, InstanceSelection selection, out AwsSession session)
    {
        session = CreateAwsSession(context);
        var discovery = new InstanceDiscovery(session, context, PostVerbose);
        try
        {
            return RunOnPipeline(ct => discovery.FindAsync(selection, ct));
        }
        catch (MoltarException e)
        {
            ThrowFailure(e);
            throw; // not reached
        }
    }

    /// <summary>The session's credential and region sources, resolved without fetching credentials; MoltarException when none is found.</summary>
    protected AwsSession BuildAwsSession(MoltarContext context, Func<string, string>? mfaCode = null)
    {
        if ((AccessKey is null) != (SecretKey is null))
            ThrowInvalidArgument("IncompleteCredentials",
                "-AccessKey and -SecretKey go together: give both (and -SessionToken for temporary credentials), or neither.");
        var explicitCredentials = AccessKey is null ? null : new ExplicitCredentials(AccessKey, SecretKey!, SessionToken);
        return AwsSession.Create(context, explicitCredentials, mfaCode: mfaCode,
                                 stored: AwsToolsSession.StoredCredentials(GetVariableValue("StoredAWSCredentials")),
                                 storedRegion: AwsToolsSession.StoredRegion(GetVariableValue("StoredAWSRegion")));
    }

    private bool CanPrompt() =>
        Host?.UI?.RawUI is not null
        && !System.Environment.GetCommandLineArgs().Any(a => a.Equals("-NonInteractive", StringComparison.OrdinalIgnoreCase) || a.Equals("-noni", StringComparison.OrdinalIgnoreCase));

    private string PromptForMfaCode(string serial)
    {
        Host.UI.Write($"MFA code for {serial}: ");
        return Host.UI.ReadLine()?.Trim() ?? "";
    }
}
