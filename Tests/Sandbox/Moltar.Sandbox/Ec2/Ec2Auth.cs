namespace Moltar.Sandbox.Ec2;

/// <summary>What the sandbox reads from a SigV4 Authorization header.</summary>
public sealed record Ec2Credential(string AccessKeyId, string Date, string Region, string Service, IReadOnlyList<string> SignedHeaders, string Signature);

/// <summary>
/// Checks the shape of a SigV4 <c>Authorization</c> header:
/// <c>AWS4-HMAC-SHA256 Credential=AKID/yyyymmdd/region/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex64</c>.
/// The signature itself is not verified (the sandbox does not know the secret key).
/// </summary>
public static class Ec2Auth
{
    public const string Algorithm = "AWS4-HMAC-SHA256";

    /// <summary>Parses the header; throws MissingAuthenticationToken when absent, AuthFailure when malformed.</summary>
    public static Ec2Credential Parse(string? header, string? amzDate, string service = "ec2")
    {
        if (string.IsNullOrWhiteSpace(header))
        {
            throw Ec2Error.MissingAuthenticationToken();
        }
        header = header.Trim();
        if (!header.StartsWith(Algorithm + " ", StringComparison.Ordinal))
        {
            throw Ec2Error.AuthFailure($"Unsupported Authorization Type; expected {Algorithm}");
        }
        string? credential = null, signedHeaders = null, signature = null;
        foreach (var part in header[(Algorithm.Length + 1)..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0)
            {
                throw Malformed($"'{part}' is not a key=value pair");
            }
            var value = part[(eq + 1)..];
            switch (part[..eq])
            {
                case "Credential": credential = value; break;
                case "SignedHeaders": signedHeaders = value; break;
                case "Signature": signature = value; break;
                default: throw Malformed($"unknown component '{part[..eq]}'");
            }
        }
        if (credential is null || signedHeaders is null || signature is null)
        {
            throw Malformed("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'");
        }

        var scope = credential.Split('/');
        if (scope.Length != 5 || scope[0].Length == 0)
        {
            throw Malformed($"Credential '{credential}' must be AccessKeyId/date/region/service/aws4_request");
        }
        if (scope[1].Length != 8 || !scope[1].All(char.IsAsciiDigit))
        {
            throw Malformed($"Credential date '{scope[1]}' must be yyyyMMdd");
        }
        if (scope[2].Length == 0)
        {
            throw Malformed("Credential has no region");
        }
        if (scope[3] != service)
        {
            throw Ec2Error.AuthFailure($"Credential should be scoped to correct service: '{service}', not '{scope[3]}'.");
        }
        if (scope[4] != "aws4_request")
        {
            throw Malformed($"Credential should be scoped with a valid terminator: 'aws4_request', not '{scope[4]}'.");
        }

        var headers = signedHeaders.Split(';');
        if (headers.Any(h => h.Length == 0 || h != h.ToLowerInvariant()) || !headers.Contains("host"))
        {
            throw Malformed($"SignedHeaders '{signedHeaders}' must be lowercase, ';'-separated and include host");
        }
        if (signature.Length != 64 || !signature.All(char.IsAsciiHexDigitLower))
        {
            throw Malformed("Signature must be 64 lowercase hex characters");
        }
        if (string.IsNullOrEmpty(amzDate))
        {
            throw Malformed("Request has no X-Amz-Date (or Date) header");
        }
        if (!amzDate.StartsWith(scope[1], StringComparison.Ordinal) && amzDate.Length == 16)
        {
            throw Ec2Error.AuthFailure($"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope[1]}' != '{amzDate[..8]}'");
        }
        return new Ec2Credential(scope[0], scope[1], scope[2], scope[3], headers, signature);
    }

    private static Ec2Error Malformed(string detail) => Ec2Error.AuthFailure("Malformed Authorization header: " + detail);
}
