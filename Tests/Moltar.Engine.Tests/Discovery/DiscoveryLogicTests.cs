using Moltar.Engine.Aws;
using Moltar.Engine.Discovery;
using Xunit;

namespace Moltar.Engine.Tests.Discovery;

public class ShortIdTests
{
    [Fact]
    public void ShortIdsAreTheShortestUniquePrefixOfAtLeastThree()
    {
        var ids = ShortIds.Assign(new[] { "i-0abc1234", "i-0abd5678", "i-9f00000", "i-0abc1299" });
        Assert.Equal("0abc12", ids["i-0abc1234"][..6]);
        Assert.Equal("0abc123", ids["i-0abc1234"]);
        Assert.Equal("0abc129", ids["i-0abc1299"]);
        Assert.Equal("0abd", ids["i-0abd5678"]);
        Assert.Equal("9f0", ids["i-9f00000"]);
    }

    [Fact]
    public void ShortIdsOfRepeatedPrefixAndDuplicateIds()
    {
        // An id repeated in the input counts once; a hex part that is a prefix of another is typed in full;
        // an id without a dash is its own hex part; equal hex parts behind different prefixes share a short id.
        var ids = ShortIds.Assign(new[] { "i-abc", "i-abcdef", "i-abcdef", "abd9", "x-abcdef" });
        Assert.Equal(4, ids.Count);
        Assert.Equal("abc", ids["i-abc"]);
        Assert.Equal("abcd", ids["i-abcdef"]);
        Assert.Equal("abcd", ids["x-abcdef"]);
        Assert.Equal("abd", ids["abd9"]);
    }

    [Fact]
    public void EveryShortIdIsUniqueInALargeSet()
    {
        var random = new Random(7);
        var ids = Enumerable.Range(0, 5000).Select(_ => "i-" + string.Concat(Enumerable.Range(0, 17).Select(_ => "0123456789abcdef"[random.Next(16)]))).Distinct().ToList();
        var shortIds = ShortIds.Assign(ids);
        Assert.Equal(ids.Count, shortIds.Values.Distinct().Count());
        Assert.All(ids, id => Assert.StartsWith(shortIds[id], id[2..]));
        Assert.All(shortIds.Values, s => Assert.True(s.Length >= 3));
        // shortest: one character less would collide with some other id
        Assert.All(ids, id =>
        {
            string s = shortIds[id];
            if (s.Length > 3)
                Assert.Contains(ids, other => other != id && other[2..].StartsWith(s[..^1]));
        });
    }
}

public class NameMatcherTests
{
    private static readonly MoltarInstance Web = new()
    {
        InstanceId = "i-0534a9f3c2",
        Tags = new Dictionary<string, string> { ["Name"] = "shop-web-1", ["Environment"] = "staging" },
        PrivateIpAddress = "10.0.0.53",
        PublicDnsName = "ec2-3-4-5-6.compute.amazonaws.com",
    };

    [Theory]
    [InlineData("web", true)]
    [InlineData("WEB-1", true)]
    [InlineData("34a", true)]
    [InlineData("34a/53", true)]
    [InlineData("34a/web/staging", true)]
    [InlineData("compute.amazonaws", true)]
    [InlineData("34a/jobs", false)]
    [InlineData("production", false)]
    public void EveryTermMustMatchSomething(string name, bool expected) =>
        Assert.Equal(expected, NameMatcher.Matches(Web, NameMatcher.Terms(name)));

    [Fact]
    public void NoTermsMatchEverything() => Assert.True(NameMatcher.Matches(Web, NameMatcher.Terms(null)));
}

public class DiscoveryFilterTests
{
    private static MoltarContext Context(Dictionary<string, string>? tagNames = null) => new()
    {
        TagNames = tagNames ?? new Dictionary<string, string> { ["Project"] = "Project", ["Environment"] = "Environment", ["Cluster"] = "Cluster", ["Packages"] = "Packages" },
    };

    [Fact]
    public void SelectionBecomesServerSideFilters()
    {
        var filters = InstanceDiscovery.ServerFilters(new InstanceSelection
        {
            Project = "shop", Environment = "staging", Cluster = "web", Packages = new[] { "app-web", "app-worker" },
            Tags = new Dictionary<string, string[]> { ["Team"] = new[] { "a", "b" } },
        }, Context());
        Assert.Equal(new[] { "tag:Project", "tag:Environment", "tag:Cluster", "tag:Packages", "tag:Team", "instance-state-name" }, filters.Select(f => f.Name));
        Assert.Equal(new[] { "*|app-web|*" }, filters.Single(f => f.Name == "tag:Packages").Values);
        Assert.Equal(new[] { "running" }, filters.Single(f => f.Name == "instance-state-name").Values);
        Assert.All(filters, f => Assert.NotEmpty(f.Values));
    }

    [Fact]
    public void AllStatesSendsNoStateFilterAndRenamedTagsAreUsed()
    {
        var filters = InstanceDiscovery.ServerFilters(new InstanceSelection { Project = "shop", States = Array.Empty<string>() },
            Context(new Dictionary<string, string> { ["Project"] = "App" }));
        Assert.Equal(new[] { "tag:App" }, filters.Select(f => f.Name));
    }

    [Theory]
    [InlineData("|app-web|app-worker|", new[] { "app-web", "app-worker" })]
    [InlineData("app-web", new[] { "app-web" })]
    [InlineData("", new string[0])]
    [InlineData(null, new string[0])]
    public void PackagesTagIsParsed(string? tag, string[] expected) => Assert.Equal(expected, InstanceTags.ParsePackages(tag));

    [Fact]
    public void TagsAreReadByRoleUnderTheProjectsTagNames()
    {
        var tags = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["Name"] = "web-1", ["App"] = "shop", ["Stage"] = "prod", ["Cluster"] = "web", ["Deb"] = "|app-web|app-worker|",
        };
        var read = new InstanceTags(tags, Context(new Dictionary<string, string> { ["Environment"] = "Stage", ["Packages"] = "Deb" }));

        Assert.Equal("web-1", read.Name);
        Assert.Equal("shop", read.Role("Project")); // App stands in for Project
        Assert.Equal("prod", read.Role("Environment"));
        Assert.Equal("web", read.Role("Cluster"));
        Assert.Equal(new[] { "app-web", "app-worker" }, read.Packages);

        // No Packages tag is not an empty one; a renamed Project tag has no App fallback.
        var bare = new InstanceTags(new Dictionary<string, string> { ["App"] = "shop" }, Context(new Dictionary<string, string> { ["Project"] = "Team" }));
        Assert.Null(bare.Packages);
        Assert.Null(bare.Role("Project"));
        Assert.Empty(new InstanceTags(new Dictionary<string, string> { ["Packages"] = "" }, Context()).Packages!);
    }

    [Theory]
    [InlineData(AddressType.Auto, "1.2.3.4", "10.0.0.1", "1.2.3.4")]
    [InlineData(AddressType.Auto, null, "10.0.0.1", "10.0.0.1")]
    [InlineData(AddressType.Private, "1.2.3.4", "10.0.0.1", "10.0.0.1")]
    [InlineData(AddressType.Public, null, "10.0.0.1", null)]
    public void AddressFollowsTheAddressType(AddressType type, string? publicIp, string? privateIp, string? expected) =>
        Assert.Equal(expected, InstanceDiscovery.ChooseAddress(type, publicIp, privateIp));

    [Fact]
    public void AProjectNamePicksItsProfileCandidates() =>
        Assert.Equal(new[] { "Acme Shop", "acme-shop", "acme_shop" }, AwsSession.ProfileCandidates("Acme Shop"));
}
