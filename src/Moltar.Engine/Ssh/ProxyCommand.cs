using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>
/// One connection's ProxyCommand (ssh_config(5)): the command runs as ssh runs it (Unix: /bin/sh -c "exec
/// COMMAND"; Windows: the command line started directly, as Win32-OpenSSH does, no shell) and its stdin/stdout
/// carry the SSH connection. SSH.NET can only talk to a socket, so the route listens on 127.0.0.1 (OS-chosen
/// port) as an HTTP CONNECT proxy that asks for a random one-time password: SSH.NET is handed that proxy and
/// password (ConnectionInfo keeps the target's name, so known_hosts is checked for it), another local process
/// that finds the port is refused, and after the one authenticated connection the listener closes. Bytes are
/// then relayed between that socket and the process. Dispose kills the process (and its children) and closes
/// everything, so a proxy never outlives its connection.
/// </summary>
internal sealed class ProxyCommandRoute : IDisposable
{
    private const int MaxRequestBytes = 8192;
    private const int MaxStderrChars = 2048;

    private readonly TcpListener _listener;
    private readonly Process _process;
    private readonly string _expectedAuthorization;
    private readonly StringBuilder _stderr = new();
    private readonly object _gate = new();
    private readonly ManualResetEventSlim _stderrDone = new(false);
    private Socket? _socket;
    private int _disposed;

    private ProxyCommandRoute(string command, TcpListener listener, Process process, string userName, string password)
    {
        Command = command;
        _listener = listener;
        _process = process;
        UserName = userName;
        Password = password;
        _expectedAuthorization = "Basic " + Convert.ToBase64String(Encoding.ASCII.GetBytes(userName + ":" + password));
    }

    /// <summary>The command as run (tokens expanded).</summary>
    public string Command { get; }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public string UserName { get; }
    public string Password { get; }

    /// <summary>
    /// How ssh starts a command of its config on a platform (ProxyCommand: replaceShell, "exec " first; Match exec:
    /// as written), stdin/stdout/stderr redirected.
    /// </summary>
    public static ProcessStartInfo StartInfo(string command, OpenSshPlatform platform, bool replaceShell = true)
    {
        ProcessStartInfo info;
        if (platform == OpenSshPlatform.Unix)
        {
            // ssh: execl(shell, shell, "-c", "exec " + command); Moltar always uses /bin/sh (a user's $SHELL may be
            // pwsh or fish, which do not read POSIX quoting); Enter-MoltarInstance sets SHELL=/bin/sh for ssh.
            info = new ProcessStartInfo("/bin/sh");
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(replaceShell ? "exec " + command : command);
        }
        else
        {
            var (file, arguments) = SplitWindowsCommandLine(command);
            info = new ProcessStartInfo(file) { Arguments = arguments };
        }

        info.UseShellExecute = false;
        info.RedirectStandardInput = true;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.CreateNoWindow = true;
        return info;
    }

    /// <summary>The program and the rest of a Windows command line (the program may be quoted).</summary>
    internal static (string File, string Arguments) SplitWindowsCommandLine(string command)
    {
        var text = command.TrimStart();
        if (text.StartsWith('"'))
        {
            var close = text.IndexOf('"', 1);
            if (close < 0)
            {
                throw new FormatException($"ProxyCommand '{command}' has an unterminated quote.");
            }

            return (text.Substring(1, close - 1), text.Substring(close + 1).TrimStart());
        }

        var space = text.AsSpan().IndexOfAny(' ', '\t');
        return space < 0 ? (text, "") : (text.Substring(0, space), text.Substring(space + 1).TrimStart());
    }

