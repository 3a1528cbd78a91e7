using System.Text;

namespace Moltar.Engine.Ssh;

/// <summary>
/// An OpenSSH client config (ssh_config(5)) as Moltar reads it: Host blocks (wildcards, negation, several
/// patterns), Include (globs, conditional inside a Host block), first value wins, IdentityFile accumulates.
/// Match blocks (host, originalhost, user, localuser, all, final, canonical, exec) as OpenSSH 9.2 evaluates them.
/// </summary>
public sealed class SshConfig
{
    /// <summary>Keywords the engine acts on (lower case). Others are reported when they apply to a host.</summary>
    public static readonly IReadOnlySet<string> SupportedKeywords = new HashSet<string>(StringComparer.Ordinal)
    {
        "host", "match", "include",
        "hostname", "user", "port", "identityfile", "certificatefile", "identitiesonly", "identityagent", "proxyjump", "proxycommand",
        "userknownhostsfile", "globalknownhostsfile", "stricthostkeychecking", "hashknownhosts",
        "connecttimeout", "serveraliveinterval", "kexalgorithms", "ciphers", "hostkeyalgorithms",
    };

    /// <summary>
    /// Unsupported keywords that cannot change where or how Moltar connects or what the host runs (logging,
    /// terminals, X11, forwardings Moltar never opens, auth methods it never uses, connection sharing): verbose only.
    /// Every other unsupported keyword is a warning.
    /// </summary>
    public static readonly IReadOnlySet<string> HarmlessKeywords = new HashSet<string>(StringComparer.Ordinal)
    {
        "addkeystoagent", "usekeychain", "loglevel", "logverbose", "visualhostkey", "escapechar", "batchmode",
        "forwardx11", "forwardx11trusted", "forwardx11timeout", "xauthlocation", "forwardagent",
        "localforward", "remoteforward", "dynamicforward", "gatewayports", "exitonforwardfailure", "clearallforwardings",
        "permitremoteopen", "streamlocalbindmask", "streamlocalbindunlink", "requesttty", "sessiontype", "stdinnull",
        "forkafterauthentication", "controlmaster", "controlpath", "controlpersist", "compression",
        "serveralivecountmax", "tcpkeepalive", "passwordauthentication", "kbdinteractiveauthentication",
        "challengeresponseauthentication", "kbdinteractivedevices", "numberofpasswordprompts", "gssapiauthentication",
        "gssapidelegatecredentials", "hostbasedauthentication", "ignoreunknown", "permitlocalcommand", "localcommand",
        "enableescapecommandline", "obscurekeystroketiming", "preferredauthentications",
    };

    private static readonly HashSet<string> Accumulating = new(StringComparer.Ordinal) { "identityfile", "certificatefile" };

    private readonly List<Entry> _entries;

    private SshConfig(List<Entry> entries, IReadOnlyList<string> notes)
    {
        _entries = entries;
        Notes = notes;
    }

    public static SshConfig Empty { get; } = new(new List<Entry>(), Array.Empty<string>());

    /// <summary>Whether a Match line has an exec criterion.</summary>
    public bool HasMatchExec => _entries.Any(e => e.Conditions.Any(c => c is MatchCondition m && m.HasExec));

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

    /// <summary>The settings that apply to a host name (as typed), with nothing given on a command line.</summary>
    public SshConfigMatch Resolve(string host) => Resolve(new[] { this }, new SshConfigQuery(host));

    /// <summary>
    /// Resolves configs the way ssh reads them: in order (the user's config, then the system's), one pass with
    /// state, first value wins, Host and Match conditions evaluated against what has been set so far; when a
    /// "Match final" was evaluated, a second pass with Host patterns matched against the resolved host name and
    /// "Match final"/"Match canonical" true (ssh's re-parse). ProxyJump and ProxyCommand share one slot.
    /// </summary>
    public static SshConfigMatch Resolve(IReadOnlyList<SshConfig> configs, SshConfigQuery query)
    {
        var state = new ResolveState(query);
        if (query.JumpHost is { } jump)
        {
            state.SetJump(new SshConfigValue("ProxyJump", new[] { jump }, "-JumpHost", 0, jump)); // like ssh -J, ahead of every config
        }

        state.Pass(configs, finalPass: false);
        if (state.WantFinalPass)
        {
            state.Pass(configs, finalPass: true);
        }

        return new SshConfigMatch(query.Host, state.First, state.All, state.Unsupported);
    }

    internal sealed class ResolveState(SshConfigQuery query)
    {
        public readonly Dictionary<string, SshConfigValue> First = new(StringComparer.Ordinal);
        public readonly Dictionary<string, List<SshConfigValue>> All = new(StringComparer.Ordinal);
        public readonly List<SshConfigValue> Unsupported = new();
        private readonly HashSet<string> _unsupportedSeen = new(StringComparer.Ordinal);
        private Dictionary<Condition, bool> _evaluated = new(ReferenceEqualityComparer.Instance);
        public bool WantFinalPass;
        public bool FinalPass;
        private string _patternHost = query.Host;

