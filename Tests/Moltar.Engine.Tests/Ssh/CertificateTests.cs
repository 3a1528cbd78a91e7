using System.Diagnostics;
using Moltar.Engine.Ssh;
using Xunit;
using Xunit.Abstractions;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// Four sshd servers that trust only a user CA (TrustedUserCAKeys, no authorized_keys) and present CA-signed
/// host certificates: valid for their address, expired, issued for another host name, and signed by an RSA CA with
/// ssh-rsa (SHA-1), which ssh does not accept for certificates. Its own ssh-agent.
/// </summary>
public sealed class CertificateServers : IDisposable
{
    public CertificateServers(SshdFixture sshd)
    {
        if (sshd.SkipReason is not null)
        {
            return;
        }

        Dir = Directory.CreateTempSubdirectory("moltar-certs-18-").FullName;
        UserCa = KeyGen("user_ca");
        HostCa = KeyGen("host_ca");
        OtherCa = KeyGen("other_ca");
        RsaCa = Path.Combine(Dir, "rsa_ca");
        SshdFixture.Run(null, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "rsa_ca", "-f", RsaCa);
        CertKey = KeyGen("cert_user");
        SshdFixture.Run(null, "ssh-keygen", "-q", "-s", UserCa, "-I", "moltar-user", "-n", "root", "-V", "-5m:+1h", CertKey + ".pub");
        Valid = Start("cert-valid", address => new[] { "-n", address, "-V", "-5m:+1h" });
        Expired = Start("cert-expired", address => new[] { "-n", address, "-V", "20200101:20200102" });
        OtherHost = Start("cert-other", _ => new[] { "-n", "other.example", "-V", "-5m:+1h" });
        Sha1Signed = Start("cert-sha1", address => new[] { "-n", address, "-V", "-5m:+1h" }, RsaCa, "ssh-rsa");

        AgentSocket = Path.Combine(Dir, "agent.sock");
        _agent = Process.Start(new ProcessStartInfo("ssh-agent") { ArgumentList = { "-D", "-a", AgentSocket }, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!File.Exists(AgentSocket) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(10);
        }

        SshdHost Start(string name, Func<string, string[]> certificateOptions, string? ca = null, string? signatureAlgorithm = null) => sshd.StartExtraSshd(name, (dir, hostKey, address) =>
        {
            var args = new List<string> { "-q", "-s", ca ?? HostCa, "-I", name, "-h" };
            if (signatureAlgorithm is not null)
            {
                args.AddRange(new[] { "-t", signatureAlgorithm });
            }

            args.AddRange(certificateOptions(address));
            args.Add(hostKey + ".pub");
            SshdFixture.Run(null, "ssh-keygen", args.ToArray());
            return $"TrustedUserCAKeys {UserCa}.pub\nAuthorizedKeysFile none\nHostCertificate {hostKey}-cert.pub\n";
        });
    }

    private readonly Process? _agent;

    public string Dir { get; } = "";
    public string UserCa { get; } = "";
    public string HostCa { get; } = "";
    public string OtherCa { get; } = "";
    /// <summary>An RSA CA; Sha1Signed's certificate is signed by it with ssh-rsa (SHA-1).</summary>
    public string RsaCa { get; } = "";
    /// <summary>A key no server accepts by itself, with its user certificate beside it (cert_user-cert.pub).</summary>
    public string CertKey { get; } = "";
    public SshdHost Valid { get; } = null!;
    public SshdHost Expired { get; } = null!;
    public SshdHost OtherHost { get; } = null!;
    public SshdHost Sha1Signed { get; } = null!;
    public string AgentSocket { get; } = "";

    public string Pub(string key) => File.ReadAllText(key + ".pub").Trim();

    private string KeyGen(string name)
    {
        var path = Path.Combine(Dir, name);
        SshdFixture.Run(null, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path);
        return path;
    }

    public void Dispose()
    {
        if (_agent is not null)
        {
            try
            {
                _agent.Kill();
                _agent.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }

            _agent.Dispose();
        }

        // The CA keys, certificates and agent socket: made in a folder of this fixture's own, removed with it.
        if (Dir.Length > 0)
        {
            try
            {
                Directory.Delete(Dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

[Collection("sshd")]
public sealed class CertificateTests(SshdFixture sshd, ITestOutputHelper output) : IClassFixture<CertificateServersFor18>
{
    private CertificateServers? _servers;
    private CertificateServers Servers => _servers ??= CertificateServersFor18.Get(sshd);

    private string KnownHostsWith(params string[] lines) => sshd.NewTempFile("known_hosts", string.Join("\n", lines) + "\n");

    private string CaLine(string pattern = "*") => $"@cert-authority {pattern} {Servers.Pub(Servers.HostCa)}";

    /// <summary>A copy of the certificate key without its -cert.pub: what a server sees without the certificate.</summary>
    private string BareCopy()
    {
        var path = Path.Combine(Servers.Dir, $"bare-{Guid.NewGuid():N}");
        File.Copy(Servers.CertKey, path);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Copy(Servers.CertKey + ".pub", path + ".pub");
        return path;
    }

    private SshOptions Options(string known, params string[] keys) => sshd.Options() with
    {
        KeyFiles = keys,
        KnownHostsPaths = new[] { known },
        StrictHostKeyChecking = StrictHostKeyChecking.Yes,
    };

    [SshdFact]
    public void A_server_trusting_only_a_user_CA_accepts_the_key_with_its_cert_pub_beside_it_and_refuses_it_without()
    {
        sshd.EnsureAvailable();
        var known = KnownHostsWith(Servers.Valid.KnownHostsLine);
        using (var connector = new SshConnector(Options(known, Servers.CertKey)))
        {
            Assert.Contains(connector.IdentitiesFor(connector.Resolve(Servers.Valid.Target)), i => i.KeyType == "ssh-ed25519-cert-v01@openssh.com");
            using var connection = connector.Connect(Servers.Valid.Target);
            Assert.Equal("root", connection.Run("whoami").Stdout.Trim());
        }

        using var bare = new SshConnector(Options(known, BareCopy()));
        var failure = Assert.Throws<SshFailure>(() => bare.Connect(Servers.Valid.Target));
        Assert.Equal(SshErrorIds.AuthenticationFailed, failure.ErrorId);
    }

    [SshdFact]
    public void CertificateFile_from_ssh_config_is_offered_with_the_key_file_or_the_agent_key_it_certifies()
    {
        sshd.EnsureAvailable();
        var known = KnownHostsWith(Servers.Valid.KnownHostsLine);
        var key = BareCopy();
        var config = sshd.NewTempFile("config", $"Host *\n  IdentityFile {key}\n  CertificateFile {Servers.CertKey}-cert.pub\n");
        using (var connector = new SshConnector(Options(known) with { ConfigPath = config }))
        {
            using var connection = connector.Connect(Servers.Valid.Target);
            Assert.True(connection.Run("true").Succeeded);
        }

        // The key only in the agent (no key file at all), the certificate from ssh config: the agent signs for it.
        SshdFixture.Run(new Dictionary<string, string> { ["SSH_AUTH_SOCK"] = Servers.AgentSocket }, "ssh-add", "-q", key);
        File.Delete(key);
        File.Delete(key + ".pub");
        var agentConfig = sshd.NewTempFile("config", $"Host *\n  CertificateFile {Servers.CertKey}-cert.pub\n");
        using (var connector = new SshConnector(Options(known) with { ConfigPath = agentConfig, UseAgent = true, AgentPath = Servers.AgentSocket }))
        {
            using var connection = connector.Connect(Servers.Valid.Target);
            Assert.True(connection.Run("true").Succeeded);
        }

        SshdFixture.Run(new Dictionary<string, string> { ["SSH_AUTH_SOCK"] = Servers.AgentSocket }, "ssh-add", "-D");
    }

    [SshdFact]
    public void A_certificate_the_agent_holds_with_its_key_is_offered()
    {
        sshd.EnsureAvailable();
        var known = KnownHostsWith(Servers.Valid.KnownHostsLine);
        var env = new Dictionary<string, string> { ["SSH_AUTH_SOCK"] = Servers.AgentSocket };
        SshdFixture.Run(env, "ssh-add", "-q", Servers.CertKey); // ssh-add loads cert_user-cert.pub with it
        try
        {
            using var connector = new SshConnector(Options(known) with { UseAgent = true, AgentPath = Servers.AgentSocket });
            Assert.Contains(connector.IdentitiesFor(connector.Resolve(Servers.Valid.Target)), i => i.Source == "agent" && i.KeyType.EndsWith("-cert-v01@openssh.com"));
            using var connection = connector.Connect(Servers.Valid.Target);
            Assert.True(connection.Run("true").Succeeded);
        }
        finally
        {
            SshdFixture.Run(env, "ssh-add", "-D");
        }
    }

    [SshdFact]
    public void A_CA_signed_host_certificate_is_trusted_with_only_a_cert_authority_line_and_ssh_agrees()
    {
        sshd.EnsureAvailable();
        var known = KnownHostsWith(CaLine($"[{Servers.Valid.Address}]:{Servers.Valid.Port}"));
        using var connector = new SshConnector(Options(known, Servers.CertKey));
        using var connection = connector.Connect(Servers.Valid.Target);
        Assert.Equal("ssh-ed25519-cert-v01@openssh.com", connection.HostKeyAlgorithm);
        Assert.True(connection.Run("true").Succeeded);
        Assert.True(SshdFixture.SshConnects(known, Servers.Valid, Servers.CertKey, output.WriteLine));
    }

    [SshdFact]
    public void A_host_certificate_is_refused_when_expired_for_another_host_signed_by_an_untrusted_CA_or_its_CA_or_key_is_revoked_and_ssh_agrees()
    {
        sshd.EnsureAvailable();
        var cases = new (string Name, SshdHost Host, string KnownHosts, string ErrorId, string Says)[]
        {
            ("expired", Servers.Expired, KnownHostsWith(CaLine()), SshErrorIds.HostKeyUnknown, "expired at 2020-01-02"),
            ("signed with ssh-rsa", Servers.Sha1Signed, KnownHostsWith($"@cert-authority * {Servers.Pub(Servers.RsaCa)}"), SshErrorIds.HostKeyUnknown, "ssh-rsa"),
            ("expired, CA revoked", Servers.Expired, KnownHostsWith(CaLine(), Servers.Expired.KnownHostsLine, $"@revoked * {Servers.Pub(Servers.HostCa)}"), SshErrorIds.HostKeyRevoked, "@revoked"),
            ("other host", Servers.OtherHost, KnownHostsWith(CaLine()), SshErrorIds.HostKeyUnknown, "other.example"),
            ("untrusted CA", Servers.Valid, KnownHostsWith($"@cert-authority * {Servers.Pub(Servers.OtherCa)}"), SshErrorIds.HostKeyUnknown, "no @cert-authority line"),
            ("revoked CA", Servers.Valid, KnownHostsWith(CaLine(), $"@revoked * {Servers.Pub(Servers.HostCa)}"), SshErrorIds.HostKeyRevoked, "@revoked"),
            ("revoked key", Servers.Valid, KnownHostsWith(CaLine(), $"@revoked * {Servers.Valid.PublicKeyLine}"), SshErrorIds.HostKeyRevoked, "its key"),
        };
        foreach (var c in cases)
        {
            using var connector = new SshConnector(Options(c.KnownHosts, Servers.CertKey));
            var failure = Assert.Throws<SshFailure>(() => connector.Connect(c.Host.Target));
            output.WriteLine($"{c.Name}: {failure.ErrorId}: {failure.Message}");
            Assert.Equal(c.ErrorId, failure.ErrorId);
            Assert.Contains(c.Says, failure.Message);
            Assert.False(SshdFixture.SshConnects(c.KnownHosts, c.Host, Servers.CertKey, output.WriteLine), $"{c.Name}: ssh connected where Moltar refused");
        }
    }

    /// <summary>
    /// ssh drops a host certificate it does not accept (expired, for another host, from a CA no @cert-authority line
    /// trusts, signed with ssh-rsa) and checks the plain key under the policy; SSH.NET ends the key exchange over an
    /// expired one itself, so Moltar connects again for the plain key. Each verdict is ssh's own on the same file:
    /// for the two paths (SSH.NET refuses the certificate: expired; Moltar drops it: other host) under every policy
    /// with no plain key line, the host's own and another key; for the other kinds with no plain key line.
    /// (A @revoked CA or key is refused under every policy by Moltar; ssh connects under "no": that case is the one
    /// difference, asserted as such.)
    /// </summary>
    [SshdFact]
    public void A_host_certificate_ssh_does_not_accept_leaves_the_plain_key_to_decide_under_every_policy_as_ssh_does()
    {
        sshd.EnsureAvailable();
        var policies = new[] { ("yes", StrictHostKeyChecking.Yes), ("accept-new", StrictHostKeyChecking.AcceptNew), ("no", StrictHostKeyChecking.No) };
        var cases = new List<(string Label, SshdHost Host, string[] Lines, string Policy, StrictHostKeyChecking Strict, bool Records)>();
        foreach (var (name, host) in new[] { ("expired", Servers.Expired), ("other host", Servers.OtherHost) })
        {
            foreach (var (plainName, plainLine) in new (string, string?)[]
                     {
                         ("no plain key", null), ("its plain key", host.KnownHostsLine), ("another key", $"[{host.Address}]:{host.Port} {sshd.Hosts[0].PublicKeyLine}"),
                     })
            {
                foreach (var (policyName, policy) in policies)
                {
                    cases.Add(($"{name}, {plainName}, {policyName}", host, plainLine is null ? new[] { CaLine() } : new[] { CaLine(), plainLine },
                        policyName, policy, plainLine is null && policy == StrictHostKeyChecking.AcceptNew));
                }
            }
        }

        foreach (var (name, host, caLine) in new[]
                 {
                     ("untrusted CA", Servers.Valid, $"@cert-authority * {Servers.Pub(Servers.OtherCa)}"),
                     ("signed with ssh-rsa", Servers.Sha1Signed, $"@cert-authority * {Servers.Pub(Servers.RsaCa)}"),
                     ("valid", Servers.Valid, CaLine()),
                 })
        {
            foreach (var (policyName, policy) in policies.Take(2))
            {
                cases.Add(($"{name}, no plain key, {policyName}", host, new[] { caLine }, policyName, policy, name != "valid" && policy == StrictHostKeyChecking.AcceptNew));
            }
        }

        var results = new string[cases.Count];
        var disagreements = new System.Collections.Concurrent.ConcurrentBag<string>();
        var verdicts = new System.Collections.Concurrent.ConcurrentDictionary<bool, int>();
        Parallel.For(0, cases.Count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var c = cases[i];
            var moltarFile = KnownHostsWith(c.Lines);
            var sshFile = KnownHostsWith(c.Lines);
            bool moltar;
            string why;
            try
            {
                using var connector = new SshConnector(Options(moltarFile, Servers.CertKey) with { StrictHostKeyChecking = c.Strict });
                using var connection = connector.Connect(c.Host.Target);
                moltar = connection.Run("true").Succeeded;
                why = connection.HostKeyAlgorithm;
            }
            catch (SshFailure failure)
            {
                moltar = false;
                why = $"{failure.ErrorId}: {failure.Message}";
            }

            var ssh = SshdFixture.SshConnects(sshFile, c.Host, Servers.CertKey, null, c.Policy);
            results[i] = $"{c.Label}: ssh {(ssh ? "connects" : "refuses")}, Moltar {(moltar ? "connects" : "refuses")} ({why})";
            verdicts[ssh] = 1;
            if (ssh != moltar)
            {
                disagreements.Add(c.Label);
            }
            else if (ssh && c.Records)
            {
                // ssh recorded the host's plain key; so must Moltar.
                if (!File.ReadAllText(sshFile).Contains(c.Host.PublicKeyLine) || !File.ReadAllText(moltarFile).Contains(c.Host.PublicKeyLine))
                {
                    disagreements.Add(c.Label + " (the plain key recorded)");
                }
            }
        });
        foreach (var line in results)
        {
            output.WriteLine(line);
        }

        Assert.Empty(disagreements);
        Assert.Equal(2, verdicts.Count); // both verdicts occur: a matrix of one verdict would prove nothing

        // The one difference: a @revoked CA under "no". ssh connects; Moltar refuses a revoked key under every policy.
        var revoked = KnownHostsWith(CaLine(), $"@revoked * {Servers.Pub(Servers.HostCa)}");
        using var strictNo = new SshConnector(Options(revoked, Servers.CertKey) with { StrictHostKeyChecking = StrictHostKeyChecking.No });
        Assert.Equal(SshErrorIds.HostKeyRevoked, Assert.Throws<SshFailure>(() => strictNo.Connect(Servers.Expired.Target)).ErrorId);
        Assert.True(SshdFixture.SshConnects(KnownHostsWith(CaLine(), $"@revoked * {Servers.Pub(Servers.HostCa)}"), Servers.Expired, Servers.CertKey, output.WriteLine, "no"));
    }

    /// <summary>
    /// What Moltar makes of a certificate SSH.NET refused inside its key exchange (it does not say why): a @revoked CA
    /// is refused, an expired one is dropped for the plain key, and one within its window with an accepted algorithm
    /// had a bad CA signature, which ssh refuses outright. sshd will not serve a certificate with a corrupt signature,
    /// so that one is judged here from the blob SSH.NET parses.
    /// </summary>
    [SshdFact]
    public void A_certificate_SSH_NET_refused_is_revoked_dropped_for_the_plain_key_or_refused_for_a_bad_signature_as_ssh_judges_it()
    {
        sshd.EnsureAvailable();
        var host = Servers.Expired;
        byte[] Signed(string validity)
        {
            var key = Path.Combine(Servers.Dir, $"judged-{Guid.NewGuid():N}");
            SshdFixture.Run(null, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key);
            SshdFixture.Run(null, "ssh-keygen", "-q", "-s", Servers.HostCa, "-I", "judged", "-h", "-n", host.Address, "-V", validity, key + ".pub");
            return Convert.FromBase64String(File.ReadAllText(key + "-cert.pub").Split(' ')[1]);
        }

        (SshFailure? Refused, string? Retry) Judge(byte[] blob, string known)
        {
            var parse = new Renci.SshNet.ConnectionInfo(host.Address, "root", new Renci.SshNet.NoneAuthenticationMethod("root")).HostKeyAlgorithms["ssh-ed25519-cert-v01@openssh.com"];
            var certificate = ((Renci.SshNet.Security.CertificateHostAlgorithm)parse(blob)).Certificate;
            using var connector = new SshConnector(Options(known, Servers.CertKey));
            var verifier = new HostKeyVerifier(connector.KnownHosts, new SshLog(null), connector.Resolve(host.Target), host.Target, "host");
            verifier.RecordPresented(certificate, blob);
            return verifier.RefusedBySshNet();
        }

        var expired = Signed("20200101:20200102");
        var dropped = Judge(expired, KnownHostsWith(CaLine()));
        Assert.Null(dropped.Refused);
        Assert.Contains("expired at 2020-01-02", dropped.Retry);

        var revoked = Judge(expired, KnownHostsWith(CaLine(), $"@revoked * {Servers.Pub(Servers.HostCa)}"));
        Assert.Equal(SshErrorIds.HostKeyRevoked, revoked.Refused?.ErrorId);

        var corrupt = Signed("-5m:+1h");
        corrupt[^1] ^= 0xff; // the last byte of the CA's signature
        var bad = Judge(corrupt, KnownHostsWith(CaLine()));
        Assert.Null(bad.Retry);
        Assert.Equal(SshErrorIds.HostKeyUnknown, bad.Refused?.ErrorId);
        Assert.Contains("signature by its CA", bad.Refused!.Message);
    }

    [SshdFact]
    public void Without_a_cert_authority_line_the_plain_host_key_decides_as_before()
    {
        sshd.EnsureAvailable();
        // The expired-certificate host is trusted by its plain key: no certificate is asked for, so it connects.
        var known = KnownHostsWith(Servers.Expired.KnownHostsLine);
        using var connector = new SshConnector(Options(known, Servers.CertKey));
        using var connection = connector.Connect(Servers.Expired.Target);
        Assert.Equal("ssh-ed25519", connection.HostKeyAlgorithm);
        Assert.True(SshdFixture.SshConnects(known, Servers.Expired, Servers.CertKey, output.WriteLine));
    }

}

/// <summary>Starts the certificate servers once for the test class (needs the sshd fixture, so it is created lazily).</summary>
public sealed class CertificateServersFor18 : IDisposable
{
    private static readonly object Gate = new();
    private static CertificateServers? _servers;

    public static CertificateServers Get(SshdFixture sshd)
    {
        lock (Gate)
        {
            return _servers ??= new CertificateServers(sshd);
        }
    }

    public void Dispose()
    {
        lock (Gate)
        {
            _servers?.Dispose();
            _servers = null;
        }
    }
}
