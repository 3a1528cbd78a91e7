using Renci.SshNet;
using Renci.SshNet.Security;

namespace Moltar.Engine.Ssh;

/// <summary>
/// Opens one connection: the route (direct TCP, a jump host's forwarded port, or a ProxyCommand), the handshake with
/// its algorithms and host key check, and the login with the identities given. A host certificate ssh would drop
/// costs one more attempt offering plain host keys only. Failures are SshConnectErrors' values. Thread-safe (each
/// Open is independent); the connector's disposal cancels attempts in progress.
/// </summary>
internal sealed class SshConnectAttempt(KnownHosts knownHosts, SshLog log, CancellationToken connectorDisposed)
{
    /// <summary>
    /// A connected, authenticated client for the host. The lease (a jump host's forward or the ProxyCommand route)
    /// belongs to the client: dispose it with the client. Throws MoltarException (SshFailure with a stable id, or
    /// Unexpected) or OperationCanceledException (the half-open connection is closed).
    /// </summary>
    public T Open<T>(SshHostSettings settings, IReadOnlyList<SshIdentity> identities, SshTarget? target, string role, Func<ConnectionInfo, T> create,
        Func<string, int, CancellationToken, IDisposable>? via, CancellationToken cancellationToken, out IDisposable? lease)
        where T : BaseClient
    {
        try
        {
            return Once(settings, identities, target, role, create, via, null, cancellationToken, out lease);
        }
        catch (HostCertificateRefused refused)
        {
            // SSH.NET ended the key exchange over a host certificate ssh would drop (expired, not yet valid, signed with
            // an algorithm ssh refuses): as ssh, the host's plain key decides. SSH.NET cannot drop a certificate within
            // one key exchange, so Moltar connects once more asking only for plain host keys.
            log.Write(SshLogLevel.Verbose, $"The host certificate of the {role} {KnownHosts.LookupName(settings.HostName, settings.Port)} is not accepted: " +
                $"{refused.Problem}; connecting again for its plain key, as ssh checks it.", target);
            return Once(settings, identities, target, role, create, via, refused.Problem, cancellationToken, out lease);
        }
    }

    /// <summary>Thrown by one attempt when the host's certificate is dropped and its plain key must decide.</summary>
    private sealed class HostCertificateRefused(string problem) : Exception(problem)
    {
        public string Problem { get; } = problem;
    }

    private T Once<T>(SshHostSettings settings, IReadOnlyList<SshIdentity> identities, SshTarget? target, string role, Func<ConnectionInfo, T> create,
        Func<string, int, CancellationToken, IDisposable>? via, string? refusedCertificate, CancellationToken cancellationToken, out IDisposable? lease)
        where T : BaseClient
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(connectorDisposed.IsCancellationRequested, typeof(SshConnector));

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
            lease = via(settings.HostName, settings.Port, cancellationToken);
        }
        else if (settings.ProxyCommand is { } command)
        {
            lease = proxy = ProxyCommandRoute.Start(command, settings.HostName, settings.Platform, line => log.Write(SshLogLevel.Verbose, line, target));
            log.Write(SshLogLevel.Verbose, $"Reaching the {role} {settings.HostName} through ProxyCommand '{command}'.", target);
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
                : knownHosts.KnownKeyTypes(settings.AllKnownHostsFiles, settings.HostName, settings.Port);
            var certAuthority = refusedCertificate is null && knownHosts.HasCertAuthority(settings.AllKnownHostsFiles, settings.HostName, settings.Port);
            SshAlgorithms.Apply(info, settings.KexAlgorithms, settings.Ciphers, settings.HostKeyAlgorithms, knownTypes, notes, certAuthority);
            foreach (var note in notes)
            {
                log.Once("alg:" + note, SshLogLevel.Verbose, "ssh config: " + note);
            }

            var verifier = new HostKeyVerifier(knownHosts, log, settings, target, role) { RefusedCertificateProblem = refusedCertificate };
            RecordPresentedCertificates(info, verifier);
            client = create(info);
            client.HostKeyReceived += verifier.Handle;
            if (settings.ServerAliveInterval is { } alive)
            {
                client.KeepAliveInterval = alive;
            }

            ConnectFailureFacts Facts() => new(settings, role)
            {
                HostKeyFailure = verifier.Failure,
                HostKeyChecked = verifier.Called,
                HostKeyAlgorithm = info.CurrentHostKeyAlgorithm,
                ProxyCommand = proxy?.Command,
                ProxyFailure = proxy is { } running ? () => running.FailureReason(TimeSpan.FromSeconds(2)) : null,
                SignFailure = tracker.SignFailure,
                Offered = tracker.Offered.Select(o => o.Description).ToList(),
            };

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

                throw refused.Refused ?? SshConnectErrors.Map(e, Facts());
            }

            if (cancellationToken.IsCancellationRequested || connectorDisposed.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }

            if (!client.IsConnected)
            {
                throw SshConnectErrors.Map(verifier.Failure ?? (Exception)new Renci.SshNet.Common.SshConnectionException("The connection closed during the handshake."), Facts());
            }

            return client;
        }
        catch
        {
            if (client is not null)
            {
                SshConnector.SafeDispose(client);
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
        var attempt = new BlockingConnect(client);
        var thread = new Thread(attempt.Run) { IsBackground = true, Name = "Moltar SSH connect" };
        thread.Start();
        var handles = cancellationToken.CanBeCanceled
            ? new[] { attempt.Done.WaitHandle, connectorDisposed.WaitHandle, cancellationToken.WaitHandle }
            : new[] { attempt.Done.WaitHandle, connectorDisposed.WaitHandle };
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

    private sealed class BlockingConnect(BaseClient client)
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
                SshConnector.SafeDispose(client);
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
                SshConnector.SafeDispose(client);
            }
        }
    }
}
