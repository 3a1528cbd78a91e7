using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>
/// An OpenSSH client config (ssh_config(5)) as Moltar reads it: Host blocks (wildcards, negation, several
/// patterns), Include (globs, conditional inside a Host block), first value wins, IdentityFile accumulates.
/// Match blocks other than "Match all" are reported and their settings ignored.
/// </summary>
public sealed class SshConfig
{
    /// <summary>Keywords the engine acts on (lower case). Others are reported when they apply to a host.</summary>
    public static readonly IReadOnlySet<string> SupportedKeywords = new HashSet<string>(StringComparer.Ordinal)
    {
        "host", "match", "include",
        "hostname", "user", "port", "identityfile", "identitiesonly", "identityagent", "proxyjump",
        "userknownhostsfile", "globalknownhostsfile", "stricthostkeychecking", "hashknownhosts",
        "connecttimeout", "serveraliveinterval", "kexalgorithms", "ciphers", "hostkeyalgorithms",
    };

    private static readonly HashSet<string> Accumulating = new(StringComparer.Ordinal) { "identityfile" };

    private readonly List<Entry> _entries;

    private SshConfig(List<Entry> entries, IReadOnlyList<string> notes)
    {
        _entries = entries;
        Notes = notes;
    }

    public static SshConfig Empty { get; } = new(new List<Entry>(), Array.Empty<string>());

    /// <summary>Messages from parsing (unsupported Match blocks, unreadable includes, bad lines).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Reads a config file; a missing file is an empty config.</summary>
    /// <param name="includeBase">Where relative Include paths point: ~/.ssh for a user config, /etc/ssh for the system one.</param>
    public static SshConfig Load(string path, string homeDirectory, string? includeBase = null)
    {
        var notes = new List<string>();
        var entries = new List<Entry>();
        if (File.Exists(path))
        {
            var parser = new Parser(homeDirectory, includeBase ?? Path.GetDirectoryName(Path.GetFullPath(path))!, entries, notes);
            parser.ParseFile(path, Array.Empty<Condition>(), depth: 0);
        }

        return new SshConfig(entries, notes);
    }

    /// <summary>Parses config text (Include paths resolve against includeBase).</summary>
    public static SshConfig Parse(string text, string sourceName = "ssh_config", string? homeDirectory = null, string? includeBase = null)
    {
        var home = homeDirectory ?? SshPaths.DefaultHome();
        var notes = new List<string>();
        var entries = new List<Entry>();
        var parser = new Parser(home, includeBase ?? Path.Combine(home, ".ssh"), entries, notes);
        parser.ParseText(text, sourceName, Array.Empty<Condition>(), depth: 0);
        return new SshConfig(entries, notes);
    }

    /// <summary>The settings that apply to a host name (as typed: matched against Host patterns).</summary>
    public SshConfigMatch Resolve(string host)
    {
        var first = new Dictionary<string, SshConfigValue>(StringComparer.Ordinal);
        var all = new Dictionary<string, List<SshConfigValue>>(StringComparer.Ordinal);
        var unsupported = new List<SshConfigValue>();
        foreach (var entry in _entries)
        {
            if (!entry.Conditions.All(c => c.Matches(host)))
            {
                continue;
            }

            var value = new SshConfigValue(entry.WrittenKeyword, entry.Args, entry.Source, entry.Line);
            if (!SupportedKeywords.Contains(entry.Keyword))
            {
                unsupported.Add(value);
                continue;
            }

            if (Accumulating.Contains(entry.Keyword))
            {
                if (!all.TryGetValue(entry.Keyword, out var list))
                {
                    all[entry.Keyword] = list = new List<SshConfigValue>();
                }

                list.Add(value);
            }
            else
            {
                first.TryAdd(entry.Keyword, value);
            }
        }

        return new SshConfigMatch(host, first, all, unsupported);
    }

    internal sealed record Entry(IReadOnlyList<Condition> Conditions, string Keyword, string WrittenKeyword, string[] Args, string Source, int Line);

    internal abstract class Condition
    {
        public abstract bool Matches(string host);
    }

    private sealed class HostCondition(string[] patterns) : Condition
    {
        public override bool Matches(string host) => SshPattern.MatchList(host, patterns);
    }

