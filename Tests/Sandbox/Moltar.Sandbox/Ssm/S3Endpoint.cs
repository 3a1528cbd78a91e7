using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Builder;
using Moltar.Sandbox.Ec2;

namespace Moltar.Sandbox.Ssm;

/// <summary>One S3 request as the control API reports it (<c>GET /_sandbox/s3/requests</c>).</summary>
public sealed record S3RequestRecord
{
    [JsonPropertyName("method")] public required string Method { get; init; }
    [JsonPropertyName("bucket")] public required string Bucket { get; init; }
    [JsonPropertyName("key")] public required string Key { get; init; }
    [JsonPropertyName("status")] public int Status { get; init; }
    [JsonPropertyName("errorCode")] public string? ErrorCode { get; init; }
    [JsonPropertyName("accessKeyId")] public string? AccessKeyId { get; init; }
    [JsonPropertyName("time")] public DateTimeOffset Time { get; init; }
}

/// <summary>
/// The S3 stand-in for Run Command's output bucket: path-style GetObject (<c>GET /_s3/BUCKET/KEY</c>, SigV4 scoped to
/// "s3") at <see cref="Path"/> of the sandbox listener, so <c>AWS_ENDPOINT_URL_S3=ENDPOINT/_s3</c> points the SDK at
/// it. The simulated agents write the full streams of a command sent with OutputS3BucketName here, under the key the
/// real agent uses (<see cref="KeyOf"/>). A bucket exists once a command named it; errors are S3's XML
/// (NoSuchBucket, NoSuchKey, AccessDenied).
/// </summary>
public sealed class S3Endpoint
{
    public const string Path = "/_s3";

    private readonly ConcurrentDictionary<string, byte> buckets = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Bucket, string Key), (byte[] Body, DateTimeOffset Written)> objects = new();
    private readonly ConcurrentQueue<S3RequestRecord> requests = new();

    /// <summary>Where the agent writes a stream ("stdout", "stderr") of one invocation: PREFIX/COMMAND/INSTANCE/awsrunShellScript/0.awsrunShellScript/STREAM.</summary>
    public static string KeyOf(string? prefix, string commandId, string instanceId, string stream) =>
        (string.IsNullOrEmpty(prefix) ? "" : prefix.TrimEnd('/') + "/") +
        $"{commandId}/{instanceId}/awsrunShellScript/0.awsrunShellScript/{stream}";

    /// <summary>The bucket exists from now on (SendCommand named it as the output bucket).</summary>
    public void CreateBucket(string bucket) => buckets.TryAdd(bucket, 0);

    /// <summary>What an agent uploads: one object.</summary>
    public void Put(string bucket, string key, string text)
    {
        CreateBucket(bucket);
        objects[(bucket, key)] = (Encoding.UTF8.GetBytes(text), DateTimeOffset.UtcNow);
    }

    public IReadOnlyList<S3RequestRecord> Requests => requests.ToArray();

    public void Map(IEndpointRouteBuilder routes)
    {
        routes.MapGet(Path + "/{bucket}/{**key}", HandleGetAsync);
        routes.MapGet("/_sandbox/s3/requests", () => Results.Json(Requests, Ec2Endpoint.Json));
        routes.MapDelete("/_sandbox/s3/requests", () =>
        {
            requests.Clear();
            return Results.NoContent();
        });
        routes.MapGet("/_sandbox/s3/objects", () => Results.Json(
            objects.Select(o => new { bucket = o.Key.Bucket, key = o.Key.Key, size = o.Value.Body.Length }).OrderBy(o => o.bucket).ThenBy(o => o.key, StringComparer.Ordinal),
            Ec2Endpoint.Json));
    }

    private async Task HandleGetAsync(HttpContext context, string bucket, string? key)
    {
        key ??= "";
        var request = context.Request;
        var response = context.Response;
        var requestId = Guid.NewGuid().ToString("N")[..16].ToUpperInvariant();
        response.Headers["x-amz-request-id"] = requestId;
        response.Headers["x-amz-id-2"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(requestId));
        string? accessKey = null;

        async Task Answer(int status, string? code, string? message)
        {
            requests.Enqueue(new S3RequestRecord
            {
                Method = request.Method, Bucket = bucket, Key = key, Status = status, ErrorCode = code, AccessKeyId = accessKey, Time = DateTimeOffset.UtcNow,
            });
            if (code is null)
            {
                return;
            }
            var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" + Escape(message ?? code) +
                      "</Message><BucketName>" + Escape(bucket) + "</BucketName><Key>" + Escape(key) + "</Key><RequestId>" + requestId + "</RequestId></Error>";
            var bytes = Encoding.UTF8.GetBytes(xml);
            response.StatusCode = status;
            response.ContentType = "application/xml";
            response.ContentLength = bytes.Length;
            await response.Body.WriteAsync(bytes, context.RequestAborted);
        }

        try
        {
            var amzDate = request.Headers["X-Amz-Date"].ToString();
            accessKey = Ec2Auth.Parse(request.Headers.Authorization.ToString(), amzDate, "s3").AccessKeyId;
        }
        catch (Ec2Error auth)
        {
            await Answer(403, "AccessDenied", auth.Message);
            return;
        }
        if (!buckets.ContainsKey(bucket))
        {
            await Answer(404, "NoSuchBucket", "The specified bucket does not exist");
            return;
        }
        if (!objects.TryGetValue((bucket, key), out var stored))
        {
            await Answer(404, "NoSuchKey", "The specified key does not exist.");
            return;
        }
        await Answer(200, null, null);
        response.StatusCode = 200;
        response.ContentType = "application/octet-stream";
        response.ContentLength = stored.Body.Length;
        // S3's ETag of an object put in one part is its MD5, and the SDK checks the body it read against it.
#pragma warning disable CA5351 // Not security: the ETag S3 itself computes.
        response.Headers.ETag = "\"" + Convert.ToHexStringLower(MD5.HashData(stored.Body)) + "\"";
#pragma warning restore CA5351
        response.Headers.LastModified = stored.Written.ToString("R", CultureInfo.InvariantCulture);
        response.Headers.AcceptRanges = "bytes";
        await response.Body.WriteAsync(stored.Body, context.RequestAborted);
    }

    private static string Escape(string text) => System.Security.SecurityElement.Escape(text) ?? "";
}
