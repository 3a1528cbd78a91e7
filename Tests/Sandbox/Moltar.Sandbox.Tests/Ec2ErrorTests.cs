using Amazon.EC2;
using Amazon.EC2.Model;
using Moltar.Sandbox.Ec2;
using Xunit;
using static Moltar.Sandbox.Tests.Ec2TestExtensions;

namespace Moltar.Sandbox.Tests;

public sealed class Ec2ErrorFixture : Ec2SandboxFixture
{
    protected override IEnumerable<Ec2Instance> CreateInstances() =>
    [
        TestInstances.Make("web-1", privateIp: "10.0.0.1"),
        TestInstances.Make("web-2", privateIp: "10.0.0.2"),
    ];
}

/// <summary>What real EC2 rejects, the sandbox rejects the same way: error code, message, HTTP status, XML shape.</summary>
public sealed class Ec2ErrorTests(Ec2ErrorFixture fixture) : IClassFixture<Ec2ErrorFixture>
{
    [Fact]
    public async Task UnknownFilterName_IsInvalidParameterValue()
    {
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { Filters = [Filter("tag:Name", "web-1"), Filter("colour", "blue")] }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
        Assert.Equal("The filter 'colour' is invalid", ex.Message);
    }

    [Fact]
    public async Task FilterNames_AreCaseSensitive()
    {
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { Filters = [Filter("Instance-State-Name", "running")] }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
    }

    [Fact]
    public async Task EmptyValueList_SentByTheSdk_IsRejected()
    {
        fixture.Reset();
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { Filters = [new Filter { Name = "tag:Name", Values = [] }] }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
        // How the SDK sends an empty list: the list's name with an empty value.
        var sent = Assert.Single(fixture.Ec2.Requests.Snapshot()).Parameters;
        Assert.Equal("", sent["Filter.1.Value"]);
        Assert.False(sent.ContainsKey("Filter.1.Value.1"));
    }

