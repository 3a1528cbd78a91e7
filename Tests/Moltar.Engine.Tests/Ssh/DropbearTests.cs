using System.Diagnostics;
using System.Text;
using Moltar.Engine.Ssh;
using Xunit;
using Xunit.Abstractions;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>
/// A Dropbear server (not OpenSSH): Moltar's engine must work with it too. Dropbear reads authorized_keys only
/// from the user's home, so it runs in a private mount namespace whose /root is a fresh tmpfs holding the test's
/// authorized_keys: the machine's own /root is never touched.
/// </summary>
[Collection("sshd")]
public sealed class DropbearTests(SshdFixture sshd, ITestOutputHelper output)
{
    private const string Dropbear = "/usr/sbin/dropbear";

    [SshdFact]
    public void A_dropbear_server_runs_commands_with_exit_codes_stdin_and_host_key_checks()
    {
        sshd.EnsureAvailable();
        if (!File.Exists(Dropbear))
        {
            Assert.Fail("dropbear is not installed (apt-get install dropbear-bin; build.ps1 installs it as a test prerequisite)");
        }

        var dir = Path.Combine(sshd.Directory, $"dropbear-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var hostKey = Path.Combine(dir, "host_ed25519");
        SshdFixture.Run(null, "dropbearkey", "-t", "ed25519", "-f", hostKey);
        var publicLine = SshdFixture.Run(null, "dropbearkey", "-y", "-f", hostKey).Split('\n').Single(l => l.StartsWith("ssh-ed25519 ", StringComparison.Ordinal));
        var keyFields = publicLine.Split(' ');
        File.Copy(sshd.ClientKey + ".pub", Path.Combine(dir, "authorized_keys"));
        var address = sshd.FreeAddress();
        var log = Path.Combine(dir, "dropbear.log");
        var script = $"mount -t tmpfs -o mode=700 tmpfs /root && mkdir -m 700 /root/.ssh && cp {dir}/authorized_keys /root/.ssh/authorized_keys " +
                     $"&& chmod 600 /root/.ssh/authorized_keys && exec {Dropbear} -F -E -s -r {hostKey} -p {address}:{SshdFixture.SshPort} -P {dir}/pid 2>>{log}";
        var info = new ProcessStartInfo("timeout") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "600", "unshare", "--mount", "--propagation", "private", "sh", "-c", script })
        {
            info.ArgumentList.Add(a);
        }

        using var server = Process.Start(info)!;
        try
        {
            SshdFixture.WaitForBanner(address, SshdFixture.SshPort, server, log);
            var known = sshd.NewTempFile("known_hosts", $"[{address}]:{SshdFixture.SshPort} {keyFields[0]} {keyFields[1]}\n");
            using var connector = new SshConnector(sshd.Options() with { KnownHostsPaths = new[] { known } });
            var target = new SshTarget(address, "i-dropbear", "dropbear");
            using (var connection = connector.Connect(target))
            {
                output.WriteLine($"{connection.ServerVersion} kex {connection.KeyExchangeAlgorithm} cipher {connection.Cipher}");
                Assert.Contains("dropbear", connection.ServerVersion, StringComparison.OrdinalIgnoreCase);
                var ok = connection.Run("echo hello from $(whoami)");
                Assert.True(ok.Succeeded, ok.ErrorMessage);
                Assert.Equal("hello from root", ok.Stdout.Trim());
                var failed = connection.Run("echo oops >&2; exit 7");
                Assert.Equal(7, failed.ExitCode);
                Assert.Equal(SshErrorIds.CommandFailed, failed.ErrorId);
                Assert.Equal("oops", failed.Stderr.Trim());
                var piped = connection.Run("cat", new ExecOptions { Stdin = Encoding.UTF8.GetBytes("fed through stdin\n") });
                Assert.Equal("fed through stdin\n", piped.Stdout);
                var noStdin = connection.Run("cat; echo done");
                Assert.Equal("done", noStdin.Stdout.Trim());
            }

            // The host key is checked against known_hosts as for OpenSSH.
            var wrong = sshd.NewTempFile("known_hosts", $"[{address}]:{SshdFixture.SshPort} {sshd.Hosts[0].PublicKeyLine}\n");
            using var refusing = new SshConnector(sshd.Options() with { KnownHostsPaths = new[] { wrong } });
            Assert.Equal(SshErrorIds.HostKeyMismatch, Assert.Throws<SshFailure>(() => refusing.Connect(target)).ErrorId);
        }
        finally
        {
            try
            {
                server.Kill(entireProcessTree: true);
                server.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }

            output.WriteLine(File.Exists(log) ? File.ReadAllText(log) : "(no dropbear log)");
        }
    }
}
