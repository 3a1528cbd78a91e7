using System.Globalization;
using System.Text;

namespace Moltar.Engine.Context;

/// <summary>
/// Reads the restricted PowerShell data language of a .psd1 project file: one hashtable of strings,
/// numbers, booleans, $null, arrays and nested hashtables. Nothing is evaluated, so a project file
/// in a cloned repository cannot run code on the workstation.
/// </summary>
public static class DataFileParser
{
    public static Dictionary<string, object?> Parse(string text, string sourceName = "data file")
    {
        var reader = new Reader(text, sourceName);
        reader.SkipTrivia();
        object? value = reader.ReadValue();
        reader.SkipTrivia();
        if (!reader.AtEnd)
            throw reader.Error("unexpected text after the closing '}'");
        return value as Dictionary<string, object?>
            ?? throw reader.Error("a project file must hold one hashtable: @{ Project = 'name' }");
    }

    private sealed class Reader
    {
        private readonly string _text;
        private readonly string _source;
        private int _position;
        private int _depth;
        private const int MaxDepth = 16;

        public Reader(string text, string source)
        {
            _text = text;
            _source = source;
        }

        public bool AtEnd => _position >= _text.Length;
        private char Current => _text[_position];
        private char Peek(int offset = 1) => _position + offset < _text.Length ? _text[_position + offset] : '\0';

        public FormatException Error(string what)
        {
            int line = 1 + _text.Take(Math.Min(_position, _text.Length)).Count(c => c == '\n');
            return new FormatException($"{_source}, line {line}: {what}.");
        }

        public void SkipTrivia(bool newlines = true)
        {
            while (!AtEnd)
            {
                char c = Current;
                if (c == '#') { while (!AtEnd && Current != '\n') _position++; }
                else if (c == '<' && Peek() == '#')
                {
                    int end = _text.IndexOf("#>", _position + 2, StringComparison.Ordinal);
                    if (end < 0) throw Error("a <# comment is never closed");
                    _position = end + 2;
                }
                else if (c == '`' && (Peek() == '\n' || Peek() == '\r')) _position += 2;
                else if (c == ' ' || c == '\t' || (newlines && (c == '\r' || c == '\n'))) _position++;
                else break;
            }
        }

        public object? ReadValue()
        {
            object? first = ReadSingle();
            SkipTrivia(newlines: false);
            if (AtEnd || Current != ',')
                return first;
            var items = new List<object?> { first };
            while (!AtEnd && Current == ',')
            {
                _position++;
                SkipTrivia();
                items.Add(ReadSingle());
                SkipTrivia(newlines: false);
            }
            return items.ToArray();
        }

        private object? ReadSingle()
        {
            if (AtEnd) throw Error("a value is missing");
            char c = Current;
            if (c == '@' && (Peek() == '{' || Peek() == '('))
            {
                // A project file is somebody else's text: deep nesting must be an error, not a stack overflow of pwsh.
                if (++_depth > MaxDepth) throw Error($"values are nested deeper than {MaxDepth} levels");
                bool table = Peek() == '{';
                _position += 2;
                object result = table ? ReadHashtable() : ReadArray();
                _depth--;
                return result;
            }
            if (c == '\'') return ReadSingleQuoted();
            if (c == '"') return ReadDoubleQuoted();
            if (c == '$') return ReadVariable();
            if (char.IsDigit(c) || ((c == '-' || c == '+') && char.IsDigit(Peek()))) return ReadNumber();
            throw Error($"'{c}' cannot start a value (quote strings: 'text')");
        }

        private Dictionary<string, object?> ReadHashtable()
        {
            var table = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
            while (true)
            {
                SkipSeparators();
                if (AtEnd) throw Error("a hashtable is never closed with '}'");
                if (Current == '}') { _position++; return table; }
                string key = ReadKey();
                SkipTrivia(newlines: false);
                if (AtEnd || Current != '=') throw Error($"'=' expected after the key '{key}'");
                _position++;
                SkipTrivia();
                if (table.ContainsKey(key)) throw Error($"the key '{key}' appears twice");
                table[key] = ReadValue();
            }
        }

        private object?[] ReadArray()
        {
            var items = new List<object?>();
            while (true)
            {
                SkipSeparators();
                if (AtEnd) throw Error("an array is never closed with ')'");
                if (Current == ')') { _position++; return items.ToArray(); }
                object? value = ReadValue();
                if (value is object?[] nested) items.AddRange(nested); else items.Add(value);
            }
        }

        private void SkipSeparators()
        {
            while (true)
            {
                SkipTrivia();
                if (!AtEnd && Current == ';') { _position++; continue; }
                return;
            }
        }

        private string ReadKey()
        {
            if (Current == '\'') return ReadSingleQuoted();
            if (Current == '"') return ReadDoubleQuoted();
            int start = _position;
            while (!AtEnd && (char.IsLetterOrDigit(Current) || Current == '_' || Current == '-')) _position++;
            if (start == _position) throw Error($"a key is expected, not '{Current}'");
            return _text[start.._position];
        }

        private string ReadSingleQuoted()
        {
            var builder = new StringBuilder();
            _position++;
            while (true)
            {
                if (AtEnd) throw Error("a quoted string is never closed");
                if (Current == '\'')
                {
                    if (Peek() == '\'') { builder.Append('\''); _position += 2; continue; }
                    _position++;
                    return builder.ToString();
                }
                builder.Append(Current);
                _position++;
            }
        }

        private string ReadDoubleQuoted()
        {
            var builder = new StringBuilder();
            _position++;
            while (true)
            {
                if (AtEnd) throw Error("a quoted string is never closed");
                char c = Current;
                if (c == '"')
                {
                    if (Peek() == '"') { builder.Append('"'); _position += 2; continue; }
                    _position++;
                    return builder.ToString();
                }
                if (c == '$' && (char.IsLetter(Peek()) || Peek() == '{' || Peek() == '('))
                    throw Error("variables and expressions are not expanded in a project file; use single quotes");
                if (c == '`' && _position + 1 < _text.Length)
                {
                    char next = Peek();
                    builder.Append(next switch { 'n' => '\n', 't' => '\t', 'r' => '\r', '0' => '\0', _ => next });
                    _position += 2;
                    continue;
                }
                builder.Append(c);
                _position++;
            }
        }

        private object? ReadVariable()
        {
            int start = ++_position;
            while (!AtEnd && (char.IsLetterOrDigit(Current) || Current == '_')) _position++;
            string name = _text[start.._position];
            return name.ToLowerInvariant() switch
            {
                "true" => true,
                "false" => false,
                "null" => null,
                _ => throw Error($"'${name}' is not allowed in a project file (only $true, $false and $null)"),
            };
        }

        private object ReadNumber()
        {
            int start = _position;
            if (Current == '-' || Current == '+') _position++;
            while (!AtEnd && (char.IsDigit(Current) || Current == '.')) _position++;
            string literal = _text[start.._position];
            if (int.TryParse(literal, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int whole))
                return whole;
            if (double.TryParse(literal, NumberStyles.Float, CultureInfo.InvariantCulture, out double real))
                return real;
            throw Error($"'{literal}' is not a number");
        }
    }
}
