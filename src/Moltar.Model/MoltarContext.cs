namespace Moltar;

/// <summary>One resolved setting and where its value came from.</summary>
public sealed class MoltarSetting
{
    public string Name { get; init; } = "";
    public object? Value { get; init; }
    public SettingSource Source { get; init; }
    /// <summary>The environment variable (Environment) or the project file's path (ProjectFile); null otherwise.</summary>
    public string? SourceDetail { get; init; }
    /// <summary>Source and detail as one reads them: "Parameter", "Environment MOLTAR_REGION", "ProjectFile /repo/.moltar.psd1".</summary>
    public string SourceText => SourceDetail is null ? Source.ToString() : $"{Source} {SourceDetail}";

    public override string ToString() => $"{Name}={Value} ({SourceText})";
}

/// <summary>The project, account, region, tag names and SSH defaults a call runs with.</summary>
public sealed class MoltarContext
{
    public string? Project { get; init; }
    public string? ProfileName { get; init; }
    public string? ProfileLocation { get; init; }
    /// <summary>The region from Moltar's own settings; Get-MoltarContext fills it in from the AWS session when they name none.</summary>
    public string? Region { get; set; }
    public string? EndpointUrl { get; init; }
    public string[] Packages { get; init; } = Array.Empty<string>();
    public string? User { get; init; }
    public int? Port { get; init; }
    public AddressType AddressType { get; init; } = AddressType.Auto;
    public string? JumpHost { get; init; }
    public int ThrottleLimit { get; init; } = 32;
    public string? KeyFile { get; init; }
    public string? KnownHostsPath { get; init; }
    public StrictHostKeyChecking StrictHostKeyChecking { get; init; } = StrictHostKeyChecking.AcceptNew;
    /// <summary>How long a call's SSH connections stay open for the next call; 0 closes them when the call ends.</summary>
    public int ConnectionIdleSeconds { get; init; } = DefaultConnectionIdleSeconds;
    /// <summary>The default idle time of kept connections (seconds).</summary>
    public const int DefaultConnectionIdleSeconds = 60;
    /// <summary>How commands reach the instances: Ssh (Moltar's own fan-out) or Ssm (Systems Manager Run Command).</summary>
    public Transport Transport { get; init; } = Transport.Ssh;
    public IReadOnlyDictionary<string, string> TagNames { get; init; } = new Dictionary<string, string>();
    /// <summary>The project file that was read, if any.</summary>
    public string? ProjectFile { get; init; }
    public string? ProjectDirectory { get; init; }
    /// <summary>Trusted, NotTrusted or ChangedSinceTrusted (Approve-MoltarProject trusts); null without a project file.</summary>
    public string? ProjectTrust { get; init; }
    /// <summary>Project file settings left out because the file is not trusted (EndpointUrl, User, KeyFile...).</summary>
    public string[] IgnoredProjectSettings { get; init; } = Array.Empty<string>();
    /// <summary>What the caller should warn about once (ignored settings, a project file in a folder someone else can write).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();
    public IReadOnlyList<MoltarSetting> Settings { get; init; } = Array.Empty<MoltarSetting>();
    /// <summary>Where the AWS credentials come from (Get-MoltarContext): a profile, the environment, a role the machine was given...</summary>
    public string? CredentialSource { get; set; }
    /// <summary>Where the AWS region comes from (Get-MoltarContext).</summary>
    public string? RegionSource { get; set; }

    /// <summary>The tag key that plays a role (Project, Environment, Cluster, Name, Packages) in this account.</summary>
    public string TagName(string role) => TagNames.TryGetValue(role, out var name) ? name : role;
}
