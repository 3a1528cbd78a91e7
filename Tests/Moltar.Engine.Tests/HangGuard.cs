namespace Moltar.Engine.Tests;

/// <summary>
/// The only wall-clock limit a test may have: a guard against hanging, minutes long, never a speed target (speed is
/// measured by the benchmark, `build.ps1 -Task Bench`). A test that must show something is not waited for makes that
/// thing far longer than the guard (<see cref="NeverWaited"/>), so finishing within the guard at all is the proof,
/// however loaded the machine is.
/// </summary>
public static class HangGuard
{
    public static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    /// <summary>Longer than <see cref="Limit"/>: a sleep or timeout that a passing test can never have waited out.</summary>
    public static readonly TimeSpan NeverWaited = TimeSpan.FromMinutes(10);

    /// <summary><see cref="NeverWaited"/> in whole seconds, for remote `sleep` commands.</summary>
    public const int NeverWaitedSeconds = 600;

    /// <summary>Runs <paramref name="action"/> on its own thread; fails the test if it has not ended within the guard.</summary>
    public static T Run<T>(Func<T> action, string what)
    {
        var task = Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        return Wait(task, what);
    }

    public static void Run(Action action, string what) => Run(() =>
    {
        action();
        return true;
    }, what);

    /// <summary>Waits for a task; fails the test if it has not ended within the guard.</summary>
    public static T Wait<T>(Task<T> task, string what)
    {
        if (!((IAsyncResult)task).AsyncWaitHandle.WaitOne(Limit))
        {
            throw new TimeoutException($"Hang guard: {what} had not ended after {Limit.TotalMinutes:0} minutes.");
        }

        return task.GetAwaiter().GetResult();
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails the test if it does not within the guard.</summary>
    public static void Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Hang guard: {what} had not happened after {Limit.TotalMinutes:0} minutes.");
            }

            Thread.Sleep(20);
        }
    }
}
