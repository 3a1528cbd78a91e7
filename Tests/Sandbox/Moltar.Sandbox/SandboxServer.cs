using System.Net;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Moltar.Sandbox.Ec2;
using Moltar.Sandbox.Ssm;

namespace Moltar.Sandbox;

/// <summary>One sshd host as the ready JSON and the control API report it.</summary>
public sealed record SandboxHostInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("instanceId")] string InstanceId,
    [property: JsonPropertyName("address")] string Address,
    [property: JsonPropertyName("port")] int Port,
    [property: JsonPropertyName("pid")] int? Pid,
    [property: JsonPropertyName("hostPublicKey")] string HostPublicKey,
    [property: JsonPropertyName("hostKeyFingerprint")] string HostKeyFingerprint);

/// <summary>The sshd hosts behind the endpoint, as the server sees them (implemented over SshFleet in FleetWiring.cs).</summary>
public interface ISandboxHosts : IAsyncDisposable
{
    string User { get; }
    string? ClientKeyPath { get; }
    string? KnownHostsPath { get; }
    IReadOnlyList<SandboxHostInfo> Hosts { get; }
    /// <summary>One line on how the hosts' start went (time, per host, retries).</summary>
    string StartupSummary { get; }
    /// <summary>Seconds from the start of the fleet to the last host's banner.</summary>
    double StartupSeconds { get; }
    bool Contains(string name);
    Task StopHostAsync(string name, CancellationToken ct);
    Task<SandboxHostInfo> StartHostAsync(string name, CancellationToken ct);
}

/// <summary>The ready JSON (CONTRACT.md): printed as one line on stdout and written to STATE/sandbox.json.</summary>
public sealed record SandboxReady
{
    [JsonPropertyName("endpoint")] public required string Endpoint { get; init; }
    [JsonPropertyName("ssmEndpoint")] public string? SsmEndpoint { get; init; }
    [JsonPropertyName("s3Endpoint")] public string? S3Endpoint { get; init; }
    [JsonPropertyName("region")] public required string Region { get; init; }
    [JsonPropertyName("stateDir")] public required string StateDir { get; init; }
    [JsonPropertyName("user")] public required string User { get; init; }
    [JsonPropertyName("clientKeyPath")] public string? ClientKeyPath { get; init; }
    [JsonPropertyName("knownHostsPath")] public string? KnownHostsPath { get; init; }
    [JsonPropertyName("pid")] public int Pid { get; init; }
    [JsonPropertyName("instances")] public int Instances { get; init; }
    [JsonPropertyName("hosts")] public required IReadOnlyList<SandboxHostInfo> Hosts { get; init; }
    [JsonPropertyName("startupSeconds")] public double? StartupSeconds { get; init; }
    [JsonPropertyName("startup")] public string? Startup { get; init; }
}

/// <summary>
/// The sandbox's HTTP listener on 127.0.0.1: the EC2 endpoint at "/" and the control API under
/// /_sandbox. Used by Program and, in-process, by tests.
/// </summary>
public sealed class SandboxServer : IAsyncDisposable
{
    private readonly WebApplication app;

    private SandboxServer(WebApplication app, Ec2Endpoint ec2, SsmEndpoint ssm, Uri endpoint)
    {
        this.app = app;
        Ec2 = ec2;
        Ssm = ssm;
        Endpoint = endpoint;
    }

    public Ec2Endpoint Ec2 { get; }

    /// <summary>The Systems Manager stand-in over the same fleet, at <see cref="SsmEndpointUrl"/>.</summary>
    public SsmEndpoint Ssm { get; }

    /// <summary>What AWS_ENDPOINT_URL_SSM is set to for the SDK to reach the SSM stand-in.</summary>
    public string SsmEndpointUrl => EndpointUrl + SsmEndpoint.Path;

    /// <summary>What AWS_ENDPOINT_URL_S3 is set to for the SDK to read the SSM stand-in's output bucket (path-style).</summary>
    public string S3EndpointUrl => EndpointUrl + S3Endpoint.Path;

