using System.Collections.Concurrent;
using System.Net.Sockets;
using Renci.SshNet;
using Renci.SshNet.Common;
using Renci.SshNet.Messages.Transport;
using Renci.SshNet.Security;

namespace Moltar.Engine.Ssh;

/// <summary>
/// Opens authenticated SSH connections for one invocation. Created once per call: it reads ssh config and
/// known_hosts, asks the agent for its keys and loads key files once, and holds the jump host connections
/// shared by every target behind them. Thread-safe: Connect is called from many fan-out workers at once.
/// Dispose closes the jump host connections (target connections are disposed by whoever holds them).
/// </summary>
public sealed class SshConnector : IDisposable
{
    private readonly Action<SshLogEntry>? _log;
    private readonly SshConfigFiles _config;
    private readonly ConcurrentDictionary<string, SshHostSettings> _settings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<KeyFile?>> _keyFiles = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<UserCertificate?>> _certificates = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<AgentKeys>> _agents = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, JumpHost> _jumps = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _logged = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();

    /// <summary>Reads config and loads the explicitly given key files (SshFailure KeyFileInvalid if one is unusable).</summary>
    public SshConnector(SshOptions? options = null, Action<SshLogEntry>? log = null)
    {
        Options = options ?? new SshOptions();
        if (Options.User is { } user && !SshNames.IsValidUser(user))
        {
            throw new SshFailure(SshErrorIds.InvalidConfiguration, $"User '{user}' is not {SshNames.UserRule}.");
        }

        _log = log;
        Home = Options.HomeDirectory ?? SshPaths.DefaultHome();
        KnownHosts = new KnownHosts(note => Log(SshLogLevel.Verbose, note));

        _config = new SshConfigFiles(Options, Home, note => Log(SshLogLevel.Verbose, "ssh config: " + note));

        foreach (var path in Options.KeyFiles)
        {
            var full = SshPaths.ExpandTilde(path, Home);
            if (!File.Exists(full))
            {
                throw new SshFailure(SshErrorIds.KeyFileInvalid, $"Key file {full} does not exist.");
            }

            var key = KeyFile.Open(full, Options.Passphrase);
            var agentPath = Options.UseAgent ? Options.AgentPath ?? SshAgentClient.DefaultPath() : null;
            var inAgent = agentPath is not null && Agent(agentPath).Identities.Any(i => i.PublicKeyBlob.AsSpan().SequenceEqual(key.PublicBlob));
            if (!inAgent)
            {
                if (key.IsEncrypted && string.IsNullOrEmpty(Options.Passphrase))
                {
                    throw new SshFailure(SshErrorIds.KeyFileInvalid, $"Key file {full} is encrypted; give its passphrase (or add it to ssh-agent).");
                }

                key.EnsureLoaded();
            }

            _keyFiles[full] = new Lazy<KeyFile?>(key);
        }
    }

    public SshOptions Options { get; }

    /// <summary>The home directory used for ~ and the default paths.</summary>
    public string Home { get; }

    internal KnownHosts KnownHosts { get; }

    /// <summary>The jump hosts used so far (diagnostics and tests).</summary>
    internal IEnumerable<JumpHost> JumpHosts => _jumps.Values;

    /// <summary>How a target is reached: options, ssh config and defaults merged (cached per target).</summary>
    public SshHostSettings Resolve(SshTarget target)
    {
        var key = $"{target.Address}\n{target.Port}\n{target.User}";
        return _settings.GetOrAdd(key, _ => Report(SshHostSettings.Resolve(target.Address, target.Port, target.User, Options,
            _config.Lookup(target.Address, target.User ?? Options.User, target.Port ?? Options.Port, Options.JumpHost), Home), target));
    }

    private SshHostSettings ResolveJump(SshJumpHop hop) =>
        _settings.GetOrAdd($"jump\n{hop}", _ => Report(SshHostSettings.Resolve(hop.Host, hop.Port, hop.User, Options, _config.Lookup(hop.Host, hop.User, hop.Port), Home, isJump: true), null));

