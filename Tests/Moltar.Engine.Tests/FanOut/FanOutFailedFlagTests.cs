using Moltar.Engine.FanOut;
using Xunit;

namespace Moltar.Engine.Tests.FanOut;

/// <summary>Completed events say whether the item failed, so progress can count failures of any kind.</summary>
public sealed class FanOutFailedFlagTests
{
    private static Dictionary<int, FanOutEvent<int, int>> Completed(FanOutRunner<int, int> runner)
    {
        var done = new Dictionary<int, FanOutEvent<int, int>>();
        HangGuard.Until(() =>
        {
            while (runner.TryTake(out var e, 100))
            {
                if (e.Kind == FanOutEventKind.Completed)
                {
                    done[e.Item] = e;
                }
            }

            return runner.IsFinished;
        }, "the fan-out finishing");

        return done;
    }

    [Fact]
    public void A_result_judged_failed_and_a_thrown_error_are_failures_a_good_result_is_not()
    {
        using var runner = new FanOutRunner<int, int>(ctx => ctx.Item == 3 ? throw new InvalidOperationException("boom") : ctx.Item,
            isFailure: result => result == 2);
        foreach (var item in new[] { 1, 2, 3 })
        {
            runner.Add(item);
        }

        runner.Complete();
        var done = Completed(runner);
        Assert.False(done[1].Failed);
        Assert.True(done[2].Failed);
        Assert.Null(done[2].Error);
        Assert.True(done[3].Failed);
        Assert.IsType<InvalidOperationException>(done[3].Error);
    }

    [Fact]
    public void Items_skipped_after_a_failure_are_failures()
    {
        using var runner = new FanOutRunner<int, int>(ctx => ctx.Item, new FanOutOptions { ThrottleLimit = 1, StopOnFailure = true },
            isFailure: result => result == 1);
        foreach (var item in new[] { 1, 2 })
        {
            runner.Add(item);
        }

        runner.Complete();
        var done = Completed(runner);
        Assert.True(done[1].Failed);
        Assert.True(done[2].Skipped);
        Assert.True(done[2].Failed);
    }
}
