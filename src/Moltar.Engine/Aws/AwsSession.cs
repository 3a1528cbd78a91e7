using Amazon;
using Amazon.EC2;
using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Moltar.Engine.Context;

namespace Moltar.Engine.Aws;

/// <summary>Credentials set for the session by another tool (AWS.Tools' $StoredAWSCredentials), and how to name them.</summary>
public sealed class StoredCredentials
{
    private StoredCredentials(AWSCredentials credentials, string source)
    {
        Credentials = credentials;
        Source = source;
    }

    internal AWSCredentials Credentials { get; }
    public string Source { get; }

    /// <summary>Wraps another SDK copy's credentials object (anything with GetCredentials()); null when it has none.</summary>
    public static StoredCredentials? TryCreate(object credentials, string source) =>
        ForeignCredentials.TryWrap(credentials) is { } wrapped ? new StoredCredentials(wrapped, source) : null;
}

/// <summary>Explicit credentials given as parameters (-AccessKey/-SecretKey/-SessionToken).</summary>
public sealed record ExplicitCredentials(string AccessKey, string SecretKey, string? SessionToken)
{
    /// <summary>A record prints every property; the secret key and the session token must never be printed.</summary>
    public override string ToString() =>
        $"ExplicitCredentials {{ AccessKey = {AccessKey}, SecretKey = ***, SessionToken = {(SessionToken is null ? "" : "***")} }}";
}

/// <summary>
/// The account and region a call runs against: credentials resolved the way AWS tooling resolves them,
/// with the project's profile in front of the default, and never a silent fall-through to another account.
/// </summary>
public sealed class AwsSession
{
    public AWSCredentials Credentials { get; }
    public RegionEndpoint Region { get; }
    public string RegionName => Region.SystemName;
    public string? EndpointUrl { get; }
    /// <summary>
    /// Where Systems Manager is called: the SDK's own service endpoint settings, AWS_ENDPOINT_URL_SSM then AWS_ENDPOINT_URL
    /// (-EndpointUrl names the EC2 endpoint only: one URL rarely serves both services); null = the region's endpoint.
    /// </summary>
    public string? SsmEndpointUrl { get; private init; }
    /// <summary>Where S3 is called (the output bucket of -Transport Ssm): AWS_ENDPOINT_URL_S3 then AWS_ENDPOINT_URL; null = the region's endpoint.</summary>
    public string? S3EndpointUrl { get; private init; }
    /// <summary>Where the credentials came from, for -Verbose and error messages (never the secret itself).</summary>
    public string CredentialSource { get; }
    public string RegionSource { get; }

    private AwsSession(AWSCredentials credentials, string credentialSource, RegionEndpoint region, string regionSource, string? endpointUrl)
    {
        Credentials = credentials;
        CredentialSource = credentialSource;
        Region = region;
        RegionSource = regionSource;
        EndpointUrl = endpointUrl;
    }

