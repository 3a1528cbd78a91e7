namespace Moltar.Engine.Discovery;

/// <summary>The original tool's name search: each '/'-separated term is a substring of something the instance is known by.</summary>
public static class NameMatcher
{
    public static IReadOnlyList<string> Terms(string? name) =>
        string.IsNullOrWhiteSpace(name)
            ? Array.Empty<string>()
            : name.Split('/', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static bool Matches(MoltarInstance instance, IReadOnlyList<string> terms)
    {
        foreach (var term in terms)
        {
            if (!KnownBy(instance).Any(value => value.Contains(term, StringComparison.OrdinalIgnoreCase)))
                return false;
        }
        return true;
    }

    private static IEnumerable<string> KnownBy(MoltarInstance instance)
    {
        yield return instance.InstanceId;
        foreach (var value in instance.Tags.Values) yield return value;
        foreach (var value in new[] { instance.PrivateDnsName, instance.PublicDnsName, instance.PrivateIpAddress, instance.PublicIpAddress })
        {
            if (!string.IsNullOrEmpty(value)) yield return value!;
        }
    }
}
