using System.Collections.Concurrent;

namespace Moltar.Engine.Ssh;

/// <summary>
/// The keys one call offers, as ssh offers them: agent keys (asked once per agent), key files (each read once) and
/// user certificates (CertificateFile, &lt;key&gt;-cert.pub), in ssh's order for a host's settings. The key files given
/// explicitly are checked when the call starts (KeyFileInvalid), the others are skipped with a note when unusable.
/// Thread-safe.
/// </summary>
internal sealed class SshIdentitySource
{
    private readonly SshOptions _options;
    private readonly SshLog _log;
    private readonly ConcurrentDictionary<string, Lazy<KeyFile?>> _keyFiles = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<UserCertificate?>> _certificates = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<AgentKeys>> _agents = new(StringComparer.Ordinal);
    private int _lookups;

    /// <summary>Loads the explicitly given key files (SshFailure KeyFileInvalid if one is missing, or encrypted with no passphrase and not in the agent).</summary>
    public SshIdentitySource(SshOptions options, string home, SshLog log)
    {
        _options = options;
        _log = log;
        foreach (var path in options.KeyFiles)
        {
            var full = SshPaths.ExpandTilde(path, home);
            if (!File.Exists(full))
            {
                throw new SshFailure(SshErrorIds.KeyFileInvalid, $"Key file {full} does not exist.");
            }

            var key = KeyFile.Open(full, options.Passphrase);
            var agentPath = options.UseAgent ? options.AgentPath ?? SshAgentClient.DefaultPath() : null;
            var inAgent = agentPath is not null && Agent(agentPath).Identities.Any(i => i.PublicKeyBlob.AsSpan().SequenceEqual(key.PublicBlob));
            if (!inAgent)
            {
                if (key.IsEncrypted && string.IsNullOrEmpty(options.Passphrase))
                {
                    throw new SshFailure(SshErrorIds.KeyFileInvalid, $"Key file {full} is encrypted; give its passphrase (or add it to ssh-agent).");
                }

                key.EnsureLoaded();
            }

            _keyFiles[full] = new Lazy<KeyFile?>(key);
        }
    }

    /// <summary>
    /// The keys offered to a host, in order: agent keys also named as key files, other agent keys (unless
    /// IdentitiesOnly), then key files; each certificate just before the key it certifies.
    /// </summary>
    public IReadOnlyList<SshIdentity> For(SshHostSettings settings)
    {
        Interlocked.Increment(ref _lookups);
        var agent = settings.IdentityAgent is null ? null : Agent(settings.IdentityAgent);
        var agentIds = agent?.Identities ?? Array.Empty<SshIdentity>();
        var files = settings.IdentityFiles.Select(p => FileKey(p, settings.IdentityFilesAreDefaults)).OfType<KeyFile>().ToList();

        bool InFiles(SshIdentity a) => files.Any(f => f.PublicBlob.AsSpan().SequenceEqual(a.CertifiedKeyBlob));
        bool InAgent(KeyFile f) => agentIds.Any(a => a.PublicKeyBlob.AsSpan().SequenceEqual(f.PublicBlob));

        var result = new List<SshIdentity>();
        result.AddRange(agentIds.Where(InFiles));
        if (!settings.IdentitiesOnly)
        {
            result.AddRange(agentIds.Where(a => !InFiles(a)));
        }

        foreach (var file in files.Where(f => !InAgent(f)))
        {
            if (file.IsEncrypted && string.IsNullOrEmpty(_options.Passphrase) && !file.IsLoaded)
            {
                _log.Once("encrypted:" + file.Path, SshLogLevel.Verbose, $"Key file {file.Path} is encrypted and no passphrase was given; skipped.");
                continue;
            }

            if (result.Any(r => r.PublicKeyBlob.AsSpan().SequenceEqual(file.PublicBlob)))
            {
                continue;
            }

            result.Add(new SshIdentity("file", file.PublicBlob, file.Path, null, file.Algorithms, file.CertificateAlgorithms));
        }

        return WithCertificates(result, settings);
    }

    /// <summary>How many times the keys were worked out for a host (tests: once per target and connection).</summary>
    internal int Lookups => Volatile.Read(ref _lookups);

