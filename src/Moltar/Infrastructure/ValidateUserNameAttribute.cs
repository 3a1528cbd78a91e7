using System.Management.Automation;
using Moltar.Engine.Ssh;

namespace Moltar.Infrastructure;

/// <summary>
/// -User must be a plain login name: it reaches the system ssh's command line as user@host (a leading '-' would be
/// an ssh option) and, through jump hosts, a ProxyCommand run by /bin/sh.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class ValidateUserNameAttribute : ValidateArgumentsAttribute
{
    protected override void Validate(object arguments, EngineIntrinsics engineIntrinsics)
    {
        var user = arguments?.ToString();
        if (!SshNames.IsValidUser(user))
            throw new ValidationMetadataException($"'{user}' is not {SshNames.UserRule}. Nothing was run.");
    }
}
