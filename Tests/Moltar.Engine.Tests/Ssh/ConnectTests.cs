using System.Collections.Concurrent;
using System.Diagnostics;
using Moltar.Engine.Ssh;
using Xunit;
using Xunit.Abstractions;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>Host keys, authentication, agent, ssh config and jump hosts against real sshd.</summary>
[Collection("sshd")]
public sealed class ConnectTests(SshdFixture sshd, ITestOutputHelper output)
{
    private SshFailure ConnectFails(SshOptions options, SshTarget target)
    {
        using var connector = new SshConnector(options);
        return Assert.Throws<SshFailure>(() => connector.Connect(target).Dispose());
    }

    [SshdFact]
    public void Unknown_host_is_refused_under_Yes()
    {
        sshd.EnsureAvailable();
        var empty = sshd.NewTempFile("known_hosts");
        var host = sshd.Hosts[3];
        var failure = ConnectFails(sshd.Options() with { KnownHostsPaths = new[] { empty } }, host.Target);

        Assert.Equal(SshErrorIds.HostKeyUnknown, failure.ErrorId);
        Assert.Contains($"[{host.Address}]:{host.Port}", failure.Message);
        Assert.Contains(host.Fingerprint, failure.Message);
        Assert.Equal("", File.ReadAllText(empty));
    }

    [SshdFact]
    public void AcceptNew_adds_an_unknown_host_once_under_twenty_parallel_connects()
    {
        sshd.EnsureAvailable();
        var file = sshd.NewTempFile("known_hosts");
        var host = sshd.Hosts[4];
        var log = new ConcurrentQueue<SshLogEntry>();
        using var connector = new SshConnector(sshd.Options() with { KnownHostsPaths = new[] { file }, StrictHostKeyChecking = StrictHostKeyChecking.AcceptNew }, log.Enqueue);

        var results = Enumerable.Range(0, 20).Select(_ => connector.ConnectAsync(host.Target)).ToArray();
        Task.WaitAll(results);
        foreach (var t in results)
        {
            t.Result.Dispose();
        }

        var lines = File.ReadAllLines(file);
        Assert.Single(lines);
        Assert.Equal(host.KnownHostsLine, lines[0]);
        Assert.Single(log, e => e.Message.StartsWith("Added ", StringComparison.Ordinal));

        // Another connector (another invocation) with Yes now trusts it; a second process would too.
        using var strict = new SshConnector(sshd.Options() with { KnownHostsPaths = new[] { file } });
        strict.Connect(host.Target).Dispose();
        Assert.Single(File.ReadAllLines(file));
    }

    [SshdFact]
    public void AcceptNew_many_hosts_in_parallel_each_written_once_and_hashed_when_configured()
    {
        sshd.EnsureAvailable();
        var file = sshd.NewTempFile("known_hosts");
        var config = sshd.NewTempFile("config", "Host *\n  HashKnownHosts yes\n");
        using var connector = new SshConnector(sshd.Options() with
        {
            KnownHostsPaths = new[] { file },
            StrictHostKeyChecking = StrictHostKeyChecking.AcceptNew,
            ConfigPath = config,
        });
        var tasks = sshd.Hosts.Take(10).SelectMany(h => new[] { connector.ConnectAsync(h.Target), connector.ConnectAsync(h.Target) }).ToArray();
        Task.WaitAll(tasks);
        foreach (var t in tasks)
        {
            t.Result.Dispose();
        }

        var lines = File.ReadAllLines(file);
        Assert.Equal(10, lines.Length);
        Assert.All(lines, l => Assert.StartsWith("|1|", l));
        var entries = KnownHosts.Parse(File.ReadAllText(file), file);
        foreach (var h in sshd.Hosts.Take(10))
        {
            Assert.Single(entries, e => e.MatchesHost($"[{h.Address}]:{h.Port}"));
        }
    }

