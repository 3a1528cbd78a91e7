using System.Text.Json;
using Moltar.Sandbox.Ec2;

namespace Moltar.Sandbox;

/// <summary>
/// The sandbox process (CONTRACT.md): an EC2-compatible endpoint on 127.0.0.1 and, with --hosts,
/// real sshd hosts behind its instances. Prints one line of ready JSON on stdout, then runs until
/// stdin reaches EOF, SIGTERM/SIGINT, or POST /_sandbox/shutdown; every host is stopped on the way out.
/// Exit codes: 0 normal stop, 1 failure, 2 bad options, 3 host prerequisites missing.
/// </summary>
public static class Program
{
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;
    public const int ExitPrerequisites = 3;

    private static readonly JsonSerializerOptions ReadyJson = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task<int> Main(string[] args)
    {
        SandboxOptions? options;
        try
        {
            options = SandboxOptions.Parse(args);
        }
        catch (UsageException ex)
        {
            await Console.Error.WriteLineAsync($"moltar-sandbox: {ex.Message}{Environment.NewLine}{SandboxOptions.Usage}");
            return ExitUsage;
        }
        if (options is null)
        {
            await Console.Out.WriteLineAsync(SandboxOptions.Usage);
            return 0;
        }

        var instances = new List<Ec2Instance>();
        if (options.FleetFile is not null)
        {
            try
            {
                instances.AddRange(FleetJson.Parse(await File.ReadAllTextAsync(options.FleetFile)));
            }
            catch (Exception ex) when (ex is FormatException or IOException or UnauthorizedAccessException)
            {
                return Fail(ExitUsage, $"Fleet file '{options.FleetFile}': {ex.Message}");
            }
        }

        var ownRoot = !options.SharedRoot && Environment.IsPrivilegedProcess;
        if (options.Hosts > 0 && FleetWiring.MissingPrerequisites(ownRoot) is { Count: > 0 } missing)
        {
            return Fail(ExitPrerequisites, "Cannot start sshd hosts; missing: " + string.Join("; ", missing));
        }

        try
        {
            Directory.CreateDirectory(options.StateDirectory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Fail(ExitFailure, $"Cannot create the state folder '{options.StateDirectory}': {ex.Message}");
        }

        // Generated instances: hosts first, then synthetic ones, naming continued across both.
        var generator = new InstanceGenerator(options.Project, options.Environments, options.Clusters);
        var hostPlan = new List<(string Name, string InstanceId, string Address, int Port)>();
        if (options.Hosts > 0)
        {
            var port = FleetWiring.DefaultPort;
            IReadOnlyList<string> addresses;
            try
            {
                addresses = FleetWiring.FreeAddresses(options.Hosts, port);
            }
            catch (InvalidOperationException ex)
            {
                return Fail(ExitFailure, ex.Message);
            }
            foreach (var address in addresses)
            {
                var instance = InstanceGenerator.ForHost(generator.Next(), address);
                instances.Add(instance);
                hostPlan.Add((instance.TagValue("Name")!, instance.InstanceId, address, port));
            }
        }
        for (var i = 0; i < options.Synthetic; i++)
        {
            instances.Add(InstanceGenerator.Synthetic(generator.Next(), i));
        }

        Ec2Fleet fleet;
        try
        {
            fleet = new Ec2Fleet(instances);
        }
        catch (ArgumentException ex)
        {
            return Fail(ExitUsage, ex.Message + " (the fleet file and generated instances must not share instance ids)");
        }

        SandboxServer server;
        try
        {
            server = await SandboxServer.StartAsync(new Ec2Endpoint(fleet), options.Port);
        }
        catch (Exception ex)
        {
            return Fail(ExitFailure, $"Cannot listen on 127.0.0.1:{options.Port}: {ex.Message}");
        }

        ISandboxHosts? hosts = null;
        var exitCode = 0;
        try
        {
            if (hostPlan.Count > 0)
            {
                hosts = await FleetWiring.StartAsync(options, ownRoot, hostPlan, server.Stopping);
                await Console.Error.WriteLineAsync("moltar-sandbox: " + hosts.StartupSummary);
            }
            server.Hosts = hosts;
            if (hosts is not null)
            {
                // The SSM stand-in's agents run each command on the instance's own host, as root (sudo in own-root hosts).
                var targets = hosts.Hosts.ToDictionary(h => h.InstanceId, StringComparer.Ordinal);
                server.Ssm.Commands.Hosts = id => targets.TryGetValue(id, out var h) && hosts.ClientKeyPath is { } key && hosts.KnownHostsPath is { } known
                    ? new Ssm.SsmHostTarget(h.Address, h.Port, hosts.User, key, known, UseSudo: ownRoot)
                    : null;
            }
            server.Describe = () => new SandboxReady
            {
                Endpoint = server.EndpointUrl,
                SsmEndpoint = server.SsmEndpointUrl,
                S3Endpoint = server.S3EndpointUrl,
                Region = server.Ec2.Region,
                StateDir = options.StateDirectory,
                User = hosts?.User ?? (ownRoot || !options.SharedRoot ? "ubuntu" : Environment.UserName),
                ClientKeyPath = hosts?.ClientKeyPath,
                KnownHostsPath = hosts?.KnownHostsPath,
                Pid = Environment.ProcessId,
                Instances = fleet.Snapshot.InFleetOrder.Count,
                Hosts = hosts?.Hosts ?? [],
                StartupSeconds = hosts?.StartupSeconds,
                Startup = hosts?.StartupSummary,
            };

            var ready = JsonSerializer.Serialize(server.Describe(), ReadyJson);
            var readyFile = Path.Combine(options.StateDirectory, "sandbox.json");
            await File.WriteAllTextAsync(readyFile + ".tmp", ready + "\n");
            File.Move(readyFile + ".tmp", readyFile, overwrite: true);
            await Console.Out.WriteLineAsync(ready);
            await Console.Out.FlushAsync();

            WatchStdin(server);
            await server.WaitForShutdownAsync();
        }
        catch (OperationCanceledException) when (server.Stopping.IsCancellationRequested)
        {
            // Asked to stop while the hosts were starting.
        }
        catch (Exception ex)
        {
            exitCode = Fail(ExitFailure, ex.Message);
        }
        finally
        {
            if (hosts is not null)
            {
                try
                {
                    await hosts.DisposeAsync();
                }
                catch (Exception ex)
                {
                    exitCode = Fail(ExitFailure, "Stopping the hosts failed: " + ex.Message);
                }
            }
            await server.DisposeAsync();
        }
        return exitCode;
    }

    /// <summary>Stops the server when stdin reaches EOF (the owner closed it or went away). Data read is ignored.</summary>
    private static void WatchStdin(SandboxServer server)
    {
        var thread = new Thread(() =>
        {
            try
            {
                using var stdin = Console.OpenStandardInput();
                var buffer = new byte[4096];
                while (stdin.Read(buffer, 0, buffer.Length) > 0)
                {
                }
            }
            catch (Exception)
            {
                // An unreadable stdin counts as closed.
            }
            server.RequestShutdown();
        })
        {
            IsBackground = true,
            Name = "stdin watcher",
        };
        thread.Start();
    }

    private static int Fail(int code, string message)
    {
        Console.Error.WriteLine("moltar-sandbox: " + message);
        return code;
    }
}
