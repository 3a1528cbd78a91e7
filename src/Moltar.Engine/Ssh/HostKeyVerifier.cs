using Renci.SshNet.Common;
using Renci.SshNet.Security;

namespace Moltar.Engine.Ssh;

/// <summary>Checks the key a host offers during key exchange against known_hosts, under the host's policy.</summary>
internal sealed class HostKeyVerifier
{
    private readonly KnownHosts _knownHosts;
    private readonly SshLog _log;
    private readonly SshHostSettings _settings;
    private readonly SshTarget? _target;
    private readonly string _role;

    public HostKeyVerifier(KnownHosts knownHosts, SshLog log, SshHostSettings settings, SshTarget? target, string role)
    {
        _knownHosts = knownHosts;
        _log = log;
        _settings = settings;
        _target = target;
        _role = role;
    }

    /// <summary>Why the key was refused; null when trusted (or not checked yet).</summary>
    public SshFailure? Failure { get; private set; }

    /// <summary>Whether SSH.NET asked (it does not when it refuses a host certificate itself).</summary>
    public bool Called { get; private set; }

    /// <summary>The fingerprint the host offered, once it has.</summary>
    public string? OfferedFingerprint { get; private set; }

    /// <summary>
    /// The host certificate the host presented, recorded as SSH.NET parses it (before SSH.NET checks its validity
    /// window and CA signature, and ends the key exchange without asking when they fail).
    /// </summary>
    public Certificate? Presented { get; private set; }

    /// <summary>The presented certificate's wire blob (the known_hosts form of a certificate).</summary>
    private byte[]? _presentedBlob;

    public void RecordPresented(Certificate certificate, byte[] blob)
    {
        Presented = certificate;
        _presentedBlob = blob;
    }

    /// <summary>
    /// Set on the second attempt after SSH.NET refused the host's certificate: why it was not accepted. The plain key
    /// the host then presents is checked as ssh checks it after dropping a certificate.
    /// </summary>
    public string? RefusedCertificateProblem { get; init; }

    /// <summary>
    /// ssh's default CASignatureAlgorithms: a certificate signed otherwise (ssh-rsa, i.e. SHA-1) is not accepted and
    /// ssh checks the plain key instead.
    /// </summary>
    internal static readonly IReadOnlySet<string> CaSignatureAlgorithms = new HashSet<string>(StringComparer.Ordinal)
    {
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "rsa-sha2-512", "rsa-sha2-256",
    };

