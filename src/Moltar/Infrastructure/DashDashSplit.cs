using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace Moltar.Infrastructure;

/// <summary>
/// How a command line used "--", read from the command's own syntax tree. PowerShell drops "--" before binding:
/// after it every word is positional, so in `Enter-MoltarInstance staging jobs -- uptime` 'uptime' lands in the
/// next free positional parameter (Name) instead of the remote command, and nothing that binding hands a cmdlet
/// (bound parameters, ValueFromRemainingArguments) differs from `Enter-MoltarInstance staging jobs uptime`. So the
/// split cannot be had from binding: it is read from the command's text (InvocationInfo.Statement, public since
/// PowerShell 7.4). With this, a cmdlet can tell which positional parameters were filled from words after "--" and
/// hand those words back to the remote command, and it can tell a mistyped parameter (which
/// ValueFromRemainingArguments would otherwise swallow) from a word.
/// </summary>
internal sealed class DashDashSplit
{
    /// <summary>Positional words before "--" (splatted arrays count their elements).</summary>
    public int PositionalBefore { get; private init; }
    /// <summary>Words after "--" (all positional).</summary>
    public int After { get; private init; }
    /// <summary>Parameters given by name before "--" (their declared names), splatted hashtables included.</summary>
    public IReadOnlySet<string> Named { get; private init; } = new HashSet<string>();
    /// <summary>"-Words" before "--" that name no parameter of the command.</summary>
    public IReadOnlyList<string> Unknown { get; private init; } = Array.Empty<string>();

    /// <summary>
    /// The member InvocationInfo.Statement: the text of this command as typed, public since PowerShell 7.4 (the least
    /// the manifest accepts). The reference assemblies Moltar compiles against are PowerShell 5.1's, which predate it,
    /// so it is read as a script reads $MyInvocation.Statement: through PowerShell's own member lookup, which sees
    /// public members only. (A field, not a constant, so a test can stand in for a PowerShell without it.)
    /// </summary>
    internal static string StatementMember = "Statement";

    /// <summary>
    /// The split of the current invocation; null when the command was not typed (called through the API, where
    /// there is no "--"). When the command text cannot be had or read although its line has a "--", this is a
    /// terminating DashDashNotSupported error: binding the words after it as -Environment/-Cluster/-Name would
    /// select other hosts or run something else.
    /// </summary>
    public static DashDashSplit? Of(PSCmdlet cmdlet)
    {
        var command = CommandAstOf(cmdlet.MyInvocation, out string? problem);
        if (command is null)
        {
            if (problem is not null && MayHaveDashDash(cmdlet.MyInvocation.Line))
            {
                cmdlet.ThrowTerminatingError(new ErrorRecord(new PSNotSupportedException(
                    $"{cmdlet.MyInvocation.MyCommand.Name} cannot tell which words came after \"--\": {problem}. " +
                    "Pass the remote command with -ArgumentList instead (e.g. -ArgumentList uptime), and the selection by name (-Environment, -Cluster, -Name)."),
                    "DashDashNotSupported", ErrorCategory.NotImplemented, null));
            }
            return null;
        }
        var elements = command.CommandElements.Skip(1).ToList();
        int dashDash = elements.FindIndex(e => e is CommandParameterAst p && p.Extent.Text == "--");
        var before = dashDash < 0 ? elements : elements.Take(dashDash).ToList();

        var named = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var unknown = new List<string>();
        int positional = 0;
        for (int i = 0; i < before.Count; i++)
        {
            switch (before[i])
            {
                case CommandParameterAst parameter:
                    var metadata = Resolve(cmdlet, parameter.ParameterName);
                    if (metadata is null)
                    {
                        unknown.Add("-" + parameter.ParameterName);
                        break;
                    }
                    named.Add(metadata.Name);
                    if (parameter.Argument is null && !metadata.SwitchParameter)
                        i++; // the next element is this parameter's value
                    break;
                case VariableExpressionAst { Splatted: true } splat:
                    switch (cmdlet.SessionState.PSVariable.GetValue(splat.VariablePath.UserPath))
                    {
                        case IDictionary table:
                            foreach (var key in table.Keys)
                            {
                                if (Resolve(cmdlet, key?.ToString() ?? "") is { } m) named.Add(m.Name);
                                else unknown.Add("-" + key);
                            }
                            break;
                        case null:
                            break;
                        case string:
                            positional++;
                            break;
                        case IEnumerable list:
                            positional += list.Cast<object?>().Count();
                            break;
                        default:
                            positional++;
                            break;
                    }
                    break;
                default:
                    positional++;
                    break;
            }
        }

        return new DashDashSplit
        {
            PositionalBefore = positional,
            After = dashDash < 0 ? 0 : elements.Count - dashDash - 1,
            Named = named,
            Unknown = unknown,
        };
    }

    private static ParameterMetadata? Resolve(PSCmdlet cmdlet, string name)
    {
        try
        {
            return name.Length == 0 ? null : cmdlet.MyInvocation.MyCommand.ResolveParameter(name);
        }
        catch (Exception e) when (e is ParameterBindingException or ArgumentException or PSArgumentException)
        {
            return null;
        }
    }

    /// <summary>Whether a "--" token may be on the line (a cheap check on the public InvocationInfo.Line).</summary>
    private static bool MayHaveDashDash(string? line) => line is not null && line.Contains("--", StringComparison.Ordinal);

    /// <summary>The syntax tree of this command, parsed from InvocationInfo.Statement; problem says why there is none.</summary>
    private static CommandAst? CommandAstOf(InvocationInfo invocation, out string? problem)
    {
        problem = null;
        var member = PSObject.AsPSObject(invocation).Properties[StatementMember];
        if (member is null)
        {
            problem = "this PowerShell has no InvocationInfo.Statement (PowerShell 7.4 or later has it)";
            return null;
        }
        if (member.Value is not string { Length: > 0 } statement)
            return null; // not typed: called through the API
        var ast = Parser.ParseInput(statement, out _, out var errors);
        var command = errors.Length > 0 ? null : ast.Find(a => a is CommandAst, searchNestedScriptBlocks: false) as CommandAst;
        if (command is null)
            problem = $"its text could not be read as a command ({statement})";
        return command;
    }
}
