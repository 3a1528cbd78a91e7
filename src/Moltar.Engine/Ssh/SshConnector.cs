using System.Collections.Concurrent;
using Renci.SshNet;

namespace Moltar.Engine.Ssh;

/// <summary>
/// Opens authenticated SSH connections for one invocation: the small façade the fan-outs use over its parts,
/// SshSettingsResolver (options + ssh config → each host's settings), SshIdentitySource (the keys offered, in order),
/// SshConnectAttempt (route, handshake, host key check and login of one connection; failures mapped by
/// SshConnectErrors), and the jump host connections shared by every target behind them. Created once per call;
/// thread-safe: Connect is called from many fan-out workers at once. Dispose closes the jump host connections
/// (target connections are disposed by whoever holds them).
/// </summary>
public sealed class SshConnector : IDisposable
{
    private readonly SshLog _log;
    private readonly SshSettingsResolver _settings;
    private readonly SshIdentitySource _identities;
    private readonly SshConnectAttempt _attempt;
    private readonly ConcurrentDictionary<string, JumpHost> _jumps = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();

    /// <summary>Reads config and loads the explicitly given key files (SshFailure KeyFileInvalid if one is unusable).</summary>
    public SshConnector(SshOptions? options = null, Action<SshLogEntry>? log = null)
    {
        Options = options ?? new SshOptions();
        if (Options.User is { } user && !SshNames.IsValidUser(user))
        {
            throw new SshFailure(SshErrorIds.InvalidConfiguration, $"User '{user}' is not {SshNames.UserRule}.");
        }

        _log = new SshLog(log);
        Home = Options.HomeDirectory ?? SshPaths.DefaultHome();
        KnownHosts = new KnownHosts(note => _log.Write(SshLogLevel.Verbose, note));
        _settings = new SshSettingsResolver(Options, Home, _log);
        _identities = new SshIdentitySource(Options, Home, _log);
        _attempt = new SshConnectAttempt(KnownHosts, _log, _disposed.Token);
    }

    public SshOptions Options { get; }

    /// <summary>The home directory used for ~ and the default paths.</summary>
    public string Home { get; }

    internal KnownHosts KnownHosts { get; }

    /// <summary>The jump hosts used so far (diagnostics and tests).</summary>
    internal IEnumerable<JumpHost> JumpHosts => _jumps.Values;

    /// <summary>How a target is reached: options, ssh config and defaults merged (cached per target).</summary>
    public SshHostSettings Resolve(SshTarget target) => _settings.For(target);

    /// <summary>The keys offered to a host, in order: agent keys also named as key files, other agent keys (unless IdentitiesOnly), then key files.</summary>
    public IReadOnlyList<SshIdentity> IdentitiesFor(SshHostSettings settings) => _identities.For(settings);

    /// <summary>How many times the keys offered were worked out (tests: once per target and connection).</summary>
    internal int IdentityLookups => _identities.Lookups;

    /// <summary>A target's settings and the keys offered to it, resolved once and handed to Connect (ConnectionPool keys on them too).</summary>
    internal ResolvedTarget ResolveFully(SshTarget target)
    {
        var settings = Resolve(target);
        return new ResolvedTarget(target, settings, IdentitiesFor(settings));
    }

    /// <summary>
    /// Runs a command under the reconnect policy (Reconnect): when the connection turns out to be gone before the
    /// command started, it runs once more on a new connection, which then replaces the one passed in.
    /// </summary>
    public ExecOutcome RunReconnecting(ref SshConnection connection, string command, ExecOptions? options = null,
                                       CancellationToken cancellationToken = default)
    {
        var outcome = connection.Run(command, options, cancellationToken);
        if (outcome.Started || outcome.ErrorId != SshErrorIds.ConnectionLost || cancellationToken.IsCancellationRequested)
            return outcome;
        if (Reconnect(connection, "the command", cancellationToken) is not { } fresh)
            return outcome; // the host itself is gone: the lost connection is the failure to report
        connection = fresh;
        return connection.Run(command, options, cancellationToken);
    }

    /// <summary>
    /// The one reconnect policy (commands, deploy steps, copies): work that found its connection gone before any of
    /// it ran on the host (the server dropped it, idle or between two commands) gets one new connection, connected
    /// afresh rather than taken from the pool, whose other kept connections may be as stale. The lost connection is
    /// closed. Null when the host cannot be reached again: the lost connection is then the failure to report.
    /// </summary>
    internal SshConnection? Reconnect(SshConnection lost, string work, CancellationToken cancellationToken)
    {
        SshConnection fresh;
        try
        {
            fresh = Connect(lost.Target, cancellationToken);
        }
        catch (SshFailure)
        {
            return null;
        }

        Log(SshLogLevel.Verbose, $"the connection was gone before {work} started; connected again", lost.Target);
        SafeDispose(lost);
        return fresh;
    }

