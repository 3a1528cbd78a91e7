namespace Moltar.Engine.Transfer;

/// <summary>
/// Byte and file counters of a copy across every host, updated by the workers and read by the pipeline
/// thread for Write-Progress. Bytes of files that failed or were skipped are settled, so the bar can finish.
/// </summary>
public sealed class TransferProgress
{
    private long _totalBytes;
    private long _doneBytes;
    private int _totalFiles;
    private int _doneFiles;

    public long TotalBytes => Interlocked.Read(ref _totalBytes);
    public long DoneBytes => Interlocked.Read(ref _doneBytes);
    public int TotalFiles => Volatile.Read(ref _totalFiles);
    public int DoneFiles => Volatile.Read(ref _doneFiles);

    public void AddTotal(long bytes, int files)
    {
        Interlocked.Add(ref _totalBytes, bytes);
        Interlocked.Add(ref _totalFiles, files);
    }

    public void AddBytes(long bytes) => Interlocked.Add(ref _doneBytes, bytes);

    public void FileDone() => Interlocked.Increment(ref _doneFiles);

    /// <summary>Percent of the bytes known so far (0 when none are known).</summary>
    public int Percent
    {
        get
        {
            long total = TotalBytes;
            return total <= 0 ? 0 : (int)Math.Clamp(100.0 * DoneBytes / total, 0, 100);
        }
    }

    /// <summary>"12.5 MB", "980 KB", "12 B".</summary>
    public static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.0} GB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.0} MB",
        >= 1L << 10 => $"{bytes / (double)(1L << 10):0.0} KB",
        _ => $"{bytes} B",
    };
}
