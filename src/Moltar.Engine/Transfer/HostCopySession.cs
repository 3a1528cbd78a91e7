using System.Diagnostics;
using System.Security.Cryptography;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace Moltar.Engine.Transfer;

/// <summary>What one host's copy did: the files copied, and the files (or the host) that failed.</summary>
public sealed class HostCopyOutcome
{
    public List<MoltarCopyResult> Copied { get; } = new();
    /// <summary>TransferFailure per file, or an SshFailure (ConnectionLost) that ended the host's copy early.</summary>
    public List<MoltarException> Failures { get; } = new();
}

/// <summary>
/// One host's copy: an SFTP channel for the bytes, and (opened when first needed) a second connection for the
/// shell commands around them: mkdir -p and sha256sum. Both come from the connection pool (a warm connection of
/// an earlier call when there is one; SftpChannel opens the SFTP subsystem on it) and go back to it at the end.
/// Each pooled connection carries one channel at a time, hence two, made the same way (same user, keys, host key
/// check, jump host). Files go one after another, streamed in both directions
/// (never a whole file in memory), written under a temporary name and renamed into place once verified.
/// </summary>
internal sealed class HostCopySession : IDisposable
{
    /// <summary>SFTP request size: SSH.NET caps it to what the server accepts; large requests are what make SFTP fast.</summary>
    internal const uint SftpBufferSize = 256 * 1024;
    private const int LocalBufferSize = 1024 * 1024;

    private readonly SshConnector _connector;
    private readonly PooledConnection _sftpConnection;
    private readonly SftpClient _client;
    private readonly CancellationToken _cancellationToken;
    private readonly CancellationTokenRegistration _registration;
    private PooledConnection? _shell;

    private HostCopySession(SshConnector connector, PooledConnection sftpConnection, SftpClient client, CancellationToken cancellationToken)
    {
        _connector = connector;
        _sftpConnection = sftpConnection;
        _client = client;
        _cancellationToken = cancellationToken;
        // Cancelling closes the connections, which ends any SFTP call blocked in SSH.NET.
        _registration = cancellationToken.UnsafeRegister(static s => ((HostCopySession)s!).Close(), this);
    }

    public static HostCopySession Open(SshConnector connector, SshTarget target, CancellationToken cancellationToken) =>
        Open(connector, ConnectionPool.Shared.Acquire(connector, target, cancellationToken), cancellationToken);

    /// <summary>The copy's SFTP channel on a connection already taken from a pool (the session returns or closes it).</summary>
    internal static HostCopySession Open(SshConnector connector, PooledConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            SftpClient client;
            try
            {
                client = SftpChannel.Open(connection.Connection, connection.Reused);
            }
            catch (SshFailure lost) when (lost.ErrorId == SshErrorIds.ConnectionLost && !cancellationToken.IsCancellationRequested)
            {
                // Gone before the copy started (the server dropped it while it was kept): the reconnect policy.
                if (connector.Reconnect(connection.Connection, "the copy", cancellationToken) is not { } fresh)
                    throw; // the host itself is gone: the lost connection is the failure to report
                connection.Update(fresh);
                client = SftpChannel.Open(fresh, reused: false);
            }

            client.BufferSize = SftpBufferSize;
            return new HostCopySession(connector, connection, client, cancellationToken);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private SshTarget Target => _sftpConnection.Connection.Target;
    private SftpClient Client => _client;
    private string Host => Target.DisplayName;

    public HostCopyOutcome Upload(UploadRequest request, TransferProgress progress)
    {
        var plan = request.Plan;
        var outcome = new HostCopyOutcome();
        long accounted = 0;
        void Account(long bytes)
        {
            accounted += bytes;
            progress.AddBytes(bytes);
        }

        try
        {
            string home = Client.WorkingDirectory;
            string destination = RemotePath.Resolve(home, plan.Destination);
            bool destinationIsDirectory = plan.Kind == DestinationKind.Directory
                || Guard(() => Stat(destination))?.Kind == RemoteEntryKind.Directory;

            var directories = plan.RemoteDirectoriesFor(destination, destinationIsDirectory)
                .Where(d => d != home && d != "/" && !(d == destination && plan.Kind == DestinationKind.FileOrDirectory))
                .ToList();
            string? mkdirError = directories.Count == 0 ? null : MakeDirectories(directories);

            foreach (var file in plan.Files)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                var remote = plan.RemotePathOf(file, destination, destinationIsDirectory);
                long sent = 0;
                try
                {
                    outcome.Copied.Add(UploadOne(file, remote, request, b => { sent += b; Account(b); }));
                }
                catch (Exception e) when (!_cancellationToken.IsCancellationRequested && e is not OperationCanceledException)
                {
                    var failure = Failure(e, $"Could not upload '{file.LocalPath}' to '{remote}' on {Host}", mkdirError);
                    outcome.Failures.Add(failure);
                    if (failure is SshFailure)
                    {
                        break; // the connection is gone: the remaining files cannot go either
                    }
                }
                finally
                {
                    Account(Math.Max(0, file.Length - sent)); // what was not sent will not come
                    progress.FileDone();
                }
            }

            return outcome;
        }
        finally
        {
            progress.AddBytes(Math.Max(0, plan.TotalBytes - accounted));
        }
    }

