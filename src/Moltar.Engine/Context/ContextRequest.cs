namespace Moltar.Engine.Context;

/// <summary>What the caller said explicitly (cmdlet parameters); null means "not given".</summary>
public sealed record ContextRequest
{
    public string? Project { get; init; }
    public string? ProfileName { get; init; }
    public string? ProfileLocation { get; init; }
    public string? Region { get; init; }
    public string? EndpointUrl { get; init; }
    public string[]? Packages { get; init; }
    public string? User { get; init; }
    public int? Port { get; init; }
    public AddressType? AddressType { get; init; }
    public string? JumpHost { get; init; }
    public int? ThrottleLimit { get; init; }
    public string? KeyFile { get; init; }
    public string? KnownHostsPath { get; init; }
    public StrictHostKeyChecking? StrictHostKeyChecking { get; init; }
    public int? ConnectionIdleSeconds { get; init; }
    /// <summary>Ssh or Ssm: how commands reach the instances.</summary>
    public Transport? Transport { get; init; }
    /// <summary>Where to start looking for the project file.</summary>
    public string WorkingDirectory { get; init; } = System.Environment.CurrentDirectory;
}
