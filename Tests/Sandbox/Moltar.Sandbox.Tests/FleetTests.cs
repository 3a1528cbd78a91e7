using Moltar.Sandbox.Hosts;
using Xunit;
using Xunit.Abstractions;
using static Moltar.Sandbox.Tests.FleetTestSupport;

namespace Moltar.Sandbox.Tests;

/// <summary>Three own-root hosts with a local APT repository, started once for <see cref="FleetTests"/>.</summary>
public sealed class OwnRootFleetFixture : IAsyncLifetime
{
    public const string Package = "moltar-fleet-probe";

    public string? SkipReason { get; private set; }
    public SshFleet Fleet { get; private set; } = null!;
    public string StateDirectory { get; private set; } = "";
    private string? _repoDir;

    public async Task InitializeAsync()
    {
        SkipReason = FleetTestSupport.SkipReason(ownRoot: true, "dpkg-deb", "dpkg-scanpackages", "ssh-keygen");
        if (SkipReason is not null) return;
        _repoDir = NewTempDir("fleetrepo");
        var repo = await BuildAptRepositoryAsync(_repoDir, Package);
        StateDirectory = NewTempDir("fleet");
        var addresses = SshFleet.FreeAddresses(3, 22, first: "127.0.77.1");
        var hosts = addresses.Select((a, i) => new HostRequest($"fleet-test-{i + 1}", a)).ToArray();
        Fleet = await SshFleet.StartAsync(new FleetOptions(StateDirectory, OwnRoot: true, AptRepository: repo), hosts);
    }

    public async Task DisposeAsync()
    {
        if (Fleet is not null) await Fleet.DisposeAsync();
        DeleteDir(StateDirectory.Length > 0 ? StateDirectory : null);
        DeleteDir(_repoDir);
    }
}

/// <summary>Real sshd hosts, each with its own root filesystem, reached with the system OpenSSH client.</summary>
public sealed class FleetTests(OwnRootFleetFixture fixture, ITestOutputHelper output) : IClassFixture<OwnRootFleetFixture>
{
    private SshFleet Fleet => fixture.Fleet;

    [Fact]
    public async Task EachHostAnswersWithItsOwnNameUserAndSudo()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        var hosts = Fleet.Hosts;
        Assert.Equal(3, hosts.Count);
        Assert.Equal("ubuntu", Fleet.User);

