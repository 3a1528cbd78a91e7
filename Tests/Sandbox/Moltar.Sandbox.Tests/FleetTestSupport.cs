using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Moltar.Sandbox.Hosts;
using Xunit;
using Xunit.Abstractions;

namespace Moltar.Sandbox.Tests;

/// <summary>Helpers for the sshd fleet tests: skipping, temp dirs, running ssh/sftp and other programs.</summary>
internal static class FleetTestSupport
{
    /// <summary>
    /// Why fleet tests cannot run here, or null. Own-root hosts need root; every fleet test needs
    /// the OpenSSH client too.
    /// </summary>
    public static string? SkipReason(bool ownRoot, params string[] programs)
    {
        var missing = SshFleet.MissingPrerequisites(ownRoot).ToList();
        foreach (var program in new[] { "ssh", "sftp" }.Concat(programs))
            if (Which(program) is null) missing.Add($"{program} on PATH");
        return missing.Count == 0 ? null : "sandbox hosts cannot run here; missing: " + string.Join("; ", missing);
    }

    /// <summary>
    /// True when the test must stop because the fleet cannot run here: says so in the test output,
    /// and fails instead when CI=true (CI runs as root and must run every fleet test).
    /// </summary>
    public static bool Skipped(string? reason, ITestOutputHelper output)
    {
        if (reason is null) return false;
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            Assert.Fail("CI must run the sandbox fleet tests, but " + reason);
        output.WriteLine("SKIPPED: " + reason);
        Console.Error.WriteLine($"SKIPPED fleet test: {reason}");
        return true;
    }

    public static string NewTempDir(string purpose)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"moltar-{purpose}-{Guid.NewGuid():N}"[..30]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static void DeleteDir(string? dir)
    {
        if (dir is null || !Directory.Exists(dir)) return;
        try { Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public string[] Lines => Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
    }

    public static async Task<Result> RunAsync(string program, IEnumerable<string> args, string? stdin = null, int timeoutSeconds = 180)
    {
        var psi = new ProcessStartInfo(program)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish within {timeoutSeconds} s");
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>OpenSSH client options that use only the fleet's key and known_hosts, strictly.</summary>
    public static List<string> SshOptions(SshFleet fleet, string? knownHosts = null) =>
    [
        "-F", "/dev/null",
        "-i", fleet.ClientKeyPath,
        "-o", "IdentitiesOnly=yes",
        "-o", "UserKnownHostsFile=" + (knownHosts ?? fleet.KnownHostsPath),
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=15",
        "-o", "LogLevel=ERROR",
    ];

    public static Task<Result> SshAsync(SshFleet fleet, RunningHost host, string command, string? knownHosts = null)
    {
        var args = SshOptions(fleet, knownHosts);
        args.AddRange(["-p", host.Port.ToString(), $"{fleet.User}@{host.Address}", command]);
        return RunAsync("ssh", args);
    }

    public static Task<Result> SftpAsync(SshFleet fleet, RunningHost host, string batch)
    {
        var args = SshOptions(fleet);
        args.AddRange(["-P", host.Port.ToString(), "-b", "-", $"{fleet.User}@{host.Address}"]);
        return RunAsync("sftp", args, stdin: batch);
    }

    /// <summary>Connects and reads the first line; null when the connection is refused or closed.</summary>
    public static async Task<string?> BannerAsync(string address, int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var cts = new CancellationTokenSource(HangGuard.Limit);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(address), port), cts.Token);
            var buffer = new byte[256];
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            return n == 0 ? null : System.Text.Encoding.ASCII.GetString(buffer, 0, n).Split('\n')[0].TrimEnd('\r');
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>True when connecting to address:port is refused right away (nothing listens there).</summary>
    public static async Task<bool> RefusesAsync(string address, int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(address), port));
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
    }

    public static bool ProcessExists(int pid)
    {
        // A zombie is gone for our purposes: it holds no namespaces, mounts or sockets any more.
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var close = stat.LastIndexOf(')');
            return stat[close + 2] != 'Z';
        }
        catch (IOException) { return false; }
    }

    public static IReadOnlyList<int> ChildrenOf(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/task/{pid}/children")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        }
        catch (IOException) { return []; }
    }

    /// <summary>Mount points of this process's namespace that lie under <paramref name="dir"/>.</summary>
    public static IReadOnlyList<string> MountsUnder(string dir) =>
        File.ReadAllLines("/proc/self/mountinfo")
            .Select(l => l.Split(' ')[4])
            .Where(m => m == dir || m.StartsWith(dir + "/", StringComparison.Ordinal))
            .ToArray();

    /// <summary>
    /// A flat APT repository with one tiny package, <paramref name="package"/> 1.0.0, which installs
    /// /opt/PACKAGE/VERSION. Built with dpkg-deb and dpkg-scanpackages --multiversion.
    /// </summary>
    public static async Task<string> BuildAptRepositoryAsync(string dir, string package)
    {
        var repo = Path.Combine(dir, "repo");
        var root = Path.Combine(dir, "pkg");
        Directory.CreateDirectory(repo);
        Directory.CreateDirectory(Path.Combine(root, "DEBIAN"));
        Directory.CreateDirectory(Path.Combine(root, "opt", package));
        await File.WriteAllTextAsync(Path.Combine(root, "opt", package, "VERSION"), "1.0.0\n");
        await File.WriteAllTextAsync(Path.Combine(root, "DEBIAN", "control"),
            $"Package: {package}\nVersion: 1.0.0\nArchitecture: all\nMaintainer: Moltar tests <tests@example.invalid>\nDescription: fleet test package\n");
        var built = await RunAsync("dpkg-deb", ["--build", "--root-owner-group", root, Path.Combine(repo, $"{package}_1.0.0_all.deb")]);
        Assert.True(built.ExitCode == 0, built.ToString());
        var scan = await RunAsync("sh", ["-c", "cd \"$1\" && dpkg-scanpackages --multiversion . /dev/null > Packages", "sh", repo]);
        Assert.True(scan.ExitCode == 0, scan.ToString());
        if (OperatingSystem.IsWindows()) return repo;
        foreach (var path in Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories).Append(dir))
            File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.OtherRead | UnixFileMode.GroupRead
                | (Directory.Exists(path) ? UnixFileMode.OtherExecute | UnixFileMode.GroupExecute : 0));
        return repo;
    }
}
