using System.Text;
using Moltar.Engine.Ssh;
using Renci.SshNet;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

public sealed class AlgorithmTests
{
    private static ConnectionInfo NewInfo() => new("h", "u", new NoneAuthenticationMethod("u"));

    [Fact]
    public void Fan_out_order_puts_hybrid_and_curve25519_before_sntrup_and_gcm_first()
    {
        var info = NewInfo();
        SshAlgorithms.Apply(info, null, null, null, Array.Empty<string>(), null);
        var kex = info.KeyExchangeAlgorithms.Keys.ToList();
        Assert.Equal(new[] { "mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org" }, kex.Take(3));
        Assert.True(kex.IndexOf("curve25519-sha256") < kex.IndexOf("sntrup761x25519-sha512"));
        Assert.Equal("aes128-gcm@openssh.com", info.Encryptions.Keys.First());
        Assert.DoesNotContain(info.HostKeyAlgorithms.Keys, k => k.Contains("-cert-"));
        Assert.Equal("ssh-ed25519", info.HostKeyAlgorithms.Keys.First());
    }

    [Fact]
    public void Known_host_key_types_go_first()
    {
        var info = NewInfo();
        SshAlgorithms.Apply(info, null, null, null, new[] { "ssh-rsa", "ecdsa-sha2-nistp256" }, null);
        Assert.Equal(new[] { "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519" }, info.HostKeyAlgorithms.Keys.Take(5));
    }

    [Fact]
    public void Config_lists_win_with_OpenSSH_syntax()
    {
        var defaults = new[] { "a", "b", "c", "d-1", "d-2" };
        var supported = defaults.Concat(new[] { "e" }).ToList();
        Assert.Equal(new[] { "c", "a" }, SshAlgorithms.ApplySpec(defaults, supported, "c,a"));
        Assert.Equal(new[] { "a", "b", "c", "d-1", "d-2", "e" }, SshAlgorithms.ApplySpec(defaults, supported, "+e,a"));
        Assert.Equal(new[] { "a", "b", "c" }, SshAlgorithms.ApplySpec(defaults, supported, "-d-*"));
        Assert.Equal(new[] { "d-2", "a", "b", "c", "d-1" }, SshAlgorithms.ApplySpec(defaults, supported, "^d-2"));
        var notes = new List<string>();
        Assert.Equal(new[] { "b" }, SshAlgorithms.ApplySpec(defaults, supported, "unknown-alg,b", notes));
        Assert.Contains(notes, n => n.Contains("unknown-alg"));
    }

    [Fact]
    public void Config_kex_and_ciphers_reach_the_connection_info()
    {
        var info = NewInfo();
        var notes = new List<string>();
        SshAlgorithms.Apply(info, "sntrup761x25519-sha512,curve25519-sha256", "^chacha20-poly1305@openssh.com", null, Array.Empty<string>(), notes);
        Assert.Equal(new[] { "sntrup761x25519-sha512", "curve25519-sha256" }, info.KeyExchangeAlgorithms.Keys);
        Assert.Equal("chacha20-poly1305@openssh.com", info.Encryptions.Keys.First());
        Assert.Contains("aes128-gcm@openssh.com", info.Encryptions.Keys);

        var bad = NewInfo();
        SshAlgorithms.Apply(bad, "nothing-we-know", null, null, Array.Empty<string>(), notes);
        Assert.Equal("mlkem768x25519-sha256", bad.KeyExchangeAlgorithms.Keys.First());
        Assert.Contains(notes, n => n.Contains("leaves no usable"));
    }
}

public sealed class OutputCollectorTests
{
    private static (OutputCollector Collector, List<string> Lines) New(long max = 1 << 20, int maxLine = 1 << 16)
    {
        var lines = new List<string>();
        return (new OutputCollector(ExecStream.Stdout, max, new UTF8Encoding(false), (_, l) => lines.Add(l), maxLine), lines);
    }

