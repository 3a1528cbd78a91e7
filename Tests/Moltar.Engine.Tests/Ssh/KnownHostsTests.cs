using System.Security.Cryptography;
using System.Text;
using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

public sealed class KnownHostsTests
{
    // Two made-up ed25519 blobs and an RSA-shaped blob (only the type string matters to known_hosts).
    private static readonly byte[] KeyA = Blob("ssh-ed25519", 1);
    private static readonly byte[] KeyB = Blob("ssh-ed25519", 2);
    private static readonly byte[] RsaKey = Blob("ssh-rsa", 3);

    private static byte[] Blob(string type, byte seed)
    {
        var key = new byte[32];
        Array.Fill(key, seed);
        return new SshWriterForTests().String(Encoding.ASCII.GetBytes(type)).String(key).ToArray();
    }

    private static string Line(string host, byte[] blob, string marker = "") =>
        $"{marker}{(marker.Length > 0 ? " " : "")}{host} {SshKeyBlob.KeyType(blob)} {Convert.ToBase64String(blob)} comment";

    [Fact]
    public void Plain_entries_with_patterns_lists_and_negation()
    {
        var entries = KnownHosts.Parse(string.Join("\n",
            Line("web1,10.0.0.5", KeyA),
            Line("*.example.com,!bad.example.com", KeyB)), "kh");

        Assert.Equal(HostKeyStatus.Trusted, KnownHosts.Check(entries, "web1", KeyA).Status);
        Assert.Equal(HostKeyStatus.Trusted, KnownHosts.Check(entries, "10.0.0.5", KeyA).Status);
        Assert.Equal(HostKeyStatus.Trusted, KnownHosts.Check(entries, "a.example.com", KeyB).Status);
        Assert.Equal(HostKeyStatus.Unknown, KnownHosts.Check(entries, "bad.example.com", KeyB).Status);
        Assert.Equal(HostKeyStatus.Unknown, KnownHosts.Check(entries, "web2", KeyA).Status);
    }

    [Fact]
    public void Non_standard_ports_use_bracketed_entries_only()
    {
        var entries = KnownHosts.Parse(Line("[10.0.0.5]:2222", KeyA) + "\n" + Line("10.0.0.6", KeyB), "kh");
        Assert.Equal("[10.0.0.5]:2222", KnownHosts.LookupName("10.0.0.5", 2222));
        Assert.Equal("10.0.0.5", KnownHosts.LookupName("10.0.0.5", 22));
        Assert.Equal(HostKeyStatus.Trusted, KnownHosts.Check(entries, KnownHosts.LookupName("10.0.0.5", 2222), KeyA).Status);
        Assert.Equal(HostKeyStatus.Unknown, KnownHosts.Check(entries, KnownHosts.LookupName("10.0.0.5", 22), KeyA).Status);
        Assert.Equal(HostKeyStatus.Unknown, KnownHosts.Check(entries, KnownHosts.LookupName("10.0.0.6", 2222), KeyB).Status);
    }

    [Fact]
    public void Hashed_entries_match_by_hmac_sha1()
    {
        var salt = RandomNumberGenerator.GetBytes(20);
        var hash = HMACSHA1.HashData(salt, Encoding.UTF8.GetBytes("[web1.example.com]:2222"));
        var line = Line($"|1|{Convert.ToBase64String(salt)}|{Convert.ToBase64String(hash)}", KeyA);
        var entries = KnownHosts.Parse(line, "kh");
        Assert.True(entries[0].IsHashed);
        Assert.Equal(HostKeyStatus.Trusted, KnownHosts.Check(entries, "[web1.example.com]:2222", KeyA).Status);
        Assert.Equal(HostKeyStatus.Trusted, KnownHosts.Check(entries, KnownHosts.LookupName("WEB1.example.com", 2222), KeyA).Status);
        Assert.Equal(HostKeyStatus.Unknown, KnownHosts.Check(entries, "web1.example.com", KeyA).Status);
        Assert.Equal(HostKeyStatus.Changed, KnownHosts.Check(entries, "[web1.example.com]:2222", KeyB).Status);
    }

