namespace Moltar;

/// <summary>What a deploy did on one instance.</summary>
public sealed class MoltarDeployResult
{
    public string InstanceId { get; init; } = "";
    public string? Name { get; init; }
    public string? Address { get; init; }
    /// <summary>Name, else the instance id, else the address; control characters shown as '?'.</summary>
    public string DisplayName => HostLabel.Of(Name, InstanceId, Address);
    /// <summary>The packages deployed, in the order given.</summary>
    public string[] Packages { get; init; } = Array.Empty<string>();
    /// <summary>The pinned version (-Version), or null when apt's candidate was installed.</summary>
    public string? Version { get; init; }
    /// <summary>Installed versions before the deploy, by package; a package that was not installed is absent.</summary>
    public IReadOnlyDictionary<string, string> PreviousVersions { get; init; } = new Dictionary<string, string>();
    /// <summary>Installed (configured) versions after the deploy, as dpkg reports them, by package.</summary>
    public IReadOnlyDictionary<string, string> InstalledVersions { get; init; } = new Dictionary<string, string>();
    public bool Succeeded { get; init; }
    /// <summary>Succeeded, Failed, or NotStarted (skipped after -MaxFailures was exceeded).</summary>
    public DeployStatus Status { get; init; }
    /// <summary>Null on success; DeployFailed, VerifyFailed, NotStarted, or the SSH error id (ConnectFailed, ...).</summary>
    public string? ErrorId { get; init; }
    /// <summary>The batch the instance was in, from 1.</summary>
    public int Batch { get; init; }
    /// <summary>Every command run ("$ ...") and what it printed.</summary>
    public string Output { get; init; } = "";
    /// <summary>True when a step printed more than the bytes kept per step (1 MiB per stream); Output marks where.</summary>
    public bool Truncated { get; init; }
    /// <summary>Why the instance failed (and the failing command's standard error); empty on success.</summary>
    public string Error { get; init; } = "";
    public DateTimeOffset StartTime { get; init; }
    public TimeSpan Duration { get; init; }

    public override string ToString() =>
        $"{HostLabel.Of(Name, InstanceId, Address)}: {(Succeeded ? string.Join(", ", InstalledVersions.Select(v => $"{v.Key}={v.Value}")) : ErrorId ?? Status.ToString())}";
}
