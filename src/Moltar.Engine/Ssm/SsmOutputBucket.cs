using System.Text;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Amazon.SimpleSystemsManagement.Model;

namespace Moltar.Engine.Ssm;

/// <summary>An invocation's two streams as Moltar reports them, which of them is not whole, and why (when a bucket was read).</summary>
public sealed record SsmStreams(string Stdout, string Stderr, bool StdoutTruncated, bool StderrTruncated, string? Problem = null)
{
    public bool Truncated => StdoutTruncated || StderrTruncated;

    /// <summary>The streams as GetCommandInvocation returned them (truncated when a stream reached the service's limit).</summary>
    public static SsmStreams Of(GetCommandInvocationResponse detail)
    {
        string stdout = detail.StandardOutputContent ?? "";
        string stderr = detail.StandardErrorContent ?? "";
        return new SsmStreams(stdout, stderr, IsCut(stdout), IsCut(stderr));
    }

    internal static bool IsCut(string stream) => stream.Length >= SsmCommandPoller.ServiceOutputLimit;
}

/// <summary>
/// The S3 output bucket of a Run Command (SendCommand's OutputS3BucketName / OutputS3KeyPrefix): the SSM agent writes
/// each non-empty stream whole to PREFIX/COMMAND-ID/INSTANCE-ID/awsrunShellScript/0.awsrunShellScript/stdout (and
/// stderr). A stream Systems Manager cut at 24,000 characters is read back from there, at most
/// <see cref="MaxBytes"/> bytes of it (remote output is bounded as over SSH); a stream it returned whole is not read.
/// </summary>
public sealed class SsmOutputBucket : IDisposable
{
    private readonly IAmazonS3 _s3;

    /// <summary>The bucket a request names (OutputS3BucketName, OutputS3KeyPrefix, MaxOutputBytes), read with <paramref name="s3"/>; null when it names none.</summary>
    public static SsmOutputBucket? For(IAmazonS3? s3, SsmCommandRequest request) =>
        s3 is null || string.IsNullOrEmpty(request.OutputS3BucketName) ? null
            : new SsmOutputBucket(s3, request.OutputS3BucketName, request.OutputS3KeyPrefix, request.MaxOutputBytes);

    public SsmOutputBucket(IAmazonS3 s3, string bucketName, string? keyPrefix, long maxBytes)
    {
        _s3 = s3;
        BucketName = bucketName;
        KeyPrefix = string.IsNullOrEmpty(keyPrefix) ? null : keyPrefix;
        MaxBytes = Math.Min(maxBytes, Array.MaxLength); // what one string can hold
    }

    public string BucketName { get; }
    public string? KeyPrefix { get; }
    public long MaxBytes { get; }

    /// <summary>The object the agent writes a stream ("stdout", "stderr") of one invocation to.</summary>
    public static string KeyOf(string? keyPrefix, string commandId, string instanceId, string stream) =>
        (string.IsNullOrEmpty(keyPrefix) ? "" : keyPrefix.TrimEnd('/') + "/") +
        $"{commandId}/{instanceId}/awsrunShellScript/0.awsrunShellScript/{stream}";

    /// <summary>
    /// The invocation's streams, each one the service truncated replaced by the whole stream from the bucket. When a
    /// stream cannot be read, the service's 24,000 characters stay, Truncated stays set and Problem says why
    /// (prefixed with the stable id <see cref="SsmErrorIds.OutputUnreadable"/>); a stream longer than MaxBytes is
    /// kept to MaxBytes, Truncated and said in Problem too.
    /// </summary>
    public async Task<SsmStreams> ReadAsync(GetCommandInvocationResponse detail, CancellationToken ct)
    {
        var service = SsmStreams.Of(detail);
        if (!service.Truncated)
            return service;
        var problems = new List<string>();
        var capped = new List<string>();
        var truncated = new HashSet<string>(StringComparer.Ordinal);
        async Task<string> Whole(string returned, string stream)
        {
            if (!SsmStreams.IsCut(returned))
                return returned;
            truncated.Add(stream); // until read whole
            string key = KeyOf(KeyPrefix, detail.CommandId, detail.InstanceId, stream);
            try
            {
                var (text, cut, total) = await GetAsync(key, ct).ConfigureAwait(false);
                if (!cut)
                    truncated.Remove(stream);
                else
                {
                    capped.Add($"kept the first {MaxBytes} bytes of {total} bytes of {stream} read from s3://{BucketName}/{key} (-MaxOutputBytes)");
                }
                return text;
            }
            catch (AmazonS3Exception e)
            {
                problems.Add($"{stream} could not be read from s3://{BucketName}/{key} ({e.ErrorCode ?? $"HTTP {(int)e.StatusCode}"}: {e.Message}); " +
                             $"the result holds the first {SsmCommandPoller.ServiceOutputLimit} characters Systems Manager returned");
                return returned;
            }
            // The credentials (an expired SSO session, a role that cannot be assumed) or the network: this stream only.
            catch (Exception e) when (e is AmazonServiceException or AmazonClientException or HttpRequestException or IOException)
            {
                problems.Add($"{stream} could not be read from s3://{BucketName}/{key} ({e.Message}); " +
                             $"the result holds the first {SsmCommandPoller.ServiceOutputLimit} characters Systems Manager returned");
                return returned;
            }
        }
        string stdout = await Whole(service.Stdout, "stdout").ConfigureAwait(false);
        string stderr = await Whole(service.Stderr, "stderr").ConfigureAwait(false);
        // A stream that could not be read is the warning with the stable id; one cut by -MaxOutputBytes is the user's choice, said as over SSH.
        string? problem = problems.Count > 0 ? $"{SsmErrorIds.OutputUnreadable}: {detail.InstanceId}: {string.Join("; ", problems.Concat(capped))}."
            : capped.Count > 0 ? $"{detail.InstanceId}: {string.Join("; ", capped)}."
            : null;
        return new SsmStreams(stdout, stderr, truncated.Contains("stdout"), truncated.Contains("stderr"), problem);
    }

    /// <summary>At most MaxBytes of the object (stops reading there), whether it was longer, and its length.</summary>
    private async Task<(string Text, bool Cut, long Total)> GetAsync(string key, CancellationToken ct)
    {
        using var response = await _s3.GetObjectAsync(new GetObjectRequest { BucketName = BucketName, Key = key }, ct).ConfigureAwait(false);
        using var kept = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while (kept.Length < MaxBytes && (read = await response.ResponseStream.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
            kept.Write(chunk, 0, (int)Math.Min(read, MaxBytes - kept.Length));
        long total = Math.Max(response.ContentLength, kept.Length);
        return (Encoding.UTF8.GetString(kept.GetBuffer(), 0, (int)kept.Length), total > kept.Length, total);
    }

    public void Dispose() => _s3.Dispose();
}