    [Fact]
    public async Task EmptyFilterList_SentByTheSdk_IsTheNullFilter()
    {
        fixture.Reset();
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { Filters = [] }));
        Assert.Equal("InvalidParameterValue", ex.ErrorCode);
        Assert.Equal("The filter 'null' is invalid", ex.Message);
        Assert.Equal("", Assert.Single(fixture.Ec2.Requests.Snapshot()).Parameters["Filter"]);
    }

    [Fact]
    public async Task EmptyInstanceIdList_SentByTheSdk_IsMissingParameter()
    {
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() =>
            client.DescribeInstancesAsync(new DescribeInstancesRequest { InstanceIds = [] }));
        Assert.Equal("MissingParameter", ex.ErrorCode);
    }

    [Fact]
    public async Task FilterWithoutValues_IsRejected()
    {
        var (status, body) = await fixture.PostRawAsync(Ec2SandboxFixture.Form(
            ("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("Filter.1.Name", "tag:Name")));
        Assert.Equal(400, status);
        Assert.Equal("InvalidParameterValue", Ec2SandboxFixture.ErrorOf(body).Code);
    }

    [Fact]
    public async Task FilterWithoutName_IsTheNullFilter()
    {
        var (status, body) = await fixture.PostRawAsync(Ec2SandboxFixture.Form(
            ("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("Filter.1.Value.1", "web-1")));
        Assert.Equal(400, status);
        Assert.Equal(("InvalidParameterValue", "The filter 'null' is invalid"), Ec2SandboxFixture.ErrorOf(body));
    }

    [Fact]
    public async Task UnknownParameter_IsUnknownParameter()
    {
        var (status, body) = await fixture.PostRawAsync(Ec2SandboxFixture.Form(
            ("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("Colour", "blue")));
        Assert.Equal(400, status);
        Assert.Equal(("UnknownParameter", "The parameter Colour is not recognized"), Ec2SandboxFixture.ErrorOf(body));
    }

    [Fact]
    public async Task UnknownAction_IsInvalidAction()
    {
        var (status, body) = await fixture.PostRawAsync(Ec2SandboxFixture.Form(("Action", "TerminateInstances"), ("Version", "2016-11-15")));
        Assert.Equal(400, status);
        Assert.Equal("InvalidAction", Ec2SandboxFixture.ErrorOf(body).Code);
    }

    [Fact]
    public async Task MissingAction_IsMissingAction()
    {
        var (status, body) = await fixture.PostRawAsync(Ec2SandboxFixture.Form(("Version", "2016-11-15")));
        Assert.Equal(400, status);
        Assert.Equal("MissingAction", Ec2SandboxFixture.ErrorOf(body).Code);
    }

    [Fact]
    public async Task MissingVersion_IsMissingParameter()
    {
        var (status, body) = await fixture.PostRawAsync(Ec2SandboxFixture.Form(("Action", "DescribeInstances")));
        Assert.Equal(400, status);
        Assert.Equal(("MissingParameter", "The request must contain the parameter Version"), Ec2SandboxFixture.ErrorOf(body));
    }

    [Fact]
    public async Task OtherVersion_IsNoSuchVersion()
    {
        var (status, body) = await fixture.PostRawAsync(Ec2SandboxFixture.Form(("Action", "DescribeInstances"), ("Version", "2014-10-01")));
        Assert.Equal(400, status);
        Assert.Equal("NoSuchVersion", Ec2SandboxFixture.ErrorOf(body).Code);
    }

    [Fact]
    public async Task MissingAuthorization_Is401MissingAuthenticationToken_AndLogged()
    {
        fixture.Reset();
        var (status, body) = await fixture.PostRawAsync(
            Ec2SandboxFixture.Form(("Action", "DescribeInstances"), ("Version", "2016-11-15")), authorization: null);
        Assert.Equal(401, status);
        Assert.Equal("MissingAuthenticationToken", Ec2SandboxFixture.ErrorOf(body).Code);
        var logged = Assert.Single(fixture.Ec2.Requests.Snapshot());
        Assert.Equal(401, logged.Status);
        Assert.Equal("MissingAuthenticationToken", logged.ErrorCode);
        Assert.Null(logged.AccessKeyId);
    }

    [Theory]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, SignedHeaders=x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=xyz")]
    public async Task MalformedAuthorization_Is401AuthFailure(string authorization)
    {
        var (status, body) = await fixture.PostRawAsync(
            Ec2SandboxFixture.Form(("Action", "DescribeInstances"), ("Version", "2016-11-15")), authorization);
        Assert.Equal(401, status);
        Assert.Equal("AuthFailure", Ec2SandboxFixture.ErrorOf(body).Code);
    }

    [Fact]
    public async Task MissingAmzDate_Is401AuthFailure()
    {
        var (status, body) = await fixture.PostRawAsync(
            Ec2SandboxFixture.Form(("Action", "DescribeInstances"), ("Version", "2016-11-15")), amzDate: null);
        Assert.Equal(401, status);
        Assert.Equal("AuthFailure", Ec2SandboxFixture.ErrorOf(body).Code);
    }

    [Fact]
    public async Task WellFormedRawRequest_Succeeds_WithEc2Namespace()
    {
        var (status, body) = await fixture.PostRawAsync(Ec2SandboxFixture.Form(("Action", "DescribeInstances"), ("Version", "2016-11-15")));
        Assert.Equal(200, status);
        Assert.Equal("{http://ec2.amazonaws.com/doc/2016-11-15/}DescribeInstancesResponse", body.Root!.Name.ToString());
        Assert.NotEmpty(body.Root.Element(body.Root.Name.Namespace + "requestId")!.Value);
    }

    [Fact]
    public async Task QueryStringGet_IsServedLikeAFormPost()
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get,
            fixture.Endpoint + "/?Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName&Filter.1.Value.1=web-2");
        request.Headers.TryAddWithoutValidation("Authorization", Ec2SandboxFixture.ValidAuthorization);
        request.Headers.TryAddWithoutValidation("X-Amz-Date", "20260101T000000Z");
        using var response = await http.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var body = System.Xml.Linq.XDocument.Parse(await response.Content.ReadAsStringAsync());
        var ns = (System.Xml.Linq.XNamespace)Ec2Xml.Namespace;
        Assert.Equal([Ec2Defaults.InstanceIdFor("web-2")], body.Descendants(ns + "instanceId").Select(e => e.Value));
    }

    [Fact]
    public async Task DryRun_IsDryRunOperation()
    {
        using var client = fixture.CreateClient();
        var ex = await Assert.ThrowsAsync<AmazonEC2Exception>(() => client.DescribeInstancesAsync(new DescribeInstancesRequest { DryRun = true }));
        Assert.Equal("DryRunOperation", ex.ErrorCode);
    }

    [Fact]
    public async Task SdkRequests_AreFormPostsWithVersionAndSigV4_AndTheLogRecordsThem()
    {
        fixture.Reset();
        using var client = fixture.CreateClient("AKIAEXAMPLELOGGED001");
        await client.DescribeInstancesAsync(new DescribeInstancesRequest
        {
            Filters = [Filter("tag:Name", "web-1", "web-2"), Filter("instance-state-name", "running")],
        });
        var logged = Assert.Single(fixture.Ec2.Requests.Snapshot());
        Assert.Equal("DescribeInstances", logged.Action);
        Assert.Equal("POST", logged.Method);
        Assert.Equal(200, logged.Status);
        Assert.Equal("AKIAEXAMPLELOGGED001", logged.AccessKeyId);
        Assert.Equal("us-east-1", logged.Region);
        Assert.Equal("2016-11-15", logged.Parameters["Version"]);
        Assert.Equal("tag:Name", logged.Parameters["Filter.1.Name"]);
        Assert.Equal("web-1", logged.Parameters["Filter.1.Value.1"]);
        Assert.Equal("web-2", logged.Parameters["Filter.1.Value.2"]);
        Assert.Equal("instance-state-name", logged.Parameters["Filter.2.Name"]);
        Assert.Equal("running", logged.Parameters["Filter.2.Value.1"]);
        Assert.True(DateTimeOffset.UtcNow - logged.Time < TimeSpan.FromMinutes(1));
    }
}