    /// <summary>http://127.0.0.1:PORT (no trailing slash in <see cref="EndpointUrl"/>).</summary>
    public Uri Endpoint { get; }

    public string EndpointUrl => Endpoint.GetLeftPart(UriPartial.Authority);

    /// <summary>Host control; set by Program once the sshd hosts run.</summary>
    public ISandboxHosts? Hosts { get; set; }

    /// <summary>Builds the ready JSON for the current state (hosts' pids change when they restart).</summary>
    public Func<SandboxReady>? Describe { get; set; }

    /// <summary>Stopping: POST /_sandbox/shutdown, or the host's lifetime (SIGTERM/SIGINT) stopping.</summary>
    public CancellationToken Stopping => app.Lifetime.ApplicationStopping;

    public void RequestShutdown() => app.Lifetime.StopApplication();

    /// <summary>Starts listening on 127.0.0.1:<paramref name="port"/> (0 = any free port). Logs only warnings and errors, to stderr.</summary>
    public static async Task<SandboxServer> StartAsync(Ec2Endpoint ec2, int port = 0, LogLevel logLevel = LogLevel.Warning, CancellationToken ct = default)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = AppContext.BaseDirectory,
            EnvironmentName = Environments.Production,
        });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(logLevel);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.None);
        builder.Logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel", LogLevel.Error);
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        builder.WebHost.UseSetting(WebHostDefaults.ServerUrlsKey, "");
        builder.WebHost.ConfigureKestrel(o =>
        {
            o.Listen(IPAddress.Loopback, port);
            o.AddServerHeader = false;
            o.Limits.MaxRequestBodySize = 16 * 1024 * 1024;
        });

        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Moltar.Sandbox");
        ec2.Logger = logger;
        ec2.Map(app);
        var ssm = new SsmEndpoint(ec2.Fleet, logger);
        ssm.Map(app);
        // The credential stand-ins (IMDSv2, container credentials, STS web identity) share the listener.
        new Credentials.CredentialStandIns().Map(app);

        SandboxServer? server = null;
        app.MapGet("/_sandbox", () => server?.Describe is { } describe
            ? Results.Json(describe(), Ec2Endpoint.Json)
            : Results.Json(new { endpoint = server?.EndpointUrl, region = ec2.Region }, Ec2Endpoint.Json));
        app.MapPost("/_sandbox/shutdown", () =>
        {
            app.Lifetime.StopApplication();
            return Results.Accepted();
        });
        app.MapPost("/_sandbox/hosts/{name}/stop", async (string name, HttpContext context) =>
        {
            if (server?.Hosts is not { } hosts || !hosts.Contains(name))
            {
                return Ec2Endpoint.ControlError($"No host named '{name}'.", 404);
            }
            await hosts.StopHostAsync(name, context.RequestAborted);
            return Results.Json(new { name, stopped = true }, Ec2Endpoint.Json);
        });
        app.MapPost("/_sandbox/hosts/{name}/start", async (string name, HttpContext context) =>
        {
            if (server?.Hosts is not { } hosts || !hosts.Contains(name))
            {
                return Ec2Endpoint.ControlError($"No host named '{name}'.", 404);
            }
            return Results.Json(await hosts.StartHostAsync(name, context.RequestAborted), Ec2Endpoint.Json);
        });
        app.MapFallback((HttpContext context) =>
            Ec2Endpoint.ControlError($"No route for {context.Request.Method} {context.Request.Path}.", 404));

        await app.StartAsync(ct);
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        var uri = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        server = new SandboxServer(app, ec2, ssm, uri);
        return server;
    }

    /// <summary>Completes when the server has been asked to stop (shutdown route, SIGTERM/SIGINT, <see cref="RequestShutdown"/>).</summary>
    public Task WaitForShutdownAsync() => app.WaitForShutdownAsync();

    public async ValueTask DisposeAsync()
    {
        try
        {
            await app.StopAsync();
        }
        finally
        {
            await app.DisposeAsync();
        }
    }
}