    /// <param name="mfaCode">Asked for an MFA code (argument: the MFA device serial); null when nobody can answer.</param>
    /// <param name="stored">AWS.Tools' session defaults ($StoredAWSCredentials / $StoredAWSRegion), honoured after Moltar's explicit sources.</param>
    public static AwsSession Create(MoltarContext context, ExplicitCredentials? explicitCredentials,
                                    Func<string, string?>? environment = null, Func<string, string>? mfaCode = null,
                                    StoredCredentials? stored = null, string? storedRegion = null)
    {
        environment ??= System.Environment.GetEnvironmentVariable;
        var store = new CredentialProfileStoreChain(context.ProfileLocation);
        var (credentials, credentialSource, profile) = ResolveCredentials(context, explicitCredentials, environment, store, stored);

        if (credentials is AssumeRoleAWSCredentials assumeRole && !string.IsNullOrEmpty(assumeRole.Options?.MfaSerialNumber))
        {
            string serial = assumeRole.Options.MfaSerialNumber;
            assumeRole.Options.MfaTokenCodeCallback = mfaCode is null
                ? () => throw new MoltarException("MfaRequired", FailureCategory.AuthenticationError,
                    $"The profile '{profile?.Name}' assumes a role that needs an MFA code ({serial}), and this session cannot ask for one. " +
                    "Run the command interactively once, or use credentials that need no MFA for scheduled tasks.")
                : () => mfaCode(serial);
        }

        var (region, regionSource) = ResolveRegion(context, environment, profile, storedRegion);
        string? endpoint = context.EndpointUrl
            ?? NonEmpty(environment("AWS_ENDPOINT_URL_EC2"))
            ?? NonEmpty(environment("AWS_ENDPOINT_URL"));
        return new AwsSession(credentials, credentialSource, region, regionSource, endpoint)
        {
            SsmEndpointUrl = NonEmpty(environment("AWS_ENDPOINT_URL_SSM")) ?? NonEmpty(environment("AWS_ENDPOINT_URL")),
            S3EndpointUrl = NonEmpty(environment("AWS_ENDPOINT_URL_S3")) ?? NonEmpty(environment("AWS_ENDPOINT_URL")),
        };
    }

    /// <summary>Obtains the credentials now (SSO, assume-role, MFA prompt), so failures surface before any request.</summary>
    public void EnsureCredentials()
    {
        try
        {
            Credentials.GetCredentials();
        }
        catch (Exception e) when (e is AmazonClientException or AmazonServiceException)
        {
            // The SDK wraps what our own callbacks throw (MfaRequired); that one says best what to do.
            for (var inner = e.InnerException; inner is not null; inner = inner.InnerException)
            {
                if (inner is MoltarException own)
                    throw own;
            }
            throw new MoltarException("CredentialsUnavailable", FailureCategory.AuthenticationError,
                $"AWS credentials from {CredentialSource} could not be obtained: {e.Message}", e);
        }
    }

    public AmazonEC2Client CreateEc2Client()
    {
        var config = new AmazonEC2Config { RegionEndpoint = Region };
        if (EndpointUrl is not null)
        {
            config.ServiceURL = EndpointUrl;
            config.AuthenticationRegion = Region.SystemName;
        }
        return new AmazonEC2Client(Credentials, config);
    }

    public Amazon.SimpleSystemsManagement.AmazonSimpleSystemsManagementClient CreateSsmClient()
    {
        var config = new Amazon.SimpleSystemsManagement.AmazonSimpleSystemsManagementConfig { RegionEndpoint = Region };
        if (SsmEndpointUrl is not null)
        {
            config.ServiceURL = SsmEndpointUrl;
            config.AuthenticationRegion = Region.SystemName;
        }
        return new Amazon.SimpleSystemsManagement.AmazonSimpleSystemsManagementClient(Credentials, config);
    }

    /// <summary>
    /// An S3 client of the session. With an endpoint URL (an S3-compatible store, the sandbox) requests are path-style
    /// (ENDPOINT/BUCKET/KEY): such stores rarely serve a bucket as a host name.
    /// </summary>
    public Amazon.S3.AmazonS3Client CreateS3Client()
    {
        var config = new Amazon.S3.AmazonS3Config { RegionEndpoint = Region };
        if (S3EndpointUrl is not null)
        {
            config.ServiceURL = S3EndpointUrl;
            config.AuthenticationRegion = Region.SystemName;
            config.ForcePathStyle = true;
        }
        return new Amazon.S3.AmazonS3Client(Credentials, config);
    }

