using System.Collections.Concurrent;
using System.Diagnostics;
using Moltar.Engine.FanOut;
using Xunit;

namespace Moltar.Engine.Tests.FanOut;

public sealed class FanOutRunnerTests
{
    private static List<FanOutEvent<int, int>> Drain(FanOutRunner<int, int> runner)
    {
        var events = new List<FanOutEvent<int, int>>();
        HangGuard.Until(() =>
        {
            // Everything queued is taken at once: the guard's poll interval is for waiting, not per event.
            while (runner.TryTake(out var ev, 100))
            {
                events.Add(ev);
            }

            return runner.IsFinished;
        }, "the fan-out finishing");
        return events;
    }

    [Fact]
    public void Runs_every_item_on_dedicated_threads_within_the_throttle()
    {
        var running = 0;
        var peak = 0;
        var poolThreads = 0;
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            if (Thread.CurrentThread.IsThreadPoolThread)
            {
                Interlocked.Increment(ref poolThreads);
            }

            Thread.Sleep(30);
            Interlocked.Decrement(ref running);
            return ctx.Item * 2;
        }, new FanOutOptions { ThrottleLimit = 4 });

        for (var i = 0; i < 20; i++)
        {
            runner.Add(i);
        }

        runner.Complete();
        var completed = Drain(runner).Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.Equal(20, completed.Count);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => i * 2).OrderBy(x => x), completed.Select(c => c.Result).OrderBy(x => x));
        Assert.Equal(4, peak);
        Assert.Equal(0, poolThreads);
        Assert.Equal(20, completed.Max(c => c.CompletedCount));
        Assert.True(runner.WaitForWorkers(HangGuard.Limit));
    }

    [Fact]
    public void A_result_is_available_as_soon_as_its_item_finishes()
    {
        // Item 0 ends only once the result of item 1 has been taken: a runner that held results back would never
        // hand it out (the hang guard ends the test).
        using var fastTaken = new ManualResetEventSlim();
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            if (ctx.Item == 0)
            {
                fastTaken.Wait(ctx.CancellationToken);
            }

            return ctx.Item;
        }, new FanOutOptions { ThrottleLimit = 8 });
        runner.Add(0);
        runner.Add(1);
        runner.Complete();
        FanOutEvent<int, int>? fast = null;
        HangGuard.Until(() => runner.TryTake(out var ev, 50) && (fast = ev).Kind == FanOutEventKind.Completed, "the result of the quick item");
        fastTaken.Set();

        Assert.Equal(1, fast!.Item);
        Assert.False(runner.IsFinished, "the slow item was still running");
        runner.Cancel();
    }

    [Fact]
    public void ThrottleLimit_1_runs_one_at_a_time_in_order()
    {
        var order = new ConcurrentQueue<int>();
        var running = 0;
        var peak = 0;
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            InterlockedMax(ref peak, Interlocked.Increment(ref running));
            order.Enqueue(ctx.Item);
            Thread.Sleep(5);
            Interlocked.Decrement(ref running);
            return ctx.Item;
        }, new FanOutOptions { ThrottleLimit = 1 });
        for (var i = 0; i < 10; i++)
        {
            runner.Add(i);
        }

        runner.Complete();
        var results = Drain(runner).Where(e => e.Kind == FanOutEventKind.Completed).Select(e => e.Item).ToList();
        Assert.Equal(1, peak);
        Assert.Equal(Enumerable.Range(0, 10), order);
        Assert.Equal(Enumerable.Range(0, 10), results);
    }

    [Fact]
    public void Output_and_messages_carry_their_item_and_come_before_its_result()
    {
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            ctx.Status("working");
            ctx.Output($"line from {ctx.Item}");
            ctx.Output($"error from {ctx.Item}", isError: true);
            ctx.Warning("careful");
            ctx.Verbose("details");
            return 0;
        });
        runner.Post(FanOutEventKind.Verbose, "call-wide");
        runner.Add(7);
        runner.Complete();
        var events = Drain(runner);
        var mine = events.Where(e => e.HasItem).ToList();
        Assert.Equal(new[] { FanOutEventKind.Started, FanOutEventKind.Status, FanOutEventKind.Output, FanOutEventKind.Output, FanOutEventKind.Warning, FanOutEventKind.Verbose, FanOutEventKind.Completed },
            mine.Select(e => e.Kind));
        Assert.All(mine, e => Assert.Equal(7, e.Item));
        Assert.True(mine[3].IsError);
        Assert.Contains(events, e => !e.HasItem && e.Text == "call-wide");
    }

    [Fact]
    public void Exceptions_become_completed_errors_and_others_go_on()
    {
        using var runner = new FanOutRunner<int, int>(ctx => ctx.Item == 2 ? throw new InvalidOperationException("bad host") : ctx.Item);
        foreach (var i in new[] { 1, 2, 3 })
        {
            runner.Add(i);
        }

        runner.Complete();
        var completed = Drain(runner).Where(e => e.Kind == FanOutEventKind.Completed).OrderBy(e => e.Item).ToList();
        Assert.Null(completed[0].Error);
        Assert.Equal("bad host", completed[1].Error!.Message);
        Assert.Equal(3, completed[2].Result);
    }

    [Fact]
    public void Cancel_skips_pending_items_and_signals_running_ones()
    {
        var started = new CountdownEvent(2);
        using var cts = new CancellationTokenSource();
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            started.Signal();
            // Past the hang guard: only the cancellation ends the wait in time.
            ctx.CancellationToken.WaitHandle.WaitOne(HangGuard.NeverWaited);
            ctx.CancellationToken.ThrowIfCancellationRequested();
            return 0;
        }, new FanOutOptions { ThrottleLimit = 2 }, cts.Token);
        for (var i = 0; i < 10; i++)
        {
            runner.Add(i);
        }

        runner.Complete();
        Assert.True(started.Wait(HangGuard.Limit));
        cts.Cancel();
        var completed = Drain(runner).Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.Equal(10, completed.Count);
        Assert.Equal(8, completed.Count(c => c.Skipped));
        Assert.All(completed, c => Assert.IsAssignableFrom<OperationCanceledException>(c.Error));
        Assert.True(runner.WaitForWorkers(HangGuard.Limit));
    }

    [Fact]
    public void Items_added_after_cancel_complete_as_skipped()
    {
        using var runner = new FanOutRunner<int, int>(ctx => ctx.Item);
        runner.Cancel();
        runner.Add(1);
        runner.Complete();
        var completed = Assert.Single(Drain(runner));
        Assert.True(completed.Skipped);
    }

    [Fact]
    public void StopOnFailure_skips_the_rest_after_a_failure()
    {
        using var runner = new FanOutRunner<int, int>(ctx => ctx.Item, new FanOutOptions { ThrottleLimit = 1, StopOnFailure = true }, isFailure: r => r == 3);
        for (var i = 1; i <= 6; i++)
        {
            runner.Add(i);
        }

        runner.Complete();
        var completed = Drain(runner).Where(e => e.Kind == FanOutEventKind.Completed).ToList();
        Assert.Equal(new[] { 1, 2, 3 }, completed.Where(c => !c.Skipped).Select(c => c.Result));
        Assert.Equal(new[] { 4, 5, 6 }, completed.Where(c => c.Skipped).Select(c => c.Item));
        Assert.All(completed.Where(c => c.Skipped), c => Assert.IsType<FanOutSkippedException>(c.Error));
    }

    [Fact]
    public void Output_beyond_the_line_capacity_is_dropped_and_counted_and_never_waited_for()
    {
        var accepted = 0;
        var roomAtEnd = true;
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            for (var i = 0; i < 1000; i++)
            {
                if (ctx.Output("x"))
                {
                    accepted++;
                }
            }

            roomAtEnd = ctx.HasOutputRoom;
            return 0;
        }, new FanOutOptions { OutputCapacity = 50 });
        runner.Add(1);
        runner.Complete();
        // Nobody reads while the worker writes: a worker that waited for room would never end.
        Assert.True(runner.WaitForWorkers(HangGuard.Limit), "the worker waited for the pipeline thread");
        Assert.Equal(50, accepted);
        Assert.False(roomAtEnd);
        Assert.Equal(950, runner.Events.LinesDropped);
        Assert.Equal(52, runner.Events.PeakQueued); // Started, the 50 lines, Completed: nothing else was kept
        var events = Drain(runner);
        Assert.Equal(50, events.Count(e => e.Kind == FanOutEventKind.Output));
        Assert.Single(events, e => e.Kind == FanOutEventKind.Completed);
    }

    [Fact]
    public void Output_room_counts_characters_so_long_lines_cannot_fill_memory()
    {
        var accepted = 0;
        var line = new string('x', 1000);
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            for (var i = 0; i < 500; i++)
            {
                if (ctx.Output(line))
                {
                    accepted++;
                }
            }

            return 0;
        }, new FanOutOptions { OutputCharCapacity = 10_000 });
        runner.Add(1);
        runner.Complete();
        Assert.True(runner.WaitForWorkers(HangGuard.Limit), "the worker waited for the pipeline thread");
        Assert.Equal(10, accepted);
        Assert.Equal(490, runner.Events.LinesDropped);
        Assert.Equal(10, Drain(runner).Count(e => e.Kind == FanOutEventKind.Output));
    }

    [Fact]
    public void A_line_longer_than_the_character_capacity_still_passes_when_no_other_line_waits()
    {
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            ctx.Output(new string('y', 5000));
            ctx.Output(new string('z', 5000)); // the first still waits: no room
            return 0;
        }, new FanOutOptions { OutputCharCapacity = 100 });
        runner.Add(1);
        runner.Complete();
        Assert.True(runner.WaitForWorkers(HangGuard.Limit), "the worker waited for the pipeline thread");
        var events = Drain(runner);
        Assert.Equal(new[] { 'y' }, events.Where(e => e.Kind == FanOutEventKind.Output).Select(e => e.Text![0]));
        Assert.Equal(1, runner.Events.LinesDropped);
    }

    [Fact]
    public void Results_are_never_dropped_while_lines_and_messages_are()
    {
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            for (var i = 0; i < 100; i++)
            {
                ctx.Output("line");
                ctx.Verbose("message");
            }

            return ctx.Item;
        }, new FanOutOptions { ThrottleLimit = 4, OutputCapacity = 5, MessageCapacity = 5 });
        for (var i = 0; i < 20; i++)
        {
            runner.Add(i);
        }

        runner.Complete();
        Assert.True(runner.WaitForWorkers(HangGuard.Limit), "a worker waited for the pipeline thread");
        var events = Drain(runner);
        Assert.Equal(Enumerable.Range(0, 20), events.Where(e => e.Kind == FanOutEventKind.Completed).Select(e => e.Result).OrderBy(r => r));
        Assert.Equal(20, events.Count(e => e.Kind == FanOutEventKind.Started));
        Assert.Equal(5, events.Count(e => e.Kind == FanOutEventKind.Output));
        Assert.Equal(5, events.Count(e => e.Kind == FanOutEventKind.Verbose));
        Assert.Equal(20 * 100 - 5, runner.Events.LinesDropped);
        Assert.Equal(20 * 100 - 5, runner.Events.MessagesDropped);
    }

    [Fact]
    public void Output_after_Cancel_is_refused()
    {
        using var started = new ManualResetEventSlim();
        using var cancelled = new ManualResetEventSlim();
        var afterCancel = true;
        using var runner = new FanOutRunner<int, int>(ctx =>
        {
            started.Set();
            cancelled.Wait(HangGuard.Limit);
            afterCancel = ctx.Output("late");
            return 0;
        });
        runner.Add(1);
        runner.Complete();
        Assert.True(started.Wait(HangGuard.Limit));
        runner.Cancel();
        cancelled.Set();
        var events = Drain(runner);
        Assert.False(afterCancel);
        Assert.DoesNotContain(events, e => e.Kind == FanOutEventKind.Output);
    }

    [Fact]
    public void ReadAll_ends_when_everything_is_done_and_nothing_was_added()
    {
        using var runner = new FanOutRunner<int, int>(ctx => 0);
        runner.Complete();
        Assert.Empty(runner.ReadAll());
        Assert.True(runner.IsFinished);
    }

    [Fact]
    public void Items_can_arrive_while_others_run()
    {
        using var runner = new FanOutRunner<int, int>(ctx => ctx.Item, new FanOutOptions { ThrottleLimit = 3 });
        var results = new List<int>();
        for (var i = 0; i < 50; i++)
        {
            runner.Add(i);
            while (runner.TryTake(out var ev) )
            {
                if (ev.Kind == FanOutEventKind.Completed)
                {
                    results.Add(ev.Result);
                }
            }
        }

        runner.Complete();
        results.AddRange(runner.ReadAll().Where(e => e.Kind == FanOutEventKind.Completed).Select(e => e.Result));
        Assert.Equal(Enumerable.Range(0, 50), results.OrderBy(x => x));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
