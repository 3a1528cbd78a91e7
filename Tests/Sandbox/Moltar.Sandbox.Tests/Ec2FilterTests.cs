using Amazon.EC2;
using Amazon.EC2.Model;
using Moltar.Sandbox.Ec2;
using Xunit;
using static Moltar.Sandbox.Tests.Ec2TestExtensions;

namespace Moltar.Sandbox.Tests;

public sealed class Ec2FilterFixture : Ec2SandboxFixture
{
    public const string SharedReservation = "r-0aaaaaaaaaaaaaaa1";

    protected override IEnumerable<Ec2Instance> CreateInstances() =>
    [
        TestInstances.Make("web-1", privateIp: "10.0.0.1", publicIp: "54.0.0.1", reservation: SharedReservation),
        TestInstances.Make("web-2", privateIp: "10.0.0.2", publicIp: "54.0.0.2", type: "t3.small", zone: "us-east-1b", reservation: SharedReservation),
        TestInstances.Make("jobs-1", cluster: "jobs", state: "stopped", privateIp: "10.0.1.1", type: "t3.large"),
        TestInstances.Make("staging-web-1", environment: "staging", privateIp: "10.1.0.1", publicIp: "54.1.0.1", zone: "us-east-1c"),
        TestInstances.Make("staging-jobs-1", environment: "Staging", cluster: "jobs", privateIp: "10.1.1.1"),
        TestInstances.Make("untagged", privateIp: "10.9.9.9", untagged: true),
        TestInstances.Make("shop-search-1", project: null, cluster: "search", privateIp: "10.2.0.1", extraTags: new Ec2Tag("App", "shop")),
        TestInstances.Make("web-old", state: "terminated"),
        TestInstances.Make("literal*star?", environment: "qa", privateIp: "10.3.0.1"),
        TestInstances.Make("web-10", state: "pending", privateIp: "10.0.0.10"),
    ];
}

/// <summary>DescribeInstances filters, instance ids and response shape, through the real AWSSDK.EC2 client.</summary>
public sealed class Ec2FilterTests(Ec2FilterFixture fixture) : IClassFixture<Ec2FilterFixture>
{
    private static string IdOf(string name) => Ec2Defaults.InstanceIdFor(name);

    [Fact]
    public async Task NoFilters_ReturnsEveryInstance()
    {
        using var client = fixture.CreateClient();
        var names = await client.NamesAsync();
        Assert.Equal(10, names.Length);
        Assert.Contains(IdOf("untagged"), names);
    }

