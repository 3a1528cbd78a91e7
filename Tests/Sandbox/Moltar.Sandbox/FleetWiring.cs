using Moltar.Sandbox.Hosts;

namespace Moltar.Sandbox;

/// <summary>Ties the sshd hosts (Hosts/SshFleet) to the server: start, host control, ready JSON.</summary>
public static class FleetWiring
{
    /// <summary>The sshd port: 22 when the process may bind it (root), else 2222.</summary>
    public static int DefaultPort => Environment.IsPrivilegedProcess ? 22 : 2222;

    /// <summary>
    /// Loopback addresses with nothing listening on the port (127.0.1.1, 127.0.1.2, ...). Sandboxes started at the
    /// same moment (parallel work trees) keep apart by starting elsewhere: MOLTAR_SANDBOX_FIRST_ADDRESS=127.0.40.1.
    /// </summary>
    public static IReadOnlyList<string> FreeAddresses(int count, int port) =>
        SshFleet.FreeAddresses(count, port, first: Environment.GetEnvironmentVariable("MOLTAR_SANDBOX_FIRST_ADDRESS") is { Length: > 0 } first ? first : "127.0.1.1");

    public static IReadOnlyList<string> MissingPrerequisites(bool ownRoot) => SshFleet.MissingPrerequisites(ownRoot);

    /// <summary>Starts one sshd per host (in parallel); every host has answered with its SSH banner when this returns.</summary>
    public static async Task<ISandboxHosts> StartAsync(
        SandboxOptions options, bool ownRoot, IReadOnlyList<(string Name, string InstanceId, string Address, int Port)> hosts, CancellationToken ct)
    {
        var fleetOptions = new FleetOptions(options.StateDirectory, ownRoot, options.AptRepository);
        var requests = hosts.Select(h => new HostRequest(h.Name, h.Address, h.Port)).ToArray();
        var fleet = await SshFleet.StartAsync(fleetOptions, requests, ct);
        return new SshFleetHosts(fleet, hosts.ToDictionary(h => h.Name, h => h.InstanceId, StringComparer.Ordinal));
    }

    private sealed class SshFleetHosts(SshFleet fleet, IReadOnlyDictionary<string, string> instanceIds) : ISandboxHosts
    {
        public string User => fleet.User;
        public string? ClientKeyPath => fleet.ClientKeyPath;
        public string? KnownHostsPath => fleet.KnownHostsPath;

        public IReadOnlyList<SandboxHostInfo> Hosts => fleet.Hosts.Select(Info).ToArray();

        public string StartupSummary => fleet.Startup.ToString();

        public double StartupSeconds => Math.Round(fleet.Startup.Total.TotalSeconds, 2);

        public bool Contains(string name) => instanceIds.ContainsKey(name);

        public Task StopHostAsync(string name, CancellationToken ct) => fleet.StopHostAsync(name, ct);

        public async Task<SandboxHostInfo> StartHostAsync(string name, CancellationToken ct) => Info(await fleet.StartHostAsync(name, ct));

        public ValueTask DisposeAsync() => fleet.DisposeAsync();

        private SandboxHostInfo Info(RunningHost host) => new(
            host.Name,
            instanceIds.GetValueOrDefault(host.Name, ""),
            host.Address,
            host.Port,
            host.Pid > 0 ? host.Pid : null,
            host.HostPublicKey,
            host.HostKeyFingerprint);
    }
}
