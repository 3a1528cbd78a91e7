using Renci.SshNet;
using Renci.SshNet.Common;
using Renci.SshNet.Sftp;

namespace Moltar.Engine.Transfer;

/// <summary>
/// The remote file system seen through SFTP. SSH.NET resolves every path through the server's realpath before
/// it stats it, so Stat follows symlinks and gives the canonical path; listings report links as links.
/// </summary>
internal sealed class SftpRemoteFileSystem(SftpClient client) : IRemoteFileSystem
{
    public string Home { get; } = client.WorkingDirectory;

    public RemoteEntry? Stat(string path)
    {
        try
        {
            var file = client.Get(path);
            return Entry(RemotePath.GetFileName(path), file.FullName, file.Attributes);
        }
        catch (SftpPathNotFoundException)
        {
            return null;
        }
        catch (SftpPermissionDeniedException e)
        {
            throw new TransferFailure(TransferErrorIds.CopyFailed, $"Permission denied reading '{path}'.", path, e);
        }
    }

    public IReadOnlyList<RemoteEntry> List(string directory)
    {
        try
        {
            return client.ListDirectory(directory).Select(f => Entry(f.Name, f.FullName, f.Attributes)).ToList();
        }
        catch (SftpPathNotFoundException e)
        {
            throw new TransferFailure(TransferErrorIds.CopyFailed, $"'{directory}' does not exist.", directory, e);
        }
        catch (SftpPermissionDeniedException e)
        {
            throw new TransferFailure(TransferErrorIds.CopyFailed, $"Permission denied listing '{directory}'.", directory, e);
        }
    }

    internal static RemoteEntry Entry(string name, string fullPath, SftpFileAttributes attributes)
    {
        var kind = attributes.IsSymbolicLink ? RemoteEntryKind.Symlink
            : attributes.IsDirectory ? RemoteEntryKind.Directory
            : attributes.IsRegularFile ? RemoteEntryKind.File
            : RemoteEntryKind.Other;
        return new RemoteEntry(name, fullPath, kind, attributes.Size, ModeOf(attributes));
    }

    internal static int ModeOf(SftpFileAttributes a)
    {
        int mode = 0;
        void Bit(bool set, int value)
        {
            if (set)
            {
                mode |= value;
            }
        }

        Bit(a.IsUIDBitSet, 0x800);
        Bit(a.IsGroupIDBitSet, 0x400);
        Bit(a.IsStickyBitSet, 0x200);
        Bit(a.OwnerCanRead, 0x100);
        Bit(a.OwnerCanWrite, 0x80);
        Bit(a.OwnerCanExecute, 0x40);
        Bit(a.GroupCanRead, 0x20);
        Bit(a.GroupCanWrite, 0x10);
        Bit(a.GroupCanExecute, 0x8);
        Bit(a.OthersCanRead, 0x4);
        Bit(a.OthersCanWrite, 0x2);
        Bit(a.OthersCanExecute, 0x1);
        return mode;
    }
}