    [Fact]
    public async Task TagFilter_MatchesTagValue()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["staging-web-1"], await client.NamesAsync(Filter("tag:Environment", "staging")));
        Assert.Equal(["shop-search-1"], await client.NamesAsync(Filter("tag:App", "shop")));
    }

    [Fact]
    public async Task TagFilter_IsCaseSensitive_InKeyAndValue()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["staging-jobs-1"], await client.NamesAsync(Filter("tag:Environment", "Staging")));
        Assert.Empty(await client.NamesAsync(Filter("tag:environment", "staging")));
        Assert.Empty(await client.NamesAsync(Filter("tag:Environment", "PRODUCTION")));
    }

    [Fact]
    public async Task NoMatch_GivesNullReservations()
    {
        using var client = fixture.CreateClient();
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest { Filters = [Filter("tag:Environment", "nowhere")] });
        Assert.Null(response.Reservations);
        Assert.Null(response.NextToken);
    }

    [Fact]
    public async Task TagKeyFilter_MatchesAnyTagKey()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["shop-search-1"], await client.NamesAsync(Filter("tag-key", "App")));
        Assert.Equal(9, (await client.NamesAsync(Filter("tag-key", "Name"))).Length);
        Assert.Empty(await client.NamesAsync(Filter("tag-key", "app")));
    }

    [Fact]
    public async Task TagValueFilter_MatchesAnyTagValue()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["shop-search-1"], await client.NamesAsync(Filter("tag-value", "shop")));
        Assert.Equal(["jobs-1", "staging-jobs-1"], await client.NamesAsync(Filter("tag-value", "jobs")));
    }

    [Fact]
    public async Task InstanceStateNameFilter_SelectsByState()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["jobs-1"], await client.NamesAsync(Filter("instance-state-name", "stopped")));
        Assert.Equal(["web-10", "web-old"], await client.NamesAsync(Filter("instance-state-name", "pending", "terminated")));
        var running = await client.NamesAsync(Filter("instance-state-name", "running"));
        Assert.Equal(7, running.Length);
        Assert.DoesNotContain("jobs-1", running);
    }

    [Fact]
    public async Task InstanceStateCodeFilter_SelectsByCode()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["jobs-1"], await client.NamesAsync(Filter("instance-state-code", "80")));
    }

    [Fact]
    public async Task InstanceIdFilter_SelectsById()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["web-2"], await client.NamesAsync(Filter("instance-id", IdOf("web-2"))));
    }

    [Fact]
    public async Task AddressAndDnsFilters_SelectByAddress()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["staging-web-1"], await client.NamesAsync(Filter("ip-address", "54.1.0.1")));
        Assert.Equal(["jobs-1"], await client.NamesAsync(Filter("private-ip-address", "10.0.1.1")));
        Assert.Equal(["jobs-1"], await client.NamesAsync(Filter("private-dns-name", "ip-10-0-1-1.ec2.internal")));
        Assert.Equal(["web-2"], await client.NamesAsync(Filter("dns-name", "ec2-54-0-0-2.compute-1.amazonaws.com")));
        // An instance without a public address never matches ip-address, not even with '*'.
        Assert.DoesNotContain("jobs-1", await client.NamesAsync(Filter("ip-address", "*")));
    }

    [Fact]
    public async Task InstanceTypeAndZoneFilters()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["web-2"], await client.NamesAsync(Filter("instance-type", "t3.small")));
        Assert.Equal(["jobs-1"], await client.NamesAsync(Filter("instance-type", "t3.large")));
        Assert.Equal(["staging-web-1"], await client.NamesAsync(Filter("availability-zone", "us-east-1c")));
    }

    [Fact]
    public async Task Wildcards_QuestionMarkIsOneCharacter_StarIsAny()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["web-1", "web-2"], await client.NamesAsync(Filter("tag:Name", "web-?")));
        Assert.Equal(["web-1", "web-10", "web-2", "web-old"], await client.NamesAsync(Filter("tag:Name", "web-*")));
        Assert.Equal(["web-1", "web-10", "web-2"], await client.NamesAsync(Filter("private-ip-address", "10.0.0.*")));
        Assert.Equal(["jobs-1", "shop-search-1", "staging-jobs-1", "staging-web-1", "web-1"], await client.NamesAsync(Filter("tag:Name", "*-1")));
        Assert.Equal(["jobs-1", "staging-jobs-1"], await client.NamesAsync(Filter("tag:Name", "*jobs*")));
        // '*' alone: every instance that has the tag at all.
        Assert.Equal(9, (await client.NamesAsync(Filter("tag:Name", "*"))).Length);
    }

    [Fact]
    public async Task Wildcards_CanBeEscapedWithBackslash()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["literal*star?"], await client.NamesAsync(Filter("tag:Name", @"literal\*star\?")));
        Assert.Equal(["literal*star?"], await client.NamesAsync(Filter("tag:Name", @"literal\*sta??")));
        Assert.Empty(await client.NamesAsync(Filter("tag:Name", @"literal\*")));
    }

    [Fact]
    public async Task ValuesOfOneFilter_AreOred()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(["jobs-1", "shop-search-1", "staging-jobs-1"], await client.NamesAsync(Filter("tag:Cluster", "jobs", "search")));
    }

    [Fact]
    public async Task Filters_AreAnded()
    {
        using var client = fixture.CreateClient();
        Assert.Equal(
            ["web-1", "web-2"],
            await client.NamesAsync(Filter("tag:Environment", "production"), Filter("tag:Cluster", "web"), Filter("instance-state-name", "running")));
        Assert.Empty(await client.NamesAsync(Filter("tag:Environment", "staging"), Filter("tag:Cluster", "search")));
    }

    [Fact]
    public async Task InstanceIds_SelectExactlyThose_AndCombineWithFilters()
    {
        using var client = fixture.CreateClient();
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest { InstanceIds = [IdOf("web-1"), IdOf("jobs-1")] });
        Assert.Equal(new[] { IdOf("jobs-1"), IdOf("web-1") }.Order(StringComparer.Ordinal), response.Instances().Select(i => i.InstanceId).Order(StringComparer.Ordinal));

        response = await client.DescribeInstancesAsync(new DescribeInstancesRequest
        {
            InstanceIds = [IdOf("web-1"), IdOf("jobs-1")],
            Filters = [Filter("instance-state-name", "running")],
        });
        Assert.Equal([IdOf("web-1")], response.Instances().Select(i => i.InstanceId));
    }

    [Fact]
    public async Task UnknownInstanceId_IsInvalidInstanceIDNotFound()
    {
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { InstanceIds = [IdOf("web-1"), "i-0123456789abcdef0"] }));
        Assert.Equal("InvalidInstanceID.NotFound", ex.ErrorCode);
        Assert.Contains("i-0123456789abcdef0", ex.Message);
        Assert.DoesNotContain(IdOf("web-1"), ex.Message);
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, ex.StatusCode);
    }

    [Fact]
    public async Task MalformedInstanceId_IsInvalidInstanceIDMalformed()
    {
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { InstanceIds = ["web-1"] }));
        Assert.Equal("InvalidInstanceID.Malformed", ex.ErrorCode);
    }

    [Fact]
    public async Task UntaggedInstance_HasNullTags()
    {
        using var client = fixture.CreateClient();
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest { InstanceIds = [IdOf("untagged")] });
        var instance = Assert.Single(response.Instances());
        Assert.Null(instance.Tags);
        Assert.Equal("10.9.9.9", instance.PrivateIpAddress);
    }

    [Fact]
    public async Task InstancesOfOneReservation_AreGroupedInOneReservation()
    {
        using var client = fixture.CreateClient();
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest());
        Assert.Equal(9, response.Reservations.Count);
        var shared = Assert.Single(response.Reservations, r => r.ReservationId == Ec2FilterFixture.SharedReservation);
        Assert.Equal(["web-1", "web-2"], shared.Instances.Select(i => i.Tag("Name")));
        Assert.Equal(Ec2Defaults.OwnerId, shared.OwnerId);
        Assert.Equal([0, 1], shared.Instances.Select(i => i.AmiLaunchIndex ?? -1));
        Assert.All(response.Reservations, r => Assert.StartsWith("r-", r.ReservationId));
    }

    [Fact]
    public async Task InstanceFields_AreWhatTheFleetSays()
    {
        using var client = fixture.CreateClient();
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest { InstanceIds = [IdOf("web-2"), IdOf("jobs-1")] });
        var web = response.Instances().Single(i => i.Tag("Name") == "web-2");
        Assert.Equal(IdOf("web-2"), web.InstanceId);
        Assert.Equal(Ec2Defaults.ImageId, web.ImageId);
        Assert.Equal(InstanceStateName.Running, web.State.Name);
        Assert.Equal(16, web.State.Code);
        Assert.Equal("10.0.0.2", web.PrivateIpAddress);
        Assert.Equal("54.0.0.2", web.PublicIpAddress);
        Assert.Equal("ip-10-0-0-2.ec2.internal", web.PrivateDnsName);
        Assert.Equal("ec2-54-0-0-2.compute-1.amazonaws.com", web.PublicDnsName);
        Assert.Equal(InstanceType.T3Small, web.InstanceType);
        Assert.Equal("us-east-1b", web.Placement.AvailabilityZone);
        Assert.Equal(Ec2Defaults.LaunchTime.UtcDateTime, web.LaunchTime!.Value.ToUniversalTime());
        Assert.Equal(["Project", "Environment", "Cluster", "Name"], web.Tags.Select(t => t.Key));

        var jobs = response.Instances().Single(i => i.Tag("Name") == "jobs-1");
        Assert.Equal(InstanceStateName.Stopped, jobs.State.Name);
        Assert.Equal(80, jobs.State.Code);
        Assert.Null(jobs.PublicIpAddress);
        Assert.Equal("", jobs.PublicDnsName ?? "");
    }

    [Fact]
    public async Task EmptyFilterValue_IsAValue_MatchingEmptyTags()
    {
        using var client = fixture.CreateClient();
        Assert.Empty(await client.NamesAsync(Filter("tag:Name", "")));
    }

    [Fact]
    public async Task DescribeRegions_ListsRegions_WithNamesAndFilters()
    {
        using var client = fixture.CreateClient();
        var all = await client.DescribeRegionsAsync(new DescribeRegionsRequest());
        var east = Assert.Single(all.Regions, r => r.RegionName == "us-east-1");
        Assert.Equal("ec2.us-east-1.amazonaws.com", east.Endpoint);
        Assert.Equal("opt-in-not-required", east.OptInStatus);
        Assert.DoesNotContain(all.Regions, r => r.OptInStatus == "not-opted-in");

        var withOptIn = await client.DescribeRegionsAsync(new DescribeRegionsRequest { AllRegions = true });
        Assert.Contains(withOptIn.Regions, r => r.OptInStatus == "not-opted-in");

        var named = await client.DescribeRegionsAsync(new DescribeRegionsRequest { RegionNames = ["eu-west-1", "us-west-2"] });
        Assert.Equal(["eu-west-1", "us-west-2"], named.Regions.Select(r => r.RegionName).Order());

        var filtered = await client.DescribeRegionsAsync(new DescribeRegionsRequest { Filters = [Filter("region-name", "us-*")] });
        Assert.Equal(["us-east-1", "us-east-2", "us-west-1", "us-west-2"], filtered.Regions.Select(r => r.RegionName).Order());

        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() => client.DescribeRegionsAsync(new DescribeRegionsRequest { RegionNames = ["mars-1"] }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
    }

    [Fact]
    public async Task DescribeTags_ListsInstanceTags_WithFilters()
    {
        using var client = fixture.CreateClient();
        var forWeb = await client.DescribeTagsAsync(new DescribeTagsRequest { Filters = [Filter("resource-id", IdOf("web-1"))] });
        Assert.Equal(["Project", "Environment", "Cluster", "Name"], forWeb.Tags.Select(t => t.Key));
        Assert.All(forWeb.Tags, t => Assert.Equal(ResourceType.Instance, t.ResourceType));
        Assert.All(forWeb.Tags, t => Assert.Equal(IdOf("web-1"), t.ResourceId));

        var apps = await client.DescribeTagsAsync(new DescribeTagsRequest { Filters = [Filter("key", "App")] });
        var app = Assert.Single(apps.Tags);
        Assert.Equal("shop", app.Value);
        Assert.Equal(IdOf("shop-search-1"), app.ResourceId);

        var stagingValues = await client.DescribeTagsAsync(new DescribeTagsRequest { Filters = [Filter("key", "Environment"), Filter("value", "?taging")] });
        Assert.Equal(["Staging", "staging"], stagingValues.Tags.Select(t => t.Value).Order(StringComparer.Ordinal));

        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() => client.DescribeTagsAsync(new DescribeTagsRequest { Filters = [Filter("tag-key", "App")] }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
    }

    [Fact]
    public async Task DescribeTags_PagesWithMaxResults()
    {
        using var client = fixture.CreateClient();
        var all = new List<TagDescription>();
        await foreach (var tag in client.Paginators.DescribeTags(new DescribeTagsRequest { MaxResults = 5 }).Tags)
        {
            all.Add(tag);
        }
        var total = (await client.DescribeTagsAsync(new DescribeTagsRequest())).Tags.Count;
        Assert.Equal(total, all.Count);
        Assert.True(total > 5);
    }
}
