using System.Buffers.Binary;
using System.IO.Pipes;
using System.Net.Sockets;
using Renci.SshNet;
using Renci.SshNet.Security;

namespace Moltar.Engine.Ssh;

/// <summary>One key the agent holds: its public blob and comment. Never key material.</summary>
public sealed record SshAgentIdentity(byte[] PublicKeyBlob, string Comment)
{
    public string KeyType => SshKeyBlob.KeyType(PublicKeyBlob);
    public string Fingerprint => SshKeyBlob.Fingerprint(PublicKeyBlob);
}

/// <summary>The ssh-agent protocol messages Moltar uses (draft-miller-ssh-agent): list identities and sign.</summary>
public static class SshAgentProtocol
{
#pragma warning disable CA1707 // the protocol's own names (draft-miller-ssh-agent), as OpenSSH spells them
    public const byte SSH_AGENT_FAILURE = 5;
    public const byte SSH_AGENTC_REQUEST_IDENTITIES = 11;
    public const byte SSH_AGENT_IDENTITIES_ANSWER = 12;
    public const byte SSH_AGENTC_SIGN_REQUEST = 13;
    public const byte SSH_AGENT_SIGN_RESPONSE = 14;
    public const uint SSH_AGENT_RSA_SHA2_256 = 2;
    public const uint SSH_AGENT_RSA_SHA2_512 = 4;
#pragma warning restore CA1707
    /// <summary>Largest reply accepted (OpenSSH's agent limit).</summary>
    public const int MaxMessageLength = 256 * 1024;

    /// <summary>A framed request: uint32 length, then the body.</summary>
    public static byte[] Frame(byte[] body)
    {
        var framed = new byte[body.Length + 4];
        BinaryPrimitives.WriteUInt32BigEndian(framed, (uint)body.Length);
        body.CopyTo(framed, 4);
        return framed;
    }

    public static byte[] EncodeRequestIdentities() => Frame(new[] { SSH_AGENTC_REQUEST_IDENTITIES });

    public static byte[] EncodeSignRequest(byte[] keyBlob, byte[] data, uint flags) =>
        Frame(new SshWriter().WriteByte(SSH_AGENTC_SIGN_REQUEST).WriteString(keyBlob).WriteString(data).WriteUInt32(flags).ToArray());

    /// <summary>The sign flags for a signature algorithm name (rsa-sha2-256 → 2, rsa-sha2-512 → 4, else 0).</summary>
    public static uint FlagsFor(string algorithm) => algorithm switch
    {
        "rsa-sha2-256" or "rsa-sha2-256-cert-v01@openssh.com" => SSH_AGENT_RSA_SHA2_256,
        "rsa-sha2-512" or "rsa-sha2-512-cert-v01@openssh.com" => SSH_AGENT_RSA_SHA2_512,
        _ => 0,
    };

    /// <summary>Decodes an identities answer (the body: type byte onwards).</summary>
    public static IReadOnlyList<SshAgentIdentity> DecodeIdentitiesAnswer(byte[] body)
    {
        var reader = new SshReader(body);
        var type = reader.ReadByte();
        if (type == SSH_AGENT_FAILURE)
        {
            throw new SshAgentException("the agent refused to list its keys");
        }

        if (type != SSH_AGENT_IDENTITIES_ANSWER)
        {
            throw new SshAgentException($"unexpected agent reply {type} to a key listing");
        }

        var count = reader.ReadUInt32();
        if (count > 2048)
        {
            throw new SshAgentException($"the agent claims {count} keys");
        }

        var result = new List<SshAgentIdentity>((int)count);
        for (var i = 0; i < count; i++)
        {
            var blob = reader.ReadString();
            var comment = reader.ReadUtf8();
            result.Add(new SshAgentIdentity(blob, comment));
        }

        return result;
    }

    /// <summary>Decodes a sign response: the signature blob (string algorithm, string signature), verbatim.</summary>
    public static byte[] DecodeSignResponse(byte[] body)
    {
        var reader = new SshReader(body);
        var type = reader.ReadByte();
        if (type == SSH_AGENT_FAILURE)
        {
            throw new SshAgentException("the agent refused to sign");
        }

        if (type != SSH_AGENT_SIGN_RESPONSE)
        {
            throw new SshAgentException($"unexpected agent reply {type} to a sign request");
        }

        return reader.ReadString();
    }
}

public sealed class SshAgentException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Talks to ssh-agent over its Unix socket (SSH_AUTH_SOCK) or the Windows OpenSSH agent's named pipe.
/// One short connection per request, so any number of threads can sign at once.
/// </summary>
public sealed class SshAgentClient
{
    public const string WindowsPipe = @"\\.\pipe\openssh-ssh-agent";

    private readonly TimeSpan _timeout;

    public SshAgentClient(string path, TimeSpan? timeout = null)
    {
        Path = path;
        _timeout = timeout ?? TimeSpan.FromSeconds(30);
    }

    public string Path { get; }

    /// <summary>SSH_AUTH_SOCK, else (on Windows) the OpenSSH agent pipe or Pageant's, else null.</summary>
    public static string? DefaultPath() => DefaultPath(SshPaths.CurrentPlatform, Environment.GetEnvironmentVariable, ListPipes);

