using System.Diagnostics;
using Moltar.Engine.Transfer;
using Xunit;

namespace Moltar.Engine.Tests.Transfer;

public class RemotePathTests
{
    [Theory]
    [InlineData("plain", "'plain'")]
    [InlineData("with space.txt", "'with space.txt'")]
    [InlineData("it's", "'it'\\''s'")]
    [InlineData("'", "''\\'''")]
    [InlineData("", "''")]
    [InlineData("$(rm -rf ~)`x` \"q\" \\n", "'$(rm -rf ~)`x` \"q\" \\n'")]
    [InlineData("ünïcödé 日本.txt", "'ünïcödé 日本.txt'")]
    [InlineData("-rf", "'-rf'")]
    public void QuoteMakesOneSingleQuotedShellWord(string value, string expected)
    {
        Assert.Equal(expected, RemotePath.Quote(value));
    }

    [Fact]
    public void QuoteRefusesNul()
    {
        Assert.Throws<ArgumentException>(() => RemotePath.Quote("a\0b"));
    }

    [Theory]
    [InlineData("plain")]
    [InlineData("with space and 'single' and \"double\" quotes")]
    [InlineData("$HOME `id` ; | & > < * ? [a] \\ !")]
    [InlineData("ünïcödé 日本 🚀.txt")]
    [InlineData("line\nbreak")]
    [InlineData("'''")]
    public void QuotedWordsReachTheProgramUnchangedThroughARealShell(string value)
    {
        // The real thing: /bin/sh parses the quoted word and printf hands it back byte for byte.
        var info = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("printf '%s' " + RemotePath.Quote(value));
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        Assert.Equal(value, output);
    }

    [Theory]
    [InlineData("/home/u", "", "/home/u")]
    [InlineData("/home/u", "~", "/home/u")]
    [InlineData("/home/u", ".", "/home/u")]
    [InlineData("/home/u", "~/drop/", "/home/u/drop")]
    [InlineData("/home/u", "drop//x", "/home/u/drop/x")]
    [InlineData("/home/u", "/var/www/public/", "/var/www/public")]
    [InlineData("/home/u", "/", "/")]
    [InlineData("/home/u", "../other", "/home/u/../other")]
    [InlineData("/home/u", "~user/x", "/home/u/~user/x")]
    public void ResolveMakesPathsAbsoluteFromTheHomeDirectory(string home, string path, string expected)
    {
        Assert.Equal(expected, RemotePath.Resolve(home, path));
    }

    [Theory]
    [InlineData("/a", "b", "/a/b")]
    [InlineData("/a/", "b/c", "/a/b/c")]
    [InlineData("/", "b", "/b")]
    [InlineData("", "b", "b")]
    [InlineData("/a", "", "/a")]
    public void JoinPutsOneSlashBetween(string directory, string relative, string expected)
    {
        Assert.Equal(expected, RemotePath.Join(directory, relative));
    }

    [Fact]
    public void JoinRefusesAnAbsoluteSecondPart()
    {
        Assert.Throws<ArgumentException>(() => RemotePath.Join("/a", "/etc/passwd"));
    }

    [Theory]
    [InlineData("/a/b/c.txt", "/a/b", "c.txt")]
    [InlineData("/a", "/", "a")]
    [InlineData("/", "/", "")]
    [InlineData("c.txt", "", "c.txt")]
    [InlineData("/a/b/", "/a", "b")]
    public void DirectoryAndFileNameSplitAtTheLastSlash(string path, string directory, string name)
    {
        Assert.Equal(directory, RemotePath.GetDirectory(path));
        Assert.Equal(name, RemotePath.GetFileName(path));
    }

    [Theory]
    [InlineData("/var/log/app", "/var/log/app/a.log", true)]
    [InlineData("/var/log/app", "/var/log/app", true)]
    [InlineData("/var/log/app", "/var/log/app/sub/../b.log", true)]
    [InlineData("/var/log/app", "/var/log/app/../../../etc/passwd", false)]
    [InlineData("/var/log/app", "/var/log/application/x", false)]
    [InlineData("/var/log/app", "/etc/passwd", false)]
    [InlineData("/", "/etc/passwd", true)]
    public void IsUnderComparesWholeSegments(string root, string path, bool expected)
    {
        Assert.Equal(expected, RemotePath.IsUnder(root, path));
    }

