namespace Moltar.Sandbox.Hosts;

/// <summary>One host to start: its name (also its hostname), loopback address and sshd port.</summary>
public sealed record HostRequest(string Name, string Address, int Port = 22);

/// <summary>
/// How the fleet runs. <paramref name="OwnRoot"/>: each host gets its own root filesystem (an overlay
/// of / in its own mount, UTS and PID namespaces); needs root. Otherwise hosts share the machine's
/// filesystem and the login user is the current user. <paramref name="AptRepository"/>: a flat APT
/// repository bind-mounted read-only at /srv/apt in own-root hosts, the hosts' only APT source.
/// </summary>
public sealed record FleetOptions(string StateDirectory, bool OwnRoot = true, string? AptRepository = null, string User = "ubuntu");

/// <summary>
/// A host of the fleet. <paramref name="Pid"/> is the process to signal (own root: the unshare
/// process that holds the host's namespaces; shared root: sshd); 0 while the host is stopped.
/// <paramref name="HostPublicKey"/> is "ssh-ed25519 AAAA..." and <paramref name="HostKeyFingerprint"/>
/// "SHA256:..." as OpenSSH prints it.
/// </summary>
public sealed record RunningHost(string Name, string Address, int Port, int Pid, string HostPublicKey, string HostKeyFingerprint);

/// <summary>A host did not come up: names the host and carries the tail of its log.</summary>
public sealed class HostStartException : Exception
{
    public HostStartException(string hostName, string message, string logTail, Exception? inner = null)
        : base(message + (logTail.Length > 0 ? Environment.NewLine + logTail : ""), inner)
    {
        HostName = hostName;
        LogTail = logTail;
    }

    public string HostName { get; }
    public string LogTail { get; }
}
