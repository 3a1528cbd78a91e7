using System.Net.Sockets;
using Moltar.Engine.Ssh;
using Renci.SshNet.Common;
using Renci.SshNet.Messages.Transport;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// The connect attempt's error mapping on its own: each exception a failed connect can end with, and what the attempt
/// knew (host key check, certificate, ProxyCommand, keys offered), to the failure the user sees. A bug is Unexpected
/// with its exception kept, never a network error's id.
/// </summary>
public sealed class SshConnectErrorsTests
{
    private static readonly SshHostSettings Settings = new()
    {
        Alias = "web1",
        HostName = "web1.example",
        Port = 2222,
        User = "deploy",
        ConnectTimeout = TimeSpan.FromSeconds(7),
    };

    private static ConnectFailureFacts Facts(SshHostSettings? settings = null) =>
        new(settings ?? Settings, "host") { Offered = new[] { "file ~/.ssh/id_ed25519 SHA256:abc" } };

    public static TheoryData<Exception, string> Mapped => new()
    {
        { new SshAuthenticationException("Permission denied (publickey)."), SshErrorIds.AuthenticationFailed },
        { new SshConnectionException("No more methods.", DisconnectReason.NoMoreAuthenticationMethodsAvailable), SshErrorIds.AuthenticationFailed },
        { new SshAgentException("the agent refused to sign"), SshErrorIds.AuthenticationFailed },
        { new SshOperationTimeoutException("Connection failed to establish within 7000 milliseconds."), SshErrorIds.Timeout },
        { new SshOperationTimeoutException("Socket read operation has timed out after 7000 milliseconds."), SshErrorIds.Timeout },
        { new ProxyException("SOCKS proxy refused"), SshErrorIds.ConnectFailed },
        { new SocketException((int)SocketError.ConnectionRefused), SshErrorIds.ConnectFailed },
        { new SshConnectionException("An established connection was aborted by the server."), SshErrorIds.ConnectFailed },
        { new SshException("Server response does not contain SSH protocol identification."), SshErrorIds.ConnectFailed },
        { new IOException("Broken pipe"), SshErrorIds.ConnectFailed },
        { new ObjectDisposedException("Socket"), SshErrorIds.ConnectFailed },
        { new TimeoutException("no answer"), SshErrorIds.ConnectFailed },
    };

    [Theory]
    [MemberData(nameof(Mapped))]
    public void Each_network_or_host_exception_gets_its_id_naming_the_host_and_keeping_the_exception(Exception exception, string errorId)
    {
        var failure = SshConnectErrors.Map(exception, Facts());

        Assert.IsType<SshFailure>(failure);
        Assert.Equal(errorId, failure.ErrorId);
        Assert.Equal(SshFailure.CategoryOf(errorId), failure.Category);
        Assert.Equal("web1.example", failure.Failure.Host);
        Assert.Contains("web1.example", failure.Message, StringComparison.Ordinal);
        Assert.Same(exception, failure.InnerException);
    }

