using System.Net;
using Amazon.EC2;
using Amazon.EC2.Model;
using Moltar.Sandbox.Ec2;
using Xunit;

namespace Moltar.Sandbox.Tests;

public sealed class Ec2FaultFixture : Ec2SandboxFixture
{
    protected override IEnumerable<Ec2Instance> CreateInstances() =>
    [
        TestInstances.Make("web-1", privateIp: "10.0.0.1"),
        TestInstances.Make("web-2", privateIp: "10.0.0.2"),
    ];
}

/// <summary>Fault injection and how the real SDK (standard retry mode, 3 attempts) reacts to it.</summary>
public sealed class Ec2FaultTests(Ec2FaultFixture fixture) : IClassFixture<Ec2FaultFixture>
{
    [Fact]
    public async Task Throttling_IsRetriedByTheSdk_UntilItPasses()
    {
        fixture.Reset();
        fixture.Ec2.Faults.Set(new Ec2FaultSettings { ThrottleFirst = 2 });
        using var client = fixture.CreateClient();

        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest());

        Assert.Equal(2, response.Instances().Count);
        var requests = fixture.Ec2.Requests.Snapshot();
        Assert.Equal([503, 503, 200], requests.Select(r => r.Status));
        Assert.Equal(["RequestLimitExceeded", "RequestLimitExceeded", null], requests.Select(r => r.ErrorCode));
    }

    [Fact]
    public async Task PersistentThrottling_FailsAfterThreeAttempts_WithRequestLimitExceeded()
    {
        fixture.Reset();
        fixture.Ec2.Faults.Set(new Ec2FaultSettings { ThrottleFirst = 10 });
        using var client = fixture.CreateClient();

        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() => client.DescribeInstancesAsync(new DescribeInstancesRequest()));

        Assert.Equal("RequestLimitExceeded", ex.ErrorCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ex.StatusCode);
        Assert.Equal(3, fixture.Ec2.Requests.Snapshot().Count);
    }

    [Fact]
    public async Task ServerErrors_AreRetriedByTheSdk_UntilItPasses()
    {
        fixture.Reset();
        fixture.Ec2.Faults.Set(new Ec2FaultSettings { ErrorFirst = 2 });
        using var client = fixture.CreateClient();

        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest());

        Assert.Equal(2, response.Instances().Count);
        Assert.Equal([500, 500, 200], fixture.Ec2.Requests.Snapshot().Select(r => r.Status));
    }

    [Fact]
    public async Task ErrorRateOne_FailsAfterThreeAttempts_WithInternalError()
    {
        fixture.Reset();
        fixture.Ec2.Faults.Set(new Ec2FaultSettings { ErrorRate = 1.0, Seed = 1 });
        using var client = fixture.CreateClient();

        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() => client.DescribeInstancesAsync(new DescribeInstancesRequest()));

        Assert.Equal("InternalError", ex.ErrorCode);
        Assert.Equal(HttpStatusCode.InternalServerError, ex.StatusCode);
        Assert.Equal(3, fixture.Ec2.Requests.Snapshot().Count);
    }

    [Fact]
    public async Task ErrorRate_WithASeed_FailsTheSameRequestsEveryTime()
    {
        static IEnumerable<bool> Run(int seed)
        {
            var faults = new Ec2Faults();
            faults.Set(new Ec2FaultSettings { ErrorRate = 0.3, Seed = seed });
            return Enumerable.Range(0, 200).Select(_ => faults.Next() is not null).ToArray();
        }
        var first = Run(42);
        Assert.Equal(first, Run(42));
        var failures = first.Count(f => f);
        Assert.InRange(failures, 30, 90);
        Assert.NotEqual(first, Run(43));
        await Task.CompletedTask;
    }

    [Fact]
    public async Task AuthFailure_IsNotRetried()
    {
        fixture.Reset();
        fixture.Ec2.Faults.Set(new Ec2FaultSettings { AuthFailure = true });
        using var client = fixture.CreateClient();

        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() => client.DescribeInstancesAsync(new DescribeInstancesRequest()));

        Assert.Equal("AuthFailure", ex.ErrorCode);
        Assert.Equal(HttpStatusCode.Unauthorized, ex.StatusCode);
        var logged = Assert.Single(fixture.Ec2.Requests.Snapshot());
        Assert.Equal(401, logged.Status);
        Assert.Equal(Ec2SandboxFixture.AccessKeyId, logged.AccessKeyId);
    }

    [Fact]
    public async Task ClearingFaults_RestoresService()
    {
        fixture.Reset();
        fixture.Ec2.Faults.Set(new Ec2FaultSettings { AuthFailure = true, ThrottleFirst = 5 });
        fixture.Ec2.Faults.Clear();
        using var client = fixture.CreateClient();
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest());
        Assert.Equal(2, response.Instances().Count);
        Assert.Single(fixture.Ec2.Requests.Snapshot());
    }

    [Fact]
    public async Task Delay_SlowsEveryAnswer()
    {
        fixture.Reset();
        fixture.Ec2.Faults.Set(new Ec2FaultSettings { DelayMs = 300 });
        try
        {
            using var client = fixture.CreateClient();
            var watch = System.Diagnostics.Stopwatch.StartNew();
            await client.DescribeInstancesAsync(new DescribeInstancesRequest());
            Assert.True(watch.ElapsedMilliseconds >= 290, $"answered after {watch.ElapsedMilliseconds} ms");
        }
        finally
        {
            fixture.Ec2.Faults.Clear();
        }
    }
}