        public SshConfigQuery Query => query;

        /// <summary>
        /// ssh's rule for the two: the first ProxyJump wins (and is ignored after a ProxyCommand, "none" included);
        /// a ProxyJump other than "none" makes every later ProxyCommand "none". ProxyJump none leaves a later
        /// ProxyCommand in force (checked against ssh -G).
        /// </summary>
        public void SetJump(SshConfigValue value)
        {
            if (First.ContainsKey("proxyjump") || First.ContainsKey("proxycommand"))
            {
                return;
            }

            First["proxyjump"] = value;
            if (!value.Value.Equals("none", StringComparison.OrdinalIgnoreCase))
            {
                First["proxycommand"] = new SshConfigValue("ProxyCommand", new[] { "none" }, value.Source, value.Line, "none");
            }
        }

        public void RequestFinalPass() => WantFinalPass = true;

        /// <summary>Match exec: the command with ssh's tokens expanded, run as the query says (ssh: $SHELL -c; matched when it exits 0).</summary>
        public bool Exec(string command, string location)
        {
            var tokens = new SshPaths.TokenValues(query.Home, CurrentHost, CurrentUser, CurrentPort, query.Host);
            return query.Exec?.Invoke(SshPaths.ExpandTokens(command, tokens), location) ?? false;
        }

        public void Pass(IReadOnlyList<SshConfig> configs, bool finalPass)
        {
            FinalPass = finalPass;
            _evaluated = new Dictionary<Condition, bool>(ReferenceEqualityComparer.Instance);
            if (finalPass)
            {
                _patternHost = CurrentHost;
            }

            foreach (var config in configs)
            {
                foreach (var entry in config._entries)
                {
                    if (entry.Conditions.All(Evaluate))
                    {
                        Apply(entry);
                    }
                }
            }
        }

        private bool Evaluate(Condition condition)
        {
            // ssh evaluates a Host/Match line once, where it stands: later lines of its block do not change the verdict.
            if (!_evaluated.TryGetValue(condition, out var result))
            {
                _evaluated[condition] = result = condition.Matches(this);
            }

            return result;
        }

        /// <summary>The host name as ssh knows it at this point: HostName (with %h) once set, else the name typed.</summary>
        public string CurrentHost => First.TryGetValue("hostname", out var hn)
            ? SshPaths.ExpandTokens(hn.Value, new SshPaths.TokenValues(query.Home, query.Host))
            : query.Host;

        public string PatternHost => _patternHost;

        public string CurrentUser => query.User ?? (First.TryGetValue("user", out var u) ? u.Value : null) ?? query.DefaultUser;

        public int CurrentPort => query.Port
            ?? (First.TryGetValue("port", out var p) && int.TryParse(p.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 22);

        private void Apply(Entry entry)
        {
            var value = new SshConfigValue(entry.WrittenKeyword, entry.Args, entry.Source, entry.Line, entry.Raw);
            if (!SupportedKeywords.Contains(entry.Keyword))
            {
                if (_unsupportedSeen.Add(value.Location))
                {
                    Unsupported.Add(value);
                }

                return;
            }

            if (Accumulating.Contains(entry.Keyword))
            {
                if (!All.TryGetValue(entry.Keyword, out var list))
                {
                    All[entry.Keyword] = list = new List<SshConfigValue>();
                }

                // ssh adds a file once, however often it is named (the final pass reads every line again).
                if (!list.Any(v => v.Value == value.Value))
                {
                    list.Add(value);
                }

                return;
            }

            if (entry.Keyword == "proxyjump")
            {
                SetJump(value);
                return;
            }

            First.TryAdd(entry.Keyword, value);
        }
    }

    internal sealed record Entry(IReadOnlyList<Condition> Conditions, string Keyword, string WrittenKeyword, string[] Args, string Raw, string Source, int Line);

    internal abstract class Condition
    {
        public abstract bool Matches(ResolveState state);
    }

    private sealed class HostCondition(string[] patterns) : Condition
    {
        public override bool Matches(ResolveState state) => SshPattern.MatchList(state.PatternHost, patterns);
    }

    private sealed class ConstantCondition(bool value) : Condition
    {
        public static readonly ConstantCondition Always = new(true);
        public static readonly ConstantCondition Never = new(false);
        public override bool Matches(ResolveState state) => value;
    }

