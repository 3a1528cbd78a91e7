using Amazon;
using Amazon.Runtime;
using Amazon.Util;

namespace Moltar.Engine.Aws;

/// <summary>
/// The credentials a machine was given rather than a person: web identity (a CI runner's OIDC token, through STS),
/// container credentials (an ECS task role, CodeBuild) and the EC2 instance profile (IMDSv2 only). Each comes from the
/// AWS SDK's own provider, which also refreshes them before they expire; nothing here fetches credentials by hand.
/// </summary>
internal static class RoleCredentials
{
    public const string WebIdentityTokenFile = "AWS_WEB_IDENTITY_TOKEN_FILE";
    public const string RoleArn = "AWS_ROLE_ARN";
    public const string ContainerRelativeUri = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    public const string ContainerFullUri = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    public const string MetadataDisabledVariable = "AWS_EC2_METADATA_DISABLED";

    /// <summary>
    /// The first source this machine offers, in the SDK's order (web identity, container, instance profile); null when
    /// none does. What was looked at and why it gave nothing is added to <paramref name="tried"/>.
    /// </summary>
    public static (AWSCredentials Credentials, string Source)? Find(Func<string, string?> environment, List<string> tried)
    {
        string? tokenFile = NonEmpty(environment(WebIdentityTokenFile));
        string? roleArn = NonEmpty(environment(RoleArn));
        if (tokenFile is not null && roleArn is not null)
        {
            try
            {
                return (AssumeRoleWithWebIdentityCredentials.FromEnvironmentVariables(), $"web identity ({WebIdentityTokenFile} {tokenFile}, role {roleArn})");
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or AmazonClientException)
            {
                throw new MoltarException("RoleCredentialsInvalid", FailureCategory.InvalidData,
                    $"Web identity credentials ({WebIdentityTokenFile} {tokenFile}, {RoleArn} {roleArn}) cannot be used: {e.Message}", e);
            }
        }
        tried.Add(tokenFile is null && roleArn is null
            ? $"web identity ({WebIdentityTokenFile} and {RoleArn} not set)"
            : $"web identity (only {(tokenFile is null ? RoleArn : WebIdentityTokenFile)} is set; it needs both)");

        string? relative = NonEmpty(environment(ContainerRelativeUri));
        string? full = NonEmpty(environment(ContainerFullUri));
        if (relative is not null || full is not null)
        {
            try
            {
                return (new GenericContainerCredentials(), $"container credentials ({(relative is not null ? ContainerRelativeUri : $"{ContainerFullUri} {full}")})");
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or AmazonClientException)
            {
                throw new MoltarException("RoleCredentialsInvalid", FailureCategory.InvalidData,
                    $"Container credentials ({(relative is not null ? $"{ContainerRelativeUri} {relative}" : $"{ContainerFullUri} {full}")}) cannot be used: {e.Message}", e);
            }
        }
        tried.Add($"container credentials ({ContainerRelativeUri} and {ContainerFullUri} not set)");

        if (MetadataDisabled(environment))
        {
            tried.Add($"the EC2 instance profile ({MetadataDisabledVariable} is true)");
            return null;
        }
        string endpoint = MetadataEndpoint(environment);
        try
        {
            EC2InstanceMetadata.FetchApiToken();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The SDK fails fast ("rejected") when the service answers the token PUT with 403, 404 or 405: a metadata
            // service without IMDSv2. Its unauthenticated IMDSv1 reads are never used.
            if (e.Message.Contains("rejected", StringComparison.OrdinalIgnoreCase))
            {
                throw new MoltarException("InstanceMetadataV1Only", FailureCategory.SecurityError,
                    $"The EC2 instance metadata service at {endpoint} refused to give an IMDSv2 session token, and Moltar never uses IMDSv1 " +
                    "(unauthenticated reads any process or forwarded request could make). Require IMDSv2 on the instance " +
                    "(aws ec2 modify-instance-metadata-options --http-tokens required --http-endpoint enabled), or give credentials another way " +
                    "(-ProfileName, AWS_ACCESS_KEY_ID).", e);
            }
            tried.Add($"the EC2 instance profile (no instance metadata service answered at {endpoint}; set {MetadataDisabledVariable}=true off EC2 to skip it)");
            return null;
        }
        try
        {
            var credentials = new InstanceProfileAWSCredentials();
            return (credentials, $"the EC2 instance profile (role {credentials.Role}, IMDSv2 at {endpoint})");
        }
        catch (Exception e) when (e is AmazonClientException or AmazonServiceException or InvalidOperationException)
        {
            tried.Add($"the EC2 instance profile (the instance metadata at {endpoint} lists no role: {e.Message})");
            return null;
        }
    }

    /// <summary>The region of the EC2 instance this runs on (its identity document, read by the SDK over IMDSv2); null off EC2.</summary>
    public static RegionEndpoint? InstanceRegion(Func<string, string?> environment)
    {
        if (MetadataDisabled(environment))
            return null;
        try
        {
            return new InstanceProfileAWSRegion().Region;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return null;
        }
    }

    public static bool MetadataDisabled(Func<string, string?> environment) =>
        string.Equals(NonEmpty(environment(MetadataDisabledVariable)), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Where the SDK reaches the instance metadata service (AWS_EC2_METADATA_SERVICE_ENDPOINT, else 169.254.169.254).</summary>
    public static string MetadataEndpoint(Func<string, string?> environment) =>
        NonEmpty(environment("AWS_EC2_METADATA_SERVICE_ENDPOINT")) ?? EC2InstanceMetadata.ServiceEndpoint ?? "http://169.254.169.254";

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
