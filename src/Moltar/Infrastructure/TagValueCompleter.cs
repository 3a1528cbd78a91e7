using System.Collections;
using System.Collections.Concurrent;
using System.Management.Automation;
using System.Management.Automation.Language;
using Moltar.Engine.Aws;
using Moltar.Engine.Context;
using Moltar.Engine.Discovery;

namespace Moltar.Infrastructure;

/// <summary>
/// Completes -Environment, -Cluster and -Name from live tag values, narrowed by what is already on the
/// command line. Listings are cached briefly so repeated tabs do not call EC2 each time.
/// </summary>
public abstract class TagValueCompleter : IArgumentCompleter
{
    private static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(60);
    private static readonly ConcurrentDictionary<string, (DateTime At, IReadOnlyList<MoltarInstance> Instances)> Cache = new();

    protected abstract string? ValueOf(MoltarInstance instance);

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
                                                          CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        IReadOnlyList<MoltarInstance> instances;
        try
        {
            instances = List(fakeBoundParameters, parameterName);
        }
        catch (Exception)
        {
            // Completion must never throw at the prompt; no suggestions is the honest answer.
            return Array.Empty<CompletionResult>();
        }
        string prefix = wordToComplete.Trim('\'', '"');
        return instances.Select(ValueOf)
            .Where(v => !string.IsNullOrEmpty(v) && v!.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Distinct(StringComparer.Ordinal)
            .OrderBy(v => v, StringComparer.OrdinalIgnoreCase)
            .Select(v => new CompletionResult(CompletionText(v!), DisplayText.Printable(v), CompletionResultType.ParameterValue, DisplayText.Printable(v)))
            .ToList();
    }

    private static IReadOnlyList<MoltarInstance> List(IDictionary bound, string completing)
    {
        string? Bound(string name) => bound.Contains(name) ? bound[name]?.ToString() : null;
        var context = new ContextResolver().Resolve(new ContextRequest
        {
            Project = Bound("Project"),
            ProfileName = Bound("ProfileName"),
            ProfileLocation = Bound("ProfileLocation"),
            Region = Bound("Region"),
            EndpointUrl = Bound("EndpointUrl"),
            WorkingDirectory = CurrentLocation(),
        });
        var session = AwsSession.Create(context, null, mfaCode: null);
        var selection = new InstanceSelection
        {
            Project = context.Project,
            Environment = completing == "Environment" ? null : Bound("Environment"),
            Cluster = completing == "Cluster" ? null : Bound("Cluster"),
        };
        string key = string.Join("|", session.EndpointUrl, session.RegionName, session.CredentialSource, selection.Describe());
        if (Cache.TryGetValue(key, out var cached) && DateTime.UtcNow - cached.At < CacheLifetime)
            return cached.Instances;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var instances = new InstanceDiscovery(session, context).FindAsync(selection, timeout.Token).GetAwaiter().GetResult();
        Cache[key] = (DateTime.UtcNow, instances);
        return instances;
    }

    // The prompt's location, not the process's: Set-Location does not change the process directory.
    private static string CurrentLocation()
    {
        using var shell = PowerShell.Create(RunspaceMode.CurrentRunspace);
        var location = shell.AddCommand("Microsoft.PowerShell.Management\\Get-Location").AddParameter("PSProvider", "FileSystem").Invoke<PathInfo>();
        return location.Count > 0 ? location[0].ProviderPath : System.Environment.CurrentDirectory;
    }

    /// <summary>
    /// What Tab inserts for a tag value (anyone's to set): a bare word only when it is letters, digits and . _ / : @ +
    /// and not an option (-x); anything else one single-quoted string, escaped by PowerShell's own rules (which also end
    /// a string at ‘ ’ ‚ ‛). Control characters become '?', a wildcard that still matches them.
    /// </summary>
    internal static string CompletionText(string value)
    {
        string text = DisplayText.Printable(value);
        bool bare = text.Length > 0 && !IsDash(text[0])
                    && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '/' or ':' or '@' or '+' or '-');
        return bare ? text : "'" + CodeGeneration.EscapeSingleQuotedStringContent(text) + "'";
    }

    // PowerShell reads these as '-' at the start of a parameter name: - – — ―
    private static bool IsDash(char c) => c is '-' or '\u2013' or '\u2014' or '\u2015';
}

public sealed class EnvironmentCompleter : TagValueCompleter
{
    protected override string? ValueOf(MoltarInstance instance) => instance.Environment;
}

public sealed class ClusterCompleter : TagValueCompleter
{
    protected override string? ValueOf(MoltarInstance instance) => instance.Cluster;
}

public sealed class NameCompleter : TagValueCompleter
{
    protected override string? ValueOf(MoltarInstance instance) => instance.Name;
}