    [Fact]
    public void Lines_split_across_chunks_and_crlf()
    {
        var (c, lines) = New();
        foreach (var chunk in new[] { "one\r", "\ntw", "o\n\nthr", "ee" })
        {
            c.Append(Encoding.UTF8.GetBytes(chunk));
        }

        c.Complete();
        Assert.Equal(new[] { "one", "two", "", "three" }, lines);
        Assert.Equal("one\r\ntwo\n\nthree", c.Text);
    }

    [Fact]
    public void Multibyte_characters_split_between_chunks_decode_whole()
    {
        var (c, lines) = New();
        var bytes = Encoding.UTF8.GetBytes("héllo wörld ✓\n");
        foreach (var b in bytes)
        {
            c.Append(new[] { b });
        }

        c.Complete();
        Assert.Equal("héllo wörld ✓", Assert.Single(lines));
    }

    [Fact]
    public void Output_beyond_the_limit_is_counted_and_still_streamed()
    {
        var (c, lines) = New(max: 10);
        c.Append(Encoding.UTF8.GetBytes("0123456789abcdef\nsecond\n"));
        c.Complete();
        Assert.Equal("0123456789", c.Text);
        Assert.Equal(24, c.TotalBytes);
        Assert.True(c.Truncated);
        Assert.Equal(new[] { "0123456789abcdef", "second" }, lines);
    }

    [Fact]
    public void Very_long_lines_are_split_for_the_callback()
    {
        var (c, lines) = New(maxLine: 4);
        c.Append(Encoding.UTF8.GetBytes("abcdefghij\nxy\n"));
        c.Complete();
        Assert.Equal(new[] { "abcd", "efgh", "ij", "xy" }, lines);
    }

    [Fact]
    public void A_throwing_callback_stops_lines_but_not_collection()
    {
        var c = new OutputCollector(ExecStream.Stderr, 100, Encoding.UTF8, (_, _) => throw new InvalidOperationException("boom"), 100);
        c.Append(Encoding.UTF8.GetBytes("a\nb\n"));
        c.Complete();
        Assert.IsType<InvalidOperationException>(c.CallbackFailure);
        Assert.Equal("a\nb\n", c.Text);
    }

    [Fact]
    public void Without_room_chunks_are_counted_not_split_and_still_kept()
    {
        var lines = new List<string>();
        var c = new OutputCollector(ExecStream.Stdout, 1000, Encoding.UTF8, (_, l) => lines.Add(l), 100, lineRoom: () => false);
        c.Append(Encoding.UTF8.GetBytes("a\nb\nc"));
        c.Complete();
        Assert.Empty(lines);
        Assert.Equal(3, c.LinesNotShown);
        Assert.Equal("a\nb\nc", c.Text);
    }

    [Fact]
    public void Splitting_resumes_after_a_line_end_once_there_is_room_again()
    {
        var lines = new List<string>();
        var room = true;
        var c = new OutputCollector(ExecStream.Stdout, 1000, Encoding.UTF8, (_, l) => lines.Add(l), 100, lineRoom: () => room);
        c.Append(Encoding.UTF8.GetBytes("one\ntw"));
        room = false;
        c.Append(Encoding.UTF8.GetBytes("o\nthree\nfo"));   // "two" and "three" are skipped; "fo..." too
        room = true;
        c.Append(Encoding.UTF8.GetBytes("ur\nfive\nsi"));   // "four" ends here: counted; splitting resumes with "five"
        c.Append(Encoding.UTF8.GetBytes("x"));
        c.Complete();
        Assert.Equal(new[] { "one", "five", "six" }, lines);
        Assert.Equal(3, c.LinesNotShown);
        Assert.Equal("one\ntwo\nthree\nfour\nfive\nsix", c.Text);
    }

    [Fact]
    public void Room_is_not_asked_for_encodings_where_a_newline_byte_can_be_part_of_a_character()
    {
        var lines = new List<string>();
        var asked = 0;
        var c = new OutputCollector(ExecStream.Stdout, 1000, Encoding.Unicode, (_, l) => lines.Add(l), 100, lineRoom: () => { asked++; return false; });
        c.Append(Encoding.Unicode.GetBytes("a\nb\n"));
        c.Complete();
        Assert.Equal(0, asked);
        Assert.Equal(new[] { "a", "b" }, lines);
    }
}

