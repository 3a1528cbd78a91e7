using Moltar.Engine.Aws;
using Xunit;

namespace Moltar.Engine.Tests.Aws;

/// <summary>Which credential and region source wins, with an environment of our own and profile files in a scratch folder.</summary>
public sealed class AwsSessionOrderTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("moltar-session-17-").FullName;
    private readonly string _credentials;

    public AwsSessionOrderTests()
    {
        _credentials = Path.Combine(_folder, "credentials");
        File.WriteAllText(_credentials,
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\n[named]\naws_access_key_id = AKIANAMED\naws_secret_access_key = n\n");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Another SDK copy's credentials object, as AWS.Tools holds it: only GetCredentials() and its result's members.</summary>
    private sealed class OtherSdkCredentials
    {
        public object GetCredentials() => new { AccessKey = "AKIASTORED", SecretKey = "stored-secret", Token = "stored-token" };
    }

    private static Func<string, string?> Environment(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value ?? (name == "AWS_EC2_METADATA_DISABLED" ? "true" : null);

    private MoltarContext Context(string? project = null, string? profile = null, SettingSource profileSource = SettingSource.Parameter, string? region = "us-east-1") => new()
    {
        Project = project,
        ProfileName = profile,
        ProfileLocation = _credentials,
        Region = region,
        Settings = new[]
        {
            new MoltarSetting { Name = "ProfileName", Value = profile, Source = profileSource, SourceDetail = profileSource == SettingSource.Environment ? "MOLTAR_PROFILE" : null },
            new MoltarSetting { Name = "Region", Value = region, Source = SettingSource.Parameter },
        }.Where(s => s.Value is not null).ToList(),
    };

    [Fact]
    public void Stored_credentials_come_after_the_calls_own_profile_parameter_and_before_environment_keys()
    {
        var stored = StoredCredentials.TryCreate(new OtherSdkCredentials(), "$StoredAWSCredentials (Set-AWSCredential)");
        Assert.NotNull(stored);
        var env = Environment(("AWS_ACCESS_KEY_ID", "AKIAENV"), ("AWS_SECRET_ACCESS_KEY", "e"));

        var byParameter = AwsSession.Create(Context(profile: "named"), null, env, stored: stored);
        Assert.Equal("AKIANAMED", byParameter.Credentials.GetCredentials().AccessKey);

        var byStored = AwsSession.Create(Context(profile: "named", profileSource: SettingSource.Environment), null, env, stored: stored);
        Assert.Equal("$StoredAWSCredentials (Set-AWSCredential)", byStored.CredentialSource);
        var keys = byStored.Credentials.GetCredentials();
        Assert.Equal(("AKIASTORED", "stored-secret", "stored-token"), (keys.AccessKey, keys.SecretKey, keys.Token));
    }

    [Fact]
    public void An_object_without_GetCredentials_is_not_taken_as_stored_credentials() =>
        Assert.Null(StoredCredentials.TryCreate(new object(), "x"));

    [Fact]
    public void A_project_whose_profile_is_missing_never_falls_back_to_the_default_profile_and_the_error_lists_what_was_tried()
    {
        var error = Assert.Throws<MoltarException>(() => AwsSession.Create(Context(project: "Acme Shop"), null, Environment()));
        Assert.Equal("ProfileNotFound", error.ErrorId);
        Assert.DoesNotContain("AKIADEFAULT", error.Message);
        foreach (var tried in new[] { "'Acme Shop', 'acme-shop', 'acme_shop'", "web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN not set)",
                                      "container credentials (", "the EC2 instance profile (AWS_EC2_METADATA_DISABLED is true)" })
            Assert.Contains(tried, error.Message);
    }

    [Fact]
    public void Without_a_project_the_default_profile_is_used_before_any_role()
    {
        var session = AwsSession.Create(Context(), null, Environment(("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds")));
        Assert.Equal("profile 'default'", session.CredentialSource);
    }

    [Fact]
    public void Only_one_of_the_web_identity_variables_says_which_one_is_missing()
    {
        var error = Assert.Throws<MoltarException>(() =>
            AwsSession.Create(Context(project: "nothing-here"), null, Environment(("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci"))));
        Assert.Contains("web identity (only AWS_ROLE_ARN is set; it needs both)", error.Message);
    }

    [Fact]
    public void The_stored_region_comes_after_the_region_parameter_and_before_AWS_REGION()
    {
        var env = Environment(("AWS_REGION", "ap-south-1"));
        Assert.Equal("us-east-1", AwsSession.Create(Context(profile: "named"), null, env, storedRegion: "eu-central-1").RegionName);
        var noParameter = Context(profile: "named", region: null);
        var session = AwsSession.Create(noParameter, null, env, storedRegion: "eu-central-1");
        Assert.Equal(("eu-central-1", "$StoredAWSRegion (Set-DefaultAWSRegion)"), (session.RegionName, session.RegionSource));
        Assert.Equal("Environment AWS_REGION", AwsSession.Create(noParameter, null, env).RegionSource);
    }
}
