using System.Net.Sockets;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;
using Renci.SshNet.Common;
using Xunit;

namespace Moltar.Engine.Tests.FanOut;

/// <summary>
/// One failure value from where it happens to the error record; a bug is Unexpected (with its exception), never a
/// network error's id.
/// </summary>
public class MoltarFailureTests
{
    [Fact]
    public void AFaultThatIsNotANetworkErrorIsUnexpectedWithTheExceptionKept()
    {
        // A real fan-out whose work fails the way a bug does (not SSH, not the network): the same path a host's work takes.
        var bug = new InvalidOperationException("Collection was modified; enumeration operation may not execute.");
        using var runner = new FanOutRunner<SshTarget, ExecOutcome>(ctx => ctx.Item.Name == "web2" ? throw bug : new ExecOutcome());
        runner.Add(new SshTarget("127.0.21.1", "i-1", "web1"));
        runner.Add(new SshTarget("127.0.21.2", "i-2", "web2"));
        runner.Complete();
        var completed = HangGuard.Run(() => runner.ReadAll().Where(e => e.Kind == FanOutEventKind.Completed).ToList(), "the fan-out");

        var healthy = completed.Single(e => e.Item!.Name == "web1");
        Assert.Null(SshFanOut.FailureOf(healthy));
        Assert.True(SshFanOut.ToResult(healthy, "true").Succeeded);

        var broken = completed.Single(e => e.Item!.Name == "web2");
        var failure = SshFanOut.FailureOf(broken)!;
        Assert.Equal(MoltarErrorIds.Unexpected, failure.ErrorId);
        Assert.NotEqual(SshErrorIds.ConnectFailed, failure.ErrorId);
        Assert.Equal(FailureCategory.NotSpecified, failure.Category);
        Assert.Equal("127.0.21.2", failure.Host);
        Assert.Same(bug, failure.Exception);
        Assert.Contains("System.InvalidOperationException: Collection was modified", failure.Message);
        Assert.Contains("bug in Moltar", failure.Message);

        var result = SshFanOut.ToResult(broken, "true");
        Assert.False(result.Succeeded);
        Assert.Equal(MoltarErrorIds.Unexpected, result.ErrorId);
        Assert.Equal(failure.Message, result.Error);
    }

    public static TheoryData<Exception, string, FailureCategory> Exceptions => new()
    {
        { new SocketException((int)SocketError.ConnectionRefused), SshErrorIds.ConnectFailed, FailureCategory.ConnectionError },
        { new SshConnectionException("An established connection was aborted by the server."), SshErrorIds.ConnectFailed, FailureCategory.ConnectionError },
        { new ProxyException("SOCKS proxy refused"), SshErrorIds.ConnectFailed, FailureCategory.ConnectionError },
        { new OperationCanceledException(), MoltarErrorIds.Cancelled, FailureCategory.OperationStopped },
        { new FanOutSkippedException("not started"), MoltarErrorIds.Skipped, FailureCategory.OperationStopped },
        { new NullReferenceException(), MoltarErrorIds.Unexpected, FailureCategory.NotSpecified },
        { new ArgumentOutOfRangeException("index"), MoltarErrorIds.Unexpected, FailureCategory.NotSpecified },
        { new FormatException("bad"), MoltarErrorIds.Unexpected, FailureCategory.NotSpecified },
    };

    [Theory]
    [MemberData(nameof(Exceptions))]
    public void AnExceptionMapsToItsFailure(Exception exception, string errorId, FailureCategory category)
    {
        var failure = MoltarFailure.Of(exception, "web1");
        Assert.Equal((errorId, category, "web1"), (failure.ErrorId, failure.Category, failure.Host));
        Assert.Same(exception, failure.Exception);
    }

    [Fact]
    public void AMoltarExceptionCarriesTheValueMadeWhereItWasThrown()
    {
        var thrown = new SshFailure(SshErrorIds.HostKeyMismatch, "web1: the host key changed", "jump.example");
        var failure = MoltarFailure.Of(thrown, "127.0.21.1");
        // The host it was made with (a jump host's) stays; the value is the exception's own.
        Assert.Same(thrown.Failure, failure);
        Assert.Equal((SshErrorIds.HostKeyMismatch, FailureCategory.SecurityError, "jump.example"), (failure.ErrorId, failure.Category, failure.Host));
        Assert.Same(thrown, failure.Exception);

        var withoutHost = new MoltarException(Moltar.Engine.Deploy.DeployErrorIds.HookFailed, FailureCategory.InvalidOperation, "hook failed");
        Assert.Equal("127.0.21.1", MoltarFailure.Of(withoutHost, "127.0.21.1").Host);
    }
}
