using System.Net.Sockets;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace Moltar.Engine.Ssh;

/// <summary>
/// One connection to a bastion, shared by every target behind it. Each target gets its own
/// ForwardedPortLocal on 127.0.0.1 (port chosen by the OS) leading to the target through the bastion; SSH.NET
/// then connects to that port. (One ForwardedPortDynamic for all targets, as DESIGN §8 suggests, loses
/// connections: when a second SOCKS client is already waiting, SSH.NET's accept loop serves it nested inside
/// the first one's accept callback, which then blocks for the second connection's lifetime, so the first
/// handshake times out. One listener per target never has a second client.) Host keys are still checked for the
/// target's own name: the verifier uses the resolved settings, not the loopback endpoint. A listener is opened
/// just before its target connects, serves exactly that one connection (any other local process that connects is
/// refused) and is closed when that connection closes. The bastion connection stays until the connector is disposed. A failure to reach the bastion is
/// remembered, so the targets behind it fail fast with the same error instead of each retrying.
/// </summary>
internal sealed class JumpHost : IDisposable
{
    private readonly SshConnector _connector;
    private readonly SshHostSettings _settings;
    private readonly JumpHost? _via;
    private readonly object _gate = new();
    private SshClient? _client;
    private IDisposable? _viaLease;
    private int _leases;
    private SshFailure? _failure;
    private bool _disposed;

    public JumpHost(SshConnector connector, SshHostSettings settings, JumpHost? via, string key)
    {
        _connector = connector;
        _settings = settings;
        _via = via;
        Key = key;
    }

    public string Key { get; }

    /// <summary>The jump host this one is reached through (a chain's earlier hop), if any.</summary>
    internal JumpHost? Via => _via;

    public string Name => $"{_settings.User}@{_settings.HostName}{(_settings.Port == 22 ? "" : ":" + _settings.Port)}";

    /// <summary>Local listeners open right now (one per target connection in use).</summary>
    public int OpenListeners
    {
        get
        {
            lock (_gate)
            {
                return _leases;
            }
        }
    }

    /// <summary>Times the bastion connection was opened (for tests: one per connector).</summary>
    public int ConnectCount { get; private set; }

