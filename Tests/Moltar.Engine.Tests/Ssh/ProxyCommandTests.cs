using System.Collections.Concurrent;
using System.Text;
using Moltar.Engine.Ssh;
using Xunit;
using Xunit.Abstractions;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// ssh config's ProxyCommand and multi-hop ProxyJump against real sshd. The proxy is OpenSSH's own `ssh -W`
/// through the fixture's bastion (what `aws ssm start-session` does for SSH over Session Manager: a program whose
/// stdin/stdout are the connection), and the target is a name that does not resolve, so the proxy is the only path.
/// </summary>
[Collection("sshd")]
public sealed class ProxyCommandTests(SshdFixture sshd, ITestOutputHelper output)
{
    private const string Unresolvable = "web-1.moltar-proxy.invalid";

    /// <summary>The system ssh as a stdio proxy through the bastion to a fixed address (the only way to the host).</summary>
    private string SshW(SshdHost to) =>
        $"ssh -F none -i {sshd.ClientKey} -o UserKnownHostsFile={sshd.KnownHostsPath} -o StrictHostKeyChecking=yes -o BatchMode=yes " +
        $"-p {sshd.Bastion.Port} -W {to.Address}:%p root@{sshd.Bastion.Address}";

    /// <summary>known_hosts naming the unresolvable name with the real host's key: the key is checked for the name typed.</summary>
    private string KnownHostsFor(SshdHost host, string name = Unresolvable) =>
        sshd.NewTempFile("known_hosts", $"[{name}]:{host.Port} {host.PublicKeyLine}\n{sshd.Bastion.KnownHostsLine}\n");

    private SshOptions OptionsWith(string config, string knownHosts) =>
        sshd.Options() with { ConfigPath = config, KnownHostsPaths = new[] { knownHosts } };

    [SshdFact]
    public void A_host_reachable_only_through_a_ProxyCommand_runs_commands_and_copies_files_with_tokens_expanded()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[15];
        var tokens = sshd.NewTempFile("tokens");
        var config = sshd.NewTempFile("config", $"""
            Host *.moltar-proxy.invalid
              ProxyCommand sh -c "echo '%h %p %r %n %%' > {tokens}; exec {SshW(host)}"
            """);
        var log = new ConcurrentQueue<SshLogEntry>();
        using var connector = new SshConnector(OptionsWith(config, KnownHostsFor(host)), log.Enqueue);
        var target = new SshTarget(Unresolvable, "i-proxy", "proxy");

        using (var connection = connector.Connect(target))
        {
            Assert.True(connection.ViaProxyCommand);
            Assert.False(connection.ViaJumpHost);
            var result = connection.Run("echo $SSH_CONNECTION | cut -d' ' -f3");
            Assert.True(result.Succeeded, result.ErrorMessage);
            Assert.Equal(host.Address, result.Stdout.Trim());

            // SFTP (Copy-MoltarFile) takes the same path: a second connection through its own proxy process, with
            // the SFTP subsystem on a channel of it.
            var remote = Path.Combine(sshd.Directory, $"proxy-{Guid.NewGuid():N}.txt");
            using (var second = connector.Connect(target))
            {
                Assert.True(second.ViaProxyCommand);
                Assert.NotEqual(connection.ProxyProcessId, second.ProxyProcessId);
                SshdFixture.UploadOverSftp(second, "through the proxy\n", remote);
            }

            Assert.Equal("through the proxy\n", connection.Run($"cat {remote}").Stdout);
        }