    /// <summary>A Match line (ssh_config(5) as OpenSSH 9.2 has it): criteria AND'ed, each may be negated with '!'.</summary>
    private sealed class MatchCondition(IReadOnlyList<(string Criterion, bool Negate, string? Argument)> criteria, string location) : Condition
    {
        public bool HasExec => criteria.Any(c => c.Criterion == "exec");

        public override bool Matches(ResolveState state)
        {
            var result = true;
            foreach (var (criterion, negate, argument) in criteria)
            {
                bool matched;
                switch (criterion)
                {
                    case "all":
                        matched = true;
                        break;
                    case "canonical":
                    case "final":
                        if (criterion == "final")
                        {
                            state.RequestFinalPass();
                        }

                        matched = state.FinalPass;
                        break;
                    case "host":
                        matched = SshPattern.MatchList(state.CurrentHost, SplitList(argument!));
                        break;
                    case "originalhost":
                        matched = SshPattern.MatchList(state.Query.Host, SplitList(argument!));
                        break;
                    case "user":
                        matched = SshPattern.MatchList(state.CurrentUser, SplitList(argument!));
                        break;
                    case "localuser":
                        matched = SshPattern.MatchList(state.Query.LocalUser, SplitList(argument!));
                        break;
                    case "exec":
                        if (!result)
                        {
                            continue; // ssh skips an exec once an earlier criterion failed
                        }

                        matched = state.Exec(argument!, location);
                        break;
                    default:
                        matched = false;
                        break;
                }

                if (matched == negate)
                {
                    result = false;
                }
            }

            return result;
        }

        private static string[] SplitList(string argument) => argument.Split(',', StringSplitOptions.RemoveEmptyEntries);
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
                        current = Append(outer, ParseMatch(args, $"{source}:{lineNumber}"));
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

                        entries.Add(new Entry(current, key, keyword, args, rest, source, lineNumber));
                        break;
                }
            }
        }

        private Condition ParseMatch(string[] args, string location)
        {
            var criteria = new List<(string, bool, string?)>();
            for (var i = 0; i < args.Length; i++)
            {
                var word = args[i];
                var negate = word.StartsWith('!');
                var name = (negate ? word.Substring(1) : word).ToLowerInvariant();
                switch (name)
                {
                    case "all":
                    case "canonical":
                    case "final":
                        criteria.Add((name, negate, null));
                        break;
                    case "host":
                    case "originalhost":
                    case "user":
                    case "localuser":
                    case "exec":
                        if (i + 1 >= args.Length)
                        {
                            notes.Add($"{location}: 'Match {string.Join(' ', args)}': '{word}' needs an argument; the block is ignored (ssh refuses this config).");
                            return ConstantCondition.Never;
                        }

                        criteria.Add((name, negate, args[++i]));
                        break;
                    default:
                        notes.Add($"{location}: 'Match {string.Join(' ', args)}': '{word}' is not supported by Moltar; the settings in that block are ignored.");
                        return ConstantCondition.Never;
                }
            }

            if (criteria.Count == 0)
            {
                notes.Add($"{location}: 'Match' without criteria; the block is ignored (ssh refuses this config).");
                return ConstantCondition.Never;
            }

            return new MatchCondition(criteria, location);
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

            if (directory.AsSpan().IndexOfAny('*', '?') >= 0)
            {
                notes.Add($"Include '{pattern}': wildcards in directory names are not supported; ignored.");
                return Array.Empty<string>();
            }

            if (!Directory.Exists(directory))
            {
                return Array.Empty<string>();
            }

            if (filePattern.AsSpan().IndexOfAny('*', '?') < 0)
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

    private static string Shorten(string s) => s.Length > 60 ? string.Concat(s.AsSpan(0, 60), "...") : s;
}

/// <summary>
/// What is known before ssh config is read: the host as typed, what the command line (Moltar's parameters or the
/// target) already fixes, and how Match exec runs commands. Exec gets the expanded command and the Match line's
/// location and says whether it exited 0; null = every exec is false.
/// </summary>
public sealed record SshConfigQuery(string Host)
{
    public string? User { get; init; }
    public int? Port { get; init; }
    /// <summary>A jump host given on the command line (ssh -J; Moltar's -JumpHost), "none" included.</summary>
    public string? JumpHost { get; init; }
    public string DefaultUser { get; init; } = SshOptions.DefaultUser;
    public string LocalUser { get; init; } = Environment.UserName;
    public string Home { get; init; } = SshPaths.DefaultHome();
    public Func<string, string, bool>? Exec { get; init; }
}

/// <summary>One keyword's value as written, and where.</summary>
public sealed record SshConfigValue(string Keyword, IReadOnlyList<string> Args, string Source, int Line, string Raw = "")
{
    /// <summary>The value as written after the keyword (ProxyCommand and Match exec take it whole, as ssh does).</summary>
    public string Text => Raw.Length > 0 ? Raw : string.Join(' ', Args);

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
}