    private static (AWSCredentials, string, CredentialProfile?) ResolveCredentials(
        MoltarContext context, ExplicitCredentials? explicitCredentials, Func<string, string?> environment, CredentialProfileStoreChain store,
        StoredCredentials? storedCredentials)
    {
        if (explicitCredentials is not null)
        {
            AWSCredentials keys = string.IsNullOrEmpty(explicitCredentials.SessionToken)
                ? new BasicAWSCredentials(explicitCredentials.AccessKey, explicitCredentials.SecretKey)
                : new SessionAWSCredentials(explicitCredentials.AccessKey, explicitCredentials.SecretKey, explicitCredentials.SessionToken);
            return (keys, "Parameter -AccessKey", null);
        }

        var profileSetting = context.Settings.FirstOrDefault(s => s.Name == "ProfileName");
        if (context.ProfileName is not null && profileSetting?.Source == SettingSource.Parameter)
            return FromProfile(store, context, new[] { context.ProfileName }, $"profile '{context.ProfileName}' (Parameter)");

        // AWS.Tools' session default (Set-AWSCredential) comes after the call's own parameters, as in AWS.Tools cmdlets.
        if (storedCredentials is not null)
            return (storedCredentials.Credentials, storedCredentials.Source, null);

        if (context.ProfileName is not null)
            return FromProfile(store, context, new[] { context.ProfileName }, $"profile '{context.ProfileName}' ({profileSetting?.SourceText})");

        string? accessKey = NonEmpty(environment("AWS_ACCESS_KEY_ID"));
        string? secretKey = NonEmpty(environment("AWS_SECRET_ACCESS_KEY"));
        if (accessKey is not null && secretKey is not null)
        {
            string? token = NonEmpty(environment("AWS_SESSION_TOKEN"));
            AWSCredentials keys = token is null
                ? new BasicAWSCredentials(accessKey, secretKey)
                : new SessionAWSCredentials(accessKey, secretKey, token);
            return (keys, "Environment AWS_ACCESS_KEY_ID", null);
        }

        string? awsProfile = NonEmpty(environment("AWS_PROFILE"));
        if (awsProfile is not null)
            return FromProfile(store, context, new[] { awsProfile }, $"profile '{awsProfile}' (Environment AWS_PROFILE)");

        // What was looked at, for the error when nothing gives credentials.
        var tried = new List<string> { "-AccessKey and -ProfileName (not given)", "AWS_ACCESS_KEY_ID and AWS_PROFILE (not set)" };
        if (!string.IsNullOrWhiteSpace(context.Project))
        {
            var names = ProfileCandidates(context.Project!);
            if (names.Any(n => store.TryGetProfile(n, out _)))
                return FromProfile(store, context, names, $"the profile of project '{context.Project}'");
            tried.Add($"the profile of project '{context.Project}' ('{string.Join("', '", names)}': not in {ProfileFiles(context)})");
        }
        else if (store.TryGetProfile("default", out var fallback))
        {
            return (fallback.GetAWSCredentials(store), "profile 'default'", fallback);
        }
        else
        {
            tried.Add($"no project, so the 'default' profile (not in {ProfileFiles(context)})");
        }

        // The credentials the machine was given (never the 'default' profile: with a project, that may be another client's account).
        if (RoleCredentials.Find(environment, tried) is { } role)
            return (role.Credentials, role.Source, null);

        string triedText = string.Join("; ", tried);
        if (!string.IsNullOrWhiteSpace(context.Project))
        {
            var names = ProfileCandidates(context.Project!);
            throw new MoltarException("ProfileNotFound", FailureCategory.ObjectNotFound,
                $"No AWS profile named '{string.Join("', '", names)}' for the profile of project '{context.Project}' was found in {ProfileFiles(context)}, " +
                $"and this machine gives no role credentials. Tried: {triedText}. " +
                $"Add the profile (aws configure --profile {names[names.Count > 1 ? 1 : 0]}), or name another with -ProfileName or MOLTAR_PROFILE.");
        }
        throw new MoltarException("CredentialsNotFound", FailureCategory.AuthenticationError,
            $"No AWS credentials were found. Tried: {triedText}. Run 'aws configure', give -ProfileName, or run where a role gives credentials.");
    }

    /// <summary>A project name picks its profile: as written, then lower-case with '-' or '_' for spaces.</summary>
    public static IReadOnlyList<string> ProfileCandidates(string project)
    {
        string lower = project.Trim().ToLowerInvariant();
        return new[] { project.Trim(), lower.Replace(' ', '-'), lower.Replace(' ', '_') }.Distinct().ToArray();
    }

