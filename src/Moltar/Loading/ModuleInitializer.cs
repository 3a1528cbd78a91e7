using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace Moltar.Loading;

/// <summary>Hooks the default context so that Moltar.Engine, and everything it needs, comes from deps/.</summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    private const string EngineAssemblyName = "Moltar.Engine";
    private static readonly object Gate = new();
    // Kept for the process: an assembly cannot leave a non-collectible context, so re-imports reuse it.
    private static ModuleLoadContext? s_context;

    internal static string DependencyDirectory =>
        Path.Combine(Path.GetDirectoryName(typeof(ModuleInitializer).Assembly.Location)!, "deps");

    public void OnImport()
    {
        string engine = Path.Combine(DependencyDirectory, EngineAssemblyName + ".dll");
        if (!File.Exists(engine))
            throw new InvalidOperationException(
                $"Moltar is incomplete: {DependencyDirectory} must hold {EngineAssemblyName}.dll and its dependencies. Reinstall the module.");
        lock (Gate)
        {
            s_context ??= new ModuleLoadContext(DependencyDirectory);
            AssemblyLoadContext.Default.Resolving -= ResolveEngine;
            AssemblyLoadContext.Default.Resolving += ResolveEngine;
        }
    }

    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        // Remove-Module closes the connections kept between calls (when the engine was ever loaded: no need to load it for that).
        if (s_context?.Assemblies.Any(a => a.GetName().Name == EngineAssemblyName) == true)
            CloseConnections();
        AssemblyLoadContext.Default.Resolving -= ResolveEngine;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void CloseConnections()
    {
        // The pool is the process's: idle connections close now, one a call in another runspace uses when it is done.
        if (Moltar.Engine.Ssh.ConnectionPool.SharedCreated)
            Moltar.Engine.Ssh.ConnectionPool.Shared.Close();
    }

    // Only when deps/ holds the engine: otherwise the private context would defer to the default one, which
    // asks this handler again, forever (a module folder copied without deps/ must fail with a clear message).
    private static Assembly? ResolveEngine(AssemblyLoadContext context, AssemblyName name)
    {
        if (name.Name != EngineAssemblyName)
            return null;
        string engine = Path.Combine(DependencyDirectory, EngineAssemblyName + ".dll");
        if (!File.Exists(engine))
            throw new FileNotFoundException(
                $"Moltar's engine is missing: {engine} does not exist. Reinstall the module (its deps folder must stay beside Moltar.Cmdlets.dll).", engine);
        return s_context?.LoadFromAssemblyPath(s_context.PathOf(EngineAssemblyName));
    }
}
