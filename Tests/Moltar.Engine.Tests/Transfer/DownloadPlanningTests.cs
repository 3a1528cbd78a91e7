using Moltar.Engine.Ssh;
using Moltar.Engine.Transfer;
using Xunit;

namespace Moltar.Engine.Tests.Transfer;

public sealed class DownloadLayoutTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("moltar-layout-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void EachHostGetsItsOwnFolderByNameElseInstanceIdElseAddress()
    {
        var names = DownloadLayout.HostFolderNames(new[]
        {
            new SshTarget("10.0.0.1", "i-0001", "web-1"),
            new SshTarget("10.0.0.2", "i-0002"),
            new SshTarget("10.0.0.3"),
        });
        Assert.Equal(new[] { "web-1", "i-0002", "10.0.0.3" }, names);
    }

    [Fact]
    public void SharedNamesAreMadeDistinctSoHostsNeverOverwriteEachOther()
    {
        var names = DownloadLayout.HostFolderNames(new[]
        {
            new SshTarget("10.0.0.1", "i-0001", "web"),
            new SshTarget("10.0.0.2", "i-0002", "WEB"),
            new SshTarget("10.0.0.3", "i-0003", "jobs"),
            new SshTarget("10.0.0.3", "i-0003", "jobs"),
        });
        Assert.Equal(new[] { "web_i-0001", "WEB_i-0002", "jobs_i-0003", "jobs_i-0003_2" }, names);
        Assert.Equal(names.Count, names.Distinct(StringComparer.OrdinalIgnoreCase).Count());
    }

    [Theory]
    [InlineData("web/../../etc", "web_.._.._etc")]
    [InlineData("..", "_")]
    [InlineData(".", "_")]
    [InlineData("", "_")]
    [InlineData("a:b*c?d\"e<f>g|h\\i", "a_b_c_d_e_f_g_h_i")]
    [InlineData("tab\there", "tab_here")]
    [InlineData("web. ", "web")]
    [InlineData("ünï 日本", "ünï 日本")]
    [InlineData(".ssh", "_ssh")]
    [InlineData(".git", "_git")]
    [InlineData("...", "_")]
    [InlineData("CON", "_CON")]
    [InlineData("nul.txt", "_nul.txt")]
    [InlineData("com1", "_com1")]
    [InlineData("LPT\u00B9", "_LPT\u00B9")]
    [InlineData("COM10", "COM10")]
    [InlineData("console", "console")]
    [InlineData("web\u202Egnp.exe", "web_gnp.exe")]
    public void NameTagsBecomeOneSafeFolderName(string name, string expected)
    {
        Assert.Equal(expected, DownloadLayout.SafeFolderName(name));
    }

    [Theory]
    [InlineData("a.log", "a.log")]
    [InlineData("tree/sub dir/ünï 'x'.txt", "tree/sub dir/ünï 'x'.txt")]
    public void PlainRelativePathsLandInsideTheHostFolder(string relative, string expected)
    {
        var folder = Path.Combine(_root, "web-1");
        Assert.Equal(Path.Combine(folder, expected), DownloadLayout.LocalPathFor(folder, relative));
    }

    [Theory]
    [InlineData("../outside.txt")]
    [InlineData("a/../../outside.txt")]
    [InlineData("/etc/passwd")]
    [InlineData("a//b")]
    [InlineData("./a")]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("a/\0/b")]
    public void AnythingElseIsRefusedAsOutsideTheDestination(string relative)
    {
        var folder = Path.Combine(_root, "web-1");
        var failure = Assert.Throws<TransferFailure>(() => DownloadLayout.LocalPathFor(folder, relative));
        Assert.Equal(TransferErrorIds.PathOutsideDestination, failure.ErrorId);
        Assert.Equal(FailureCategory.SecurityError, failure.Category);
    }

    [Fact]
    public void AnExistingSymlinkAsTheHostFolderOrAFolderUnderItIsNeverWrittenThrough()
    {
        var elsewhere = Directory.CreateDirectory(Path.Combine(_root, "elsewhere")).FullName;
        var planted = Path.Combine(_root, "web-1");
        Directory.CreateSymbolicLink(planted, elsewhere);
        var failure = Assert.Throws<TransferFailure>(() => DownloadLayout.LocalPathFor(planted, "app.log"));
        Assert.Equal(TransferErrorIds.PathOutsideDestination, failure.ErrorId);
        Assert.Contains("is a symbolic link", failure.Message);

        var real = Directory.CreateDirectory(Path.Combine(_root, "web-2")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(real, "etc"), elsewhere);
        Assert.Throws<TransferFailure>(() => DownloadLayout.LocalPathFor(real, "etc/passwd"));
        Assert.Equal(Path.Combine(real, "var", "log"), DownloadLayout.LocalPathFor(real, "var/log"));
    }
}

