using Moltar.Engine.Transfer;
using Xunit;

namespace Moltar.Engine.Tests.Transfer;

/// <summary>Upload planning against a real scratch directory (local files are the input, so they are real).</summary>
public sealed class UploadPlannerTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("moltar-plan-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string File(string relative, string content = "x", UnixFileMode? mode = null)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        System.IO.File.WriteAllText(path, content);
        if (mode is { } m && !OperatingSystem.IsWindows())
        {
            System.IO.File.SetUnixFileMode(path, m);
        }

        return path;
    }

    private string Dir(string relative) => Directory.CreateDirectory(Path.Combine(_root, relative)).FullName;

    [Fact]
    public void OneFileToADirectoryOrAFileName()
    {
        var robots = File("robots.txt", "User-agent: *");
        var toDirectory = UploadPlanner.Plan(new[] { robots }, recurse: false, "/var/www/public/");
        Assert.Equal(DestinationKind.Directory, toDirectory.Kind);
        var file = Assert.Single(toDirectory.Files);
        Assert.Equal("robots.txt", file.RelativePath);
        Assert.Equal(13, file.Length);
        Assert.Equal("/var/www/public/robots.txt", toDirectory.RemotePathOf(file, "/var/www/public", false));

        var ambiguous = UploadPlanner.Plan(new[] { robots }, recurse: false, "/var/www/public/robots-new.txt");
        Assert.Equal(DestinationKind.FileOrDirectory, ambiguous.Kind);
        Assert.Equal("/var/www/public/robots-new.txt", ambiguous.RemotePathOf(ambiguous.Files[0], "/var/www/public/robots-new.txt", destinationIsDirectory: false));
        Assert.Equal("/srv/x/robots.txt", ambiguous.RemotePathOf(ambiguous.Files[0], "/srv/x", destinationIsDirectory: true));

        // No destination: the home directory, which is always a directory.
        Assert.Equal(DestinationKind.Directory, UploadPlanner.Plan(new[] { robots }, false, null).Kind);
        Assert.Equal(DestinationKind.Directory, UploadPlanner.Plan(new[] { robots }, false, "~").Kind);
    }

    [Fact]
    public void WildcardsExpandInNameOrderAndSkipHiddenFiles()
    {
        File("logs/b.log");
        File("logs/a.log");
        File("logs/.hidden.log");
        File("logs/notes.txt");
        var plan = UploadPlanner.Plan(new[] { Path.Combine(_root, "logs", "*.log") }, false, "/tmp/");
        Assert.Equal(new[] { "a.log", "b.log" }, plan.Files.Select(f => f.RelativePath));
        Assert.Equal(DestinationKind.Directory, plan.Kind);
    }

    [Fact]
    public void WildcardsWorkInDirectorySegmentsToo()
    {
        File("sites/one/robots.txt");
        File("sites/two/robots.txt");
        var error = Assert.Throws<MoltarException>(() => UploadPlanner.Plan(new[] { Path.Combine(_root, "sites", "*", "robots.txt") }, false, "/tmp/"));
        Assert.Equal(PlanErrorIds.DuplicateDestination, error.ErrorId);
        Assert.Contains("robots.txt", error.Message);
    }

    [Fact]
    public void AnExistingNameIsTakenLiterallyEvenWithBrackets()
    {
        var odd = File("a[1].txt");
        File("a1.txt");
        var plan = UploadPlanner.Plan(new[] { odd }, false, "/tmp/");
        Assert.Equal("a[1].txt", Assert.Single(plan.Files).RelativePath);
    }

    [Fact]
    public void ARecursiveTreeKeepsItsShapeAndEmptyDirectories()
    {
        File("site/index.html");
        File("site/css/main.css");
        File("site/img/logo one.png");
        File("site/img/ünï 日本.svg");
        Dir("site/empty");
        var plan = UploadPlanner.Plan(new[] { Path.Combine(_root, "site") }, recurse: true, "/var/www");
        Assert.Equal(DestinationKind.Directory, plan.Kind);
        Assert.Equal(new[] { "site/index.html", "site/css/main.css", "site/img/logo one.png", "site/img/ünï 日本.svg" }.OrderBy(x => x, StringComparer.Ordinal),
            plan.Files.Select(f => f.RelativePath).OrderBy(x => x, StringComparer.Ordinal));
        Assert.Equal(new[] { "site", "site/css", "site/empty", "site/img" }, plan.Directories);
        Assert.Equal(new[] { "/var/www", "/var/www/site", "/var/www/site/css", "/var/www/site/empty", "/var/www/site/img" },
            plan.RemoteDirectoriesFor("/var/www", true));
    }

    [Fact]
    public void ADirectoryNeedsRecurse()
    {
        Dir("site");
        File("site/index.html");
        var error = Assert.Throws<MoltarException>(() => UploadPlanner.Plan(new[] { Path.Combine(_root, "site") }, false, "/tmp/"));
        Assert.Equal(PlanErrorIds.PathIsDirectory, error.ErrorId);
        Assert.Contains("-Recurse", error.Message);
    }

    [Fact]
    public void DirectoriesMatchedByAWildcardWithoutRecurseAreLeftOutWithAWarning()
    {
        File("mix/a.txt");
        File("mix/sub/b.txt");
        var plan = UploadPlanner.Plan(new[] { Path.Combine(_root, "mix", "*") }, false, "/tmp/");
        Assert.Equal("a.txt", Assert.Single(plan.Files).RelativePath);
        Assert.Contains(plan.Warnings, w => w.Contains("sub") && w.Contains("-Recurse"));
    }

    [Fact]
    public void MissingPathsAndEmptyWildcardsAreErrors()
    {
        var missing = Assert.Throws<MoltarException>(() => UploadPlanner.Plan(new[] { Path.Combine(_root, "nope.txt") }, false, "/tmp/"));
        Assert.Equal(PlanErrorIds.PathNotFound, missing.ErrorId);
        Assert.Contains("does not exist", missing.Message);
        var none = Assert.Throws<MoltarException>(() => UploadPlanner.Plan(new[] { Path.Combine(_root, "*.none") }, false, "/tmp/"));
        Assert.Equal(PlanErrorIds.PathNotFound, none.ErrorId);
        Assert.Contains("matches no file", none.Message);
    }

    [Fact]
    public void TwoSourcesWithTheSameNameAreRefused()
    {
        var a = File("one/config.ini");
        var b = File("two/config.ini");
        var error = Assert.Throws<MoltarException>(() => UploadPlanner.Plan(new[] { a, b }, false, "/etc/app/"));
        Assert.Equal(PlanErrorIds.DuplicateDestination, error.ErrorId);
    }

    [Fact]
    public void PermissionBitsAreTakenFromTheLocalFile()
    {
        var script = File("deploy.sh", "#!/bin/sh", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        var plan = UploadPlanner.Plan(new[] { script }, false, "/tmp/");
        Assert.Equal("750", FileModes.Format(plan.Files[0].Mode));
    }

    [Fact]
    public void SymlinkedFilesInsideTheTreeAreSentAsContentAndSymlinkedDirectoriesAreNotFollowed()
    {
        File("tree/data/content.txt", "content");
        File("tree/real.txt");
        System.IO.File.CreateSymbolicLink(Path.Combine(_root, "tree", "link.txt"), "data/content.txt");
        Directory.CreateSymbolicLink(Path.Combine(_root, "tree", "loop"), Path.Combine(_root, "tree"));
        var plan = UploadPlanner.Plan(new[] { Path.Combine(_root, "tree") }, recurse: true, "/tmp/");
        Assert.Equal(new[] { "tree/link.txt", "tree/real.txt", "tree/data/content.txt" }, plan.Files.Select(f => f.RelativePath));
        Assert.Equal(7, plan.Files[0].Length);
        Assert.Contains(plan.Warnings, w => w.Contains("loop") && w.Contains("not followed"));
        Assert.DoesNotContain("tree/loop", plan.Directories);
    }

    [Theory]
    [InlineData("../../.aws/credentials")]          // relative, climbing out
    [InlineData("ABSOLUTE")]                         // absolute
    [InlineData("inner/../../../.aws/credentials")]  // through a linked folder inside the tree: inner -> ../elsewhere
    public void ASymlinkLeadingOutsideTheTreeIsRefusedUnlessFollowSymlink(string link)
    {
        var secret = File("home/.aws/credentials", "aws_secret_access_key = s3cr3t");
        File("home/repo/dist/index.html");
        Dir("home/repo/elsewhere/x");
        Directory.CreateSymbolicLink(Path.Combine(_root, "home/repo/dist/inner"), "../elsewhere/x");
        string robots = Path.Combine(_root, "home/repo/dist/robots.txt");
        System.IO.File.CreateSymbolicLink(robots, link == "ABSOLUTE" ? secret : link);
        if (!System.IO.File.Exists(robots))
            throw new InvalidOperationException($"test set-up: {link} should lead to the secret");
        string dist = Path.Combine(_root, "home/repo/dist");

        foreach (var paths in new[] { new[] { dist }, new[] { Path.Combine(dist, "*") } })
        {
            var refused = Assert.Throws<MoltarException>(() => UploadPlanner.Plan(paths, recurse: true, "/var/www/"));
            Assert.Equal(PlanErrorIds.SymlinkOutsideTree, refused.ErrorId);
            Assert.Contains(robots, refused.Message);
            Assert.Contains("-FollowSymlink", refused.Message);
        }

        var followed = UploadPlanner.Plan(new[] { dist }, recurse: true, "/var/www/", followSymlinks: true);
        Assert.Contains(followed.Files, f => f.RelativePath == "dist/robots.txt");
        // A link the user names outright is the user's choice.
        Assert.Single(UploadPlanner.Plan(new[] { robots }, recurse: false, "/var/www/").Files);
    }

    [Fact]
    public void AFifoInTheTreeIsLeftOutWithAWarningInsteadOfHangingTheUpload()
    {
        if (OperatingSystem.IsWindows()) return;
        File("tree/real.txt");
        string fifo = Path.Combine(_root, "tree", "pipe");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", fifo)) mkfifo.WaitForExit();
        var plan = UploadPlanner.Plan(new[] { Path.Combine(_root, "tree") }, recurse: true, "/tmp/");
        Assert.Equal(new[] { "tree/real.txt" }, plan.Files.Select(f => f.RelativePath));
        Assert.Contains(plan.Warnings, w => w.Contains(fifo) && w.Contains("FIFO"));
    }

    [Fact]
    public void SeveralFilesMakeTheDestinationADirectory()
    {
        var a = File("a.txt");
        var b = File("b.txt");
        var plan = UploadPlanner.Plan(new[] { a, b }, false, "/srv/drop");
        Assert.Equal(DestinationKind.Directory, plan.Kind);
        Assert.Equal(new[] { "/srv/drop" }, plan.RemoteDirectoriesFor("/srv/drop", false));
        Assert.Equal(2, plan.TotalBytes);
    }
}
