using System.Diagnostics;

namespace Moltar.Engine.Ssh;

/// <summary>
/// The user's and the system's ssh config for one call, resolved together as ssh reads them (user first, then
/// system, one pass; Match exec runs commands as ssh does). Shared by the engine and the system ssh command line
/// (Enter-MoltarInstance), so both take the same path to the same host.
/// </summary>
internal sealed class SshConfigFiles
{
    private readonly SshConfig[] _configs;
    private readonly string _home;
    private readonly OpenSshPlatform _platform;
    private readonly Action<string>? _note;

    public SshConfigFiles(SshOptions options, string home, Action<string>? note)
    {
        _home = home;
        _note = note;
        _platform = options.Platform ?? SshPaths.CurrentPlatform;
        var paths = SshPaths.Platform(_platform) with { Home = home };
        var user = LoadConfig(options.ConfigPath, paths.UserConfig, paths.UserDirectory, home, note);
        var system = LoadConfig(options.SystemConfigPath, paths.SystemConfig, paths.SystemDirectory, home, note);
        _configs = new[] { user, system };
    }

    /// <summary>
    /// Reads an ssh config as the options name it: null = the default file (missing is empty), "" or "none" =
    /// none, a path that does not exist = InvalidConfiguration.
    /// </summary>
    internal static SshConfig LoadConfig(string? path, string defaultPath, string includeBase, string home, Action<string>? note)
    {
        if (path is not null && (path.Length == 0 || path.Equals("none", StringComparison.OrdinalIgnoreCase)))
        {
            return SshConfig.Empty;
        }

        var full = SshPaths.ExpandTilde(path ?? defaultPath, home);
        if (path is not null && !File.Exists(full))
        {
            throw new SshFailure(SshErrorIds.InvalidConfiguration, $"ssh config file {full} does not exist.");
        }

        var config = SshConfig.Load(full, home, includeBase);
        foreach (var text in config.Notes)
        {
            note?.Invoke(text);
        }

        return config;
    }

    /// <summary>Whether any Match line runs a command (exec).</summary>
    public bool HasMatchExec => _configs.Any(c => c.HasMatchExec);

    /// <summary>What applies to a host, given what the command line (target, parameters or jump spec) already fixes.</summary>
    public SshConfigMatch Lookup(string host, string? user, int? port, string? jumpHost = null) =>
        SshConfig.Resolve(_configs, new SshConfigQuery(host) { User = user, Port = port, JumpHost = jumpHost, Home = _home, Exec = RunExec });

    /// <summary>
    /// Match exec: ssh runs the command with the user's shell and matches when it exits 0 (stdin and stdout are
    /// /dev/null, stderr is the user's). Moltar runs it with /bin/sh -c (as it does ProxyCommand), bounded by a
    /// generous limit so a hung command cannot hang the call.
    /// </summary>
    private bool RunExec(string command, string location)
    {
        try
        {
            var info = ProxyCommandRoute.StartInfo(command, _platform, replaceShell: false);
            using var process = Process.Start(info)!;
            process.StandardInput.Close();
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { Length: > 0 } line)
                {
                    _note?.Invoke($"{location}: Match exec: {line}");
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            if (!process.WaitForExit(60_000))
            {
                process.Kill(entireProcessTree: true);
                _note?.Invoke($"{location}: Match exec '{command}' did not finish within 60 s; it was stopped and did not match.");
                return false;
            }

            process.WaitForExit();
            return process.ExitCode == 0;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or FormatException)
        {
            _note?.Invoke($"{location}: Match exec '{command}' could not run: {e.Message}; it did not match.");
            return false;
        }
    }
}
