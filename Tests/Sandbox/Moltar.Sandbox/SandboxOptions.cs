using System.Globalization;

namespace Moltar.Sandbox;

/// <summary>A bad command line: Program prints the message and the usage to stderr and exits with 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The sandbox process's options (CONTRACT.md, "The sandbox process").</summary>
public sealed record SandboxOptions
{
    public const string Usage = """
        Usage: dotnet Moltar.Sandbox.dll --state-dir DIR [options]
          --state-dir DIR        working folder (keys, host roots, logs, sandbox.json). Required.
          --fleet FILE           JSON fleet file (instances served by the EC2 endpoint)
          --hosts N              start N real sshd hosts, one instance each (default 0)
          --synthetic N          add N synthetic instances (no sshd behind them)
          --project NAME         Project tag of generated instances (default demo)
          --environments a,b     Environment tags cycled over generated instances (default production,staging)
          --clusters x,y,z       Cluster tags cycled over generated instances (default web,jobs,search)
          --apt-repo DIR         flat local APT repository bind-mounted read-only into each host
          --shared-root          hosts share the machine's filesystem (default: own root when root)
          --port N               endpoint port on 127.0.0.1 (default 0 = any free port)
        Stops (every host too) on stdin EOF, SIGTERM/SIGINT or POST /_sandbox/shutdown.
        Exit codes: 0 stopped normally, 1 failed, 2 bad options, 3 host prerequisites missing.
        """;

    public required string StateDirectory { get; init; }
    public string? FleetFile { get; init; }
    public int Hosts { get; init; }
    public int Synthetic { get; init; }
    public string Project { get; init; } = "demo";
    public IReadOnlyList<string> Environments { get; init; } = ["production", "staging"];
    public IReadOnlyList<string> Clusters { get; init; } = ["web", "jobs", "search"];
    public string? AptRepository { get; init; }
    public bool SharedRoot { get; init; }
    public int Port { get; init; }

    /// <summary>Parses the command line (<c>--name value</c> or <c>--name=value</c>). Null when help was asked for.</summary>
    public static SandboxOptions? Parse(IReadOnlyList<string> args)
    {
        string? stateDir = null, fleet = null, project = null, apt = null;
        int? hosts = null, synthetic = null, port = null;
        IReadOnlyList<string>? environments = null, clusters = null;
        var sharedRoot = false;
        var seen = new HashSet<string>(StringComparer.Ordinal);

        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "-h" or "--help" or "-?")
            {
                return null;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new UsageException($"Unexpected argument '{arg}'.");
            }
            string name;
            string? inline = null;
            var eq = arg.IndexOf('=');
            if (eq > 0)
            {
                name = arg[..eq];
                inline = arg[(eq + 1)..];
            }
            else
            {
                name = arg;
            }
            if (!seen.Add(name))
            {
                throw new UsageException($"Option {name} is given twice.");
            }
            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }
                if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    throw new UsageException($"Option {name} needs a value.");
                }
                return args[++i];
            }
            switch (name)
            {
                case "--state-dir": stateDir = NonEmpty(name, Value()); break;
                case "--fleet": fleet = NonEmpty(name, Value()); break;
                case "--hosts": hosts = Int(name, Value(), 0, 1000); break;
                case "--synthetic": synthetic = Int(name, Value(), 0, 1_000_000); break;
                case "--project": project = NonEmpty(name, Value()); break;
                case "--environments": environments = List(name, Value()); break;
                case "--clusters": clusters = List(name, Value()); break;
                case "--apt-repo": apt = NonEmpty(name, Value()); break;
                case "--port": port = Int(name, Value(), 0, 65535); break;
                case "--shared-root":
                    if (inline is not null)
                    {
                        throw new UsageException("Option --shared-root takes no value.");
                    }
                    sharedRoot = true;
                    break;
                default:
                    throw new UsageException($"Unknown option '{name}'.");
            }
        }

        if (stateDir is null)
        {
            throw new UsageException("Option --state-dir is required.");
        }
        if (fleet is not null && !File.Exists(fleet))
        {
            throw new UsageException($"Fleet file '{fleet}' does not exist.");
        }
        if (apt is not null && !Directory.Exists(apt))
        {
            throw new UsageException($"APT repository folder '{apt}' does not exist.");
        }
        return new SandboxOptions
        {
            StateDirectory = Path.GetFullPath(stateDir),
            FleetFile = fleet is null ? null : Path.GetFullPath(fleet),
            Hosts = hosts ?? 0,
            Synthetic = synthetic ?? 0,
            Project = project ?? "demo",
            Environments = environments ?? ["production", "staging"],
            Clusters = clusters ?? ["web", "jobs", "search"],
            AptRepository = apt is null ? null : Path.GetFullPath(apt),
            SharedRoot = sharedRoot,
            Port = port ?? 0,
        };
    }

    private static string NonEmpty(string name, string value) =>
        string.IsNullOrWhiteSpace(value) ? throw new UsageException($"Option {name} needs a non-empty value.") : value;

    private static int Int(string name, string value, int min, int max)
    {
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < min || n > max)
        {
            throw new UsageException($"Option {name} needs a whole number from {min} to {max}, not '{value}'.");
        }
        return n;
    }

    private static IReadOnlyList<string> List(string name, string value)
    {
        var items = value.Split(',', StringSplitOptions.TrimEntries);
        if (items.Length == 0 || items.Any(string.IsNullOrEmpty))
        {
            throw new UsageException($"Option {name} needs a comma-separated list of names, not '{value}'.");
        }
        return items;
    }
}