/// <summary>Remote expansion against an in-memory tree: the logic only (the real SFTP side is covered by the Pester tests).</summary>
public class RemoteExpansionTests
{
    /// <summary>A small POSIX-like tree: files, directories, symlinks (absolute or relative targets), and raw listing names.</summary>
    private sealed class Tree : IRemoteFileSystem
    {
        private readonly Dictionary<string, (RemoteEntryKind Kind, string? Target, long Length)> _nodes = new() { ["/"] = (RemoteEntryKind.Directory, null, 0) };
        private readonly Dictionary<string, List<string>> _extraNames = new();

        public string Home => "/home/u";

        public Tree()
        {
            Dir("/home/u");
        }

        public Tree Dir(string path)
        {
            Add(path, RemoteEntryKind.Directory, null, 4096);
            return this;
        }

        public Tree File(string path, long length = 10)
        {
            Add(path, RemoteEntryKind.File, null, length);
            return this;
        }

        public Tree Link(string path, string target)
        {
            Add(path, RemoteEntryKind.Symlink, target, target.Length);
            return this;
        }

        public Tree Pipe(string path)
        {
            Add(path, RemoteEntryKind.Other, null, 0);
            return this;
        }

        /// <summary>A name a hostile server could put in a listing (it is not in the tree).</summary>
        public Tree ListingName(string directory, string name)
        {
            if (!_extraNames.TryGetValue(directory, out var names))
            {
                _extraNames[directory] = names = new List<string>();
            }

            names.Add(name);
            return this;
        }

        private void Add(string path, RemoteEntryKind kind, string? target, long length)
        {
            var parent = RemotePath.GetDirectory(path);
            if (!_nodes.ContainsKey(parent))
            {
                Dir(parent);
            }

            _nodes[path] = (kind, target, length);
        }

        private string? Canonical(string path, int depth = 0)
        {
            if (depth > 20)
            {
                return null;
            }

            var current = "/";
            foreach (var segment in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                if (segment == ".")
                {
                    continue;
                }

                if (segment == "..")
                {
                    current = RemotePath.GetDirectory(current) is { Length: > 0 } up ? up : "/";
                    continue;
                }

                var next = RemotePath.Join(current, segment);
                if (!_nodes.TryGetValue(next, out var node))
                {
                    return null;
                }

                if (node.Kind == RemoteEntryKind.Symlink)
                {
                    var target = RemotePath.IsAbsolute(node.Target!) ? node.Target! : RemotePath.Join(current, node.Target!);
                    var resolved = Canonical(target, depth + 1);
                    if (resolved is null)
                    {
                        return null;
                    }

                    next = resolved;
                }

                current = next;
            }

            return current;
        }

        public RemoteEntry? Stat(string path)
        {
            var canonical = Canonical(path);
            if (canonical is null)
            {
                return _nodes.TryGetValue(path, out var dangling) && dangling.Kind == RemoteEntryKind.Symlink
                    ? new RemoteEntry(RemotePath.GetFileName(path), path, RemoteEntryKind.Symlink, 0, 0x1FF)
                    : null;
            }

            var node = _nodes[canonical];
            return new RemoteEntry(RemotePath.GetFileName(path), canonical, node.Kind, node.Length, 0x1A4);
        }

        public IReadOnlyList<RemoteEntry> List(string directory)
        {
            var canonical = Canonical(directory) ?? throw new TransferFailure(TransferErrorIds.CopyFailed, $"'{directory}' does not exist.", directory);
            var prefix = canonical == "/" ? "/" : canonical + "/";
            var entries = new List<RemoteEntry>
            {
                new(".", prefix + ".", RemoteEntryKind.Directory, 4096, 0x1ED),
                new("..", prefix + "..", RemoteEntryKind.Directory, 4096, 0x1ED),
            };
            entries.AddRange(_nodes
                .Where(n => n.Key.StartsWith(prefix, StringComparison.Ordinal) && n.Key.Length > prefix.Length && !n.Key[prefix.Length..].Contains('/'))
                .Select(n => new RemoteEntry(n.Key[prefix.Length..], n.Key, n.Value.Kind, n.Value.Length, 0x1A4)));
            if (_extraNames.TryGetValue(canonical, out var extra))
            {
                entries.AddRange(extra.Select(name => new RemoteEntry(name, prefix + name, RemoteEntryKind.File, 1, 0x1A4)));
            }

            return entries;
        }
    }

