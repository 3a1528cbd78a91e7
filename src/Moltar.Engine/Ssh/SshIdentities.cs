using Renci.SshNet;
using Renci.SshNet.Common;
using Renci.SshNet.Security;

namespace Moltar.Engine.Ssh;

/// <summary>A key Moltar can offer: from the agent or a key file. Describes itself by fingerprint and path only.</summary>
public sealed class SshIdentity
{
    private readonly Func<IReadOnlyList<HostAlgorithm>> _algorithms;
    private readonly Func<byte[], IReadOnlyList<HostAlgorithm>>? _certificateAlgorithms;

    internal SshIdentity(string source, byte[] publicKeyBlob, string? filePath, string? comment, Func<IReadOnlyList<HostAlgorithm>> algorithms,
        Func<byte[], IReadOnlyList<HostAlgorithm>>? certificateAlgorithms = null)
    {
        Source = source;
        PublicKeyBlob = publicKeyBlob;
        FilePath = filePath;
        Comment = comment;
        _algorithms = algorithms;
        _certificateAlgorithms = certificateAlgorithms;
    }

    /// <summary>The plain key: the certified key for a certificate, else the key itself.</summary>
    public byte[] CertifiedKeyBlob => SshKeyBlob.IsCertificate(KeyType) ? SshKeyBlob.CertifiedKey(PublicKeyBlob) ?? PublicKeyBlob : PublicKeyBlob;

    /// <summary>Whether this key can sign for a certificate of it (a plain key from a file or the agent).</summary>
    internal bool CanSignForCertificate => _certificateAlgorithms is not null;

    /// <summary>The certificate (from a file) offered with this key's signatures.</summary>
    internal SshIdentity ForCertificate(byte[] certificate, string certificatePath) =>
        new(Source, certificate, certificatePath, Comment, () => _certificateAlgorithms!(certificate));

    /// <summary>"agent" or "file".</summary>
    public string Source { get; }
    public string? FilePath { get; }
    public string? Comment { get; }
    public byte[] PublicKeyBlob { get; }
    public string KeyType => SshKeyBlob.KeyType(PublicKeyBlob);
    public string Fingerprint => SshKeyBlob.Fingerprint(PublicKeyBlob);

    /// <summary>How error messages name the key: agent key type + fingerprint (+ comment), or the file.</summary>
    public string Description => Source == "agent"
        ? $"agent {SshKeyBlob.ShortTypeName(KeyType)} {Fingerprint}{(string.IsNullOrEmpty(Comment) ? "" : $" ({Comment})")}"
        : $"{FilePath} ({SshKeyBlob.ShortTypeName(KeyType)} {Fingerprint})";

    internal IReadOnlyList<HostAlgorithm> Algorithms => _algorithms();

    public override string ToString() => Description;
}

/// <summary>Loads private key files once: the public half without a passphrase when possible, the private half on first use.</summary>
internal sealed class KeyFile
{
    private readonly Lazy<PrivateKeyFile> _private;

    private KeyFile(string path, byte[] publicBlob, bool isEncrypted, Lazy<PrivateKeyFile> privateKey)
    {
        Path = path;
        PublicBlob = publicBlob;
        IsEncrypted = isEncrypted;
        _private = privateKey;
    }

    public string Path { get; }
    public byte[] PublicBlob { get; }
    /// <summary>Whether the private half needs a passphrase.</summary>
    public bool IsEncrypted { get; }
    public bool IsLoaded => _private.IsValueCreated;

    /// <summary>Reads a key file. Throws SshFailure(KeyFileInvalid) when it cannot be used.</summary>
    public static KeyFile Open(string path, string? passphrase)
    {
        string text;
        try
        {
            text = Context.BoundedFile.ReadAllText(path, "The key file", 1024 * 1024);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SshFailure(SshErrorIds.KeyFileInvalid, $"Key file {path} could not be read: {e.Message}");
        }

        var blob = ReadPublicBlob(path, text, out var encrypted);
        var lazy = new Lazy<PrivateKeyFile>(() => LoadPrivate(path, text, passphrase, encrypted), LazyThreadSafetyMode.ExecutionAndPublication);
        if (blob is null)
        {
            // No public half readable without decrypting (PEM without .pub): load it now.
            blob = lazy.Value.HostKeyAlgorithms.First().Data;
        }

        return new KeyFile(path, blob, encrypted, lazy);
    }

    /// <summary>Loads the private key now (for explicitly given key files: fail fast on a bad passphrase).</summary>
    public void EnsureLoaded() => _ = _private.Value;

    public IReadOnlyList<HostAlgorithm> Algorithms()
    {
        var keyType = SshKeyBlob.KeyType(PublicBlob);
        return SshKeyBlob.AlgorithmsForKeyType(keyType)
            .Where(name => name != "ssh-rsa") // OpenSSH 8.8+ refuses SHA-1 RSA signatures; offering it wastes a try.
            .Select(name => (HostAlgorithm)new DeferredKeyAlgorithm(name, this))
            .ToList();
    }

    /// <summary>A certificate of this key: the certificate is shown, this key signs (plain signature format, as ssh).</summary>
    public IReadOnlyList<HostAlgorithm> CertificateAlgorithms(byte[] certificate) =>
        SshKeyBlob.AlgorithmsForKeyType(SshKeyBlob.KeyType(certificate))
            .Where(name => name != "ssh-rsa-cert-v01@openssh.com")
            .Select(name => (HostAlgorithm)new DeferredCertificateAlgorithm(name, this, certificate))
            .ToList();

