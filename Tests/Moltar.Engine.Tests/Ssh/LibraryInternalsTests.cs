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
}
