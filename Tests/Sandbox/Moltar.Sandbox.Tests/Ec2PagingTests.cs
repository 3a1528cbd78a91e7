using System.Diagnostics;
using Amazon.EC2;
using Amazon.EC2.Model;
using Moltar.Sandbox.Ec2;
using Xunit;
using Xunit.Abstractions;
using static Moltar.Sandbox.Tests.Ec2TestExtensions;

namespace Moltar.Sandbox.Tests;

public sealed class Ec2PagingFixture : Ec2SandboxFixture
{
    public const int Count = 2500;

    protected override IEnumerable<Ec2Instance> CreateInstances()
    {
        var generator = new InstanceGenerator("demo", ["production", "staging"], ["web", "jobs", "search"]);
        return Enumerable.Range(0, Count).Select(i => InstanceGenerator.Synthetic(generator.Next(), i));
    }
}

/// <summary>MaxResults/NextToken paging through the SDK's paginator, and what EC2 rejects about it.</summary>
public sealed class Ec2PagingTests(Ec2PagingFixture fixture) : IClassFixture<Ec2PagingFixture>
{
    [Fact]
    public async Task Paginator_ReadsEveryPage_OneRequestPerPage()
    {
        fixture.Reset();
        using var client = fixture.CreateClient();
        var ids = new List<string>();
        await foreach (var reservation in client.Paginators.DescribeInstances(new DescribeInstancesRequest { MaxResults = 1000 }).Reservations)
        {
            ids.AddRange(reservation.Instances.Select(i => i.InstanceId));
        }
        Assert.Equal(Ec2PagingFixture.Count, ids.Count);
        Assert.Equal(Ec2PagingFixture.Count, ids.Distinct().Count());

        var requests = fixture.Ec2.Requests.Snapshot();
        Assert.Equal(3, requests.Count);
        Assert.All(requests, r => Assert.Equal("1000", r.Parameters["MaxResults"]));
        Assert.All(requests, r => Assert.Equal(200, r.Status));
        Assert.False(requests[0].Parameters.ContainsKey("NextToken"));
        Assert.True(requests[1].Parameters.ContainsKey("NextToken"));
        Assert.True(requests[2].Parameters.ContainsKey("NextToken"));
    }

