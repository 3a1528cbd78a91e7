using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace Moltar.Loading;

/// <summary>
/// The module's private load context: the engine and its dependencies (AWSSDK.*, SSH.NET, ...) load from
/// deps/ here, so a session that already holds AWS.Tools' or Posh-SSH's copies keeps working either way round.
/// </summary>
internal sealed class ModuleLoadContext : AssemblyLoadContext
{
    /// <summary>ReadyToRun images for pwsh 7.6 on Linux x64, beside the portable IL in deps/.</summary>
    internal const string ReadyToRunFolder = "r2r-net10-linux-x64";

    private readonly string _dependencyDirectory;
    private readonly string? _readyToRunDirectory;

    public ModuleLoadContext(string dependencyDirectory) : base("Moltar", isCollectible: false)
    {
        _dependencyDirectory = dependencyDirectory;
        _readyToRunDirectory = ReadyToRunDirectory(dependencyDirectory);
    }

    /// <summary>
    /// The folder of precompiled images when this process can use them: the runtime ignores images compiled for
    /// another .NET major version (and they are Linux x64 code), so elsewhere the larger files would only cost.
    /// </summary>
    internal static string? ReadyToRunDirectory(string dependencyDirectory)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64 || System.Environment.Version.Major != 10)
            return null;
        string directory = Path.Combine(dependencyDirectory, ReadyToRunFolder);
        return Directory.Exists(directory) ? directory : null;
    }

    /// <summary>Where an assembly of deps/ is loaded from: its precompiled image when there is one for this process.</summary>
    internal string PathOf(string assemblyName)
    {
        string fileName = assemblyName + ".dll";
        if (_readyToRunDirectory is not null)
        {
            string precompiled = Path.Combine(_readyToRunDirectory, fileName);
            if (File.Exists(precompiled))
                return precompiled;
        }
        return Path.Combine(_dependencyDirectory, fileName);
    }

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        // Moltar.Model must stay in the default context: one copy of each type users hold.
        if (assemblyName.Name is null || assemblyName.Name == "Moltar.Model")
            return null;
        string candidate = PathOf(assemblyName.Name);
        return File.Exists(candidate) ? LoadFromAssemblyPath(candidate) : null;
    }
}
