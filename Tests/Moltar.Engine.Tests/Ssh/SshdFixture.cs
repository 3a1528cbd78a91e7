using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>Why the real-sshd tests cannot run here, or null.</summary>
public static class SshdEnvironment
{
    public const string Sshd = "/usr/sbin/sshd";

    public static readonly Lazy<string?> MissingReason = new(() =>
    {
        if (!OperatingSystem.IsLinux())
        {
            return "real-sshd tests run on Linux only";
        }

        if (!File.Exists(Sshd))
        {
            return "sshd is not installed (apt-get install openssh-server)";
        }

        if (Which("ssh-keygen") is null || Which("ssh-agent") is null || Which("ssh-add") is null)
        {
            return "ssh-keygen/ssh-agent/ssh-add are not installed (apt-get install openssh-client)";
        }

        if (Environment.UserName != "root")
        {
            return "real-sshd tests log in as root and need to run as root";
        }

        return null;
    });

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':')
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}

/// <summary>
/// A fact that needs real sshd processes: skipped (visibly, with the reason) when sshd is missing, but run
/// (and failing) when CI=true, so CI never silently skips them.
/// </summary>
public sealed class SshdFactAttribute : FactAttribute
{
    public SshdFactAttribute()
    {
        if (SshdEnvironment.MissingReason.Value is { } reason && !SshdEnvironment.IsCi)
        {
            Skip = "Skipped: " + reason;
        }
    }
}

public sealed record SshdHost(string Name, string Address, int Port, Process Process, string PublicKeyLine, string Fingerprint, string LogPath)
{
    public SshTarget Target => new(Address, "i-" + Name, Name);
    public string KnownHostsLine => $"[{Address}]:{Port} {PublicKeyLine}";

    /// <summary>The sshd process itself (the fixture runs it under `timeout` so a crashed test run cannot leak it for long).</summary>
    public int SshdPid => SshdFixture.ChildrenOf(Process.Id).FirstOrDefault(p => SshdFixture.Comm(p) == "sshd", Process.Id);
}

[CollectionDefinition("sshd")]
public sealed class SshdCollection : ICollectionFixture<SshdFixture>
{
}

/// <summary>
/// Real OpenSSH servers on 127.0.9.x:2209 (other helpers use 127.0.1.x-127.0.3.x): 20 plain hosts and two
/// bastions that allow TCP forwarding. Host keys and client keys are generated into a temp directory;
/// every sshd is killed by PID in Dispose.
/// </summary>
public sealed class SshdFixture : IDisposable
{
    public const int SshPort = 2209;
    public const string Passphrase = "moltar test passphrase";
    public const int HostCount = 20;

    private readonly List<Process> _processes = new();
    private readonly object _agentLock = new();
    private Process? _agent;

    public SshdFixture()
    {
        if (SshdEnvironment.MissingReason.Value is { } reason)
        {
            SkipReason = reason;
            if (SshdEnvironment.IsCi)
            {
                throw new InvalidOperationException("CI=true but the real-sshd tests cannot run: " + reason);
            }

            return;
        }

        Directory = System.IO.Directory.CreateTempSubdirectory("moltar-ssh-tests-").FullName;
        Home = Path.Combine(Directory, "home");
        System.IO.Directory.CreateDirectory(Path.Combine(Home, ".ssh"));
        System.IO.Directory.CreateDirectory("/run/sshd");

        ClientKey = KeyGen("client_ed25519", "ed25519");
        ClientRsaKey = KeyGen("client_rsa", "rsa", "-b", "2048");
        EncryptedKey = KeyGen("client_encrypted", "ed25519", passphrase: Passphrase);
        StrangerKey = KeyGen("stranger_ed25519", "ed25519");
        File.WriteAllText(Path.Combine(Directory, "authorized_keys"),
            string.Join("\n", new[] { ClientKey, ClientRsaKey, EncryptedKey }.Select(k => File.ReadAllText(k + ".pub").Trim())) + "\n");

        var addresses = FreeAddresses(HostCount + 2);
        var starts = new List<Func<SshdHost>>();
        for (var i = 0; i < HostCount; i++)
        {
            var name = $"host{i + 1:00}";
            var address = addresses[i];
            starts.Add(() => StartSshd(name, address, allowForwarding: false));
        }

        starts.Add(() => StartSshd("bastion", addresses[HostCount], allowForwarding: true));
        starts.Add(() => StartSshd("bastion2", addresses[HostCount + 1], allowForwarding: true));
        var started = starts.AsParallel().AsOrdered().Select(s => s()).ToList();
        Hosts = started.Take(HostCount).ToList();
        Bastion = started[HostCount];
        Bastion2 = started[HostCount + 1];

        KnownHostsPath = Path.Combine(Directory, "known_hosts");
        File.WriteAllText(KnownHostsPath, string.Join("\n", started.Select(h => h.KnownHostsLine)) + "\n");
    }

