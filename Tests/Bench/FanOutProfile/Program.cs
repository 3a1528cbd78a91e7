// Where a fan-out's time goes. Usage:
//   dotnet FanOutProfile.dll --hosts FILE --key KEY --known-hosts FILE [--command true] [--runs 3] [--throttle N] [--pooled]
// --pooled: connections are taken from and returned to the pool (ConnectionPool.Shared, 60 s idle), as
// Invoke-MoltarCommand does; the first run opens them, later runs reuse them ("connect" is then the pool's Acquire).
// Each run connects to every host (as SshFanOut does: a dedicated worker per host up to the throttle), runs the
// command and closes, recording per host when connect, run and close ended. Prints per-run wall and process CPU,
// phase medians and maxima, how many hosts were in each phase over time, and the thread pool's size.
using System.Diagnostics;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;

string hostsFile = "", key = "", knownHosts = "", command = "true";
string? kex = null, ciphers = null;
int runs = 3, throttle = 0;
bool timeline = false, pooled = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--hosts": hostsFile = args[++i]; break;
        case "--key": key = args[++i]; break;
        case "--known-hosts": knownHosts = args[++i]; break;
        case "--command": command = args[++i]; break;
        case "--runs": runs = int.Parse(args[++i]); break;
        case "--throttle": throttle = int.Parse(args[++i]); break;
        case "--timeline": timeline = true; break;
        case "--pooled": pooled = true; break;
        case "--kex": kex = args[++i]; break;
        case "--ciphers": ciphers = args[++i]; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

var hosts = File.ReadAllLines(hostsFile).Where(l => l.Trim().Length > 0).ToArray();
if (throttle == 0) throttle = hosts.Length;
var options = new SshOptions
{
    User = "ubuntu",
    KeyFiles = new[] { key },
    KnownHostsPaths = new[] { knownHosts },
    GlobalKnownHostsPaths = Array.Empty<string>(),
    ConfigPath = "none",
    SystemConfigPath = "none",
    UseAgent = false,
    StrictHostKeyChecking = Moltar.StrictHostKeyChecking.Yes,
    KexAlgorithms = kex,
    Ciphers = ciphers,
    ConnectionIdle = pooled ? TimeSpan.FromSeconds(60) : TimeSpan.Zero,
};

var process = Process.GetCurrentProcess();
for (int run = 1; run <= runs; run++)
{
    var clock = Stopwatch.StartNew();
    var cpu0 = CpuNow();
    var marks = new (double Start, double Connected, double Ran, double Closed)[hosts.Length];
    var poolSamples = new List<(double T, int Threads, long Pending)>();
    using var sampling = new CancellationTokenSource();
    var sampler = new Thread(() =>
    {
        while (!sampling.IsCancellationRequested)
        {
            lock (poolSamples) poolSamples.Add((clock.Elapsed.TotalMilliseconds, ThreadPool.ThreadCount, ThreadPool.PendingWorkItemCount));
            Thread.Sleep(20);
        }
    }) { IsBackground = true };
    sampler.Start();

    double connectorReady;
    int failed = 0;
    using (var connector = new SshConnector(options))
    {
        connectorReady = clock.Elapsed.TotalMilliseconds;
        using var runner = new FanOutRunner<int, ExecOutcome>(ctx =>
        {
            var i = ctx.Item;
            marks[i].Start = clock.Elapsed.TotalMilliseconds;
            var target = new SshTarget(hosts[i]);
            using var lease = pooled ? ConnectionPool.Shared.Acquire(connector, target, ctx.CancellationToken) : null;
            var connection = lease?.Connection ?? connector.Connect(target, ctx.CancellationToken);
            marks[i].Connected = clock.Elapsed.TotalMilliseconds;
            var outcome = connection.Run(command, new ExecOptions { OnLine = (s, l) => ctx.Output(l, s == ExecStream.Stderr) }, ctx.CancellationToken);
            marks[i].Ran = clock.Elapsed.TotalMilliseconds;
            if (lease is null)
                connection.Dispose();
            else
                lease.Return();
            marks[i].Closed = clock.Elapsed.TotalMilliseconds;
            return outcome;
        }, new FanOutOptions { ThrottleLimit = throttle }, isFailure: o => !o.Succeeded);
        var addSlowest = 0.0;
        for (int i = 0; i < hosts.Length; i++) { var t0 = clock.Elapsed.TotalMilliseconds; runner.Add(i); addSlowest = Math.Max(addSlowest, clock.Elapsed.TotalMilliseconds - t0); }
        Console.WriteLine($"   adding ended at {clock.Elapsed.TotalMilliseconds:0} ms (slowest Add {addSlowest:0.0} ms)");
        runner.Complete();
        foreach (var e in runner.ReadAll())
        {
            if (e.Kind == FanOutEventKind.Completed && (e.Error is not null || e.Result?.Succeeded != true))
            {
                failed++;
                if (failed <= 3) Console.Error.WriteLine($"host {hosts[e.Item]}: {e.Error?.Message ?? e.Result?.ErrorMessage}");
            }
        }
    }
    var wall = clock.Elapsed.TotalMilliseconds;
    var cpu = CpuNow() - cpu0;
    sampling.Cancel();
    sampler.Join();

    double Med(IEnumerable<double> v) { var a = v.OrderBy(x => x).ToArray(); return a.Length == 0 ? 0 : a[a.Length / 2]; }
    var connect = marks.Select(m => m.Connected - m.Start).ToArray();
    var exec = marks.Select(m => m.Ran - m.Connected).ToArray();
    var close = marks.Select(m => m.Closed - m.Ran).ToArray();
    Console.WriteLine($"run {run}: {hosts.Length} hosts{(kex is null ? "" : ", KexAlgorithms " + kex)}, throttle {throttle}: wall {wall:0} ms, process CPU {cpu:0} ms ({cpu / hosts.Length:0.0} ms/host), failed {failed}; connector ready at {connectorReady:0.0} ms");
    Console.WriteLine($"   start of the last worker {marks.Max(m => m.Start):0} ms; first connected {marks.Min(m => m.Connected):0} ms; last connected {marks.Max(m => m.Connected):0} ms; last closed {marks.Max(m => m.Closed):0} ms");
    Console.WriteLine($"   connect median {Med(connect):0} ms max {connect.Max():0}; run median {Med(exec):0} ms max {exec.Max():0}; close median {Med(close):0.0} ms max {close.Max():0.0}");
    lock (poolSamples)
    {
        Console.WriteLine($"   thread pool: max threads {poolSamples.Max(s => s.Threads)}, max pending work items {poolSamples.Max(s => s.Pending)}");
    }
    if (timeline)
    {
        for (double t = 0; t < wall + 100; t += 100)
        {
            int connecting = marks.Count(m => m.Start <= t && m.Connected > t);
            int running = marks.Count(m => m.Connected <= t && m.Ran > t);
            int closing = marks.Count(m => m.Ran <= t && m.Closed > t);
            int done = marks.Count(m => m.Closed <= t);
            (double T, int Threads, long Pending) s;
            lock (poolSamples) s = poolSamples.LastOrDefault(p => p.T <= t);
            Console.WriteLine($"   {t,6:0} ms  connecting {connecting,3}  running {running,3}  closing {closing,3}  done {done,3}   pool {s.Threads} threads, {s.Pending} pending");
        }
    }
}
return 0;

double CpuNow() { process.Refresh(); return process.TotalProcessorTime.TotalMilliseconds; }
