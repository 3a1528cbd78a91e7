using Moltar.Engine.Ssh;
using Renci.SshNet;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// One connect attempt on its own, against real sshd: the settings and keys are handed in (resolved elsewhere), the
/// attempt makes the route, the handshake with the host key check, and the login; its failures are the mapped ones.
/// </summary>
[Collection("sshd")]
public sealed class SshConnectAttemptTests(SshdFixture sshd)
{
    private readonly SshLog _log = new(null);

    private (SshConnectAttempt Attempt, SshHostSettings Settings, IReadOnlyList<SshIdentity> Identities) Prepare(SshdHost host, SshOptions options)
    {
        var settings = new SshSettingsResolver(options, sshd.Home, _log).For(host.Target);
        var identities = new SshIdentitySource(options, sshd.Home, _log).For(settings);
        return (new SshConnectAttempt(new KnownHosts(), _log, CancellationToken.None), settings, identities);
    }

    /// <summary>The failure of one attempt to the fixture's host 5 with these options (the keys they resolve to, or those given).</summary>
    private TFailure AttemptFails<TFailure>(SshOptions options, Func<ConnectionInfo, SshClient>? create = null, IReadOnlyList<SshIdentity>? identities = null)
        where TFailure : Exception
    {
        var host = sshd.Hosts[5];
        var (attempt, settings, resolved) = Prepare(host, options);
        return Assert.Throws<TFailure>(() => attempt.Open(settings, identities ?? resolved, host.Target, "host", create ?? (info => new SshClient(info)),
            null, CancellationToken.None, out _));
    }

    [SshdFact]
    public void Logs_in_with_the_keys_given_after_checking_the_host_key()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[5];
        var (attempt, settings, identities) = Prepare(host, sshd.Options());

        using var client = attempt.Open(settings, identities, host.Target, "host", info => new SshClient(info), null, CancellationToken.None, out var lease);

        Assert.Null(lease);
        Assert.True(client.IsConnected);
        Assert.Equal("root", client.ConnectionInfo.Username);
        using var command = client.RunCommand("echo $SSH_CONNECTION");
        Assert.Equal(host.Address, command.Result.Split(' ')[2]);
    }

    [SshdFact]
    public void Keys_the_host_refuses_are_AuthenticationFailed_naming_each_key_offered()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[5];
        var failure = AttemptFails<SshFailure>(sshd.Options() with { KeyFiles = new[] { sshd.StrangerKey } });

        Assert.Equal(SshErrorIds.AuthenticationFailed, failure.ErrorId);
        Assert.Contains($"Permission denied for root@{host.Address}:{host.Port}", failure.Message, StringComparison.Ordinal);
        Assert.Contains(sshd.StrangerKey, failure.Message, StringComparison.Ordinal);
    }

    [SshdFact]
    public void No_keys_at_all_is_AuthenticationFailed_before_anything_connects()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[5];
        var created = false;
        var failure = AttemptFails<SshFailure>(sshd.Options(), info => { created = true; return new SshClient(info); }, Array.Empty<SshIdentity>());

        Assert.Equal(SshErrorIds.AuthenticationFailed, failure.ErrorId);
        Assert.StartsWith($"No key to log in to the host {host.Address} as root", failure.Message, StringComparison.Ordinal);
        Assert.False(created);
    }

    [SshdFact]
    public void An_unknown_host_key_under_Yes_is_HostKeyUnknown()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[5];
        var failure = AttemptFails<SshFailure>(sshd.Options() with { KnownHostsPaths = new[] { sshd.NewTempFile("known_hosts") } });

        Assert.Equal(SshErrorIds.HostKeyUnknown, failure.ErrorId);
        Assert.Contains(host.Fingerprint, failure.Message, StringComparison.Ordinal);
    }

    [SshdFact]
    public void A_bug_inside_the_connect_is_Unexpected_with_its_exception_never_ConnectFailed()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[5];
        var failure = AttemptFails<MoltarException>(sshd.Options(), info => new BuggyClient(info));

        Assert.Equal(MoltarErrorIds.Unexpected, failure.ErrorId);
        var bug = Assert.IsType<InvalidOperationException>(failure.Failure.Exception);
        Assert.Equal(BuggyClient.Message, bug.Message);
        Assert.Equal(host.Address, failure.Failure.Host);
    }

    /// <summary>A client whose own code fails once SSH.NET has connected: the shape of a bug, not of a network error.</summary>
    private sealed class BuggyClient(ConnectionInfo info) : SshClient(info)
    {
        public const string Message = "a bug after the login (moltar-21 test)";

        protected override void OnConnected() => throw new InvalidOperationException(Message);
    }
}
