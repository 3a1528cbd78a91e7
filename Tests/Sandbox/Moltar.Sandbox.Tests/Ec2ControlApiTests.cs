using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Amazon.EC2.Model;
using Moltar.Sandbox.Ec2;
using Xunit;

namespace Moltar.Sandbox.Tests;

public sealed class Ec2ControlFixture : Ec2SandboxFixture
{
    protected override IEnumerable<Ec2Instance> CreateInstances() =>
    [
        TestInstances.Make("web-1", privateIp: "10.0.0.1"),
    ];
}

/// <summary>The control API routes of CONTRACT.md that the EC2 side owns: requests, faults, fleet; shutdown.</summary>
public sealed class Ec2ControlApiTests(Ec2ControlFixture fixture) : IClassFixture<Ec2ControlFixture>
{
    private HttpClient Http() => new() { BaseAddress = new Uri(fixture.Endpoint) };

    [Fact]
    public async Task Requests_AreListedAsJson_AndCleared()
    {
        fixture.Reset();
        using var client = fixture.CreateClient();
        await client.DescribeInstancesAsync(new DescribeInstancesRequest { Filters = [Ec2TestExtensions.Filter("tag:Name", "web-1")] });

        using var http = Http();
        using var doc = JsonDocument.Parse(await http.GetStringAsync("/_sandbox/requests"));
        var entry = Assert.Single(doc.RootElement.EnumerateArray());
        Assert.Equal("DescribeInstances", entry.GetProperty("action").GetString());
        Assert.Equal(200, entry.GetProperty("status").GetInt32());
        Assert.Equal("tag:Name", entry.GetProperty("parameters").GetProperty("Filter.1.Name").GetString());
        Assert.Equal(Ec2SandboxFixture.AccessKeyId, entry.GetProperty("accessKeyId").GetString());
        Assert.True(entry.GetProperty("time").TryGetDateTimeOffset(out _));

        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/_sandbox/requests")).StatusCode);
        Assert.Equal("[]", await http.GetStringAsync("/_sandbox/requests"));
    }

    [Fact]
    public async Task Faults_ArePostedAsJson_AndTakeEffect_AndAreCleared()
    {
        fixture.Reset();
        using var http = Http();
        var posted = await http.PostAsync("/_sandbox/faults", new StringContent("""{"authFailure":true}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, posted.StatusCode);

        using (var client = fixture.CreateClient())
        {
            var ex = await Assert.ThrowsAsync<Amazon.EC2.AmazonEC2Exception>(() => client.DescribeInstancesAsync(new DescribeInstancesRequest()));
            Assert.Equal("AuthFailure", ex.ErrorCode);
        }

        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/_sandbox/faults")).StatusCode);
        using (var client = fixture.CreateClient())
        {
            await client.DescribeInstancesAsync(new DescribeInstancesRequest());
        }
    }

    [Theory]
    [InlineData("""{"errorRate":1.5}""")]
    [InlineData("""{"throttleFirst":-1}""")]
    [InlineData("""{"throttleFirst":"many"}""")]
    [InlineData("not json")]
    public async Task BadFaults_AreRejectedWith400(string json)
    {
        using var http = Http();
        var response = await http.PostAsync("/_sandbox/faults", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.False(string.IsNullOrEmpty(doc.RootElement.GetProperty("error").GetString()));
    }

    [Fact]
    public async Task Fleet_RoundTrips_AndReplacementIsServed()
    {
        fixture.Reset();
        using var http = Http();
        var original = await http.GetStringAsync("/_sandbox/fleet");
        try
        {
            using (var doc = JsonDocument.Parse(original))
            {
                var instance = Assert.Single(doc.RootElement.GetProperty("instances").EnumerateArray());
                Assert.Equal(Ec2Defaults.InstanceIdFor("web-1"), instance.GetProperty("instanceId").GetString());
                Assert.Equal("web-1", instance.GetProperty("tags").GetProperty("Name").GetString());
            }

            const string fleet = """
                {"instances":[
                  {"instanceId":"i-0123456789abcdef0","state":"stopped","privateIpAddress":"10.5.0.1","tags":{"Name":"api-1","Project":"shop"}},
                  {"instanceId":"i-0123456789abcdef1","reservationId":"r-0123456789abcdef0"},
                  {"instanceId":"i-0123456789abcdef2","reservationId":"r-0123456789abcdef0","launchTime":"2025-06-01T12:00:00Z","instanceType":"m5.large"}
                ]}
                """;
            var put = await http.PutAsync("/_sandbox/fleet", new StringContent(fleet, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

            using var client = fixture.CreateClient();
            var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest());
            Assert.Equal(2, response.Reservations.Count);
            var api = response.Instances().Single(i => i.InstanceId == "i-0123456789abcdef0");
            Assert.Equal("stopped", api.State.Name.Value);
            Assert.Equal("ip-10-5-0-1.ec2.internal", api.PrivateDnsName);
            Assert.Equal("shop", api.Tag("Project"));
            var bare = response.Instances().Single(i => i.InstanceId == "i-0123456789abcdef1");
            Assert.Null(bare.Tags);
            Assert.Equal("running", bare.State.Name.Value);
            Assert.Equal("t3.micro", bare.InstanceType.Value);
            Assert.Null(bare.PrivateIpAddress);
            var m5 = response.Instances().Single(i => i.InstanceId == "i-0123456789abcdef2");
            Assert.Equal(new DateTime(2025, 6, 1, 12, 0, 0, DateTimeKind.Utc), m5.LaunchTime!.Value.ToUniversalTime());
        }
        finally
        {
            await http.PutAsync("/_sandbox/fleet", new StringContent(original, Encoding.UTF8, "application/json"));
        }
    }

    [Theory]
    [InlineData("""{"instances":[{"instanceId":"web-1"}]}""")]
    [InlineData("""{"instances":[{"instanceId":"i-0123456789abcdef0","state":"sleeping"}]}""")]
    [InlineData("""{"instances":[{"instanceId":"i-0123456789abcdef0"},{"instanceId":"i-0123456789abcdef0"}]}""")]
    [InlineData("""{"hosts":[]}""")]
    [InlineData("[")]
    public async Task BadFleet_IsRejectedWith400_AndTheFleetIsKept(string json)
    {
        using var http = Http();
        var before = await http.GetStringAsync("/_sandbox/fleet");
        var response = await http.PutAsync("/_sandbox/fleet", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(before, await http.GetStringAsync("/_sandbox/fleet"));
    }

    [Fact]
    public async Task HostRoutes_Without_Hosts_Are404()
    {
        using var http = Http();
        Assert.Equal(HttpStatusCode.NotFound, (await http.PostAsync("/_sandbox/hosts/web-1/stop", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.PostAsync("/_sandbox/hosts/web-1/start", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/_sandbox/nothing")).StatusCode);
    }

    [Fact]
    public async Task ShutdownRoute_StopsTheServer()
    {
        await using var server = await SandboxServer.StartAsync(new Ec2Endpoint());
        using var http = new HttpClient { BaseAddress = new Uri(server.EndpointUrl) };
        var response = await http.PostAsync("/_sandbox/shutdown", null);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var stopped = server.WaitForShutdownAsync();
        Assert.Same(stopped, await Task.WhenAny(stopped, Task.Delay(HangGuard.Limit)));
        Assert.True(server.Stopping.IsCancellationRequested);
    }
}
