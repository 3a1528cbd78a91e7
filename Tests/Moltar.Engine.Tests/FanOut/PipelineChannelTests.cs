using Moltar.Engine.FanOut;
using Xunit;

namespace Moltar.Engine.Tests.FanOut;

/// <summary>The one way from workers to the pipeline thread: bounded, never waited on, results never dropped.</summary>
public sealed class PipelineChannelTests
{
    private static List<T> ReadAll<T>(PipelineChannel<T> channel)
    {
        var items = new List<T>();
        while (channel.TryRead(out var item))
        {
            items.Add(item);
        }

        return items;
    }

    [Fact]
    public void Memory_does_not_grow_with_a_consumer_that_does_not_read()
    {
        var channel = new PipelineChannel<string>(new PipelineChannelOptions { LineCapacity = 1000, MessageCapacity = 100 });
        var line = new string('x', 200);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = GC.GetTotalMemory(forceFullCollection: true);
        // 500,000 lines of 200 characters (200 MB as strings if each were kept) and as many messages; nobody reads.
        HangGuard.Run(() =>
        {
            for (var i = 0; i < 500_000; i++)
            {
                channel.TryWrite(PipelineItemKind.Line, line + i, line.Length);
                channel.TryWrite(PipelineItemKind.Message, "verbose " + i);
            }
        }, "writing without a reader");
        long after = GC.GetTotalMemory(forceFullCollection: true);

        Assert.Equal(1100, channel.Queued);
        Assert.Equal(1100, channel.PeakQueued);
        Assert.Equal(500_000 - 1000, channel.LinesDropped);
        Assert.Equal(500_000 - 100, channel.MessagesDropped);
        // What is kept: 1,100 small strings (well under a megabyte); keeping every line would be hundreds of megabytes.
        Assert.True(after - before < 16L * 1024 * 1024, $"the channel's memory grew by {(after - before) / 1024} KiB");
        GC.KeepAlive(channel);
    }

    [Fact]
    public void Results_are_never_dropped_and_never_wait_however_many_nobody_reads()
    {
        var channel = new PipelineChannel<int>(new PipelineChannelOptions { LineCapacity = 1, MessageCapacity = 1 });
        var writers = Enumerable.Range(0, 4).Select(w => Task.Factory.StartNew(() =>
        {
            for (var i = 0; i < 10_000; i++)
            {
                Assert.True(channel.TryWrite(PipelineItemKind.Result, w * 10_000 + i));
                channel.TryWrite(PipelineItemKind.Line, -1, 1);
                channel.TryWrite(PipelineItemKind.Message, -2);
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        HangGuard.Run(() => Task.WaitAll(writers), "the writers (no reader)");

        var items = ReadAll(channel);
        Assert.Equal(Enumerable.Range(0, 40_000), items.Where(i => i >= 0).OrderBy(i => i));
        Assert.Single(items, -1);
        Assert.Single(items, -2);
        Assert.Equal(40_000 - 1, channel.LinesDropped);
        Assert.Equal(40_000 - 1, channel.MessagesDropped);
    }

    [Fact]
    public void Lines_are_dropped_and_counted_while_full_and_flow_again_once_the_reader_takes_them()
    {
        var channel = new PipelineChannel<string>(new PipelineChannelOptions { LineCapacity = 2 });
        Assert.True(channel.TryWrite(PipelineItemKind.Line, "a", 1));
        Assert.True(channel.HasLineRoom);
        Assert.True(channel.TryWrite(PipelineItemKind.Line, "b", 1));
        Assert.False(channel.HasLineRoom);
        Assert.False(channel.TryWrite(PipelineItemKind.Line, "c", 1));
        Assert.False(channel.TryWrite(PipelineItemKind.Line, "d", 1));
        Assert.Equal(2, channel.LinesDropped);

        Assert.True(channel.TryRead(out var first));
        Assert.Equal("a", first);
        Assert.True(channel.HasLineRoom);
        Assert.True(channel.TryWrite(PipelineItemKind.Line, "e", 1));
        Assert.Equal(new[] { "b", "e" }, ReadAll(channel));
        Assert.Equal(2, channel.LinesDropped);
    }

    [Fact]
    public void Characters_bound_lines_too_but_one_long_line_passes_alone()
    {
        var channel = new PipelineChannel<string>(new PipelineChannelOptions { LineCharCapacity = 10 });
        Assert.True(channel.TryWrite(PipelineItemKind.Line, "long", 50)); // nothing else waits: it passes
        Assert.False(channel.TryWrite(PipelineItemKind.Line, "short", 1));
        Assert.Equal(new[] { "long" }, ReadAll(channel));
        Assert.True(channel.TryWrite(PipelineItemKind.Line, "six", 6));
        Assert.False(channel.TryWrite(PipelineItemKind.Line, "five", 5)); // 6 + 5 > 10
        Assert.True(channel.TryWrite(PipelineItemKind.Line, "four", 4));
        Assert.Equal(2, channel.LinesDropped);
    }

    [Fact]
    public void Items_come_out_in_the_order_written_whatever_their_kind()
    {
        var channel = new PipelineChannel<string>();
        channel.TryWrite(PipelineItemKind.Message, "status");
        channel.TryWrite(PipelineItemKind.Line, "line", 4);
        channel.TryWrite(PipelineItemKind.Result, "result");
        channel.TryWrite(PipelineItemKind.Line, "after", 5);
        Assert.Equal(new[] { "status", "line", "result", "after" }, ReadAll(channel));
        Assert.Equal(0, channel.Queued);
    }

    [Fact]
    public void After_Complete_writes_are_refused_and_the_reader_sees_the_end_once_it_took_the_rest()
    {
        var channel = new PipelineChannel<int>();
        channel.TryWrite(PipelineItemKind.Result, 1);
        channel.Complete();
        Assert.False(channel.TryWrite(PipelineItemKind.Result, 2));
        Assert.False(channel.IsDrained);
        Assert.True(channel.TryRead(out var one, 0));
        Assert.Equal(1, one);
        Assert.True(channel.IsDrained);
        // Waiting "until one comes" on an ended channel returns at once instead of hanging.
        Assert.False(HangGuard.Run(() => channel.TryRead(out _, Timeout.Infinite), "a read of an ended channel"));
    }

    [Fact]
    public async Task Readable_wakes_a_waiting_reader_when_a_worker_writes()
    {
        var channel = new PipelineChannel<string>();
        var readable = channel.Readable;
        Assert.False(readable.IsCompleted);
        Assert.Same(readable, channel.Readable); // one task until it ends: waiting in a loop allocates nothing new
        var writer = new Thread(() => channel.TryWrite(PipelineItemKind.Message, "hello"));
        writer.Start();
        await readable.WaitAsync(HangGuard.Limit); // throws TimeoutException when the write did not wake the reader
        Assert.True(channel.TryRead(out var text));
        Assert.Equal("hello", text);
        writer.Join();
    }
}