    /// <summary>
    /// User certificates, as ssh loads them: CertificateFile (ssh config) and &lt;key&gt;-cert.pub beside each key
    /// file; each is offered just before the key it certifies (from a file or the agent), signed by that key.
    /// </summary>
    private List<SshIdentity> WithCertificates(List<SshIdentity> identities, SshHostSettings settings)
    {
        var paths = settings.CertificateFiles.Concat(settings.IdentityFiles.Select(p => p + "-cert.pub")).Distinct(StringComparer.Ordinal);
        var certificates = paths.Select(p => CertificateFile(p, explicitly: settings.CertificateFiles.Contains(p))).OfType<UserCertificate>().ToList();
        if (certificates.Count == 0)
        {
            return identities;
        }

        var result = new List<SshIdentity>();
        foreach (var identity in identities)
        {
            if (identity.CanSignForCertificate)
            {
                foreach (var certificate in certificates.Where(c => c.Key.AsSpan().SequenceEqual(identity.PublicKeyBlob)))
                {
                    if (!result.Any(r => r.PublicKeyBlob.AsSpan().SequenceEqual(certificate.Blob)))
                    {
                        result.Add(identity.ForCertificate(certificate.Blob, certificate.Path));
                    }
                }
            }

            result.Add(identity);
        }

        foreach (var unused in certificates.Where(c => !identities.Any(i => i.PublicKeyBlob.AsSpan().SequenceEqual(c.Key))))
        {
            _log.Once("cert-nokey:" + unused.Path, SshLogLevel.Verbose, $"Certificate {unused.Path}: neither a key file nor the agent holds its key; not offered.");
        }

        return result;
    }

    private sealed record UserCertificate(string Path, byte[] Blob, byte[] Key);

    private UserCertificate? CertificateFile(string path, bool explicitly) => _certificates.GetOrAdd(path, p => new Lazy<UserCertificate?>(() =>
    {
        if (!File.Exists(p))
        {
            if (explicitly)
            {
                _log.Write(SshLogLevel.Verbose, $"Certificate file {p} (ssh config CertificateFile) does not exist; skipped.");
            }

            return null;
        }

        try
        {
            var fields = File.ReadAllText(p).Trim().Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries);
            var blob = fields.Length >= 2 ? Convert.FromBase64String(fields[1]) : null;
            var key = blob is null ? null : SshKeyBlob.CertifiedKey(blob);
            if (key is null)
            {
                _log.Write(SshLogLevel.Verbose, $"Certificate file {p} is not an OpenSSH user certificate Moltar reads; skipped.");
                return null;
            }

            return new UserCertificate(p, blob!, key);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            _log.Write(SshLogLevel.Verbose, $"Certificate file {p} could not be read: {e.Message}; skipped.");
            return null;
        }
    })).Value;

    private KeyFile? FileKey(string path, bool isDefault) => _keyFiles.GetOrAdd(path, p => new Lazy<KeyFile?>(() =>
    {
        if (!File.Exists(p))
        {
            if (!isDefault)
            {
                _log.Write(SshLogLevel.Verbose, $"Key file {p} (ssh config IdentityFile) does not exist; skipped.");
            }

            return null;
        }

        try
        {
            return KeyFile.Open(p, _options.Passphrase);
        }
        catch (SshFailure e)
        {
            _log.Write(SshLogLevel.Verbose, e.Message + " Skipped.");
            return null;
        }
    })).Value;

    private AgentKeys Agent(string path) => _agents.GetOrAdd(path, p => new Lazy<AgentKeys>(() =>
    {
        var client = new SshAgentClient(p);
        try
        {
            // Keys and the certificates the agent holds with them (ssh-add adds key-cert.pub beside a key).
            static bool Usable(string type) => type is "ssh-ed25519" or "ssh-rsa" || type.StartsWith("ecdsa-sha2-", StringComparison.Ordinal);
            static string Plain(string type) => SshKeyBlob.IsCertificate(type) ? type.Substring(0, type.Length - "-cert-v01@openssh.com".Length) : type;
            var ids = client.ListIdentities()
                .Where(i => Usable(Plain(SshKeyBlob.KeyType(i.PublicKeyBlob))) && (!SshKeyBlob.IsCertificate(i.KeyType) || SshKeyBlob.CertifiedKey(i.PublicKeyBlob) is not null))
                .Select(i => new SshIdentity("agent", i.PublicKeyBlob, null, i.Comment,
                    () => SshKeyBlob.AlgorithmsForKeyType(i.KeyType).Where(n => n is not "ssh-rsa" and not "ssh-rsa-cert-v01@openssh.com")
                        .Select(n => (Renci.SshNet.Security.HostAlgorithm)new AgentHostAlgorithm(n, i, client)).ToList(),
                    SshKeyBlob.IsCertificate(i.KeyType) ? null
                        : certificate => SshKeyBlob.AlgorithmsForKeyType(SshKeyBlob.KeyType(certificate)).Where(n => n != "ssh-rsa-cert-v01@openssh.com")
                            .Select(n => (Renci.SshNet.Security.HostAlgorithm)new AgentHostAlgorithm(n, i, client, certificate)).ToList()))
                .ToList();
            _log.Write(SshLogLevel.Verbose, $"ssh-agent at {p} holds {ids.Count} usable key(s).");
            return new AgentKeys(ids);
        }
        catch (SshAgentException e)
        {
            _log.Write(SshLogLevel.Verbose, $"ssh-agent not used: {e.Message}");
            return new AgentKeys(Array.Empty<SshIdentity>());
        }
    })).Value;

    private sealed record AgentKeys(IReadOnlyList<SshIdentity> Identities);
}
