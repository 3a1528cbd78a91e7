using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>
/// Authenticated SSH connections kept open between calls of one process, so a repeat call over the same hosts
/// skips the key exchange and login (ssh's ControlPersist). A connection is reused only by a call that would open
/// the very same connection: the key holds everything that decides it (user, host name, port, the identities
/// offered, the jump chain or ProxyCommand, the host key policy, the known_hosts files and their contents' size
/// and time, the algorithm lists). Each pooled connection serves one user at a time (one channel: a command, or
/// an SFTP subsystem), so the server's MaxSessions is never exceeded; concurrent work on the same host opens
/// more connections, which are kept too. A new connection is made by the caller's SshConnector, so the host key
/// is checked as always; a reused one was checked when it was made, under the same key.
/// Idle connections close after the idle time the releasing call chose (a timer on the thread pool: nothing here
/// keeps a process alive), at process exit, when the module is removed (CloseAll) and on Close(filter).
/// A connection through a jump host is kept with its bastion connection: when the call's connector is disposed, the
/// pool adopts the jump hosts its kept connections go through and closes each when the last of them closes.
/// </summary>
public sealed class ConnectionPool : IDisposable
{
    private static readonly Lazy<ConnectionPool> SharedPool = new(() =>
    {
        var pool = new ConnectionPool();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => pool.CloseAll();
        return pool;
    });

    private readonly object _gate = new();
    private readonly List<PoolEntry> _entries = new();
    private readonly List<JumpHost> _jumps = new();
    private readonly Timer _timer;
    private Func<DateTimeOffset> _clock = () => DateTimeOffset.UtcNow;

    public ConnectionPool()
    {
        _timer = new Timer(static p => ((ConnectionPool)p!).CloseExpired(), this, Timeout.Infinite, Timeout.Infinite);
    }

    /// <summary>The pool of this process (the module's cmdlets share it).</summary>
    public static ConnectionPool Shared => SharedPool.Value;

    /// <summary>Whether the shared pool was ever used (module removal need not create it).</summary>
    public static bool SharedCreated => SharedPool.IsValueCreated;

    /// <summary>
    /// A connection for the target: an idle pooled one with the same key, else a new one from the connector
    /// (which checks the host key). With connector.Options.ConnectionIdle zero the connection is not pooled and
    /// closes on Return. Throws what SshConnector.Connect throws.
    /// </summary>
    public PooledConnection Acquire(SshConnector connector, SshTarget target, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connector);
        ArgumentNullException.ThrowIfNull(target);
        // Resolved once per target and call: the key is made of what Connect uses, and a miss connects with it.
        var resolved = connector.ResolveFully(target);
        var idle = connector.Options.ConnectionIdle;
        if (idle <= TimeSpan.Zero)
        {
            return new PooledConnection(this, null, connector.Connect(resolved, cancellationToken), reused: false);
        }

        var key = KeyOf(resolved.Settings, resolved.Identities);
        var stale = new List<SshConnection>();
        try
        {
            lock (_gate)
            {
                foreach (var entry in _entries.Where(e => e.Key == key && !e.InUse).ToList())
                {
                    if (!entry.Connection.IsConnected || entry.CloseRequested)
                    {
                        _entries.Remove(entry);
                        stale.Add(entry.Connection);
                        continue;
                    }

                    entry.InUse = true;
                    entry.Uses++;
                    entry.Idle = idle; // this call's idle time applies once it returns the connection
                    connector.Log(SshLogLevel.Verbose,
                        $"reusing the open connection to {entry.Connection.Settings.HostName}:{entry.Connection.Settings.Port} (open {Seconds(Now - entry.Opened)}, idle {Seconds(Now - entry.LastUsed)})", target);
                    entry.Connection.ServeFor(target);
                    return new PooledConnection(this, entry, entry.Connection, reused: true);
                }
            }
        }
        finally
        {
            CloseConnections(stale);
            CloseUnusedJumps();
        }

        var connection = connector.Connect(resolved, cancellationToken);
        var added = new PoolEntry(key, connection, Now) { InUse = true, Uses = 1, Idle = idle };
        lock (_gate)
        {
            _entries.Add(added);
        }

