using Moltar.Engine.Ssh;
using Renci.SshNet;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// Where Moltar reaches into SSH.NET (stdin end-of-file has no public API), a library without those members must
/// fail loudly with SshLibraryIncompatible before a command starts, never run it with its input left open.
/// </summary>
public sealed class LibraryInternalsTests
{
    private sealed class CommandWithoutChannel;

    private sealed class ChannelWithoutEof;

    private sealed class CommandWithAnotherChannel
    {
#pragma warning disable CS0169, CS0649 // the shape of a changed library: the field exists, its type has no SendEof
        private ChannelWithoutEof? _channel;
#pragma warning restore CS0169, CS0649
    }

    private sealed class ChannelWithoutLock
    {
        public void SendEof()
        {
        }
    }

    private sealed class CommandWithUnlockedChannel
    {
#pragma warning disable CS0169, CS0649 // the shape of a changed library: SendEof exists, the lock Close() uses does not
        private ChannelWithoutLock? _channel;
#pragma warning restore CS0169, CS0649
    }

    /// <summary>
    /// SSH.NET's channel as it is (Renci.SshNet.Channels.Channel): SendEof checks IsOpen before it takes the messaging
    /// lock; Close sends CLOSE and records it under that lock, and the channel reads as open until Close has ended.
    /// Records what went to the server, in order.
    /// </summary>
    private sealed class LibraryShapedChannel
    {
        private readonly object _messagingLock = new();
#pragma warning disable CS0414, IDE0052 // read by reflection, as the library's are
        private bool _closeMessageSent;
        private bool _closeMessageReceived;
#pragma warning restore CS0414, IDE0052

        public bool IsOpen { get; } = true;

        public List<string> Sent { get; } = new();

        public void SendEof()
        {
            if (!IsOpen)
                throw new InvalidOperationException("The channel is closed.");
            lock (_messagingLock)
                Sent.Add("EOF");
        }

        /// <summary>The library's Close on its reader thread (the server closed the channel): <paramref name="whileSending"/> runs while it holds the lock.</summary>
        public void Close(Action whileSending)
        {
            _closeMessageReceived = true;
            lock (_messagingLock)
            {
                Sent.Add("CLOSE");
                _closeMessageSent = true;
                whileSending();
            }
            // IsOpen turns false later, when the library has finished closing (worst case: not yet when an EOF is tried).
        }
    }

    private sealed class LibraryShapedCommand(LibraryShapedChannel channel)
    {
#pragma warning disable CS0414, IDE0052 // read by reflection, as SshCommand's is
        private readonly LibraryShapedChannel _channel = channel;
#pragma warning restore CS0414, IDE0052
    }

    [Fact]
    public void The_SshNet_Moltar_ships_with_has_what_ending_stdin_needs()
    {
        var members = ChannelEof.Members.Of(typeof(SshCommand));
        Assert.Null(members.Missing);
        ChannelEof.EnsureAvailable();
    }

    [Fact]
    public void A_library_whose_command_has_no_channel_field_fails_loudly()
    {
        var members = ChannelEof.Members.Of(typeof(CommandWithoutChannel));
        Assert.Equal($"{typeof(CommandWithoutChannel).FullName}._channel", members.Missing);

        var before = Assert.Throws<SshFailure>(() => ChannelEof.EnsureAvailable(members));
        Assert.Equal(SshErrorIds.SshLibraryIncompatible, before.ErrorId);
        Assert.Equal(FailureCategory.NotImplemented, before.Category);
        Assert.Contains("._channel", before.Message);
        Assert.Contains("The command was not run", before.Message);

        var sending = Assert.Throws<SshFailure>(() => ChannelEof.Send(new CommandWithoutChannel(), members));
        Assert.Equal(SshErrorIds.SshLibraryIncompatible, sending.ErrorId);
    }

    [Fact]
    public void A_library_whose_channel_has_no_SendEof_fails_loudly()
    {
        var members = ChannelEof.Members.Of(typeof(CommandWithAnotherChannel));
        Assert.Equal($"{typeof(ChannelWithoutEof).FullName}.SendEof()", members.Missing);
        var e = Assert.Throws<SshFailure>(() => ChannelEof.EnsureAvailable(members));
        Assert.Equal(SshErrorIds.SshLibraryIncompatible, e.ErrorId);
        Assert.Contains("SendEof()", e.Message);
    }

    [Fact]
    public void A_library_whose_channel_has_no_messaging_lock_fails_loudly()
    {
        var members = ChannelEof.Members.Of(typeof(CommandWithUnlockedChannel));
        Assert.Equal($"{typeof(ChannelWithoutLock).Namespace}.Channel._messagingLock", members.Missing);
        var e = Assert.Throws<SshFailure>(() => ChannelEof.EnsureAvailable(members));
        Assert.Equal(SshErrorIds.SshLibraryIncompatible, e.ErrorId);
    }

    [Fact]
    public void End_of_file_never_follows_the_close_the_library_sends_when_the_command_ends()
    {
        // The command ended: the library's reader thread is sending CLOSE. An EOF sent now must wait for that and then
        // see the channel closed; one that checked "open" before the lock would go out after the CLOSE, and sshd ends
        // the whole connection over it.
        var channel = new LibraryShapedChannel();
        var command = new LibraryShapedCommand(channel);
        var members = ChannelEof.Members.Of(typeof(LibraryShapedCommand));
        Assert.Null(members.Missing);
        Thread? sender = null;
        channel.Close(whileSending: () =>
        {
            sender = new Thread(() => ChannelEof.Send(command, members)) { IsBackground = true };
            sender.Start();
            // The sender waits on the channel's lock (its own Send, or the library's SendEof after its open check).
            HangGuard.Until(() => (sender.ThreadState & ThreadState.WaitSleepJoin) != 0, "the EOF sender reaching the channel's lock");
        });
        Assert.True(sender!.Join(HangGuard.Limit), "hang guard: the EOF sender");
        Assert.Equal(new[] { "CLOSE" }, channel.Sent);
    }

    [Fact]
    public void End_of_file_goes_out_while_the_channel_is_open()
    {
        var channel = new LibraryShapedChannel();
        var members = ChannelEof.Members.Of(typeof(LibraryShapedCommand));
        ChannelEof.Send(new LibraryShapedCommand(channel), members);
        channel.Close(whileSending: () => { });
        Assert.Equal(new[] { "EOF", "CLOSE" }, channel.Sent);
    }
}
