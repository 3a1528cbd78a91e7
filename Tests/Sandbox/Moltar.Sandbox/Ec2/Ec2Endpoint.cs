using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Moltar.Sandbox.Ec2;

/// <summary>
/// The EC2 Query API endpoint: authentication shape, fault injection, Action/Version dispatch,
/// EC2-shaped XML answers and errors, and the request log. Also the EC2 part of the control API.
/// </summary>
public sealed class Ec2Endpoint
{
    public const string ApiVersion = "2016-11-15";

    private static readonly FormOptions FormLimits = new()
    {
        ValueCountLimit = 100_000,
        KeyLengthLimit = 1024,
        ValueLengthLimit = 1024 * 1024,
    };

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly Ec2Actions actions;

    public Ec2Endpoint(Ec2Fleet? fleet = null, string region = Ec2Defaults.Region, ILogger? logger = null)
    {
        Fleet = fleet ?? new Ec2Fleet();
        Region = region;
        Logger = logger ?? NullLogger.Instance;
        actions = new Ec2Actions(Fleet, new Ec2PageToken());
    }

    public Ec2Fleet Fleet { get; }
    public Ec2Faults Faults { get; } = new();
    public Ec2RequestLog Requests { get; } = new();
    public string Region { get; }

    /// <summary>Where unexpected failures are logged (the server sets its stderr logger).</summary>
    public ILogger Logger { get; set; }

    /// <summary>Maps the EC2 API at "/" (POST form or GET query) and the control routes for requests, faults and fleet.</summary>
    public void Map(IEndpointRouteBuilder routes)
    {
        routes.MapMethods("/", ["GET", "POST"], HandleAsync);

        routes.MapGet("/_sandbox/requests", () => Results.Json(Requests.Snapshot(), Json));
        routes.MapDelete("/_sandbox/requests", () =>
        {
            Requests.Clear();
            return Results.NoContent();
        });

        routes.MapGet("/_sandbox/faults", () => Results.Json(Faults.Current, Json));
        routes.MapPost("/_sandbox/faults", async (HttpRequest request) =>
        {
            Ec2FaultSettings? settings;
            try
            {
                settings = await JsonSerializer.DeserializeAsync<Ec2FaultSettings>(request.Body, Json, request.HttpContext.RequestAborted);
            }
            catch (JsonException ex)
            {
                return ControlError("Fault settings are not valid JSON: " + ex.Message);
            }
            settings ??= new Ec2FaultSettings();
            if (settings.Validate() is { } problem)
            {
                return ControlError(problem);
            }
            Faults.Set(settings);
            return Results.Json(Faults.Current, Json);
        });
        routes.MapDelete("/_sandbox/faults", () =>
        {
            Faults.Clear();
            return Results.NoContent();
        });

        routes.MapGet("/_sandbox/fleet", () => Results.Text(FleetJson.Serialize(Fleet.Snapshot.InFleetOrder), "application/json"));
        routes.MapPut("/_sandbox/fleet", async (HttpRequest request) =>
        {
            using var reader = new StreamReader(request.Body);
            var text = await reader.ReadToEndAsync(request.HttpContext.RequestAborted);
            try
            {
                var instances = FleetJson.Parse(text);
                Fleet.Replace(instances);
                return Results.Json(new { instances = instances.Count }, Json);
            }
            catch (FormatException ex)
            {
                return ControlError(ex.Message);
            }
        });
    }

    /// <summary>A control API error: HTTP 400 with {"error": "..."}.</summary>
    public static IResult ControlError(string message, int status = 400) =>
        Results.Json(new { error = message }, Json, statusCode: status);

    /// <summary>Handles one EC2 Query API request.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var startedAt = DateTimeOffset.UtcNow;
        var requestId = Guid.NewGuid().ToString();
        var request = context.Request;

        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var (key, value) in request.Query)
        {
            pairs.Add(new(key, value.ToString()));
        }
        Ec2Error? formError = null;
        if (request.HasFormContentType)
        {
            try
            {
                var form = await request.ReadFormAsync(FormLimits, context.RequestAborted);
                foreach (var (key, value) in form)
                {
                    pairs.Add(new(key, value.ToString()));
                }
            }
            catch (InvalidDataException ex)
            {
                formError = Ec2Error.InvalidParameterValue("The request body could not be read: " + ex.Message);
            }
        }
        var parameters = new Ec2Parameters(pairs);
        var action = parameters.Get("Action");

        Ec2Credential? credential = null;
        var body = new MemoryStream(4096);
        int status;
        string? errorCode = null;
        try
        {
            var amzDate = request.Headers["X-Amz-Date"].ToString();
            if (formError is not null)
            {
                throw formError;
            }
            credential = Ec2Auth.Parse(request.Headers.Authorization.ToString(), amzDate.Length > 0 ? amzDate : request.Headers.Date.ToString());

            var delay = Faults.DelayMs;
            if (delay > 0)
            {
                await Task.Delay(delay, context.RequestAborted);
            }
            if (Faults.Next() is { } fault)
            {
                throw fault;
            }
            if (string.IsNullOrEmpty(action))
            {
                throw Ec2Error.MissingAction();
            }
            var version = parameters.Get("Version");
            if (string.IsNullOrEmpty(version))
            {
                throw Ec2Error.MissingParameter("Version");
            }
            if (version != ApiVersion)
            {
                throw Ec2Error.NoSuchVersion(version);
            }
            switch (action)
            {
                case "DescribeInstances":
                    Ec2Xml.WriteDescribeInstances(body, requestId, actions.DescribeInstances(parameters));
                    break;
                case "DescribeRegions":
                    Ec2Xml.WriteDescribeRegions(body, requestId, actions.DescribeRegions(parameters));
                    break;
                case "DescribeTags":
                    Ec2Xml.WriteDescribeTags(body, requestId, actions.DescribeTags(parameters));
                    break;
                default:
                    throw Ec2Error.InvalidAction(action);
            }
            status = 200;
        }
        catch (Ec2Error error)
        {
            status = error.Status;
            errorCode = error.Code;
            body.SetLength(0);
            Ec2Xml.WriteError(body, requestId, error);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            Logger.LogError(ex, "EC2 {Action} failed", action);
            var error = Ec2Error.InternalError();
            status = error.Status;
            errorCode = error.Code;
            body.SetLength(0);
            Ec2Xml.WriteError(body, requestId, error);
        }

        Requests.Add(new Ec2RequestRecord
        {
            Action = action,
            Parameters = parameters.All,
            Status = status,
            ErrorCode = errorCode,
            AccessKeyId = credential?.AccessKeyId,
            Region = credential?.Region,
            RequestId = requestId,
            Method = request.Method,
            UserAgent = request.Headers.UserAgent.ToString() is { Length: > 0 } agent ? agent : null,
            Time = startedAt,
            DurationMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds,
        });

        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "text/xml;charset=UTF-8";
        response.ContentLength = body.Length;
        response.Headers["x-amzn-RequestId"] = requestId;
        await response.Body.WriteAsync(body.GetBuffer().AsMemory(0, (int)body.Length), context.RequestAborted);
    }
}
