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

/// <summary>
/// A host did not come up: names the host and carries the tail of its log. When several hosts failed,
/// <see cref="HostName"/> and <see cref="LogTail"/> are the first one's and <see cref="Failures"/> lists them all.
/// <paramref name="retryable"/> is false when a second try cannot help (the address is taken).
/// </summary>
public sealed class HostStartException : Exception
{
    public HostStartException(string hostName, string message, string logTail, Exception? inner = null, bool retryable = true)
        : base(message + (logTail.Length > 0 ? Environment.NewLine + logTail : ""), inner)
    {
        HostName = hostName;
        LogTail = logTail;
        Retryable = retryable;
        Failures = [this];
    }

    private HostStartException(string message, IReadOnlyList<HostStartException> failures)
        : base(message, failures[0])
    {
        HostName = failures[0].HostName;
        LogTail = failures[0].LogTail;
        Failures = failures;
    }

    public string HostName { get; }
    public string LogTail { get; }
    public bool Retryable { get; }

    /// <summary>Every host that failed (this one alone unless the exception sums up several).</summary>
    public IReadOnlyList<HostStartException> Failures { get; }

    /// <summary>
    /// One exception for several failed hosts: how many failed and which, then each host's reason with the last
    /// lines of its log (the first few in full, so a report stays readable at 180 hosts).
    /// </summary>
    public static HostStartException Combine(IReadOnlyList<HostStartException> failures, int started)
    {
        ArgumentOutOfRangeException.ThrowIfZero(failures.Count);
        if (failures.Count == 1) return failures[0];
        const int detailed = 3;
        var text = new System.Text.StringBuilder();
        text.Append(System.Globalization.CultureInfo.InvariantCulture,
            $"{failures.Count} of {started} sandbox hosts failed to start: {string.Join(", ", failures.Select(f => f.HostName))}.");
        foreach (var failure in failures.Take(detailed))
        {
            text.Append(Environment.NewLine).Append(Environment.NewLine).Append(failure.Message);
        }
        if (failures.Count > detailed)
        {
            text.Append(Environment.NewLine).Append(Environment.NewLine).Append("The others:");
            foreach (var failure in failures.Skip(detailed))
                text.Append(Environment.NewLine).Append(failure.Message.Split(Environment.NewLine)[0]);
        }
        return new HostStartException(text.ToString(), failures);
    }
}

/// <summary>
/// How a fleet's start went: <paramref name="Total"/> from the call to the last banner, of which
/// <paramref name="SharedLayer"/> went to the client key and the layer every host shares;
/// <paramref name="Concurrency"/> hosts were starting at once; the median and slowest time from one host's launch
/// to its banner; the hosts that came up only on their second try.
/// </summary>
public sealed record FleetStartup(
    int Hosts, TimeSpan Total, TimeSpan SharedLayer, int Concurrency, TimeSpan MedianHost, TimeSpan SlowestHost, IReadOnlyList<string> Retried)
{
    public override string ToString()
    {
        var retried = Retried.Count > 0 ? "; up on the second try: " + string.Join(", ", Retried) : "";
        return FormattableString.Invariant(
            $"{Hosts} hosts ready in {Total.TotalSeconds:0.0} s (shared layer {SharedLayer.TotalSeconds:0.0} s; {Concurrency} starting at once; per host median {MedianHost.TotalMilliseconds:0} ms, slowest {SlowestHost.TotalMilliseconds:0} ms{retried})");
    }
}
