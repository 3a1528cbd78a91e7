using System.Net.Sockets;
using Moltar.Engine.Ssh;
using Renci.SshNet.Common;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>The one mapping of a lost connection: which exceptions mean the connection is gone, and the failure that says so.</summary>
public sealed class LostConnectionTests
{
    public static TheoryData<Exception, bool> Exceptions => new()
    {
        { new SshConnectionException("An established connection was aborted by the server."), true },
        { new SocketException((int)SocketError.ConnectionReset), true },
        { new ObjectDisposedException("Session"), true },
        { new SshOperationTimeoutException("Session operation has timed out"), true },
        { new SshAuthenticationException("Permission denied (publickey)."), false },
        { new SshException("Channel open failed."), false },
        { new InvalidOperationException("a bug"), false },
    };

    [Theory]
    [MemberData(nameof(Exceptions))]
    public void Only_what_says_the_connection_is_gone_means_it_is(Exception exception, bool gone) =>
        Assert.Equal(gone, SshFailure.MeansConnectionGone(exception));

    [Fact]
    public void A_lost_connection_is_ConnectionLost_about_the_target_with_its_cause()
    {
        var cause = new SshConnectionException("closed");
        var failure = SshFailure.ConnectionLost(new SshTarget("10.0.21.5", "i-1", "web1"), "The connection to web1 was lost before the copy started: closed", cause);
        Assert.Equal((SshErrorIds.ConnectionLost, FailureCategory.ConnectionError, "10.0.21.5"), (failure.ErrorId, failure.Category, failure.Host));
        Assert.Same(cause, failure.InnerException);
    }
}