    [SshdFact]
    public void AcceptNew_waits_for_another_process_holding_the_file_lock()
    {
        sshd.EnsureAvailable();
        var flock = SshdEnvironment.Which("flock");
        if (flock is null)
        {
            output.WriteLine("flock(1) not installed; cross-process lock not exercised");
            return;
        }

        var file = sshd.NewTempFile("known_hosts");
        var host = sshd.Hosts[5];
        // The holder says when it has the lock, and writes `released` just before it lets go of it (its exit).
        var locked = file + ".locked";
        var released = file + ".released";
        using var holder = Process.Start(new ProcessStartInfo(flock, new[] { "-x", file, "sh", "-c", $"touch {locked}; sleep 1; touch {released}" }) { UseShellExecute = false })!;
        HangGuard.Until(() => File.Exists(locked), "flock taking the lock");
        using var connector = new SshConnector(sshd.Options() with { KnownHostsPaths = new[] { file }, StrictHostKeyChecking = StrictHostKeyChecking.AcceptNew });
        HangGuard.Run(() => connector.Connect(host.Target).Dispose(), "a connect waiting for the known_hosts lock");
        Assert.True(File.Exists(released), "the connect wrote known_hosts while another process held its lock");
        holder.WaitForExit();
        Assert.Single(File.ReadAllLines(file));
    }

    [SshdFact]
    public void A_changed_key_is_refused_naming_host_and_both_fingerprints()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[6];
        var other = sshd.Hosts[7];
        // known_hosts says host 6 has host 7's key.
        var file = sshd.NewTempFile("known_hosts", $"[{host.Address}]:{host.Port} {other.PublicKeyLine}\n");
        foreach (var policy in new[] { StrictHostKeyChecking.Yes, StrictHostKeyChecking.AcceptNew })
        {
            var failure = ConnectFails(sshd.Options() with { KnownHostsPaths = new[] { file }, StrictHostKeyChecking = policy }, host.Target);
            Assert.Equal(SshErrorIds.HostKeyMismatch, failure.ErrorId);
            Assert.Contains($"[{host.Address}]:{host.Port}", failure.Message);
            Assert.Contains(other.Fingerprint, failure.Message);
            Assert.Contains(host.Fingerprint, failure.Message);
            output.WriteLine(failure.Message);
        }

