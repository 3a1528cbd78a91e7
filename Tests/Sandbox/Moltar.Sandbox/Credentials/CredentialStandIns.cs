using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Xml;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Moltar.Sandbox.Ec2;

namespace Moltar.Sandbox.Credentials;

/// <summary>How the credential stand-ins behave; replaced as a whole by POST /_sandbox/credentials.</summary>
public sealed record CredentialSettings
{
    /// <summary>"v2": IMDSv2 (a token PUT first, every read needs it); "v1only": no token API (PUT is 403), reads need none.</summary>
    [JsonPropertyName("imdsMode")] public string ImdsMode { get; init; } = "v2";
    /// <summary>The instance profile's role name (IMDS lists it under iam/security-credentials/).</summary>
    [JsonPropertyName("roleName")] public string RoleName { get; init; } = "moltar-sandbox-role";
    /// <summary>The region the instance identity document names.</summary>
    [JsonPropertyName("region")] public string Region { get; init; } = "eu-west-2";
    /// <summary>How long issued credentials are valid (their Expiration).</summary>
    [JsonPropertyName("lifetimeSeconds")] public int LifetimeSeconds { get; init; } = 3600;
    /// <summary>Caps the TTL of IMDS tokens (the client asks for up to 21600 s): a short cap makes tokens expire during a run.</summary>
    [JsonPropertyName("tokenTtlCapSeconds")] public int TokenTtlCapSeconds { get; init; } = 21600;
    /// <summary>The Authorization value the container endpoint requires; null: none required.</summary>
    [JsonPropertyName("containerAuthorization")] public string? ContainerAuthorization { get; init; }
    /// <summary>The web identity token STS accepts; null: any non-empty token.</summary>
    [JsonPropertyName("webIdentityToken")] public string? WebIdentityToken { get; init; }

    public string? Validate() =>
        ImdsMode is not ("v2" or "v1only") ? "imdsMode must be 'v2' or 'v1only'."
        : LifetimeSeconds is < 1 or > 43200 ? "lifetimeSeconds must be 1-43200."
        : TokenTtlCapSeconds is < 1 or > 21600 ? "tokenTtlCapSeconds must be 1-21600."
        : string.IsNullOrWhiteSpace(RoleName) || RoleName.Contains('/') ? "roleName must be a non-empty name without '/'."
        : null;
}

/// <summary>One set of credentials a stand-in handed out (the control API lists them; secrets are test values).</summary>
public sealed record IssuedCredential(
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("accessKeyId")] string AccessKeyId,
    [property: JsonPropertyName("expiration")] DateTimeOffset Expiration,
    [property: JsonPropertyName("time")] DateTimeOffset Time);

/// <summary>
/// Loopback stand-ins for the places a machine's role credentials come from, speaking the real protocols so the
/// AWS SDK's own providers talk to them through the settings the SDK honours:
/// <list type="bullet">
/// <item>the EC2 instance metadata service (AWS_EC2_METADATA_SERVICE_ENDPOINT = the sandbox endpoint): token PUT at
/// /latest/api/token with the TTL header, the role under /latest/meta-data/iam/security-credentials/, its credentials
/// JSON, the identity document with the region; tokens expire; an IMDSv1-only mode without the token API;</item>
/// <item>the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI = endpoint + /_container/credentials),
/// with or without a required Authorization value (AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]);</item>
/// <item>STS AssumeRoleWithWebIdentity (AWS_ENDPOINT_URL_STS = endpoint + /_sts), unsigned, Query protocol.</item>
/// </list>
/// Every access key issued is unique and listed at GET /_sandbox/credentials, so a test can tell which source the EC2
/// requests were signed with (the EC2 request log records each request's access key id).
/// </summary>
public sealed class CredentialStandIns
{
    public const string TokenTtlHeader = "X-aws-ec2-metadata-token-ttl-seconds";
    public const string TokenHeader = "X-aws-ec2-metadata-token";
    public const string ContainerPath = "/_container/credentials";
    public const string StsPath = "/_sts";

    private readonly ConcurrentDictionary<string, DateTimeOffset> tokens = new();
    private readonly ConcurrentQueue<IssuedCredential> issued = new();
    private int counter;
    private volatile CredentialSettings settings = new();

    public CredentialSettings Settings
    {
        get => settings;
        set => settings = value;
    }

    public IReadOnlyList<IssuedCredential> Issued => issued.ToArray();

