using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>Home directory, ~ expansion and ssh_config(5) TOKENS (%d %u %h %r %p %n %l %%) and ${ENV}.</summary>
public static class SshPaths
{
    public static string DefaultHome()
    {
        var home = Environment.GetEnvironmentVariable("HOME");
        if (string.IsNullOrEmpty(home))
        {
            home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        }

        return home;
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

    /// <summary>Expands ~, ${VAR} and %-tokens in a path from ssh config; unknown tokens are left as written.</summary>
    public static string ExpandPath(string value, TokenValues tokens)
    {
        var expanded = ExpandTokens(ExpandEnvironment(value), tokens);
        return ExpandTilde(expanded, tokens.Home);
    }

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
                case 'u': sb.Append(Environment.UserName); break;
                case 'h': sb.Append(t.RemoteHost); break;
                case 'n': sb.Append(t.OriginalHost ?? t.RemoteHost); break;
                case 'r': sb.Append(t.RemoteUser ?? ""); break;
                case 'p': sb.Append(t.Port?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "22"); break;
                case 'l': sb.Append(Environment.MachineName.Split('.')[0]); break;
                case 'L': sb.Append(Environment.MachineName.Split('.')[0]); break;
                default: sb.Append('%').Append(token); break;
            }
        }

        return sb.ToString();
    }

    private static string ExpandEnvironment(string value)
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