    /// <summary>Starts the command and the one-connection listener. Throws SshFailure (ConnectFailed) when the command cannot start.</summary>
    public static ProxyCommandRoute Start(string command, string host, OpenSshPlatform platform, Action<string> log)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(1);
        Process? process = null;
        try
        {
            try
            {
                process = Process.Start(StartInfo(command, platform)) ?? throw new InvalidOperationException("the process did not start");
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or FormatException)
            {
                throw new SshFailure(SshErrorIds.ConnectFailed, $"ProxyCommand '{command}' for {host} could not be started: {e.Message}", host, e);
            }

            var route = new ProxyCommandRoute(command, listener, process,
                "moltar", Convert.ToHexString(RandomNumberGenerator.GetBytes(24)));
            route.StartThreads(log);
            return route;
        }
        catch
        {
            listener.Stop();
            if (process is not null)
            {
                Kill(process);
                process.Dispose();
            }

            throw;
        }
    }

    private void StartThreads(Action<string> log)
    {
        Background(() =>
        {
            // The proxy's diagnostics (e.g. "ssh: Could not resolve hostname"): kept for the error message, and verbose.
            try
            {
                string? line;
                while ((line = _process.StandardError.ReadLine()) is not null)
                {
                    lock (_stderr)
                    {
                        _stderr.AppendLine(line);
                        if (_stderr.Length > MaxStderrChars)
                        {
                            _stderr.Remove(0, _stderr.Length - MaxStderrChars);
                        }
                    }

                    log($"ProxyCommand: {line}");
                }
            }
            catch (Exception)
            {
            }
            finally
            {
                _stderrDone.Set();
            }
        }, "Moltar ProxyCommand stderr");
        Background(AcceptOne, "Moltar ProxyCommand accept");
    }

    private void AcceptOne()
    {
        while (Volatile.Read(ref _disposed) == 0)
        {
            Socket client;
            try
            {
                client = _listener.AcceptSocket();
            }
            catch (Exception)
            {
                return; // listener stopped
            }

            if (!Authorized(client))
            {
                Try(() => client.Send(Encoding.ASCII.GetBytes("HTTP/1.0 407 Proxy Authentication Required\r\n\r\n")));
                Try(client.Dispose);
                continue;
            }

            Try(_listener.Stop);
            lock (_gate)
            {
                if (_disposed != 0)
                {
                    Try(client.Dispose);
                    return;
                }

                _socket = client;
            }

            Try(() => client.Send(Encoding.ASCII.GetBytes("HTTP/1.0 200 Connection established\r\n\r\n")));
            Background(() => Pump(client, _process.StandardInput.BaseStream), "Moltar ProxyCommand stdin");
            Background(() => Pump(_process.StandardOutput.BaseStream, client), "Moltar ProxyCommand stdout");
            return;
        }
    }

    private bool Authorized(Socket client)
    {
        try
        {
            client.ReceiveTimeout = 10_000;
            var buffer = new byte[MaxRequestBytes];
            var length = 0;
            while (length < buffer.Length)
            {
                var n = client.Receive(buffer, length, 1, SocketFlags.None); // byte by byte: nothing past the headers is consumed
                if (n == 0)
                {
                    return false;
                }

                length += n;
                if (length >= 4 && buffer[length - 4] == '\r' && buffer[length - 3] == '\n' && buffer[length - 2] == '\r' && buffer[length - 1] == '\n')
                {
                    break;
                }
            }

            client.ReceiveTimeout = 0;
            var request = Encoding.ASCII.GetString(buffer, 0, length);
            foreach (var line in request.Split("\r\n"))
            {
                const string header = "Proxy-Authorization:";
                if (line.StartsWith(header, StringComparison.OrdinalIgnoreCase))
                {
                    var given = Encoding.ASCII.GetBytes(line.Substring(header.Length).Trim());
                    return CryptographicOperations.FixedTimeEquals(given, Encoding.ASCII.GetBytes(_expectedAuthorization));
                }
            }

            return false;
        }
        catch (Exception)
        {
            return false;
        }
    }

    private static void Pump(Socket from, Stream to)
    {
        var buffer = new byte[32 * 1024];
        try
        {
            int n;
            while ((n = from.Receive(buffer)) > 0)
            {
                to.Write(buffer, 0, n);
                to.Flush();
            }
        }
        catch (Exception)
        {
        }

        Try(to.Dispose); // EOF to the proxy: the SSH side closed
    }

    private static void Pump(Stream from, Socket to)
    {
        var buffer = new byte[32 * 1024];
        try
        {
            int n;
            while ((n = from.Read(buffer, 0, buffer.Length)) > 0)
            {
                to.Send(buffer, 0, n, SocketFlags.None);
            }
        }
        catch (Exception)
        {
        }

        Try(() => to.Shutdown(SocketShutdown.Send)); // the proxy closed its stdout: the connection is over
    }

    /// <summary>
    /// Why the proxy failed, when it did: it exited (its exit code and last stderr lines). Waits a moment for a
    /// proxy that is just exiting (its stdout closes a little before the exit code is known). Null while it runs.
    /// </summary>
    public string? FailureReason(TimeSpan wait)
    {
        if (!_process.WaitForExit((int)wait.TotalMilliseconds))
        {
            return null;
        }

        _stderrDone.Wait(TimeSpan.FromSeconds(1));
        string stderr;
        lock (_stderr)
        {
            stderr = _stderr.ToString().Trim();
        }

        var code = _process.ExitCode;
        return $"ProxyCommand '{Command}' exited with code {code}" + (stderr.Length == 0 ? " and printed nothing." : ": " + stderr.Replace("\r", "").Replace('\n', ' '));
    }

    public bool HasExited
    {
        get
        {
            try
            {
                return _process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true;
            }
        }
    }

    /// <summary>The proxy process id (tests: it must be gone once the connection is).</summary>
    public int ProcessId => _process.Id;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Try(_listener.Stop);
        lock (_gate)
        {
            if (_socket is not null)
            {
                Try(_socket.Dispose);
            }
        }

        Kill(_process);
        Try(_process.Dispose);
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (Exception)
        {
            // Already gone.
        }
    }

    private static void Background(Action work, string name) => new Thread(() => work()) { IsBackground = true, Name = name }.Start();

    private static void Try(Action action)
    {
        try
        {
            action();
        }
        catch (Exception)
        {
        }
    }
}
