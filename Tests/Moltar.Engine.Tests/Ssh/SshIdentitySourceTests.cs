using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// The identity source on its own: which keys are offered for a host's settings, and in which order (agent keys
/// named as key files, the agent's other keys unless IdentitiesOnly, key files; each certificate just before its
/// key), and which key files are refused when the call starts. Real keys, a real ssh-agent (the sshd fixture's).
/// </summary>
[Collection("sshd")]
public sealed class SshIdentitySourceTests(SshdFixture sshd)
{
    private readonly List<SshLogEntry> _log = new();

    private SshIdentitySource Source(SshOptions? options = null) =>
        new(options ?? new SshOptions { UseAgent = false, HomeDirectory = sshd.Home }, sshd.Home, new SshLog(e => { lock (_log) _log.Add(e); }));

    private static string Fingerprint(string keyPath) =>
        SshKeyBlob.Fingerprint(Convert.FromBase64String(File.ReadAllText(keyPath + ".pub").Split(' ')[1]));

    private static IEnumerable<(string Source, string Fingerprint)> Offered(IEnumerable<SshIdentity> identities) =>
        identities.Select(i => (i.Source, SshKeyBlob.Fingerprint(i.CertifiedKeyBlob)));

    [SshdFact]
    public void Key_files_are_offered_in_the_order_given_each_key_once()
    {
        sshd.EnsureAvailable();
        var offered = Source().For(new SshHostSettings { IdentityFiles = new[] { sshd.ClientRsaKey, sshd.ClientKey, sshd.ClientRsaKey } });

        Assert.Equal(new[] { ("file", Fingerprint(sshd.ClientRsaKey)), ("file", Fingerprint(sshd.ClientKey)) }, Offered(offered));
        Assert.Equal(new[] { sshd.ClientRsaKey, sshd.ClientKey }, offered.Select(i => i.FilePath));
    }

    [SshdFact]
    public void Agent_keys_named_as_key_files_come_first_then_the_agent_s_others_unless_IdentitiesOnly_then_the_files()
    {
        sshd.EnsureAvailable();
        sshd.ClearAgent();
        try
        {
            var socket = sshd.AgentSocket(sshd.ClientKey, sshd.EncryptedKey);
            var source = Source();

            var rsaFile = source.For(new SshHostSettings { IdentityAgent = socket, IdentityFiles = new[] { sshd.ClientRsaKey } });
            var agentKeys = Offered(rsaFile).Take(2).ToList();
            Assert.Equal(new[] { "agent", "agent", "file" }, rsaFile.Select(i => i.Source));
            Assert.Equal(new[] { Fingerprint(sshd.ClientKey), Fingerprint(sshd.EncryptedKey) }.Order(), agentKeys.Select(k => k.Fingerprint).Order());
            Assert.Equal(Fingerprint(sshd.ClientRsaKey), Offered(rsaFile).Last().Fingerprint);

            // IdentitiesOnly: only what the files name, an agent key named as a file through the agent, first and once.
            var only = source.For(new SshHostSettings
            {
                IdentityAgent = socket,
                IdentityFiles = new[] { sshd.ClientRsaKey, sshd.EncryptedKey },
                IdentitiesOnly = true,
            });
            Assert.Equal(new[] { ("agent", Fingerprint(sshd.EncryptedKey)), ("file", Fingerprint(sshd.ClientRsaKey)) }, Offered(only));
        }
        finally
        {
            sshd.ClearAgent();
        }
    }