    private static DownloadPlan Expand(Tree tree, bool recurse, params string[] paths) => RemoteExpansion.Expand(tree, paths, recurse);

    [Fact]
    public void ANamedFileKeepsItsNameRelativeToHome()
    {
        var tree = new Tree().File("/home/u/app.conf", 42);
        var plan = Expand(tree, false, "app.conf");
        var file = Assert.Single(plan.Files);
        Assert.Equal("/home/u/app.conf", file.RemotePath);
        Assert.Equal("app.conf", file.RelativePath);
        Assert.Equal(42, file.Length);
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void AWildcardMatchesFilesInTheLastSegment()
    {
        var tree = new Tree().File("/var/log/app/a.log").File("/var/log/app/b.log").File("/var/log/app/c.txt").File("/var/log/app/.h.log");
        var plan = Expand(tree, false, "/var/log/app/*.log");
        Assert.Equal(new[] { "a.log", "b.log" }, plan.Files.Select(f => f.RelativePath).OrderBy(x => x));
        Assert.Equal(new[] { "/var/log/app/a.log", "/var/log/app/b.log" }, plan.Files.Select(f => f.RemotePath).OrderBy(x => x));
    }

    [Fact]
    public void WildcardsInDirectorySegmentsKeepThePathBelowThePattern()
    {
        var tree = new Tree().File("/var/log/nginx/app.log").File("/var/log/php/app.log").File("/var/log/php/other.log");
        var plan = Expand(tree, false, "/var/log/*/app.log");
        Assert.Equal(new[] { "nginx/app.log", "php/app.log" }, plan.Files.Select(f => f.RelativePath).OrderBy(x => x));
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void ADirectoryNeedsRecurseAndThenCopiesItsTree()
    {
        var tree = new Tree().File("/srv/site/index.html").File("/srv/site/css/main.css").Dir("/srv/site/empty");
        var refused = Expand(tree, false, "/srv/site");
        Assert.Equal(TransferErrorIds.CopyFailed, Assert.Single(refused.Failures).ErrorId);
        Assert.Contains("-Recurse", refused.Failures[0].Message);

        var plan = Expand(tree, true, "/srv/site");
        Assert.Equal(new[] { "site/css/main.css", "site/index.html" }, plan.Files.Select(f => f.RelativePath).OrderBy(x => x, StringComparer.Ordinal));
        Assert.Equal(new[] { "site", "site/css", "site/empty" }, plan.Directories);
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void ASymlinkInsideTheTreeIsCopiedAsItsContent()
    {
        var tree = new Tree().File("/var/log/app/2026.log", 99).Link("/var/log/app/current.log", "2026.log");
        var plan = Expand(tree, false, "/var/log/app/*.log");
        Assert.Equal(new[] { "2026.log", "current.log" }, plan.Files.Select(f => f.RelativePath).OrderBy(x => x));
        Assert.All(plan.Files, f => Assert.Equal(99, f.Length));
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void ASymlinkLeadingOutsideIsRefusedAndTheRestStillCopies()
    {
        var tree = new Tree().File("/etc/shadow").File("/home/u/logs/ok.log").Link("/home/u/logs/evil.log", "/etc/shadow")
            .Link("/home/u/logs/sneaky.log", "../../../etc/shadow");
        var plan = Expand(tree, false, "logs/*.log");
        Assert.Equal("ok.log", Assert.Single(plan.Files).RelativePath);
        Assert.Equal(2, plan.Failures.Count);
        Assert.All(plan.Failures, f => Assert.Equal(TransferErrorIds.PathOutsideDestination, f.ErrorId));
        Assert.Contains(plan.Failures, f => f.Message.Contains("evil.log") && f.Message.Contains("/etc/shadow"));
    }

    [Fact]
    public void ASymlinkOutsideInsideARecursiveTreeIsRefused()
    {
        var tree = new Tree().File("/etc/passwd").File("/srv/site/a.txt").Link("/srv/site/sub/pw", "/etc/passwd");
        var plan = Expand(tree, true, "/srv/site");
        Assert.Equal("site/a.txt", Assert.Single(plan.Files).RelativePath);
        var failure = Assert.Single(plan.Failures);
        Assert.Equal(TransferErrorIds.PathOutsideDestination, failure.ErrorId);
        Assert.Equal("/srv/site/sub/pw", failure.Path);
    }

    [Fact]
    public void AnIntermediateSymlinkedDirectoryLeadingOutsideIsRefused()
    {
        var tree = new Tree().File("/etc/app.log").File("/home/u/logs/web/app.log").Link("/home/u/logs/etc", "/etc");
        var plan = Expand(tree, false, "logs/*/app.log");
        Assert.Equal("web/app.log", Assert.Single(plan.Files).RelativePath);
        Assert.Equal(TransferErrorIds.PathOutsideDestination, Assert.Single(plan.Failures).ErrorId);
    }

    [Fact]
    public void SymlinkedDirectoriesInsideATreeAreNotFollowed()
    {
        var tree = new Tree().File("/srv/site/a.txt").Link("/srv/site/again", "/srv/site");
        var plan = Expand(tree, true, "/srv/site");
        Assert.Equal("site/a.txt", Assert.Single(plan.Files).RelativePath);
        Assert.Contains(plan.Warnings, w => w.Contains("again") && w.Contains("not followed"));
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void ANamedSymlinkIsFollowedWhereverItLeads()
    {
        var tree = new Tree().File("/usr/bin/vim.basic", 7).Link("/etc/alternatives/editor", "/usr/bin/vim.basic");
        var plan = Expand(tree, false, "/etc/alternatives/editor");
        var file = Assert.Single(plan.Files);
        Assert.Equal("editor", file.RelativePath);
        Assert.Equal(7, file.Length);
    }

    [Theory]
    [InlineData("../../outside")]
    [InlineData("/etc/passwd")]
    [InlineData("a/b")]
    [InlineData("")]
    public void HostileNamesInAListingAreRefused(string name)
    {
        var tree = new Tree().File("/srv/drop/fine.txt").ListingName("/srv/drop", name);
        var plan = Expand(tree, true, "/srv/drop");
        Assert.Equal("drop/fine.txt", Assert.Single(plan.Files).RelativePath);
        var failure = Assert.Single(plan.Failures);
        Assert.Equal(TransferErrorIds.PathOutsideDestination, failure.ErrorId);
        Assert.All(plan.Files, f => Assert.DoesNotContain("..", f.RelativePath.Split('/')));
    }

    [Fact]
    public void DotAndDotDotInAListingAreNeverCopied()
    {
        var tree = new Tree().File("/srv/drop/fine.txt").ListingName("/srv/drop", "..").ListingName("/srv/drop", ".");
        var plan = Expand(tree, true, "/srv/drop");
        Assert.Equal("drop/fine.txt", Assert.Single(plan.Files).RelativePath);
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void HostileNamesAreRefusedForWildcardsToo()
    {
        var tree = new Tree().File("/srv/drop/fine.txt").ListingName("/srv/drop", "x/../../../etc/cron.d/evil");
        var plan = Expand(tree, false, "/srv/drop/*");
        Assert.Equal("fine.txt", Assert.Single(plan.Files).RelativePath);
        Assert.Equal(TransferErrorIds.PathOutsideDestination, Assert.Single(plan.Failures).ErrorId);
    }

    [Fact]
    public void PipesAndDanglingLinksAreLeftOutWithWarnings()
    {
        var tree = new Tree().File("/run/app/a.txt").Pipe("/run/app/fifo").Link("/run/app/gone", "/nowhere");
        var plan = Expand(tree, false, "/run/app/*");
        Assert.Equal("a.txt", Assert.Single(plan.Files).RelativePath);
        Assert.Equal(2, plan.Warnings.Count);
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void MissingPathsAndEmptyMatchesFailPerPath()
    {
        var tree = new Tree().File("/var/log/app/a.log");
        var plan = Expand(tree, false, "/var/log/app/missing.log", "/var/log/app/*.gz", "/nowhere/*.log", "/var/log/app/a.log");
        Assert.Equal("a.log", Assert.Single(plan.Files).RelativePath);
        Assert.Equal(3, plan.Failures.Count);
        Assert.All(plan.Failures, f => Assert.Equal(TransferErrorIds.CopyFailed, f.ErrorId));
    }

    [Fact]
    public void TwoRemoteFilesForOneLocalNameAreNotBothCopied()
    {
        var tree = new Tree().File("/a/app.log").File("/b/app.log");
        var plan = Expand(tree, false, "/a/app.log", "/b/app.log");
        Assert.Equal("/a/app.log", Assert.Single(plan.Files).RemotePath);
        Assert.Contains("/b/app.log", Assert.Single(plan.Failures).Message);
    }

    [Fact]
    public void ALiteralNameWithWildcardCharactersIsFoundAsIs()
    {
        var tree = new Tree().File("/srv/report[1].txt").File("/srv/report1.txt");
        var plan = Expand(tree, false, "/srv/report[1].txt");
        Assert.Equal("report[1].txt", Assert.Single(plan.Files).RelativePath);
    }
}