    public void Handle(object? sender, HostKeyEventArgs e)
    {
        Called = true;
        try
        {
            e.CanTrust = e.Certificate is { } certificate ? VerifyCertificate(certificate, e.HostKey, e.HostKeyName)
                : RefusedCertificateProblem is { } problem ? VerifyPlainKeyInstead(problem, e.HostKey)
                : Verify(e.HostKey);
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
        var check = _knownHosts.Check(files, _settings.HostName, _settings.Port, blob);
        if (_settings.StrictHostKeyChecking == StrictHostKeyChecking.No)
        {
            _log.Once("strict-no", SshLogLevel.Warning,
                "StrictHostKeyChecking is no: host keys are not checked, so a machine in the middle would not be noticed.", null);
            // As OpenSSH: a key marked @revoked is refused under every policy, "no" included.
            if (check.Status != HostKeyStatus.Revoked)
            {
                return true;
            }
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
            var added = _knownHosts.AddIfUnknown(path, _settings.HostName, _settings.Port, blob, _settings.HashKnownHosts, out var wrote);
            switch (added.Status)
            {
                case HostKeyStatus.Trusted:
                    if (wrote)
                    {
                        _log.Write(SshLogLevel.Verbose, $"Added {Name} ({offered}) to {path}.", _target);
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

    /// <summary>
    /// A host certificate (SSH.NET has checked its validity window and its CA's signature): trusted when a
    /// @cert-authority line for the host names its CA, it is a host certificate, the host name is among its
    /// principals (none = any, as ssh), it is within its validity window and its CA signed it with an algorithm ssh
    /// accepts; refused when its CA or its key is @revoked. Otherwise, as ssh does, the certificate is dropped and its
    /// plain key is checked against known_hosts under the policy.
    /// </summary>
    internal bool VerifyCertificate(Certificate certificate, byte[] plainKey, string algorithm)
    {
        var entries = _knownHosts.EntriesOf(_settings.AllKnownHostsFiles);
        var ca = certificate.CertificateAuthorityKey;
        var caText = CaText(certificate);
        OfferedFingerprint = SshKeyBlob.Fingerprint(plainKey);
        if (RevokedFailure(certificate, plainKey) is { } revoked)
        {
            Failure = revoked;
            return false;
        }

        var authority = entries.FirstOrDefault(x => x.Marker == KnownHostMarker.CertAuthority && x.MatchesHost(Name) && x.KeyBlob.AsSpan().SequenceEqual(ca));
        var signedWith = SignatureAlgorithm(certificate);
        string problem;
        if (authority is null)
        {
            problem = $"no @cert-authority line for {Name} trusts its CA {caText}";
        }
        else if (certificate.Type != Certificate.CertificateType.Host)
        {
            problem = "it is a user certificate, not a host certificate";
        }
        else if (certificate.ValidPrincipals.Count > 0 && !certificate.ValidPrincipals.Contains(_settings.HostName.ToLowerInvariant(), StringComparer.Ordinal))
        {
            problem = $"it is for {string.Join(", ", certificate.ValidPrincipals.Select(p => HostLabel.Of(p, null)))}, not {_settings.HostName}";
        }
        else if (WindowProblem(certificate) is { } window)
        {
            problem = window;
        }
        else if (!CaSignatureAlgorithms.Contains(signedWith))
        {
            problem = $"its CA signed it with {HostLabel.Of(signedWith, null)}, which ssh does not accept for certificates (CASignatureAlgorithms)";
        }
        else
        {
            _log.Write(SshLogLevel.Verbose,
                $"The {_role} {Name} presented a host certificate ({algorithm}, key id '{HostLabel.Of(certificate.KeyId, null)}') signed by {caText}, trusted by {authority.Location}.", _target);
            return true;
        }

        return VerifyPlainKeyInstead(problem, plainKey);
    }

    /// <summary>
    /// SSH.NET ended the key exchange over the certificate <see cref="Presented"/> (outside its validity window, or a
    /// signature it refused) without asking. As ssh: a certificate whose CA or key is @revoked is refused; one that is
    /// expired, not yet valid or signed with an algorithm ssh refuses is dropped and the host's plain key decides
    /// (the caller connects again without certificate host-key algorithms, with <see cref="RefusedCertificateProblem"/>
    /// set); one within its window with an accepted algorithm failed its CA signature, which ssh refuses outright.
    /// </summary>
    internal (SshFailure? Refused, string? RetryProblem) RefusedBySshNet()
    {
        if (Presented is not { } certificate || _presentedBlob is null)
        {
            return (null, null);
        }

        var plainKey = SshKeyBlob.CertifiedKey(_presentedBlob);
        if (plainKey is not null && RevokedFailure(certificate, plainKey) is { } revoked)
        {
            return (revoked, null);
        }

        if (WindowProblem(certificate) is { } window)
        {
            return (null, window);
        }

        var signedWith = SignatureAlgorithm(certificate);
        if (!CaSignatureAlgorithms.Contains(signedWith))
        {
            return (null, $"its CA signed it with {HostLabel.Of(signedWith, null)}, which ssh does not accept for certificates (CASignatureAlgorithms)");
        }

        return (new SshFailure(SshErrorIds.HostKeyUnknown,
            $"The {_role} {Name} presented a host certificate whose signature by its CA {CaText(certificate)} is not valid; ssh refuses such a host too.",
            _settings.HostName), null);
    }

    /// <summary>As ssh after dropping a certificate it does not accept: the plain key is checked under the policy.</summary>
    private bool VerifyPlainKeyInstead(string problem, byte[] plainKey)
    {
        _log.Write(SshLogLevel.Verbose, $"The host certificate of {Name} is not accepted: {problem}; checking its plain key, as ssh does.", _target);
        var trusted = Verify(plainKey);
        if (!trusted && Failure is { ErrorId: SshErrorIds.HostKeyUnknown })
        {
            Failure = new SshFailure(SshErrorIds.HostKeyUnknown,
                $"The {_role} {Name} presented a host certificate that is not accepted ({problem}), and its plain key ({SshKeyBlob.Fingerprint(plainKey)}) is not in known_hosts" +
                (_settings.StrictHostKeyChecking == StrictHostKeyChecking.Yes ? " (StrictHostKeyChecking yes)." : "."),
                _settings.HostName);
        }

        return trusted;
    }

    private SshFailure? RevokedFailure(Certificate certificate, byte[] plainKey)
    {
        var ca = certificate.CertificateAuthorityKey;
        var revoked = _knownHosts.EntriesOf(_settings.AllKnownHostsFiles).FirstOrDefault(x => x.Marker == KnownHostMarker.Revoked && x.MatchesHost(Name)
            && (x.KeyBlob.AsSpan().SequenceEqual(ca) || x.KeyBlob.AsSpan().SequenceEqual(plainKey)));
        if (revoked is null)
        {
            return null;
        }

        var what = revoked.KeyBlob.AsSpan().SequenceEqual(ca) ? $"its certificate authority {CaText(certificate)}" : $"its key {SshKeyBlob.Fingerprint(plainKey)}";
        return new SshFailure(SshErrorIds.HostKeyRevoked,
            $"The {_role} {Name} presented a host certificate, and {what} is marked @revoked in {revoked.Location}.", _settings.HostName);
    }

    private static string CaText(Certificate certificate) =>
        $"{SshKeyBlob.ShortTypeName(SshKeyBlob.KeyType(certificate.CertificateAuthorityKey))} {SshKeyBlob.Fingerprint(certificate.CertificateAuthorityKey)}";

    private static string? WindowProblem(Certificate certificate)
    {
        var now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        return now < certificate.ValidAfterUnixSeconds ? $"it is not valid before {certificate.ValidAfter:u}"
            : now >= certificate.ValidBeforeUnixSeconds ? $"it expired at {certificate.ValidBefore:u}"
            : null;
    }

    /// <summary>The algorithm of the CA's signature (the signature blob starts with its name).</summary>
    private static string SignatureAlgorithm(Certificate certificate)
    {
        try
        {
            return System.Text.Encoding.ASCII.GetString(new SshReader(certificate.Signature).ReadString());
        }
        catch (FormatException)
        {
            return "(unreadable)";
        }
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