    private static (AWSCredentials, string, CredentialProfile) FromProfile(
        CredentialProfileStoreChain store, MoltarContext context, IReadOnlyList<string> names, string description)
    {
        foreach (var name in names)
        {
            if (!store.TryGetProfile(name, out var profile))
                continue;
            try
            {
                return (profile.GetAWSCredentials(store), $"profile '{profile.Name}'", profile);
            }
            catch (Exception e) when (e is not MoltarException)
            {
                throw new MoltarException("ProfileInvalid", FailureCategory.InvalidData,
                    $"The AWS profile '{profile.Name}' in {ProfileFiles(context)} cannot give credentials: {e.Message}", e);
            }
        }
        string tried = string.Join("', '", names);
        throw new MoltarException("ProfileNotFound", FailureCategory.ObjectNotFound,
            $"No AWS profile named '{tried}' for {description} was found in {ProfileFiles(context)}. " +
            $"Add it (aws configure --profile {names[names.Count > 1 ? 1 : 0]}), or name another with -ProfileName or MOLTAR_PROFILE.");
    }

    private static (RegionEndpoint, string) ResolveRegion(MoltarContext context, Func<string, string?> environment, CredentialProfile? profile,
                                                          string? storedRegion)
    {
        var setting = context.Settings.FirstOrDefault(s => s.Name == "Region");
        bool explicitRegion = setting?.Source is SettingSource.Parameter or SettingSource.Environment;
        if (setting?.Source == SettingSource.Parameter)
            return (RegionEndpoint.GetBySystemName(context.Region!), setting.SourceText);
        // AWS.Tools' session default (Set-DefaultAWSRegion) after the call's own -Region, as in AWS.Tools cmdlets.
        if (NonEmpty(storedRegion) is { } stored)
            return (RegionEndpoint.GetBySystemName(stored), "$StoredAWSRegion (Set-DefaultAWSRegion)");
        if (explicitRegion)
            return (RegionEndpoint.GetBySystemName(context.Region!), setting!.SourceText);
        foreach (var variable in new[] { "AWS_REGION", "AWS_DEFAULT_REGION" })
        {
            string? value = NonEmpty(environment(variable));
            if (value is not null)
                return (RegionEndpoint.GetBySystemName(value), $"Environment {variable}");
        }
        if (context.Region is not null)
            return (RegionEndpoint.GetBySystemName(context.Region), setting!.SourceText);
        if (profile?.Region is not null)
            return (profile.Region, $"profile '{profile.Name}'");
        // Last: the region of the EC2 instance this runs on (the SDK reads its identity document over IMDSv2).
        if (RoleCredentials.InstanceRegion(environment) is { } instanceRegion)
            return (instanceRegion, $"the EC2 instance's region (instance metadata at {RoleCredentials.MetadataEndpoint(environment)})");
        throw new MoltarException("RegionNotFound", FailureCategory.InvalidArgument,
            "No AWS region is set. Give -Region, set AWS_REGION (or MOLTAR_REGION), put Region = 'eu-west-1' in .moltar.psd1, " +
            $"or add region = ... to the profile in {ProfileFiles(context)}" +
            (RoleCredentials.MetadataDisabled(environment) ? "." : "; the EC2 instance metadata gave none."));
    }

    private static string ProfileFiles(MoltarContext context)
    {
        if (context.ProfileLocation is not null)
            return context.ProfileLocation;
        string home = System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile);
        string credentials = NonEmpty(System.Environment.GetEnvironmentVariable("AWS_SHARED_CREDENTIALS_FILE")) ?? Path.Combine(home, ".aws", "credentials");
        string config = NonEmpty(System.Environment.GetEnvironmentVariable("AWS_CONFIG_FILE")) ?? Path.Combine(home, ".aws", "config");
        return $"{credentials} and {config}";
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
