using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Moltar.Sandbox.Hosts;

/// <summary>
/// A fleet of real OpenSSH sshd hosts, one per loopback address, each with its own ed25519 host key
/// and (when root) its own root filesystem. Hosts are started by host/start-host.sh and stopped by
/// PID only. Files under <see cref="FleetOptions.StateDirectory"/>: client_ed25519(.pub), known_hosts,
/// hosts.pids ("pid starttime name" per running host, so a crashed run is cleaned up by the next
/// one), hosts/NAME/ (host key, sshd_config, sshd.log, the host's disk).
/// </summary>
public sealed partial class SshFleet : IAsyncDisposable
{
    /// <summary>
    /// How long one host may take to send its SSH banner, counted from its own start, on an idle machine; stretched
    /// by the machine's load (load average per core) while the host is waiting.
    /// </summary>
    internal static TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How many hosts may be starting at once (launched, banner not yet read). Hosts started all at once on a small
    /// machine starve each other (180 at once on 2 cores: load above 40, hosts late by minutes); a few at a time
    /// keep every start short. MOLTAR_SANDBOX_START_CONCURRENCY overrides it.
    /// </summary>
    internal static int StartConcurrency { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable("MOLTAR_SANDBOX_START_CONCURRENCY"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : Math.Clamp(Environment.ProcessorCount * 4, 4, 64);

    /// <summary>How long a host may take to exit after SIGTERM before it gets SIGKILL.</summary>
    internal static TimeSpan StopGrace { get; set; } = TimeSpan.FromSeconds(3);

    private const string DefaultFirstAddress = "127.0.1.1";
    private const string PidFileName = "hosts.pids";

    private readonly List<Slot> _slots;
    private readonly Dictionary<string, Slot> _byName;
    private readonly string? _aptRepository;
    private readonly object _fileLock = new();
    private int _disposed;

    private SshFleet(string stateDirectory, bool ownRoot, string user, string? aptRepository, IReadOnlyList<HostRequest> hosts)
    {
        StateDirectory = stateDirectory;
        OwnRoot = ownRoot;
        User = user;
        _aptRepository = aptRepository;
        ClientKeyPath = Path.Combine(stateDirectory, "client_ed25519");
        KnownHostsPath = Path.Combine(stateDirectory, "known_hosts");
        _slots = hosts.Select(h => new Slot(h, Path.Combine(stateDirectory, "hosts", h.Name))).ToList();
        _byName = _slots.ToDictionary(s => s.Request.Name, StringComparer.Ordinal);
    }

    /// <summary>The ed25519 private key (no passphrase, mode 600) every host accepts.</summary>
    public string ClientKeyPath { get; }

    /// <summary>known_hosts with one line per host ("[addr]:port" only when the port is not 22).</summary>
    public string KnownHostsPath { get; }

    /// <summary>The login user: the requested user with own root, the current user with shared root.</summary>
    public string User { get; }

    public string StateDirectory { get; }

    /// <summary>True when every host has its own root filesystem.</summary>
    public bool OwnRoot { get; }

    /// <summary>How the fleet's start went: total time, the shared layer, per-host times, retries.</summary>
    public FleetStartup Startup { get; private set; } = new(0, TimeSpan.Zero, TimeSpan.Zero, 0, TimeSpan.Zero, TimeSpan.Zero, []);

    /// <summary>Every host of the fleet in request order; a stopped host has <see cref="RunningHost.Pid"/> 0.</summary>
    public IReadOnlyList<RunningHost> Hosts => _slots.Select(s => s.Current!).ToArray();

    /// <summary>The host script, copied next to the sandbox assembly by the build.</summary>
    internal static string ScriptPath
    {
        get
        {
            var dir = Path.GetDirectoryName(typeof(SshFleet).Assembly.Location);
            if (string.IsNullOrEmpty(dir)) dir = AppContext.BaseDirectory;
            return Path.Combine(dir, "host", "start-host.sh");
        }
    }

    /// <summary>What this machine lacks to run hosts, each with how to get it; empty when nothing.</summary>
    public static IReadOnlyList<string> MissingPrerequisites(bool ownRoot)
    {
        var missing = new List<string>();
        if (!OperatingSystem.IsLinux())
        {
            missing.Add("Linux (sandbox hosts use /proc and, for own root, Linux namespaces)");
            return missing;
        }
        if (!File.Exists("/usr/sbin/sshd")) missing.Add("sshd at /usr/sbin/sshd (apt-get install openssh-server)");
        if (LinuxProcesses.FindProgram("ssh-keygen") is null) missing.Add("ssh-keygen (apt-get install openssh-client)");
        if (!File.Exists("/bin/bash")) missing.Add("bash at /bin/bash (apt-get install bash)");
        if (!File.Exists(ScriptPath)) missing.Add($"the host script {ScriptPath} (build Tests/Sandbox/Moltar.Sandbox: it copies host/ to its output)");
        if (ownRoot)
        {
            if (!Environment.IsPrivilegedProcess)
                missing.Add("root (own-root hosts need it: run as root, as CI does, or use shared-root hosts)");
            foreach (var (program, package) in new[]
                     {
                         ("unshare", "util-linux"), ("pivot_root", "util-linux"), ("mount", "mount"),
                         ("useradd", "passwd"), ("mknod", "coreutils"), ("sudo", "sudo"),
                     })
            {
                if (LinuxProcesses.FindProgram(program) is null)
                    missing.Add(program == "sudo"
                        ? "sudo (apt-get install sudo; own-root hosts use the machine's /usr)"
                        : $"{program} (apt-get install {package})");
            }
            if (!OverlaySupported()) missing.Add("the overlay filesystem (modprobe overlay)");
        }
        return missing;
    }

    private static bool OverlaySupported()
    {
        try
        {
            if (File.ReadAllText("/proc/filesystems").Contains("\toverlay\n", StringComparison.Ordinal)) return true;
            // Not loaded yet: mount loads the module when the kernel has it.
            var release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
            return Directory.Exists($"/lib/modules/{release}/kernel/fs/overlayfs");
        }
        catch (IOException) { return true; } // cannot tell: let the host's mount say
    }

    /// <summary>
    /// The first loopback address from <paramref name="first"/> on (127.0.1.1, 127.0.1.2 ... 127.0.1.254,
    /// 127.0.2.1 ...) that is not in <paramref name="exclude"/> and has nothing listening on <paramref name="port"/>.
    /// </summary>
    public static string NextFreeAddress(int port = 22, IEnumerable<string>? exclude = null, string first = DefaultFirstAddress) =>
        FreeAddresses(1, port, exclude, first)[0];

    /// <summary><paramref name="count"/> free loopback addresses in order; see <see cref="NextFreeAddress"/>.</summary>
    public static IReadOnlyList<string> FreeAddresses(int count, int port = 22, IEnumerable<string>? exclude = null, string first = DefaultFirstAddress)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var excluded = new HashSet<string>(exclude ?? [], StringComparer.Ordinal);
        var listeners = LinuxProcesses.TcpListeners() ?? [];
        if (!IPAddress.TryParse(first, out var start) || start.AddressFamily != AddressFamily.InterNetwork || start.GetAddressBytes()[0] != 127)
            throw new ArgumentException($"'{first}' is not a 127.x.y.z address", nameof(first));
        var b = start.GetAddressBytes();
        var result = new List<string>(count);
        for (int x = b[1]; x <= 255 && result.Count < count; x++)
        {
            for (int y = x == b[1] ? b[2] : 0; y <= 255 && result.Count < count; y++)
            {
                for (int z = x == b[1] && y == b[2] ? Math.Max(1, (int)b[3]) : 1; z <= 254 && result.Count < count; z++)
                {
                    var address = $"127.{x}.{y}.{z}";
                    if (excluded.Contains(address)) continue;
                    if (LinuxProcesses.IsListening(listeners, IPAddress.Parse(address), port)) continue;
                    result.Add(address);
                }
            }
        }
        if (result.Count < count) throw new InvalidOperationException($"Only {result.Count} free loopback addresses from {first} on for port {port}; {count} wanted.");
        return result;
    }

    /// <summary>
    /// Starts every host, at most <see cref="StartConcurrency"/> at a time, and returns once each has sent its SSH
    /// banner. A host that does not come up is tried once more (fresh); when one still fails, the hosts not yet
    /// started are not started, those already started are stopped, and a <see cref="HostStartException"/> names
    /// every host that failed with the tail of its log. <see cref="Startup"/> says how long it took.
    /// </summary>
    public static async Task<SshFleet> StartAsync(FleetOptions options, IReadOnlyList<HostRequest> hosts, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(hosts);
        if (string.IsNullOrWhiteSpace(options.StateDirectory)) throw new ArgumentException("A state directory is required.", nameof(options));
        var stateDir = Path.GetFullPath(options.StateDirectory).TrimEnd('/');
        if (stateDir.Length == 0 || stateDir.IndexOfAny([',', ':']) >= 0 || stateDir.Any(char.IsWhiteSpace))
            throw new ArgumentException($"The state directory must be absolute-able and free of commas, colons and spaces (it goes into mount options): '{stateDir}'", nameof(options));
        string? apt = null;
        if (options.AptRepository is not null)
        {
            apt = Path.GetFullPath(options.AptRepository);
            if (!Directory.Exists(apt)) throw new DirectoryNotFoundException($"APT repository not found: {apt}");
            if (!options.OwnRoot) throw new ArgumentException("An APT repository needs own-root hosts (shared-root hosts use the machine's APT).", nameof(options));
        }
        if (options.OwnRoot && !UserName().IsMatch(options.User))
            throw new ArgumentException($"Bad user name '{options.User}'.", nameof(options));
        ValidateRequests(hosts);
        if (hosts.Count > 0)
        {
            var missing = MissingPrerequisites(options.OwnRoot);
            if (missing.Count > 0)
                throw new InvalidOperationException("Cannot start sandbox hosts; this machine lacks: " + string.Join("; ", missing));
        }

        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(stateDir);
        await CleanUpStaleHostsAsync(stateDir).ConfigureAwait(false);
        var user = options.OwnRoot ? options.User : Environment.UserName;
        var fleet = new SshFleet(stateDir, options.OwnRoot, user, apt, hosts);
        await fleet.EnsureClientKeyAsync(ct).ConfigureAwait(false);
        fleet.WriteKnownHosts();
        if (options.OwnRoot && hosts.Count > 0) await fleet.PrepareSharedLayerAsync(ct).ConfigureAwait(false);
        var sharedLayer = clock.Elapsed;

        var concurrency = StartConcurrency;
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(ct); // no new starts once a host failed
        using var gate = new SemaphoreSlim(concurrency);
        var starts = fleet._slots.Select(s => fleet.StartWithRetryAsync(s, gate, abandon, ct)).ToArray();
        var failures = (await Task.WhenAll(starts).ConfigureAwait(false)).OfType<HostStartException>().ToList();
        if (failures.Count > 0 || ct.IsCancellationRequested)
        {
            await fleet.DisposeAsync().ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            throw HostStartException.Combine(failures, hosts.Count);
        }
        fleet.WriteKnownHosts();
        var durations = fleet._slots.Select(s => s.StartDuration).Order().ToArray();
        fleet.Startup = new FleetStartup(
            hosts.Count, clock.Elapsed, sharedLayer, concurrency,
            durations.Length > 0 ? durations[durations.Length / 2] : TimeSpan.Zero,
            durations.Length > 0 ? durations[^1] : TimeSpan.Zero,
            fleet._slots.Where(s => s.Retried).Select(s => s.Request.Name).ToArray());
        return fleet;
    }

    /// <summary>Stops one host by its PID (SIGTERM, then SIGKILL after a grace period) and waits for it to exit.</summary>
    public async Task StopHostAsync(string name, CancellationToken ct = default)
    {
        var slot = Find(name);
        await slot.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            await StopSlotAsync(slot).ConfigureAwait(false);
        }
        finally { slot.Gate.Release(); }
    }

