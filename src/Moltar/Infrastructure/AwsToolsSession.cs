using System.Management.Automation;
using Moltar.Engine.Aws;

namespace Moltar.Infrastructure;

/// <summary>
/// AWS.Tools' session defaults: Set-AWSCredential leaves $StoredAWSCredentials (an AWSPSCredentials with the SDK
/// credentials in .Credentials and the profile in .Name) and Set-DefaultAWSRegion leaves $StoredAWSRegion. AWS.Tools
/// loads its own AWSSDK.Core, in another load context, so its objects are read by member name, never by type.
/// </summary>
internal static class AwsToolsSession
{
    public static StoredCredentials? StoredCredentials(object? variable)
    {
        if (variable is null)
            return null;
        var stored = PSObject.AsPSObject(variable);
        // AWSPSCredentials wraps the SDK credentials; a bare AWSCredentials object is taken too.
        object? credentials = stored.Properties["Credentials"]?.Value is { } inner ? PSObject.AsPSObject(inner).BaseObject : stored.BaseObject;
        if (credentials is null || credentials is string || credentials is PSCustomObject)
            return null;
        string? name = stored.Properties["Name"]?.Value as string;
        return Engine.Aws.StoredCredentials.TryCreate(credentials,
            "$StoredAWSCredentials (Set-AWSCredential" + (string.IsNullOrEmpty(name) ? ")" : $", profile '{name}')"));
    }

    public static string? StoredRegion(object? variable) =>
        variable is null ? null : PSObject.AsPSObject(variable).BaseObject?.ToString() is { Length: > 0 } region ? region.Trim() : null;
}
