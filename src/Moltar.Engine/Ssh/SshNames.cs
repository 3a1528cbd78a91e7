namespace Moltar.Engine.Ssh;

/// <summary>
/// What a host name and a login user name may look like when Moltar hands them on: to SSH.NET, to the system ssh's
/// command line (Enter-MoltarInstance) and, through jump hosts, to a ProxyCommand that /bin/sh runs. Addresses come
/// from EC2, the pipeline or a project file, users from parameters, environment and project files: none of them is
/// trusted to be free of shell metacharacters, and a value starting with '-' would be read by ssh as an option
/// ("-oProxyCommand=..."). So they are checked, not just quoted.
/// </summary>
public static class SshNames
{
    /// <summary>
    /// A host name, IPv4 or IPv6 address (bare or in [brackets]; an IPv6 zone as %eth0): ASCII letters, digits and
    /// . _ - : %, not starting with '-', at most 255 characters.
    /// </summary>
    public static bool IsValidHost(string? host)
    {
        if (string.IsNullOrEmpty(host) || host.Length > 255)
        {
            return false;
        }

        var text = host.Length > 2 && host[0] == '[' && host[^1] == ']' ? host[1..^1] : host;
        return text.Length > 0 && text[0] != '-' && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':' or '%');
    }

    /// <summary>
    /// A login name: ASCII letters, digits and . _ - (and @ for directory users such as user@corp.example, and a
    /// trailing $ as Samba machine accounts have), not starting with '-' or '@', at most 64 characters.
    /// </summary>
    public static bool IsValidUser(string? user)
    {
        if (string.IsNullOrEmpty(user) || user.Length > 64 || user[0] is '-' or '@')
        {
            return false;
        }

        var body = user[^1] == '$' ? user[..^1] : user;
        return body.Length > 0 && body.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '@');
    }

    /// <summary>Why a host name was refused, for messages ("'x;y' is not ...").</summary>
    public static string HostRule => "a host name or IP address (letters, digits and . _ - : %, not starting with '-')";

    /// <summary>Why a user name was refused, for messages.</summary>
    public static string UserRule => "a user name (letters, digits and . _ - @, not starting with '-', at most 64 characters)";

    /// <summary>Throws ArgumentException when the host is not valid (what = where it came from, e.g. "The address").</summary>
    public static string CheckHost(string host, string what)
    {
        if (!IsValidHost(host))
        {
            throw new ArgumentException($"{what} '{host}' is not {HostRule}; refused before anything was run.");
        }

        return host;
    }
}
