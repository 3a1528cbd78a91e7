using System.Diagnostics;
using System.Text;

namespace Moltar.Sandbox.Ssm;

/// <summary>An sshd host of the sandbox the simulated agent of an instance runs its commands on.</summary>
public sealed record SsmHostTarget(string Address, int Port, string User, string ClientKeyPath, string KnownHostsPath, bool UseSudo);

/// <summary>What one run of a command document's script gave: exit code and both streams, whole.</summary>
public sealed record SsmAgentResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>
/// The simulated SSM agent: runs an invocation's script for real. On an instance backed by an sshd host it runs
/// on that host, as root (the real agent runs as root: <c>sudo -n</c> in own-root hosts), through the system OpenSSH
/// client with the fleet's client key: the script is written to the invocation's folder on the host
/// (/tmp/moltar-ssm/COMMAND/INSTANCE) and run by /bin/sh in its own session there, so a cancel or an execution
/// timeout kills its whole process group on the host. On a synthetic instance (no host behind it, e.g. the
/// benchmark's thousand) it runs locally with /bin/sh -c, as nobody when the sandbox runs as root.
/// </summary>
public static class SsmAgent
{
    public static Task<SsmAgentResult> RunAsync(SsmHostTarget? host, string commandId, string instanceId, string script,
                                                string? workingDirectory, CancellationToken stop) =>
        host is null
            ? RunLocalAsync(script, workingDirectory, stop)
            : RunOnHostAsync(host, $"{commandId}/{instanceId}", script, workingDirectory, stop);

    private static async Task<SsmAgentResult> RunOnHostAsync(SsmHostTarget host, string key, string script, string? workingDirectory, CancellationToken stop)
    {
        // $0 of the inner shell is the invocation folder; it records its pid (= its process group after setsid).
        const string inner = "echo $$ > \"$0/pid\"; exec /bin/sh \"$0/_script.sh\" </dev/null";
        var outer = "d=/tmp/moltar-ssm/$1; mkdir -p \"$d\" && cat > \"$d/_script.sh\" && cd \"${2:-$d}\" && exec setsid -w /bin/sh -c "
                    + Quote(inner) + " \"$d\"";
        var remote = (host.UseSudo ? "sudo -n " : "") + "/bin/sh -c " + Quote(outer) + " sh " + Quote(key) + " " + Quote(workingDirectory ?? "");
        using var process = Start(SshArguments(host, remote));
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.StandardInput.WriteAsync(script);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // ssh ended before reading the script (connection refused): its exit code and stderr say why.
        }
        try
        {
            await process.WaitForExitAsync(stop);
        }
        catch (OperationCanceledException)
        {
            await KillOnHostAsync(host, key);
            KillTree(process);
            await process.WaitForExitAsync(CancellationToken.None);
        }
        return new SsmAgentResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Kills the invocation's process group on the host (the pid file may lag the start by a moment: retried).</summary>
    private static async Task KillOnHostAsync(SsmHostTarget host, string key)
    {
        const string kill = "p=$(cat \"/tmp/moltar-ssm/$1/pid\" 2>/dev/null) && kill -9 -\"$p\"";
        var remote = (host.UseSudo ? "sudo -n " : "") + "/bin/sh -c " + Quote(kill) + " sh " + Quote(key);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            using var process = Start(SshArguments(host, remote));
            process.StandardInput.Close();
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync(CancellationToken.None);
            if (process.ExitCode == 0)
            {
                return;
            }
            await Task.Delay(200);
        }
    }

    private static async Task<SsmAgentResult> RunLocalAsync(string script, string? workingDirectory, CancellationToken stop)
    {
        // No host stands behind a synthetic instance, so its script would run on this machine: never as root (a
        // command meant for a fleet must not be able to harm the machine running the sandbox).
        bool dropRoot = Environment.IsPrivilegedProcess;
        var info = new ProcessStartInfo(dropRoot ? "setpriv" : "/bin/sh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = string.IsNullOrEmpty(workingDirectory) ? "/" : workingDirectory,
        };
        if (dropRoot)
        {
            foreach (var argument in SyntheticUserArguments)
            {
                info.ArgumentList.Add(argument);
            }
            info.ArgumentList.Add("/bin/sh");
        }
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(stop);
        }
        catch (OperationCanceledException)
        {
            KillTree(process);
            await process.WaitForExitAsync(CancellationToken.None);
        }
        return new SsmAgentResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>setpriv's arguments for the unprivileged user (nobody) a synthetic instance's script runs as when the sandbox runs as root.</summary>
    private static readonly string[] SyntheticUserArguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs", "--"];

    private static IEnumerable<string> SshArguments(SsmHostTarget host, string remote) =>
    [
        "-F", "/dev/null",
        "-i", host.ClientKeyPath,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "UserKnownHostsFile=" + host.KnownHostsPath,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=60",
        "-p", host.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "-l", host.User,
        host.Address,
        remote,
    ];

    private static Process Start(IEnumerable<string> sshArguments)
    {
        var info = new ProcessStartInfo("ssh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false),
        };
        foreach (var argument in sshArguments)
        {
            info.ArgumentList.Add(argument);
        }
        return Process.Start(info)!;
    }

    private static void KillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already ended.
        }
    }

    /// <summary>One POSIX shell word.</summary>
    public static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
