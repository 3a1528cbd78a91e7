using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;

namespace Moltar.Sandbox.Hosts;

/// <summary>Signals, process identity and listening sockets, read from /proc. Everything by PID.</summary>
internal static class LinuxProcesses
{
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    // DllImport rather than LibraryImport: the generator would need AllowUnsafeBlocks in the project.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);

    /// <summary>Sends a signal; false when there is no such process (or it is not ours to signal).</summary>
    public static bool Signal(int pid, int signal) => pid > 0 && SysKill(pid, signal) == 0;

    public static bool Exists(int pid) => pid > 0 && Directory.Exists($"/proc/{pid}");

    /// <summary>
    /// The process's start time (field 22 of /proc/PID/stat, clock ticks since boot), or null when
    /// it is gone. PID and start time together name a process even after the PID is reused.
    /// </summary>
    public static long? StartTime(int pid)
    {
        string stat;
        try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        // "pid (comm) state ppid ..." — comm may hold spaces or parentheses: split after the last ')'.
        var close = stat.LastIndexOf(')');
        if (close < 0) return null;
        var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state), so field 22 is fields[19].
        return fields.Length > 19 && long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? t : null;
    }

    public static IReadOnlyList<int> Children(int pid)
    {
        var result = new List<int>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                var text = File.ReadAllText(Path.Combine(task, "children"));
                foreach (var part in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    if (int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var child)) result.Add(child);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return result;
    }

    /// <summary>Every descendant of <paramref name="pid"/> (not itself), parents before children.</summary>
    public static IReadOnlyList<int> Descendants(int pid)
    {
        var result = new List<int>();
        var queue = new Queue<int>();
        queue.Enqueue(pid);
        while (queue.Count > 0 && result.Count < 10_000)
        {
            foreach (var child in Children(queue.Dequeue()))
            {
                result.Add(child);
                queue.Enqueue(child);
            }
        }
        return result;
    }

    /// <summary>
    /// IPv4 endpoints in LISTEN state in this network namespace, from /proc/net/tcp (and wildcard
    /// IPv6 listeners, which take the port on every address). Null when /proc/net/tcp is unreadable.
    /// </summary>
    public static HashSet<IPEndPoint>? TcpListeners()
    {
        string[] lines;
        try { lines = File.ReadAllLines("/proc/net/tcp"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        var result = new HashSet<IPEndPoint>();
        foreach (var line in lines.Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 4 || f[3] != "0A") continue;
            var colon = f[1].IndexOf(':');
            if (colon != 8) continue;
            var raw = uint.Parse(f[1].AsSpan(0, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (!BitConverter.IsLittleEndian) raw = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(raw);
            var port = int.Parse(f[1].AsSpan(9), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            result.Add(new IPEndPoint(new IPAddress(raw), port));
        }
        try
        {
            foreach (var line in File.ReadLines("/proc/net/tcp6").Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 4 || f[3] != "0A" || !f[1].StartsWith(new string('0', 32) + ":", StringComparison.Ordinal)) continue;
                var port = int.Parse(f[1].AsSpan(33), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                result.Add(new IPEndPoint(IPAddress.Any, port));
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return result;
    }

    /// <summary>True when something listens on address:port (or on the wildcard address and that port).</summary>
    public static bool IsListening(HashSet<IPEndPoint> listeners, IPAddress address, int port) =>
        listeners.Contains(new IPEndPoint(address, port)) || listeners.Contains(new IPEndPoint(IPAddress.Any, port));

    /// <summary>Which of the named programs can be found in the usual system directories or PATH.</summary>
    public static string? FindProgram(string name)
    {
        var dirs = new List<string> { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin" };
        dirs.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries));
        foreach (var dir in dirs)
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path)) return path;
        }
        return null;
    }
}
