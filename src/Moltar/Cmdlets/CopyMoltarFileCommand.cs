using System.Management.Automation;
using System.Text;
using Moltar.Engine;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;
using Moltar.Engine.Transfer;
using Moltar.Infrastructure;

namespace Moltar.Cmdlets;

/// <summary>Copies files to many instances, or from them into a folder per instance, in parallel and verified.</summary>
[Cmdlet(VerbsCommon.Copy, "MoltarFile", SupportsShouldProcess = true, DefaultParameterSetName = SelectionSet)]
[OutputType(typeof(MoltarCopyResult))]
public sealed class CopyMoltarFileCommand : MoltarSshCmdlet
{
    private const int WhatIfFilesPerHost = 50;

    /// <summary>Upload: local files, wildcards, directories (with -Recurse). With -FromRemote: remote paths, wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0)] [ValidateNotNullOrEmpty] public string[] Path { get; set; } = Array.Empty<string>();
    /// <summary>Upload: the remote directory or file (default: the user's home). Download: the local folder (default: the current one).</summary>
    [Parameter(Position = 1)] [ValidateNotNull] public string? Destination { get; set; }
    /// <summary>Download: -Path names remote files; each host's files go under Destination/&lt;Name or InstanceId&gt;/.</summary>
    [Parameter] public SwitchParameter FromRemote { get; set; }
    [Parameter] public SwitchParameter Recurse { get; set; }
    /// <summary>Send what a symbolic link inside the uploaded tree points to even when that is outside the tree.</summary>
    [Parameter] public SwitchParameter FollowSymlink { get; set; }
    /// <summary>Replace files that already exist at the destination.</summary>
    [Parameter] public SwitchParameter Force { get; set; }
    /// <summary>Octal permissions for every file written ("644", "0755"); default: the source file's.</summary>
    [Parameter] [ValidateNotNullOrEmpty] public string? Mode { get; set; }
    [Parameter] [ValidateRange(1, 1024)] public int? ThrottleLimit { get; set; }

    protected override int? ThrottleLimitParameter => ThrottleLimit;

    protected override void EndProcessing()
    {
        int? mode = null;
        if (Mode is not null)
        {
            if (!FileModes.TryParse(Mode, out var parsed))
                ThrowInvalidArgument("InvalidMode", $"-Mode '{Mode}' is not an octal mode: give 3 or 4 octal digits, e.g. 644 or 0755.", Mode);
            mode = parsed;
        }

        var context = ResolveContext();
        UploadPlan? plan = FromRemote ? null : PlanUpload();
        var targets = ResolveTargets(context);
        var sshOptions = BuildSshOptions(context);
        // -ErrorAction Stop stops starting, not running (see Invoke-MoltarCommand).
        bool stopOnError = ErrorActionIsStop();
        var fanOut = new FanOutOptions { ThrottleLimit = context.ThrottleLimit, ThreadName = "Moltar copy", StopOnFailure = stopOnError };
        var progress = new TransferProgress();

        if (plan is not null)
        {
            var approved = targets.Where(t => ShouldProcessOrRefuse(DescribeUpload(plan, t.Target), $"Copy {Count(plan.Files.Count, "file")} to {t.Target}?", "Copy-MoltarFile")).ToList();
            if (approved.Count == 0)
                return;
            progress.AddTotal(plan.TotalBytes * approved.Count, plan.Files.Count * approved.Count);
            var request = new UploadRequest { Plan = plan, Force = Force, Mode = mode };
            using var connector = CreateConnector(sshOptions);
            using var runner = CopyFanOut.Upload(connector, request, progress, fanOut, StopToken);
            Run(runner, approved, $"Copy-MoltarFile: {Count(plan.Files.Count, "file")} ({TransferProgress.FormatBytes(plan.TotalBytes)}) to {Count(approved.Count, "host")}", progress, byBytes: true, stopOnError,
                new FanOutTally($"Copy-MoltarFile upload of {Count(plan.Files.Count, "file")} ({TransferProgress.FormatBytes(plan.TotalBytes)})"));
        }
        else
        {
            string destination = GetUnresolvedProviderPathFromPSPath(string.IsNullOrEmpty(Destination) ? "." : Destination);
            if (File.Exists(destination))
                ThrowInvalidArgument("DestinationIsFile", $"-Destination '{destination}' is a file; downloads need a folder (one subfolder per instance is made in it).", destination);
            var folders = DownloadLayout.HostFolderNames(targets.Select(t => t.Target).ToList());
            var approved = targets.Select((work, i) => (Work: work, Folder: System.IO.Path.Combine(destination, folders[i])))
                .Where(a => ShouldProcessOrRefuse(DescribeDownload(a.Work.Target, a.Folder), $"Copy files from {a.Work.Target} into {a.Folder}?", "Copy-MoltarFile")).ToList();
            if (approved.Count == 0)
                return;
            var request = new DownloadRequest
            {
                RemotePaths = Path,
                Recurse = Recurse,
                HostFolders = approved.Select(a => a.Folder).ToList(),
                Force = Force,
                Mode = mode,
            };
            using var connector = CreateConnector(sshOptions);
            using var runner = CopyFanOut.Download(connector, request, progress, fanOut, StopToken);
            Run(runner, approved.Select(a => a.Work).ToList(), $"Copy-MoltarFile: {string.Join(", ", Path)} from {Count(approved.Count, "host")}", progress, byBytes: false, stopOnError,
                new FanOutTally($"Copy-MoltarFile download of {string.Join(", ", Path)}"));
        }
    }