    private SshHostSettings Report(SshHostSettings settings, SshTarget? target)
    {
        foreach (var value in settings.Unsupported)
        {
            // Once per call: a keyword that could change where or how ssh connects (or what the host runs) is a
            // warning, since Moltar then behaves differently from ssh on the same config.
            if (SshConfig.HarmlessKeywords.Contains(value.Keyword.ToLowerInvariant()))
            {
                LogOnce("unsupported:" + value.Location, SshLogLevel.Verbose,
                    $"ssh config: '{value.Keyword}' ({value.Location}) is not supported by Moltar; ignored.", null);
            }
            else
            {
                LogOnce("unsupported:" + value.Location, SshLogLevel.Warning,
                    $"ssh config: '{value.Keyword} {value.Text}' ({value.Location}) is not supported by Moltar and could change where or how ssh connects; Moltar ignores it.", null);
            }
        }

        foreach (var note in settings.Notes)
        {
            LogOnce("note:" + note, SshLogLevel.Verbose, "ssh config: " + note, null);
        }

        return settings;
    }

    /// <summary>The keys offered to a host, in order: agent keys also named as key files, other agent keys (unless IdentitiesOnly), then key files.</summary>
    public IReadOnlyList<SshIdentity> IdentitiesFor(SshHostSettings settings)
    {
        var agent = settings.IdentityAgent is null ? null : Agent(settings.IdentityAgent);
        var agentIds = agent?.Identities ?? Array.Empty<SshIdentity>();
        var files = settings.IdentityFiles.Select(p => FileKey(p, settings.IdentityFilesAreDefaults)).OfType<KeyFile>().ToList();

        bool InFiles(SshIdentity a) => files.Any(f => f.PublicBlob.AsSpan().SequenceEqual(a.CertifiedKeyBlob));
        bool InAgent(KeyFile f) => agentIds.Any(a => a.PublicKeyBlob.AsSpan().SequenceEqual(f.PublicBlob));

        var result = new List<SshIdentity>();
        result.AddRange(agentIds.Where(InFiles));
        if (!settings.IdentitiesOnly)
        {
            result.AddRange(agentIds.Where(a => !InFiles(a)));
        }

        foreach (var file in files.Where(f => !InAgent(f)))
        {
            if (file.IsEncrypted && string.IsNullOrEmpty(Options.Passphrase) && !file.IsLoaded)
            {
                LogOnce("encrypted:" + file.Path, SshLogLevel.Verbose, $"Key file {file.Path} is encrypted and no passphrase was given; skipped.", null);
                continue;
            }

            if (result.Any(r => r.PublicKeyBlob.AsSpan().SequenceEqual(file.PublicBlob)))
            {
                continue;
            }

            result.Add(new SshIdentity("file", file.PublicBlob, file.Path, null, file.Algorithms, file.CertificateAlgorithms));
        }

        return WithCertificates(result, settings);
    }

    /// <summary>
    /// User certificates, as ssh loads them: CertificateFile (ssh config) and &lt;key&gt;-cert.pub beside each key
    /// file; each is offered just before the key it certifies (from a file or the agent), signed by that key.
    /// </summary>
    private List<SshIdentity> WithCertificates(List<SshIdentity> identities, SshHostSettings settings)
    {
        var paths = settings.CertificateFiles.Concat(settings.IdentityFiles.Select(p => p + "-cert.pub")).Distinct(StringComparer.Ordinal);
        var certificates = paths.Select(p => CertificateFile(p, explicitly: settings.CertificateFiles.Contains(p))).OfType<UserCertificate>().ToList();
        if (certificates.Count == 0)
        {
            return identities;
        }

        var result = new List<SshIdentity>();
        foreach (var identity in identities)
        {
            if (identity.CanSignForCertificate)
            {
                foreach (var certificate in certificates.Where(c => c.Key.AsSpan().SequenceEqual(identity.PublicKeyBlob)))
                {
                    if (!result.Any(r => r.PublicKeyBlob.AsSpan().SequenceEqual(certificate.Blob)))
                    {
                        result.Add(identity.ForCertificate(certificate.Blob, certificate.Path));
                    }
                }
            }

            result.Add(identity);
        }

        foreach (var unused in certificates.Where(c => !identities.Any(i => i.PublicKeyBlob.AsSpan().SequenceEqual(c.Key))))
        {
            LogOnce("cert-nokey:" + unused.Path, SshLogLevel.Verbose, $"Certificate {unused.Path}: neither a key file nor the agent holds its key; not offered.", null);
        }

        return result;
    }

