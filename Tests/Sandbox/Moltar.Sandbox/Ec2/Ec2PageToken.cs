using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Moltar.Sandbox.Ec2;

/// <summary>
/// Opaque NextToken values. A token carries the offset of the next item and a MAC over the action,
/// the request's filter signature and the offset, so a forged token, or one reused with other
/// filters, is rejected like EC2 rejects a bad token.
/// </summary>
public sealed class Ec2PageToken
{
    private readonly byte[] key = RandomNumberGenerator.GetBytes(32);

    public string Create(string action, string signature, int offset)
    {
        var payload = new byte[4 + 24];
        BinaryPrimitives.WriteInt32BigEndian(payload, offset);
        Mac(action, signature, offset).AsSpan(0, 24).CopyTo(payload.AsSpan(4));
        return Convert.ToBase64String(payload).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>The offset a token stands for; throws InvalidParameterValue when the token is not ours or not for this request.</summary>
    public int Parse(string action, string signature, string token)
    {
        try
        {
            var base64 = token.Replace('-', '+').Replace('_', '/');
            base64 += new string('=', (4 - base64.Length % 4) % 4);
            var payload = Convert.FromBase64String(base64);
            if (payload.Length == 28)
            {
                var offset = BinaryPrimitives.ReadInt32BigEndian(payload);
                var expected = Mac(action, signature, offset).AsSpan(0, 24);
                if (offset >= 0 && CryptographicOperations.FixedTimeEquals(expected, payload.AsSpan(4)))
                {
                    return offset;
                }
            }
        }
        catch (FormatException)
        {
        }
        throw Ec2Error.InvalidParameterValue($"Invalid value '{token}' for nextToken");
    }

    private byte[] Mac(string action, string signature, int offset) =>
        HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{action}\u0000{signature}\u0000{offset}"));
}
