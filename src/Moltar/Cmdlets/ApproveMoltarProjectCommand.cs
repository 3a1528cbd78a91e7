using System.Management.Automation;
using Moltar.Engine;
using Moltar.Engine.Context;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>
/// Trusts the project folder's Moltar files as they are now: their settings that decide where credentials go or
/// which hosts are trusted (EndpointUrl, User, KeyFile...) and their deploy hooks are honoured until a file changes.
/// </summary>
[Cmdlet(VerbsLifecycle.Approve, "MoltarProject", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(MoltarProjectTrust))]
public sealed class ApproveMoltarProjectCommand : MoltarCmdlet
{
    /// <summary>Where to look for the project file (walking up, as every Moltar cmdlet does); default the current folder.</summary>
    [Parameter(Position = 0)] [ValidateNotNullOrEmpty] public string? Path { get; set; }

    protected override void EndProcessing()
    {
        string start = Path is null ? SessionState.Path.CurrentFileSystemLocation.ProviderPath : GetUnresolvedProviderPathFromPSPath(Path);
        if (!Directory.Exists(start))
            ThrowInvalidArgument("PathNotFound", $"-Path '{start}' is not a folder. Give the project's folder (or a folder below it).", start);
        var notes = new List<string>();
        ProjectFile? project;
        ProjectTrust trust;
        try
        {
            project = ProjectFile.Find(start, notes);
            trust = new ProjectTrust();
        }
        catch (FormatException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "InvalidProjectSetting", ErrorCategory.InvalidData, start));
            return;
        }
        if (project is null)
        {
            ThrowTerminatingError(new ErrorRecord(new ItemNotFoundException(
                $"No Moltar project file (.moltar.psd1, .moltar-project, ...) found in '{start}' or a folder above it that you own." +
                (notes.Count > 0 ? " " + string.Join(" ", notes) : "")), "ProjectNotFound", ErrorCategory.ObjectNotFound, start));
            return;
        }
        var files = ProjectFile.HookFiles.Select(h => System.IO.Path.Combine(project.Directory, h)).Where(File.Exists);
        var record = new MoltarProjectTrust
        {
            Directory = project.Directory,
            Files = project.Paths.Concat(files).ToArray(),
            ContentHash = project.ContentHash,
            TrustedSettings = ProjectFile.TrustedOnlyKeys.Where(k => project.Values.ContainsKey(k)).ToArray(),
            TrustFile = trust.Path,
        };
        string what = $"Trust {string.Join(", ", record.Files.Select(System.IO.Path.GetFileName))}" +
                      (record.TrustedSettings.Length > 0 ? $" (settings {string.Join(", ", record.TrustedSettings)})" : "");
        if (!ShouldProcess(project.Directory, what))
            return;
        try
        {
            trust.Trust(project);
        }
        catch (MoltarException e)
        {
            ThrowFailure(e, project.Directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(new IOException($"Could not write the trust file '{trust.Path}': {e.Message}", e),
                "TrustFileNotWritten", ErrorCategory.WriteError, trust.Path));
        }
        WriteObject(record);
    }
}
