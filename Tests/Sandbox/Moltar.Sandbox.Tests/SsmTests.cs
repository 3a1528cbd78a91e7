using Amazon.Runtime;
using Amazon.SimpleSystemsManagement;
using Amazon.SimpleSystemsManagement.Model;
using Moltar.Sandbox.Ec2;
using Moltar.Sandbox.Hosts;
using Moltar.Sandbox.Ssm;
using Xunit;
using Xunit.Abstractions;
using static Moltar.Sandbox.Tests.FleetTestSupport;

namespace Moltar.Sandbox.Tests;

/// <summary>
/// The SSM stand-in with two own-root sshd hosts behind two instances, 60 synthetic instances (the agent runs
/// them locally) and one unmanaged instance; the real AWSSDK.SimpleSystemsManagement client talks to it.
/// </summary>
public sealed class SsmFixture : IAsyncLifetime
{
    public string? SkipReason { get; private set; }
    public SshFleet Fleet { get; private set; } = null!;
    public SandboxServer Server { get; private set; } = null!;
    public SsmEndpoint Ssm => Server.Ssm;
    public IReadOnlyList<Ec2Instance> HostInstances { get; private set; } = [];
    public IReadOnlyList<Ec2Instance> Synthetic { get; private set; } = [];
    public Ec2Instance Unmanaged { get; private set; } = null!;
    private string? stateDirectory;

    public async Task InitializeAsync()
    {
        SkipReason = FleetTestSupport.SkipReason(ownRoot: true);
        if (SkipReason is not null) return;
        stateDirectory = NewTempDir("ssmfleet");
        var addresses = SshFleet.FreeAddresses(2, 22, first: "127.0.20.1");
        var requests = addresses.Select((a, i) => new HostRequest($"ssm-test-{i + 1}", a)).ToArray();
        Fleet = await SshFleet.StartAsync(new FleetOptions(stateDirectory, OwnRoot: true), requests);
        HostInstances = Fleet.Hosts.Select(h => InstanceGenerator.ForHost(new GeneratedName("ssmtest", "production", "web", h.Name), h.Address)).ToArray();
        var other = new InstanceGenerator("ssmtest", ["staging"], ["jobs"]);
        Synthetic = Enumerable.Range(0, 60).Select(i => InstanceGenerator.Synthetic(other.Next(), i)).ToArray();
        Unmanaged = InstanceGenerator.Synthetic(new GeneratedName("ssmtest", "production", "web", "ssmtest-production-web-unmanaged"), 60);
        Server = await SandboxServer.StartAsync(new Ec2Endpoint(new Ec2Fleet([.. HostInstances, .. Synthetic, Unmanaged])));
        var byId = HostInstances.Zip(Fleet.Hosts).ToDictionary(p => p.First.InstanceId, p => p.Second);
        Ssm.Commands.Hosts = id => byId.TryGetValue(id, out var host)
            ? new SsmHostTarget(host.Address, host.Port, Fleet.User, Fleet.ClientKeyPath, Fleet.KnownHostsPath, UseSudo: true)
            : null;
        Reset();
    }

    public void Reset(SsmSettings? settings = null)
    {
        settings ??= new SsmSettings();
        settings.Unmanaged = [.. settings.Unmanaged ?? [], Unmanaged.InstanceId];
        Ssm.Settings = settings;
        Ssm.ClearRequests();
    }

    public AmazonSimpleSystemsManagementClient CreateClient() =>
        new(new BasicAWSCredentials("AKIASANDBOXSSMTEST01", "sandbox-secret"), new AmazonSimpleSystemsManagementConfig
        {
            ServiceURL = Server.SsmEndpointUrl,
            AuthenticationRegion = "us-east-1",
            Timeout = HangGuard.Limit,
        });

    public async Task DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync();
        if (Fleet is not null) await Fleet.DisposeAsync();
        DeleteDir(stateDirectory);
    }
}

/// <summary>The SSM stand-in through the real SDK: commands really run on the hosts; limits and faults as the service has them.</summary>
public sealed class SsmTests(SsmFixture fixture, ITestOutputHelper output) : IClassFixture<SsmFixture>
{
    private static SendCommandRequest Shell(string script, int executionTimeout = 600) => new()
    {
        DocumentName = "AWS-RunShellScript",
        Parameters = new Dictionary<string, List<string>>
        {
            ["commands"] = [script],
            ["executionTimeout"] = [executionTimeout.ToString()],
        },
        MaxErrors = "100%",
    };