    internal HostAlgorithm Loaded(string name)
    {
        var algorithms = _private.Value.HostKeyAlgorithms;
        return algorithms.FirstOrDefault(a => a.Name == name)
            ?? throw new SshFailure(SshErrorIds.KeyFileInvalid, $"Key file {Path} cannot sign with {name}.");
    }

    private static PrivateKeyFile LoadPrivate(string path, string text, string? passphrase, bool encrypted)
    {
        try
        {
            using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
            return string.IsNullOrEmpty(passphrase) ? new PrivateKeyFile(stream) : new PrivateKeyFile(stream, passphrase);
        }
        catch (SshPassPhraseNullOrEmptyException)
        {
            throw new SshFailure(SshErrorIds.KeyFileInvalid, $"Key file {path} is encrypted; give its passphrase.");
        }
        catch (Exception e) when (e is SshException or FormatException or ArgumentException or NotSupportedException or InvalidOperationException or System.Security.Cryptography.CryptographicException)
        {
            var reason = encrypted || e.Message.Contains("passphrase", StringComparison.OrdinalIgnoreCase) || e is System.Security.Cryptography.CryptographicException
                ? "the passphrase is wrong or the key is damaged"
                : e.Message.TrimEnd('.');
            throw new SshFailure(SshErrorIds.KeyFileInvalid, $"Key file {path} could not be loaded: {reason}.");
        }
    }

    /// <summary>The public key blob from the openssh-key-v1 header (never encrypted) or the .pub file beside it.</summary>
    internal static byte[]? ReadPublicBlob(string path, string text, out bool encrypted)
    {
        encrypted = text.Contains("ENCRYPTED", StringComparison.Ordinal);
        const string begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
        const string end = "-----END OPENSSH PRIVATE KEY-----";
        var b = text.IndexOf(begin, StringComparison.Ordinal);
        var e = text.IndexOf(end, StringComparison.Ordinal);
        if (b >= 0 && e > b)
        {
            try
            {
                var base64 = text.Substring(b + begin.Length, e - b - begin.Length);
                var data = Convert.FromBase64String(string.Concat(base64.Where(c => !char.IsWhiteSpace(c))));
                var magic = "openssh-key-v1\0"u8;
                if (data.AsSpan().StartsWith(magic))
                {
                    var reader = new SshReader(data, magic.Length);
                    encrypted = reader.ReadUtf8() != "none"; // cipher
                    reader.ReadString(); // kdf
                    reader.ReadString(); // kdf options
                    var count = reader.ReadUInt32();
                    if (count >= 1)
                    {
                        return reader.ReadString();
                    }
                }
            }
            catch (FormatException)
            {
                // fall through to the .pub file
            }
        }

        try
        {
            var pub = path + ".pub";
            if (File.Exists(pub))
            {
                var fields = File.ReadAllText(pub).Trim().Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length >= 2)
                {
                    return Convert.FromBase64String(fields[1]);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
        }

        return null;
    }

    /// <summary>A certificate algorithm ("...-cert-v01@openssh.com") signed by the key file's plain algorithm.</summary>
    private sealed class DeferredCertificateAlgorithm(string name, KeyFile file, byte[] certificate) : HostAlgorithm(name)
    {
        private readonly string _signWith = name.Substring(0, name.Length - "-cert-v01@openssh.com".Length);

        public override byte[] Data => certificate;
        public override byte[] Sign(byte[] data) => file.Loaded(_signWith).Sign(data);
        public override bool VerifySignature(byte[] data, byte[] signature) => file.Loaded(_signWith).VerifySignature(data, signature);
    }

    /// <summary>A key-file algorithm whose private key is decrypted only when the server asks for a signature.</summary>
    private sealed class DeferredKeyAlgorithm(string name, KeyFile file) : HostAlgorithm(name)
    {
        public override byte[] Data => file.PublicBlob;

        public override byte[] Sign(byte[] data) => file.Loaded(Name).Sign(data);

        public override bool VerifySignature(byte[] data, byte[] signature) => file.Loaded(Name).VerifySignature(data, signature);
    }
}

/// <summary>Wraps an identity's algorithm to record that the key was offered to a server (for error messages).</summary>
internal sealed class OfferTracker
{
    private readonly List<SshIdentity> _offered = new();
    private Exception? _signFailure;

    public IReadOnlyList<SshIdentity> Offered
    {
        get
        {
            lock (_offered)
            {
                return _offered.ToList();
            }
        }
    }

    public Exception? SignFailure => _signFailure;

    public IPrivateKeySource Wrap(IReadOnlyList<SshIdentity> identities)
    {
        var algorithms = new List<HostAlgorithm>();
        foreach (var identity in identities)
        {
            foreach (var algorithm in identity.Algorithms)
            {
                algorithms.Add(new Tracked(algorithm, identity, this));
            }
        }

        return new AlgorithmKeySource(algorithms);
    }

    private void Record(SshIdentity identity)
    {
        lock (_offered)
        {
            if (!_offered.Contains(identity))
            {
                _offered.Add(identity);
            }
        }
    }

    private sealed class Tracked(HostAlgorithm inner, SshIdentity identity, OfferTracker tracker) : HostAlgorithm(inner.Name)
    {
        public override byte[] Data
        {
            get
            {
                tracker.Record(identity);
                return inner.Data;
            }
        }

        public override byte[] Sign(byte[] data)
        {
            try
            {
                return inner.Sign(data);
            }
            catch (Exception e)
            {
                tracker._signFailure ??= e;
                throw;
            }
        }

        public override bool VerifySignature(byte[] data, byte[] signature) => inner.VerifySignature(data, signature);
    }
}
