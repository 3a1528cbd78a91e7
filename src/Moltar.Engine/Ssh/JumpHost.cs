using System.Net;
using System.Net.Sockets;
using Renci.SshNet;

namespace Moltar.Engine.Ssh;

/// <summary>
/// One connection to a bastion, shared by every target behind it (DESIGN §8): a ForwardedPortDynamic on
/// 127.0.0.1 serves as a SOCKS5 proxy, so each target's ConnectionInfo keeps Host = the target (known_hosts
/// is checked for the target). The listener is started when the first target needs it and stopped as soon as
/// no target connection uses it (any local process could use it while it listens). The bastion connection
/// itself stays until the connector is disposed. A failure to reach the bastion is remembered, so the targets
/// behind it fail fast with the same error instead of each retrying.
/// </summary>
internal sealed class JumpHost : IDisposable
{
    private readonly SshConnector _connector;
    private readonly SshHostSettings _settings;
    private readonly JumpHost? _via;
    private readonly object _gate = new();
    private SshClient? _client;
    private JumpLease? _viaLease;
    private ForwardedPortDynamic? _port;
    private uint _boundPort;
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

    public string Name => $"{_settings.User}@{_settings.HostName}{(_settings.Port == 22 ? "" : ":" + _settings.Port)}";

    /// <summary>Times the bastion connection was opened (for tests: one per connector).</summary>
    public int ConnectCount { get; private set; }

    public JumpLease Acquire(CancellationToken cancellationToken)
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
                    _client = _connector.Open(_settings, null, "jump host", info => new SshClient(info), _via, cancellationToken, out _viaLease);
                    ConnectCount++;
                    _connector.Log(SshLogLevel.Verbose, $"Connected to jump host {Name} ({_client.ConnectionInfo.CurrentKeyExchangeAlgorithm}).");
                }
                catch (SshFailure e)
                {
                    _failure = e;
                    throw Wrap(e);
                }
            }

            if (_port is null || !_port.IsStarted)
            {
                StartPort();
            }

            _leases++;
            return new JumpLease(this, _boundPort);
        }
        finally
        {
            if (taken)
            {
                Monitor.Exit(_gate);
            }
        }
    }

    internal void Release()
    {
        lock (_gate)
        {
            if (--_leases == 0)
            {
                StopPort();
            }
        }
    }

    private SshFailure Wrap(SshFailure inner) =>
        new(inner.ErrorId, $"Jump host {Name}: {inner.Message}", inner.Host ?? _settings.HostName, inner);

    private void StartPort()
    {
        Exception? last = null;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var port = FreeLoopbackPort();
            var forwarded = new ForwardedPortDynamic("127.0.0.1", (uint)port);
            forwarded.Exception += (_, e) => _connector.Log(SshLogLevel.Verbose, $"Jump host {Name}: forwarding: {e.Exception.Message}");
            try
            {
                _client!.AddForwardedPort(forwarded);
                forwarded.Start();
                _port = forwarded;
                _boundPort = (uint)port;
                return;
            }
            catch (SocketException e)
            {
                last = e;
                TryRemove(forwarded);
            }
        }

        throw new SshFailure(SshErrorIds.ConnectFailed, $"Jump host {Name}: could not open a local forwarding port: {last?.Message}", _settings.HostName, last);
    }

    private void StopPort()
    {
        var forwarded = _port;
        _port = null;
        if (forwarded is not null)
        {
            TryRemove(forwarded);
        }
    }

    private void TryRemove(ForwardedPortDynamic forwarded)
    {
        try
        {
            if (forwarded.IsStarted)
            {
                forwarded.Stop();
            }
        }
        catch (Exception)
        {
        }

        try
        {
            _client?.RemoveForwardedPort(forwarded);
        }
        catch (Exception)
        {
        }

        SshConnector.SafeDispose(forwarded);
    }

    private static int FreeLoopbackPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private void DropConnection()
    {
        StopPort();
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

/// <summary>A target's use of a jump host's SOCKS listener; disposing it lets the listener close.</summary>
internal sealed class JumpLease : IDisposable
{
    private JumpHost? _owner;

    public JumpLease(JumpHost owner, uint port)
    {
        _owner = owner;
        Port = (int)port;
    }

    public int Port { get; }

    public void Dispose() => Interlocked.Exchange(ref _owner, null)?.Release();
}