    /// <summary>
    /// Opens an authenticated connection to a target (through its jump host or ProxyCommand, if any). Blocks the
    /// calling thread: call it from a fan-out worker (or use ConnectAsync). Throws SshFailure with a stable ErrorId,
    /// MoltarException Unexpected for a bug, or OperationCanceledException when the token fires (the half-open
    /// connection is closed).
    /// </summary>
    public SshConnection Connect(SshTarget target, CancellationToken cancellationToken = default) =>
        Connect(ResolveFully(target), cancellationToken);

    /// <summary>Connect with the settings and keys already resolved for the target.</summary>
    internal SshConnection Connect(ResolvedTarget resolved, CancellationToken cancellationToken = default)
    {
        var settings = resolved.Settings;
        var client = _attempt.Open(settings, resolved.Identities, resolved.Target, "host", info => new SshClient(info), JumpFor(settings),
            cancellationToken, out var lease);
        return new SshConnection(resolved.Target, settings, client, lease);
    }

    /// <summary>Connect on a dedicated thread (never a thread-pool thread: SSH.NET's connect blocks).</summary>
    public Task<SshConnection> ConnectAsync(SshTarget target, CancellationToken cancellationToken = default) =>
        DedicatedThread.Run(() => Connect(target, cancellationToken), "Moltar SSH connect");

    /// <summary>Opens a jump host's own connection (JumpHost, once per bastion and call).</summary>
    internal SshClient OpenJump(SshHostSettings settings, JumpHost? via, CancellationToken cancellationToken, out IDisposable? lease) =>
        _attempt.Open(settings, IdentitiesFor(settings), null, "jump host", info => new SshClient(info), Through(via), cancellationToken, out lease);

    private Func<string, int, CancellationToken, IDisposable>? JumpFor(SshHostSettings settings) =>
        Through(settings.Jumps.Count > 0 ? Jump(settings.Jumps) : null);

    /// <summary>How a connection reaches its host through a jump host: a forwarded port of the bastion's connection.</summary>
    private static Func<string, int, CancellationToken, IDisposable>? Through(JumpHost? jump) =>
        jump is null ? null : (host, port, cancellationToken) => jump.Acquire(host, port, cancellationToken);

    private JumpHost Jump(IReadOnlyList<SshJumpHop> hops, int depth = 0)
    {
        if (depth > 8)
        {
            throw new SshFailure(SshErrorIds.InvalidConfiguration, $"ProxyJump chain through {string.Join(",", hops)} is too long or loops.");
        }

        // A chain a,b: b is reached through a, the target through b. The first hop's own ProxyJump applies too.
        JumpHost? parent = null;
        for (var i = 0; i < hops.Count; i++)
        {
            var settings = _settings.ForJump(hops[i]);
            if (i == 0 && settings.Jumps.Count > 0)
            {
                parent = Jump(settings.Jumps, depth + 1);
            }

            var via = parent;
            var key = $"{settings.User}@{settings.HostName}:{settings.Port}|{via?.Key}";
            parent = _jumps.GetOrAdd(key, k => new JumpHost(this, settings, via, k));
        }

        return parent!;
    }

    internal void Log(SshLogLevel level, string message, SshTarget? target = null) => _log.Write(level, message, target);

    internal static void SafeDispose(IDisposable disposable)
    {
        try
        {
            disposable.Dispose();
        }
        catch (Exception)
        {
            // Closing a broken connection may throw; it is closed either way.
        }
    }

    /// <summary>Closes the jump host connections and cancels connects still in progress.</summary>
    public void Dispose()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        _disposed.Cancel();
        foreach (var jump in _jumps.Values)
        {
            // A jump host that carries kept connections (ConnectionPool) stays open until the last of them closes.
            if (!ConnectionPool.Adopts(jump))
            {
                jump.Dispose();
            }
        }
    }
}

/// <summary>A target with its settings and the keys offered to it, resolved once per call.</summary>
internal sealed record ResolvedTarget(SshTarget Target, SshHostSettings Settings, IReadOnlyList<SshIdentity> Identities);

/// <summary>Runs blocking work on a new background thread (keeps SSH.NET's blocking calls off the thread pool).</summary>
internal static class DedicatedThread
{
    public static Task<T> Run<T>(Func<T> work, string name)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                tcs.TrySetResult(work());
            }
            catch (OperationCanceledException e)
            {
                tcs.TrySetCanceled(e.CancellationToken);
            }
            catch (Exception e)
            {
                tcs.TrySetException(e);
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return tcs.Task;
    }
}
