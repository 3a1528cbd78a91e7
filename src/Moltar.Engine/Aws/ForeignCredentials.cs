using System.Reflection;
using Amazon.Runtime;

namespace Moltar.Engine.Aws;

/// <summary>
/// Credentials held by another copy of the AWS SDK (AWS.Tools' AWSSDK.Core, in another load context): asked for
/// fresh keys on every use through its own GetCredentials(), so whatever refreshing it does still happens. Read by
/// member name (AccessKey, SecretKey, Token), since its types are not ours.
/// </summary>
public sealed class ForeignCredentials : AWSCredentials
{
    private readonly object _credentials;
    private readonly MethodInfo _getCredentials;

    private ForeignCredentials(object credentials, MethodInfo getCredentials)
    {
        _credentials = credentials;
        _getCredentials = getCredentials;
    }

    /// <summary>A wrapper when the object has a public GetCredentials() (any copy of AWSCredentials has); else null.</summary>
    public static AWSCredentials? TryWrap(object credentials)
    {
        if (credentials is AWSCredentials ours)
            return ours;
        var method = credentials.GetType().GetMethod("GetCredentials", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes);
        return method is null ? null : new ForeignCredentials(credentials, method);
    }

    public override ImmutableCredentials GetCredentials()
    {
        object? keys;
        try
        {
            keys = _getCredentials.Invoke(_credentials, null);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new AmazonClientException($"$StoredAWSCredentials could not give credentials: {e.InnerException.Message}", e.InnerException);
        }
        string? Read(string name) => keys?.GetType().GetProperty(name)?.GetValue(keys) as string;
        string? accessKey = Read("AccessKey"), secretKey = Read("SecretKey");
        if (string.IsNullOrEmpty(accessKey) || string.IsNullOrEmpty(secretKey))
            throw new AmazonClientException("$StoredAWSCredentials gave no access key and secret key.");
        return new ImmutableCredentials(accessKey, secretKey, Read("Token"));
    }

    public override Task<ImmutableCredentials> GetCredentialsAsync() => Task.FromResult(GetCredentials());
}