    [Theory]
    [InlineData("a.txt", true)]
    [InlineData(".hidden", true)]
    [InlineData("...", true)]
    [InlineData("with space", true)]
    [InlineData("", false)]
    [InlineData(".", false)]
    [InlineData("..", false)]
    [InlineData("a/b", false)]
    [InlineData("/etc", false)]
    [InlineData("a\0b", false)]
    public void OnlyPlainNamesAreSafe(string name, bool expected)
    {
        Assert.Equal(expected, RemotePath.IsSafeName(name));
    }
}

public class GlobTests
{
    [Theory]
    [InlineData("*.log", "app.log", true)]
    [InlineData("*.log", "app.log.1", false)]
    [InlineData("*.log", ".hidden.log", false)]
    [InlineData(".*.log", ".hidden.log", true)]
    [InlineData("*", "anything at all", true)]
    [InlineData("a?c", "abc", true)]
    [InlineData("a?c", "ac", false)]
    [InlineData("[ab]*", "bz", true)]
    [InlineData("[ab]*", "cz", false)]
    [InlineData("[!ab]*", "cz", true)]
    [InlineData("[^ab]*", "az", false)]
    [InlineData("file[0-9].txt", "file7.txt", true)]
    [InlineData("file[0-9].txt", "filex.txt", false)]
    [InlineData("a[1.txt", "a[1.txt", true)]
    [InlineData("a\\*b", "a*b", true)]
    [InlineData("a\\*b", "axb", false)]
    [InlineData("*.txt", "ünïcödé 日本.txt", true)]
    [InlineData("**x", "abx", true)]
    public void MatchesLikeTheShell(string pattern, string name, bool expected)
    {
        Assert.Equal(expected, Glob.IsMatch(pattern, name));
    }
}

public class RemoteCommandTests
{
    [Fact]
    public void Sha256SumIsFixedTextAndTakesThePathsNulSeparatedOnStdin()
    {
        // Nothing for a login shell to interpret (fish and csh quote differently from sh): no quotes, no $, no \\.
        Assert.Equal("xargs -0 sha256sum --", RemoteCommands.Sha256Sum);
        Assert.Equal("/srv/it's \\\\ here.txt\0-n\0"u8.ToArray(), RemoteCommands.NulSeparated("/srv/it's \\\\ here.txt", "-n"));
        Assert.Throws<ArgumentException>(() => RemoteCommands.NulSeparated("/srv/a\0b"));
    }

    [Theory]
    [InlineData("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /tmp/empty\n", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    [InlineData("\\E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855  /tmp/a\\nb\n", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    [InlineData("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    [InlineData("", null)]
    [InlineData("sha256sum: /tmp/x: No such file or directory", null)]
    [InlineData("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85  short", null)]
    [InlineData("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855aa  long", null)]
    public void ParsesTheHashOutOfSha256SumOutput(string output, string? expected)
    {
        Assert.Equal(expected, RemoteCommands.ParseSha256Sum(output));
    }

    [Fact]
    public void ExitCode127IsCommandNotFound()
    {
        Assert.True(RemoteCommands.IsCommandNotFound(127));
        Assert.False(RemoteCommands.IsCommandNotFound(1));
        Assert.False(RemoteCommands.IsCommandNotFound(null));
    }

    [Theory]
    [InlineData("644", 0x1A4)]
    [InlineData("0755", 0x1ED)]
    [InlineData("1777", 0x3FF)]
    [InlineData("000", 0)]
    public void ModesAreOctal(string text, int mode)
    {
        Assert.True(FileModes.TryParse(text, out var parsed));
        Assert.Equal(mode, parsed);
        Assert.Equal(text.TrimStart('0').PadLeft(3, '0'), FileModes.Format(mode));
    }

    [Theory]
    [InlineData("")]
    [InlineData("64")]
    [InlineData("0o644")]
    [InlineData("888")]
    [InlineData("12345")]
    [InlineData("rw-")]
    [InlineData(null)]
    public void OtherModesAreRefused(string? text)
    {
        Assert.False(FileModes.TryParse(text, out _));
    }

    [Fact]
    public void SshNetGetsTheOctalDigitsAsADecimalNumber()
    {
        Assert.Equal((short)644, FileModes.ToSshNetDigits(0x1A4));
        Assert.Equal((short)4755, FileModes.ToSshNetDigits(0x9ED));
        Assert.Equal(0x1ED, FileModes.PermissionBits(0x9ED)); // setuid dropped
    }
}