    /// <summary>Opens a local listener that leads to host:port through the bastion (connecting the bastion first if needed).</summary>
    public JumpLease Acquire(string host, int port, CancellationToken cancellationToken)
    {
        // Only one thread connects the bastion; the others wait here (checking for cancellation).
        var taken = false;
        try
        {
            while (!(taken = Monitor.TryEnter(_gate, 100)))
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_failure is not null)
            {
                throw Wrap(_failure);
            }

            if (_client is null || !_client.IsConnected)
            {
                DropConnection();
                try
                {
                    _client = _connector.OpenJump(_settings, _via, cancellationToken, out _viaLease);
                    ConnectCount++;
                    _connector.Log(SshLogLevel.Verbose, $"Connected to jump host {Name} ({_client.ConnectionInfo.CurrentKeyExchangeAlgorithm}).");
                }
                catch (SshFailure e)
                {
                    _failure = e;
                    throw Wrap(e);
                }
            }

            var forwarded = new ForwardedPortLocal("127.0.0.1", 0, host, (uint)port);
            forwarded.Exception += (_, e) => _connector.Log(SshLogLevel.Verbose, $"Jump host {Name}: forwarding to {host}:{port}: {e.Exception.Message}");
            // The listener is on 127.0.0.1, where any local process can connect while it is open. It exists for the one
            // connection Moltar makes to it right away, so it serves exactly one: SSH.NET raises RequestReceived before
            // it opens the channel through the bastion, and when the handler throws it closes the accepted socket
            // instead (no channel, not a byte through). SSH.NET has no public way to refuse or to stop just listening.
            int served = 0;
            forwarded.RequestReceived += (_, e) =>
            {
                if (Interlocked.Exchange(ref served, 1) != 0)
                {
                    _connector.Log(SshLogLevel.Warning, $"Jump host {Name}: refused a second local connection (from {e.OriginatorHost}:{e.OriginatorPort}) " +
                        $"to the forward to {host}:{port}; it serves only Moltar's own connection.");
                    throw new SshException("This forward serves one connection only.");
                }
            };
            try
            {
                _client.AddForwardedPort(forwarded);
                forwarded.Start();
            }
            catch (Exception e) when (e is SocketException or SshException or InvalidOperationException)
            {
                Remove(forwarded);
                throw new SshFailure(SshErrorIds.ConnectFailed, $"Jump host {Name}: could not open a local forwarding port: {e.Message}", _settings.HostName, e);
            }

            _leases++;
            return new JumpLease(this, forwarded, (int)forwarded.BoundPort, ThreadPoolReserve.Take());
        }
        finally
        {
            if (taken)
            {
                Monitor.Exit(_gate);
            }
        }
    }

    internal void Release(ForwardedPortLocal forwarded)
    {
        // Stopping waits for the forwarded channel to close; do it outside the lock.
        try
        {
            forwarded.Stop();
        }
        catch (Exception)
        {
        }

        lock (_gate)
        {
            _leases--;
            Remove(forwarded);
        }
    }

    private SshFailure Wrap(SshFailure inner) =>
        new(inner.ErrorId, $"Jump host {Name}: {inner.Message}", inner.Host ?? _settings.HostName, inner);

    private void Remove(ForwardedPort forwarded)
    {
        try
        {
            _client?.RemoveForwardedPort(forwarded);
        }
        catch (Exception)
        {
        }

        SshConnector.SafeDispose(forwarded);
    }

    private void DropConnection()
    {
        if (_client is not null)
        {
            SshConnector.SafeDispose(_client);
            _client = null;
        }

        _viaLease?.Dispose();
        _viaLease = null;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            DropConnection();
        }
    }
}

/// <summary>A target's local listener through a jump host; disposing it closes the listener.</summary>
internal sealed class JumpLease : IDisposable
{
    private JumpHost? _owner;
    private readonly ForwardedPortLocal _forwarded;
    private IDisposable? _reserve;

    public JumpLease(JumpHost owner, ForwardedPortLocal forwarded, int port, IDisposable reserve)
    {
        _owner = owner;
        _forwarded = forwarded;
        Port = port;
        _reserve = reserve;
    }

    public int Port { get; }

    /// <summary>The jump host the listener belongs to (null once released).</summary>
    internal JumpHost? Owner => Volatile.Read(ref _owner);

    public void Dispose()
    {
        Interlocked.Exchange(ref _owner, null)?.Release(_forwarded);
        Interlocked.Exchange(ref _reserve, null)?.Dispose();
    }
}

/// <summary>
/// SSH.NET's forwarded ports serve each forwarded connection on a thread-pool thread that stays blocked for the
/// connection's life (ForwardedPortDynamic: accept callback → channel.Bind). With a few targets behind a jump
/// host the pool (min = core count) starves and later SOCKS handshakes time out. So while jump connections
/// are open, the pool's minimum is raised by their number, and put back when the last one closes.
/// </summary>
internal static class ThreadPoolReserve
{
    private static readonly object Gate = new();
    private static int _reserved;
    private static int _baseWorkers;
    private static int _baseIo;

    public static IDisposable Take()
    {
        lock (Gate)
        {
            if (_reserved == 0)
            {
                ThreadPool.GetMinThreads(out _baseWorkers, out _baseIo);
            }

            _reserved++;
            ThreadPool.SetMinThreads(_baseWorkers + _reserved, _baseIo);
        }

        return new Release();
    }

    private sealed class Release : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0)
            {
                return;
            }

            lock (Gate)
            {
                _reserved--;
                ThreadPool.SetMinThreads(_baseWorkers + _reserved, _baseIo);
            }
        }
    }
}