    public void Map(IEndpointRouteBuilder routes)
    {
        routes.MapGet("/_sandbox/credentials", () => Results.Json(new { settings = Settings, issued = Issued }, Ec2Endpoint.Json));
        routes.MapPost("/_sandbox/credentials", async (HttpRequest request) =>
        {
            CredentialSettings? next;
            try
            {
                next = await JsonSerializer.DeserializeAsync<CredentialSettings>(request.Body, Ec2Endpoint.Json, request.HttpContext.RequestAborted);
            }
            catch (JsonException ex)
            {
                return Ec2Endpoint.ControlError("Credential settings are not valid JSON: " + ex.Message);
            }
            next ??= new CredentialSettings();
            if (next.Validate() is { } problem)
            {
                return Ec2Endpoint.ControlError(problem);
            }
            Settings = next;
            return Results.Json(Settings, Ec2Endpoint.Json);
        });

        routes.MapPut("/latest/api/token", PutToken);
        // (Routing matches the path with or without its trailing slash.)
        routes.MapGet("/latest/meta-data/iam/security-credentials", (HttpContext c) => Imds(c, s => Results.Text(s.RoleName)));
        routes.MapGet("/latest/meta-data/iam/security-credentials/{role}", (HttpContext c, string role) => Imds(c, s =>
            role == s.RoleName ? Results.Text(CredentialsJson("imds", s, includeCode: true), "text/plain") : Results.NotFound()));
        // The SDK reads iam/info first: an instance without a profile has none (404).
        routes.MapGet("/latest/meta-data/iam/info", (HttpContext c) => Imds(c, s => Results.Text(JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["Code"] = "Success",
            ["LastUpdated"] = Iso(DateTimeOffset.UtcNow),
            ["InstanceProfileArn"] = $"arn:aws:iam::123456789012:instance-profile/{s.RoleName}",
            ["InstanceProfileId"] = "AIPA0SANDBOX0PROFILE",
        }), "text/plain")));
        routes.MapGet("/latest/meta-data/placement/region", (HttpContext c) => Imds(c, s => Results.Text(s.Region)));
        routes.MapGet("/latest/dynamic/instance-identity/document", (HttpContext c) => Imds(c, s => Results.Text(JsonSerializer.Serialize(new
        {
            accountId = "123456789012",
            architecture = "x86_64",
            availabilityZone = s.Region + "a",
            imageId = "ami-0123456789abcdef0",
            instanceId = "i-0123456789abcdef0",
            instanceType = "t3.micro",
            pendingTime = "2026-01-01T00:00:00Z",
            privateIp = "10.0.0.5",
            region = s.Region,
            version = "2017-09-30",
        }), "text/plain")));

        routes.MapGet(ContainerPath, (HttpContext c) =>
        {
            var s = Settings;
            if (s.ContainerAuthorization is { } required && c.Request.Headers.Authorization.ToString() != required)
            {
                return Results.Json(new { code = "AccessDenied", message = "The Authorization header is missing or wrong." }, statusCode: 401);
            }
            return Results.Text(CredentialsJson("container", s, includeCode: false, roleArn: true), "application/json");
        });

        routes.MapPost(StsPath, AssumeRoleWithWebIdentity);
    }

    /// <summary>IMDSv2 token: PUT with a TTL of 1-21600 s; never through a proxy (X-Forwarded-For is refused, as real IMDS does).</summary>
    private IResult PutToken(HttpContext context)
    {
        var s = Settings;
        if (s.ImdsMode == "v1only")
        {
            return Results.StatusCode(403);
        }
        if (context.Request.Headers.ContainsKey("X-Forwarded-For"))
        {
            return Results.StatusCode(403);
        }
        if (!int.TryParse(context.Request.Headers[TokenTtlHeader].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var ttl) || ttl is < 1 or > 21600)
        {
            return Results.StatusCode(400);
        }
        ttl = Math.Min(ttl, s.TokenTtlCapSeconds);
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        tokens[token] = DateTimeOffset.UtcNow.AddSeconds(ttl);
        context.Response.Headers[TokenTtlHeader] = ttl.ToString(CultureInfo.InvariantCulture);
        return Results.Text(token);
    }

    /// <summary>An IMDS read: in v2 mode only with a token that exists and has not expired (else 401, as IMDS answers).</summary>
    private IResult Imds(HttpContext context, Func<CredentialSettings, IResult> answer)
    {
        var s = Settings;
        if (s.ImdsMode == "v2")
        {
            var token = context.Request.Headers[TokenHeader].ToString();
            if (token.Length == 0 || !tokens.TryGetValue(token, out var expires) || expires <= DateTimeOffset.UtcNow)
            {
                return Results.StatusCode(401);
            }
        }
        return answer(s);
    }

    private IResult AssumeRoleWithWebIdentity(HttpContext context)
    {
        var form = context.Request.HasFormContentType ? context.Request.Form : null;
        string Get(string name) => form?[name].ToString() is { Length: > 0 } f ? f : context.Request.Query[name].ToString();
        var s = Settings;
        var requestId = Guid.NewGuid().ToString();
        if (Get("Action") != "AssumeRoleWithWebIdentity")
        {
            return StsError(400, "InvalidAction", $"Could not find operation {Get("Action")} for version 2011-06-15", requestId);
        }
        string roleArn = Get("RoleArn"), session = Get("RoleSessionName"), token = Get("WebIdentityToken");
        if (roleArn.Length == 0 || session.Length == 0 || token.Length == 0)
        {
            return StsError(400, "MissingParameter", "RoleArn, RoleSessionName and WebIdentityToken are required.", requestId);
        }
        if (s.WebIdentityToken is { } expected && token.Trim() != expected)
        {
            return StsError(400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider.", requestId);
        }
        var credential = Issue("sts", s);
        var role = roleArn[(roleArn.LastIndexOf('/') + 1)..];
        var xml = new StringWriter();
        using (var w = XmlWriter.Create(xml, new XmlWriterSettings { OmitXmlDeclaration = true }))
        {
            w.WriteStartElement("AssumeRoleWithWebIdentityResponse", "https://sts.amazonaws.com/doc/2011-06-15/");
            w.WriteStartElement("AssumeRoleWithWebIdentityResult");
            w.WriteElementString("SubjectFromWebIdentityToken", "system:serviceaccount:moltar:sandbox");
            w.WriteStartElement("AssumedRoleUser");
            w.WriteElementString("Arn", $"arn:aws:sts::123456789012:assumed-role/{role}/{session}");
            w.WriteElementString("AssumedRoleId", $"AROA0SANDBOX0ROLE0ID:{session}");
            w.WriteEndElement();
            w.WriteStartElement("Credentials");
            w.WriteElementString("SessionToken", credential.Token);
            w.WriteElementString("SecretAccessKey", credential.Secret);
            w.WriteElementString("Expiration", credential.Expiration.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            w.WriteElementString("AccessKeyId", credential.AccessKeyId);
            w.WriteEndElement();
            w.WriteElementString("Audience", "sts.amazonaws.com");
            w.WriteElementString("Provider", "sandbox.moltar.invalid");
            w.WriteEndElement();
            w.WriteStartElement("ResponseMetadata");
            w.WriteElementString("RequestId", requestId);
            w.WriteEndElement();
            w.WriteEndElement();
        }
        return Results.Text(xml.ToString(), "text/xml");
    }

    private static IResult StsError(int status, string code, string message, string requestId) => Results.Text(
        $"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code>" +
        $"<Message>{System.Security.SecurityElement.Escape(message)}</Message></Error><RequestId>{requestId}</RequestId></ErrorResponse>",
        "text/xml", statusCode: status);

    private string CredentialsJson(string source, CredentialSettings s, bool includeCode, bool roleArn = false)
    {
        var c = Issue(source, s);
        var values = new Dictionary<string, string>();
        if (includeCode)
        {
            values["Code"] = "Success";
            values["LastUpdated"] = Iso(DateTimeOffset.UtcNow);
            values["Type"] = "AWS-HMAC";
        }
        values["AccessKeyId"] = c.AccessKeyId;
        values["SecretAccessKey"] = c.Secret;
        values["Token"] = c.Token;
        values["Expiration"] = Iso(c.Expiration);
        if (roleArn)
        {
            values["RoleArn"] = $"arn:aws:iam::123456789012:role/{s.RoleName}";
        }
        return JsonSerializer.Serialize(values);
    }

    private static string Iso(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private (string AccessKeyId, string Secret, string Token, DateTimeOffset Expiration) Issue(string source, CredentialSettings s)
    {
        int n = Interlocked.Increment(ref counter);
        // ASIA: temporary credentials; the source and a counter make each key unique and readable in the request log.
        string key = $"ASIA{source.ToUpperInvariant()}{n:D8}";
        var expiration = DateTimeOffset.UtcNow.AddSeconds(s.LifetimeSeconds);
        issued.Enqueue(new IssuedCredential(source, key, expiration, DateTimeOffset.UtcNow));
        return (key, Convert.ToBase64String(RandomNumberGenerator.GetBytes(30)), Convert.ToBase64String(RandomNumberGenerator.GetBytes(48)), expiration);
    }
}