    [SshdFact]
    public void A_certificate_beside_a_key_is_offered_just_before_that_key()
    {
        sshd.EnsureAvailable();
        var dir = Directory.CreateTempSubdirectory("moltar-21-ids-").FullName;
        try
        {
            var ca = Path.Combine(dir, "user_ca");
            SshdFixture.Run(null, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ca);
            var key = Path.Combine(dir, "id_ed25519");
            SshdFixture.Run(null, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key);
            SshdFixture.Run(null, "ssh-keygen", "-q", "-s", ca, "-I", "moltar-21", "-n", "root", key + ".pub");
            // A certificate whose key nobody holds is not offered (and said so once).
            var stray = Path.Combine(dir, "stray");
            SshdFixture.Run(null, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stray);
            SshdFixture.Run(null, "ssh-keygen", "-q", "-s", ca, "-I", "stray", "-n", "root", stray + ".pub");

            var offered = Source().For(new SshHostSettings
            {
                IdentityFiles = new[] { sshd.ClientRsaKey, key },
                CertificateFiles = new[] { stray + "-cert.pub" },
            });

            Assert.Equal(new[] { "ssh-rsa", "ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519" }, offered.Select(i => i.KeyType));
            Assert.Equal(key + "-cert.pub", offered[1].FilePath);
            Assert.Equal(Fingerprint(key), SshKeyBlob.Fingerprint(offered[1].CertifiedKeyBlob));
            Assert.Contains(_log, e => e.Message.Contains($"Certificate {stray}-cert.pub: neither a key file nor the agent holds its key", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [SshdFact]
    public void An_encrypted_key_file_is_skipped_with_a_note_without_its_passphrase_and_offered_with_it()
    {
        sshd.EnsureAvailable();
        var settings = new SshHostSettings { IdentityFiles = new[] { sshd.EncryptedKey } };

        Assert.Empty(Source().For(settings));
        Assert.Contains(_log, e => e.Message == $"Key file {sshd.EncryptedKey} is encrypted and no passphrase was given; skipped.");

        var withPassphrase = Source(new SshOptions { UseAgent = false, HomeDirectory = sshd.Home, Passphrase = SshdFixture.Passphrase }).For(settings);
        Assert.Equal(("file", Fingerprint(sshd.EncryptedKey)), Assert.Single(Offered(withPassphrase)));
    }

    [SshdFact]
    public void A_missing_default_key_file_is_skipped_quietly_a_missing_configured_one_with_a_note()
    {
        sshd.EnsureAvailable();
        var missing = Path.Combine(sshd.Home, ".ssh", $"id_missing_{Guid.NewGuid():N}");

        Assert.Empty(Source().For(new SshHostSettings { IdentityFiles = new[] { missing }, IdentityFilesAreDefaults = true }));
        Assert.DoesNotContain(_log, e => e.Message.Contains(missing, StringComparison.Ordinal));

        Assert.Empty(Source().For(new SshHostSettings { IdentityFiles = new[] { missing } }));
        Assert.Contains(_log, e => e.Message == $"Key file {missing} (ssh config IdentityFile) does not exist; skipped.");
    }

    [SshdFact]
    public void An_explicit_key_file_that_is_missing_or_locked_is_refused_when_the_call_starts()
    {
        sshd.EnsureAvailable();
        var missing = Path.Combine(sshd.Home, $"nope-{Guid.NewGuid():N}");
        var notThere = Assert.Throws<SshFailure>(() => Source(new SshOptions { UseAgent = false, KeyFiles = new[] { missing } }));
        Assert.Equal((SshErrorIds.KeyFileInvalid, $"Key file {missing} does not exist."), (notThere.ErrorId, notThere.Message));

        var locked = Assert.Throws<SshFailure>(() => Source(new SshOptions { UseAgent = false, KeyFiles = new[] { sshd.EncryptedKey } }));
        Assert.Equal(SshErrorIds.KeyFileInvalid, locked.ErrorId);
        Assert.Contains("is encrypted; give its passphrase", locked.Message, StringComparison.Ordinal);

        // The same key held by the agent needs no passphrase.
        sshd.ClearAgent();
        try
        {
            var socket = sshd.AgentSocket(sshd.EncryptedKey);
            var source = Source(new SshOptions { UseAgent = true, AgentPath = socket, KeyFiles = new[] { sshd.EncryptedKey } });
            Assert.Equal(("agent", Fingerprint(sshd.EncryptedKey)),
                Assert.Single(Offered(source.For(new SshHostSettings { IdentityAgent = socket, IdentityFiles = new[] { sshd.EncryptedKey }, IdentitiesOnly = true }))));
        }
        finally
        {
            sshd.ClearAgent();
        }
    }
}
