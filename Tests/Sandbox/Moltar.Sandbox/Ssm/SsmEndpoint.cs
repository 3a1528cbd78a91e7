using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Moltar.Sandbox.Ec2;

namespace Moltar.Sandbox.Ssm;

/// <summary>One SSM request as the control API reports it (<c>GET /_sandbox/ssm/requests</c>).</summary>
public sealed record SsmRequestRecord
{
    [JsonPropertyName("action")] public string? Action { get; init; }
    [JsonPropertyName("body")] public JsonNode? Body { get; init; }
    [JsonPropertyName("status")] public int Status { get; init; }
    [JsonPropertyName("errorCode")] public string? ErrorCode { get; init; }
    [JsonPropertyName("accessKeyId")] public string? AccessKeyId { get; init; }
    [JsonPropertyName("requestId")] public required string RequestId { get; init; }
    [JsonPropertyName("time")] public DateTimeOffset Time { get; init; }
    [JsonPropertyName("durationMs")] public double DurationMs { get; init; }
}

/// <summary>
/// The Systems Manager stand-in: the JSON 1.1 protocol (POST, <c>X-Amz-Target: AmazonSSM.Operation</c>, SigV4 scoped
/// to "ssm") at <see cref="Path"/> of the sandbox listener, so <c>AWS_ENDPOINT_URL_SSM=ENDPOINT/_ssm</c> points the
/// SDK at it. Serves SendCommand (InstanceIds, or Targets tag:KEY / tag-key / InstanceIds), ListCommandInvocations,
/// GetCommandInvocation, CancelCommand and DescribeInstanceInformation over the EC2 fleet, with the service's limits
/// (50 instance ids per request, 24,000 characters of output per stream in GetCommandInvocation, 2,500 in a listing's
/// plugin Output) and its faults (throttling, unmanaged, undeliverable and refused instances; see <see cref="SsmSettings"/>).
/// </summary>
public sealed class SsmEndpoint
{
    public const string Path = "/_ssm";
    public const int MaxInstanceIds = 50;
    public const int OutputLimit = 24_000;
    public const int ListingOutputLimit = 2_500;
    public const string PluginName = "aws:runShellScript";
    public const string AgentVersion = "3.3.1142.0";

    private static readonly Regex ConcurrencyPattern = new(@"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$", RegexOptions.CultureInvariant);
    private static readonly Regex ErrorsPattern = new(@"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$", RegexOptions.CultureInvariant);
    private static readonly Regex InstanceIdPattern = new(@"^(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)$", RegexOptions.CultureInvariant);

    private readonly Lock gate = new();
    private readonly Queue<SsmRequestRecord> requests = new();
    private SsmSettings settings = new();
    private int throttleLeft;

    public SsmEndpoint(Ec2Fleet fleet, ILogger? logger = null)
    {
        Fleet = fleet;
        Logger = logger ?? NullLogger.Instance;
        Commands.Settings = () => Settings;
        Commands.Outputs = Outputs;
    }

    /// <summary>The output bucket stand-in (S3 GetObject) the agents write full streams to.</summary>
    public S3Endpoint Outputs { get; } = new();

    public Ec2Fleet Fleet { get; }
    public SsmCommandStore Commands { get; } = new();
    public ILogger Logger { get; set; }

    public SsmSettings Settings
    {
        get
        {
            lock (gate)
            {
                return settings;
            }
        }
        set
        {
            lock (gate)
            {
                settings = value;
                throttleLeft = value.ThrottleFirst ?? 0;
            }
        }
    }

    public IReadOnlyList<SsmRequestRecord> Requests
    {
        get
        {
            lock (gate)
            {
                return requests.ToArray();
            }
        }
    }

    public void ClearRequests()
    {
        lock (gate)
        {
            requests.Clear();
        }
    }

