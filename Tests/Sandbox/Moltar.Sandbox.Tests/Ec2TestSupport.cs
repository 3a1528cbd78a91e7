using System.Net.Http.Headers;
using System.Xml.Linq;
using Amazon.EC2;
using Amazon.EC2.Model;
using Amazon.Runtime;
using Moltar.Sandbox.Ec2;
using Xunit;

namespace Moltar.Sandbox.Tests;

/// <summary>
/// An in-process sandbox server (real Kestrel on 127.0.0.1, any free port) serving a given fleet.
/// One per test class (xunit class fixture); tests of a class run one after another, so a test
/// may set faults and read the request log as long as it clears them first.
/// </summary>
public abstract class Ec2SandboxFixture : IAsyncLifetime
{
    public const string AccessKeyId = "AKIASANDBOXTEST00001";
    public const string SecretKey = "sandbox-secret-key";

    public SandboxServer Server { get; private set; } = null!;
    public Ec2Endpoint Ec2 => Server.Ec2;
    public string Endpoint => Server.EndpointUrl;

    protected abstract IEnumerable<Ec2Instance> CreateInstances();

    public async Task InitializeAsync() =>
        Server = await SandboxServer.StartAsync(new Ec2Endpoint(new Ec2Fleet(CreateInstances())));

    public async Task DisposeAsync() => await Server.DisposeAsync();

    /// <summary>A real AWSSDK.EC2 client aimed at the sandbox (a new one per call: the retry quota is per client).</summary>
    public AmazonEC2Client CreateClient(string accessKeyId = AccessKeyId) =>
        new(new BasicAWSCredentials(accessKeyId, SecretKey), new AmazonEC2Config
        {
            ServiceURL = Endpoint,
            AuthenticationRegion = "us-east-1",
            Timeout = HangGuard.Limit,
        });

    /// <summary>Clears faults and the request log.</summary>
    public void Reset()
    {
        Ec2.Faults.Clear();
        Ec2.Requests.Clear();
    }

    /// <summary>Posts a form to the EC2 endpoint with plain HttpClient; <paramref name="authorization"/> null sends none.</summary>
    public async Task<(int Status, XDocument Body)> PostRawAsync(IEnumerable<KeyValuePair<string, string>> form, string? authorization = ValidAuthorization, string? amzDate = "20260101T000000Z")
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, Endpoint + "/") { Content = new FormUrlEncodedContent(form) };
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }
        if (amzDate is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Amz-Date", amzDate);
        }
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, XDocument.Parse(text));
    }

    public const string ValidAuthorization =
        "AWS4-HMAC-SHA256 Credential=AKIARAWHTTPCLIENT001/20260101/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    public static IEnumerable<KeyValuePair<string, string>> Form(params (string Key, string Value)[] pairs) =>
        pairs.Select(p => new KeyValuePair<string, string>(p.Key, p.Value));

    public static (string Code, string Message) ErrorOf(XDocument body)
    {
        var error = body.Root!.Element("Errors")!.Element("Error")!;
        Assert.Equal("Response", body.Root.Name.LocalName);
        Assert.NotNull(body.Root.Element("RequestID"));
        return (error.Element("Code")!.Value, error.Element("Message")!.Value);
    }
}

public static class Ec2TestExtensions
{
    /// <summary>All instances of a response, reservations flattened (none when Reservations is null).</summary>
    public static List<Instance> Instances(this DescribeInstancesResponse response) =>
        (response.Reservations ?? []).SelectMany(r => r.Instances ?? []).ToList();

    public static string? Tag(this Instance instance, string key) => instance.Tags?.FirstOrDefault(t => t.Key == key)?.Value;

    public static Filter Filter(string name, params string[] values) => new() { Name = name, Values = values.ToList() };

    /// <summary>Names (Name tag) of the instances matching the filters, sorted.</summary>
    public static async Task<string[]> NamesAsync(this AmazonEC2Client client, params Filter[] filters)
    {
        var response = await client.DescribeInstancesAsync(new DescribeInstancesRequest { Filters = filters.Length == 0 ? null : filters.ToList() });
        return response.Instances().Select(i => i.Tag("Name") ?? i.InstanceId).Order(StringComparer.Ordinal).ToArray();
    }
}

/// <summary>Builds sandbox instances for tests.</summary>
public static class TestInstances
{
    public static Ec2Instance Make(
        string name, string? project = "demo", string? environment = "production", string? cluster = "web",
        string state = "running", string? privateIp = null, string? publicIp = null, string type = "t3.micro",
        string zone = "us-east-1a", string? reservation = null, bool untagged = false, params Ec2Tag[] extraTags)
    {
        var tags = new List<Ec2Tag>();
        if (!untagged)
        {
            if (project is not null) tags.Add(new("Project", project));
            if (environment is not null) tags.Add(new("Environment", environment));
            if (cluster is not null) tags.Add(new("Cluster", cluster));
            tags.Add(new("Name", name));
            tags.AddRange(extraTags);
        }
        return new Ec2Instance
        {
            InstanceId = Ec2Defaults.InstanceIdFor(name),
            ReservationId = reservation ?? Ec2Defaults.ReservationIdFor(name),
            State = state,
            InstanceType = type,
            AvailabilityZone = zone,
            PrivateIpAddress = privateIp,
            PublicIpAddress = publicIp,
            PrivateDnsName = Ec2Defaults.PrivateDnsNameFor(privateIp),
            PublicDnsName = publicIp is null ? "" : "ec2-" + publicIp.Replace('.', '-') + ".compute-1.amazonaws.com",
            Tags = tags,
        };
    }
}
