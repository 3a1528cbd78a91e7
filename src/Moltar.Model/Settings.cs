namespace Moltar;

/// <summary>Which of an instance's addresses SSH connects to.</summary>
public enum AddressType
{
    /// <summary>The public IP address when the instance has one, else the private one.</summary>
    Auto,
    Public,
    Private,
}

/// <summary>OpenSSH's StrictHostKeyChecking policies (ask is treated as Yes: nobody is there to answer).</summary>
public enum StrictHostKeyChecking
{
    /// <summary>Unknown hosts are refused (HostKeyUnknown); changed keys are refused (HostKeyMismatch).</summary>
    Yes,
    /// <summary>Unknown hosts are added to the user's known_hosts; changed keys are refused.</summary>
    AcceptNew,
    /// <summary>Host keys are not checked at all (a warning says so).</summary>
    No,
}

/// <summary>Where a setting's value came from, in the order they win: a parameter over the environment over the project file over the default.</summary>
public enum SettingSource
{
    /// <summary>A cmdlet parameter.</summary>
    Parameter,
    /// <summary>An environment variable (MoltarSetting.SourceDetail names it).</summary>
    Environment,
    /// <summary>The project file (MoltarSetting.SourceDetail has its path, and .moltar-packages' when that was read too).</summary>
    ProjectFile,
    /// <summary>Moltar's default.</summary>
    Default,
}

/// <summary>How a deploy ended on one instance.</summary>
public enum DeployStatus
{
    Succeeded,
    Failed,
    /// <summary>Skipped after an earlier batch had more failures than -MaxFailures allows.</summary>
    NotStarted,
}

/// <summary>How commands reach the instances.</summary>
public enum Transport
{
    /// <summary>Moltar's own SSH fan-out from this machine.</summary>
    Ssh,
    /// <summary>Systems Manager Run Command: the SSM agent on each instance pulls the command.</summary>
    Ssm,
}