    public HostCopyOutcome Download(DownloadRequest request, string hostFolder, TransferProgress progress, Action<string> warn)
    {
        var outcome = new HostCopyOutcome();
        var plan = Guard(() => RemoteExpansion.Expand(new SftpRemoteFileSystem(Client), request.RemotePaths, request.Recurse));
        foreach (var warning in plan.Warnings)
        {
            warn(warning);
        }

        outcome.Failures.AddRange(plan.Failures);
        progress.AddTotal(plan.Files.Sum(f => f.Length), plan.Files.Count);

        foreach (var directory in plan.Directories)
        {
            try
            {
                Directory.CreateDirectory(DownloadLayout.LocalPathFor(hostFolder, directory));
            }
            catch (TransferFailure failure)
            {
                outcome.Failures.Add(failure);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                outcome.Failures.Add(new TransferFailure(TransferErrorIds.CopyFailed, $"Could not create the local folder for '{directory}': {e.Message}", directory, e));
            }
        }

        foreach (var file in plan.Files)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            var received = new long[1];
            try
            {
                outcome.Copied.Add(DownloadOne(file, hostFolder, request, b => { received[0] += b; progress.AddBytes(b); }));
            }
            catch (Exception e) when (!_cancellationToken.IsCancellationRequested && e is not OperationCanceledException)
            {
                var failure = Failure(e, $"Could not download '{file.RemotePath}' from {Host}", null);
                outcome.Failures.Add(failure);
                if (failure is SshFailure)
                {
                    break;
                }
            }
            finally
            {
                progress.AddBytes(Math.Max(0, file.Length - received[0]));
                progress.FileDone();
            }
        }

