using System.Globalization;

namespace Moltar;

/// <summary>
/// Hostile text (tag values, host names, remote file names) made safe to show: control characters, line and
/// paragraph separators and the bidirectional overrides show as '?', so an escape sequence or a reordering of what
/// follows never reaches the terminal.
/// </summary>
public static class DisplayText
{
    public static string Printable(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return text ?? "";
        foreach (char c in text)
        {
            if (IsUnsafe(c))
                return new string(text.Select(ch => IsUnsafe(ch) ? '?' : ch).ToArray());
        }
        return text; // the usual case, once per output line: no allocation
    }

    /// <summary>
    /// <see cref="Printable"/> for text of several lines (a message, a command's output): line feeds and tabs stay, a
    /// carriage return stays only before a line feed; every other unsafe character shows as '?'.
    /// </summary>
    public static string PrintableLines(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return text ?? "";
        int i = 0;
        while (i < text.Length && !UnsafeInLines(text, i))
            i++;
        if (i == text.Length)
            return text;
        var chars = text.ToCharArray();
        for (; i < chars.Length; i++)
        {
            if (UnsafeInLines(text, i))
                chars[i] = '?';
        }
        return new string(chars);
    }

    private static bool UnsafeInLines(string text, int i) => text[i] switch
    {
        '\n' or '\t' => false,
        '\r' => i + 1 >= text.Length || text[i + 1] != '\n',
        var c => IsUnsafe(c),
    };

    public static bool IsUnsafe(char c) =>
        char.IsControl(c)
        || char.GetUnicodeCategory(c) is UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
        || c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069' or '\u200E' or '\u200F' or '\u061C';
}
