using System.Globalization;

namespace Moltar.Engine.Context;

/// <summary>
/// Resolves every setting as parameter &gt; environment variable &gt; project file &gt; default,
/// and remembers where each value came from.
/// </summary>
public sealed class ContextResolver
{
    private readonly Func<string, string?> _environment;
    private readonly ProjectTrust _trust;

    public ContextResolver(Func<string, string?>? environment = null, ProjectTrust? trust = null)
    {
        _environment = environment ?? System.Environment.GetEnvironmentVariable;
        _trust = trust ?? new ProjectTrust(environment: _environment);
    }

    public MoltarContext Resolve(ContextRequest request)
    {
        var warnings = new List<string>();
        var project = ProjectFile.Find(request.WorkingDirectory, warnings);
        var trust = project is null ? (ProjectTrustState?)null : _trust.StateOf(project);
        var ignored = new List<string>();
        var settings = new List<MoltarSetting>();
        string? projectPaths = project is null ? null : string.Join(", ", project.Paths);
        // How messages name the project file (as MoltarSetting.SourceText does).
        string projectSource = project is null ? "" : $"{SettingSource.ProjectFile} {projectPaths}";

        T? Pick<T>(string name, T? parameter, string variable, Func<string, string, T> parseVariable,
                   Func<object?, string, T>? fromFile, T? fallback)
        {
            if (parameter is not null)
                return Record(name, parameter, SettingSource.Parameter);
            string? raw = _environment(variable);
            if (!string.IsNullOrWhiteSpace(raw))
                return Record(name, parseVariable(raw.Trim(), variable), SettingSource.Environment, variable);
            if (project is not null && fromFile is not null && project.Values.TryGetValue(name, out var value) && value is not null)
            {
                // Somebody else's text until the user trusts it: it does not choose endpoints, keys, users or host trust.
                if (trust != ProjectTrustState.Trusted && ProjectFile.TrustedOnlyKeys.Contains(name, StringComparer.OrdinalIgnoreCase))
                    ignored.Add(name);
                else
                    return Record(name, fromFile(value, projectSource), SettingSource.ProjectFile, projectPaths);
            }
            return fallback is null ? default : Record(name, fallback, SettingSource.Default);
        }

        T Record<T>(string name, T value, SettingSource source, string? detail = null)
        {
            settings.Add(new MoltarSetting { Name = name, Value = value, Source = source, SourceDetail = detail });
            return value;
        }

        string AsString(object? value, string source) => value switch
        {
            string s => s,
            int or double => Convert.ToString(value, CultureInfo.InvariantCulture)!,
            _ => throw new FormatException($"{source}: expected a string, got {Describe(value)}."),
        };
        string Text(string raw, string _) => raw;

        string? name = Pick("Project", request.Project, "MOLTAR_PROJECT", Text, AsString, null);
        string? profile = Pick("ProfileName", request.ProfileName, "MOLTAR_PROFILE", Text, AsString, null);
        string? profileLocation = Pick("ProfileLocation", request.ProfileLocation, "MOLTAR_PROFILE_LOCATION", Text, null, null);
        string? region = Pick("Region", request.Region, "MOLTAR_REGION", Text, AsString, null);
        string? endpoint = Pick("EndpointUrl", request.EndpointUrl, "MOLTAR_ENDPOINT_URL", Text, AsString, null);
        string[] packages = Pick("Packages", request.Packages, "MOLTAR_PACKAGES",
            (raw, _) => raw.Split(new[] { ' ', ',', '\t' }, StringSplitOptions.RemoveEmptyEntries),
            (value, source) => AsStrings(value, source), null) ?? Array.Empty<string>();
        string? user = Pick("User", request.User, "MOLTAR_USER", Text, AsString, null);
        if (user is not null && !Ssh.SshNames.IsValidUser(user))
            throw new FormatException($"{settings.Last(s => s.Name == "User").SourceText}: User '{user}' is not {Ssh.SshNames.UserRule}.");
        int? port = Pick<int?>("Port", request.Port, "MOLTAR_PORT", (raw, v) => ParsePort(raw, v),
            (value, source) => ParsePort(AsString(value, source), source), null);
        var addressType = Pick<AddressType?>("AddressType", request.AddressType, "MOLTAR_ADDRESS_TYPE",
            (raw, v) => OneOf<AddressType>(raw, v), (value, source) => OneOf<AddressType>(AsString(value, source), source), AddressType.Auto) ?? AddressType.Auto;
        string? jumpHost = Pick("JumpHost", request.JumpHost, "MOLTAR_JUMP_HOST", Text, AsString, null);
        int throttle = Pick<int?>("ThrottleLimit", request.ThrottleLimit, "MOLTAR_THROTTLE_LIMIT", (raw, v) => ParsePositive(raw, v),
            (value, source) => ParsePositive(AsString(value, source), source), 32) ?? 32;
        string? keyFile = Pick("KeyFile", request.KeyFile, "MOLTAR_KEY_FILE", Text,
            (value, source) => RelativeTo(project, AsString(value, source)), null);
        string? knownHosts = Pick("KnownHostsPath", request.KnownHostsPath, "MOLTAR_KNOWN_HOSTS", Text,
            (value, source) => RelativeTo(project, AsString(value, source)), null);
        var hostKeyPolicy = Pick<StrictHostKeyChecking?>("StrictHostKeyChecking", request.StrictHostKeyChecking, "MOLTAR_STRICT_HOST_KEY_CHECKING",
            (raw, v) => OneOf<StrictHostKeyChecking>(raw, v), (value, source) => OneOf<StrictHostKeyChecking>(AsString(value, source), source),
            StrictHostKeyChecking.AcceptNew) ?? StrictHostKeyChecking.AcceptNew;
        int connectionIdle = Pick<int?>("ConnectionIdleSeconds", request.ConnectionIdleSeconds, "MOLTAR_CONNECTION_IDLE_SECONDS",
            (raw, v) => ParseIdleSeconds(raw, v), (value, source) => ParseIdleSeconds(AsString(value, source), source),
            MoltarContext.DefaultConnectionIdleSeconds) ?? MoltarContext.DefaultConnectionIdleSeconds;
        var transport = Pick<Transport?>("Transport", request.Transport, "MOLTAR_TRANSPORT",
            (raw, v) => OneOf<Transport>(raw, v), (value, source) => OneOf<Transport>(AsString(value, source), source),
            Transport.Ssh) ?? Transport.Ssh;

        var tagNames = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var role in ProjectFile.TagRoles)
            tagNames[role] = role;
        if (project is not null && project.Values.TryGetValue("TagNames", out var renamed) && renamed is Dictionary<string, object?> table)
        {
            foreach (var (role, key) in table)
                tagNames[role] = AsString(key, projectSource);
            settings.Add(new MoltarSetting { Name = "TagNames", Value = string.Join(", ", table.Select(t => $"{t.Key}={t.Value}")),
                                            Source = SettingSource.ProjectFile, SourceDetail = projectPaths });
        }

