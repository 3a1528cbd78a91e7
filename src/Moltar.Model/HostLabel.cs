namespace Moltar;

/// <summary>
/// The label a person reads for a host: the Name tag, else the instance id, else the address. Control characters
/// show as '?': a Name tag is anyone's to set, and an escape sequence in it must not reach the terminal.
/// </summary>
internal static class HostLabel
{
    internal static string Of(string? name, string? instanceId, string? address = null) =>
        Printable(!string.IsNullOrEmpty(name) ? name : !string.IsNullOrEmpty(instanceId) ? instanceId : address ?? "");

    private static string Printable(string text)
    {
        foreach (char c in text)
        {
            if (char.IsControl(c))
                return new string(text.Select(ch => char.IsControl(ch) ? '?' : ch).ToArray());
        }
        return text; // the usual case, once per output line: no allocation
    }
}
