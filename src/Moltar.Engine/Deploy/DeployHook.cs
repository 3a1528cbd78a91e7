using System.ComponentModel;
using System.Diagnostics;
using Moltar.Engine.Context;

namespace Moltar.Engine.Deploy;

/// <summary>
/// The original tool's hook files: executables in the project directory, run locally once at the end of a
/// deploy — .moltar-after-deploy when every host succeeded, .moltar-failed-deploy when some failed.
/// </summary>
public static class DeployHook
{
    public const string AfterDeployFile = ".moltar-after-deploy";
    public const string FailedDeployFile = ".moltar-failed-deploy";

    /// <summary>The hook file for a deploy's outcome.</summary>
    public static string FileFor(DeployHookKind hook) => hook switch
    {
        DeployHookKind.AfterDeploy => AfterDeployFile,
        DeployHookKind.FailedDeploy => FailedDeployFile,
        _ => throw new ArgumentOutOfRangeException(nameof(hook), hook, "No hook file runs for this outcome."),
    };

    /// <summary>The hook file's path when it exists in <paramref name="projectDirectory"/>; null otherwise.</summary>
    public static string? Find(string? projectDirectory, string fileName)
    {
        if (string.IsNullOrEmpty(projectDirectory))
            return null;
        string path = Path.Combine(projectDirectory, fileName);
        return File.Exists(path) ? path : null;
    }

    /// <summary>
    /// Why the hooks of <paramref name="projectDirectory"/> may not run; null when they may: the folder is the user's,
    /// nobody else can write it, and its Moltar files (hooks included) are exactly as the user trusted them. Read
    /// again here, just before running, so a hook swapped after the context was resolved does not run either.
    /// </summary>
    public static string? WhyNotRun(string projectDirectory, ProjectTrust trust)
    {
        if (ProjectFile.Unsafe(projectDirectory) is { } reason)
            return $"{projectDirectory} {reason}";
        var project = ProjectFile.Load(projectDirectory);
        var state = project is null ? ProjectTrustState.NotTrusted : trust.StateOf(project);
        return state switch
        {
            ProjectTrustState.Trusted => null,
            ProjectTrustState.ChangedSinceTrusted => $"the project {projectDirectory} has changed since you trusted it; review its files and run Approve-MoltarProject",
            _ => $"the project {projectDirectory} is not trusted; review its files and run Approve-MoltarProject",
        };
    }

    /// <summary>
    /// The variables a hook gets on top of the caller's environment: ENV, PACKAGES (space-separated), VERSION
    /// (empty when not pinned), FAILED_HOSTS and NOT_STARTED_HOSTS (space-separated names, else addresses).
    /// </summary>
    public static Dictionary<string, string> Variables(string? environment, IEnumerable<string> packages, string? version,
                                                       IEnumerable<string> failedHosts, IEnumerable<string> notStartedHosts) => new(StringComparer.Ordinal)
    {
        ["ENV"] = environment ?? "",
        ["PACKAGES"] = string.Join(" ", packages),
        ["VERSION"] = version ?? "",
        ["FAILED_HOSTS"] = string.Join(" ", failedHosts),
        ["NOT_STARTED_HOSTS"] = string.Join(" ", notStartedHosts),
    };

    /// <summary>
    /// A value a hook may get in a variable that lists hosts or environments: letters, digits, '.', '_' and '-',
    /// not starting with '-' (a hook may pass it on to a shell or a command line unquoted). Null for anything else.
    /// </summary>
    public static string? SafeToken(string? value) =>
        !string.IsNullOrEmpty(value) && value[0] != '-' && value.All(c => c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '.' or '_' or '-')
            ? value : null;

    /// <summary>How a host is listed to a hook: its Name when that is a safe token, else its address, else its instance id; null when none is.</summary>
    public static string? HostToken(string? name, string? address, string? instanceId) =>
        SafeToken(name) ?? (SafeToken(address?.Replace(':', '.')) is null ? null : address) ?? SafeToken(instanceId);   // ':' for IPv6

    /// <summary>
    /// Runs a hook file in <paramref name="workingDirectory"/> and waits for it; its output lines go to
    /// <paramref name="onLine"/> (on other threads; enqueue, do not block). Returns its exit code. A file that is
    /// not executable or cannot be started throws MoltarException HookFailed; cancellation kills it.
    /// </summary>
    public static async Task<int> RunAsync(string path, string workingDirectory, IReadOnlyDictionary<string, string> variables,
                                           Action<string, bool> onLine, CancellationToken cancellationToken = default)
    {
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
        {
            throw new MoltarException(DeployErrorIds.HookFailed, FailureCategory.PermissionDenied,
                $"The deploy hook '{path}' is not executable; make it so (chmod +x {Path.GetFileName(path)}) or remove it.");
        }

        var info = new ProcessStartInfo(path)
        {
            WorkingDirectory = workingDirectory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (name, value) in variables)
            info.Environment[name] = value;

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            throw new MoltarException(DeployErrorIds.HookFailed, FailureCategory.InvalidOperation,
                $"The deploy hook '{path}' could not be started: {e.Message}. A hook is an executable file (a script needs a #! line).", e);
        }

        process.StandardInput.Close();
        var stdout = Pump(process.StandardOutput, line => onLine(line, false));
        var stderr = Pump(process.StandardError, line => onLine(line, true));
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw;
        }
        await Task.WhenAll(stdout, stderr).ConfigureAwait(false);
        return process.ExitCode;
    }

    private static async Task Pump(StreamReader reader, Action<string> onLine)
    {
        string? line;
        while ((line = await reader.ReadLineAsync().ConfigureAwait(false)) is not null)
            onLine(line);
    }
}
