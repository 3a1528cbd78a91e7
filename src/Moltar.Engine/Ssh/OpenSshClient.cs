namespace Moltar.Engine.Ssh;

/// <summary>Finds the system OpenSSH client (ssh) that Enter-MoltarInstance hands the terminal to.</summary>
public static class OpenSshClient
{
    /// <summary>The error id when no ssh client is installed.</summary>
    public const string NotFoundErrorId = "SshClientNotFound";

    /// <summary>
    /// The ssh executable: the first "ssh" on PATH that can be run (on Windows "ssh.exe" on PATH, then the
    /// built-in %SystemRoot%\System32\OpenSSH\ssh.exe); null when there is none.
    /// </summary>
    public static string? Find(string? pathVariable, bool windows, string? systemRoot = null)
    {
        var separator = windows ? ';' : ':';
        var name = windows ? "ssh.exe" : "ssh";
        foreach (var entry in (pathVariable ?? "").Split(separator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var directory = entry.Trim('"');
            if (directory.Length == 0)
            {
                continue;
            }

            var candidate = Path.Combine(directory, name);
            if (IsRunnable(candidate, windows))
            {
                return candidate;
            }
        }

        if (windows && !string.IsNullOrEmpty(systemRoot))
        {
            var builtIn = Path.Combine(systemRoot, "System32", "OpenSSH", "ssh.exe");
            if (IsRunnable(builtIn, windows))
            {
                return builtIn;
            }
        }

        return null;
    }

    /// <summary>Find for this process: its PATH, its OS, its SystemRoot.</summary>
    public static string? FindForCurrentProcess() =>
        Find(Environment.GetEnvironmentVariable("PATH"), OperatingSystem.IsWindows(),
             OperatingSystem.IsWindows() ? Environment.GetEnvironmentVariable("SystemRoot") ?? @"C:\Windows" : null);

    /// <summary>What to tell a user who has no ssh client: how to install one on each OS.</summary>
    public static string NotFoundMessage(bool windows) =>
        "No OpenSSH client was found: Enter-MoltarInstance runs the system 'ssh', and there is no " +
        (windows ? "ssh.exe on PATH nor in %SystemRoot%\\System32\\OpenSSH" : "'ssh' on PATH") + ". Install it: " +
        "Debian/Ubuntu: sudo apt-get install openssh-client; " +
        "RHEL/Fedora/CentOS: sudo dnf install openssh-clients; " +
        "macOS: ssh ships with the system (/usr/bin/ssh), or brew install openssh; " +
        "Windows: Add-WindowsCapability -Online -Name OpenSSH.Client~~~~0.0.1.0 (as administrator; or Settings > Optional features > OpenSSH Client). " +
        "Then check with 'ssh -V'. The other Moltar cmdlets do not need it.";

    internal static bool IsRunnable(string path, bool windows)
    {
        try
        {
            if (!File.Exists(path))
            {
                return false;
            }

            if (windows || OperatingSystem.IsWindows())
            {
                return true;
            }

            const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return (File.GetUnixFileMode(path) & anyExecute) != 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
