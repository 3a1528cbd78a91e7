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
    /// Records what went to the server, in order. <typeparamref name="TLock"/> is the lock's type: object in SSH.NET's
    /// .NET 8 and older builds (Monitor), System.Threading.Lock in its .NET 9+ builds (the one loaded on .NET 10).
    /// </summary>
    private sealed class LibraryShapedChannel<TLock> where TLock : class, new()
    {
        private readonly TLock _messagingLock = new();
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
            Locked(() => Sent.Add("EOF"));
        }

        /// <summary>The library's Close on its reader thread (the server closed the channel): <paramref name="whileSending"/> runs while it holds the lock.</summary>
        public void Close(Action whileSending)
        {
            _closeMessageReceived = true;
            Locked(() =>
            {
                Sent.Add("CLOSE");
                _closeMessageSent = true;
                whileSending();
            });
            // IsOpen turns false later, when the library has finished closing (worst case: not yet when an EOF is tried).
        }

        // What the library's `lock (_messagingLock)` compiles to for each type of lock.
        private void Locked(Action action)
        {
            if (_messagingLock is Lock typed)
            {
                lock (typed)
                    action();
            }
            else
            {
                lock (_messagingLock)
                    action();
            }
        }
    }

    private sealed class LibraryShapedCommand<TLock>(LibraryShapedChannel<TLock> channel) where TLock : class, new()
    {
#pragma warning disable CS0414, IDE0052 // read by reflection, as SshCommand's is
        private readonly LibraryShapedChannel<TLock> _channel = channel;
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
    public void End_of_file_never_follows_the_close_the_library_sends_when_the_command_ends() => EndOfFileNeverFollowsClose<object>();

    [Fact]
    public void End_of_file_never_follows_the_close_of_a_library_built_with_System_Threading_Lock() => EndOfFileNeverFollowsClose<Lock>();

    private static void EndOfFileNeverFollowsClose<TLock>() where TLock : class, new()
    {
        // The command ended: the library's reader thread is sending CLOSE. An EOF sent now must wait for that and then
        // see the channel closed; one that checked "open" before the lock would go out after the CLOSE, and sshd ends
        // the whole connection over it.
        var channel = new LibraryShapedChannel<TLock>();
        var command = new LibraryShapedCommand<TLock>(channel);
        var members = ChannelEof.Members.Of(typeof(LibraryShapedCommand<TLock>));
        Assert.Null(members.Missing);
        Thread? sender = null;
        channel.Close(whileSending: () =>
        {
            sender = new Thread(() => ChannelEof.Send(command, members)) { IsBackground = true };
            sender.Start();
            // The sender waits on the channel's lock (its own Send, or the library's SendEof after its open check).
            HangGuard.Until(() => (sender.ThreadState & ThreadState.WaitSleepJoin) != 0 || !sender.IsAlive, "the EOF sender reaching the channel's lock");
        });
        Assert.True(sender!.Join(HangGuard.Limit), "hang guard: the EOF sender");
        Assert.Equal(new[] { "CLOSE" }, channel.Sent);
    }

    [Fact]
    public void End_of_file_goes_out_while_the_channel_is_open()
    {
        EndOfFileGoesOutWhileOpen<object>();
        EndOfFileGoesOutWhileOpen<Lock>();
    }

    private static void EndOfFileGoesOutWhileOpen<TLock>() where TLock : class, new()
    {
        var channel = new LibraryShapedChannel<TLock>();
        ChannelEof.Send(new LibraryShapedCommand<TLock>(channel), ChannelEof.Members.Of(typeof(LibraryShapedCommand<TLock>)));
        channel.Close(whileSending: () => { });
        Assert.Equal(new[] { "EOF", "CLOSE" }, channel.Sent);
    }

    [Fact]
    public void While_Moltar_holds_the_real_channels_lock_the_library_cannot_close_the_channel()
    {
        // The channel of the SSH.NET Moltar loads (here: its .NET 10 build, whose lock is a System.Threading.Lock), taken
        // without a connection: its Close() takes the messaging lock first, finds the channel not open and sends nothing.
        // While Moltar's end-of-file step holds that lock, Close must wait; a lock Moltar takes some other way (a
        // Monitor on the lock object) would let it through, and a real CLOSE could then go out before the EOF.
        var members = ChannelEof.Members.Of(typeof(SshCommand));
        Assert.Null(members.Missing);
        var channel = System.Runtime.CompilerServices.RuntimeHelpers.GetUninitializedObject(members.Channel!.FieldType.IsInterface
            ? typeof(SshCommand).Assembly.GetType("Renci.SshNet.Channels.ChannelSession")!
            : members.Channel.FieldType);
        members.MessagingLock!.SetValue(channel, Activator.CreateInstance(members.MessagingLock.FieldType));
        var command = System.Runtime.CompilerServices.RuntimeHelpers.GetUninitializedObject(typeof(SshCommand));
        members.Channel.SetValue(command, channel);
        var close = members.MessagingLock.DeclaringType!.GetMethod("Close", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic, Type.EmptyTypes)!;

        Thread? closer = null;
        var closerPassedTheLock = false;
        ChannelEof.UnderChannelLock(command, members, _ =>
        {
            closer = new Thread(() =>
            {
                try
                {
                    close.Invoke(channel, null);
                }
                catch (System.Reflection.TargetInvocationException)
                {
                    // past the lock: what follows it needs a connection this channel never had
                }
            }) { IsBackground = true };
            closer.Start();
            // Held, Close can never end here; a second is ample for it to end when the lock lets it through.
            closerPassedTheLock = closer.Join(TimeSpan.FromSeconds(1));
        });
        Assert.True(closer!.Join(HangGuard.Limit), "hang guard: the library's Close");
        Assert.False(closerPassedTheLock, $"the library's Close ran while Moltar held the channel's lock ({members.Locking!.Name} taken on a {members.MessagingLock.FieldType.FullName})");
    }
}