        Assert.Single(File.ReadAllLines(file));
    }

    [SshdFact]
    public void A_revoked_key_is_refused()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[6];
        var file = sshd.NewTempFile("known_hosts", $"{host.KnownHostsLine}\n@revoked * {host.PublicKeyLine}\n");
        var failure = ConnectFails(sshd.Options() with { KnownHostsPaths = new[] { file } }, host.Target);
        Assert.Equal(SshErrorIds.HostKeyRevoked, failure.ErrorId);
    }

    [SshdFact]
    public void A_revoked_key_is_refused_under_every_policy_even_no_as_OpenSSH_does()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[6];
        var file = sshd.NewTempFile("known_hosts", $"@revoked * {host.PublicKeyLine}\n");
        foreach (var policy in new[] { StrictHostKeyChecking.Yes, StrictHostKeyChecking.AcceptNew, StrictHostKeyChecking.No })
        {
            var failure = ConnectFails(sshd.Options() with { KnownHostsPaths = new[] { file }, StrictHostKeyChecking = policy }, host.Target);
            Assert.Equal(SshErrorIds.HostKeyRevoked, failure.ErrorId);
            Assert.Contains("@revoked", failure.Message);
        }

        Assert.Single(File.ReadAllLines(file)); // AcceptNew added nothing
    }

    [SshdFact]
    public void No_checking_connects_with_a_warning()
    {
        sshd.EnsureAvailable();
        var empty = sshd.NewTempFile("known_hosts");
        var log = new ConcurrentQueue<SshLogEntry>();
        using var connector = new SshConnector(sshd.Options() with { KnownHostsPaths = new[] { empty }, StrictHostKeyChecking = StrictHostKeyChecking.No }, log.Enqueue);
        connector.Connect(sshd.Hosts[8].Target).Dispose();
        connector.Connect(sshd.Hosts[9].Target).Dispose();
        Assert.Single(log, e => e.Level == SshLogLevel.Warning && e.Message.Contains("not checked"));
        Assert.Equal("", File.ReadAllText(empty));
    }

    [SshdFact]
    public void Authentication_failure_names_the_user_and_the_keys_tried_never_key_material()
    {
        sshd.EnsureAvailable();
        var failure = ConnectFails(sshd.Options() with { KeyFiles = new[] { sshd.StrangerKey } }, sshd.Hosts[0].Target);
        Assert.Equal(SshErrorIds.AuthenticationFailed, failure.ErrorId);
        Assert.Contains("root@", failure.Message);
        Assert.Contains(sshd.StrangerKey, failure.Message);
        var fingerprint = SshKeyBlob.Fingerprint(Convert.FromBase64String(File.ReadAllText(sshd.StrangerKey + ".pub").Split(' ')[1]));
        Assert.Contains(fingerprint, failure.Message);
        Assert.DoesNotContain("PRIVATE", failure.Message);
        Assert.DoesNotContain(File.ReadAllText(sshd.StrangerKey + ".pub").Split(' ')[1], failure.Message);
        output.WriteLine(failure.Message);
    }

    [SshdFact]
    public void No_keys_at_all_is_an_authentication_failure_that_says_so()
    {
        sshd.EnsureAvailable();
        var failure = ConnectFails(sshd.Options() with { KeyFiles = Array.Empty<string>() }, sshd.Hosts[0].Target);
        Assert.Equal(SshErrorIds.AuthenticationFailed, failure.ErrorId);
        Assert.Contains("No key", failure.Message);
    }

    [SshdFact]
    public void A_second_key_is_tried_after_a_refused_one()
    {
        sshd.EnsureAvailable();
        using var connector = new SshConnector(sshd.Options() with { KeyFiles = new[] { sshd.StrangerKey, sshd.ClientRsaKey } });
        using var connection = connector.Connect(sshd.Hosts[0].Target);
        Assert.True(connection.Run("true").Succeeded);
    }

    [SshdFact]
    public void Encrypted_key_needs_its_passphrase()
    {
        sshd.EnsureAvailable();
        var options = sshd.Options() with { KeyFiles = new[] { sshd.EncryptedKey } };

        var missing = Assert.Throws<SshFailure>(() => new SshConnector(options));
        Assert.Equal(SshErrorIds.KeyFileInvalid, missing.ErrorId);
        Assert.Contains("passphrase", missing.Message);

        var wrong = Assert.Throws<SshFailure>(() => new SshConnector(options with { Passphrase = "not it" }));
        Assert.Equal(SshErrorIds.KeyFileInvalid, wrong.ErrorId);
        Assert.DoesNotContain("not it", wrong.Message);

        using var connector = new SshConnector(options with { Passphrase = SshdFixture.Passphrase });
        using var connection = connector.Connect(sshd.Hosts[1].Target);
        Assert.Equal("ok\n", connection.Run("echo ok").Stdout);
    }

    [SshdFact]
    public void A_config_key_with_a_wrong_passphrase_fails_authentication_saying_why()
    {
        sshd.EnsureAvailable();
        var config = sshd.NewTempFile("config", $"Host *\n  IdentityFile {sshd.EncryptedKey}\n");
        var failure = ConnectFails(sshd.Options() with { KeyFiles = Array.Empty<string>(), ConfigPath = config, Passphrase = "wrong" }, sshd.Hosts[1].Target);
        output.WriteLine(failure.Message);
        Assert.Equal(SshErrorIds.AuthenticationFailed, failure.ErrorId);
        Assert.Contains(sshd.EncryptedKey, failure.Message);
        Assert.Contains("passphrase", failure.Message);
        Assert.DoesNotContain("wrong", failure.Message.Replace("is wrong", "", StringComparison.Ordinal));
        output.WriteLine(failure.Message);

        // Without a passphrase the encrypted config key is skipped (not offered), with a verbose note.
        var log = new ConcurrentQueue<SshLogEntry>();
        using var connector = new SshConnector(sshd.Options() with { KeyFiles = Array.Empty<string>(), ConfigPath = config }, log.Enqueue);
        Assert.Equal(SshErrorIds.AuthenticationFailed, Assert.Throws<SshFailure>(() => connector.Connect(sshd.Hosts[1].Target)).ErrorId);
        Assert.Contains(log, e => e.Message.Contains("encrypted") && e.Message.Contains("skipped"));
    }

    [SshdFact]
    public void Agent_keys_authenticate_without_key_files_ed25519_and_rsa_sha2()
    {
        sshd.EnsureAvailable();
        sshd.ClearAgent();
        foreach (var key in new[] { sshd.ClientKey, sshd.ClientRsaKey })
        {
            sshd.ClearAgent();
            var socket = sshd.AgentSocket(key);
            var log = new ConcurrentQueue<SshLogEntry>();
            using var connector = new SshConnector(sshd.Options() with { KeyFiles = Array.Empty<string>(), UseAgent = true, AgentPath = socket }, log.Enqueue);
            var identities = connector.IdentitiesFor(connector.Resolve(sshd.Hosts[2].Target));
            Assert.Single(identities);
            Assert.Equal("agent", identities[0].Source);

            // Parallel connects share the agent (one short agent connection per signature).
            var tasks = sshd.Hosts.Take(4).Select(h => connector.ConnectAsync(h.Target)).ToArray();
            Task.WaitAll(tasks);
            foreach (var t in tasks)
            {
                using var c = t.Result;
                Assert.True(c.Run("true").Succeeded);
            }

            output.WriteLine($"{Path.GetFileName(key)}: {string.Join(" | ", log.Select(l => l.Message))}");
        }

        sshd.ClearAgent();
    }

    [SshdFact]
    public void An_agent_key_named_as_a_key_file_is_used_through_the_agent()
    {
        sshd.EnsureAvailable();
        sshd.ClearAgent();
        var socket = sshd.AgentSocket(sshd.EncryptedKey);
        // The encrypted key without passphrase is fine: the agent holds it.
        using var connector = new SshConnector(sshd.Options() with { KeyFiles = new[] { sshd.EncryptedKey }, UseAgent = true, AgentPath = socket });
        var identities = connector.IdentitiesFor(connector.Resolve(sshd.Hosts[2].Target));
        Assert.Equal("agent", Assert.Single(identities).Source);
        connector.Connect(sshd.Hosts[2].Target).Dispose();
        sshd.ClearAgent();
    }

    [SshdFact]
    public void Connection_refused_is_ConnectFailed()
    {
        sshd.EnsureAvailable();
        var failure = ConnectFails(sshd.Options() with { Port = 2 }, sshd.Hosts[0].Target);
        Assert.Equal(SshErrorIds.ConnectFailed, failure.ErrorId);
        Assert.Contains(sshd.Hosts[0].Address, failure.Message);
    }

    [SshdFact]
    public void A_silent_host_is_Timeout_after_the_connect_timeout()
    {
        sshd.EnsureAvailable();
        using var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        var port = ((System.Net.IPEndPoint)silent.LocalEndpoint).Port;
        var clock = Stopwatch.StartNew();
        // A silent host never ends the handshake by itself: only the connect timeout ends it within the hang guard.
        var failure = HangGuard.Run(() => ConnectFails(sshd.Options() with { Port = port, ConnectTimeout = TimeSpan.FromSeconds(1) }, new SshTarget("127.0.0.1")),
            "a connect to a silent host");
        Assert.Equal(SshErrorIds.Timeout, failure.ErrorId);
        Assert.Contains("did not complete the SSH handshake within 1 s", failure.Message);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"gave up after {clock.Elapsed}, before the connect timeout");
        output.WriteLine(failure.Message);
    }

    [SshdFact]
    public void Cancelling_a_connect_to_a_silent_host_returns_at_once()
    {
        sshd.EnsureAvailable();
        using var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        var port = ((System.Net.IPEndPoint)silent.LocalEndpoint).Port;
        // The connect timeout is past the hang guard: only the cancellation can end the connect in time.
        using var connector = new SshConnector(sshd.Options() with { Port = port, ConnectTimeout = HangGuard.NeverWaited });
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        HangGuard.Run(() => Assert.ThrowsAny<OperationCanceledException>(() => connector.Connect(new SshTarget("127.0.0.1"), cts.Token)),
            "a cancelled connect to a silent host");
    }

    [SshdFact]
    public void Ssh_config_alias_supplies_hostname_user_port_and_identity()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[10];
        var config = sshd.NewTempFile("config", $"""
            # a comment
            Host web-* !web-bad
              HostName {host.Address}
              User root
              Port {SshdFixture.SshPort}
              IdentityFile {sshd.ClientKey}
              ForwardAgent yes

            Host *
              User nobody
              Port 22
            """);
        var log = new ConcurrentQueue<SshLogEntry>();
        using var connector = new SshConnector(sshd.Options() with { User = null, Port = null, KeyFiles = Array.Empty<string>(), ConfigPath = config }, log.Enqueue);
        var settings = connector.Resolve(new SshTarget("web-1"));
        Assert.Equal(host.Address, settings.HostName);
        Assert.Equal("root", settings.User);
        Assert.Equal(SshdFixture.SshPort, settings.Port);

        using var connection = connector.Connect(new SshTarget("web-1"));
        Assert.Equal("root\n", connection.Run("whoami").Stdout);
        Assert.Contains(log, e => e.Message.Contains("ForwardAgent") && e.Message.Contains("not supported"));

        var bad = connector.Resolve(new SshTarget("web-bad"));
        Assert.Equal("nobody", bad.User);
        Assert.Equal(22, bad.Port);
    }

    [SshdFact]
    public void Jump_host_carries_every_target_over_one_bastion_connection()
    {
        sshd.EnsureAvailable();
        var bastion = sshd.Bastion;
        var before = CountInLog(bastion.LogPath, "Accepted publickey");
        var log = new ConcurrentQueue<SshLogEntry>();
        using var connector = new SshConnector(sshd.Options() with { JumpHost = $"root@{bastion.Address}:{bastion.Port}" }, log.Enqueue);
        var targets = sshd.Hosts.Take(6).ToList();
        var tasks = targets.Select(h => connector.ConnectAsync(h.Target)).ToArray();
        Task.WaitAll(tasks);
        foreach (var (task, host) in tasks.Zip(targets))
        {
            using var connection = task.Result;
            Assert.True(connection.ViaJumpHost);
            Assert.Equal(host.Address, connection.Run("echo $SSH_CONNECTION | cut -d' ' -f3").Stdout.Trim());
        }

        Assert.Equal(1, CountInLog(bastion.LogPath, "Accepted publickey") - before);
        var forwarded = File.ReadAllLines(bastion.LogPath).Where(l => l.Contains("server_request_direct_tcpip")).ToList();
        foreach (var host in targets)
        {
            Assert.Contains(forwarded, l => l.Contains(host.Address));
        }

        // One bastion connection; its SOCKS listener is closed once no target uses it.
        var jump = Assert.Single(connector.JumpHosts);
        Assert.Equal(1, jump.ConnectCount);
        Assert.Equal(0, jump.OpenListeners);
        output.WriteLine(string.Join("\n", log.Select(l => l.Message)));
    }

    [SshdFact]
    public void A_jump_hosts_local_forward_serves_its_one_connection_and_refuses_any_other_local_process()
    {
        sshd.EnsureAvailable();
        var bastion = sshd.Bastion;
        var log = new ConcurrentQueue<SshLogEntry>();
        using var connector = new SshConnector(sshd.Options() with { JumpHost = $"root@{bastion.Address}:{bastion.Port}" }, log.Enqueue);
        var target = sshd.Hosts[7];
        using var connection = connector.Connect(target.Target);
        var port = Assert.IsType<int>(connection.JumpPort);

        // The attack: another local process connects to the forward while Moltar's connection uses it. Served, it
        // would read the target's SSH banner (a path into the bastion's network); refused, the socket just closes.
        using var intruder = new System.Net.Sockets.TcpClient();
        intruder.Connect(System.Net.IPAddress.Loopback, port);
        var stream = intruder.GetStream();
        stream.ReadTimeout = (int)HangGuard.Limit.TotalMilliseconds;
        var buffer = new byte[256];
        int read;
        try
        {
            read = stream.Read(buffer, 0, buffer.Length);
        }
        catch (IOException)
        {
            read = 0; // reset instead of closed: refused all the same
        }

        Assert.Equal("", System.Text.Encoding.ASCII.GetString(buffer, 0, read));
        Assert.Contains(log, e => e.Level == SshLogLevel.Warning && e.Message.Contains("refused a second local connection"));

        // Moltar's own connection through that forward is unharmed.
        Assert.Equal(target.Address, connection.Run("echo $SSH_CONNECTION | cut -d' ' -f3").Stdout.Trim());
    }

    [SshdFact]
    public void Jump_host_from_ssh_config_and_its_host_key_is_checked()
    {
        sshd.EnsureAvailable();
        var bastion = sshd.Bastion;
        var target = sshd.Hosts[11];
        var config = sshd.NewTempFile("config", $"""
            Host bastion
              HostName {bastion.Address}
              Port {bastion.Port}
              User root
            Host {target.Address} {sshd.Hosts[12].Address}
              ProxyJump bastion
            """);
        using (var connector = new SshConnector(sshd.Options() with { ConfigPath = config }))
        {
            using var connection = connector.Connect(target.Target);
            Assert.True(connection.ViaJumpHost);
            Assert.True(connection.Run("true").Succeeded);
        }

        // The bastion's own key is checked: a wrong one fails every target behind it, naming the jump host.
        var wrong = sshd.NewTempFile("known_hosts", string.Join("\n", sshd.Hosts.Select(h => h.KnownHostsLine)) + $"\n[{bastion.Address}]:{bastion.Port} {sshd.Hosts[0].PublicKeyLine}\n");
        using (var connector = new SshConnector(sshd.Options() with { ConfigPath = config, KnownHostsPaths = new[] { wrong } }))
        {
            var first = Assert.Throws<SshFailure>(() => connector.Connect(target.Target));
            Assert.Equal(SshErrorIds.HostKeyMismatch, first.ErrorId);
            Assert.Contains("Jump host", first.Message);
            Assert.Contains(bastion.Address, first.Message);
            // The bastion's failure is remembered: the next target behind it fails the same way without the bastion
            // being connected again (its log shows no new connection).
            var bastionConnections = CountInLog(bastion.LogPath, "Connection from");
            var second = Assert.Throws<SshFailure>(() => connector.Connect(sshd.Hosts[12].Target));
            Assert.Equal(SshErrorIds.HostKeyMismatch, second.ErrorId);
            Assert.Equal(bastionConnections, CountInLog(bastion.LogPath, "Connection from"));
        }
    }

    [SshdFact]
    public void Jump_host_that_forbids_forwarding_fails_the_target_with_ConnectFailed()
    {
        sshd.EnsureAvailable();
        var noForwarding = sshd.Hosts[13];
        var failure = ConnectFails(sshd.Options() with { JumpHost = $"root@{noForwarding.Address}:{noForwarding.Port}" }, sshd.Hosts[14].Target);
        Assert.Equal(SshErrorIds.ConnectFailed, failure.ErrorId);
        output.WriteLine(failure.Message);
    }

    private static int CountInLog(string path, string text) =>
        File.Exists(path) ? File.ReadAllLines(path).Count(l => l.Contains(text, StringComparison.Ordinal)) : 0;
}
