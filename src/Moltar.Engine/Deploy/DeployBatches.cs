using System.Globalization;

namespace Moltar.Engine.Deploy;

/// <summary>-BatchSize: a number of hosts ("2") or a share of them ("25%"); unset = all at once.</summary>
public sealed class BatchSize
{
    private BatchSize(int? count, double? percent)
    {
        Count = count;
        Percent = percent;
    }

    /// <summary>All hosts in one batch.</summary>
    public static BatchSize All { get; } = new(null, 100);

    public int? Count { get; }
    public double? Percent { get; }

    /// <summary>Parses "3" or "25%" (1-100, decimals allowed). Throws MoltarException InvalidBatchSize.</summary>
    public static BatchSize Parse(string? text)
    {
        string value = (text ?? "").Trim();
        if (value.EndsWith('%'))
        {
            if (double.TryParse(value[..^1].Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double percent)
                && percent > 0 && percent <= 100)
                return new BatchSize(null, percent);
        }
        else if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int count) && count > 0)
        {
            return new BatchSize(count, null);
        }
        throw new MoltarException(DeployErrorIds.InvalidBatchSize, FailureCategory.InvalidArgument,
            $"-BatchSize '{text}' is neither a number of hosts (1 or more, e.g. 2) nor a percentage of them (e.g. 25%, more than 0 and at most 100).");
    }

    /// <summary>Hosts per batch for <paramref name="total"/> hosts: a percentage rounds up, and a batch has at least one host.</summary>
    public int For(int total)
    {
        if (total <= 0)
            return 1;
        if (Count is { } count)
            return Math.Min(count, total);
        // Rounded up, with a tolerance so 3 hosts at 33.3333% are 1 per batch, not 2.
        int size = (int)Math.Ceiling(total * Percent!.Value / 100.0 - 1e-9);
        return Math.Clamp(size, 1, total);
    }

    public override string ToString() => Count is { } count ? count.ToString(CultureInfo.InvariantCulture) : $"{Percent!.Value.ToString(CultureInfo.InvariantCulture)}%";
}

/// <summary>Splitting hosts into batches, and the rule that stops starting new ones.</summary>
public static class DeployBatches
{
    /// <summary>The items in order, in consecutive batches of <paramref name="size"/> (the last may be smaller).</summary>
    public static IReadOnlyList<IReadOnlyList<T>> Split<T>(IReadOnlyList<T> items, int size)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (size < 1)
            throw new ArgumentOutOfRangeException(nameof(size), size, "A batch has at least one item.");
        var batches = new List<IReadOnlyList<T>>();
        for (int start = 0; start < items.Count; start += size)
            batches.Add(items.Skip(start).Take(size).ToArray());
        return batches;
    }

    /// <summary>
    /// Whether another batch may start after <paramref name="failures"/> hosts failed so far: only while the
    /// failures do not exceed <paramref name="maxFailures"/> (0 = stop after the first batch with a failure).
    /// </summary>
    public static bool MayStartNext(int failures, int maxFailures) => failures <= maxFailures;
}