    private sealed class ConstantCondition(bool value) : Condition
    {
        public static readonly ConstantCondition Always = new(true);
        public static readonly ConstantCondition Never = new(false);
        public override bool Matches(string host) => value;
    }

    private sealed class Parser(string home, string includeBase, List<Entry> entries, List<string> notes)
    {
        private const int MaxDepth = 16;

        public void ParseFile(string path, IReadOnlyList<Condition> outer, int depth)
        {
            string text;
            try
            {
                text = Context.BoundedFile.ReadAllText(path, "The ssh config file");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                notes.Add($"ssh config {path} could not be read: {e.Message}");
                return;
            }

            ParseText(text, path, outer, depth);
        }

        public void ParseText(string text, string source, IReadOnlyList<Condition> outer, int depth)
        {
            // Conditions in force for lines of this file: the including block's, plus this file's current Host/Match.
            IReadOnlyList<Condition> current = outer;
            var lineNumber = 0;
            foreach (var rawLine in text.Split('\n'))
            {
                lineNumber++;
                var line = rawLine.TrimEnd('\r').Trim();
                if (line.Length == 0 || line[0] == '#')
                {
                    continue;
                }

                if (!TrySplitKeyword(line, out var keyword, out var rest))
                {
                    notes.Add($"{source}:{lineNumber}: cannot read line '{Shorten(line)}'");
                    continue;
                }

                string[] args;
                try
                {
                    args = SplitArguments(rest);
                }
                catch (FormatException e)
                {
                    notes.Add($"{source}:{lineNumber}: {e.Message}");
                    continue;
                }

                var key = keyword.ToLowerInvariant();
                switch (key)
                {
                    case "host":
                        current = Append(outer, new HostCondition(args));
                        break;
                    case "match":
                        if (args.Length == 1 && args[0].Equals("all", StringComparison.OrdinalIgnoreCase))
                        {
                            current = Append(outer, ConstantCondition.Always);
                        }
                        else
                        {
                            notes.Add($"{source}:{lineNumber}: 'Match {string.Join(' ', args)}' is not supported by Moltar; the settings in that block are ignored.");
                            current = Append(outer, ConstantCondition.Never);
                        }

                        break;
                    case "include":
                        if (depth >= MaxDepth)
                        {
                            notes.Add($"{source}:{lineNumber}: Include nested too deeply; ignored.");
                            break;
                        }

                        foreach (var pattern in args)
                        {
                            foreach (var file in ExpandInclude(pattern))
                            {
                                ParseFile(file, current, depth + 1);
                            }
                        }

                        break;
                    default:
                        if (args.Length == 0)
                        {
                            notes.Add($"{source}:{lineNumber}: '{keyword}' has no value; ignored.");
                            break;
                        }

                        entries.Add(new Entry(current, key, keyword, args, source, lineNumber));
                        break;
                }
            }
        }

        private static IReadOnlyList<Condition> Append(IReadOnlyList<Condition> outer, Condition condition)
        {
            var list = new List<Condition>(outer.Count + 1);
            list.AddRange(outer);
            list.Add(condition);
            return list;
        }

        private IEnumerable<string> ExpandInclude(string pattern)
        {
            var path = SshPaths.ExpandTilde(pattern, home);
            if (!Path.IsPathRooted(path))
            {
                path = Path.Combine(includeBase, path);
            }

            var directory = Path.GetDirectoryName(path);
            var filePattern = Path.GetFileName(path);
            if (string.IsNullOrEmpty(directory) || string.IsNullOrEmpty(filePattern))
            {
                return Array.Empty<string>();
            }

            if (directory.IndexOfAny(new[] { '*', '?' }) >= 0)
            {
                notes.Add($"Include '{pattern}': wildcards in directory names are not supported; ignored.");
                return Array.Empty<string>();
            }

            if (!Directory.Exists(directory))
            {
                return Array.Empty<string>();
            }

            if (filePattern.IndexOfAny(new[] { '*', '?' }) < 0)
            {
                return File.Exists(path) ? new[] { path } : Array.Empty<string>();
            }

            var files = Directory.GetFiles(directory, filePattern);
            Array.Sort(files, StringComparer.Ordinal);
            return files;
        }
    }