    private void Run(FanOutRunner<SshTarget, HostCopyOutcome> runner, IReadOnlyList<HostWork> approved, string activity, TransferProgress progress, bool byBytes,
                     bool stopOnError, FanOutTally tally)
    {
        foreach (var work in approved)
            runner.Add(work.Target);
        runner.Complete();
        int hostsFailed = 0;
        DrainAndSummarize(runner, approved, activity, quiet: true, stopOnError, tally, completed =>
        {
            if (completed.Result is { } outcome)
            {
                foreach (var result in outcome.Copied)
                    WriteObject(result);
            }
            var failures = CopyFanOut.FailuresOf(completed);
            if (failures.Count > 0) hostsFailed++;
            return failures.Select(failure => HostError(failure, completed.Item!, approved[completed.Index].Origin)).ToList();
        },
        (done, total, _) =>
        {
            string status = $"{done} of {total} hosts done, {hostsFailed} with errors; {TransferProgress.FormatBytes(progress.DoneBytes)} of {TransferProgress.FormatBytes(progress.TotalBytes)}";
            int percent = byBytes ? progress.Percent : total == 0 ? 100 : (int)(100.0 * done / total);
            return (status, percent);
        });
    }

    private UploadPlan PlanUpload()
    {
        var localPaths = Path.Select(GetUnresolvedProviderPathFromPSPath).ToList();
        UploadPlan plan;
        try
        {
            plan = UploadPlanner.Plan(localPaths, Recurse, Destination, FollowSymlink);
        }
        catch (MoltarException e)
        {
            ThrowFailure(e);
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "PathNotReadable", ErrorCategory.ReadError, Path));
            throw;
        }
        foreach (var warning in plan.Warnings)
            WriteWarning(warning);
        return plan;
    }

    /// <summary>-WhatIf / -Confirm text: every file (up to 50 per host) and where it would go.</summary>
    private static string DescribeUpload(UploadPlan plan, SshTarget target)
    {
        var text = new StringBuilder($"Copy {Count(plan.Files.Count, "file")} ({TransferProgress.FormatBytes(plan.TotalBytes)}) to {target}:");
        // As the host will resolve it: relative to the home directory.
        string destination = plan.Destination.TrimEnd('/') switch
        {
            "" => plan.Destination.StartsWith('/') ? "/" : "~",
            var d when d.StartsWith('/') || d == "~" || d.StartsWith("~/", StringComparison.Ordinal) => d,
            var d => "~/" + d,
        };
        foreach (var file in plan.Files.Take(WhatIfFilesPerHost))
        {
            string remote = plan.Kind == DestinationKind.FileOrDirectory
                ? $"{destination} (or {RemotePath.Join(destination, file.RelativePath)} if that is a directory)"
                : RemotePath.Join(destination, file.RelativePath);
            text.Append(System.Environment.NewLine).Append(System.Globalization.CultureInfo.CurrentCulture, $"  {file.LocalPath} -> {remote}");
        }
        if (plan.Files.Count > WhatIfFilesPerHost)
            text.Append(System.Environment.NewLine).Append(System.Globalization.CultureInfo.CurrentCulture, $"  ... and {plan.Files.Count - WhatIfFilesPerHost} more");
        return text.ToString();
    }

    private string DescribeDownload(SshTarget target, string folder) =>
        $"Copy {string.Join(", ", Path)}{(Recurse ? " (recursively)" : "")} from {target} into {folder}";

    private static string Count(int n, string noun) => n == 1 ? $"1 {noun}" : $"{n} {noun}s";
}
