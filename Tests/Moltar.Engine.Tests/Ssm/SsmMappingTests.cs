using Amazon.SimpleSystemsManagement;
using Amazon.SimpleSystemsManagement.Model;
using Moltar.Engine.Discovery;
using Moltar.Engine.Ssm;
using Xunit;

namespace Moltar.Engine.Tests.Ssm;

public sealed class SsmMappingTests
{
    private static readonly MoltarContext Renamed = new()
    {
        Project = "shop",
        TagNames = new Dictionary<string, string> { ["Project"] = "App", ["Environment"] = "Stage", ["Cluster"] = "Cluster", ["Name"] = "Name" },
    };

    [Fact]
    public void SelectionBecomesTagTargetsWithTheAccountsTagNames()
    {
        var targets = SsmTargets.From(new InstanceSelection
        {
            Project = "shop", Environment = "production", Cluster = "web",
            Tags = new Dictionary<string, string[]> { ["Role"] = new[] { "api", "worker" } },
        }, Renamed);
        Assert.Equal(new[] { "tag:App=shop", "tag:Stage=production", "tag:Cluster=web", "tag:Role=api,worker" }, targets.Select(t => t.ToString()));
    }

    [Theory]
    [InlineData("name")]
    [InlineData("package")]
    [InlineData("wildcard")]
    [InlineData("nothing")]
    [InlineData("stopped")]
    public void WhatTagTargetsCannotExpressIsRefused(string what)
    {
        var selection = what switch
        {
            "name" => new InstanceSelection { Project = "shop", Name = "web" },
            "package" => new InstanceSelection { Project = "shop", Packages = new[] { "app" } },
            "wildcard" => new InstanceSelection { Project = "shop", Environment = "prod*" },
            "stopped" => new InstanceSelection { Project = "shop", States = new[] { "stopped" } },
            _ => new InstanceSelection(),
        };
        var error = Assert.Throws<MoltarException>(() => SsmTargets.From(selection, Renamed));
        Assert.Equal(SsmErrorIds.SelectionNotSupported, error.ErrorId);
        Assert.StartsWith("-Transport Ssm: ", error.Message);
    }

    [Fact]
    public void InstanceIdsGoInChunksOfFifty()
    {
        var ids = Enumerable.Range(0, 101).Select(i => $"i-{i:x17}").ToList();
        Assert.Equal(new[] { 50, 50, 1 }, SsmTargets.Chunks(ids).Select(c => c.Count));
        var plan = SsmCommandRun.DescribePlan(new SsmCommandRequest { Command = "uptime", InstanceIds = ids, MaxConcurrency = 7, TimeoutSeconds = 30 });
        Assert.Equal(3, plan.Count);
        Assert.All(plan, p => Assert.Contains("MaxConcurrency=7 MaxErrors=100% executionTimeout=30", p));
        var stop = SsmCommandRun.DescribePlan(new SsmCommandRequest { Command = "uptime", Targets = new[] { new SsmTarget("tag:App", new[] { "shop" }) }, StopOnFirstError = true });
        Assert.Equal("SendCommand AWS-RunShellScript Targets=tag:App=shop MaxConcurrency=32 MaxErrors=0 executionTimeout=3600", Assert.Single(stop));
    }

    [Theory]
    [InlineData("Success", "Success", 0, null, 0)]
    [InlineData("Failed", "Failed", 7, "CommandFailed", 7)]
    [InlineData("TimedOut", "ExecutionTimedOut", -1, "Timeout", null)]
    [InlineData("TimedOut", "DeliveryTimedOut", -1, "SsmDeliveryTimedOut", null)]
    [InlineData("Failed", "Undeliverable", -1, "SsmUndeliverable", null)]
    [InlineData("Failed", "Terminated", -1, "SsmTerminated", null)]
    [InlineData("Failed", "AccessDenied", -1, "SsmAccessDenied", null)]
    [InlineData("Cancelled", "Cancelled", -1, "Cancelled", null)]
    [InlineData("Failed", "InvalidPlatform", -1, "SsmFailed", null)]
    public void InvocationStatusesMapToStableErrorIds(string status, string details, int responseCode, string? errorId, int? exitCode)
    {
        var outcome = SsmCommandPoller.ToOutcome(new GetCommandInvocationResponse
        {
            InstanceId = "i-0123456789abcdef0",
            Status = new CommandInvocationStatus(status),
            StatusDetails = details,
            ResponseCode = responseCode,
            StandardOutputContent = "out\n",
            StandardErrorContent = $"err\nfailed to run commands: exit status {responseCode}",
            ExecutionStartDateTime = "2026-12-04T10:00:00.000Z",
            ExecutionEndDateTime = "2026-12-04T10:00:02.500Z",
        }, 3600);
        Assert.Equal(errorId, outcome.ErrorId);
        Assert.Equal(exitCode, outcome.ExitCode);
        Assert.Equal("out\n", outcome.Output);
        Assert.EndsWith("err", outcome.Error);
        Assert.DoesNotContain("failed to run commands", outcome.Error);
        Assert.Equal(TimeSpan.FromSeconds(2.5), outcome.Duration);
        Assert.False(outcome.Truncated);
    }

