using Moltar.Sandbox.Hosts;
using Xunit;
using Xunit.Abstractions;
using static Moltar.Sandbox.Tests.FleetTestSupport;

namespace Moltar.Sandbox.Tests;

/// <summary>The in-process ed25519 host keys, checked by OpenSSH's own ssh-keygen (the oracle for its formats).</summary>
public sealed class HostKeysTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = NewTempDir("hostkeys");

    public void Dispose() => DeleteDir(_dir);

    [Fact]
    public async Task SshKeygenReadsThePrivateKeyAndDerivesTheSamePublicKey()
    {
        if (Skipped(Which("ssh-keygen") is null ? "ssh-keygen is not on PATH (apt-get install openssh-client)" : null, output)) return;
        var path = Path.Combine(_dir, "ssh_host_ed25519_key");

        var line = HostKeys.WriteEd25519(path, "web-1");

        var derived = await RunAsync("ssh-keygen", ["-y", "-f", path]);
        Assert.True(derived.ExitCode == 0, derived.ToString());
        var fields = line.Split(' ');
        Assert.Equal(["ssh-ed25519", fields[1]], derived.Output.Trim().Split(' ').Take(2));
        Assert.Equal(line + "\n", File.ReadAllText(path + ".pub"));
        Assert.EndsWith(" web-1", line);
        var fingerprint = await RunAsync("ssh-keygen", ["-l", "-f", path + ".pub"]);
        Assert.Contains(SshFleet.Fingerprint(fields[1]), fingerprint.Output);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void EveryKeyIsNew()
    {
        var a = HostKeys.WriteEd25519(Path.Combine(_dir, "a"), "a");
        var b = HostKeys.WriteEd25519(Path.Combine(_dir, "b"), "b");
        Assert.NotEqual(a.Split(' ')[1], b.Split(' ')[1]);
        Assert.NotEqual(File.ReadAllText(Path.Combine(_dir, "a")), File.ReadAllText(Path.Combine(_dir, "b")));
    }
}