        return new PooledConnection(this, added, connection, reused: false);
    }

    /// <summary>What is open now, in the order opened.</summary>
    public IReadOnlyList<PooledConnectionInfo> List()
    {
        var now = Now;
        lock (_gate)
        {
            return _entries.Select(e => Describe(e, now)).ToList();
        }
    }

    private static PooledConnectionInfo Describe(PoolEntry e, DateTimeOffset now) =>
        new(e.Connection.Target, e.Connection.Settings.User, e.Connection.Settings.HostName, e.Connection.Settings.Port, e.Opened, now - e.Opened,
            e.InUse ? TimeSpan.Zero : now - e.LastUsed, e.InUse ? 1 : 0, e.Uses, e.Idle, e.Connection.IsConnected, e.Connection.ViaProxyCommand);

    /// <summary>
    /// Closes the pooled connections the filter picks (all with null); one in use is closed when its call returns
    /// it. Returns how many were picked. Waits until the idle ones are closed.
    /// </summary>
    public int Close(Func<PooledConnectionInfo, bool>? filter = null)
    {
        var now = Now;
        var closing = new List<SshConnection>();
        var picked = 0;
        lock (_gate)
        {
            foreach (var entry in _entries.ToList())
            {
                if (filter is not null && !filter(Describe(entry, now)))
                {
                    continue;
                }

                picked++;
                entry.CloseRequested = true;
                if (!entry.InUse)
                {
                    _entries.Remove(entry);
                    closing.Add(entry.Connection);
                }
            }
        }

        CloseConnections(closing);
        CloseUnusedJumps();
        return picked;
    }

    /// <summary>Closes everything (module removal, process exit). Connections in use are closed under their callers.</summary>
    public void CloseAll()
    {
        List<SshConnection> closing;
        lock (_gate)
        {
            closing = _entries.Select(e => e.Connection).ToList();
            _entries.Clear();
        }

        _timer.Change(Timeout.Infinite, Timeout.Infinite);
        CloseConnections(closing);
        CloseUnusedJumps(all: true);
    }

    /// <summary>Closes everything and stops the idle timer (a pool of its own, as the tests make; the shared one lives as long as the process).</summary>
    public void Dispose()
    {
        CloseAll();
        _timer.Dispose();
    }

    /// <summary>
    /// Called by a disposing SshConnector for each of its jump hosts: true when a kept connection (of any pool) goes
    /// through it (or through a jump host reached through it), so it must stay open; the pool closes it later.
    /// </summary>
    internal static bool Adopts(JumpHost jump) => SharedPool.IsValueCreated && Shared.Adopt(jump);

    internal bool Adopt(JumpHost jump)
    {
        lock (_gate)
        {
            static bool Carries(JumpHost? last, JumpHost jump)
            {
                for (var hop = last; hop is not null; hop = hop.Via)
                {
                    if (ReferenceEquals(hop, jump))
                    {
                        return true;
                    }
                }

                return false;
            }

            if (!_entries.Any(e => Carries(e.Connection.Jump, jump)))
            {
                return false;
            }

            if (!_jumps.Contains(jump))
            {
                _jumps.Add(jump);
            }

            return true;
        }
    }

    /// <summary>Closes adopted jump hosts no kept connection goes through any more (a chain's later hops first).</summary>
    private void CloseUnusedJumps(bool all = false)
    {
        while (true)
        {
            JumpHost? unused;
            lock (_gate)
            {
                unused = _jumps.FirstOrDefault(j => all || j.OpenListeners == 0);
                if (unused is null)
                {
                    return;
                }

                _jumps.Remove(unused);
            }

            unused.Dispose();
        }
    }

    internal void Return(PoolEntry entry, SshConnection connection, bool keep)
    {
        SshConnection? close = null;
        lock (_gate)
        {
            entry.Connection = connection;
            entry.InUse = false;
            entry.LastUsed = Now;
            if (!keep || entry.CloseRequested || !connection.IsConnected || !_entries.Contains(entry))
            {
                _entries.Remove(entry);
                close = connection;
            }
        }

        if (close is not null)
        {
            SshConnector.SafeDispose(close);
            CloseUnusedJumps();
        }
        else
        {
            Schedule();
        }
    }

    /// <summary>Arms the timer for the earliest expiry (checked at least every second while anything is idle).</summary>
    private void Schedule()
    {
        TimeSpan? next = null;
        var now = Now;
        lock (_gate)
        {
            foreach (var entry in _entries.Where(e => !e.InUse))
            {
                var left = entry.LastUsed + entry.Idle - now;
                next = next is null || left < next ? left : next;
            }
        }

        if (next is { } due)
        {
            var ms = (long)Math.Clamp(due.TotalMilliseconds, 50, 1000);
            _timer.Change(ms, Timeout.Infinite);
        }
    }

    private void CloseExpired()
    {
        var now = Now;
        var closing = new List<SshConnection>();
        lock (_gate)
        {
            foreach (var entry in _entries.ToList())
            {
                // A connection the server dropped is let go at once; an idle one when its time is up.
                if (!entry.InUse && (now - entry.LastUsed >= entry.Idle || !entry.Connection.IsConnected))
                {
                    _entries.Remove(entry);
                    closing.Add(entry.Connection);
                }
            }
        }

        CloseConnections(closing);
        CloseUnusedJumps();
        Schedule();
    }

    /// <summary>Closes connections side by side (each sends SSH_MSG_DISCONNECT and waits for its reader thread), at most a few seconds in all.</summary>
    private static void CloseConnections(List<SshConnection> connections)
    {
        if (connections.Count == 0)
        {
            return;
        }

        if (connections.Count == 1)
        {
            SshConnector.SafeDispose(connections[0]);
            return;
        }

        var threads = Math.Min(16, connections.Count);
        var next = -1;
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < connections.Count)
            {
                SshConnector.SafeDispose(connections[i]);
            }
        })
        { IsBackground = true, Name = "Moltar pool close" }).ToList();
        workers.ForEach(w => w.Start());
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        foreach (var worker in workers)
        {
            var left = deadline - DateTime.UtcNow;
            worker.Join(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }
    }

    private DateTimeOffset Now => _clock();

    private static string Seconds(TimeSpan span) => $"{span.TotalSeconds:0.#} s";

    /// <summary>
    /// Everything that decides a connection, as text. Two calls whose targets resolve to the same key would open
    /// the same connection (same login, same route, same trust), so one may use the other's.
    /// </summary>
    internal static string KeyOf(SshHostSettings settings, IReadOnlyList<SshIdentity> identities)
    {
        var key = new StringBuilder();
        void Add(string name, object? value) => key.Append(name).Append('=').Append(value).Append('\n');
        Add("user", settings.User);
        Add("host", settings.HostName);
        Add("port", settings.Port);
        Add("jump", string.Join(",", settings.Jumps));
        Add("proxy", settings.ProxyCommand);
        Add("policy", settings.StrictHostKeyChecking);
        Add("kex", settings.KexAlgorithms);
        Add("ciphers", settings.Ciphers);
        Add("hostkeyalgorithms", settings.HostKeyAlgorithms);
        foreach (var file in settings.AllKnownHostsFiles)
        {
            // An edited known_hosts (a key removed or changed) makes a new connection, checked against it.
            var info = new FileInfo(file);
            Add("known_hosts", info.Exists ? $"{file}|{info.Length}|{info.LastWriteTimeUtc.Ticks}" : file + "|absent");
        }

        foreach (var identity in identities)
        {
            Add("identity", $"{identity.Source}|{identity.FilePath}|{identity.Fingerprint}");
        }

        return key.ToString();
    }

    /// <summary>For tests: a clock to move instead of waiting.</summary>
    internal Func<DateTimeOffset> Clock
    {
        set => _clock = value;
    }

    /// <summary>For tests: runs the idle sweep now.</summary>
    internal void SweepNow() => CloseExpired();
}