    public string? SkipReason { get; }
    public string Directory { get; } = "";
    /// <summary>An empty home: no ~/.ssh/config, no default keys, so the machine's own files never leak in.</summary>
    public string Home { get; } = "";
    public string ClientKey { get; } = "";
    public string ClientRsaKey { get; } = "";
    public string EncryptedKey { get; } = "";
    /// <summary>A key no server accepts.</summary>
    public string StrangerKey { get; } = "";
    public string KnownHostsPath { get; } = "";
    public IReadOnlyList<SshdHost> Hosts { get; } = Array.Empty<SshdHost>();
    public SshdHost Bastion { get; } = null!;
    /// <summary>A second bastion that allows forwarding (two-hop chains: Bastion, then Bastion2).</summary>
    public SshdHost Bastion2 { get; } = null!;

    public void EnsureAvailable()
    {
        if (SkipReason is not null)
        {
            throw new InvalidOperationException("real-sshd tests cannot run: " + SkipReason);
        }
    }

    /// <summary>Options that read nothing from the machine: explicit key, fixture known_hosts, no config, no agent.</summary>
    public SshOptions Options() => new()
    {
        User = "root",
        Port = SshPort,
        KeyFiles = new[] { ClientKey },
        KnownHostsPaths = new[] { KnownHostsPath },
        GlobalKnownHostsPaths = Array.Empty<string>(),
        ConfigPath = "none",
        SystemConfigPath = "none",
        UseAgent = false,
        HomeDirectory = Home,
        StrictHostKeyChecking = StrictHostKeyChecking.Yes,
        // A hang guard, not a speed target: twenty handshakes at once on a loaded machine may take many seconds.
        ConnectTimeout = HangGuard.Limit,
    };

    /// <summary>The verdict of OpenSSH's own client (the oracle): does `ssh` log in with this key and known_hosts (StrictHostKeyChecking yes unless given)?</summary>
    public static bool SshConnects(string knownHosts, SshdHost host, string key, Action<string>? log = null, string strictHostKeyChecking = "yes")
    {
        var info = new ProcessStartInfo("ssh") { RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in new[] { "-F", "none", "-i", key, "-o", $"UserKnownHostsFile={knownHosts}", "-o", "GlobalKnownHostsFile=none",
                     "-o", $"StrictHostKeyChecking={strictHostKeyChecking}", "-o", "BatchMode=yes", "-o", "IdentityAgent=none", "-p", host.Port.ToString(), $"root@{host.Address}", "true" })
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        p.StandardInput.Close();
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(true);
            throw new InvalidOperationException("ssh did not finish");
        }