    [Fact]
    public async Task Pages_HoldMaxResultsInstances_AndTheLastHasNoToken()
    {
        using var client = fixture.CreateClient();
        var first = await client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = 1000 });
        Assert.Equal(1000, first.Instances().Count);
        Assert.NotNull(first.NextToken);
        var second = await client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = 1000, NextToken = first.NextToken });
        Assert.Equal(1000, second.Instances().Count);
        var third = await client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = 1000, NextToken = second.NextToken });
        Assert.Equal(500, third.Instances().Count);
        Assert.Null(third.NextToken);
        Assert.Empty(first.Instances().Select(i => i.InstanceId).Intersect(second.Instances().Select(i => i.InstanceId)));
    }

    [Fact]
    public async Task WithoutMaxResults_EverythingComesInOnePage()
    {
        fixture.Reset();
        using var client = fixture.CreateClient();
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest());
        Assert.Equal(Ec2PagingFixture.Count, response.Instances().Count);
        Assert.Null(response.NextToken);
        Assert.Single(fixture.Ec2.Requests.Snapshot());
    }

    [Fact]
    public async Task Paging_KeepsFilters_AndReservationsGroupedOnEachPage()
    {
        using var client = fixture.CreateClient();
        var pages = 0;
        var instances = new List<Instance>();
        await foreach (var page in client.Paginators.DescribeInstances(new DescribeInstancesRequest
        {
            MaxResults = 100,
            Filters = [Filter("tag:Environment", "staging"), Filter("tag:Cluster", "web")],
        }).Responses)
        {
            pages++;
            instances.AddRange(page.Instances());
            foreach (var reservation in page.Reservations ?? [])
            {
                Assert.True(reservation.Instances.Count is >= 1 and <= 4);
            }
            // A reservation id appears once per page.
            Assert.Equal(page.Reservations!.Count, page.Reservations.Select(r => r.ReservationId).Distinct().Count());
        }
        // staging-web is every 6th generated instance (environments x clusters).
        Assert.Equal(Ec2PagingFixture.Count / 6 + (Ec2PagingFixture.Count % 6 > 1 ? 1 : 0), instances.Count);
        Assert.All(instances, i => Assert.Equal("staging", i.Tag("Environment")));
        Assert.Equal((instances.Count + 99) / 100, pages);
    }

    [Fact]
    public async Task SyntheticReservations_GroupFourInstances()
    {
        using var client = fixture.CreateClient();
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = 8 });
        Assert.Equal(2, response.Reservations.Count);
        Assert.All(response.Reservations, r => Assert.Equal(4, r.Instances.Count));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(1001)]
    [InlineData(0)]
    public async Task MaxResults_OutsideFiveToAThousand_IsInvalidParameterValue(int maxResults)
    {
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = maxResults }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
        Assert.Contains("maxResults", ex.Message);
    }

    [Fact]
    public async Task MaxResults_WithInstanceIds_IsInvalidParameterCombination()
    {
        using var client = fixture.CreateClient();
        var id = fixture.Ec2.Fleet.Snapshot.InFleetOrder[0].InstanceId;
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = 5, InstanceIds = [id] }));
        Assert.Equal("InvalidParameterCombination", ex.ErrorCode);
    }

    [Fact]
    public async Task ForgedNextToken_IsInvalidParameterValue()
    {
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = 5, NextToken = "not-a-token" }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
        Assert.Contains("nextToken", ex.Message);
    }

    [Fact]
    public async Task NextToken_UsedWithOtherFilters_IsRejected()
    {
        using var client = fixture.CreateClient();
        var first = await client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = 5, Filters = [Filter("tag:Cluster", "web")] });
        Assert.NotNull(first.NextToken);
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() => client.DescribeInstancesAsync(new DescribeInstancesRequest
        {
            MaxResults = 5,
            NextToken = first.NextToken,
            Filters = [Filter("tag:Cluster", "jobs")],
        }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
    }
}

public sealed class Ec2ScaleFixture : Ec2SandboxFixture
{
    public const int Count = 10_000;

    protected override IEnumerable<Ec2Instance> CreateInstances()
    {
        var generator = new InstanceGenerator("demo", ["production", "staging"], ["web", "jobs", "search"]);
        return Enumerable.Range(0, Count).Select(i => InstanceGenerator.Synthetic(generator.Next(), i));
    }
}

/// <summary>10,000 instances in pages of 1000 through the SDK stays fast.</summary>
public sealed class Ec2ScaleTests(Ec2ScaleFixture fixture, ITestOutputHelper output) : IClassFixture<Ec2ScaleFixture>
{
    [Fact]
    public async Task TenThousandInstances_PageInTenRequests()
    {
        fixture.Reset();
        using var client = fixture.CreateClient();
        // Warm up (JIT on both sides).
        await client.DescribeInstancesAsync(new DescribeInstancesRequest { MaxResults = 5 });
        fixture.Ec2.Requests.Clear();

        var watch = Stopwatch.StartNew();
        var count = 0;
        await foreach (var instance in client.Paginators.DescribeInstances(new DescribeInstancesRequest { MaxResults = 1000 }).Reservations)
        {
            count += instance.Instances.Count;
        }
        watch.Stop();
        var requests = fixture.Ec2.Requests.Snapshot();
        output.WriteLine($"{count} instances, {requests.Count} requests, {watch.ElapsedMilliseconds} ms total; server {requests.Sum(r => r.DurationMs):F0} ms");
        Assert.Equal(Ec2ScaleFixture.Count, count);
        Assert.Equal(10, requests.Count);
        // How fast: the benchmark's discovery rows (`build.ps1 -Task Bench`), not a limit here.
    }
}