    private sealed record UserCertificate(string Path, byte[] Blob, byte[] Key);

    private UserCertificate? CertificateFile(string path, bool explicitly) => _certificates.GetOrAdd(path, p => new Lazy<UserCertificate?>(() =>
    {
        if (!File.Exists(p))
        {
            if (explicitly)
            {
                Log(SshLogLevel.Verbose, $"Certificate file {p} (ssh config CertificateFile) does not exist; skipped.");
            }

            return null;
        }

        try
        {
            var fields = File.ReadAllText(p).Trim().Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries);
            var blob = fields.Length >= 2 ? Convert.FromBase64String(fields[1]) : null;
            var key = blob is null ? null : SshKeyBlob.CertifiedKey(blob);
            if (key is null)
            {
                Log(SshLogLevel.Verbose, $"Certificate file {p} is not an OpenSSH user certificate Moltar reads; skipped.");
                return null;
            }

            return new UserCertificate(p, blob!, key);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            Log(SshLogLevel.Verbose, $"Certificate file {p} could not be read: {e.Message}; skipped.");
            return null;
        }
    })).Value;

    private KeyFile? FileKey(string path, bool isDefault) => _keyFiles.GetOrAdd(path, p => new Lazy<KeyFile?>(() =>
    {
        if (!File.Exists(p))
        {
            if (!isDefault)
            {
                Log(SshLogLevel.Verbose, $"Key file {p} (ssh config IdentityFile) does not exist; skipped.");
            }

            return null;
        }

        try
        {
            return KeyFile.Open(p, Options.Passphrase);
        }
        catch (SshFailure e)
        {
            Log(SshLogLevel.Verbose, e.Message + " Skipped.");
            return null;
        }
    })).Value;

    private AgentKeys Agent(string path) => _agents.GetOrAdd(path, p => new Lazy<AgentKeys>(() =>
    {
        var client = new SshAgentClient(p);
        try
        {
            // Keys and the certificates the agent holds with them (ssh-add adds key-cert.pub beside a key).
            static bool Usable(string type) => type is "ssh-ed25519" or "ssh-rsa" || type.StartsWith("ecdsa-sha2-", StringComparison.Ordinal);
            static string Plain(string type) => SshKeyBlob.IsCertificate(type) ? type.Substring(0, type.Length - "-cert-v01@openssh.com".Length) : type;
            var ids = client.ListIdentities()
                .Where(i => Usable(Plain(SshKeyBlob.KeyType(i.PublicKeyBlob))) && (!SshKeyBlob.IsCertificate(i.KeyType) || SshKeyBlob.CertifiedKey(i.PublicKeyBlob) is not null))
                .Select(i => new SshIdentity("agent", i.PublicKeyBlob, null, i.Comment,
                    () => SshKeyBlob.AlgorithmsForKeyType(i.KeyType).Where(n => n is not "ssh-rsa" and not "ssh-rsa-cert-v01@openssh.com")
                        .Select(n => (Renci.SshNet.Security.HostAlgorithm)new AgentHostAlgorithm(n, i, client)).ToList(),
                    SshKeyBlob.IsCertificate(i.KeyType) ? null
                        : certificate => SshKeyBlob.AlgorithmsForKeyType(SshKeyBlob.KeyType(certificate)).Where(n => n != "ssh-rsa-cert-v01@openssh.com")
                            .Select(n => (Renci.SshNet.Security.HostAlgorithm)new AgentHostAlgorithm(n, i, client, certificate)).ToList()))
                .ToList();
            Log(SshLogLevel.Verbose, $"ssh-agent at {p} holds {ids.Count} usable key(s).");
            return new AgentKeys(ids);
        }
        catch (SshAgentException e)
        {
            Log(SshLogLevel.Verbose, $"ssh-agent not used: {e.Message}");
            return new AgentKeys(Array.Empty<SshIdentity>());
        }
    })).Value;

    private sealed record AgentKeys(IReadOnlyList<SshIdentity> Identities);

    /// <summary>
    /// Opens an authenticated connection to a target (through its jump host, if any). Blocks the calling thread:
    /// call it from a fan-out worker (or use ConnectAsync). Throws SshFailure with a stable ErrorId, or
    /// OperationCanceledException when the token fires (the half-open connection is closed).
    /// </summary>
    /// <summary>
    /// Runs a command; when the connection turns out to be gone before the command started (the server dropped it,
    /// idle or between two commands), connects again and runs it once more — nothing of it ran on the host. The
    /// connection passed in is then replaced by the new one (and the old one disposed).
    /// </summary>
    public ExecOutcome RunReconnecting(ref SshConnection connection, string command, ExecOptions? options = null,
                                       CancellationToken cancellationToken = default)
    {
        var outcome = connection.Run(command, options, cancellationToken);
        if (outcome.Started || outcome.ErrorId != SshErrorIds.ConnectionLost || cancellationToken.IsCancellationRequested)
            return outcome;
        SshConnection fresh;
        try
        {
            fresh = Connect(connection.Target, cancellationToken);
        }
        catch (SshFailure)
        {
            return outcome; // the host itself is gone: the lost connection is the failure to report
        }
        Log(SshLogLevel.Verbose, "the connection was gone before the command started; connected again to run it", connection.Target);
        SafeDispose(connection);
        connection = fresh;
        return connection.Run(command, options, cancellationToken);
    }

    public SshConnection Connect(SshTarget target, CancellationToken cancellationToken = default)
    {
        var settings = Resolve(target);
        var client = Open(settings, target, "host", info => new SshClient(info), JumpFor(settings), cancellationToken, out var lease);
        return new SshConnection(this, target, settings, client, lease);
    }

    /// <summary>Connect on a dedicated thread (never a thread-pool thread: SSH.NET's connect blocks).</summary>
    public Task<SshConnection> ConnectAsync(SshTarget target, CancellationToken cancellationToken = default) =>
        DedicatedThread.Run(() => Connect(target, cancellationToken), "Moltar SSH connect");

    /// <summary>
    /// Opens an SFTP session to a target with the same user, keys, host key checks and jump host as Connect.
    /// For engine code only (the SftpClient type lives in the module's private load context).
    /// </summary>
    public SftpConnection ConnectSftp(SshTarget target, CancellationToken cancellationToken = default)
    {
        var settings = Resolve(target);
        SftpClient client;
        IDisposable? lease;
        ConnectionInfo? connection = null;
        try
        {
            client = Open(settings, target, "host", info => new SftpClient(connection = info), JumpFor(settings), cancellationToken, out lease);
        }
        catch (SshFailure f) when (f.ErrorId == SshErrorIds.ConnectFailed && f.InnerException is SshException && connection is { IsAuthenticated: true })
        {
            // The server took the login, then refused or ended the 'sftp' subsystem: Dropbear runs an external
            // sftp-server and closes the channel (or, a moment later, the whole session) when there is none.
            throw new SshFailure(SshErrorIds.ConnectFailed,
                $"The host {settings.HostName}:{settings.Port} accepted the SSH login but has no working SFTP server ({f.InnerException.Message}). " +
                "Copying files needs SFTP on the host: OpenSSH has it built in; Dropbear runs /usr/lib/sftp-server (Debian and Ubuntu: apt-get install openssh-sftp-server).",
                settings.HostName, f.InnerException);
        }

        return new SftpConnection(target, settings, client, lease);
    }

    private JumpHost? JumpFor(SshHostSettings settings) => settings.Jumps.Count > 0 ? Jump(settings.Jumps) : null;

    internal T Open<T>(SshHostSettings settings, SshTarget? target, string role, Func<ConnectionInfo, T> create,
        JumpHost? via, CancellationToken cancellationToken, out IDisposable? lease)
        where T : BaseClient
    {
        try
        {
            return OpenAttempt(settings, target, role, create, via, null, cancellationToken, out lease);
        }
        catch (HostCertificateRefused refused)
        {
            // SSH.NET ended the key exchange over a host certificate ssh would drop (expired, not yet valid, signed with
            // an algorithm ssh refuses): as ssh, the host's plain key decides. SSH.NET cannot drop a certificate within
            // one key exchange, so Moltar connects once more asking only for plain host keys.
            Log(SshLogLevel.Verbose, $"The host certificate of the {role} {KnownHosts.LookupName(settings.HostName, settings.Port)} is not accepted: " +
                $"{refused.Problem}; connecting again for its plain key, as ssh checks it.", target);
            return OpenAttempt(settings, target, role, create, via, refused.Problem, cancellationToken, out lease);
        }
    }

    /// <summary>Thrown by one connect attempt when the host's certificate is dropped and its plain key must decide.</summary>
    private sealed class HostCertificateRefused(string problem) : Exception(problem)
    {
        public string Problem { get; } = problem;
    }

    private T OpenAttempt<T>(SshHostSettings settings, SshTarget? target, string role, Func<ConnectionInfo, T> create,
        JumpHost? via, string? refusedCertificate, CancellationToken cancellationToken, out IDisposable? lease)
        where T : BaseClient
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);

        var identities = IdentitiesFor(settings);
        if (identities.Count == 0)
        {
            var agentNote = settings.IdentityAgent is null ? "no ssh-agent (SSH_AUTH_SOCK is not set)" : $"the agent at {settings.IdentityAgent} has no usable keys";
            var fileNote = settings.IdentityFilesAreDefaults
                ? "none of the default key files (~/.ssh/id_ed25519, id_ecdsa, id_rsa) is usable"
                : $"none of the key files ({string.Join(", ", settings.IdentityFiles)}) is usable";
            throw new SshFailure(SshErrorIds.AuthenticationFailed,
                $"No key to log in to the {role} {settings.HostName} as {settings.User}: {agentNote}, and {fileNote}.", settings.HostName);
        }

        ProxyCommandRoute? proxy = null;
        if (via is not null)
        {
            lease = via.Acquire(settings.HostName, settings.Port, cancellationToken);
        }
        else if (settings.ProxyCommand is { } command)
        {
            lease = proxy = ProxyCommandRoute.Start(command, settings.HostName, settings.Platform, line => Log(SshLogLevel.Verbose, line, target));
            Log(SshLogLevel.Verbose, $"Reaching the {role} {settings.HostName} through ProxyCommand '{command}'.", target);
        }
        else
        {
            lease = null;
        }

        T? client = null;
        try
        {
            var tracker = new OfferTracker();
            var auth = new PrivateKeyAuthenticationMethod(settings.User, tracker.Wrap(identities));
            // Through a jump host SSH.NET connects to the local end of the forwarded port; the host key is
            // still checked for settings.HostName (the verifier does not look at the endpoint).
            // Through a ProxyCommand SSH.NET talks HTTP CONNECT to the route's one-time local proxy, which hands the
            // connection to the command's stdin/stdout; ConnectionInfo.Host stays the target's name.
            var info = lease switch
            {
                JumpLease jump => new ConnectionInfo("127.0.0.1", jump.Port, settings.User, auth),
                ProxyCommandRoute route => new ConnectionInfo(settings.HostName, settings.Port, settings.User, ProxyTypes.Http,
                    "127.0.0.1", route.Port, route.UserName, route.Password, auth),
                _ => new ConnectionInfo(settings.HostName, settings.Port, settings.User, auth),
            };
            info.Timeout = settings.ConnectTimeout;

            var notes = new List<string>();
            var knownTypes = settings.StrictHostKeyChecking == StrictHostKeyChecking.No
                ? Array.Empty<string>()
                : KnownHosts.KnownKeyTypes(settings.AllKnownHostsFiles, settings.HostName, settings.Port);
            var certAuthority = refusedCertificate is null && KnownHosts.HasCertAuthority(settings.AllKnownHostsFiles, settings.HostName, settings.Port);
            SshAlgorithms.Apply(info, settings.KexAlgorithms, settings.Ciphers, settings.HostKeyAlgorithms, knownTypes, notes, certAuthority);
            foreach (var note in notes)
            {
                LogOnce("alg:" + note, SshLogLevel.Verbose, "ssh config: " + note, null);
            }

            var verifier = new HostKeyVerifier(this, settings, target, role) { RefusedCertificateProblem = refusedCertificate };
            RecordPresentedCertificates(info, verifier);
            client = create(info);
            client.HostKeyReceived += verifier.Handle;
            if (settings.ServerAliveInterval is { } alive)
            {
                client.KeepAliveInterval = alive;
            }

            try
            {
                ConnectCancellable(client, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                client = null; // abandoned: disposed by the connect thread when SSH.NET lets go
                throw;
            }
            catch (Exception e)
            {
                var refused = verifier.Called || refusedCertificate is not null ? default : verifier.RefusedBySshNet();
                if (refused.RetryProblem is { } problem)
                {
                    throw new HostCertificateRefused(problem);
                }

                throw refused.Refused ?? Map(e, settings, role, verifier, tracker, proxy, info);
            }

            if (cancellationToken.IsCancellationRequested || _disposed.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }

            if (!client.IsConnected)
            {
                throw Map(verifier.Failure ?? (Exception)new SshConnectionException("The connection closed during the handshake."), settings, role, verifier, tracker, proxy, info);
            }

            return client;
        }
        catch
        {
            if (client is not null)
            {
                SafeDispose(client);
            }

            lease?.Dispose();
            lease = null;
            throw;
        }
    }

    /// <summary>
    /// Records the host certificate a host presents, as SSH.NET parses it: SSH.NET checks its validity window and CA
    /// signature before it asks HostKeyReceived, so without this a refused certificate would leave no trace.
    /// </summary>
    private static void RecordPresentedCertificates(ConnectionInfo info, HostKeyVerifier verifier)
    {
        foreach (var name in info.HostKeyAlgorithms.Keys.Where(SshAlgorithms.IsCertificate).ToList())
        {
            var parse = info.HostKeyAlgorithms[name];
            info.HostKeyAlgorithms[name] = data =>
            {
                var algorithm = parse(data);
                if (algorithm is CertificateHostAlgorithm certificate)
                {
                    verifier.RecordPresented(certificate.Certificate, data);
                }

                return algorithm;
            };
        }
    }

    /// <summary>
    /// SSH.NET's Connect blocks and cannot be cancelled while it reads the server's version or waits for key
    /// exchange. It runs on a thread of its own; on cancellation this returns at once and the connect thread
    /// disposes the client when SSH.NET lets go (within ConnectTimeout).
    /// </summary>
    private void ConnectCancellable(BaseClient client, CancellationToken cancellationToken)
    {
        var attempt = new ConnectAttempt(client);
        var thread = new Thread(attempt.Run) { IsBackground = true, Name = "Moltar SSH connect" };
        thread.Start();
        var handles = cancellationToken.CanBeCanceled
            ? new[] { attempt.Done.WaitHandle, _disposed.Token.WaitHandle, cancellationToken.WaitHandle }
            : new[] { attempt.Done.WaitHandle, _disposed.Token.WaitHandle };
        if (WaitHandle.WaitAny(handles) == 0)
        {
            if (attempt.Error is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(attempt.Error);
            }

            return;
        }

        attempt.Abandon();
        throw new OperationCanceledException("The connection was cancelled.", cancellationToken);
    }

    private sealed class ConnectAttempt(BaseClient client)
    {
        private const int Running = 0, Finished = 1, Abandoned = 2;
        private int _state;

        public ManualResetEventSlim Done { get; } = new(false);
        public Exception? Error { get; private set; }

        public void Run()
        {
            try
            {
                client.Connect();
            }
            catch (Exception e)
            {
                Error = e;
            }

            if (Interlocked.CompareExchange(ref _state, Finished, Running) == Abandoned)
            {
                SafeDispose(client);
            }

            Done.Set();
        }

        public void Abandon()
        {
            // While Connect runs, disposing the client stops nothing (SSH.NET assigns the session only once the
            // handshake is done) and turns the later Dispose into a no-op, so the session it then assigns stayed
            // connected for good. The connect thread disposes the client when SSH.NET returns (Run, above).
            if (Interlocked.CompareExchange(ref _state, Abandoned, Running) != Running)
            {
                SafeDispose(client);
            }
        }
    }

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

    private static SshFailure Map(Exception e, SshHostSettings settings, string role, HostKeyVerifier verifier, OfferTracker tracker, ProxyCommandRoute? proxy,
        ConnectionInfo info)
    {
        if (verifier.Failure is not null)
        {
            return verifier.Failure;
        }

        // SSH.NET checks a host certificate's validity window and CA signature itself and ends the key exchange
        // before Moltar sees the key: the host is then not trusted (ssh says "Certificate invalid").
        if (!verifier.Called && e is SshConnectionException && info.CurrentHostKeyAlgorithm is { } offered && SshAlgorithms.IsCertificate(offered))
        {
            return new SshFailure(SshErrorIds.HostKeyUnknown,
                $"The {role} {KnownHosts.LookupName(settings.HostName, settings.Port)} presented a host certificate ({offered}) that is not valid: " +
                "expired, not yet valid, or not signed by the CA it names. Renew the host's certificate, or trust its plain key in known_hosts.",
                settings.HostName, e);
        }

        // A proxy that exited is the reason, whatever SSH.NET saw (closed connection, no banner).
        if (proxy?.FailureReason(TimeSpan.FromSeconds(2)) is { } proxyFailure)
        {
            return new SshFailure(SshErrorIds.ConnectFailed, $"Could not connect to the {role} {settings.HostName}:{settings.Port}: {proxyFailure}", settings.HostName, e);
        }

        if (tracker.SignFailure is not null)
        {
            // The server accepted a key but signing failed (agent refused, wrong passphrase): an auth failure.
            return AuthFailure(tracker.SignFailure, settings, role, tracker);
        }

        var where = $"{settings.HostName}:{settings.Port}" + (settings.Jumps.Count > 0 ? $" (through jump host {string.Join(",", settings.Jumps)})"
            : proxy is not null ? $" (through ProxyCommand '{proxy.Command}')" : "");
        switch (e)
        {
            case SshFailure f:
                return f;
            case SshAuthenticationException:
            case SshConnectionException { DisconnectReason: DisconnectReason.NoMoreAuthenticationMethodsAvailable }:
            case SshAgentException:
                return AuthFailure(e, settings, role, tracker);
            case SshOperationTimeoutException:
                // A time limit ran out (the TCP connect never completed, or the host accepted it and never spoke
                // SSH): Timeout, like a command past -TimeoutSeconds, not ConnectFailed (refused, unreachable).
                var waited = $"{settings.ConnectTimeout.TotalSeconds:0.#} s";
                return new SshFailure(SshErrorIds.Timeout, e.Message.Contains("establish", StringComparison.OrdinalIgnoreCase)
                    ? $"Could not connect to the {role} {where}: the TCP connection was not accepted within {waited} (-ConnectTimeoutSeconds)."
                    : $"Could not connect to the {role} {where}: it accepted the connection but did not complete the SSH handshake within {waited} (-ConnectTimeoutSeconds); the connection was closed.",
                    settings.HostName, e);
            case ProxyException:
                return new SshFailure(SshErrorIds.ConnectFailed,
                    $"Could not reach the {role} {where} through the jump host: {e.Message}", settings.HostName, e);
            case SocketException se:
                return new SshFailure(SshErrorIds.ConnectFailed,
                    $"Could not connect to the {role} {where}: {se.Message} ({se.SocketErrorCode}).", settings.HostName, e);
            case SshException or IOException or ObjectDisposedException or TimeoutException:
                return new SshFailure(SshErrorIds.ConnectFailed,
                    $"Could not connect to the {role} {where}: {e.Message}", settings.HostName, e);
            default:
                // Not the network's or the host's doing: a bug (Moltar's or SSH.NET's). It goes on as itself and is
                // reported as Unexpected with its exception (MoltarFailure.Of), never as ConnectFailed.
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
                return null!; // not reached
        }
    }

    private static SshFailure AuthFailure(Exception e, SshHostSettings settings, string role, OfferTracker tracker)
    {
        var offered = tracker.Offered;
        var keys = offered.Count == 0 ? "no key could be offered" : "offered " + string.Join("; ", offered.Select(o => o.Description));
        if (tracker.SignFailure is { } sf)
        {
            return new SshFailure(SshErrorIds.AuthenticationFailed,
                $"Could not log in to the {role} as {settings.User}@{settings.HostName}:{settings.Port}: the server accepted a key but signing with it failed: {sf.Message} ({keys}).",
                settings.HostName, e);
        }

        return new SshFailure(SshErrorIds.AuthenticationFailed,
            $"Permission denied for {settings.User}@{settings.HostName}:{settings.Port}: the {role} refused public key authentication ({keys}).",
            settings.HostName, e);
    }

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
            var settings = ResolveJump(hops[i]);
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

    internal void Log(SshLogLevel level, string message, SshTarget? target = null)
    {
        try
        {
            _log?.Invoke(new SshLogEntry(level, message, target));
        }
        catch (Exception)
        {
            // A broken log sink must not fail a connection.
        }
    }

    internal void LogOnce(string key, SshLogLevel level, string message, SshTarget? target)
    {
        if (_logged.TryAdd(key, 0))
        {
            Log(level, message, target);
        }
    }

    /// <summary>
    /// Reads an ssh config as the options name it: null = the default file (missing is empty), "" or "none" =
    /// none, a path that does not exist = InvalidConfiguration. Shared with OpenSshCommandLine.
    /// </summary>
    internal static SshConfig LoadConfig(string? path, string defaultPath, string includeBase, string home, Action<string>? note)
    {
        if (path is not null && (path.Length == 0 || path.Equals("none", StringComparison.OrdinalIgnoreCase)))
        {
            return SshConfig.Empty;
        }

        var full = SshPaths.ExpandTilde(path ?? defaultPath, home);
        if (path is not null && !File.Exists(full))
        {
            throw new SshFailure(SshErrorIds.InvalidConfiguration, $"ssh config file {full} does not exist.");
        }

        var config = SshConfig.Load(full, home, includeBase);
        foreach (var text in config.Notes)
        {
            note?.Invoke(text);
        }

        return config;
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