        if (ignored.Count > 0)
        {
            string why = trust == ProjectTrustState.ChangedSinceTrusted ? "has changed since you trusted it" : "is not trusted";
            warnings.Add($"{project!.Paths[0]} {why}: its {string.Join(", ", ignored)} {(ignored.Count == 1 ? "setting is" : "settings are")} ignored. " +
                         $"Review the file, then run Approve-MoltarProject to trust it.");
        }

        return new MoltarContext
        {
            Project = name,
            ProfileName = profile,
            ProfileLocation = profileLocation,
            Region = region,
            EndpointUrl = endpoint,
            Packages = packages,
            User = user,
            Port = port,
            AddressType = addressType,
            JumpHost = jumpHost,
            ThrottleLimit = throttle,
            KeyFile = keyFile,
            KnownHostsPath = knownHosts,
            StrictHostKeyChecking = hostKeyPolicy,
            ConnectionIdleSeconds = connectionIdle,
            Transport = transport,
            TagNames = tagNames,
            ProjectFile = project is { Paths.Count: > 0 } ? project.Paths[0] : null,
            ProjectDirectory = project?.Directory,
            ProjectTrust = trust?.ToString(),
            IgnoredProjectSettings = ignored.ToArray(),
            Warnings = warnings,
            Settings = settings,
        };
    }

    private static string RelativeTo(ProjectFile? project, string path) =>
        project is null || Path.IsPathRooted(path) || path.StartsWith('~') ? path : Path.GetFullPath(Path.Combine(project.Directory, path));

    private static string[] AsStrings(object? value, string source) => value switch
    {
        string s => s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries),
        object?[] items => items.Select(i => i as string ?? throw new FormatException($"{source}: Packages must be strings, got {Describe(i)}.")).ToArray(),
        _ => throw new FormatException($"{source}: Packages must be a string or an array of strings, got {Describe(value)}."),
    };

    private static int ParsePort(string raw, string source) =>
        int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out int port) && port is > 0 and < 65536
            ? port
            : throw new FormatException($"{source}: '{raw}' is not a TCP port (1-65535).");

    private static int ParsePositive(string raw, string source) =>
        int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0
            ? value
            : throw new FormatException($"{source}: '{raw}' is not a positive whole number.");

    /// <summary>The largest idle time: a day (the value is seconds; a larger one is more likely a slip than a wish).</summary>
    public const int MaxConnectionIdleSeconds = 86400;

    private static int ParseIdleSeconds(string raw, string source) =>
        int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value <= MaxConnectionIdleSeconds
            ? value
            : throw new FormatException($"{source}: '{raw}' is not a number of seconds from 0 (connections close when a call ends) to {MaxConnectionIdleSeconds}.");

    /// <summary>One of the enum's names, any case, dashes ignored ("accept-new"); numbers are not names.</summary>
    private static T OneOf<T>(string raw, string source) where T : struct, Enum
    {
        string name = Enum.GetNames<T>().FirstOrDefault(a => string.Equals(a, raw.Replace("-", ""), StringComparison.OrdinalIgnoreCase))
            ?? throw new FormatException($"{source}: '{raw}' is not one of {string.Join(", ", Enum.GetNames<T>())}.");
        return Enum.Parse<T>(name);
    }

    private static string Describe(object? value) => value switch
    {
        null => "$null",
        object?[] => "an array",
        Dictionary<string, object?> => "a hashtable",
        _ => $"'{value}'",
    };
}