    [Fact]
    public void Hashed_lines_written_here_are_read_by_ssh_keygen_and_vice_versa()
    {
        var keygen = SshdEnvironment.Which("ssh-keygen");
        if (keygen is null)
        {
            return; // covered by the HMAC test above; ssh-keygen only cross-checks
        }

        var dir = Directory.CreateTempSubdirectory("moltar-kh-").FullName;
        try
        {
            var file = Path.Combine(dir, "known_hosts");
            File.WriteAllText(file, KnownHosts.FormatLine("[10.1.2.3]:2222", KeyA, hash: true) + "\n");
            var found = SshdFixture.Run(null, keygen, "-F", "[10.1.2.3]:2222", "-f", file);
            Assert.Contains("Host [10.1.2.3]:2222 found", found);

            var plain = Path.Combine(dir, "plain");
            File.WriteAllText(plain, Line("host.example", KeyB) + "\n");
            SshdFixture.Run(null, keygen, "-H", "-f", plain);
            var entries = KnownHosts.Parse(File.ReadAllText(plain), plain);
            Assert.True(entries.Single().IsHashed);
            Assert.Equal(HostKeyStatus.Trusted, KnownHosts.Check(entries, "host.example", KeyB).Status);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void A_different_key_for_a_known_host_is_Changed_and_lists_what_was_expected()
    {
        var entries = KnownHosts.Parse(Line("web1", KeyA) + "\n" + Line("web1", RsaKey), "kh");
        var check = KnownHosts.Check(entries, "web1", KeyB);
        Assert.Equal(HostKeyStatus.Changed, check.Status);
        Assert.Equal(2, check.KnownForHost.Count);
        Assert.Equal("kh:1", check.KnownForHost[0].Location);
    }

    [Fact]
    public void Revoked_keys_are_refused_even_when_also_listed_as_trusted()
    {
        var entries = KnownHosts.Parse(Line("web1", KeyA) + "\n" + Line("*", KeyA, "@revoked"), "kh");
        var check = KnownHosts.Check(entries, "web1", KeyA);
        Assert.Equal(HostKeyStatus.Revoked, check.Status);
        Assert.Equal(KnownHostMarker.Revoked, check.Match!.Marker);
        Assert.Equal(HostKeyStatus.Changed, KnownHosts.Check(entries, "web1", KeyB).Status);
    }

    [Fact]
    public void Cert_authority_lines_are_noted_but_do_not_trust_keys()
    {
        var entries = KnownHosts.Parse(Line("*.example.com", KeyA, "@cert-authority"), "kh");
        var check = KnownHosts.Check(entries, "web.example.com", KeyA);
        Assert.Equal(HostKeyStatus.Unknown, check.Status);
        Assert.True(check.HasCertAuthority);
    }

    [Fact]
    public void Bad_lines_are_skipped_with_a_note()
    {
        var notes = new List<string>();
        var entries = KnownHosts.Parse(string.Join("\n",
            "# comment",
            "",
            "web1 ssh-ed25519 not-base64!",
            "web2 ssh-rsa " + Convert.ToBase64String(KeyA),
            "@bogus web3 ssh-ed25519 " + Convert.ToBase64String(KeyA),
            "onlyhost",
            Line("web4", KeyA)), "kh", notes);
        Assert.Single(entries);
        Assert.Equal(4, notes.Count);
        Assert.Contains(notes, n => n.StartsWith("kh:4", StringComparison.Ordinal) && n.Contains("does not match"));
    }

    [Fact]
    public void Known_key_types_come_from_matching_entries()
    {
        var dir = Directory.CreateTempSubdirectory("moltar-kh-").FullName;
        try
        {
            var file = Path.Combine(dir, "kh");
            File.WriteAllText(file, Line("web1", RsaKey) + "\n" + Line("web1", KeyA) + "\n" + Line("web2", KeyB) + "\n");
            var store = new KnownHosts();
            Assert.Equal(new[] { "ssh-rsa", "ssh-ed25519" }, store.KnownKeyTypes(new[] { file, Path.Combine(dir, "missing") }, "web1", 22));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void AddIfUnknown_from_many_threads_writes_one_line_and_sees_other_writers()
    {
        var dir = Directory.CreateTempSubdirectory("moltar-kh-").FullName;
        try
        {
            var file = Path.Combine(dir, "sub", "known_hosts"); // the directory is created too
            var store = new KnownHosts();
            var wrote = 0;
            Parallel.For(0, 32, new ParallelOptions { MaxDegreeOfParallelism = 32 }, _ =>
            {
                var check = store.AddIfUnknown(file, "10.9.9.9", 2222, KeyA, hash: false, out var added);
                Assert.Equal(HostKeyStatus.Trusted, check.Status);
                if (added)
                {
                    Interlocked.Increment(ref wrote);
                }
            });
            Assert.Equal(1, wrote);
            Assert.Equal(new[] { $"[10.9.9.9]:2222 ssh-ed25519 {Convert.ToBase64String(KeyA)}" }, File.ReadAllLines(file));

            // Another "process" (a second store) sees the line; a different key is then a change, not an addition.
            var other = new KnownHosts();
            Assert.Equal(HostKeyStatus.Changed, other.AddIfUnknown(file, "10.9.9.9", 2222, KeyB, hash: false).Status);
            Assert.Single(File.ReadAllLines(file));

            // Appending keeps existing content and adds a newline if the file lacked one.
            File.AppendAllText(file, "# no newline at end");
            store.AddIfUnknown(file, "other", 22, KeyB, hash: true);
            var lines = File.ReadAllLines(file);
            Assert.Equal(3, lines.Length);
            Assert.StartsWith("|1|", lines[2]);
            Assert.Equal(HostKeyStatus.Trusted, store.Check(new[] { file }, "other", 22, KeyB).Status);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Fingerprints_are_OpenSSH_SHA256()
    {
        var blob = Convert.FromBase64String("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl");
        Assert.Equal("ssh-ed25519", SshKeyBlob.KeyType(blob));
        Assert.Equal("SHA256:" + Convert.ToBase64String(SHA256.HashData(blob)).TrimEnd('='), SshKeyBlob.Fingerprint(blob));
        Assert.DoesNotContain("=", SshKeyBlob.Fingerprint(blob));
    }
}

/// <summary>Builds SSH wire data for tests (independent of the engine's writer).</summary>
internal sealed class SshWriterForTests
{
    private readonly MemoryStream _stream = new();

    public SshWriterForTests Byte(byte b)
    {
        _stream.WriteByte(b);
        return this;
    }

    public SshWriterForTests UInt32(uint value)
    {
        _stream.Write(new[] { (byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value });
        return this;
    }

    public SshWriterForTests String(byte[] value)
    {
        UInt32((uint)value.Length);
        _stream.Write(value);
        return this;
    }

    public SshWriterForTests String(string value) => String(Encoding.UTF8.GetBytes(value));

    public byte[] ToArray() => _stream.ToArray();
}