        log?.Invoke($"ssh -> {p.ExitCode}: {err.Result.Trim()}");
        return p.ExitCode == 0;
    }

    /// <summary>Uploads text over the SFTP subsystem on a channel of the connection, as Copy-MoltarFile opens it (SftpChannel).</summary>
    public static void UploadOverSftp(SshConnection connection, string text, string remotePath)
    {
        var sftp = SftpChannel.Open(connection, reused: false);
        try
        {
            using var data = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
            sftp.UploadFile(data, remotePath);
        }
        finally
        {
            SftpChannel.Close(sftp);
        }
    }

    public string NewTempFile(string name, string content = "")
    {
        var path = Path.Combine(Directory, $"{Guid.NewGuid():N}-{name}");
        File.WriteAllText(path, content);
        return path;
    }

    /// <summary>An ssh-agent holding the given keys (started on first use; one per fixture; keys added are kept).</summary>
    public string AgentSocket(params string[] keys)
    {
        lock (_agentLock)
        {
            var socket = Path.Combine(Directory, "agent.sock");
            if (_agent is null)
            {
                _agent = Start("ssh-agent", "-D", "-a", socket);
                _processes.Add(_agent);
                HangGuard.Until(() => File.Exists(socket), "ssh-agent creating its socket");
            }

            foreach (var key in keys)
            {
                // ssh-add cannot be given a passphrase without a terminal: add a decrypted copy (same key).
                var plain = Path.Combine(Directory, $"agent-copy-{Guid.NewGuid():N}");
                File.Copy(key, plain);
                File.SetUnixFileMode(plain, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                if (key == EncryptedKey)
                {
                    Run(null, "ssh-keygen", "-q", "-p", "-P", Passphrase, "-N", "", "-f", plain);
                }

                Run(new Dictionary<string, string> { ["SSH_AUTH_SOCK"] = socket }, "ssh-add", "-q", plain);
                File.Delete(plain);
            }

            return socket;
        }
    }

    public void ClearAgent()
    {
        lock (_agentLock)
        {
            if (_agent is not null)
            {
                Run(new Dictionary<string, string> { ["SSH_AUTH_SOCK"] = Path.Combine(Directory, "agent.sock") }, "ssh-add", "-D");
            }
        }
    }

    /// <summary>A 127.0.9.x address where nothing listens on the test port yet (for servers a test starts itself).</summary>
    public string FreeAddress()
    {
        lock (_processes)
        {
            return FreeAddresses(1).Single();
        }
    }

    /// <summary>
    /// One more sshd on a free 127.0.9.x address, killed with the fixture. prepare(dir, hostKey, address) runs
    /// before it starts and returns sshd_config lines that go first (sshd takes the first value of a keyword).
    /// </summary>
    public SshdHost StartExtraSshd(string name, Func<string, string, string, string> prepare)
    {
        lock (_processes)
        {
            var address = FreeAddresses(1).Single();
            return StartSshd(name, address, allowForwarding: false, prepare);
        }
    }

    private SshdHost StartSshd(string name, string address, bool allowForwarding, Func<string, string, string, string>? prepare = null)
    {
        var dir = Path.Combine(Directory, name);
        System.IO.Directory.CreateDirectory(dir);
        var hostKey = Path.Combine(dir, "ssh_host_ed25519_key");
        Run(null, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", hostKey);
        var extra = prepare?.Invoke(dir, hostKey, address) ?? "";
        var log = Path.Combine(dir, "sshd.log");
        var config = Path.Combine(dir, "sshd_config");
        File.WriteAllText(config, $"""
            {extra}
            Port {SshPort}
            ListenAddress {address}
            HostKey {hostKey}
            PidFile none
            AuthorizedKeysFile {Path.Combine(Directory, "authorized_keys")}
            PermitRootLogin prohibit-password
            StrictModes no
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            UseDNS no
            X11Forwarding no
            AllowTcpForwarding {(allowForwarding ? "yes" : "no")}
            AllowAgentForwarding no
            MaxStartups 200
            MaxSessions 50
            MaxAuthTries 10
            PrintMotd yes
            LogLevel {(allowForwarding ? "DEBUG1" : "VERBOSE")}
            Subsystem sftp internal-sftp

            """);

        // `timeout` bounds the lifetime should a test run die before Dispose; it passes TERM on to sshd. Three hours:
        // the fixture lives as long as the whole engine run, which took 19 minutes beside a second suite (15 minutes
        // ended the servers under the last tests of that run).
        var process = Start("timeout", "10800", SshdEnvironment.Sshd, "-D", "-E", log, "-f", config);
        lock (_processes)
        {
            _processes.Add(process);
        }

        WaitForBanner(address, SshPort, process, log);
        var pub = File.ReadAllText(hostKey + ".pub").Trim().Split(' ');
        var line = $"{pub[0]} {pub[1]}";
        var fingerprint = SshKeyBlob.Fingerprint(Convert.FromBase64String(pub[1]));
        return new SshdHost(name, address, SshPort, process, line, fingerprint, log);
    }

    /// <summary>Waits until address:port answers with an SSH banner (any server); fails when the process exits first.</summary>
    public static void WaitForBanner(string address, int port, Process process, string log)
    {
        var deadline = DateTime.UtcNow + HangGuard.Limit;
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"sshd on {address} exited: {SafeRead(log)}");
            }

            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Parse(address), port);
                client.ReceiveTimeout = 2000;
                var buffer = new byte[64];
                var n = client.GetStream().Read(buffer, 0, buffer.Length);
                if (n > 4 && Encoding.ASCII.GetString(buffer, 0, n).StartsWith("SSH-", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (SocketException)
            {
            }
            catch (IOException)
            {
            }

            Thread.Sleep(20);
        }

        throw new InvalidOperationException($"sshd on {address}:{port} did not answer: {SafeRead(log)}");
    }

    private static string SafeRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>127.0.9.x addresses where nothing listens on the test port yet.</summary>
    private static List<string> FreeAddresses(int count)
    {
        var result = new List<string>();
        for (var i = 1; i < 255 && result.Count < count; i++)
        {
            var address = $"127.0.9.{i}";
            try
            {
                using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                probe.Bind(new IPEndPoint(IPAddress.Parse(address), SshPort));
                result.Add(address);
            }
            catch (SocketException)
            {
                // taken (perhaps an sshd leaked by an earlier run; `timeout` ends it within 15 minutes)
            }
        }

        return result;
    }

    private string KeyGen(string name, string type, string extra1 = "", string extra2 = "", string passphrase = "")
    {
        var path = Path.Combine(Directory, name);
        var args = new List<string> { "-q", "-t", type, "-N", passphrase, "-C", $"{name}@moltar-tests", "-f", path };
        if (extra1.Length > 0)
        {
            args.Add(extra1);
            args.Add(extra2);
        }

        Run(null, "ssh-keygen", args.ToArray());
        return path;
    }

    public static string Run(IDictionary<string, string>? env, string file, params string[] args)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        if (env is not null)
        {
            foreach (var (k, v) in env)
            {
                info.Environment[k] = v;
            }
        }

        using var p = Process.Start(info)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(HangGuard.Limit))
        {
            p.Kill(true);
            throw new InvalidOperationException($"{file} did not finish");
        }

        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}");
        }

        return stdout.Result;
    }

    private static Process Start(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        var p = Process.Start(info)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>Direct children of a process (from /proc).</summary>
    public static List<int> ChildrenOf(int pid)
    {
        var result = new List<int>();
        foreach (var dir in System.IO.Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var child))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var close = stat.LastIndexOf(')');
                var fields = stat.Substring(close + 2).Split(' ');
                if (int.Parse(fields[1]) == pid)
                {
                    result.Add(child);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
            }
        }

        return result;
    }

    public static List<int> DescendantsOf(int pid)
    {
        // One pass over /proc for the parent of every process, then a walk down from pid.
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in System.IO.Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var child))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var parent = int.Parse(stat.Substring(stat.LastIndexOf(')') + 2).Split(' ')[1]);
                if (!children.TryGetValue(parent, out var list))
                {
                    children[parent] = list = new List<int>();
                }

                list.Add(child);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
            }
        }

        var result = new List<int>();
        var queue = new Queue<int>(children.GetValueOrDefault(pid) ?? new List<int>());
        while (queue.Count > 0)
        {
            var p = queue.Dequeue();
            result.Add(p);
            foreach (var c in children.GetValueOrDefault(p) ?? new List<int>())
            {
                queue.Enqueue(c);
            }
        }

        return result;
    }

    public static string Comm(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    public static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    public void Dispose()
    {
        List<Process> processes;
        lock (_processes)
        {
            processes = _processes.ToList();
        }

        foreach (var p in processes)
        {
            try
            {
                if (!p.HasExited)
                {
                    // The sshd under `timeout` and any session processes first, then `timeout` itself, each by PID:
                    // if this is cut short, `timeout` still ends when its sshd has gone.
                    foreach (var child in DescendantsOf(p.Id))
                    {
                        try
                        {
                            System.Diagnostics.Process.GetProcessById(child).Kill();
                        }
                        catch (Exception)
                        {
                        }
                    }

                    p.Kill(entireProcessTree: false);
                }
            }
            catch (Exception)
            {
            }
        }

        foreach (var p in processes)
        {
            try
            {
                p.WaitForExit(2000);
                p.Dispose();
            }
            catch (Exception)
            {
            }
        }

        if (Directory.Length > 0)
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (Exception)
            {
            }
        }
    }
}