    [Fact]
    public void An_authentication_failure_names_the_user_and_the_keys_offered()
    {
        var failure = SshConnectErrors.Map(new SshAuthenticationException("Permission denied (publickey)."), Facts());
        Assert.Equal("Permission denied for deploy@web1.example:2222: the host refused public key authentication (offered file ~/.ssh/id_ed25519 SHA256:abc).",
            failure.Message);

        var none = SshConnectErrors.Map(new SshAuthenticationException("denied"), Facts() with { Offered = Array.Empty<string>() });
        Assert.Contains("(no key could be offered)", none.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_timeout_says_which_limit_ran_out_and_the_route()
    {
        var tcp = SshConnectErrors.Map(new SshOperationTimeoutException("Connection failed to establish within 7000 milliseconds."), Facts());
        Assert.Equal("Could not connect to the host web1.example:2222: the TCP connection was not accepted within 7 s (-ConnectTimeoutSeconds).", tcp.Message);

        var jumped = new SshHostSettings
        {
            HostName = "web1.example",
            Port = 2222,
            User = "deploy",
            ConnectTimeout = TimeSpan.FromSeconds(7),
            Jumps = SshJumpHop.ParseList("admin@bastion.example:2200"),
        };
        var handshake = SshConnectErrors.Map(new SshOperationTimeoutException("Socket read operation has timed out."), Facts(jumped));
        Assert.Equal("Could not connect to the host web1.example:2222 (through jump host admin@bastion.example:2200): it accepted the connection but did not " +
                     "complete the SSH handshake within 7 s (-ConnectTimeoutSeconds); the connection was closed.", handshake.Message);

        var proxied = SshConnectErrors.Map(new SocketException((int)SocketError.ConnectionRefused), Facts() with { ProxyCommand = "nc %h %p" });
        Assert.Contains("(through ProxyCommand 'nc %h %p')", proxied.Message, StringComparison.Ordinal);
        Assert.Contains("(ConnectionRefused)", proxied.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_exception_is_Unexpected_with_the_exception_kept_never_ConnectFailed()
    {
        foreach (var bug in new Exception[] { new InvalidOperationException("Collection was modified."), new NullReferenceException(), new FormatException("bad") })
        {
            var failure = SshConnectErrors.Map(bug, Facts());

            Assert.IsNotType<SshFailure>(failure);
            Assert.Equal(MoltarErrorIds.Unexpected, failure.ErrorId);
            Assert.NotEqual(SshErrorIds.ConnectFailed, failure.ErrorId);
            Assert.Equal(FailureCategory.NotSpecified, failure.Category);
            Assert.Same(bug, failure.Failure.Exception);
            Assert.Same(bug, failure.InnerException);
            Assert.Equal("web1.example", failure.Failure.Host);
            Assert.Contains("bug in Moltar", failure.Message, StringComparison.Ordinal);
            // What the fan-out makes of it when it reaches a host's result: the same value.
            Assert.Same(failure.Failure, MoltarFailure.Of(failure, "127.0.21.1"));
        }
    }

    [Fact]
    public void The_host_key_check_s_refusal_wins_over_whatever_SSH_NET_threw()
    {
        var refused = new SshFailure(SshErrorIds.HostKeyMismatch, "The host key of web1.example changed.", "web1.example");
        var failure = SshConnectErrors.Map(new SshConnectionException("Key exchange negotiation failed."), Facts() with { HostKeyFailure = refused, HostKeyChecked = true });
        Assert.Same(refused, failure);
    }

    [Fact]
    public void A_failure_already_mapped_passes_through_unchanged()
    {
        var lease = new SshFailure(SshErrorIds.ConnectFailed, "Jump host admin@bastion: refused", "bastion.example");
        Assert.Same(lease, SshConnectErrors.Map(lease, Facts()));
    }

    [Fact]
    public void A_host_certificate_SSH_NET_refused_before_the_check_is_HostKeyUnknown()
    {
        var facts = Facts() with { HostKeyChecked = false, HostKeyAlgorithm = "ssh-ed25519-cert-v01@openssh.com" };
        var failure = SshConnectErrors.Map(new SshConnectionException("Certificate is not valid."), facts);
        Assert.Equal(SshErrorIds.HostKeyUnknown, failure.ErrorId);
        Assert.Contains("presented a host certificate (ssh-ed25519-cert-v01@openssh.com) that is not valid", failure.Message, StringComparison.Ordinal);

        // The same exception with a plain host key algorithm is a connection failure.
        Assert.Equal(SshErrorIds.ConnectFailed, SshConnectErrors.Map(new SshConnectionException("closed"), facts with { HostKeyAlgorithm = "ssh-ed25519" }).ErrorId);
    }

    [Fact]
    public void A_ProxyCommand_that_exited_is_the_reason_whatever_SSH_NET_saw()
    {
        var facts = Facts() with { ProxyCommand = "false", ProxyFailure = () => "ProxyCommand 'false' exited with code 1" };
        var failure = SshConnectErrors.Map(new SshException("Server response does not contain SSH protocol identification."), facts);
        Assert.Equal(SshErrorIds.ConnectFailed, failure.ErrorId);
        Assert.Equal("Could not connect to the host web1.example:2222: ProxyCommand 'false' exited with code 1", failure.Message);

        // A proxy still running says nothing: the exception decides.
        Assert.Equal(SshErrorIds.AuthenticationFailed,
            SshConnectErrors.Map(new SshAuthenticationException("denied"), facts with { ProxyFailure = () => null }).ErrorId);
    }

    [Fact]
    public void A_key_the_server_accepted_but_that_could_not_sign_is_an_authentication_failure_saying_so()
    {
        var facts = Facts() with { SignFailure = new SshAgentException("agent refused operation") };
        var failure = SshConnectErrors.Map(new SshConnectionException("closed"), facts);
        Assert.Equal(SshErrorIds.AuthenticationFailed, failure.ErrorId);
        Assert.Equal("Could not log in to the host as deploy@web1.example:2222: the server accepted a key but signing with it failed: agent refused operation " +
                     "(offered file ~/.ssh/id_ed25519 SHA256:abc).", failure.Message);
    }
}
