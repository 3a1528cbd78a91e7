using System.Reflection;
using System.Runtime.Loader;

namespace Moltar.Loading;

/// <summary>
/// The module's private load context: the engine and its dependencies (AWSSDK.*, SSH.NET, ...) load from
/// deps/ here, so a session that already holds AWS.Tools' or Posh-SSH's copies keeps working either way round.
/// </summary>
internal sealed class ModuleLoadContext : AssemblyLoadContext
{
    private readonly string _dependencyDirectory;

    public ModuleLoadContext(string dependencyDirectory) : base("Moltar", isCollectible: false)
    {
        _dependencyDirectory = dependencyDirectory;
    }

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        // Moltar.Model must stay in the default context: one copy of each type users hold.
        if (assemblyName.Name is null || assemblyName.Name == "Moltar.Model")
            return null;
        string candidate = Path.Combine(_dependencyDirectory, assemblyName.Name + ".dll");
        return File.Exists(candidate) ? LoadFromAssemblyPath(candidate) : null;
    }
}
