using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Moltar.Engine.Ssh;
using Xunit;
using Xunit.Abstractions;

namespace Moltar.Engine.Tests.Ssh;

[Collection("sshd")]
public sealed class ExecTests(SshdFixture sshd, ITestOutputHelper output)
{
    private SshConnection Connect(SshdHost? host = null, SshOptions? options = null)
    {
        sshd.EnsureAvailable();
        var connector = new SshConnector(options ?? sshd.Options());
        return connector.Connect((host ?? sshd.Hosts[0]).Target);
    }

    [SshdFact]
    public void Runs_a_command_and_returns_output_and_exit_code()
    {
        using var connection = Connect();
        var outcome = connection.Run("echo hello; echo world");

        Assert.True(outcome.Succeeded, outcome.ErrorMessage);
        Assert.Equal(0, outcome.ExitCode);
        Assert.Equal("hello\nworld\n", outcome.Stdout);
        Assert.Equal("", outcome.Stderr);
        Assert.Null(outcome.ErrorId);
        output.WriteLine($"kex={connection.KeyExchangeAlgorithm} cipher={connection.Cipher} hostkey={connection.HostKeyAlgorithm} server={connection.ServerVersion}");
    }

    [SshdFact]
    public void Negotiates_the_fast_key_exchange_and_gcm()
    {
        using var connection = Connect();
        // The sshd here (9.2) has no mlkem768x25519: curve25519 must win over sntrup761.
        Assert.StartsWith("curve25519-sha256", connection.KeyExchangeAlgorithm);
        Assert.Equal("aes128-gcm@openssh.com", connection.Cipher);
    }

    [SshdFact]
    public void Keeps_stderr_apart_and_reports_a_non_zero_exit()
    {
        using var connection = Connect();
        var lines = new ConcurrentQueue<(ExecStream, string)>();
        var outcome = connection.Run("echo out; echo err >&2; echo 'no newline' >&2; printf tail; exit 3",
            new ExecOptions { OnLine = (s, l) => lines.Enqueue((s, l)) });

        Assert.False(outcome.Succeeded);
        Assert.Equal(SshErrorIds.CommandFailed, outcome.ErrorId);
        Assert.Equal(3, outcome.ExitCode);
        Assert.Equal("out\ntail", outcome.Stdout);
        Assert.Equal("err\nno newline\n", outcome.Stderr);
        Assert.Contains("code 3", outcome.ErrorMessage);
        Assert.Equal(new[] { "out", "tail" }, lines.Where(l => l.Item1 == ExecStream.Stdout).Select(l => l.Item2));
        Assert.Equal(new[] { "err", "no newline" }, lines.Where(l => l.Item1 == ExecStream.Stderr).Select(l => l.Item2));
    }

    [SshdFact]
    public void Lines_arrive_while_the_command_still_runs()
    {
        using var connection = Connect();
        // A handshake: the command ends only after this side has seen its first line (the fixture's hosts share this
        // machine's file system). Lines kept until the command ended would never arrive: the guard's timeout ends it.
        var seen = Path.Combine(sshd.Directory, $"first-line-seen-{Guid.NewGuid():N}");
        var outcome = connection.Run($"echo first; while [ ! -e {seen} ]; do sleep 0.05; done; echo second", new ExecOptions
        {
            Timeout = HangGuard.Limit,
            OnLine = (_, l) =>
            {
                if (l == "first")
                {
                    File.WriteAllText(seen, "");
                }
            },
        });
        Assert.True(outcome.Succeeded, outcome.ErrorMessage);
        Assert.Equal("first\nsecond\n", outcome.Stdout);
    }

    [SshdFact]
    public void A_signal_is_reported()
    {
        using var connection = Connect();
        var outcome = connection.Run("kill -KILL $$");
        Assert.Equal(SshErrorIds.CommandFailed, outcome.ErrorId);
        Assert.Null(outcome.ExitCode);
        Assert.Equal("KILL", outcome.ExitSignal);
    }

