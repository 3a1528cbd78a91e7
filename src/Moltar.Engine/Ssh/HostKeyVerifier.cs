using Renci.SshNet.Common;

namespace Moltar.Engine.Ssh;

/// <summary>Checks the key a host offers during key exchange against known_hosts, under the host's policy.</summary>
internal sealed class HostKeyVerifier
{
    private readonly SshConnector _connector;
    private readonly SshHostSettings _settings;
    private readonly SshTarget? _target;
    private readonly string _role;

    public HostKeyVerifier(SshConnector connector, SshHostSettings settings, SshTarget? target, string role)
    {
        _connector = connector;
        _settings = settings;
        _target = target;
        _role = role;
    }

    /// <summary>Why the key was refused; null when trusted (or not checked yet).</summary>
    public SshFailure? Failure { get; private set; }

    /// <summary>The fingerprint the host offered, once it has.</summary>
    public string? OfferedFingerprint { get; private set; }

    public void Handle(object? sender, HostKeyEventArgs e)
    {
        try
        {
            e.CanTrust = Verify(e.HostKey);
        }
        catch (Exception ex)
        {
            Failure = new SshFailure(SshErrorIds.ConnectFailed, $"The host key of {Name} could not be checked: {ex.Message}", _settings.HostName, ex);
            e.CanTrust = false;
        }
    }

    private string Name => KnownHosts.LookupName(_settings.HostName, _settings.Port);

    internal bool Verify(byte[] blob)
    {
        var keyType = SshKeyBlob.KeyType(blob);
        var offered = $"{SshKeyBlob.ShortTypeName(keyType)} {SshKeyBlob.Fingerprint(blob)}";
        OfferedFingerprint = SshKeyBlob.Fingerprint(blob);

        var files = _settings.AllKnownHostsFiles.ToList();
        var check = _connector.KnownHosts.Check(files, _settings.HostName, _settings.Port, blob);
        if (_settings.StrictHostKeyChecking == StrictHostKeyChecking.No)
        {
            _connector.LogOnce("strict-no", SshLogLevel.Warning,
                "StrictHostKeyChecking is no: host keys are not checked, so a machine in the middle would not be noticed.", null);
            // As OpenSSH: a key marked @revoked is refused under every policy, "no" included.
            if (check.Status != HostKeyStatus.Revoked)
            {
                return true;
            }
        }
        if (check.HasCertAuthority)
        {
            _connector.LogOnce("ca:" + Name, SshLogLevel.Verbose,
                $"known_hosts has @cert-authority lines for {Name}; Moltar ignores them and checks plain host keys only.", _target);
        }

        switch (check.Status)
        {
            case HostKeyStatus.Trusted:
                return true;
            case HostKeyStatus.Revoked:
                Failure = new SshFailure(SshErrorIds.HostKeyRevoked,
                    $"The {_role} {Name} offered host key {offered}, which is marked @revoked in {check.Match!.Location}.", _settings.HostName);
                return false;
            case HostKeyStatus.Changed:
                Failure = Mismatch(check, keyType, offered);
                return false;
        }

        // Unknown host.
        if (_settings.StrictHostKeyChecking == StrictHostKeyChecking.AcceptNew)
        {
            if (_settings.UserKnownHostsFiles.Count == 0)
            {
                Failure = new SshFailure(SshErrorIds.HostKeyUnknown,
                    $"The {_role} {Name} is not in known_hosts ({offered}) and there is no user known_hosts file to add it to (UserKnownHostsFile none).", _settings.HostName);
                return false;
            }

            var path = _settings.UserKnownHostsFiles[0];
            var added = _connector.KnownHosts.AddIfUnknown(path, _settings.HostName, _settings.Port, blob, _settings.HashKnownHosts, out var wrote);
            switch (added.Status)
            {
                case HostKeyStatus.Trusted:
                    if (wrote)
                    {
                        _connector.Log(SshLogLevel.Verbose, $"Added {Name} ({offered}) to {path}.", _target);
                    }

                    return true;
                case HostKeyStatus.Revoked:
                    Failure = new SshFailure(SshErrorIds.HostKeyRevoked,
                        $"The {_role} {Name} offered host key {offered}, which is marked @revoked in {added.Match!.Location}.", _settings.HostName);
                    return false;
                default:
                    Failure = Mismatch(added, keyType, offered);
                    return false;
            }
        }

        Failure = new SshFailure(SshErrorIds.HostKeyUnknown,
            $"The {_role} {Name} is not in known_hosts (it offered {offered}) and StrictHostKeyChecking is yes. " +
            $"Add its key to {string.Join(" or ", _settings.UserKnownHostsFiles.Take(1).DefaultIfEmpty("known_hosts"))} (ssh-keyscan, or connect once with ssh), " +
            "or use StrictHostKeyChecking accept-new.", _settings.HostName);
        return false;
    }

    private SshFailure Mismatch(HostKeyCheck check, string offeredType, string offered)
    {
        var sameType = check.KnownForHost.Where(k => k.KeyType == offeredType).ToList();
        var expected = (sameType.Count > 0 ? sameType : check.KnownForHost)
            .Select(k => $"{SshKeyBlob.ShortTypeName(k.KeyType)} {k.Fingerprint} ({k.Location})");
        var kind = sameType.Count > 0 ? "has CHANGED" : "is of a type not known for this host";
        return new SshFailure(SshErrorIds.HostKeyMismatch,
            $"The host key of the {_role} {Name} {kind}: expected {string.Join(", ", expected)}, the host offered {offered}. " +
            $"Someone could be in the middle, or the host was rebuilt; if the change is expected, remove the old key (ssh-keygen -R \"{Name}\") and connect again.",
            _settings.HostName);
    }
}