    public void Map(IEndpointRouteBuilder routes)
    {
        routes.MapPost(Path, HandleAsync);
        Outputs.Map(routes);
        routes.MapGet("/_sandbox/ssm/requests", () => Results.Json(Requests, Ec2Endpoint.Json));
        routes.MapDelete("/_sandbox/ssm/requests", () =>
        {
            ClearRequests();
            return Results.NoContent();
        });
        routes.MapGet("/_sandbox/ssm/settings", () => Results.Json(Settings, Ec2Endpoint.Json));
        routes.MapPost("/_sandbox/ssm/settings", async (HttpRequest request) =>
        {
            SsmSettings? value;
            try
            {
                value = await JsonSerializer.DeserializeAsync<SsmSettings>(request.Body, Ec2Endpoint.Json, request.HttpContext.RequestAborted);
            }
            catch (JsonException ex)
            {
                return Ec2Endpoint.ControlError("SSM settings are not valid JSON: " + ex.Message);
            }
            value ??= new SsmSettings();
            if (value.Validate() is { } problem)
            {
                return Ec2Endpoint.ControlError(problem);
            }
            Settings = value;
            return Results.Json(Settings, Ec2Endpoint.Json);
        });
        routes.MapDelete("/_sandbox/ssm/settings", () =>
        {
            Settings = new SsmSettings();
            return Results.NoContent();
        });
        routes.MapGet("/_sandbox/ssm/commands", () => Results.Json(Commands.Snapshot().Select(c => new
        {
            commandId = c.CommandId,
            status = c.Status,
            maxConcurrency = c.MaxConcurrency,
            maxErrors = c.MaxErrors,
            invocations = c.Invocations.Select(i => new { instanceId = i.InstanceId, status = i.Status, statusDetails = i.StatusDetails, responseCode = i.ResponseCode }),
        }), Ec2Endpoint.Json));
    }

    public async Task HandleAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var startedAt = DateTimeOffset.UtcNow;
        var requestId = Guid.NewGuid().ToString();
        var request = context.Request;
        var target = request.Headers["X-Amz-Target"].ToString();
        var action = target.StartsWith("AmazonSSM.", StringComparison.Ordinal) ? target["AmazonSSM.".Length..] : null;
        string text;
        using (var reader = new StreamReader(request.Body, Encoding.UTF8))
        {
            text = await reader.ReadToEndAsync(context.RequestAborted);
        }

        JsonNode? body = null;
        JsonNode? answer;
        int status = 200;
        string? errorCode = null;
        Ec2Credential? credential = null;
        try
        {
            try
            {
                var amzDate = request.Headers["X-Amz-Date"].ToString();
                credential = Ec2Auth.Parse(request.Headers.Authorization.ToString(), amzDate, "ssm");
            }
            catch (Ec2Error auth) when (auth.Code == "MissingAuthenticationToken")
            {
                throw SsmError.MissingAuthenticationToken();
            }
            catch (Ec2Error auth)
            {
                throw SsmError.IncompleteSignature(auth.Message);
            }
            if (action is null)
            {
                throw SsmError.UnknownOperation(target);
            }
            try
            {
                body = text.Length == 0 ? new JsonObject() : JsonNode.Parse(text);
            }
            catch (JsonException ex)
            {
                throw new SsmError(400, "SerializationException", "The request body is not valid JSON: " + ex.Message);
            }
            if (body is not JsonObject input)
            {
                throw new SsmError(400, "SerializationException", "The request body must be a JSON object.");
            }
            if (NextThrottled(action))
            {
                throw SsmError.Throttling();
            }
            answer = action switch
            {
                "SendCommand" => SendCommand(input),
                "ListCommandInvocations" => ListCommandInvocations(input),
                "GetCommandInvocation" => GetCommandInvocation(input),
                "CancelCommand" => CancelCommand(input),
                "DescribeInstanceInformation" => DescribeInstanceInformation(input),
                _ => throw SsmError.UnknownOperation(target),
            };
        }
        catch (SsmError error)
        {
            status = error.Status;
            errorCode = error.Code;
            answer = new JsonObject { ["__type"] = error.Code, ["message"] = error.Message };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Logger.LogError(ex, "SSM {Action} failed", action);
            var error = SsmError.InternalServerError();
            status = error.Status;
            errorCode = error.Code;
            answer = new JsonObject { ["__type"] = error.Code, ["message"] = error.Message };
        }

        lock (gate)
        {
            if (requests.Count == Ec2RequestLog.Capacity)
            {
                requests.Dequeue();
            }
            requests.Enqueue(new SsmRequestRecord
            {
                Action = action ?? target,
                Body = body?.DeepClone(),
                Status = status,
                ErrorCode = errorCode,
                AccessKeyId = credential?.AccessKeyId,
                RequestId = requestId,
                Time = startedAt,
                DurationMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            });
        }