    [SshdFact]
    public void Timeout_ends_the_command_and_closes_the_connection()
    {
        using var connection = Connect();
        var marker = $"moltar-timeout-{Guid.NewGuid():N}";
        var clock = Stopwatch.StartNew();
        // The command outlasts the hang guard: only the timeout can end it in time. The timeout leaves the remote
        // shell ample time to start and print its first line even on a loaded machine (1 s did not, here).
        var outcome = HangGuard.Run(() => connection.Run($"echo started; exec sleep {HangGuard.NeverWaitedSeconds + 30} # {marker}",
            new ExecOptions { Timeout = TimeSpan.FromSeconds(10) }), "a command past its timeout");
        clock.Stop();

        Assert.Equal(SshErrorIds.Timeout, outcome.ErrorId);
        Assert.Null(outcome.ExitCode);
        Assert.Equal("started\n", outcome.Stdout);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(9.9), $"ended after {clock.Elapsed}, before its timeout");
        Assert.False(connection.IsConnected);
        output.WriteLine($"timeout outcome after {clock.Elapsed.TotalMilliseconds:0} ms: {outcome.ErrorMessage}");
        AssertNoRemoteProcess($"sleep {HangGuard.NeverWaitedSeconds + 30}");
    }

    [SshdFact]
    public void Cancellation_ends_the_command_without_waiting_for_it()
    {
        using var connection = Connect();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        // The command outlasts the hang guard and has no timeout: only the cancellation can end it in time.
        var command = $"sleep {HangGuard.NeverWaitedSeconds + 31}";
        HangGuard.Run(() => Assert.ThrowsAny<OperationCanceledException>(() => connection.Run(command, cancellationToken: cts.Token)), "a cancelled command");
        Assert.False(connection.IsConnected);
        AssertNoRemoteProcess(command);
    }

    [SshdFact]
    public void Stdin_is_sent_then_end_of_file()
    {
        using var connection = Connect();
        var outcome = connection.Run("cat; echo done", new ExecOptions { Stdin = Encoding.UTF8.GetBytes("line one\nline two\n") });
        Assert.True(outcome.Succeeded, outcome.ErrorMessage);
        Assert.Equal("line one\nline two\ndone\n", outcome.Stdout);

        // Without stdin the command sees end-of-file at once (no hang).
        var empty = connection.Run("cat; echo eof", new ExecOptions { Timeout = HangGuard.Limit });
        Assert.True(empty.Succeeded, empty.ErrorMessage);
        Assert.Equal("eof\n", empty.Stdout);
    }

    [SshdFact]
    public void Large_stdin_is_streamed()
    {
        using var connection = Connect();
        var data = new byte[3 * 1024 * 1024];
        new Random(7).NextBytes(data);
        var outcome = connection.Run("sha256sum | cut -c1-64", new ExecOptions { Stdin = data, Timeout = HangGuard.Limit });
        Assert.True(outcome.Succeeded, outcome.ErrorMessage);
        Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data)).ToLowerInvariant(), outcome.Stdout.Trim());
    }

    [SshdFact]
    public void Ten_megabytes_of_output_are_kept_whole()
    {
        using var connection = Connect();
        var lines = 0;
        var clock = Stopwatch.StartNew();
        var line = string.Concat(Enumerable.Repeat("0123456789", 10)); // 100 characters + newline
        var outcome = connection.Run($"yes {line} | head -c 10485760",
            new ExecOptions { OnLine = (_, _) => Interlocked.Increment(ref lines), Timeout = HangGuard.Limit });
        clock.Stop();

        Assert.True(outcome.Succeeded, outcome.ErrorMessage);
        Assert.Equal(10485760, outcome.StdoutBytes);
        Assert.Equal(10485760, outcome.Stdout.Length);
        Assert.False(outcome.StdoutTruncated);
        Assert.Equal(10485760 / 101 + 1, lines); // 101-byte lines and a final partial one
        output.WriteLine($"10 MiB in {clock.Elapsed.TotalMilliseconds:0} ms ({10 / clock.Elapsed.TotalSeconds:0} MiB/s)");
    }

    [SshdFact]
    public void Without_line_room_lines_are_counted_not_delivered_and_the_output_is_still_kept()
    {
        using var connection = Connect();
        var lines = 0;
        var outcome = connection.Run("seq 1 50000; echo err >&2",
            new ExecOptions { OnLine = (_, _) => Interlocked.Increment(ref lines), LineRoom = () => false, Timeout = HangGuard.Limit });

        Assert.True(outcome.Succeeded, outcome.ErrorMessage);
        Assert.Equal(0, lines);
        Assert.Equal(50001, outcome.LinesNotShown);
        Assert.StartsWith("1\n2\n", outcome.Stdout);
        Assert.EndsWith("\n50000\n", outcome.Stdout);
        Assert.Equal("err\n", outcome.Stderr);
    }

    [SshdFact]
    public void Output_beyond_MaxOutputBytes_is_counted_not_kept()
    {
        using var connection = Connect();
        var lines = 0;
        var outcome = connection.Run("seq 1 20000; seq 1 20000 >&2", new ExecOptions { MaxOutputBytes = 1000, OnLine = (_, _) => Interlocked.Increment(ref lines) });
        Assert.True(outcome.Succeeded);
        Assert.Equal(1000, Encoding.UTF8.GetByteCount(outcome.Stdout));
        Assert.Equal(1000, Encoding.UTF8.GetByteCount(outcome.Stderr));
        Assert.Equal(108894, outcome.StdoutBytes); // bytes of `seq 1 20000`
        Assert.Equal(108894, outcome.StderrBytes);
        Assert.True(outcome.StdoutTruncated);
        Assert.True(outcome.StderrTruncated);
        Assert.StartsWith("1\n2\n3\n", outcome.Stdout);
        Assert.Equal(40000, lines); // lines still stream
    }

    [SshdFact]
    public void Pty_mode_runs_under_a_terminal_with_the_exit_status()
    {
        using var connection = Connect();
        var lines = new ConcurrentQueue<string>();
        var outcome = connection.Run("tty; test -t 0 && echo stdin-is-a-tty; echo to-stderr >&2; exit 4",
            new ExecOptions { Pty = true, Timeout = HangGuard.Limit, OnLine = (_, l) => lines.Enqueue(l) });

        Assert.Equal(4, outcome.ExitCode);
        Assert.Equal(SshErrorIds.CommandFailed, outcome.ErrorId);
        var text = outcome.Stdout;
        Assert.Matches(@"^/dev/pts/\d+\nstdin-is-a-tty\nto-stderr\n$", text);
        Assert.Equal(new[] { "stdin-is-a-tty", "to-stderr" }, lines.Skip(1));
        Assert.Equal("", outcome.Stderr);

        var ok = connection.Run("echo 'quotes '\"'\"'inside'\"'\"' and $HOME' \"$HOME\"", new ExecOptions { Pty = true, Timeout = HangGuard.Limit });
        Assert.True(ok.Succeeded, ok.ErrorMessage);
        Assert.Equal("quotes 'inside' and $HOME /root\n", ok.Stdout);
    }

    [SshdFact]
    public void Pty_mode_sends_stdin_then_end_of_file()
    {
        using var connection = Connect();
        var outcome = connection.Run("cat; echo done", new ExecOptions { Pty = true, Stdin = Encoding.UTF8.GetBytes("typed\n"), Timeout = HangGuard.Limit });
        Assert.True(outcome.Succeeded, outcome.ErrorMessage);
        Assert.Equal("typed\ndone\n", outcome.Stdout);
    }

    [SshdFact]
    public void Pty_mode_times_out()
    {
        using var connection = Connect();
        var command = $"sleep {HangGuard.NeverWaitedSeconds + 32}";
        var outcome = HangGuard.Run(() => connection.Run(command, new ExecOptions { Pty = true, Timeout = TimeSpan.FromSeconds(1) }), "a pty command past its timeout");
        Assert.Equal(SshErrorIds.Timeout, outcome.ErrorId);
        AssertNoRemoteProcess(command);
    }

    [SshdFact]
    public void A_dropped_connection_is_ConnectionLost()
    {
        var host = sshd.Hosts[1];
        using var connection = Connect(host);
        using var running = new ManualResetEventSlim(false);
        // Neither the command nor its timeout can end within the hang guard: only noticing the dropped connection can.
        var task = connection.RunAsync($"echo running; sleep {HangGuard.NeverWaitedSeconds + 33}",
            new ExecOptions { Timeout = HangGuard.NeverWaited, OnLine = (_, _) => running.Set() });
        Assert.True(running.Wait(HangGuard.Limit), "the command did not start");

        // Kill the sshd processes serving sessions on this host (not the listener), as a crash or a reboot would.
        var listener = host.SshdPid;
        var sessions = SshdFixture.DescendantsOf(listener);
        foreach (var pid in sessions.Where(p => SshdFixture.Comm(p) == "sshd"))
        {
            Process.GetProcessById(pid).Kill();
        }

        var outcome = HangGuard.Wait(task, "the outcome after the connection dropped");
        foreach (var pid in sessions.Where(p => SshdFixture.CommandLine(p).StartsWith("sleep ", StringComparison.Ordinal)))
        {
            try
            {
                Process.GetProcessById(pid).Kill();
            }
            catch (ArgumentException)
            {
            }
        }

        Assert.Equal(SshErrorIds.ConnectionLost, outcome.ErrorId);
        Assert.Equal("running\n", outcome.Stdout);
        Assert.False(connection.IsConnected);
        output.WriteLine(outcome.ErrorMessage);
    }

    [SshdFact]
    public void A_connection_dropped_between_commands_is_opened_again_once_for_a_command_that_never_started()
    {
        var host = sshd.Hosts[1];
        using var connector = new SshConnector(sshd.Options());
        var connection = connector.Connect(host.Target);
        var first = connection;
        try
        {
            Assert.Equal("before\n", connection.Run("echo before").Stdout);
            // The server drops the idle connection (as a restart or an idle timeout would) before the next command.
            foreach (var pid in SshdFixture.DescendantsOf(host.SshdPid).Where(p => SshdFixture.Comm(p) == "sshd"))
                Process.GetProcessById(pid).Kill();
            HangGuard.Until(() => !connection.IsConnected, "the client noticing the dropped connection");

            var outcome = connector.RunReconnecting(ref connection, "echo again");
            Assert.True(outcome.Succeeded, outcome.ToString());
            Assert.True(outcome.Started);
            Assert.Equal("again\n", outcome.Stdout);
            Assert.NotSame(first, connection);
        }
        finally
        {
            connection.Dispose();
        }
    }

    [SshdFact]
    public void A_command_that_started_is_never_run_twice_when_its_connection_drops()
    {
        var host = sshd.Hosts[1];
        using var connector = new SshConnector(sshd.Options());
        var connection = connector.Connect(host.Target);
        var first = connection;
        try
        {
            var marker = Path.Combine(sshd.Directory, $"ran-{Guid.NewGuid():N}");
            var task = Task.Run(() => connector.RunReconnecting(ref connection, $"echo x >> {marker}; sleep {HangGuard.NeverWaitedSeconds + 34}",
                new ExecOptions { Timeout = HangGuard.NeverWaited }));
            HangGuard.Until(() => File.Exists(marker), "the command starting");
            var sessions = SshdFixture.DescendantsOf(host.SshdPid);
            foreach (var pid in sessions.Where(p => SshdFixture.Comm(p) == "sshd"))
                Process.GetProcessById(pid).Kill();
            var outcome = HangGuard.Wait(task, "the outcome after the connection dropped");
            foreach (var pid in sessions.Where(p => SshdFixture.CommandLine(p).StartsWith("sleep ", StringComparison.Ordinal)))
            {
                try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
            }

            Assert.Equal(SshErrorIds.ConnectionLost, outcome.ErrorId);
            Assert.True(outcome.Started);
            Assert.Same(first, connection);
            Assert.Equal("x\n", File.ReadAllText(marker));
        }
        finally
        {
            connection.Dispose();
        }
    }

    [SshdFact]
    public void Running_on_a_closed_connection_is_ConnectionLost()
    {
        var connection = Connect();
        connection.Dispose();
        Assert.Throws<ObjectDisposedException>(() => connection.Run("true"));
    }

    [SshdFact]
    public void Sftp_uses_the_same_connection_path()
    {
        sshd.EnsureAvailable();
        using var connector = new SshConnector(sshd.Options());
        using var connection = connector.Connect(sshd.Hosts[2].Target);
        var remote = Path.Combine(sshd.Directory, $"sftp-{Guid.NewGuid():N}.txt");
        SshdFixture.UploadOverSftp(connection, "uploaded by sftp\n", remote);

        Assert.Equal("uploaded by sftp\n", connection.Run($"cat {remote}").Stdout);
    }

    /// <summary>The remote command is gone (callers' commands sleep past the hang guard: gone means ended, not finished).</summary>
    private void AssertNoRemoteProcess(string commandLine)
    {
        var deadline = DateTime.UtcNow + HangGuard.Limit;
        List<int> left;
        do
        {
            left = sshd.Hosts.Concat(new[] { sshd.Bastion }).SelectMany(h => SshdFixture.DescendantsOf(h.SshdPid))
                .Where(p => SshdFixture.CommandLine(p).Contains(commandLine, StringComparison.Ordinal)).ToList();
            if (left.Count == 0)
            {
                return;
            }

            Thread.Sleep(50);
        }
        while (DateTime.UtcNow < deadline);

        foreach (var pid in left)
        {
            try
            {
                Process.GetProcessById(pid).Kill();
            }
            catch (ArgumentException)
            {
            }
        }

        Assert.Fail($"remote '{commandLine}' still running ({string.Join(",", left)})");
    }
}
