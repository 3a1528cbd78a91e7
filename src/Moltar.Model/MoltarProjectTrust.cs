namespace Moltar;

/// <summary>A trust record Approve-MoltarProject wrote: the project folder and the hash of its Moltar files.</summary>
public sealed class MoltarProjectTrust
{
    public string Directory { get; init; } = "";
    /// <summary>The project file, dotfiles and hooks the hash covers.</summary>
    public string[] Files { get; init; } = Array.Empty<string>();
    public string ContentHash { get; init; } = "";
    /// <summary>The settings only a trusted project file may give (EndpointUrl, User, KeyFile...) that this one gives.</summary>
    public string[] TrustedSettings { get; init; } = Array.Empty<string>();
    public string TrustFile { get; init; } = "";
}
