using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Moltar.Sandbox.Hosts;
using Xunit;
using Xunit.Abstractions;
using static Moltar.Sandbox.Tests.FleetTestSupport;

namespace Moltar.Sandbox.Tests;

/// <summary>Starting, failing, disposing and crash clean-up of fleets; each test has its own fleet.</summary>
public sealed class FleetLifecycleTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _state = NewTempDir("fleetlife");

    public void Dispose() => DeleteDir(_state);

    [Fact]
    public async Task DisposeStopsEveryHostByPidAndLeavesNoMounts()
    {
        if (Skipped(SkipReason(ownRoot: true), output)) return;
        var addresses = SshFleet.FreeAddresses(2, 22, first: "127.0.78.1");
        var fleet = await SshFleet.StartAsync(new FleetOptions(_state), [new("life-1", addresses[0]), new("life-2", addresses[1])]);
        var hosts = fleet.Hosts;
        var pids = hosts.Select(h => h.Pid).Concat(hosts.SelectMany(h => ChildrenOf(h.Pid))).ToArray();
        Assert.Equal(4, pids.Length); // per host: unshare and the namespace's PID 1 (sshd)
        Assert.All(pids, pid => Assert.True(ProcessExists(pid)));
        Assert.Equal(2, File.ReadAllLines(Path.Combine(_state, "hosts.pids")).Length);
        foreach (var h in hosts) Assert.StartsWith("SSH-2.0-OpenSSH", await BannerAsync(h.Address, h.Port));

        await fleet.DisposeAsync();

        Assert.All(pids, pid => Assert.False(ProcessExists(pid), $"pid {pid} survived DisposeAsync"));
        foreach (var h in hosts) Assert.True(await RefusesAsync(h.Address, h.Port), $"{h.Name} still accepts connections");
        Assert.Empty(MountsUnder(_state));
        Assert.False(File.Exists(Path.Combine(_state, "hosts.pids")));
        await fleet.DisposeAsync(); // twice is fine
    }

    [Fact]
    public async Task AHostThatCannotStartIsNamedAndTheOthersAreStopped()
    {
        if (Skipped(SkipReason(ownRoot: true), output)) return;
        var addresses = SshFleet.FreeAddresses(2, 22, first: "127.0.78.10");
        using var squatter = new TcpListener(IPAddress.Parse(addresses[1]), 22);
        squatter.Start();

        var error = await Assert.ThrowsAsync<HostStartException>(() =>
            SshFleet.StartAsync(new FleetOptions(_state), [new("life-ok", addresses[0]), new("life-taken", addresses[1])]));

        Assert.Equal("life-taken", error.HostName);
        Assert.Contains(addresses[1] + ":22", error.Message);
        Assert.True(await RefusesAsync(addresses[0], 22), "the host that did start was left running");
        Assert.Empty(MountsUnder(_state));
    }

    [Fact]
    public async Task AHostWhoseSshdDiesReportsTheTailOfItsLog()
    {
        if (Skipped(SkipReason(ownRoot: true), output)) return;
        var address = SshFleet.NextFreeAddress(22, first: "127.0.78.20");
        // A damaged host key (kept, never silently replaced: clients pin it) makes sshd exit at once.
        var hostDir = Path.Combine(_state, "hosts", "life-broken");
        Directory.CreateDirectory(hostDir);
        await File.WriteAllTextAsync(Path.Combine(hostDir, "ssh_host_ed25519_key"), "not a key\n");
        await File.WriteAllTextAsync(Path.Combine(hostDir, "ssh_host_ed25519_key.pub"), "ssh-ed25519 AAAA broken\n");

        var failure = await Assert.ThrowsAsync<HostStartException>(() =>
            SshFleet.StartAsync(new FleetOptions(_state), [new HostRequest("life-broken", address)]));

        Assert.Equal("life-broken", failure.HostName);
        Assert.Contains($"'life-broken' ({address}:22)", failure.Message);
        Assert.Contains("sshd.log", failure.Message);
        Assert.Contains("no hostkeys available", failure.LogTail);
        Assert.Contains(failure.LogTail, failure.Message);
        Assert.Empty(MountsUnder(_state));
    }

    [Fact]
    public async Task EveryHostThatFailsIsTriedOnceMoreThenNamedWithItsLog()
    {
        if (Skipped(SkipReason(ownRoot: true), output)) return;
        var addresses = SshFleet.FreeAddresses(3, 22, first: "127.0.78.40");
        foreach (var name in new[] { "life-bad-1", "life-bad-2" })
        {
            var hostDir = Path.Combine(_state, "hosts", name);
            Directory.CreateDirectory(hostDir);
            await File.WriteAllTextAsync(Path.Combine(hostDir, "ssh_host_ed25519_key"), "not a key\n");
            await File.WriteAllTextAsync(Path.Combine(hostDir, "ssh_host_ed25519_key.pub"), "ssh-ed25519 AAAA broken\n");
        }

        var failure = await Assert.ThrowsAsync<HostStartException>(() => SshFleet.StartAsync(new FleetOptions(_state),
            [new("life-good", addresses[0]), new("life-bad-1", addresses[1]), new("life-bad-2", addresses[2])]));

        output.WriteLine(failure.Message);
        Assert.Equal(["life-bad-1", "life-bad-2"], failure.Failures.Select(f => f.HostName).Order());
        Assert.StartsWith("2 of 3 sandbox hosts failed to start: ", failure.Message);
        Assert.All(failure.Failures, f => Assert.Contains("no hostkeys available", f.LogTail));
        Assert.Contains($"'life-bad-1' ({addresses[1]}:22)", failure.Message);
        Assert.Contains($"'life-bad-2' ({addresses[2]}:22)", failure.Message);
        foreach (var name in new[] { "life-bad-1", "life-bad-2" })
        {
            // Tried twice: the first try's log is kept beside the second's.
            var first = await File.ReadAllTextAsync(Path.Combine(_state, "hosts", name, "sshd.log.1"));
            Assert.Contains("no hostkeys available", first);
            Assert.Contains("no hostkeys available", await File.ReadAllTextAsync(Path.Combine(_state, "hosts", name, "sshd.log")));
        }
        Assert.True(await RefusesAsync(addresses[0], 22), "the host that did start was left running");
        Assert.Empty(MountsUnder(_state));
    }

    [Fact]
    public async Task HostsLeftByACrashedRunAreKilledByPidOnTheNextStart()
    {
        if (Skipped(SkipReason(ownRoot: true), output)) return;
        var address = SshFleet.NextFreeAddress(22, first: "127.0.78.30");
        // A host started straight from the script, without the owner watch, as a crashed run leaves it.
        var keygen = await RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(_state, "client_ed25519")]);
        Assert.True(keygen.ExitCode == 0, keygen.ToString());
        var orphan = await RunAsync("sh", ["-c", "setsid /bin/bash \"$1\" --state-dir \"$2\" --name life-orphan --address \"$3\" --fresh < /dev/null > /dev/null 2>&1 & echo $!",
            "sh", SshFleet.ScriptPath, _state, address]);
        var pid = int.Parse(orphan.Output.Trim());
        var clock = Stopwatch.StartNew();
        while (await BannerAsync(address, 22) is null && clock.Elapsed < HangGuard.Limit) await Task.Delay(20);
        Assert.StartsWith("SSH-2.0-", await BannerAsync(address, 22));
        var startTime = File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[19];
        await File.WriteAllTextAsync(Path.Combine(_state, "hosts.pids"), $"{pid} {startTime} life-orphan\n");

        await using var fleet = await SshFleet.StartAsync(new FleetOptions(_state), [new HostRequest("life-orphan", address)]);

        Assert.False(ProcessExists(pid), "the crashed run's host is still running");
        Assert.NotEqual(pid, fleet.Hosts[0].Pid);
        var answer = await SshAsync(fleet, fleet.Hosts[0], "hostname");
        Assert.Equal(["life-orphan"], answer.Lines);
    }

    [Fact]
    public async Task SharedRootHostsLogInAsTheCurrentUserOnTheMachine()
    {
        if (Skipped(SkipReason(ownRoot: false), output)) return;
        var address = SshFleet.NextFreeAddress(2222, first: "127.0.79.1");
        await using var fleet = await SshFleet.StartAsync(new FleetOptions(_state, OwnRoot: false), [new HostRequest("shared-1", address, 2222)]);
        var host = fleet.Hosts[0];
        Assert.Equal(Environment.UserName, fleet.User);
        Assert.Equal($"[{address}]:2222 {host.HostPublicKey}", File.ReadAllText(fleet.KnownHostsPath).Trim());

        var answer = await SshAsync(fleet, host, $"id -un; hostname; test -e {fleet.ClientKeyPath} && echo same-filesystem");
        Assert.True(answer.ExitCode == 0, answer.ToString());
        Assert.Equal([Environment.UserName, Environment.MachineName, "same-filesystem"], answer.Lines);

        await fleet.StopHostAsync("shared-1");
        Assert.False(ProcessExists(host.Pid));
        Assert.True(await RefusesAsync(address, 2222));
        var again = await fleet.StartHostAsync("shared-1");
        Assert.Equal(host.HostPublicKey, again.HostPublicKey);
    }

    [Fact]
    public void FreeAddressesSkipAddressesInUse()
    {
        using var busy = new TcpListener(IPAddress.Parse("127.0.80.1"), 0);
        busy.Start();
        var port = ((IPEndPoint)busy.LocalEndpoint).Port;

        var free = SshFleet.FreeAddresses(3, port, exclude: ["127.0.80.3"], first: "127.0.80.1");

        Assert.Equal(["127.0.80.2", "127.0.80.4", "127.0.80.5"], free);
        Assert.Equal("127.0.80.2", SshFleet.NextFreeAddress(port, first: "127.0.80.1"));
        Assert.Equal(["127.0.1.254", "127.0.2.1"], SshFleet.FreeAddresses(2, 1, first: "127.0.1.254"));
    }

    [Fact]
    public async Task BadRequestsAreRefusedBeforeAnythingStarts()
    {
        var options = new FleetOptions(_state);
        await Assert.ThrowsAsync<ArgumentException>(() => SshFleet.StartAsync(options, [new HostRequest("bad name", "127.0.78.40")]));
        await Assert.ThrowsAsync<ArgumentException>(() => SshFleet.StartAsync(options, [new HostRequest("h", "10.0.0.1")]));
        await Assert.ThrowsAsync<ArgumentException>(() => SshFleet.StartAsync(options, [new HostRequest("h", "127.0.78.40"), new HostRequest("h", "127.0.78.41")]));
        await Assert.ThrowsAsync<ArgumentException>(() => SshFleet.StartAsync(options, [new HostRequest("a", "127.0.78.40"), new HostRequest("b", "127.0.78.40")]));
        await Assert.ThrowsAsync<ArgumentException>(() => SshFleet.StartAsync(new FleetOptions(_state + ",x"), []));
        Assert.False(Directory.Exists(Path.Combine(_state, "hosts")));
    }
}
