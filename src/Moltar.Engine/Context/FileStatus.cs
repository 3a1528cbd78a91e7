using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.AccessControl;
using System.Security.Principal;

namespace Moltar.Engine.Context;

/// <summary>
/// Who owns a file or folder, what kind of file it is and who may write it — what .NET's public API does not say
/// (it has the permission bits but neither the owner nor the file type). Read with lstat, so a symbolic link is
/// described itself, not what it points to. A platform this cannot read fails loudly (PlatformNotSupportedException),
/// never as "owned by you".
/// </summary>
public sealed record FileStatus(FileKind Kind, bool OwnedByCurrentUser, bool WritableByOthers, long Size)
{
    /// <summary>The status of <paramref name="path"/>; null when it does not exist.</summary>
    public static FileStatus? Of(string path)
    {
        if (OperatingSystem.IsWindows())
            return OfWindows(path);
        if (OperatingSystem.IsLinux())
            return Unix.Linux(path);
        if (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())
            return Unix.Darwin(path);
        throw new PlatformNotSupportedException($"Moltar cannot read file ownership on {RuntimeInformation.OSDescription}.");
    }

    private static FileStatus? OfWindows(string path)
    {
        FileSystemInfo info = Directory.Exists(path) ? new DirectoryInfo(path) : new FileInfo(path);
        if (!info.Exists)
            return null;
        var kind = info.Attributes.HasFlag(FileAttributes.ReparsePoint) ? FileKind.SymbolicLink
            : info is DirectoryInfo ? FileKind.Directory : FileKind.Regular;
        if (!OperatingSystem.IsWindows())
            throw new PlatformNotSupportedException();
        FileSystemSecurity security = info is DirectoryInfo d ? d.GetAccessControl(AccessControlSections.Owner) : ((FileInfo)info).GetAccessControl(AccessControlSections.Owner);
        var owner = security.GetOwner(typeof(SecurityIdentifier)) as SecurityIdentifier;
        using var identity = WindowsIdentity.GetCurrent();
        // As git's safe.directory: a folder created by an elevated administrator is owned by Administrators.
        bool owned = owner is not null && identity.User is not null && (owner.Equals(identity.User)
            || (owner.IsWellKnown(WellKnownSidType.BuiltinAdministratorsSid) && new WindowsPrincipal(identity).IsInRole(WindowsBuiltInRole.Administrator)));
        return new FileStatus(kind, owned, WritableByOthers: false, info is FileInfo f ? f.Length : 0);
    }

    private static class Unix
    {
        private const int AtFdCwd = -100;
        private const int AtSymlinkNoFollow = 0x100;
        private const uint StatxBasicStats = 0x7ff;

#pragma warning disable CA2101 // the rule guards Windows' ANSI code page; on Linux and macOS .NET passes these paths as UTF-8, as libc wants
        [DllImport("libc.so.6", EntryPoint = "statx", SetLastError = true)]
        private static extern int StatX(int directory, string path, int flags, uint mask, byte[] buffer);

        [DllImport("libc.so.6", EntryPoint = "geteuid")]
        private static extern uint LinuxEffectiveUser();

        [DllImport("libSystem.dylib", EntryPoint = "lstat", SetLastError = true)]
        private static extern int DarwinLStatArm(string path, byte[] buffer);

        [DllImport("libSystem.dylib", EntryPoint = "lstat$INODE64", SetLastError = true)]
        private static extern int DarwinLStatX64(string path, byte[] buffer);
#pragma warning restore CA2101

        [DllImport("libSystem.dylib", EntryPoint = "geteuid")]
        private static extern uint DarwinEffectiveUser();

        private const int NoSuchFile = 2, NotADirectory = 20;

        public static FileStatus? Linux(string path)
        {
            // struct statx has the same layout on every Linux architecture (unlike struct stat).
            if (!BitConverter.IsLittleEndian)
                throw new PlatformNotSupportedException("Moltar reads file ownership on little-endian Linux only.");
            var buffer = new byte[256];
            if (StatX(AtFdCwd, path, AtSymlinkNoFollow, StatxBasicStats, buffer) != 0)
                return Missing(path);
            uint uid = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(20));
            uint mode = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(28));
            long size = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(40));
            return Make(mode, uid, LinuxEffectiveUser(), size);
        }

        public static FileStatus? Darwin(string path)
        {
            // struct stat with 64-bit inodes: st_mode (u16) at 4, st_uid (u32) at 16, st_size (i64) at 96.
            var buffer = new byte[144];
            int result = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? DarwinLStatX64(path, buffer) : DarwinLStatArm(path, buffer);
            if (result != 0)
                return Missing(path);
            uint mode = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(4));
            uint uid = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(16));
            long size = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(96));
            return Make(mode, uid, DarwinEffectiveUser(), size);
        }

        private static FileStatus? Missing(string path)
        {
            int error = Marshal.GetLastPInvokeError();
            if (error is NoSuchFile or NotADirectory)
                return null;
            throw new IOException($"Cannot read the status of '{path}' (errno {error}).");
        }

        private static FileStatus Make(uint mode, uint uid, uint currentUser, long size)
        {
            var kind = (mode & 0xF000) switch
            {
                0x8000 => FileKind.Regular,
                0x4000 => FileKind.Directory,
                0xA000 => FileKind.SymbolicLink,
                0x1000 => FileKind.Fifo,
                0x2000 or 0x6000 => FileKind.Device,
                0xC000 => FileKind.Socket,
                _ => throw new IOException($"Unknown file type in mode {mode:x}: the status could not be read reliably."),
            };
            // Group- or world-writable: someone else can put files there.
            bool writableByOthers = (mode & 0x12) != 0;
            return new FileStatus(kind, uid == currentUser, writableByOthers, size);
        }
    }
}

public enum FileKind
{
    Regular,
    Directory,
    SymbolicLink,
    Fifo,
    Device,
    Socket,
}
