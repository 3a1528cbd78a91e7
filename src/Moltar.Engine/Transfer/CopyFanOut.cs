using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;

namespace Moltar.Engine.Transfer;

/// <summary>An upload: the local plan (the same for every host) and how to write it.</summary>
public sealed class UploadRequest
{
    public required UploadPlan Plan { get; init; }
    /// <summary>Replace existing remote files (else RemoteFileExists per file).</summary>
    public bool Force { get; init; }
    /// <summary>The mode every file gets; null keeps each local file's permission bits (644 from Windows).</summary>
    public int? Mode { get; init; }
}

/// <summary>A download: remote paths (wildcards allowed) expanded on each host, written under that host's folder.</summary>
public sealed class DownloadRequest
{
    public required IReadOnlyList<string> RemotePaths { get; init; }
    public bool Recurse { get; init; }
    /// <summary>The local folder of each target, in the order the targets are added to the runner.</summary>
    public required IReadOnlyList<string> HostFolders { get; init; }
    /// <summary>Replace existing local files (else LocalFileExists per file).</summary>
    public bool Force { get; init; }
    /// <summary>The mode every local file gets (Unix); null keeps the remote file's permission bits.</summary>
    public int? Mode { get; init; }
}

/// <summary>
/// The fan-out of a copy over many hosts, on the same runner, connector and event drain as a command fan-out
/// (see SshFanOut): per host it opens the connections, copies every file, and completes with a HostCopyOutcome
/// (an item whose outcome has failures counts as failed). A host that cannot be reached completes with its
/// SshFailure as Error, as for commands.
/// </summary>
public static class CopyFanOut
{
    public static FanOutRunner<SshTarget, HostCopyOutcome> Upload(SshConnector connector, UploadRequest request, TransferProgress progress,
        FanOutOptions? options = null, CancellationToken cancellationToken = default)
    {
        return new FanOutRunner<SshTarget, HostCopyOutcome>(
            ctx =>
            {
                HostCopySession session;
                try
                {
                    ctx.Status("connecting");
                    session = HostCopySession.Open(connector, ctx.Item, ctx.CancellationToken);
                }
                catch
                {
                    // Never reached: its share of the bytes will not come; settle it so progress can finish.
                    progress.AddBytes(request.Plan.TotalBytes);
                    throw;
                }

                using (session)
                {
                    ctx.Status("copying");
                    return session.Upload(request, progress);
                }
            },
            options,
            cancellationToken,
            isFailure: outcome => outcome.Failures.Count > 0);
    }

    public static FanOutRunner<SshTarget, HostCopyOutcome> Download(SshConnector connector, DownloadRequest request, TransferProgress progress,
        FanOutOptions? options = null, CancellationToken cancellationToken = default)
    {
        return new FanOutRunner<SshTarget, HostCopyOutcome>(
            ctx =>
            {
                ctx.Status("connecting");
                using var session = HostCopySession.Open(connector, ctx.Item, ctx.CancellationToken);
                ctx.Status("copying");
                return session.Download(request, request.HostFolders[ctx.Index], progress, ctx.Warning);
            },
            options,
            cancellationToken,
            isFailure: outcome => outcome.Failures.Count > 0);
    }

    /// <summary>
    /// The failures of a finished host, in order: what stopped the host (unreachable; an unexpected exception is
    /// Unexpected, see MoltarFailure.Of), else each file's.
    /// </summary>
    public static IReadOnlyList<MoltarFailure> FailuresOf(FanOutEvent<SshTarget, HostCopyOutcome> completed)
    {
        if (completed.Error is not null)
        {
            return new[] { MoltarFailure.Of(completed.Error, completed.Item?.Address) };
        }

        if (completed.Result is { } outcome)
        {
            return outcome.Failures.Select(f => f.Failure).ToList();
        }

        return Array.Empty<MoltarFailure>();
    }
}