    internal static bool TrySplitKeyword(string line, out string keyword, out string rest)
    {
        var i = 0;
        while (i < line.Length && !char.IsWhiteSpace(line[i]) && line[i] != '=')
        {
            i++;
        }

        keyword = line.Substring(0, i);
        while (i < line.Length && char.IsWhiteSpace(line[i]))
        {
            i++;
        }

        if (i < line.Length && line[i] == '=')
        {
            i++;
        }

        rest = line.Substring(i).Trim();
        return keyword.Length > 0;
    }

    /// <summary>Splits arguments on whitespace; double or single quotes group; a trailing # comment is dropped.</summary>
    public static string[] SplitArguments(string text)
    {
        var args = new List<string>();
        var current = new StringBuilder();
        var inArg = false;
        char quote = '\0';
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quote != '\0')
            {
                if (c == '\\' && i + 1 < text.Length && (text[i + 1] == quote || text[i + 1] == '\\'))
                {
                    current.Append(text[++i]);
                }
                else if (c == quote)
                {
                    quote = '\0';
                }
                else
                {
                    current.Append(c);
                }

                continue;
            }

            if (char.IsWhiteSpace(c))
            {
                if (inArg)
                {
                    args.Add(current.ToString());
                    current.Clear();
                    inArg = false;
                }

                continue;
            }

            if (c == '#' && !inArg)
            {
                break;
            }

            inArg = true;
            if (c == '"' || c == '\'')
            {
                quote = c;
            }
            else if (c == '\\' && i + 1 < text.Length && (text[i + 1] is '"' or '\'' or '\\' || char.IsWhiteSpace(text[i + 1])))
            {
                current.Append(text[++i]);
            }
            else
            {
                current.Append(c);
            }
        }

        if (quote != '\0')
        {
            throw new FormatException("unterminated quote");
        }

        if (inArg)
        {
            args.Add(current.ToString());
        }

        return args.ToArray();
    }

    private static string Shorten(string s) => s.Length > 60 ? s.Substring(0, 60) + "..." : s;
}

/// <summary>One keyword's value as written, and where.</summary>
public sealed record SshConfigValue(string Keyword, IReadOnlyList<string> Args, string Source, int Line)
{
    public string Value => Args.Count > 0 ? Args[0] : "";
    public string Location => $"{Source}:{Line}";
}

/// <summary>The config values that apply to one host.</summary>
public sealed class SshConfigMatch
{
    private readonly Dictionary<string, SshConfigValue> _first;
    private readonly Dictionary<string, List<SshConfigValue>> _all;

    internal SshConfigMatch(string host, Dictionary<string, SshConfigValue> first, Dictionary<string, List<SshConfigValue>> all, List<SshConfigValue> unsupported)
    {
        Host = host;
        _first = first;
        _all = all;
        Unsupported = unsupported;
    }

    public string Host { get; }

    /// <summary>Keywords Moltar does not act on that were set for this host.</summary>
    public IReadOnlyList<SshConfigValue> Unsupported { get; }

    /// <summary>The first value given for a keyword (case-insensitive), or null.</summary>
    public SshConfigValue? Get(string keyword) => _first.TryGetValue(keyword.ToLowerInvariant(), out var v) ? v : null;

    /// <summary>Every value of an accumulating keyword (IdentityFile), in order.</summary>
    public IReadOnlyList<SshConfigValue> GetAll(string keyword) =>
        _all.TryGetValue(keyword.ToLowerInvariant(), out var v) ? v : (IReadOnlyList<SshConfigValue>)Array.Empty<SshConfigValue>();

    /// <summary>Merges two configs' answers: this one first (user config), then the fallback (system config).</summary>
    public SshConfigMatch Then(SshConfigMatch fallback)
    {
        var first = new Dictionary<string, SshConfigValue>(_first, StringComparer.Ordinal);
        foreach (var (k, v) in fallback._first)
        {
            first.TryAdd(k, v);
        }

        var all = _all.ToDictionary(p => p.Key, p => p.Value.ToList(), StringComparer.Ordinal);
        foreach (var (k, v) in fallback._all)
        {
            if (!all.TryGetValue(k, out var list))
            {
                all[k] = list = new List<SshConfigValue>();
            }

            list.AddRange(v);
        }

        return new SshConfigMatch(Host, first, all, Unsupported.Concat(fallback.Unsupported).ToList());
    }
}