        if (action == "SendCommand" && status == 200 && Settings.SendCommandReplyDelayMs is > 0 and var replyDelay)
        {
            await Task.Delay(replyDelay, context.RequestAborted);
        }

        var bytes = Encoding.UTF8.GetBytes(answer?.ToJsonString() ?? "{}");
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/x-amz-json-1.1";
        response.ContentLength = bytes.Length;
        response.Headers["x-amzn-RequestId"] = requestId;
        await response.Body.WriteAsync(bytes, context.RequestAborted);
    }

    private bool NextThrottled(string action)
    {
        lock (gate)
        {
            if (throttleLeft <= 0 || (settings.ThrottleActions is { Count: > 0 } only && !only.Contains(action, StringComparer.Ordinal)))
            {
                return false;
            }
            throttleLeft--;
            return true;
        }
    }

    /// <summary>Running instances of the fleet that have an agent registered.</summary>
    private IEnumerable<Ec2Instance> Managed()
    {
        var current = Settings;
        return Fleet.Snapshot.InFleetOrder.Where(i => i.State == "running" && !current.IsUnmanaged(i.InstanceId));
    }

    private JsonNode SendCommand(JsonObject input)
    {
        var document = String(input, "DocumentName") ?? throw SsmError.Validation("1 validation error detected: Value null at 'documentName' failed to satisfy constraint: Member must not be null");
        if (document != "AWS-RunShellScript")
        {
            throw SsmError.InvalidDocument(document);
        }
        var parameters = input["Parameters"] as JsonObject;
        var commands = Strings(parameters, "commands");
        if (commands is null || commands.Count == 0)
        {
            throw SsmError.InvalidParameters("Parameter \"commands\" is required by document AWS-RunShellScript.");
        }
        var executionTimeout = 3600;
        if (Strings(parameters, "executionTimeout") is { Count: > 0 } timeoutValues &&
            (!int.TryParse(timeoutValues[0], NumberStyles.None, CultureInfo.InvariantCulture, out executionTimeout) || executionTimeout is < 1 or > 172800))
        {
            throw SsmError.InvalidParameters("Parameter \"executionTimeout\" must be an integer from 1 to 172800.");
        }
        var workingDirectory = Strings(parameters, "workingDirectory") is { Count: > 0 } dirs && dirs[0].Length > 0 ? dirs[0] : null;
        foreach (var name in parameters?.Select(p => p.Key) ?? [])
        {
            if (name is not ("commands" or "executionTimeout" or "workingDirectory"))
            {
                throw SsmError.InvalidParameters($"Parameter \"{name}\" is not defined in document AWS-RunShellScript.");
            }
        }

        var deliveryTimeout = input["TimeoutSeconds"] is { } t ? t.GetValue<int>() : 3600;
        if (deliveryTimeout is < 30 or > 2592000)
        {
            throw SsmError.Validation($"1 validation error detected: Value '{deliveryTimeout}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000");
        }
        var maxConcurrency = String(input, "MaxConcurrency") ?? "50";
        if (!ConcurrencyPattern.IsMatch(maxConcurrency))
        {
            throw SsmError.Validation($"1 validation error detected: Value '{maxConcurrency}' at 'maxConcurrency' failed to satisfy constraint: Member must satisfy regular expression pattern: {ConcurrencyPattern}");
        }
        var maxErrors = String(input, "MaxErrors") ?? "0";
        if (!ErrorsPattern.IsMatch(maxErrors))
        {
            throw SsmError.Validation($"1 validation error detected: Value '{maxErrors}' at 'maxErrors' failed to satisfy constraint: Member must satisfy regular expression pattern: {ErrorsPattern}");
        }

        var instanceIds = Strings(input, "InstanceIds") ?? [];
        var targets = Targets(input);
        if (instanceIds.Count > 0 && targets.Count > 0)
        {
            throw SsmError.Validation("Specify either InstanceIds or Targets, not both.");
        }
        if (instanceIds.Count == 0 && targets.Count == 0)
        {
            throw SsmError.Validation("Either InstanceIds or Targets must be specified.");
        }
        CheckIds(instanceIds, "instanceIds");

        var managed = Managed().ToList();
        List<Ec2Instance> resolved;
        if (instanceIds.Count > 0)
        {
            var byId = managed.ToDictionary(i => i.InstanceId, StringComparer.Ordinal);
            var missing = instanceIds.Where(id => !byId.ContainsKey(id)).ToList();
            if (missing.Count > 0)
            {
                throw SsmError.InvalidInstanceId($"Instances [[{string.Join(", ", missing)}]] not in a valid state for account 123456789012");
            }
            resolved = instanceIds.Distinct(StringComparer.Ordinal).Select(id => byId[id]).ToList();
        }
        else
        {
            resolved = managed.Where(instance => targets.All(target => Matches(instance, target))).ToList();
        }

        var command = new SsmCommand
        {
            CommandId = Guid.NewGuid().ToString(),
            DocumentName = document,
            Comment = String(input, "Comment") ?? "",
            Commands = commands,
            ExecutionTimeoutSeconds = executionTimeout,
            WorkingDirectory = workingDirectory,
            DeliveryTimeoutSeconds = deliveryTimeout,
            MaxConcurrency = maxConcurrency,
            MaxErrors = maxErrors,
            InstanceIds = instanceIds,
            Targets = targets,
            OutputS3BucketName = String(input, "OutputS3BucketName"),
            OutputS3KeyPrefix = String(input, "OutputS3KeyPrefix"),
            Requested = DateTimeOffset.UtcNow,
        };
        if (command.OutputS3BucketName is { Length: > 0 } bucket)
        {
            Outputs.CreateBucket(bucket);
        }
        Commands.Add(command, resolved);
        return new JsonObject { ["Command"] = CommandJson(command) };
    }

    private static List<KeyValuePair<string, IReadOnlyList<string>>> Targets(JsonObject input)
    {
        var result = new List<KeyValuePair<string, IReadOnlyList<string>>>();
        if (input["Targets"] is not JsonArray targets)
        {
            return result;
        }
        if (targets.Count > 5)
        {
            throw SsmError.Validation($"1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length less than or equal to 5");
        }
        foreach (var target in targets.OfType<JsonObject>())
        {
            var key = String(target, "Key") ?? throw SsmError.InvalidTarget("A target needs a Key.");
            var values = Strings(target, "Values") ?? [];
            if (values.Count == 0)
            {
                throw SsmError.InvalidTarget($"Target {key} needs at least one value.");
            }
            if (values.Count > MaxInstanceIds)
            {
                throw SsmError.Validation($"1 validation error detected: Value at 'targets.{key}.values' failed to satisfy constraint: Member must have length less than or equal to {MaxInstanceIds}");
            }
            if (key == "InstanceIds")
            {
                CheckIds(values, "targets.InstanceIds.values");
            }
            else if (!key.StartsWith("tag:", StringComparison.Ordinal) && key != "tag-key")
            {
                throw SsmError.InvalidTarget($"The sandbox serves the target keys InstanceIds, tag:KEY and tag-key, not '{key}'.");
            }
            result.Add(new(key, values));
        }
        return result;
    }

    private static bool Matches(Ec2Instance instance, KeyValuePair<string, IReadOnlyList<string>> target) => target.Key switch
    {
        "InstanceIds" => target.Value.Contains(instance.InstanceId, StringComparer.Ordinal),
        "tag-key" => target.Value.Any(key => instance.Tags.Any(t => t.Key == key)),
        _ => instance.TagValue(target.Key["tag:".Length..]) is { } value && target.Value.Contains(value, StringComparer.Ordinal),
    };

    private static void CheckIds(IReadOnlyList<string> ids, string field)
    {
        if (ids.Count > MaxInstanceIds)
        {
            throw SsmError.Validation($"1 validation error detected: Value '[{string.Join(", ", ids)}]' at '{field}' failed to satisfy constraint: Member must have length less than or equal to {MaxInstanceIds}");
        }
        if (ids.FirstOrDefault(id => !InstanceIdPattern.IsMatch(id)) is { } bad)
        {
            throw SsmError.InvalidInstanceId($"Instance id '{bad}' is not valid.");
        }
    }

    private JsonNode ListCommandInvocations(JsonObject input)
    {
        if (input["Filters"] is JsonArray { Count: > 0 })
        {
            throw SsmError.Validation("The sandbox does not model ListCommandInvocations Filters; filter by CommandId and InstanceId.");
        }
        var commandId = String(input, "CommandId");
        var instanceId = String(input, "InstanceId");
        var maxResults = input["MaxResults"] is { } m ? m.GetValue<int>() : 50;
        if (maxResults is < 1 or > 50)
        {
            throw SsmError.Validation($"1 validation error detected: Value '{maxResults}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50");
        }
        var details = input["Details"]?.GetValue<bool>() ?? false;
        IEnumerable<SsmCommand> commands;
        if (commandId is not null)
        {
            commands = Commands.Find(commandId) is { } found ? [found] : throw SsmError.InvalidCommandId();
        }
        else
        {
            commands = Commands.Snapshot();
        }
        var current = Settings;
        var all = commands.Where(c => !current.IsHidden(c.Requested)).SelectMany(c => c.Invocations)
            .Where(i => instanceId is null || i.InstanceId == instanceId).ToList();
        var offset = Offset(String(input, "NextToken"));
        var page = all.Skip(offset).Take(maxResults).ToList();
        var result = new JsonObject { ["CommandInvocations"] = new JsonArray(page.Select(i => InvocationJson(i, details)).ToArray()) };
        if (offset + page.Count < all.Count)
        {
            result["NextToken"] = Token(offset + page.Count);
        }
        return result;
    }

    private JsonNode GetCommandInvocation(JsonObject input)
    {
        var commandId = String(input, "CommandId") ?? throw SsmError.Validation("1 validation error detected: Value null at 'commandId' failed to satisfy constraint: Member must not be null");
        var instanceId = String(input, "InstanceId") ?? throw SsmError.Validation("1 validation error detected: Value null at 'instanceId' failed to satisfy constraint: Member must not be null");
        if (String(input, "PluginName") is { } plugin && plugin != PluginName)
        {
            throw new SsmError(400, "InvalidPluginName", "The plugin name isn't valid.");
        }
        var command = Commands.Find(commandId) ?? throw SsmError.InvalidCommandId();
        var invocation = (Settings.IsHidden(command.Requested) ? null : command.Invocations.FirstOrDefault(i => i.InstanceId == instanceId))
                         ?? throw SsmError.InvocationDoesNotExist();
        var elapsed = invocation.Started is { } start ? (invocation.Finished ?? DateTimeOffset.UtcNow) - start : TimeSpan.Zero;
        return new JsonObject
        {
            ["CommandId"] = command.CommandId,
            ["InstanceId"] = invocation.InstanceId,
            ["Comment"] = command.Comment,
            ["DocumentName"] = command.DocumentName,
            ["DocumentVersion"] = "1",
            ["PluginName"] = PluginName,
            ["ResponseCode"] = invocation.ResponseCode,
            ["ExecutionStartDateTime"] = invocation.Started?.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture) ?? "",
            ["ExecutionElapsedTime"] = invocation.Started is null ? "" : System.Xml.XmlConvert.ToString(elapsed),
            ["ExecutionEndDateTime"] = invocation.Finished?.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture) ?? "",
            ["Status"] = invocation.Status,
            ["StatusDetails"] = invocation.StatusDetails,
            ["StandardOutputContent"] = Truncate(invocation.StandardOutput, OutputLimit),
            ["StandardOutputUrl"] = OutputUrl(command, invocation, "stdout"),
            ["StandardErrorContent"] = Truncate(invocation.StandardError, OutputLimit),
            ["StandardErrorUrl"] = OutputUrl(command, invocation, "stderr"),
            ["CloudWatchOutputConfig"] = new JsonObject { ["CloudWatchLogGroupName"] = "", ["CloudWatchOutputEnabled"] = false },
        };
    }

    private JsonNode CancelCommand(JsonObject input)
    {
        var commandId = String(input, "CommandId") ?? throw SsmError.Validation("1 validation error detected: Value null at 'commandId' failed to satisfy constraint: Member must not be null");
        var instanceIds = Strings(input, "InstanceIds") ?? [];
        CheckIds(instanceIds, "instanceIds");
        var command = Commands.Find(commandId) ?? throw SsmError.InvalidCommandId();
        Commands.Cancel(command, instanceIds);
        return new JsonObject();
    }

    private JsonNode DescribeInstanceInformation(JsonObject input)
    {
        if (input["InstanceInformationFilterList"] is JsonArray { Count: > 0 })
        {
            throw SsmError.Validation("The sandbox models the Filters parameter of DescribeInstanceInformation, not InstanceInformationFilterList.");
        }
        var maxResults = input["MaxResults"] is { } m ? m.GetValue<int>() : 10;
        if (maxResults is < 5 or > 50)
        {
            throw SsmError.Validation($"1 validation error detected: Value '{maxResults}' at 'maxResults' failed to satisfy constraint: Member must have value between 5 and 50");
        }
        var current = Settings;
        IEnumerable<Ec2Instance> instances = Managed();
        foreach (var filter in (input["Filters"] as JsonArray)?.OfType<JsonObject>() ?? [])
        {
            var key = String(filter, "Key") ?? throw SsmError.InvalidFilterKey("null");
            var values = Strings(filter, "Values") ?? [];
            if (values.Count == 0)
            {
                throw new SsmError(400, "InvalidFilterValue", $"The filter {key} needs at least one value.");
            }
            instances = key switch
            {
                "InstanceIds" => values.Count > MaxInstanceIds
                    ? throw SsmError.Validation($"The InstanceIds filter accepts at most {MaxInstanceIds} values.")
                    : instances.Where(i => values.Contains(i.InstanceId, StringComparer.Ordinal)),
                "PingStatus" => instances.Where(i => values.Contains(PingStatus(current, i), StringComparer.Ordinal)),
                "tag-key" => instances.Where(i => values.Any(v => i.Tags.Any(t => t.Key == v))),
                _ when key.StartsWith("tag:", StringComparison.Ordinal) =>
                    instances.Where(i => i.TagValue(key[4..]) is { } v && values.Contains(v, StringComparer.Ordinal)),
                _ => throw SsmError.InvalidFilterKey(key),
            };
        }
        var all = instances.ToList();
        var offset = Offset(String(input, "NextToken"));
        var page = all.Skip(offset).Take(maxResults).ToList();
        var result = new JsonObject
        {
            ["InstanceInformationList"] = new JsonArray(page.Select(i => (JsonNode)new JsonObject
            {
                ["InstanceId"] = i.InstanceId,
                ["PingStatus"] = PingStatus(current, i),
                ["LastPingDateTime"] = Epoch(DateTimeOffset.UtcNow),
                ["AgentVersion"] = AgentVersion,
                ["IsLatestVersion"] = true,
                ["PlatformType"] = "Linux",
                ["PlatformName"] = "Ubuntu",
                ["PlatformVersion"] = "24.04",
                ["ResourceType"] = "EC2Instance",
                ["IPAddress"] = i.PrivateIpAddress,
                ["ComputerName"] = i.PrivateDnsName,
                ["AssociationStatus"] = "Success",
            }).ToArray()),
        };
        if (offset + page.Count < all.Count)
        {
            result["NextToken"] = Token(offset + page.Count);
        }
        return result;
    }

    private static string PingStatus(SsmSettings settings, Ec2Instance instance) =>
        settings.IsUndeliverable(instance.InstanceId) ? "ConnectionLost" : "Online";

    private static JsonObject CommandJson(SsmCommand command) => new()
    {
        ["CommandId"] = command.CommandId,
        ["DocumentName"] = command.DocumentName,
        ["DocumentVersion"] = "$DEFAULT",
        ["Comment"] = command.Comment,
        ["ExpiresAfter"] = Epoch(command.Requested.AddSeconds(command.DeliveryTimeoutSeconds + command.ExecutionTimeoutSeconds)),
        ["Parameters"] = new JsonObject
        {
            ["commands"] = new JsonArray(command.Commands.Select(c => (JsonNode)JsonValue.Create(c)!).ToArray()),
            ["executionTimeout"] = new JsonArray(command.ExecutionTimeoutSeconds.ToString(CultureInfo.InvariantCulture)),
        },
        ["InstanceIds"] = new JsonArray(command.InstanceIds.Select(c => (JsonNode)JsonValue.Create(c)!).ToArray()),
        ["Targets"] = new JsonArray(command.Targets.Select(t => (JsonNode)new JsonObject
        {
            ["Key"] = t.Key,
            ["Values"] = new JsonArray(t.Value.Select(v => (JsonNode)JsonValue.Create(v)!).ToArray()),
        }).ToArray()),
        ["RequestedDateTime"] = Epoch(command.Requested),
        ["Status"] = command.Status,
        ["StatusDetails"] = command.Status,
        ["OutputS3BucketName"] = command.OutputS3BucketName ?? "",
        ["OutputS3KeyPrefix"] = command.OutputS3KeyPrefix ?? "",
        ["MaxConcurrency"] = command.MaxConcurrency,
        ["MaxErrors"] = command.MaxErrors,
        ["TargetCount"] = command.Invocations.Count,
        ["CompletedCount"] = command.CompletedCount,
        ["ErrorCount"] = command.ErrorCount,
        ["DeliveryTimedOutCount"] = command.DeliveryTimedOutCount,
        ["TimeoutSeconds"] = command.DeliveryTimeoutSeconds,
    };

    private static JsonNode InvocationJson(SsmInvocation invocation, bool details)
    {
        var command = invocation.Command;
        var result = new JsonObject
        {
            ["CommandId"] = command.CommandId,
            ["InstanceId"] = invocation.InstanceId,
            ["InstanceName"] = invocation.InstanceName,
            ["Comment"] = command.Comment,
            ["DocumentName"] = command.DocumentName,
            ["DocumentVersion"] = "$DEFAULT",
            ["RequestedDateTime"] = Epoch(command.Requested),
            ["Status"] = invocation.Status,
            ["StatusDetails"] = invocation.StatusDetails,
            ["TraceOutput"] = "",
            ["StandardOutputUrl"] = OutputUrl(command, invocation, "stdout"),
            ["StandardErrorUrl"] = OutputUrl(command, invocation, "stderr"),
            ["CommandPlugins"] = new JsonArray(),
        };
        if (details)
        {
            var output = invocation.StandardOutput + (invocation.StandardError.Length > 0 ? "\n----------ERROR-------\n" + invocation.StandardError : "");
            var plugin = new JsonObject
            {
                ["Name"] = PluginName,
                ["Status"] = invocation.Status,
                ["StatusDetails"] = invocation.StatusDetails,
                ["ResponseCode"] = invocation.ResponseCode,
                ["Output"] = Truncate(output, ListingOutputLimit),
                ["StandardOutputUrl"] = OutputUrl(command, invocation, "stdout"),
                ["StandardErrorUrl"] = OutputUrl(command, invocation, "stderr"),
                ["OutputS3Region"] = "us-east-1",
                ["OutputS3BucketName"] = command.OutputS3BucketName ?? "",
                ["OutputS3KeyPrefix"] = command.OutputS3KeyPrefix ?? "",
            };
            if (invocation.Started is { } started)
            {
                plugin["ResponseStartDateTime"] = Epoch(started);
            }
            if (invocation.Finished is { } finished)
            {
                plugin["ResponseFinishDateTime"] = Epoch(finished);
            }
            result["CommandPlugins"] = new JsonArray(plugin);
        }
        return result;
    }

    /// <summary>Where the full output would be in S3 (empty without an output bucket, as the service answers).</summary>
    private static string OutputUrl(SsmCommand command, SsmInvocation invocation, string stream) =>
        command.OutputS3BucketName is { Length: > 0 } bucket
            ? $"https://s3.us-east-1.amazonaws.com/{bucket}/{S3Endpoint.KeyOf(command.OutputS3KeyPrefix, command.CommandId, invocation.InstanceId, stream)}"
            : "";

    private static string Truncate(string text, int limit) => text.Length <= limit ? text : text[..limit];

    private static double Epoch(DateTimeOffset time) => Math.Round(time.ToUnixTimeMilliseconds() / 1000.0, 3);

    private static string Token(int offset) => Convert.ToBase64String(Encoding.UTF8.GetBytes("sandbox-offset:" + offset.ToString(CultureInfo.InvariantCulture)));

    private static int Offset(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return 0;
        }
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            if (text.StartsWith("sandbox-offset:", StringComparison.Ordinal) &&
                int.TryParse(text["sandbox-offset:".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
            {
                return offset;
            }
        }
        catch (FormatException)
        {
        }
        throw SsmError.InvalidNextToken();
    }

    private static string? String(JsonObject? node, string name) =>
        node?[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static List<string>? Strings(JsonObject? node, string name) =>
        node?[name] is JsonArray array ? array.Select(v => v is JsonValue value && value.TryGetValue<string>(out var s) ? s : "").ToList() : null;
}
