using System.IO.Pipes;
using System.Net.Sockets;
using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// The Windows agents (Win32-OpenSSH's pipe, Pageant's pipe) through the same agent code, tested on Linux: .NET's
/// named pipes are Unix sockets here, so a pipe server relays each connection to a real ssh-agent. IdentityAgent
/// (a path, none, SSH_AUTH_SOCK) against real sshd.
/// </summary>
[Collection("sshd")]
public sealed class AgentPipeTests(SshdFixture sshd)
{
    [Fact]
    public void Windows_picks_SSH_AUTH_SOCK_then_the_OpenSSH_pipe_then_Pageant()
    {
        Func<string, string?> Env(string? sock) => n => n switch { "SSH_AUTH_SOCK" => sock, "USERNAME" => "ann", _ => null };
        IEnumerable<string> Pipes(params string[] names) => names;

        Assert.Equal("/tmp/agent.sock", SshAgentClient.DefaultPath(OpenSshPlatform.Windows, Env("/tmp/agent.sock"), () => Pipes("openssh-ssh-agent")));
        Assert.Equal(@"\\.\pipe\openssh-ssh-agent", SshAgentClient.DefaultPath(OpenSshPlatform.Windows, Env(null), () => Pipes("pageant.ann.0f1e", "openssh-ssh-agent")));
        Assert.Equal(@"\\.\pipe\pageant.ann.0f1e", SshAgentClient.DefaultPath(OpenSshPlatform.Windows, Env(null), () => Pipes("pageant.bob.aaaa", "pageant.ann.0f1e")));
        // Nothing runs: the OpenSSH pipe, so the error names it.
        Assert.Equal(@"\\.\pipe\openssh-ssh-agent", SshAgentClient.DefaultPath(OpenSshPlatform.Windows, Env(null), () => Pipes("pageant.bob.aaaa")));
        Assert.Null(SshAgentClient.DefaultPath(OpenSshPlatform.Unix, Env(null), () => Pipes("openssh-ssh-agent")));
    }

    [SshdFact]
    public void A_key_held_by_an_agent_behind_a_Pageant_named_pipe_logs_in()
    {
        sshd.EnsureAvailable();
        var socket = sshd.AgentSocket(sshd.ClientRsaKey);
        var pipeName = $"pageant.{Environment.UserName}.moltar18{Guid.NewGuid():N}";
        using var relay = new PipeToAgentRelay(pipeName, socket);

        var chosen = SshAgentClient.DefaultPath(OpenSshPlatform.Windows, n => n == "USERNAME" ? Environment.UserName : null, () => new[] { "other", pipeName });
        Assert.Equal(@"\\.\pipe\" + pipeName, chosen);

        using var connector = new SshConnector(sshd.Options() with { KeyFiles = Array.Empty<string>(), UseAgent = true, AgentPath = chosen });
        var identities = connector.IdentitiesFor(connector.Resolve(sshd.Hosts[3].Target));
        Assert.Contains(identities, i => i.Source == "agent" && i.KeyType == "ssh-rsa");
        using var connection = connector.Connect(sshd.Hosts[3].Target);
        Assert.True(connection.Run("true").Succeeded);
        Assert.True(relay.Connections > 0, "the pipe was not used");
    }

    [SshdFact]
    public void IdentityAgent_in_ssh_config_chooses_the_agent_and_none_turns_it_off()
    {
        sshd.EnsureAvailable();
        var socket = sshd.AgentSocket(sshd.ClientRsaKey);
        var withAgent = sshd.NewTempFile("config", $"Host *\n  IdentityAgent {socket}\n");
        using (var connector = new SshConnector(sshd.Options() with { KeyFiles = Array.Empty<string>(), UseAgent = true, ConfigPath = withAgent }))
        {
            Assert.Equal(socket, connector.Resolve(sshd.Hosts[4].Target).IdentityAgent);
            using var connection = connector.Connect(sshd.Hosts[4].Target);
            Assert.True(connection.Run("true").Succeeded);
        }

        var none = sshd.NewTempFile("config", "Host *\n  IdentityAgent none\n");
        using (var connector = new SshConnector(sshd.Options() with { KeyFiles = Array.Empty<string>(), UseAgent = true, ConfigPath = none }))
        {
            Assert.Null(connector.Resolve(sshd.Hosts[4].Target).IdentityAgent);
            var failure = Assert.Throws<SshFailure>(() => connector.Connect(sshd.Hosts[4].Target));
            Assert.Equal(SshErrorIds.AuthenticationFailed, failure.ErrorId);
        }

        // IdentityAgent SSH_AUTH_SOCK reads the variable (as ssh: the name, not a path).
        var fromEnv = sshd.NewTempFile("config", "Host *\n  IdentityAgent SSH_AUTH_SOCK\n");
        using (var connector = new SshConnector(sshd.Options() with { KeyFiles = Array.Empty<string>(), UseAgent = true, ConfigPath = fromEnv }))
        {
            Assert.Equal(Environment.GetEnvironmentVariable("SSH_AUTH_SOCK") is { Length: > 0 } s ? s : null, connector.Resolve(sshd.Hosts[4].Target).IdentityAgent);
        }
    }

    /// <summary>A named pipe server (a Unix socket under .NET on Linux) that relays each client to a real ssh-agent.</summary>
    private sealed class PipeToAgentRelay : IDisposable
    {
        private readonly string _name;
        private readonly string _agent;
        private readonly CancellationTokenSource _stop = new();
        private int _connections;

        public PipeToAgentRelay(string name, string agentSocket)
        {
            _name = name;
            _agent = agentSocket;
            new Thread(Serve) { IsBackground = true, Name = "agent pipe relay" }.Start();
        }

        public int Connections => Volatile.Read(ref _connections);

        private void Serve()
        {
            while (!_stop.IsCancellationRequested)
            {
                var server = new NamedPipeServerStream(_name, PipeDirection.InOut, NamedPipeServerStream.MaxAllowedServerInstances, PipeTransmissionMode.Byte, PipeOptions.Asynchronous);
                try
                {
                    server.WaitForConnectionAsync(_stop.Token).GetAwaiter().GetResult();
                }
                catch (OperationCanceledException)
                {
                    server.Dispose();
                    return;
                }

                Interlocked.Increment(ref _connections);
                var agent = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                agent.Connect(new UnixDomainSocketEndPoint(_agent));
                var agentStream = new NetworkStream(agent, ownsSocket: true);
                _ = Task.Run(async () =>
                {
                    try
                    {
                        await Task.WhenAny(server.CopyToAsync(agentStream), agentStream.CopyToAsync(server));
                    }
                    catch (IOException)
                    {
                    }
                    finally
                    {
                        server.Dispose();
                        agentStream.Dispose();
                    }
                });
            }
        }

        public void Dispose() => _stop.Cancel();
    }
}