    /// <summary>Starts a stopped host again: same address, same host key, same disk. A running host is left alone.</summary>
    public async Task<RunningHost> StartHostAsync(string name, CancellationToken ct = default)
    {
        var slot = Find(name);
        await slot.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (slot.Process is { HasExited: false }) return slot.Current!;
            await StopSlotAsync(slot).ConfigureAwait(false); // collect a host that died on its own
            await StartSlotAsync(slot, fresh: false, ct).ConfigureAwait(false);
            WriteKnownHosts();
            return slot.Current!;
        }
        finally { slot.Gate.Release(); }
    }

    /// <summary>Stops every host by PID (in parallel) and removes the PID file. Keys, logs and disks stay.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        var stops = _slots.Select(async slot =>
        {
            await slot.Gate.WaitAsync().ConfigureAwait(false);
            try { await StopSlotAsync(slot).ConfigureAwait(false); }
            finally { slot.Gate.Release(); }
        }).ToArray();
        try
        {
            await Task.WhenAll(stops).ConfigureAwait(false);
        }
        finally
        {
            if (_slots.All(s => s.Process is null))
            {
                lock (_fileLock) File.Delete(Path.Combine(StateDirectory, PidFileName));
            }
        }
    }

    // ------------------------------------------------------------------------------------------

    private sealed class Slot(HostRequest request, string directory)
    {
        public HostRequest Request { get; } = request;
        public string Directory { get; } = directory;
        public string LogPath => Path.Combine(Directory, "sshd.log");
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public Process? Process;
        public int Pid;
        public long StartTime;
        public StringBuilder EarlyOutput = new();
        public volatile RunningHost? Current;
        public TimeSpan StartDuration;
        public bool Retried;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")]
    private static partial Regex HostName();

    [GeneratedRegex("^[a-z_][a-z0-9_-]{0,30}$")]
    private static partial Regex UserName();

    private static void ValidateRequests(IReadOnlyList<HostRequest> hosts)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var endpoints = new HashSet<string>(StringComparer.Ordinal);
        foreach (var h in hosts)
        {
            ArgumentNullException.ThrowIfNull(h);
            if (h.Name is null || !HostName().IsMatch(h.Name))
                throw new ArgumentException($"Bad host name '{h.Name}': letters, digits, '-' and '.', at most 63 characters.", nameof(hosts));
            if (!names.Add(h.Name)) throw new ArgumentException($"Host name '{h.Name}' appears twice.", nameof(hosts));
            if (!IPAddress.TryParse(h.Address, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork || ip.GetAddressBytes()[0] != 127 || ip.ToString() != h.Address)
                throw new ArgumentException($"Host '{h.Name}': address '{h.Address}' is not a 127.x.y.z loopback address.", nameof(hosts));
            if (h.Port is < 1 or > 65535) throw new ArgumentException($"Host '{h.Name}': bad port {h.Port}.", nameof(hosts));
            if (!endpoints.Add($"{h.Address}:{h.Port}")) throw new ArgumentException($"Host '{h.Name}': {h.Address}:{h.Port} is used twice.", nameof(hosts));
        }
    }

    private Slot Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out var slot) ? slot : throw new KeyNotFoundException($"No sandbox host named '{name}'.");
    }

    private async Task EnsureClientKeyAsync(CancellationToken ct)
    {
        var pub = ClientKeyPath + ".pub";
        if (!File.Exists(ClientKeyPath) || !File.Exists(pub) || new FileInfo(pub).Length == 0)
        {
            File.Delete(ClientKeyPath);
            File.Delete(pub);
            var (code, output) = await RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "moltar-sandbox-client", "-f", ClientKeyPath], ct).ConfigureAwait(false);
            if (code != 0) throw new InvalidOperationException($"ssh-keygen failed ({code}): {output}");
        }
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(ClientKeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>
    /// Provisions what every own-root host shares (the login user, its key, sudo, the APT source, /dev) once, into
    /// STATE/base, which each new host's disk starts as a copy of (host/start-host.sh --prepare-base).
    /// </summary>
    private async Task PrepareSharedLayerAsync(CancellationToken ct)
    {
        var args = new List<string> { ScriptPath, "--state-dir", StateDirectory, "--prepare-base", "--user", User, "--client-key-pub", ClientKeyPath + ".pub" };
        if (_aptRepository is not null) args.AddRange(["--apt-repo", _aptRepository]);
        var (code, output) = await RunAsync("/bin/bash", args, ct).ConfigureAwait(false);
        if (code != 0)
            throw new InvalidOperationException($"Provisioning the sandbox hosts' shared layer ({Path.Combine(StateDirectory, "base")}) failed with exit code {code}: {output.Trim()}");
    }

    /// <summary>
    /// Starts one host under the fleet's start gate, once more when the first try fails for a reason a second try
    /// can help. Returns the failure, or null when the host is up or was never started because another host failed.
    /// </summary>
    private async Task<HostStartException?> StartWithRetryAsync(Slot slot, SemaphoreSlim gate, CancellationTokenSource abandon, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            // Once a host has failed for good no new host starts; the ones already starting finish, so the report
            // names every host that failed, not only the first.
            try { await gate.WaitAsync(abandon.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { return null; }
            var began = Stopwatch.GetTimestamp();
            try
            {
                await StartSlotAsync(slot, fresh: true, ct).ConfigureAwait(false);
                slot.StartDuration = Stopwatch.GetElapsedTime(began);
                return null;
            }
            catch (HostStartException e) when (attempt == 1 && e.Retryable && !abandon.IsCancellationRequested)
            {
                slot.Retried = true;
                // The second try starts its log afresh: keep the first one's for whoever looks into it.
                try { File.Move(slot.LogPath, slot.LogPath + ".1", overwrite: true); }
                catch (IOException) { }
            }
            catch (HostStartException e)
            {
                await abandon.CancelAsync().ConfigureAwait(false);
                return e;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return null;
            }
            finally { gate.Release(); }
        }
    }

    private async Task StartSlotAsync(Slot slot, bool fresh, CancellationToken ct)
    {
        var h = slot.Request;
        var address = IPAddress.Parse(h.Address);
        // Nothing else may listen there: a stale server would answer the readiness probe for us.
        var listeners = LinuxProcesses.TcpListeners();
        if (listeners is not null && LinuxProcesses.IsListening(listeners, address, h.Port))
            throw new HostStartException(h.Name, $"Sandbox host '{h.Name}': {h.Address}:{h.Port} is already in use by another process.", "", retryable: false);

        PrepareHostDirectory(slot);
        var psi = new ProcessStartInfo("/bin/bash")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,   // the host stops itself when this pipe closes (owner gone)
            RedirectStandardOutput = true,  // only until the script switches to its log file
            RedirectStandardError = true,
            WorkingDirectory = "/",
        };
        psi.ArgumentList.Add(ScriptPath);
        foreach (var arg in new[]
                 {
                     "--state-dir", StateDirectory, "--name", h.Name, "--address", h.Address,
                     "--port", h.Port.ToString(CultureInfo.InvariantCulture), "--user", User,
                     "--client-key-pub", ClientKeyPath + ".pub", "--watch-stdin",
                 })
            psi.ArgumentList.Add(arg);
        if (_aptRepository is not null) { psi.ArgumentList.Add("--apt-repo"); psi.ArgumentList.Add(_aptRepository); }
        if (!OwnRoot) psi.ArgumentList.Add("--shared-root");
        if (fresh) psi.ArgumentList.Add("--fresh");

        var early = new StringBuilder();
        var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (early) early.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (early) early.AppendLine(e.Data); };
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            process.Dispose();
            throw new HostStartException(h.Name, $"Sandbox host '{h.Name}': cannot run {ScriptPath}: {e.Message}", "", e);
        }
        var pid = process.Id;
        lock (_fileLock)
        {
            slot.Process = process;
            slot.Pid = pid;
            slot.StartTime = LinuxProcesses.StartTime(pid) ?? 0;
            slot.EarlyOutput = early;
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        WritePidFile();

        try
        {
            await WaitForListeningAsync(slot, process, ct).ConfigureAwait(false);
            var pub = (await File.ReadAllTextAsync(Path.Combine(slot.Directory, "ssh_host_ed25519_key.pub"), ct).ConfigureAwait(false))
                .Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (pub.Length < 2) throw Failure(slot, "has an unreadable host public key");
            slot.Current = new RunningHost(h.Name, h.Address, h.Port, pid, $"{pub[0]} {pub[1]}", Fingerprint(pub[1]));
        }
        catch
        {
            await StopSlotAsync(slot).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Waits until this start of the host (the script's "pid PID" line onwards in its log) has sshd's "Server
    /// listening on ADDRESS port PORT." — sshd bound the address, so it is ours that answers there. Reading the
    /// log rather than connecting spares each host an sshd child for the probe, and its start an extra process.
    /// </summary>
    /// <summary>
    /// The host's folder, its overlay's work and mount folders and (once; clients pin it) its host key, made here so
    /// the script starts no mkdir or ssh-keygen of its own. A key that exists is kept as it is, even when damaged.
    /// </summary>
    private void PrepareHostDirectory(Slot slot)
    {
        Directory.CreateDirectory(slot.Directory);
        if (OwnRoot)
        {
            Directory.CreateDirectory(Path.Combine(slot.Directory, "work"));
            Directory.CreateDirectory(Path.Combine(slot.Directory, "root"));
        }
        var key = Path.Combine(slot.Directory, "ssh_host_ed25519_key");
        if (!File.Exists(key) || new FileInfo(key).Length == 0 || !File.Exists(key + ".pub") || new FileInfo(key + ".pub").Length == 0)
            HostKeys.WriteEd25519(key, slot.Request.Name);
    }

    private static async Task WaitForListeningAsync(Slot slot, Process process, CancellationToken ct)
    {
        var h = slot.Request;
        var clock = Stopwatch.StartNew();
        var startMarker = $" pid {process.Id} ";
        var listening = $"Server listening on {h.Address} port {h.Port.ToString(CultureInfo.InvariantCulture)}.";
        var log = new StringBuilder();
        long offset = 0;
        var started = -1;
        var delay = 5;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var exited = process.HasExited;
            offset = ReadMore(slot.LogPath, offset, log);
            var text = log.ToString();
            if (started < 0) started = text.LastIndexOf(startMarker, StringComparison.Ordinal);
            if (started >= 0 && text.IndexOf(listening, started, StringComparison.Ordinal) >= 0)
            {
                if (process.HasExited) throw Failure(slot, $"exited with code {process.ExitCode} right after it started listening");
                return;
            }
            if (exited) throw Failure(slot, $"exited with code {process.ExitCode} before it accepted connections");
            if (clock.Elapsed > StartTimeout && clock.Elapsed > StartTimeout * LoadPerCore())
                throw Failure(slot, $"was not listening within {clock.Elapsed.TotalSeconds:0} s of its start (limit {StartTimeout.TotalSeconds:0} s, stretched by the load average per core, now {LoadPerCore():0.0})");
            await Task.Delay(delay, ct).ConfigureAwait(false);
            delay = Math.Min(delay * 2, 50);
        }

        static long ReadMore(string path, long offset, StringBuilder into)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                if (stream.Length < offset) { into.Clear(); offset = 0; } // truncated by --fresh
                stream.Seek(offset, SeekOrigin.Begin);
                using var reader = new StreamReader(stream, Encoding.UTF8);
                into.Append(reader.ReadToEnd());
                return stream.Length;
            }
            catch (FileNotFoundException) { return offset; }
            catch (DirectoryNotFoundException) { return offset; }
        }
    }

    /// <summary>The 1-minute load average per core (at least 1, at most 20): how much longer a start may take now.</summary>
    private static double LoadPerCore()
    {
        try
        {
            var first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            var load = double.Parse(first, NumberStyles.Float, CultureInfo.InvariantCulture) / Environment.ProcessorCount;
            return Math.Clamp(load, 1, 20);
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException) { return 1; }
    }

    private static HostStartException Failure(Slot slot, string reason)
    {
        var h = slot.Request;
        var tail = new StringBuilder();
        lock (slot.EarlyOutput) tail.Append(slot.EarlyOutput);
        tail.Append(LogTail(slot.LogPath, 25));
        return new HostStartException(h.Name, $"Sandbox host '{h.Name}' ({h.Address}:{h.Port}) {reason}. Log: {slot.LogPath}", tail.ToString().TrimEnd());
    }

    private static string LogTail(string path, int lines)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (stream.Length > 16384) stream.Seek(-16384, SeekOrigin.End);
            using var reader = new StreamReader(stream);
            var all = reader.ReadToEnd().Split('\n');
            return string.Join('\n', all.TakeLast(lines + 1)).TrimEnd() + "\n";
        }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    /// <summary>Stops a slot's process by PID and waits for it; the caller holds the slot's gate.</summary>
    private async Task StopSlotAsync(Slot slot)
    {
        Process? process;
        int pid;
        lock (_fileLock)
        {
            process = slot.Process;
            pid = slot.Pid;
        }
        if (process is null) return;
        if (!process.HasExited)
        {
            // Own root: the PID is unshare, which blocks SIGTERM; its child is the host's PID 1 (sshd),
            // whose exit takes the whole namespace with it. Shared root: the PID is sshd; its
            // descendants are the sessions, which a real host going down would end too.
            var others = OwnRoot ? LinuxProcesses.Children(pid) : LinuxProcesses.Descendants(pid);
            foreach (var other in others) LinuxProcesses.Signal(other, LinuxProcesses.SIGTERM);
            LinuxProcesses.Signal(pid, LinuxProcesses.SIGTERM);
            if (!await WaitForExitAsync(process, StopGrace).ConfigureAwait(false))
            {
                if (!OwnRoot)
                    foreach (var other in LinuxProcesses.Descendants(pid)) LinuxProcesses.Signal(other, LinuxProcesses.SIGKILL);
                LinuxProcesses.Signal(pid, LinuxProcesses.SIGKILL); // own root: --kill-child ends the namespace
                if (!await WaitForExitAsync(process, TimeSpan.FromSeconds(15)).ConfigureAwait(false))
                    throw new InvalidOperationException($"Sandbox host '{slot.Request.Name}' (pid {pid}) did not exit after SIGKILL.");
            }
        }
        try { process.StandardInput.Close(); } catch (IOException) { } catch (InvalidOperationException) { }
        process.Dispose();
        lock (_fileLock)
        {
            slot.Process = null;
            slot.Pid = 0;
            slot.StartTime = 0;
        }
        if (slot.Current is { } current) slot.Current = current with { Pid = 0 };
        WritePidFile();
    }

    private static async Task<bool> WaitForExitAsync(Process process, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return process.HasExited;
        }
    }

    private void WritePidFile()
    {
        lock (_fileLock)
        {
            if (_disposed != 0 && _slots.All(s => s.Process is null)) return;
            var text = new StringBuilder();
            foreach (var s in _slots)
                if (s.Process is not null) text.Append(CultureInfo.InvariantCulture, $"{s.Pid} {s.StartTime} {s.Request.Name}\n");
            WriteAtomically(Path.Combine(StateDirectory, PidFileName), text.ToString());
        }
    }

    private void WriteKnownHosts()
    {
        lock (_fileLock)
        {
            var text = new StringBuilder();
            foreach (var s in _slots)
            {
                if (s.Current is not { } h) continue;
                var host = h.Port == 22 ? h.Address : $"[{h.Address}]:{h.Port}";
                text.Append(CultureInfo.InvariantCulture, $"{host} {h.HostPublicKey}\n");
            }
            WriteAtomically(KnownHostsPath, text.ToString());
        }
    }

    private static void WriteAtomically(string path, string text)
    {
        var temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Kills what a crashed run left behind, by the PIDs (and start times) in its PID file.</summary>
    private static async Task CleanUpStaleHostsAsync(string stateDir)
    {
        var pidFile = Path.Combine(stateDir, PidFileName);
        if (!File.Exists(pidFile)) return;
        var victims = new List<int>();
        foreach (var line in await File.ReadAllLinesAsync(pidFile).ConfigureAwait(false))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 2 || !int.TryParse(f[0], out var pid) || !long.TryParse(f[1], out var start)) continue;
            if (start == 0 || LinuxProcesses.StartTime(pid) != start) continue; // gone, or the PID is someone else's now
            // Every descendant is waited for too: the host's sshd holds the port, and SIGKILL is not instant.
            foreach (var d in LinuxProcesses.Descendants(pid))
            {
                LinuxProcesses.Signal(d, LinuxProcesses.SIGKILL);
                victims.Add(d);
            }
            LinuxProcesses.Signal(pid, LinuxProcesses.SIGKILL);
            victims.Add(pid);
        }
        var clock = Stopwatch.StartNew();
        while (victims.Any(IsAlive) && clock.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20).ConfigureAwait(false);
        File.Delete(pidFile);

        static bool IsAlive(int pid)
        {
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var close = stat.LastIndexOf(')');
                return close > 0 && close + 2 < stat.Length && stat[close + 2] != 'Z';
            }
            catch (IOException) { return false; }
        }
    }

    internal static string Fingerprint(string base64Blob) =>
        "SHA256:" + Convert.ToBase64String(SHA256.HashData(Convert.FromBase64String(base64Blob))).TrimEnd('=');

    private static async Task<(int Code, string Output)> RunAsync(string program, IEnumerable<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(LinuxProcesses.FindProgram(program) ?? program)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Cannot run {program}.");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        return (p.ExitCode, (await stdout.ConfigureAwait(false)) + (await stderr.ConfigureAwait(false)));
    }
}
