namespace Moltar.Engine.Deploy;

/// <summary>The stable error ids of deploys (FullyQualifiedErrorId 'Id,Moltar.Cmdlets.InvokeMoltarDeployCommand').</summary>
public static class DeployErrorIds
{
    /// <summary>A package name (from -Package, MOLTAR_PACKAGES or the project file) is not a Debian package name.</summary>
    public const string InvalidPackageName = "InvalidPackageName";
    /// <summary>-Version is not a Debian version.</summary>
    public const string InvalidVersion = "InvalidVersion";
    /// <summary>-BatchSize is not a count or a percentage.</summary>
    public const string InvalidBatchSize = "InvalidBatchSize";
    /// <summary>No package was given and the project names none.</summary>
    public const string NoPackage = "NoPackage";
    /// <summary>Piped instances whose Packages tag lacks a package, without -Force.</summary>
    public const string PackageNotTagged = "PackageNotTagged";
    /// <summary>On a host: dpkg-query, apt-get update, apt-cache policy, apt-get install, autoremove or clean failed.</summary>
    public const string DeployFailed = "DeployFailed";
    /// <summary>On a host: apt-get succeeded but dpkg does not show the expected version installed.</summary>
    public const string VerifyFailed = "VerifyFailed";
    /// <summary>A host was not started because an earlier batch exceeded -MaxFailures.</summary>
    public const string NotStarted = "NotStarted";
    /// <summary>A deploy hook (file or script block) failed.</summary>
    public const string HookFailed = "HookFailed";
}

/// <summary>What to deploy: validated package names, an optional pinned version, and whether to clean up after.</summary>
public sealed class DeployRequest
{
    private DeployRequest(IReadOnlyList<string> packages, string? version, bool clean)
    {
        Packages = packages;
        Version = version;
        Clean = clean;
    }

    /// <summary>Distinct, in the order given.</summary>
    public IReadOnlyList<string> Packages { get; }
    /// <summary>Every package is pinned to this version (downgrades allowed: the rollback); null = apt's candidate.</summary>
    public string? Version { get; }
    /// <summary>apt-get autoremove and apt-get clean after the install.</summary>
    public bool Clean { get; }

    /// <summary>
    /// Checks the input against Debian's syntax and throws MoltarException (InvalidPackageName, InvalidVersion,
    /// NoPackage) naming where the bad value came from. Nothing is contacted.
    /// </summary>
    /// <param name="packageSource">Where the packages came from, for messages: "-Package", "MOLTAR_PACKAGES", a file path.</param>
    public static DeployRequest Create(IEnumerable<string>? packages, string? version, bool clean = false, string packageSource = "-Package")
    {
        var list = new List<string>();
        foreach (var raw in packages ?? Array.Empty<string>())
        {
            string name = raw ?? "";
            if (DebianSyntax.PackageNameProblem(name) is { } problem)
            {
                throw new MoltarException(DeployErrorIds.InvalidPackageName, FailureCategory.InvalidArgument,
                    $"'{Printable(name)}' from {packageSource} is not a Debian package name: {problem}. " +
                    "Package names are lowercase letters, digits, '+', '.' and '-' (at least two, starting with a letter or digit). Nothing was deployed.");
            }
            if (!list.Contains(name, StringComparer.Ordinal))
                list.Add(name);
        }
        if (list.Count == 0)
        {
            throw new MoltarException(DeployErrorIds.NoPackage, FailureCategory.InvalidArgument,
                "No package to deploy: give -Package, set MOLTAR_PACKAGES, or list the packages in the project's .moltar.psd1 " +
                "(Packages = @('app-web')) or .moltar-packages file.");
        }
        if (version is not null && DebianSyntax.VersionProblem(version) is { } versionProblem)
        {
            throw new MoltarException(DeployErrorIds.InvalidVersion, FailureCategory.InvalidArgument,
                $"-Version '{Printable(version)}' is not a Debian version: {versionProblem}. " +
                "A version is [epoch:]upstream[-revision], e.g. 1.4.2, 1.4.2-1 or 2:1.4.2~rc1-0ubuntu1. Nothing was deployed.");
        }
        return new DeployRequest(list, version, clean);
    }

    /// <summary>Packages as apt-get install takes them: name=version when pinned.</summary>
    public IEnumerable<string> InstallArguments => Packages.Select(p => Version is null ? p : $"{p}={Version}");

    /// <summary>"app-web=1.4.2, app-worker=1.4.2" or "app-web, app-worker".</summary>
    public string Describe() => string.Join(", ", InstallArguments);

    private static string Printable(string text)
    {
        var chars = text.Select(c => char.IsControl(c) ? '?' : c).Take(DebianSyntax.MaxLength + 1).ToArray();
        return new string(chars);
    }
}