    [Fact]
    public void OutputAtTheServiceLimitIsMarkedTruncated()
    {
        var outcome = SsmCommandPoller.ToOutcome(new GetCommandInvocationResponse
        {
            InstanceId = "i-0123456789abcdef0",
            Status = CommandInvocationStatus.Success,
            StatusDetails = "Success",
            ResponseCode = 0,
            StandardOutputContent = new string('x', SsmCommandPoller.ServiceOutputLimit),
        }, 3600);
        Assert.True(outcome.Truncated);
        Assert.True(outcome.Succeeded);
    }

    [Fact]
    public void AnOutputBucketIsSentWithEveryRequestAndShownByWhatIf()
    {
        var request = new SsmCommandRequest
        {
            Command = "uptime", InstanceIds = Enumerable.Range(0, 51).Select(i => $"i-{i:x17}").ToList(),
            OutputS3BucketName = "ops-output", OutputS3KeyPrefix = "moltar/nightly",
        };
        var sends = SsmCommandPoller.Plan(request);
        Assert.Equal(2, sends.Count);
        Assert.All(sends, send =>
        {
            Assert.Equal("ops-output", send.OutputS3BucketName);
            Assert.Equal("moltar/nightly", send.OutputS3KeyPrefix);
        });
        Assert.All(SsmCommandRun.DescribePlan(request), text => Assert.EndsWith(" OutputS3=s3://ops-output/moltar/nightly", text));
        // Without a bucket nothing about S3 is sent (the SDK would send empty strings the service rejects).
        var plain = Assert.Single(SsmCommandPoller.Plan(request with { InstanceIds = new[] { "i-0123456789abcdef0" }, OutputS3BucketName = null }));
        Assert.Null(plain.OutputS3BucketName);
        Assert.Null(plain.OutputS3KeyPrefix);
    }

    [Theory]
    [InlineData(null, "CMD/i-0123456789abcdef0/awsrunShellScript/0.awsrunShellScript/stdout")]
    [InlineData("moltar", "moltar/CMD/i-0123456789abcdef0/awsrunShellScript/0.awsrunShellScript/stdout")]
    [InlineData("moltar/nightly/", "moltar/nightly/CMD/i-0123456789abcdef0/awsrunShellScript/0.awsrunShellScript/stdout")]
    public void TheFullOutputIsReadWhereTheAgentWritesIt(string? prefix, string key) =>
        Assert.Equal(key, SsmOutputBucket.KeyOf(prefix, "CMD", "i-0123456789abcdef0", "stdout"));

    [Fact]
    public void StreamsReadFromTheBucketReplaceTheServicesAndClearTruncated()
    {
        var detail = new GetCommandInvocationResponse
        {
            InstanceId = "i-0123456789abcdef0",
            Status = CommandInvocationStatus.Failed,
            StatusDetails = "Failed",
            ResponseCode = 3,
            StandardOutputContent = new string('x', SsmCommandPoller.ServiceOutputLimit),
            StandardErrorContent = "oops\nfailed to run commands: exit status 3",
        };
        var whole = SsmCommandPoller.ToOutcome(detail, 3600, new SsmStreams(new string('x', 30_000), "oops\nfailed to run commands: exit status 3", StdoutTruncated: false, StderrTruncated: false));
        Assert.False(whole.Truncated);
        Assert.Equal(30_000, whole.Output.Length);
        Assert.Equal("oops", whole.Error);
        Assert.Equal(3, whole.ExitCode);
        Assert.Null(whole.OutputProblem);
        var unread = SsmCommandPoller.ToOutcome(detail, 3600, SsmStreams.Of(detail) with { Problem = "SsmOutputUnreadable: i-0123456789abcdef0: no object" });
        Assert.True(unread.Truncated);
        Assert.StartsWith(SsmErrorIds.OutputUnreadable + ":", unread.OutputProblem);
    }
}
