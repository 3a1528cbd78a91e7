using System.Net.Sockets;
using System.Text;
using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

public sealed class AgentProtocolTests
{
    [Fact]
    public void Request_identities_is_a_framed_11()
    {
        Assert.Equal(new byte[] { 0, 0, 0, 1, 11 }, SshAgentProtocol.EncodeRequestIdentities());
    }

    [Fact]
    public void Sign_request_carries_key_data_and_flags()
    {
        var key = new byte[] { 1, 2, 3 };
        var data = Encoding.ASCII.GetBytes("session");
        var expectedBody = new SshWriterForTests().Byte(13).String(key).String(data).UInt32(4).ToArray();
        var framed = SshAgentProtocol.EncodeSignRequest(key, data, SshAgentProtocol.SSH_AGENT_RSA_SHA2_512);
        Assert.Equal(new byte[] { 0, 0, 0, (byte)expectedBody.Length }, framed.Take(4));
        Assert.Equal(expectedBody, framed.Skip(4));
    }

    [Theory]
    [InlineData("rsa-sha2-256", 2u)]
    [InlineData("rsa-sha2-512", 4u)]
    [InlineData("ssh-ed25519", 0u)]
    [InlineData("ecdsa-sha2-nistp256", 0u)]
    public void Rsa_sha2_flags(string algorithm, uint flags)
    {
        Assert.Equal(flags, SshAgentProtocol.FlagsFor(algorithm));
    }

    [Fact]
    public void Identities_answer_decodes_blobs_and_comments()
    {
        var blob1 = new SshWriterForTests().String("ssh-ed25519").String(new byte[32]).ToArray();
        var blob2 = new SshWriterForTests().String("ssh-rsa").String(new byte[] { 1, 0, 1 }).String(new byte[64]).ToArray();
        var body = new SshWriterForTests().Byte(12).UInt32(2).String(blob1).String("me@laptop").String(blob2).String("").ToArray();
        var ids = SshAgentProtocol.DecodeIdentitiesAnswer(body);
        Assert.Equal(2, ids.Count);
        Assert.Equal("ssh-ed25519", ids[0].KeyType);
        Assert.Equal("me@laptop", ids[0].Comment);
        Assert.Equal(blob2, ids[1].PublicKeyBlob);
        Assert.Equal("ssh-rsa", ids[1].KeyType);
    }

    [Fact]
    public void Failure_and_truncated_replies_are_errors()
    {
        Assert.Throws<SshAgentException>(() => SshAgentProtocol.DecodeIdentitiesAnswer(new byte[] { 5 }));
        Assert.Throws<SshAgentException>(() => SshAgentProtocol.DecodeSignResponse(new byte[] { 5 }));
        Assert.Throws<SshAgentException>(() => SshAgentProtocol.DecodeSignResponse(new byte[] { 12, 0 }));
        Assert.Throws<FormatException>(() => SshAgentProtocol.DecodeIdentitiesAnswer(new byte[] { 12, 0, 0, 0, 1, 0, 0, 0, 9, 1 }));
    }

    [Fact]
    public void Sign_response_returns_the_signature_blob_verbatim()
    {
        var signature = new SshWriterForTests().String("rsa-sha2-512").String(new byte[] { 9, 9, 9 }).ToArray();
        var body = new SshWriterForTests().Byte(14).String(signature).ToArray();
        Assert.Equal(signature, SshAgentProtocol.DecodeSignResponse(body));
    }

    [Fact]
    public void Client_talks_to_a_unix_socket_agent()
    {
        // A one-shot fake agent: answers a listing with one key, then a sign request with a fixed signature.
        var dir = Directory.CreateTempSubdirectory("moltar-agent-").FullName;
        var path = Path.Combine(dir, "agent.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(4);
        var blob = new SshWriterForTests().String("ssh-ed25519").String(new byte[32]).ToArray();
        var requests = new List<byte[]>();
        var server = Task.Run(() =>
        {
            for (var i = 0; i < 2; i++)
            {
                using var s = listener.Accept();
                var header = new byte[4];
                s.Receive(header);
                var length = (header[0] << 24) | (header[1] << 16) | (header[2] << 8) | header[3];
                var request = new byte[length];
                var got = 0;
                while (got < length)
                {
                    got += s.Receive(request, got, length - got, SocketFlags.None);
                }

                requests.Add(request);
                var reply = request[0] == 11
                    ? new SshWriterForTests().Byte(12).UInt32(1).String(blob).String("fake").ToArray()
                    : new SshWriterForTests().Byte(14).String(new SshWriterForTests().String("ssh-ed25519").String(new byte[64]).ToArray()).ToArray();
                s.Send(SshAgentProtocol.Frame(reply));
            }
        });

        try
        {
            var client = new SshAgentClient(path);
            var id = Assert.Single(client.ListIdentities());
            Assert.Equal("fake", id.Comment);
            var sig = client.Sign(id.PublicKeyBlob, new byte[] { 1, 2 }, 0);
            Assert.Equal(4 + 11 + 4 + 64, sig.Length);
            server.Wait(TimeSpan.FromSeconds(5));
            Assert.Equal(13, requests[1][0]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void An_unreachable_agent_is_an_agent_error()
    {
        var client = new SshAgentClient("/nonexistent/moltar/agent.sock");
        var e = Assert.Throws<SshAgentException>(() => client.ListIdentities());
        Assert.Contains("/nonexistent/moltar/agent.sock", e.Message);
    }
}