        // %h is the host name, %p the port, %r the remote user, %n the name as typed, %% a percent sign.
        Assert.Equal($"{Unresolvable} {SshdFixture.SshPort} root {Unresolvable} %", File.ReadAllText(tokens).Trim());
        Assert.Contains(log, e => e.Message.Contains("through ProxyCommand", StringComparison.Ordinal));
    }

    [SshdFact]
    public void The_proxy_process_ends_with_its_connection_and_when_the_connect_fails()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[16];
        var config = sshd.NewTempFile("config", $"""
            Host {Unresolvable}
              ProxyCommand {SshW(host)}
            """);
        using var connector = new SshConnector(OptionsWith(config, KnownHostsFor(host)));
        var connection = connector.Connect(new SshTarget(Unresolvable));
        var pid = connection.ProxyProcessId!.Value;
        Assert.True(IsRunning(pid));
        connection.Dispose();
        Assert.False(IsRunning(pid), $"proxy {pid} still runs after the connection closed");

        // A refused host key: the connect fails after the proxy started; the proxy must not be left behind.
        var before = ProxyProcesses(host.Address);
        var wrongKey = sshd.NewTempFile("known_hosts", $"[{Unresolvable}]:{host.Port} {sshd.Hosts[0].PublicKeyLine}\n{sshd.Bastion.KnownHostsLine}\n");
        using var refusing = new SshConnector(OptionsWith(config, wrongKey));
        var failure = Assert.Throws<SshFailure>(() => refusing.Connect(new SshTarget(Unresolvable)));
        Assert.Equal(SshErrorIds.HostKeyMismatch, failure.ErrorId);
        Assert.Equal(before, ProxyProcesses(host.Address));
    }

    [SshdFact]
    public void A_failing_proxy_is_ConnectFailed_with_its_exit_code_and_message()
    {
        sshd.EnsureAvailable();
        var config = sshd.NewTempFile("config", """
            Host *.invalid
              ProxyCommand sh -c 'echo "cannot reach %h: no route" >&2; exit 3'
            """);
        using var connector = new SshConnector(OptionsWith(config, sshd.KnownHostsPath));
        var failure = Assert.Throws<SshFailure>(() => connector.Connect(new SshTarget(Unresolvable)));
        output.WriteLine(failure.Message);
        Assert.Equal(SshErrorIds.ConnectFailed, failure.ErrorId);
        Assert.Contains("exited with code 3", failure.Message);
        Assert.Contains($"cannot reach {Unresolvable}: no route", failure.Message);

        // A command that does not exist: the shell's own message.
        var missing = sshd.NewTempFile("config", "Host *.invalid\n  ProxyCommand /nonexistent/moltar-proxy %h\n");
        using var connector2 = new SshConnector(OptionsWith(missing, sshd.KnownHostsPath));
        var failure2 = Assert.Throws<SshFailure>(() => connector2.Connect(new SshTarget(Unresolvable)));
        Assert.Equal(SshErrorIds.ConnectFailed, failure2.ErrorId);
        Assert.Contains("exited with code 127", failure2.Message);
        Assert.Contains("/nonexistent/moltar-proxy", failure2.Message);
    }

    [Fact]
    public void The_local_proxy_port_refuses_a_client_without_the_one_time_password()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        // `cat` echoes what it is sent: whoever gets through the listener talks to the proxy command.
        using var route = ProxyCommandRoute.Start("cat", "attack.invalid", OpenSshPlatform.Unix, _ => { });

        using (var intruder = new System.Net.Sockets.TcpClient("127.0.0.1", route.Port))
        {
            var stream = intruder.GetStream();
            stream.ReadTimeout = 60_000;
            stream.Write(Encoding.ASCII.GetBytes("CONNECT attack.invalid:22 HTTP/1.0\r\nProxy-Authorization: Basic bW9sdGFyOmd1ZXNz\r\n\r\n"));
            var answer = new StreamReader(stream, Encoding.ASCII).ReadToEnd();
            Assert.StartsWith("HTTP/1.0 407", answer);
        }

        // The route's own client (what SSH.NET sends) is let through, and its bytes reach the command.
        using var client = new System.Net.Sockets.TcpClient("127.0.0.1", route.Port);
        var s = client.GetStream();
        s.ReadTimeout = 60_000;
        var auth = Convert.ToBase64String(Encoding.ASCII.GetBytes($"{route.UserName}:{route.Password}"));
        s.Write(Encoding.ASCII.GetBytes($"CONNECT attack.invalid:22 HTTP/1.0\r\nProxy-Authorization: Basic {auth}\r\n\r\nhello\n"));
        var reader = new StreamReader(s, Encoding.ASCII);
        Assert.StartsWith("HTTP/1.0 200", reader.ReadLine());
        Assert.Equal("", reader.ReadLine());
        Assert.Equal("hello", reader.ReadLine());
    }

    [SshdFact]
    public void A_two_hop_ProxyJump_chain_reaches_the_target_through_both_bastions()
    {
        sshd.EnsureAvailable();
        var (first, second, target) = (sshd.Bastion, sshd.Bastion2, sshd.Hosts[18]);
        var before1 = ForwardsTo(first.LogPath, second.Address);
        var before2 = ForwardsTo(second.LogPath, target.Address);
        using var connector = new SshConnector(sshd.Options() with
        {
            JumpHost = $"root@{first.Address}:{first.Port},root@{second.Address}:{second.Port}",
        });
        using (var connection = connector.Connect(target.Target))
        {
            Assert.True(connection.ViaJumpHost);
            var result = connection.Run("echo $SSH_CONNECTION");
            Assert.True(result.Succeeded, result.ErrorMessage);
            output.WriteLine(result.Stdout);
            Assert.Equal(target.Address, result.Stdout.Split(' ')[2]);
        }

        // The first bastion forwarded to the second, the second to the target.
        Assert.Equal(before1 + 1, ForwardsTo(first.LogPath, second.Address));
        Assert.Equal(before2 + 1, ForwardsTo(second.LogPath, target.Address));
        Assert.Equal(2, connector.JumpHosts.Count());
    }

    [SshdFact]
    public void A_ProxyJump_hop_reached_through_its_own_ProxyCommand()
    {
        sshd.EnsureAvailable();
        var target = sshd.Hosts[19];
        // The bastion itself is only reachable through a proxy (ssh -W via bastion2): jump hosts read ssh config too.
        var proxyToBastion = $"ssh -F none -i {sshd.ClientKey} -o UserKnownHostsFile={sshd.KnownHostsPath} -o StrictHostKeyChecking=yes " +
                             $"-o BatchMode=yes -p {sshd.Bastion2.Port} -W {sshd.Bastion.Address}:%p root@{sshd.Bastion2.Address}";
        var config = sshd.NewTempFile("config", $"""
            Host bastion.moltar-proxy.invalid
              User root
              Port {sshd.Bastion.Port}
              ProxyCommand {proxyToBastion}
            Host {target.Address}
              ProxyJump bastion.moltar-proxy.invalid
            """);
        var known = KnownHostsFor(sshd.Bastion, "bastion.moltar-proxy.invalid");
        File.AppendAllText(known, string.Join("\n", sshd.Hosts.Select(h => h.KnownHostsLine)) + "\n");
        var before = ForwardsTo(sshd.Bastion2.LogPath, sshd.Bastion.Address);
        using var connector = new SshConnector(OptionsWith(config, known));
        using var connection = connector.Connect(target.Target);
        Assert.True(connection.ViaJumpHost);
        Assert.True(connection.Run("true").Succeeded);
        Assert.Equal(before + 1, ForwardsTo(sshd.Bastion2.LogPath, sshd.Bastion.Address));
    }

    [SshdFact]
    public void Enter_MoltarInstance_hands_ssh_the_same_ProxyCommand_path_with_the_same_shell()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[14];
        var config = sshd.NewTempFile("config", $"Host *.moltar-proxy.invalid\n  ProxyCommand {SshW(host)}\n");
        var options = OptionsWith(config, KnownHostsFor(host));
        var target = new SshTarget(Unresolvable, "i-proxy", "proxy");

        // The engine goes through the proxy...
        using (var connector = new SshConnector(options))
        {
            using var connection = connector.Connect(target);
            Assert.True(connection.ViaProxyCommand);
            Assert.Equal(host.Address, connection.Run("echo $SSH_CONNECTION").Stdout.Split(' ')[2]);
        }

        // ...and so does the system ssh Enter-MoltarInstance starts, run here with its arguments and environment.
        var line = OpenSshCommandLine.Create("ssh", target, options, new[] { "echo", "$SSH_CONNECTION" }, OpenSshPlatform.Unix);
        Assert.Equal("/bin/sh", line.Environment["SHELL"]);
        var info = new System.Diagnostics.ProcessStartInfo(line.FileName) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in new[] { "-o", "BatchMode=yes" }.Concat(line.Arguments))
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in line.Environment)
        {
            info.Environment[k] = v;
        }

        using var ssh = System.Diagnostics.Process.Start(info)!;
        ssh.StandardInput.Close();
        var stderr = ssh.StandardError.ReadToEndAsync();
        var stdout = ssh.StandardOutput.ReadToEnd();
        Assert.True(ssh.WaitForExit(120_000));
        output.WriteLine(stderr.Result);
        Assert.Equal(0, ssh.ExitCode);
        Assert.Equal(host.Address, stdout.Split(' ')[2]);
    }

    [SshdFact]
    public void Known_hosts_verdicts_match_ssh_for_plain_hashed_wildcard_and_revoked_entries()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[13];
        var name = $"[{host.Address}]:{host.Port}";
        var hashed = KnownHosts.FormatLine(name, Convert.FromBase64String(host.PublicKeyLine.Split(' ')[1]), hash: true);
        var cases = new (string Name, string KnownHosts)[]
        {
            ("plain", host.KnownHostsLine),
            ("hashed", hashed),
            ("wildcard", $"[127.0.9.*]:{host.Port} {host.PublicKeyLine}"),
            ("negated", $"[127.0.9.*]:{host.Port},!{name} {host.PublicKeyLine}"),
            ("other key", $"{name} {sshd.Hosts[0].PublicKeyLine}"),
            ("revoked", $"{host.KnownHostsLine}\n@revoked * {host.PublicKeyLine}"),
            ("no entry", $"{sshd.Hosts[0].KnownHostsLine}"),
        };
        foreach (var c in cases)
        {
            var file = sshd.NewTempFile("known_hosts", c.KnownHosts + "\n");
            using var connector = new SshConnector(sshd.Options() with { KnownHostsPaths = new[] { file } });
            bool moltar;
            try
            {
                connector.Connect(host.Target).Dispose();
                moltar = true;
            }
            catch (SshFailure e)
            {
                output.WriteLine($"{c.Name}: Moltar {e.ErrorId}");
                moltar = false;
            }

            Assert.True(moltar == SshdFixture.SshConnects(file, host, sshd.ClientKey), $"{c.Name}: Moltar {(moltar ? "connected" : "refused")}, ssh did not agree");
        }
    }

    private static bool IsRunning(int pid)
    {
        var stat = $"/proc/{pid}/stat";
        if (!File.Exists(stat))
        {
            return false;
        }

        try
        {
            // A zombie (state Z) has ended; only its parent has not reaped it yet.
            var text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static int ProxyProcesses(string address) =>
        Directory.GetDirectories("/proc").Select(d => Path.GetFileName(d)).Where(n => n.All(char.IsDigit)).Select(int.Parse)
            .Count(p => IsRunning(p) && SshdFixture.CommandLine(p).Contains($"-W {address}:", StringComparison.Ordinal));

    private static int ForwardsTo(string log, string address) =>
        File.Exists(log) ? File.ReadAllLines(log).Count(l => l.Contains("server_request_direct_tcpip") && l.Contains($"target {address} port ")) : 0;
}
