using Moltar.Engine.Context;
using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Context;

/// <summary>Every file Moltar reads refuses a FIFO (which would hang the prompt) and a file past its size limit, with a clear message.</summary>
public sealed class BoundedFileTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("moltar-bounded-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Fifo(string name)
    {
        string path = Path.Combine(_root, name);
        using var mkfifo = System.Diagnostics.Process.Start("mkfifo", path);
        mkfifo.WaitForExit();
        return path;
    }

    [Fact]
    public void AFifoOrADeviceIsRefusedBeforeItIsOpened()
    {
        if (OperatingSystem.IsWindows()) return;
        var fifo = Assert.Throws<FileRefusedException>(() => BoundedFile.ReadAllBytes(Fifo("pipe"), "The test file"));
        Assert.Contains("is a FIFO (named pipe), not a regular file", fifo.Message);
        var device = Assert.Throws<FileRefusedException>(() => BoundedFile.ReadAllBytes("/dev/zero", "The test file"));
        Assert.Contains("is a device", device.Message);
        // A link to a FIFO is refused too.
        string link = Path.Combine(_root, "link");
        File.CreateSymbolicLink(link, Path.Combine(_root, "pipe"));
        Assert.Throws<FileRefusedException>(() => BoundedFile.ReadAllBytes(link, "The test file"));
    }

    [Fact]
    public void AFileLargerThanTheLimitIsRefused()
    {
        string big = Path.Combine(_root, "big");
        File.WriteAllBytes(big, new byte[2048]);
        Assert.Contains("is larger than 1 KiB", Assert.Throws<FileRefusedException>(() => BoundedFile.ReadAllBytes(big, "The test file", 1024)).Message);
        Assert.Equal(2048, BoundedFile.ReadAllBytes(big, "The test file", 4096).Length);
    }

    [Fact]
    public void SshConfigKnownHostsAndKeyFilesThatAreFifosGiveClearErrorsNotAHang()
    {
        if (OperatingSystem.IsWindows()) return;
        var notes = new List<string>();
        Assert.Null(KnownHosts.ReadShared(Fifo("known_hosts"), notes));
        Assert.Contains(notes, n => n.Contains("known_hosts") && n.Contains("FIFO"));

        var configNotes = new List<string>();
        SshConfigFiles.LoadConfig(Fifo("config"), "/nonexistent", _root, _root, configNotes.Add);
        Assert.Contains(configNotes, n => n.Contains("FIFO"));

        var key = Assert.Throws<SshFailure>(() => KeyFile.Open(Fifo("id_ed25519"), null));
        Assert.Equal(SshErrorIds.KeyFileInvalid, key.ErrorId);
        Assert.Contains("FIFO", key.Message);
    }
}
