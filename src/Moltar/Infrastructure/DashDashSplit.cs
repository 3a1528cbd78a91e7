using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Reflection;

namespace Moltar.Infrastructure;

/// <summary>
/// How a command line used "--", read from the command's own syntax tree. PowerShell drops "--" before binding:
/// after it every word is positional, so in `Enter-MoltarInstance staging jobs -- uptime` 'uptime' lands in the
/// next free positional parameter (Name) instead of the remote command. With this, a cmdlet can tell which
/// positional parameters were filled from words after "--" and hand those words back to the remote command,
/// and it can tell a mistyped parameter (which ValueFromRemainingArguments would otherwise swallow) from a word.
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

    /// <summary>The split of the current invocation; null when there is no syntax tree (called through the API).</summary>
    public static DashDashSplit? Of(PSCmdlet cmdlet)
    {
        var command = CommandAstOf(cmdlet.MyInvocation);
        if (command is null)
            return null;
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

    /// <summary>The syntax tree of this command (InvocationInfo.ScriptPosition is its extent; it is not public).</summary>
    private static CommandAst? CommandAstOf(InvocationInfo invocation)
    {
        try
        {
            var property = typeof(InvocationInfo).GetProperty("ScriptPosition", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
            if (property?.GetValue(invocation) is not IScriptExtent { Text.Length: > 0 } extent)
                return null;
            var ast = Parser.ParseInput(extent.Text, out _, out var errors);
            if (errors.Length > 0)
                return null;
            return ast.Find(a => a is CommandAst, searchNestedScriptBlocks: false) as CommandAst;
        }
        catch (Exception e) when (e is TargetInvocationException or MemberAccessException or InvalidOperationException)
        {
            return null;
        }
    }
}