public sealed class PtyMarkerTests
{
    private static string Feed(PtyMarkerParser parser, params string[] chunks)
    {
        var output = new List<byte>();
        foreach (var chunk in chunks)
        {
            parser.Feed(Encoding.UTF8.GetBytes(chunk), data => output.AddRange(data.ToArray()));
        }

        return Encoding.UTF8.GetString(output.ToArray());
    }

    [Fact]
    public void Keeps_only_what_is_between_the_markers()
    {
        var p = new PtyMarkerParser("abc");
        var text = Feed(p, "Welcome to the MOTD\r\n$ \u001eMabcS\u001e\nhello\nwor", "ld\n\u001eMabcE7\u001e\n$ logout\n");
        Assert.Equal("hello\nworld\n", text);
        Assert.True(p.Ended);
        Assert.Equal(7, p.ExitCode);
    }

    [Fact]
    public void Markers_split_at_every_byte_are_found()
    {
        var all = "junk\u001eMn1S\u001e\r\nout\u001eMn1E0\u001e\n";
        var p = new PtyMarkerParser("n1");
        var text = Feed(p, all.Select(ch => ch.ToString()).ToArray());
        Assert.Equal("out", text);
        Assert.Equal(0, p.ExitCode);
    }

    [Fact]
    public void The_echoed_command_line_does_not_look_like_a_marker()
    {
        var line = PtyMarkerParser.CommandLine("echo 'hi'", "n2");
        Assert.DoesNotContain('\u001e', line);
        var p = new PtyMarkerParser("n2");
        var text = Feed(p, line, "\u001eMn2S\u001e\nhi\n\u001eMn2E0\u001e\n");
        Assert.Equal("hi\n", text);
        Assert.Contains("'echo '\\''hi'\\'''", line);
    }

    [Fact]
    public void A_host_that_prints_the_end_markers_beginning_and_never_its_end_cannot_make_the_parser_hold_its_output()
    {
        // The attack: the end marker's prefix (the nonce is in the command line the host was sent), then megabytes
        // without the closing 0x1E. Everything after the prefix must still come out, and the parser hold back at
        // most a marker's length, not the whole stream.
        var p = new PtyMarkerParser("n4");
        var output = new List<byte>();
        int maxPending = 0;
        void Chunk(string text)
        {
            p.Feed(Encoding.UTF8.GetBytes(text), data => output.AddRange(data.ToArray()));
            maxPending = Math.Max(maxPending, p.PendingBytes);
        }

        Chunk("\u001eMn4S\u001e\n");
        Chunk("\u001eMn4E");
        var flood = new string('x', 4096);
        for (int i = 0; i < 256; i++)
            Chunk(flood);
        Chunk("\u001eMn4E12345678901234\u001e tail\n");

        Assert.False(p.Ended);
        Assert.True(maxPending <= "\u001eMn4E".Length + PtyMarkerParser.MaxExitStatusLength, $"held back {maxPending} bytes");
        Assert.Equal("\u001eMn4E" + flood.Length * 256 + "\u001eMn4E12345678901234\u001e tail\n",
                     Encoding.UTF8.GetString(output.ToArray()).Replace(new string('x', flood.Length * 256), (flood.Length * 256).ToString()));

        Chunk("\u001eMn4E3\u001e\n"); // the real end marker still ends the command
        Assert.True(p.Ended);
        Assert.Equal(3, p.ExitCode);
    }

    [Fact]
    public void Output_that_merely_resembles_a_marker_is_kept()
    {
        var p = new PtyMarkerParser("n3");
        var text = Feed(p, "\u001eMn3S\u001e\n", "a\u001eMn3", "X more\n", "\u001eMn3E1\u001e\n");
        Assert.Equal("a\u001eMn3X more\n", text);
        Assert.Equal(1, p.ExitCode);
    }
}