internal sealed class PoolEntry(string key, SshConnection connection, DateTimeOffset opened)
{
    public string Key { get; } = key;
    public SshConnection Connection { get; set; } = connection;
    public DateTimeOffset Opened { get; } = opened;
    public DateTimeOffset LastUsed { get; set; } = opened;
    public TimeSpan Idle { get; set; }
    public bool InUse { get; set; }
    public bool CloseRequested { get; set; }
    public long Uses { get; set; }
}

/// <summary>
/// One call's use of a connection. Return it when done: it goes back to the pool if it is still connected (else it
/// is closed). Dispose without Return closes it (an exception or cancellation left it in an unknown state).
/// </summary>
public sealed class PooledConnection : IDisposable
{
    private readonly ConnectionPool _pool;
    private readonly PoolEntry? _entry;
    private int _done;

    internal PooledConnection(ConnectionPool pool, PoolEntry? entry, SshConnection connection, bool reused)
    {
        _pool = pool;
        _entry = entry;
        Connection = connection;
        Reused = reused;
    }

    /// <summary>The connection (replace it with Update when RunReconnecting replaced it).</summary>
    public SshConnection Connection { get; private set; }

    /// <summary>The connection was open before this call (no handshake was made for it).</summary>
    public bool Reused { get; }

    /// <summary>The connection now in use: after SshConnector.RunReconnecting swapped a dropped one for a new one.</summary>
    public void Update(SshConnection connection) => Connection = connection;

    /// <summary>Done with it: kept for the next call when still connected (and pooling is on), else closed.</summary>
    public void Return() => Finish(keep: true);

    /// <summary>Closes it (and takes it out of the pool).</summary>
    public void Dispose() => Finish(keep: false);

    private void Finish(bool keep)
    {
        if (Interlocked.Exchange(ref _done, 1) != 0)
        {
            return;
        }

        if (_entry is null)
        {
            SshConnector.SafeDispose(Connection);
            return;
        }

        _pool.Return(_entry, Connection, keep);
    }
}

/// <summary>What Get-MoltarConnection shows about one pooled connection.</summary>
public sealed record PooledConnectionInfo(SshTarget Target, string User, string HostName, int Port, DateTimeOffset Opened, TimeSpan Age,
    TimeSpan IdleTime, int ChannelsInUse, long Uses, TimeSpan IdleLimit, bool IsConnected, bool ViaProxyCommand);