        return outcome;
    }

    private MoltarCopyResult UploadOne(UploadSource file, string remote, UploadRequest request, Action<long> onBytes)
    {
        var clock = Stopwatch.StartNew();
        var existing = Stat(remote);
        if (existing?.Kind == RemoteEntryKind.Directory)
        {
            throw new TransferFailure(TransferErrorIds.CopyFailed, $"'{remote}' is a directory on {Host}; '{file.LocalPath}' was not copied over it.", remote);
        }

        if (existing is not null && !request.Force)
        {
            throw new TransferFailure(TransferErrorIds.RemoteFileExists,
                $"'{remote}' already exists on {Host}; it was left as it is. Add -Force to replace it.", remote);
        }

        // The bytes go to a file in a private folder (0700) beside the destination: SFTP cannot create a file with a
        // mode, and the server's umask may leave a new file readable by others while it fills. The file gets its
        // final mode only after it is verified, then moves into place (same file system: the folder is beside it).
        var tempFolder = RemotePath.Join(RemotePath.GetDirectory(remote), TempName());
        var temp = RemotePath.Join(tempFolder, "content");
        long bytes;
        string sha256;
        bool created = false;
        try
        {
            using (var local = new FileStream(file.LocalPath, FileMode.Open, FileAccess.Read, FileShare.Read, LocalBufferSize, FileOptions.SequentialScan))
            using (var hashing = HashingStream.ForReading(local, onBytes, _cancellationToken))
            {
                Client.CreateDirectory(tempFolder);
                created = true; // from here a temporary folder exists
                Client.ChangePermissions(tempFolder, FileModes.ToSshNetDigits(FileModes.PrivateFolder));
                using (Client.Open(temp, FileMode.CreateNew, FileAccess.Write)) { }
                Client.ChangePermissions(temp, FileModes.ToSshNetDigits(FileModes.PrivateFile));
                Client.UploadFile(hashing, temp, canOverride: true);
                bytes = hashing.BytesTransferred;
                sha256 = hashing.Sha256;
            }

            var verification = Verify(temp, bytes, sha256, "sent");
            int mode = request.Mode ?? file.Mode;
            Client.ChangePermissions(temp, FileModes.ToSshNetDigits(mode));
            MoveIntoPlace(temp, remote, request.Force);
            TryDeleteRemote(tempFolder, directory: true);
            return Copied(MoltarCopyDirection.Upload, file.LocalPath, remote, bytes, sha256, verification, mode, clock);
        }
        catch when (created)
        {
            TryDeleteRemote(temp);
            TryDeleteRemote(tempFolder, directory: true);
            throw;
        }
    }

    private MoltarCopyResult DownloadOne(RemoteSource file, string hostFolder, DownloadRequest request, Action<long> onBytes)
    {
        var clock = Stopwatch.StartNew();
        var local = DownloadLayout.LocalPathFor(hostFolder, file.RelativePath);
        if (Directory.Exists(local))
        {
            throw new TransferFailure(TransferErrorIds.CopyFailed, $"'{local}' is a local directory; '{file.RemotePath}' from {Host} was not copied over it.", local);
        }

        if (File.Exists(local) && !request.Force)
        {
            throw new TransferFailure(TransferErrorIds.LocalFileExists,
                $"'{local}' already exists; '{file.RemotePath}' from {Host} was not copied. Add -Force to replace it.", local);
        }

        var folder = Path.GetDirectoryName(local)!;
        Directory.CreateDirectory(folder);
        var temp = Path.Combine(folder, TempName());
        try
        {
            long bytes;
            string sha256;
            // Readable by the user alone until verified; then the final mode.
            var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = LocalBufferSize };
            if (!OperatingSystem.IsWindows())
            {
                create.UnixCreateMode = (UnixFileMode)FileModes.PrivateFile;
            }

            using (var stream = new FileStream(temp, create))
            using (var hashing = HashingStream.ForWriting(stream, onBytes, _cancellationToken))
            {
                Client.DownloadFile(file.RemotePath, hashing);
                hashing.Flush();
                bytes = hashing.BytesTransferred;
                sha256 = hashing.Sha256;
            }

            var verification = Verify(file.RemotePath, bytes, sha256, "received");
            // The remote mode is the host's to choose: a downloaded file never keeps its group/world write bits.
            int mode = request.Mode ?? FileModes.WithoutOthersWrite(FileModes.PermissionBits(file.Mode));
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temp, (UnixFileMode)mode);
            }

            try
            {
                File.Move(temp, local, overwrite: request.Force);
            }
            catch (IOException) when (!request.Force && File.Exists(local))
            {
                throw new TransferFailure(TransferErrorIds.LocalFileExists,
                    $"'{local}' appeared while '{file.RemotePath}' was copied from {Host}; it was left as it is. Add -Force to replace it.", local);
            }

            return Copied(MoltarCopyDirection.Download, file.RemotePath, local, bytes, sha256, verification, mode, clock);
        }
        catch
        {
            TryDeleteLocal(temp);
            throw;
        }
    }

    private MoltarCopyResult Copied(MoltarCopyDirection direction, string source, string destination, long bytes, string sha256,
                                    (bool Verified, string Note) verification, int mode, Stopwatch clock) => new()
    {
        InstanceId = Target.InstanceId,
        Name = Target.Name,
        Address = Target.Address,
        Direction = direction,
        Source = source,
        Destination = destination,
        Bytes = bytes,
        Sha256 = sha256,
        Verified = verification.Verified,
        VerificationNote = verification.Note,
        Mode = FileModes.Format(mode),
        Duration = clock.Elapsed,
    };

    /// <summary>
    /// Size from SFTP, then the SHA-256 from the host's own sha256sum (over the SSH connection) against the hash
    /// computed locally while the bytes streamed. A mismatch is a CopyFailed; a host without sha256sum gives
    /// Verified = false and says so.
    /// </summary>
    private (bool Verified, string Note) Verify(string remotePath, long bytes, string sha256, string verb)
    {
        long remoteSize = Client.GetAttributes(remotePath).Size;
        if (remoteSize != bytes)
        {
            throw new TransferFailure(TransferErrorIds.CopyFailed,
                $"'{remotePath}' on {Host} has {remoteSize} bytes but {bytes} were {verb} (did it change during the copy?).", remotePath);
        }

        var outcome = RunShell(RemoteCommands.Sha256Sum, RemoteCommands.NulSeparated(remotePath));
        if (outcome.ErrorId is SshErrorIds.ConnectionLost or SshErrorIds.Timeout)
        {
            throw SshFailure.ConnectionLost(Target, outcome.ErrorMessage ?? $"The connection to {Host} was lost.");
        }

        if (RemoteCommands.IsCommandNotFound(outcome.ExitCode))
        {
            return (false, "Size matches; not hashed on the host: sha256sum is not available there.");
        }

        var remoteHash = outcome.ExitCode == 0 ? RemoteCommands.ParseSha256Sum(outcome.Stdout) : null;
        if (remoteHash is null)
        {
            var why = FirstLine(outcome.Stderr) is { Length: > 0 } line ? line : $"exit code {outcome.ExitCode}";
            return (false, $"Size matches; not hashed on the host: sha256sum failed ({why}).");
        }

        if (!string.Equals(remoteHash, sha256, StringComparison.Ordinal))
        {
            throw new TransferFailure(TransferErrorIds.CopyFailed,
                $"SHA-256 mismatch for '{remotePath}' on {Host}: {sha256} {verb}, {remoteHash} on the host (did it change during the copy?).", remotePath);
        }

        return (true, "SHA-256 and size match (sha256sum on the host).");
    }

    /// <summary>
    /// Renames the verified temporary file to its name. Without force a plain SFTP rename, which never replaces an
    /// existing file (so a file that appeared meanwhile is not clobbered); with force a POSIX rename, which
    /// replaces it atomically: readers see the old file or the new one, never half of one.
    /// </summary>
    private void MoveIntoPlace(string temp, string remote, bool force)
    {
        if (!force)
        {
            try
            {
                Client.RenameFile(temp, remote, isPosix: false);
            }
            catch (SftpException) when (Stat(remote) is not null)
            {
                throw new TransferFailure(TransferErrorIds.RemoteFileExists,
                    $"'{remote}' appeared on {Host} during the copy; it was left as it is. Add -Force to replace it.", remote);
            }

            return;
        }

        try
        {
            Client.RenameFile(temp, remote, isPosix: true);
        }
        catch (NotSupportedException)
        {
            // A server without posix-rename@openssh.com: replace in two steps.
            if (Stat(remote) is not null)
            {
                Client.DeleteFile(remote);
            }

            Client.RenameFile(temp, remote, isPosix: false);
        }
    }

    /// <summary>
    /// Creates the remote directories (and their missing parents) over SFTP, as mkdir -p would, without a shell:
    /// no login shell's quoting rules (fish, csh) can turn a name into another. Returns the first error's text, if any.
    /// </summary>
    private string? MakeDirectories(IReadOnlyList<string> directories)
    {
        var present = new HashSet<string>(StringComparer.Ordinal) { "/" };
        string? firstError = null;
        foreach (var directory in directories)
        {
            // Not fatal by itself: the files whose directory is missing fail with the first error as the reason.
            firstError ??= MakeDirectory(directory, present);
        }

        return firstError;
    }

    /// <summary>One directory and its missing parents; null when it is there now, else why not.</summary>
    private string? MakeDirectory(string directory, HashSet<string> present)
    {
        var missing = new Stack<string>();
        for (var path = directory; !present.Contains(path); path = RemotePath.GetDirectory(path))
        {
            _cancellationToken.ThrowIfCancellationRequested();
            var entry = Stat(path);
            if (entry is not null)
            {
                if (entry.Kind != RemoteEntryKind.Directory)
                    return $"'{path}' exists and is not a directory";
                present.Add(path);
                break;
            }
            missing.Push(path);
        }

        while (missing.TryPop(out var path))
        {
            try
            {
                Client.CreateDirectory(path);
            }
            catch (SftpPermissionDeniedException)
            {
                return $"cannot create directory '{path}': permission denied";
            }
            catch (SshException) when (Stat(path)?.Kind == RemoteEntryKind.Directory)
            {
                // Made meanwhile (another copy to the same host): it is there, which is what counts.
            }
            catch (SshException e)
            {
                return $"cannot create directory '{path}': {e.Message.TrimEnd('.')}";
            }
            present.Add(path);
        }

        return null;
    }

    private RemoteEntry? Stat(string path)
    {
        try
        {
            var file = Client.Get(path);
            return SftpRemoteFileSystem.Entry(RemotePath.GetFileName(path), file.FullName, file.Attributes);
        }
        catch (SftpPathNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// Runs one of the copy's own commands (mkdir -p, sha256sum) on a second connection from the pool, opened when
    /// first needed, under the reconnect policy of every command (SshConnector.RunReconnecting).
    /// </summary>
    private ExecOutcome RunShell(string command, byte[]? stdin = null)
    {
        var options = new ExecOptions { MaxOutputBytes = 64 * 1024, Stdin = stdin };
        _shell ??= ConnectionPool.Shared.Acquire(_connector, Target, _cancellationToken);
        var connection = _shell.Connection;
        try
        {
            return _connector.RunReconnecting(ref connection, command, options, _cancellationToken);
        }
        finally
        {
            _shell.Update(connection); // a replaced connection is the one to return or close
        }
    }

    /// <summary>Runs a step whose failure ends the host's copy (a TransferFailure or an SSH error maps to its id).</summary>
    private T Guard<T>(Func<T> step)
    {
        try
        {
            return step();
        }
        catch (Exception e) when (!_cancellationToken.IsCancellationRequested && e is not OperationCanceledException and not MoltarException)
        {
            throw Failure(e, $"Could not prepare the copy on {Host}", null);
        }
    }

    /// <summary>An exception from a copy step as a MoltarException with a stable id and the host in the message.</summary>
    private MoltarException Failure(Exception e, string what, string? mkdirError)
    {
        if (_cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("The copy was cancelled.", e, _cancellationToken);
        }

        switch (e)
        {
            case TransferFailure or SshFailure:
                return (MoltarException)e;
            case var gone when SshFailure.MeansConnectionGone(gone):
                Close();
                return SshFailure.ConnectionLost(Target, $"{what}: the connection was lost ({e.Message}).", e);
            case SftpPermissionDeniedException:
                return new TransferFailure(TransferErrorIds.CopyFailed, $"{what}: permission denied.{MkdirNote(mkdirError)}", null, e);
            case SftpPathNotFoundException:
                return new TransferFailure(TransferErrorIds.CopyFailed, $"{what}: no such file or directory.{MkdirNote(mkdirError)}", null, e);
            case SshException or IOException or UnauthorizedAccessException:
                return new TransferFailure(TransferErrorIds.CopyFailed, $"{what}: {e.Message.TrimEnd('.')}.{MkdirNote(mkdirError)}", null, e);
            case MoltarException m:
                return m;
            default:
                return new TransferFailure(TransferErrorIds.CopyFailed, $"{what}: {e.GetType().Name}: {e.Message}", null, e);
        }
    }

    private static string MkdirNote(string? mkdirError) => mkdirError is null ? "" : $" (creating the directories failed: {mkdirError})";

    private static string? FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();

    /// <summary>A hidden name in the destination's own folder, so the final rename never crosses file systems.</summary>
    private static string TempName() => $".moltar-{Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant()}.part";

    private void TryDeleteRemote(string path, bool directory = false)
    {
        if (_cancellationToken.IsCancellationRequested)
        {
            return; // the connection is closed; the host keeps the .part folder (private to the user)
        }

        try
        {
            if (directory)
            {
                Client.DeleteDirectory(path);
            }
            else
            {
                Client.DeleteFile(path);
            }
        }
        catch (Exception)
        {
            // Best effort: the failure being reported matters more.
        }
    }

    private static void TryDeleteLocal(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception)
        {
        }
    }

    /// <summary>Closes both connections (cancelled, or lost): this ends any SFTP call blocked in SSH.NET.</summary>
    private void Close()
    {
        _sftpConnection.Dispose();
        _shell?.Dispose();
    }

    /// <summary>Closes the SFTP channel and gives the connections back to the pool (closed if Close ran, or pooling is off).</summary>
    public void Dispose()
    {
        _registration.Dispose();
        SftpChannel.Close(_client);
        _sftpConnection.Return();
        _shell?.Return();
    }
}