        var results = await Task.WhenAll(hosts.Select(h => SshAsync(Fleet, h, "hostname; id -un; sudo -n true && echo sudo-ok")));
        for (var i = 0; i < hosts.Count; i++)
        {
            Assert.True(results[i].ExitCode == 0, $"{hosts[i].Name}: {results[i]}");
            Assert.Equal([hosts[i].Name, "ubuntu", "sudo-ok"], results[i].Lines);
        }
    }

    [Fact]
    public async Task EveryHostHasItsOwnHostKeyInKnownHosts()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        var hosts = Fleet.Hosts;
        Assert.Equal(hosts.Count, hosts.Select(h => h.HostPublicKey).Distinct().Count());
        Assert.All(hosts, h => Assert.StartsWith("ssh-ed25519 AAAA", h.HostPublicKey));

        var lines = File.ReadAllLines(Fleet.KnownHostsPath);
        Assert.Equal(hosts.Select(h => $"{h.Address} {h.HostPublicKey}"), lines);

        // The fingerprint is OpenSSH's, computed from the key the host really serves.
        var scan = await RunAsync("ssh-keyscan", ["-t", "ed25519", "-p", "22", hosts[0].Address]);
        Assert.Contains(hosts[0].HostPublicKey, scan.Output);
        var keyFile = Path.Combine(fixture.StateDirectory, "probe.pub");
        await File.WriteAllTextAsync(keyFile, hosts[0].HostPublicKey + "\n");
        var fingerprint = await RunAsync("ssh-keygen", ["-l", "-E", "sha256", "-f", keyFile]);
        Assert.Equal(hosts[0].HostKeyFingerprint, fingerprint.Output.Split(' ')[1]);

        // Strict checking really checks: host 2's key under host 1's address is refused.
        var wrong = Path.Combine(fixture.StateDirectory, "known_hosts_wrong");
        await File.WriteAllTextAsync(wrong, $"{hosts[0].Address} {hosts[1].HostPublicKey}\n");
        var refused = await SshAsync(Fleet, hosts[0], "true", knownHosts: wrong);
        Assert.Equal(255, refused.ExitCode);
        Assert.Contains("REMOTE HOST IDENTIFICATION HAS CHANGED", refused.Error);
    }

    [Fact]
    public async Task FilesWrittenOnOneHostStayOnThatHost()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        var hosts = Fleet.Hosts;
        var marker = $"moltar-marker-{Guid.NewGuid():N}";

        var write = await SshAsync(Fleet, hosts[0],
            $"echo here > ~/{marker} && echo here | sudo tee /etc/{marker} > /dev/null && cat ~/{marker} /etc/{marker}");
        Assert.True(write.ExitCode == 0, write.ToString());
        Assert.Equal(["here", "here"], write.Lines);

        var other = await SshAsync(Fleet, hosts[1], $"test ! -e ~/{marker} && test ! -e /etc/{marker} && echo absent");
        Assert.True(other.ExitCode == 0, other.ToString());
        Assert.Equal(["absent"], other.Lines);

        Assert.False(File.Exists($"/etc/{marker}"), "a host wrote into the machine's /etc");
        Assert.False(File.Exists($"/home/ubuntu/{marker}"), "a host wrote into the machine's /home");
        Assert.False(File.Exists($"/etc/sudoers.d/90-moltar-sandbox"), "host provisioning leaked onto the machine");

        // The sandbox's own files (client key, other hosts' disks) are not visible inside a host.
        var state = await SshAsync(Fleet, hosts[0], $"test ! -e {Fleet.ClientKeyPath} && test ! -e {fixture.StateDirectory}/hosts && echo hidden");
        Assert.Equal(["hidden"], state.Lines);
    }

    [Fact]
    public async Task EachHostRunsInItsOwnNamespacesWithSshdAsPid1()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        var host = Fleet.Hosts[2];
        var result = await SshAsync(Fleet, host, "cat /proc/1/comm; stat -f -c %T /; cat /etc/hosts; ls /etc/ssh/ | grep -c ssh_host_");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("sshd", result.Lines[0]);
        Assert.Equal("overlayfs", result.Lines[1]);
        Assert.Contains(result.Lines, l => l.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries) is [var a, var n] && a == host.Address && n == host.Name);
        Assert.Equal("2", result.Lines[^1]); // only this host's ed25519 key pair, none of the machine's
        Assert.Empty(MountsUnder(fixture.StateDirectory)); // the hosts' mounts live in their own namespaces
    }

    [Fact]
    public async Task SftpUploadsAndDownloads()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        var host = Fleet.Hosts[0];
        var local = Path.Combine(fixture.StateDirectory, "upload.txt");
        var back = Path.Combine(fixture.StateDirectory, "download.txt");
        var content = $"sftp {Guid.NewGuid()}\n";
        await File.WriteAllTextAsync(local, content);

        var sftp = await SftpAsync(Fleet, host, $"put {local} /tmp/upload.txt\nget /tmp/upload.txt {back}\n");
        Assert.True(sftp.ExitCode == 0, sftp.ToString());
        Assert.Equal(content, await File.ReadAllTextAsync(back));
        var cat = await SshAsync(Fleet, host, "cat /tmp/upload.txt");
        Assert.Equal(content, cat.Output);
    }

    [Fact]
    public async Task AptGetInstallsFromTheLocalRepositoryOnThatHostOnly()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        var host = Fleet.Hosts[2];
        var package = OwnRootFleetFixture.Package;
        var install = await SshAsync(Fleet, host,
            $"sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package} > /dev/null " +
            $"&& cat /opt/{package}/VERSION && dpkg-query -W -f '${{Status}}\\n' {package}");
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Equal(["1.0.0", "install ok installed"], install.Lines);

        Assert.False(Directory.Exists($"/opt/{package}"), "the package was installed on the machine");
        var other = await SshAsync(Fleet, Fleet.Hosts[1], $"test ! -e /opt/{package} && echo absent");
        Assert.Equal(["absent"], other.Lines);
    }

    [Fact]
    public async Task AStoppedHostRefusesConnectionsAndComesBackWithTheSameKeyAndDisk()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        var before = Fleet.Hosts[1];
        var touch = await SshAsync(Fleet, before, "touch ~/kept-across-restart && echo ok");
        Assert.Equal(["ok"], touch.Lines);
        var namespaceInit = ChildrenOf(before.Pid);
        Assert.Single(namespaceInit);

        await Fleet.StopHostAsync(before.Name);

        Assert.False(ProcessExists(before.Pid), "the host's process is still running");
        Assert.False(ProcessExists(namespaceInit[0]), "the host's sshd is still running");
        Assert.True(await RefusesAsync(before.Address, before.Port), "a stopped host still accepts connections");
        Assert.Equal(0, Fleet.Hosts[1].Pid);
        Assert.DoesNotContain(File.ReadAllLines(Path.Combine(fixture.StateDirectory, "hosts.pids")), l => l.EndsWith(" " + before.Name));
        foreach (var other in new[] { Fleet.Hosts[0], Fleet.Hosts[2] })
        {
            var answer = await SshAsync(Fleet, other, "hostname");
            Assert.Equal([other.Name], answer.Lines);
        }

        var after = await Fleet.StartHostAsync(before.Name);

        Assert.Equal(before with { Pid = after.Pid }, after);
        Assert.NotEqual(before.Pid, after.Pid);
        Assert.Equal(after, Fleet.Hosts[1]);
        var again = await SshAsync(Fleet, after, "hostname; test -e ~/kept-across-restart && echo kept");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal([after.Name, "kept"], again.Lines);
    }
}
