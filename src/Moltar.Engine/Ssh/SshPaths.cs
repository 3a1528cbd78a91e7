using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>Home directory, ~ expansion and ssh_config(5) TOKENS (%d %u %i %h %r %p %n %k %l %L %C %%) and ${ENV}.</summary>
public static class SshPaths
{
    public static OpenSshPlatform CurrentPlatform => OperatingSystem.IsWindows() ? OpenSshPlatform.Windows : OpenSshPlatform.Unix;

    public static string DefaultHome() => Platform(CurrentPlatform).Home;

    /// <summary>Where OpenSSH looks on a platform (the environment as a parameter, so Windows' rules are testable anywhere).</summary>
    public static SshPlatformPaths Platform(OpenSshPlatform platform, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? Env(string name) => environment(name) is { Length: > 0 } v ? v : null;
        if (platform == OpenSshPlatform.Windows)
        {
            // Win32-OpenSSH: the user's files under %USERPROFILE%\.ssh, the system's under %ProgramData%\ssh
            // (never C:\etc\ssh, a folder any local user could create).
            var profile = Env("USERPROFILE")
                ?? (Env("HOMEDRIVE") is { } drive && Env("HOMEPATH") is { } path ? drive + path : null)
                ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            var programData = Env("ProgramData") ?? Env("ALLUSERSPROFILE") ?? @"C:\ProgramData";
            return new SshPlatformPaths(platform, profile, programData.TrimEnd('\\') + @"\ssh");
        }

        var home = Env("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return new SshPlatformPaths(platform, home, "/etc/ssh");
    }

    public static string ExpandTilde(string path, string home)
    {
        if (path == "~")
        {
            return home;
        }

        if (path.StartsWith("~/", StringComparison.Ordinal) || path.StartsWith("~\\", StringComparison.Ordinal))
        {
            return Path.Combine(home, path.Substring(2));
        }

        return path;
    }

    /// <summary>Values for the %-tokens of ssh_config(5).</summary>
    public sealed record TokenValues(string Home, string RemoteHost, string? RemoteUser = null, int? Port = null, string? OriginalHost = null);

    /// <summary>Expands ${VAR}, %-tokens and ~ in a path from ssh config; unknown tokens are left as written.</summary>
    public static string ExpandPath(string value, TokenValues tokens)
        => ExpandTilde(ExpandTokens(ExpandEnvironment(value), tokens), tokens.Home);

    public static string ExpandTokens(string value, TokenValues t)
    {
        if (value.IndexOf('%') < 0)
        {
            return value;
        }

        var sb = new StringBuilder(value.Length + 32);
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c != '%' || i + 1 >= value.Length)
            {
                sb.Append(c);
                continue;
            }

            var token = value[++i];
            switch (token)
            {
                case '%': sb.Append('%'); break;
                case 'd': sb.Append(t.Home); break;
                case 'u': sb.Append(LocalUser()); break;
                case 'i': sb.Append(LocalUserId()); break;
                case 'h': sb.Append(t.RemoteHost); break;
                case 'n': sb.Append(t.OriginalHost ?? t.RemoteHost); break;
                case 'k': sb.Append(t.OriginalHost ?? t.RemoteHost); break;
                case 'r': sb.Append(t.RemoteUser ?? ""); break;
                case 'p': sb.Append(Port(t)); break;
                case 'l': sb.Append(LocalHostName()); break;
                case 'L': sb.Append(LocalHostName().Split('.')[0]); break;
                case 'C': sb.Append(ConnectionHash(t)); break;
                default: sb.Append('%').Append(token); break;
            }
        }

        return sb.ToString();
    }

    private static string Port(TokenValues t) => t.Port?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "22";

    /// <summary>%C: SHA-1 of %l%h%p%r in hex (OpenSSH 9.2; later versions also hash the jump host).</summary>
    public static string ConnectionHash(TokenValues t)
    {
        var text = LocalHostName() + t.RemoteHost + Port(t) + (t.RemoteUser ?? "");
#pragma warning disable CA5350 // ssh_config's %C is SHA-1 of these values: the same hash gives the same path as ssh
        return Convert.ToHexString(System.Security.Cryptography.SHA1.HashData(Encoding.UTF8.GetBytes(text))).ToLowerInvariant();
#pragma warning restore CA5350
    }

    private static string LocalUser() => Environment.UserName;

    /// <summary>The local host name as gethostname(2) gives it (ssh's %l).</summary>
    private static string LocalHostName() => System.Net.Dns.GetHostName();

    private static string LocalUserId()
    {
        if (OperatingSystem.IsWindows())
        {
            return "0";
        }

        try
        {
            return GetUid().ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return "0";
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getuid")]
    private static extern uint GetUid();

    public static string ExpandEnvironment(string value)
    {
        var start = value.IndexOf("${", StringComparison.Ordinal);
        if (start < 0)
        {
            return value;
        }

        var sb = new StringBuilder();
        var i = 0;
        while (start >= 0)
        {
            var end = value.IndexOf('}', start + 2);
            if (end < 0)
            {
                break;
            }

            sb.Append(value, i, start - i);
            sb.Append(Environment.GetEnvironmentVariable(value.Substring(start + 2, end - start - 2)) ?? "");
            i = end + 1;
            start = value.IndexOf("${", i, StringComparison.Ordinal);
        }

        sb.Append(value, i, value.Length - i);
        return sb.ToString();
    }
}

/// <summary>OpenSSH's default files on one platform.</summary>
public sealed record SshPlatformPaths(OpenSshPlatform Platform, string Home, string SystemDirectory)
{
    private char Separator => Platform == OpenSshPlatform.Windows ? '\\' : '/';

    public string Join(string directory, string name) => directory.TrimEnd(Separator) + Separator + name;

    public string UserDirectory => Join(Home, ".ssh");
    public string UserConfig => Join(UserDirectory, "config");
    public IReadOnlyList<string> UserKnownHosts => new[] { Join(UserDirectory, "known_hosts"), Join(UserDirectory, "known_hosts2") };
    public string SystemConfig => Join(SystemDirectory, "ssh_config");
    public IReadOnlyList<string> GlobalKnownHosts => new[] { Join(SystemDirectory, "ssh_known_hosts"), Join(SystemDirectory, "ssh_known_hosts2") };
    public IReadOnlyList<string> DefaultIdentityFiles => new[] { "id_ed25519", "id_ecdsa", "id_rsa" }.Select(n => Join(UserDirectory, n)).ToList();
}
