using System.Net.Sockets;
using Renci.SshNet.Common;
using Renci.SshNet.Messages.Transport;

namespace Moltar.Engine.Ssh;

/// <summary>
/// What one failed connect attempt knew when it failed, besides the exception: the host key check, the host key
/// algorithm agreed, the ProxyCommand, and the keys offered. SshConnectAttempt fills it; tests build it directly.
/// </summary>
internal sealed record ConnectFailureFacts(SshHostSettings Settings, string Role)
{
    /// <summary>Why the host key check refused the host (null: not refused, or not checked).</summary>
    public SshFailure? HostKeyFailure { get; init; }
    /// <summary>Whether SSH.NET asked for the host key check (it does not when it refuses a host certificate itself).</summary>
    public bool HostKeyChecked { get; init; }
    /// <summary>The host key algorithm of the key exchange, once agreed.</summary>
    public string? HostKeyAlgorithm { get; init; }
    /// <summary>The ProxyCommand the connection went through (null: none).</summary>
    public string? ProxyCommand { get; init; }
    /// <summary>Why the ProxyCommand ended, when it did (asked only when needed: it waits briefly for the process).</summary>
    public Func<string?>? ProxyFailure { get; init; }
    /// <summary>The server accepted a key but signing with it failed (agent refused, wrong passphrase).</summary>
    public Exception? SignFailure { get; init; }
    /// <summary>The keys offered, as the message describes them.</summary>
    public IReadOnlyList<string> Offered { get; init; } = Array.Empty<string>();
}

/// <summary>
/// Maps what ended a connect attempt to the failure the user sees: a stable SshErrorIds id with a message naming the
/// host, the route and the keys offered. Only the network's and the host's exceptions are mapped; anything else is a
/// bug and becomes Unexpected with its exception kept, never ConnectFailed.
/// </summary>
internal static class SshConnectErrors
{
    public static MoltarException Map(Exception e, ConnectFailureFacts facts)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(facts);
        var settings = facts.Settings;
        var role = facts.Role;
        if (facts.HostKeyFailure is not null)
        {
            return facts.HostKeyFailure;
        }

        // SSH.NET checks a host certificate's validity window and CA signature itself and ends the key exchange
        // before Moltar sees the key: the host is then not trusted (ssh says "Certificate invalid").
        if (!facts.HostKeyChecked && e is SshConnectionException && facts.HostKeyAlgorithm is { } offered && SshAlgorithms.IsCertificate(offered))
        {
            return new SshFailure(SshErrorIds.HostKeyUnknown,
                $"The {role} {KnownHosts.LookupName(settings.HostName, settings.Port)} presented a host certificate ({offered}) that is not valid: " +
                "expired, not yet valid, or not signed by the CA it names. Renew the host's certificate, or trust its plain key in known_hosts.",
                settings.HostName, e);
        }

        // A proxy that exited is the reason, whatever SSH.NET saw (closed connection, no banner).
        if (facts.ProxyFailure?.Invoke() is { } proxyFailure)
        {
            return new SshFailure(SshErrorIds.ConnectFailed, $"Could not connect to the {role} {settings.HostName}:{settings.Port}: {proxyFailure}", settings.HostName, e);
        }

        if (facts.SignFailure is not null)
        {
            // The server accepted a key but signing failed (agent refused, wrong passphrase): an auth failure.
            return AuthFailure(facts.SignFailure, facts);
        }

        var where = $"{settings.HostName}:{settings.Port}" + (settings.Jumps.Count > 0 ? $" (through jump host {string.Join(",", settings.Jumps)})"
            : facts.ProxyCommand is not null ? $" (through ProxyCommand '{facts.ProxyCommand}')" : "");
        switch (e)
        {
            case MoltarException f:
                return f;
            case SshAuthenticationException:
            case SshConnectionException { DisconnectReason: DisconnectReason.NoMoreAuthenticationMethodsAvailable }:
            case SshAgentException:
                return AuthFailure(e, facts);
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
                // Not the network's or the host's doing: a bug (Moltar's or SSH.NET's), reported as such with its exception.
                return new MoltarException(MoltarFailure.Of(e, settings.HostName));
        }
    }

    private static SshFailure AuthFailure(Exception e, ConnectFailureFacts facts)
    {
        var settings = facts.Settings;
        var keys = facts.Offered.Count == 0 ? "no key could be offered" : "offered " + string.Join("; ", facts.Offered);
        if (facts.SignFailure is { } sf)
        {
            return new SshFailure(SshErrorIds.AuthenticationFailed,
                $"Could not log in to the {facts.Role} as {settings.User}@{settings.HostName}:{settings.Port}: the server accepted a key but signing with it failed: {sf.Message} ({keys}).",
                settings.HostName, e);
        }

        return new SshFailure(SshErrorIds.AuthenticationFailed,
            $"Permission denied for {settings.User}@{settings.HostName}:{settings.Port}: the {facts.Role} refused public key authentication ({keys}).",
            settings.HostName, e);
    }
}
