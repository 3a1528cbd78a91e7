namespace Moltar;

/// <summary>
/// The label a person reads for a host: the Name tag, else the instance id, else the address. Control characters
/// show as '?': a Name tag is anyone's to set, and an escape sequence in it must not reach the terminal.
/// </summary>
internal static class HostLabel
{
    internal static string Of(string? name, string? instanceId, string? address = null) =>
        DisplayText.Printable(!string.IsNullOrEmpty(name) ? name : !string.IsNullOrEmpty(instanceId) ? instanceId : address ?? "");
}
