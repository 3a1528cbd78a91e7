namespace Moltar.Engine.Deploy;

/// <summary>One package as dpkg-query reports it (format DeployPlan.QueryFormat).</summary>
public sealed record DpkgPackageState(string Package, string Version, string Status)
{
    /// <summary>
    /// Unpacked and configured: status 'install ok installed' (or 'hold ok installed': held at that version).
    /// 'half-configured', 'unpacked', 'config-files' and anything with a reinstreq flag are not.
    /// </summary>
    public bool IsInstalled
    {
        get
        {
            var words = Status.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return words is [("install" or "hold"), "ok", "installed"] && Version.Length > 0;
        }
    }
}

/// <summary>Parses what dpkg-query and apt-cache policy print, and judges a host's deploy against it.</summary>
public static class DeployVerification
{
    /// <summary>
    /// dpkg-query -W -f='${Package}\t${Version}\t${Status}\n' output, by package name. Packages dpkg never heard
    /// of print nothing (dpkg-query says so on stderr and exits 1) and are absent here.
    /// </summary>
    public static IReadOnlyDictionary<string, DpkgPackageState> ParseDpkgQuery(string output)
    {
        var states = new Dictionary<string, DpkgPackageState>(StringComparer.Ordinal);
        foreach (var line in Lines(output))
        {
            var fields = line.Split('\t');
            if (fields.Length < 3 || fields[0].Length == 0)
                continue;
            // dpkg-query prints name:arch for multi-arch "same" packages; the deploy asked by bare name.
            string name = fields[0].Split(':')[0];
            states[name] = new DpkgPackageState(name, fields[1].Trim(), fields[2].Trim());
        }
        return states;
    }

    /// <summary>The installed versions only (configured packages), by package: what a result's *Versions hold.</summary>
    public static Dictionary<string, string> InstalledVersions(IReadOnlyList<string> packages, IReadOnlyDictionary<string, DpkgPackageState> states)
    {
        var versions = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var package in packages)
        {
            if (states.TryGetValue(package, out var state) && state.IsInstalled)
                versions[package] = state.Version;
        }
        return versions;
    }

    /// <summary>
    /// `LC_ALL=C apt-cache policy p1 p2` output: each package's Candidate line; null for "(none)" (known to apt
    /// but not installable from any source). Packages apt does not know at all are absent.
    /// </summary>
    public static IReadOnlyDictionary<string, string?> ParseCandidates(string output)
    {
        var candidates = new Dictionary<string, string?>(StringComparer.Ordinal);
        string? current = null;
        foreach (var line in Lines(output))
        {
            if (line.Length > 0 && !char.IsWhiteSpace(line[0]) && line.EndsWith(':'))
            {
                current = line[..^1].Split(':')[0];
                continue;
            }
            var trimmed = line.Trim();
            if (current is not null && trimmed.StartsWith("Candidate:", StringComparison.Ordinal))
            {
                var value = trimmed["Candidate:".Length..].Trim();
                candidates[current] = value.Length == 0 || value == "(none)" ? null : value;
            }
        }
        return candidates;
    }

    /// <summary>
    /// The version each package must have after the install: the pinned version, else apt's candidate.
    /// Returns the problems (empty when every package has an installable version).
    /// </summary>
    public static IReadOnlyList<string> Expected(DeployRequest request, IReadOnlyDictionary<string, string?>? candidates,
                                                 out Dictionary<string, string> expected)
    {
        expected = new Dictionary<string, string>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var package in request.Packages)
        {
            if (request.Version is { } pinned)
            {
                expected[package] = pinned;
            }
            else if (candidates is not null && candidates.TryGetValue(package, out var candidate) && candidate is not null)
            {
                expected[package] = candidate;
            }
            else
            {
                problems.Add(candidates is not null && candidates.ContainsKey(package)
                    ? $"{package} has no installable version (apt-cache policy: Candidate: (none))"
                    : $"{package} is not in any APT source of the host (apt-cache policy does not know it)");
            }
        }
        return problems;
    }

    /// <summary>What is wrong after the install: one sentence per package whose state is not the expected version installed.</summary>
    public static IReadOnlyList<string> Problems(IReadOnlyList<string> packages, IReadOnlyDictionary<string, string> expected,
                                                 IReadOnlyDictionary<string, DpkgPackageState> states)
    {
        var problems = new List<string>();
        foreach (var package in packages)
        {
            expected.TryGetValue(package, out var want);
            if (!states.TryGetValue(package, out var state))
            {
                problems.Add($"{package} is not installed (dpkg does not know it){(want is null ? "" : $"; expected {want}")}");
            }
            else if (!state.IsInstalled)
            {
                problems.Add($"{package} {(state.Version.Length == 0 ? "" : state.Version + " ")}is '{state.Status}', not 'install ok installed'");
            }
            else if (want is not null && state.Version != want)
            {
                problems.Add($"{package} is {state.Version}, expected {want}");
            }
        }
        return problems;
    }

    private static IEnumerable<string> Lines(string text) =>
        (text ?? "").Split('\n').Select(l => l.TrimEnd('\r'));
}
