using System.Collections.Concurrent;

namespace Moltar.Engine.Ssh;

/// <summary>
/// The connector's log for one call: entries go to the caller's sink (the cmdlet posts them to the pipeline thread);
/// a message about the call rather than one host (an ssh config note, a skipped key file) is written once per call.
/// Thread-safe; a sink that throws never fails a connection.
/// </summary>
internal sealed class SshLog(Action<SshLogEntry>? sink)
{
    private readonly ConcurrentDictionary<string, byte> _written = new(StringComparer.Ordinal);

    public void Write(SshLogLevel level, string message, SshTarget? target = null)
    {
        try
        {
            sink?.Invoke(new SshLogEntry(level, message, target));
        }
        catch (Exception)
        {
            // A broken log sink must not fail a connection.
        }
    }

    /// <summary>Writes the message the first time this key is seen in the call.</summary>
    public void Once(string key, SshLogLevel level, string message, SshTarget? target = null)
    {
        if (_written.TryAdd(key, 0))
        {
            Write(level, message, target);
        }
    }
}
