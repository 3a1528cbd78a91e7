using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;
using Moltar.Engine.Tests.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.FanOut;

/// <summary>The fan-out driving real SSH: what Invoke-MoltarCommand does (how fast: the benchmark, `build.ps1 -Task Bench`).</summary>
[Collection("sshd")]
public sealed class SshFanOutTests(SshdFixture sshd)
{
    private static List<FanOutEvent<SshTarget, ExecOutcome>> RunAll(SshConnector connector, IEnumerable<SshTarget> targets, string command,
        ExecOptions? exec = null, FanOutOptions? options = null, CancellationToken token = default, bool streamLines = true)
    {
        using var runner = SshFanOut.RunCommand(connector, command, exec, options, token, streamLines);
        foreach (var t in targets)
        {
            runner.Add(t);
        }

        runner.Complete();
        return HangGuard.Run(() => runner.ReadAll().ToList(), "the fan-out");
    }

    /// <summary>
    /// A command that ends only once all <paramref name="count"/> hosts run it at the same moment: each adds a file to
    /// a folder of this machine (the fixture's hosts share its file system) and waits for the others' files. A fan-out
    /// that ran the hosts one after another, or fewer at a time, would never get past it (the hang guard ends it).
    /// </summary>
    private string Barrier(int count)
    {
        var folder = Path.Combine(sshd.Directory, $"barrier-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        // Counted with the shell's own glob (no process per look) and looked at 5 times a second: hosts already
        // waiting must not take the CPU from the handshakes still under way.
        return $"touch {folder}/$$; while set -- {folder}/*; [ $# -lt {count} ]; do sleep 0.2; done; echo $SSH_CONNECTION";
    }

    private static readonly ExecOptions Guarded = new() { Timeout = HangGuard.Limit };

    [SshdFact]
    public void Twenty_hosts_connect_and_run_a_command_all_at_the_same_time()
    {
        sshd.EnsureAvailable();
        var targets = sshd.Hosts.Select(h => h.Target).ToList();
        using var connector = new SshConnector(sshd.Options());
        var events = RunAll(connector, targets, Barrier(targets.Count), Guarded, new FanOutOptions { ThrottleLimit = 32 });

        var completed = events.Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.Equal(20, completed.Count);
        Assert.All(completed, c => Assert.True(c.Error is null && c.Result!.Succeeded, c.Error?.Message ?? c.Result?.ErrorMessage));
        // Each ran on its own host (the server side of $SSH_CONNECTION), every host once. How fast: the benchmark.
        Assert.Equal(targets.Select(t => t.Address).Order(), completed.Select(c => c.Result!.Stdout.Split(' ')[2]).Order());
    }

    [SshdFact]
    public void Twenty_targets_behind_one_jump_host_all_at_the_same_time_over_one_bastion_connection()
    {
        sshd.EnsureAvailable();
        var targets = sshd.Hosts.Select(h => h.Target).ToList();
        var forwardedBefore = ForwardedThroughBastion();
        using var connector = new SshConnector(sshd.Options() with { JumpHost = $"root@{sshd.Bastion.Address}:{sshd.Bastion.Port}" });
        var events = RunAll(connector, targets, Barrier(targets.Count), Guarded, new FanOutOptions { ThrottleLimit = 32 });

        // Every target made it, all twenty at once through the one bastion connection (a starved or serialised
        // forwarding loop shows up as connect failures or as the barrier never opening). How fast: the benchmark.
        var completed = events.Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.All(completed, c => Assert.True(c.Error is null && c.Result!.Succeeded, c.Error?.Message ?? c.Result?.ErrorMessage));
        Assert.Equal(20, completed.Count);
        Assert.Equal(1, Assert.Single(connector.JumpHosts).ConnectCount);
        Assert.Equal(targets.Select(t => t.Address).Order(), completed.Select(c => c.Result!.Stdout.Split(' ')[2]).Order());
        // The connections really went through the bastion: it forwarded one more connection to every target.
        var forwardedAfter = ForwardedThroughBastion();
        Assert.All(targets, t => Assert.Equal(forwardedBefore.GetValueOrDefault(t.Address) + 1, forwardedAfter.GetValueOrDefault(t.Address)));
    }

    /// <summary>Target address -> connections the bastion's sshd forwarded there so far (its DEBUG1 log says each).</summary>
    private Dictionary<string, int> ForwardedThroughBastion()
    {
        using var stream = new FileStream(sshd.Bastion.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n')
            .Select(l => System.Text.RegularExpressions.Regex.Match(l, @"server_request_direct_tcpip: originator \S+ port \d+, target (\S+) port"))
            .Where(m => m.Success)
            .GroupBy(m => m.Groups[1].Value)
            .ToDictionary(g => g.Key, g => g.Count());
    }

    [SshdFact]
    public void Output_lines_and_results_per_host_with_failures_kept_apart()
    {
        sshd.EnsureAvailable();
        using var connector = new SshConnector(sshd.Options());
        var targets = sshd.Hosts.Take(3).Select(h => h.Target)
            .Append(new SshTarget("127.0.9.254", "i-down", "down-host")) // nothing listens there
            .ToList();
        var events = RunAll(connector, targets, "echo out-ok; echo err >&2; exit 2",
            options: new FanOutOptions { ThrottleLimit = 8 });

        var completed = events.Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.Equal(4, completed.Count);
        var down = completed.Single(c => c.Item!.InstanceId == "i-down");
        Assert.Equal(SshErrorIds.ConnectFailed, Assert.IsType<SshFailure>(down.Error).ErrorId);
        // The value made where the connect failed is the one the error record gets: id, category, host, the exception.
        var downFailure = SshFanOut.FailureOf(down)!;
        Assert.Equal((SshErrorIds.ConnectFailed, FailureCategory.ConnectionError, "127.0.9.254"), (downFailure.ErrorId, downFailure.Category, downFailure.Host));
        Assert.Same(down.Error, downFailure.Exception);
        var downResult = SshFanOut.ToResult(down, "cmd");
        Assert.False(downResult.Succeeded);
        Assert.Equal("ConnectFailed", downResult.ErrorId);
        Assert.Equal("i-down", downResult.InstanceId);

        foreach (var c in completed.Where(c => c.Item!.InstanceId != "i-down"))
        {
            var result = SshFanOut.ToResult(c, "cmd");
            Assert.Equal(2, result.ExitCode);
            Assert.Equal(SshErrorIds.CommandFailed, result.ErrorId);
            Assert.Equal("out-ok\n", result.Output);
            Assert.Equal("err\n", result.Error);
            var failure = SshFanOut.FailureOf(c)!;
            Assert.Equal((SshErrorIds.CommandFailed, FailureCategory.InvalidResult, c.Item!.Address), (failure.ErrorId, failure.Category, failure.Host));
            Assert.Same(c.Result!.Failure, failure);
            var lines = events.Where(e => e.Kind == FanOutEventKind.Output && e.Item == c.Item).ToList();
            Assert.Equal(new[] { ("out-ok", false), ("err", true) }, lines.Select(l => (l.Text!, l.IsError)).OrderBy(l => l.IsError));
        }
    }

    [SshdFact]
    public void Without_line_streaming_no_output_events_are_made_and_the_results_keep_the_output()
    {
        sshd.EnsureAvailable();
        using var connector = new SshConnector(sshd.Options());
        var targets = sshd.Hosts.Take(3).Select(h => h.Target).ToList();
        var events = RunAll(connector, targets, "seq 1 3000; echo err >&2", streamLines: false);

        Assert.DoesNotContain(events, e => e.Kind == FanOutEventKind.Output);
        var completed = events.Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.Equal(3, completed.Count);
        var expected = string.Concat(Enumerable.Range(1, 3000).Select(i => $"{i}\n"));
        Assert.All(completed, c =>
        {
            var result = SshFanOut.ToResult(c, "cmd");
            Assert.True(result.Succeeded, result.Error);
            Assert.Equal(expected, result.Output);
            Assert.Equal("err\n", result.Error);
        });
    }

    [SshdFact]
    public void Ctrl_C_ends_every_host_without_waiting_for_the_commands_and_closes_every_connection()
    {
        sshd.EnsureAvailable();
        using var connector = new SshConnector(sshd.Options());
        using var cts = new CancellationTokenSource();
        // The remote commands outlast the hang guard: a fan-out that waited for them instead of ending them fails.
        var command = $"echo started; sleep {HangGuard.NeverWaitedSeconds + 34}";
        using var runner = SshFanOut.RunCommand(connector, command, null, new FanOutOptions { ThrottleLimit = 8 }, cts.Token);
        foreach (var h in sshd.Hosts.Take(12))
        {
            runner.Add(h.Target);
        }

        runner.Complete();
        var started = 0;
        HangGuard.Until(() =>
        {
            if (runner.TryTake(out var ev, 100) && ev.Kind == FanOutEventKind.Output)
            {
                started++;
            }

            return started == 8;
        }, "the first 8 hosts starting the command");

        cts.Cancel();
        var rest = new List<FanOutEvent<SshTarget, ExecOutcome>>();
        HangGuard.Until(() =>
        {
            while (runner.TryTake(out var ev, 100))
            {
                rest.Add(ev);
            }

            return runner.IsFinished;
        }, "every host ending after Cancel");

        var completed = rest.Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.Equal(12, completed.Count);
        Assert.Equal(4, completed.Count(c => c.Skipped));
        Assert.All(completed, c => Assert.IsAssignableFrom<OperationCanceledException>(c.Error));
        Assert.True(runner.WaitForWorkers(HangGuard.Limit));

        // Every connection is closed and the remote commands are gone (ended, not finished: they sleep past the guard).
        List<int> left = new();
        HangGuard.Until(() => (left = sshd.Hosts.SelectMany(h => SshdFixture.DescendantsOf(h.SshdPid)).ToList()).Count == 0,
            $"the remote commands and sessions ending: {string.Join("; ", left.Select(p => SshdFixture.CommandLine(p)))}");
    }

    [SshdFact]
    public void The_cmdlet_pattern_runner_first_then_connector_logging_into_it()
    {
        sshd.EnsureAvailable();
        SshConnector connector = null!;
        var exec = new ExecOptions();
        using var runner = new FanOutRunner<SshTarget, ExecOutcome>(ctx => SshFanOut.RunOne(connector, ctx, "echo hi", exec),
            new FanOutOptions { ThrottleLimit = 4 }, isFailure: SshFanOut.IsFailure);
        var empty = sshd.NewTempFile("known_hosts");
        using (connector = new SshConnector(sshd.Options() with { KnownHostsPaths = new[] { empty }, StrictHostKeyChecking = StrictHostKeyChecking.No }, runner.Post))
        {
            runner.Add(sshd.Hosts[15].Target);
            runner.Add(sshd.Hosts[16].Target);
            runner.Complete();
            var events = runner.ReadAll().ToList();
            Assert.Single(events, e => e.Kind == FanOutEventKind.Warning && e.Text!.Contains("not checked"));
            Assert.Equal(2, events.Count(e => e.Kind == FanOutEventKind.Output && e.Text == "hi"));
            Assert.Equal(2, events.Count(e => e.Kind == FanOutEventKind.Completed && e.Result!.Succeeded));
        }
    }

    [SshdFact]
    public void Per_host_timeout_in_a_fan_out()
    {
        sshd.EnsureAvailable();
        using var connector = new SshConnector(sshd.Options());
        // The command outlasts the hang guard: only the 1 s timeout can end it in time.
        var events = RunAll(connector, sshd.Hosts.Take(4).Select(h => h.Target),
            $"sleep {HangGuard.NeverWaitedSeconds + 35}",
            new ExecOptions { Timeout = TimeSpan.FromSeconds(1) });
        var completed = events.Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.Equal(4, completed.Count);
        Assert.All(completed, c => Assert.Equal(SshErrorIds.Timeout, c.Result!.ErrorId));
        Assert.All(completed, c => Assert.True(c.Result!.Duration >= TimeSpan.FromSeconds(1), $"ended after {c.Result.Duration}, before its timeout"));
        Assert.Equal("Timeout", SshFanOut.ToResult(completed[0], "x").ErrorId);
    }
}