    private static async Task<List<CommandInvocation>> WaitForAllAsync(AmazonSimpleSystemsManagementClient client, string commandId, int expected)
    {
        var deadline = DateTime.UtcNow + HangGuard.Limit;
        while (true)
        {
            var all = new List<CommandInvocation>();
            string? token = null;
            do
            {
                var page = await client.ListCommandInvocationsAsync(new ListCommandInvocationsRequest { CommandId = commandId, NextToken = token });
                all.AddRange(page.CommandInvocations ?? []);
                token = page.NextToken;
            } while (token is not null);
            if (all.Count == expected && all.All(i => i.Status == CommandInvocationStatus.Success || i.Status == CommandInvocationStatus.Failed ||
                                                      i.Status == CommandInvocationStatus.TimedOut || i.Status == CommandInvocationStatus.Cancelled))
                return all;
            Assert.True(DateTime.UtcNow < deadline, "command did not finish: " + string.Join(", ", all.Select(i => i.Status?.Value)));
            await Task.Delay(100);
        }
    }

    private async Task<GetCommandInvocationResponse> RunOnAsync(string instanceId, string script, int executionTimeout = 600)
    {
        using var client = fixture.CreateClient();
        var request = Shell(script, executionTimeout);
        request.InstanceIds = [instanceId];
        var sent = await client.SendCommandAsync(request);
        await WaitForAllAsync(client, sent.Command.CommandId, 1);
        return await client.GetCommandInvocationAsync(new GetCommandInvocationRequest { CommandId = sent.Command.CommandId, InstanceId = instanceId });
    }

