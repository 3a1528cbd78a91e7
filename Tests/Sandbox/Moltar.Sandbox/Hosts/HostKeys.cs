using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Security;

namespace Moltar.Sandbox.Hosts;

/// <summary>
/// ed25519 key pairs in OpenSSH's own files, as `ssh-keygen -t ed25519 -N ''` writes them (an unencrypted
/// openssh-key-v1 private key, mode 600, and a one-line .pub). Made in-process because a fleet of hundreds of
/// hosts would otherwise start a ssh-keygen per host, one of the larger costs of a host's start.
/// </summary>
internal static class HostKeys
{
    private const string KeyType = "ssh-ed25519";

    /// <summary>Writes PATH and PATH.pub; returns the public key line ("ssh-ed25519 AAAA... comment").</summary>
    public static string WriteEd25519(string privateKeyPath, string comment)
    {
        var key = new Ed25519PrivateKeyParameters(new SecureRandom());
        var seed = key.GetEncoded();
        var pub = key.GeneratePublicKey().GetEncoded();
        var publicBlob = new Writer().Text(KeyType).Bytes(pub).ToArray();

        var check = (uint)RandomNumberGenerator.GetInt32(int.MaxValue);
        var section = new Writer().UInt32(check).UInt32(check).Text(KeyType).Bytes(pub).Bytes([.. seed, .. pub]).Text(comment);
        for (byte pad = 1; section.Length % 8 != 0; pad++) section.Byte(pad); // the "none" cipher's block size
        var body = new Writer().Raw("openssh-key-v1\0"u8).Text("none").Text("none").Bytes([]).UInt32(1)
            .Bytes(publicBlob).Bytes(section.ToArray()).ToArray();

        var base64 = Convert.ToBase64String(body);
        var text = new StringBuilder("-----BEGIN OPENSSH PRIVATE KEY-----\n");
        for (var i = 0; i < base64.Length; i += 70) text.Append(base64.AsSpan(i, Math.Min(70, base64.Length - i))).Append('\n');
        text.Append("-----END OPENSSH PRIVATE KEY-----\n");

        var line = $"{KeyType} {Convert.ToBase64String(publicBlob)} {comment}";
        WriteNew(privateKeyPath, text.ToString(), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        WriteNew(privateKeyPath + ".pub", line + "\n",
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return line;
    }

    private static void WriteNew(string path, string text, UnixFileMode mode)
    {
        File.Delete(path);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = mode; // created private, never chmod-ed after
        using var stream = new FileStream(path, options);
        stream.Write(Encoding.ASCII.GetBytes(text));
    }

    /// <summary>SSH wire encoding: uint32 big-endian, strings and byte strings with a uint32 length.</summary>
    private sealed class Writer
    {
        private readonly MemoryStream _stream = new();

        public long Length => _stream.Length;

        public Writer UInt32(uint value)
        {
            Span<byte> buffer = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(buffer, value);
            _stream.Write(buffer);
            return this;
        }

        public Writer Bytes(ReadOnlySpan<byte> value)
        {
            UInt32((uint)value.Length);
            _stream.Write(value);
            return this;
        }

        public Writer Text(string value) => Bytes(Encoding.UTF8.GetBytes(value));

        public Writer Raw(ReadOnlySpan<byte> value)
        {
            _stream.Write(value);
            return this;
        }

        public Writer Byte(byte value)
        {
            _stream.WriteByte(value);
            return this;
        }

        public byte[] ToArray() => _stream.ToArray();
    }
}
