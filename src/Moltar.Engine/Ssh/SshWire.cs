using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>SSH wire encoding (RFC 4251 §5): uint32, string, and the key helpers built on them.</summary>
#pragma warning disable CA1001 // its MemoryStream holds nothing to release: disposing it is a no-op
internal sealed class SshWriter
#pragma warning restore CA1001
{
    private readonly MemoryStream _stream = new();

    public SshWriter WriteByte(byte value)
    {
        _stream.WriteByte(value);
        return this;
    }

    public SshWriter WriteUInt32(uint value)
    {
        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(buffer, value);
        _stream.Write(buffer);
        return this;
    }

    public SshWriter WriteString(ReadOnlySpan<byte> value)
    {
        WriteUInt32((uint)value.Length);
        _stream.Write(value);
        return this;
    }

    public SshWriter WriteString(string value) => WriteString(Encoding.UTF8.GetBytes(value));

    public byte[] ToArray() => _stream.ToArray();
}

internal sealed class SshReader
{
    private readonly byte[] _data;
    private int _offset;

    public SshReader(byte[] data, int offset = 0)
    {
        _data = data;
        _offset = offset;
    }

    public int Remaining => _data.Length - _offset;

    public byte ReadByte()
    {
        if (Remaining < 1)
        {
            throw new FormatException("Truncated SSH message (byte).");
        }

        return _data[_offset++];
    }

    public uint ReadUInt32()
    {
        if (Remaining < 4)
        {
            throw new FormatException("Truncated SSH message (uint32).");
        }

        var value = BinaryPrimitives.ReadUInt32BigEndian(_data.AsSpan(_offset, 4));
        _offset += 4;
        return value;
    }

    public byte[] ReadString()
    {
        var length = ReadUInt32();
        if (length > (uint)Remaining)
        {
            throw new FormatException($"Truncated SSH message (string of {length} bytes, {Remaining} left).");
        }

        var value = _data.AsSpan(_offset, (int)length).ToArray();
        _offset += (int)length;
        return value;
    }

    public string ReadUtf8() => Encoding.UTF8.GetString(ReadString());
}

/// <summary>Public key blobs and their OpenSSH fingerprints.</summary>
public static class SshKeyBlob
{
    /// <summary>The key type named inside a public key blob ("ssh-ed25519", "ssh-rsa", ...).</summary>
    public static string KeyType(byte[] blob)
    {
        try
        {
            return new SshReader(blob).ReadUtf8();
        }
        catch (FormatException)
        {
            return "unknown";
        }
    }

    /// <summary>OpenSSH's SHA256 fingerprint: "SHA256:" + unpadded base64 of SHA-256(blob).</summary>
    public static string Fingerprint(byte[] blob) =>
        "SHA256:" + Convert.ToBase64String(SHA256.HashData(blob)).TrimEnd('=');

    /// <summary>The short name OpenSSH prints for a key type: ED25519, RSA, ECDSA, ...</summary>
    public static string ShortTypeName(string keyType) => keyType switch
    {
        "ssh-ed25519" => "ED25519",
        "ssh-rsa" => "RSA",
        "ssh-dss" => "DSA",
        _ when keyType.StartsWith("ecdsa-sha2-", StringComparison.Ordinal) => "ECDSA",
        _ when keyType.StartsWith("sk-", StringComparison.Ordinal) => "SK",
        _ => keyType,
    };

    /// <summary>Host key algorithms that can present a key of this blob type, most preferred first.</summary>
    public static bool IsCertificate(string keyType) => keyType.EndsWith("-cert-v01@openssh.com", StringComparison.Ordinal);

    /// <summary>The plain key a certificate certifies, as a public key blob (null when the blob is no certificate Moltar reads).</summary>
    public static byte[]? CertifiedKey(byte[] certificate)
    {
        try
        {
            var reader = new SshReader(certificate);
            var type = reader.ReadUtf8();
            reader.ReadString(); // nonce
            var writer = new SshWriter();
            switch (type)
            {
                case "ssh-ed25519-cert-v01@openssh.com":
                    return writer.WriteString("ssh-ed25519").WriteString(reader.ReadString()).ToArray();
                case "ssh-rsa-cert-v01@openssh.com":
                    var e = reader.ReadString();
                    var n = reader.ReadString();
                    return writer.WriteString("ssh-rsa").WriteString(e).WriteString(n).ToArray();
                case "ecdsa-sha2-nistp256-cert-v01@openssh.com":
                case "ecdsa-sha2-nistp384-cert-v01@openssh.com":
                case "ecdsa-sha2-nistp521-cert-v01@openssh.com":
                    var curve = reader.ReadString();
                    var q = reader.ReadString();
                    return writer.WriteString(type.Substring(0, type.Length - "-cert-v01@openssh.com".Length)).WriteString(curve).WriteString(q).ToArray();
                default:
                    return null;
            }
        }
        catch (FormatException)
        {
            return null;
        }
    }

    public static IReadOnlyList<string> AlgorithmsForKeyType(string keyType) => keyType switch
    {
        "ssh-rsa" => new[] { "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa" },
        "ssh-rsa-cert-v01@openssh.com" => new[] { "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com" },
        _ => new[] { keyType },
    };
}