    [Fact]
    public async Task CommandsRunOnEachHostAsRootWithRealExitCodesAndStreams()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset();
        using var client = fixture.CreateClient();
        var request = Shell("echo \"$(hostname) $(id -u)\"; echo to-stderr >&2; case $(hostname) in *-1) exit 0;; *) exit 3;; esac");
        request.InstanceIds = fixture.HostInstances.Select(i => i.InstanceId).ToList();
        var sent = await client.SendCommandAsync(request);
        Assert.Equal(2, sent.Command.TargetCount);
        var invocations = await WaitForAllAsync(client, sent.Command.CommandId, 2);
        foreach (var (instance, host) in fixture.HostInstances.Zip(fixture.Fleet.Hosts))
        {
            var result = await client.GetCommandInvocationAsync(new GetCommandInvocationRequest { CommandId = sent.Command.CommandId, InstanceId = instance.InstanceId });
            Assert.Equal($"{host.Name} 0\n", result.StandardOutputContent);
            Assert.StartsWith("to-stderr\n", result.StandardErrorContent);
            var first = host.Name.EndsWith("-1", StringComparison.Ordinal);
            Assert.Equal(first ? CommandInvocationStatus.Success : CommandInvocationStatus.Failed, result.Status);
            Assert.Equal(first ? 0 : 3, result.ResponseCode);
            Assert.Equal(first ? "Success" : "Failed", result.StatusDetails);
        }
    }

    [Fact]
    public async Task TagTargetsResolveManagedInstancesOnlyAndUnmanagedIdsAreRefused()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset();
        using var client = fixture.CreateClient();
        var request = Shell("true");
        request.Targets = [new Target { Key = "tag:Environment", Values = ["production"] }, new Target { Key = "tag:Cluster", Values = ["web"] }];
        var sent = await client.SendCommandAsync(request);
        var invocations = await WaitForAllAsync(client, sent.Command.CommandId, 2);
        Assert.Equal(fixture.HostInstances.Select(i => i.InstanceId).Order(), invocations.Select(i => i.InstanceId).Order());

        var refused = Shell("true");
        refused.InstanceIds = [fixture.HostInstances[0].InstanceId, fixture.Unmanaged.InstanceId];
        var error = await Assert.ThrowsAsync<InvalidInstanceIdException>(() => client.SendCommandAsync(refused));
        Assert.Contains(fixture.Unmanaged.InstanceId, error.Message);

        var information = new List<InstanceInformation>();
        await foreach (var page in client.Paginators.DescribeInstanceInformation(new DescribeInstanceInformationRequest()).Responses)
            information.AddRange(page.InstanceInformationList ?? []);
        Assert.Equal(62, information.Count);
        Assert.DoesNotContain(information, i => i.InstanceId == fixture.Unmanaged.InstanceId);
        Assert.True(fixture.Ssm.Requests.Count(r => r.Action == "DescribeInstanceInformation") >= 7, "the listing pages (10 per page by default)");
    }

    [Fact]
    public async Task MoreThanFiftyInstanceIdsAreRefusedAndFiftyAreServed()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset();
        using var client = fixture.CreateClient();
        var tooMany = Shell("true");
        tooMany.InstanceIds = fixture.Synthetic.Take(51).Select(i => i.InstanceId).ToList();
        var error = await Assert.ThrowsAsync<AmazonSimpleSystemsManagementException>(() => client.SendCommandAsync(tooMany));
        Assert.Equal("ValidationException", error.ErrorCode);
        Assert.Contains("less than or equal to 50", error.Message);

        var fifty = Shell("echo ok");
        fifty.InstanceIds = fixture.Synthetic.Take(50).Select(i => i.InstanceId).ToList();
        var sent = await client.SendCommandAsync(fifty);
        var invocations = await WaitForAllAsync(client, sent.Command.CommandId, 50);
        Assert.All(invocations, i => Assert.Equal(CommandInvocationStatus.Success, i.Status));
        Assert.True(fixture.Ssm.Requests.Count(r => r.Action == "ListCommandInvocations") >= 1);
    }

    [Fact]
    public async Task OutputIsTruncatedAsTheServiceTruncatesIt()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset();
        var result = await RunOnAsync(fixture.HostInstances[0].InstanceId, "head -c 30000 /dev/zero | tr '\\0' x; head -c 25000 /dev/zero | tr '\\0' y >&2");
        Assert.Equal(new string('x', SsmEndpoint.OutputLimit), result.StandardOutputContent);
        Assert.Equal(new string('y', SsmEndpoint.OutputLimit), result.StandardErrorContent);

        using var client = fixture.CreateClient();
        var listed = await client.ListCommandInvocationsAsync(new ListCommandInvocationsRequest { CommandId = result.CommandId, Details = true });
        Assert.Equal(SsmEndpoint.ListingOutputLimit, listed.CommandInvocations.Single().CommandPlugins.Single().Output.Length);
    }

    [Fact]
    public async Task ThrottlingIsRetriedBySdkAndSurfacesWhenItLasts()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset(new SsmSettings { ThrottleFirst = 2, ThrottleActions = ["DescribeInstanceInformation"] });
        using var client = fixture.CreateClient();
        var answer = await client.DescribeInstanceInformationAsync(new DescribeInstanceInformationRequest());
        Assert.Equal(10, answer.InstanceInformationList.Count);
        Assert.Equal(2, fixture.Ssm.Requests.Count(r => r.ErrorCode == "ThrottlingException"));

        fixture.Reset(new SsmSettings { ThrottleFirst = 100 });
        var error = await Assert.ThrowsAsync<AmazonSimpleSystemsManagementException>(() => client.DescribeInstanceInformationAsync(new DescribeInstanceInformationRequest()));
        Assert.Equal("ThrottlingException", error.ErrorCode);
    }

    [Fact]
    public async Task ANewCommandStaysOutOfSightForVisibleAfterMs()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset(new SsmSettings { VisibleAfterMs = 60_000 });
        using var client = fixture.CreateClient();
        var instance = fixture.Synthetic[0].InstanceId;
        var request = Shell("echo hidden");
        request.InstanceIds = [instance];
        var sent = await client.SendCommandAsync(request);
        var listed = await client.ListCommandInvocationsAsync(new ListCommandInvocationsRequest { CommandId = sent.Command.CommandId });
        Assert.Empty(listed.CommandInvocations ?? []);
        await Assert.ThrowsAsync<InvocationDoesNotExistException>(() =>
            client.GetCommandInvocationAsync(new GetCommandInvocationRequest { CommandId = sent.Command.CommandId, InstanceId = instance }));

        fixture.Reset(new SsmSettings { VisibleAfterMs = 0 });
        await WaitForAllAsync(client, sent.Command.CommandId, 1);
        var result = await client.GetCommandInvocationAsync(new GetCommandInvocationRequest { CommandId = sent.Command.CommandId, InstanceId = instance });
        Assert.Equal("hidden\n", result.StandardOutputContent);
    }

    [Fact]
    public async Task AnInstanceThatNeverReportsIsUndeliverableAndShownConnectionLost()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        var silent = fixture.Synthetic[0].InstanceId;
        fixture.Reset(new SsmSettings { Undeliverable = [silent], UndeliverableAfterMs = 200 });
        using var client = fixture.CreateClient();
        var info = await client.DescribeInstanceInformationAsync(new DescribeInstanceInformationRequest
        {
            Filters = [new InstanceInformationStringFilter { Key = "InstanceIds", Values = [silent] }],
        });
        Assert.Equal(PingStatus.ConnectionLost, info.InstanceInformationList.Single().PingStatus);
        var result = await RunOnAsync(silent, "echo never");
        Assert.Equal(CommandInvocationStatus.Failed, result.Status);
        Assert.Equal("Undeliverable", result.StatusDetails);
        Assert.Equal("", result.StandardOutputContent);
    }

    [Fact]
    public async Task ExecutionTimeoutKillsTheScriptOnTheHost()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset();
        var instance = fixture.HostInstances[1].InstanceId;
        var result = await RunOnAsync(instance, "echo before; sleep 97; echo after", executionTimeout: 1);
        Assert.Equal(CommandInvocationStatus.TimedOut, result.Status);
        Assert.Equal("ExecutionTimedOut", result.StatusDetails);
        Assert.Equal("before\n", result.StandardOutputContent);
        var check = await RunOnAsync(instance, "ps -eo args | grep -c '^sleep 97' || true");
        Assert.Equal("0\n", check.StandardOutputContent);
    }

    [Fact]
    public async Task CancelCommandStopsARunningInvocationOnTheHost()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset();
        var instance = fixture.HostInstances[0].InstanceId;
        using var client = fixture.CreateClient();
        var request = Shell("echo started; sleep 98; echo after");
        request.InstanceIds = [instance];
        var sent = await client.SendCommandAsync(request);
        var deadline = DateTime.UtcNow + HangGuard.Limit;
        while ((await client.ListCommandInvocationsAsync(new ListCommandInvocationsRequest { CommandId = sent.Command.CommandId })).CommandInvocations.Single().Status != CommandInvocationStatus.InProgress)
        {
            Assert.True(DateTime.UtcNow < deadline);
            await Task.Delay(50);
        }
        await Task.Delay(1000); // let the script reach its sleep
        await client.CancelCommandAsync(new CancelCommandRequest { CommandId = sent.Command.CommandId });
        var done = (await WaitForAllAsync(client, sent.Command.CommandId, 1)).Single();
        Assert.Equal(CommandInvocationStatus.Cancelled, done.Status);
        var check = await RunOnAsync(instance, "ps -eo args | grep -c '^sleep 98' || true");
        Assert.Equal("0\n", check.StandardOutputContent);
    }

    [Fact]
    public async Task PastMaxErrorsTheRestAreTerminated()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset();
        using var client = fixture.CreateClient();
        var request = Shell("exit 1");
        request.InstanceIds = fixture.Synthetic.Take(4).Select(i => i.InstanceId).ToList();
        request.MaxConcurrency = "1";
        request.MaxErrors = "1";
        var sent = await client.SendCommandAsync(request);
        var invocations = await WaitForAllAsync(client, sent.Command.CommandId, 4);
        Assert.Equal(["Failed", "Failed", "Terminated", "Terminated"], invocations.Select(i => i.StatusDetails));
    }

    [Fact]
    public async Task RequestsNeedSigV4ScopedToSsm()
    {
        if (Skipped(fixture.SkipReason, output)) return;
        fixture.Reset();
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, fixture.Server.SsmEndpointUrl) { Content = new StringContent("{}") };
        request.Headers.TryAddWithoutValidation("X-Amz-Target", "AmazonSSM.DescribeInstanceInformation");
        using var response = await http.SendAsync(request);
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("MissingAuthenticationTokenException", await response.Content.ReadAsStringAsync());
    }
}
