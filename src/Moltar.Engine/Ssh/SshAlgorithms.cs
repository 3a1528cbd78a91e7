using Renci.SshNet;

namespace Moltar.Engine.Ssh;

/// <summary>
/// Algorithm order for fan-out (DESIGN §4, §8): fast hybrid/curve25519 key exchange ahead of sntrup761,
/// aes128-gcm first, host key types already known for the host first. ssh config lists (OpenSSH syntax) win.
/// </summary>
public static class SshAlgorithms
{
    /// <summary>Key exchange names moved to the front, in this order, when the library has them.</summary>
    public static readonly IReadOnlyList<string> PreferredKex = new[]
    {
        "mlkem768x25519-sha256",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "sntrup761x25519-sha512",
        "sntrup761x25519-sha512@openssh.com",
    };

    public static readonly IReadOnlyList<string> PreferredCiphers = new[]
    {
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
        "chacha20-poly1305@openssh.com",
    };

    /// <summary>The preferred names first (those available), then the rest in the library's order.</summary>
    public static List<string> PreferFirst(IEnumerable<string> available, IEnumerable<string> preferred)
    {
        var list = available.ToList();
        var result = preferred.Where(list.Contains).ToList();
        result.AddRange(list.Where(n => !result.Contains(n)));
        return result;
    }

    /// <summary>
    /// Applies an OpenSSH algorithm list ("a,b" replaces; "+a,b" appends; "-pat" removes, wildcards allowed;
    /// "^a,b" puts first) to a default order. Names the library does not implement are dropped and reported.
    /// </summary>
    public static List<string> ApplySpec(IReadOnlyList<string> defaults, IReadOnlyCollection<string> supported, string spec, ICollection<string>? notes = null)
    {
        spec = spec.Trim();
        if (spec.Length == 0)
        {
            return defaults.ToList();
        }

        var op = spec[0];
        var body = op is '+' or '-' or '^' ? spec.Substring(1) : spec;
        var names = body.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        List<string> result;
        switch (op)
        {
            case '-':
                result = defaults.Where(d => !names.Any(p => SshPattern.Match(d, p))).ToList();
                break;
            case '+':
                result = defaults.ToList();
                foreach (var n in Supported(names))
                {
                    if (!result.Contains(n))
                    {
                        result.Add(n);
                    }
                }

                break;
            case '^':
                result = Supported(names).Distinct().ToList();
                result.AddRange(defaults.Where(d => !result.Contains(d)));
                break;
            default:
                result = Supported(names).Distinct().ToList();
                break;
        }

        return result;

        IEnumerable<string> Supported(IEnumerable<string> requested)
        {
            foreach (var n in requested)
            {
                if (supported.Contains(n))
                {
                    yield return n;
                }
                else
                {
                    notes?.Add($"algorithm '{n}' is not available in Moltar's SSH library; ignored.");
                }
            }
        }
    }

    /// <summary>Host key algorithms with the types already known for the host first (as OpenSSH orders them).</summary>
    public static List<string> HostKeyOrder(IEnumerable<string> available, IEnumerable<string> knownKeyTypes)
    {
        var list = available.ToList();
        var preferred = knownKeyTypes.SelectMany(SshKeyBlob.AlgorithmsForKeyType).Where(list.Contains).Distinct().ToList();
        preferred.AddRange(list.Where(n => !preferred.Contains(n)));
        return preferred;
    }

    /// <summary>Reorders (and trims) an SSH.NET algorithm dictionary to the given order.</summary>
    internal static void Reorder<TValue>(IOrderedDictionary<string, TValue> dictionary, IReadOnlyList<string> order)
    {
        foreach (var name in dictionary.Keys.ToList())
        {
            if (!order.Contains(name))
            {
                dictionary.Remove(name, out _);
            }
        }

        var position = 0;
        foreach (var name in order)
        {
            if (dictionary.ContainsKey(name))
            {
                dictionary.SetPosition(name, position++);
            }
        }
    }

    /// <summary>Sets key exchange, cipher and host key order on a ConnectionInfo.</summary>
    internal static bool IsCertificate(string algorithm) => algorithm.EndsWith("-cert-v01@openssh.com", StringComparison.Ordinal);

    internal static void Apply(ConnectionInfo info, string? kexSpec, string? cipherSpec, string? hostKeySpec, IReadOnlyList<string> knownKeyTypes, ICollection<string>? notes,
        bool certAuthorityKnown = false)
    {
        var kexDefault = PreferFirst(info.KeyExchangeAlgorithms.Keys, PreferredKex);
        var kex = kexSpec is null ? kexDefault : ApplySpec(kexDefault, info.KeyExchangeAlgorithms.Keys.ToList(), kexSpec, notes);
        if (kex.Count == 0)
        {
            notes?.Add($"KexAlgorithms '{kexSpec}' leaves no usable algorithm; using the defaults.");
            kex = kexDefault;
        }

        Reorder(info.KeyExchangeAlgorithms, kex);

        var cipherDefault = PreferFirst(info.Encryptions.Keys, PreferredCiphers);
        var ciphers = cipherSpec is null ? cipherDefault : ApplySpec(cipherDefault, info.Encryptions.Keys.ToList(), cipherSpec, notes);
        if (ciphers.Count == 0)
        {
            notes?.Add($"Ciphers '{cipherSpec}' leaves no usable cipher; using the defaults.");
            ciphers = cipherDefault;
        }

        Reorder(info.Encryptions, ciphers);

        // Host certificates are offered (first, as ssh orders them) only when a @cert-authority line names the host:
        // otherwise known_hosts' plain keys decide, and a host's stale certificate cannot get in the way.
        var plainHostKeys = info.HostKeyAlgorithms.Keys.Where(k => !IsCertificate(k)).ToList();
        var certificates = certAuthorityKnown
            ? info.HostKeyAlgorithms.Keys.Where(k => IsCertificate(k) && k is not "ssh-rsa-cert-v01@openssh.com" and not "ssh-dss-cert-v01@openssh.com").ToList()
            : new List<string>();
        var hostKeys = certificates.Concat(HostKeyOrder(plainHostKeys, knownKeyTypes)).ToList();
        if (hostKeySpec is not null)
        {
            // An explicit HostKeyAlgorithms is taken as written (OpenSSH reorders by known types only by default).
            var usable = certificates.Concat(plainHostKeys).ToList();
            var applied = ApplySpec(usable, usable, hostKeySpec, notes);
            if (applied.Count > 0)
            {
                hostKeys = applied;
            }
        }

        Reorder(info.HostKeyAlgorithms, hostKeys);
    }
}