    /// <summary>
    /// The agent to ask when neither -AgentPath nor IdentityAgent names one: SSH_AUTH_SOCK; on Windows the
    /// Win32-OpenSSH agent's pipe when it runs, else Pageant's (\\.\pipe\pageant.USER.HASH, PuTTY 0.75+), else the
    /// OpenSSH pipe (so the error names it). Platform, environment and pipe list are parameters: testable anywhere.
    /// </summary>
    public static string? DefaultPath(OpenSshPlatform platform, Func<string, string?> environment, Func<IEnumerable<string>> pipes)
    {
        var sock = environment("SSH_AUTH_SOCK");
        if (!string.IsNullOrEmpty(sock))
        {
            return sock;
        }

        if (platform != OpenSshPlatform.Windows)
        {
            return null;
        }

        var names = pipes().ToList();
        if (names.Contains("openssh-ssh-agent", StringComparer.OrdinalIgnoreCase))
        {
            return WindowsPipe;
        }

        var user = environment("USERNAME") is { Length: > 0 } u ? u : Environment.UserName;
        var pageant = names.Where(n => n.StartsWith($"pageant.{user}.", StringComparison.OrdinalIgnoreCase)).OrderBy(n => n, StringComparer.Ordinal).FirstOrDefault();
        return pageant is null ? WindowsPipe : @"\\.\pipe\" + pageant;
    }

    private static IEnumerable<string> ListPipes()
    {
        if (!OperatingSystem.IsWindows())
        {
            return Array.Empty<string>();
        }

        try
        {
            return Directory.GetFiles(@"\\.\pipe\").Select(System.IO.Path.GetFileName).OfType<string>().ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Array.Empty<string>();
        }
    }

    public IReadOnlyList<SshAgentIdentity> ListIdentities() =>
        SshAgentProtocol.DecodeIdentitiesAnswer(Request(SshAgentProtocol.EncodeRequestIdentities()));

    public byte[] Sign(byte[] keyBlob, byte[] data, uint flags) =>
        SshAgentProtocol.DecodeSignResponse(Request(SshAgentProtocol.EncodeSignRequest(keyBlob, data, flags)));

    private byte[] Request(byte[] framed)
    {
        try
        {
            using var stream = Open();
            stream.Write(framed);
            stream.Flush();
            var header = new byte[4];
            stream.ReadExactly(header);
            var length = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (length == 0 || length > SshAgentProtocol.MaxMessageLength)
            {
                throw new SshAgentException($"the agent sent a reply of {length} bytes");
            }

            var body = new byte[length];
            stream.ReadExactly(body);
            return body;
        }
        catch (Exception e) when (e is IOException or SocketException or TimeoutException or UnauthorizedAccessException or EndOfStreamException)
        {
            throw new SshAgentException($"ssh-agent at {Path} could not be reached: {e.Message}", e);
        }
    }

    private Stream Open()
    {
        var timeoutMs = (int)Math.Min(int.MaxValue, _timeout.TotalMilliseconds);
        if (Path.StartsWith(@"\\.\pipe\", StringComparison.OrdinalIgnoreCase) || Path.StartsWith("//./pipe/", StringComparison.OrdinalIgnoreCase))
        {
            var pipe = new NamedPipeClientStream(".", Path.Substring(9), PipeDirection.InOut);
            pipe.Connect(timeoutMs);
            return pipe;
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        {
            ReceiveTimeout = timeoutMs,
            SendTimeout = timeoutMs,
        };
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(Path));
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new NetworkStream(socket, ownsSocket: true);
    }
}

/// <summary>
/// A key held by the agent, as SSH.NET's public-key authentication wants it: Name is the signature algorithm
/// sent (rsa-sha2-512/256 for RSA, with the matching agent flag), Data the public blob, Sign asks the agent.
/// </summary>
internal sealed class AgentHostAlgorithm : HostAlgorithm
{
    private readonly SshAgentClient _agent;
    private readonly SshAgentIdentity _identity;
    private readonly uint _flags;

    private readonly byte[] _offered;

    /// <param name="offered">What the server is shown: the key itself, or a certificate of it (from a file) the agent's key signs for.</param>
    public AgentHostAlgorithm(string name, SshAgentIdentity identity, SshAgentClient agent, byte[]? offered = null)
        : base(name)
    {
        _agent = agent;
        _identity = identity;
        _flags = SshAgentProtocol.FlagsFor(name);
        _offered = offered ?? identity.PublicKeyBlob;
    }

    public override byte[] Data => _offered;

    public override byte[] Sign(byte[] data) => _agent.Sign(_identity.PublicKeyBlob, data, _flags);

    public override bool VerifySignature(byte[] data, byte[] signature) => throw new NotSupportedException();
}

/// <summary>An IPrivateKeySource over ready-made host algorithms.</summary>
internal sealed class AlgorithmKeySource(IReadOnlyCollection<HostAlgorithm> algorithms) : IPrivateKeySource
{
    public IReadOnlyCollection<HostAlgorithm> HostKeyAlgorithms { get; } = algorithms;
}
