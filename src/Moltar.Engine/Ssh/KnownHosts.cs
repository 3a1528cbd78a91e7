using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Moltar.Engine.Ssh;

public enum KnownHostMarker
{
    None,
    CertAuthority,
    Revoked,
}

/// <summary>One line of a known_hosts file.</summary>
public sealed class KnownHostEntry
{
    private readonly string[]? _patterns;
    private readonly byte[]? _salt;
    private readonly byte[]? _hash;

    private KnownHostEntry(KnownHostMarker marker, string hostField, string keyType, byte[] keyBlob, string source, int line,
        string[]? patterns, byte[]? salt, byte[]? hash)
    {
        Marker = marker;
        HostField = hostField;
        KeyType = keyType;
        KeyBlob = keyBlob;
        Source = source;
        Line = line;
        _patterns = patterns;
        _salt = salt;
        _hash = hash;
    }

    public KnownHostMarker Marker { get; }
    /// <summary>The host field as written (patterns, or |1|salt|hash).</summary>
    public string HostField { get; }
    /// <summary>The key type inside the blob (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...).</summary>
    public string KeyType { get; }
    public byte[] KeyBlob { get; }
    public string Source { get; }
    public int Line { get; }
    public bool IsHashed => _hash is not null;
    public string Fingerprint => SshKeyBlob.Fingerprint(KeyBlob);
    public string Location => $"{Source}:{Line}";

    /// <summary>Whether the entry is for this lookup name ("host", or "[host]:port" when the port is not 22).</summary>
    public bool MatchesHost(string lookupName)
    {
        var name = lookupName.ToLowerInvariant();
        if (_hash is not null)
        {
#pragma warning disable CA5350 // OpenSSH's hashed known_hosts names are HMAC-SHA1: matching them needs it
            using var hmac = new HMACSHA1(_salt!);
#pragma warning restore CA5350
            var computed = hmac.ComputeHash(Encoding.UTF8.GetBytes(name));
            return CryptographicOperations.FixedTimeEquals(computed, _hash);
        }

        return SshPattern.MatchList(name, _patterns!);
    }

    /// <summary>Parses one known_hosts line; null for blank lines and comments. Throws FormatException for bad lines.</summary>
    public static KnownHostEntry? ParseLine(string line, string source, int lineNumber)
    {
        var text = line.Trim();
        if (text.Length == 0 || text[0] == '#')
        {
            return null;
        }

        var fields = text.Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries);
        var index = 0;
        var marker = KnownHostMarker.None;
        if (fields[0].StartsWith('@'))
        {
            marker = fields[0].ToLowerInvariant() switch
            {
                "@cert-authority" => KnownHostMarker.CertAuthority,
                "@revoked" => KnownHostMarker.Revoked,
                _ => throw new FormatException($"unknown marker {fields[0]}"),
            };
            index = 1;
        }

        if (fields.Length < index + 3)
        {
            throw new FormatException("expected host, key type and key");
        }

        var hostField = fields[index];
        var keyTypeField = fields[index + 1];
        byte[] blob;
        try
        {
            blob = Convert.FromBase64String(fields[index + 2]);
        }
        catch (FormatException)
        {
            throw new FormatException("the key is not valid base64");
        }

        var blobType = SshKeyBlob.KeyType(blob);
        if (!string.Equals(blobType, keyTypeField, StringComparison.Ordinal))
        {
            throw new FormatException($"key type {keyTypeField} does not match the key ({blobType})");
        }

        if (hostField.StartsWith("|1|", StringComparison.Ordinal))
        {
            var parts = hostField.Split('|');
            if (parts.Length != 4)
            {
                throw new FormatException("bad hashed host entry");
            }

            byte[] salt, hash;
            try
            {
                salt = Convert.FromBase64String(parts[2]);
                hash = Convert.FromBase64String(parts[3]);
            }
            catch (FormatException)
            {
                throw new FormatException("bad hashed host entry");
            }

            if (hash.Length != 20)
            {
                throw new FormatException("bad hashed host entry");
            }

            return new KnownHostEntry(marker, hostField, blobType, blob, source, lineNumber, null, salt, hash);
        }

        var patterns = hostField.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.ToLowerInvariant()).ToArray();
        return new KnownHostEntry(marker, hostField, blobType, blob, source, lineNumber, patterns, null, null);
    }
}

public enum HostKeyStatus
{
    /// <summary>The offered key is listed for the host.</summary>
    Trusted,
    /// <summary>No key is listed for the host.</summary>
    Unknown,
    /// <summary>Other keys are listed for the host, not the offered one.</summary>
    Changed,
    /// <summary>The offered key is marked @revoked.</summary>
    Revoked,
}

/// <summary>The verdict on an offered host key and the known_hosts lines behind it.</summary>
public sealed record HostKeyCheck(HostKeyStatus Status, IReadOnlyList<KnownHostEntry> KnownForHost, KnownHostEntry? Match, bool HasCertAuthority);

/// <summary>
/// known_hosts files: parsing, lookup, and appending a new host safely from many threads and processes.
/// An instance caches each file it reads (one read per file per invocation) and sees its own additions.
/// </summary>
public sealed class KnownHosts
{
    private static readonly ConcurrentDictionary<string, object> PathLocks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<List<KnownHostEntry>>> _files = new(StringComparer.Ordinal);
    private readonly Action<string>? _note;

    public KnownHosts(Action<string>? note = null)
    {
        _note = note;
    }

    /// <summary>The entries of the given files (each read once and cached; missing files are empty).</summary>
    public IReadOnlyList<KnownHostEntry> EntriesOf(IEnumerable<string> paths)
    {
        var result = new List<KnownHostEntry>();
        foreach (var path in paths.Distinct(StringComparer.Ordinal))
        {
            result.AddRange(FileEntries(path));
        }

        return result;
    }

    private List<KnownHostEntry> FileEntries(string path)
    {
        var lazy = _files.GetOrAdd(path, p => new Lazy<List<KnownHostEntry>>(() =>
        {
            var notes = new List<string>();
            var text = ReadShared(p, notes);
            var entries = text is null ? new List<KnownHostEntry>() : Parse(text, p, notes);
            foreach (var n in notes)
            {
                _note?.Invoke(n);
            }

            return entries;
        }));
        return lazy.Value; // never mutated: additions replace the list
    }

    public HostKeyCheck Check(IEnumerable<string> paths, string host, int port, byte[] offeredBlob) =>
        Check(EntriesOf(paths), LookupName(host, port), offeredBlob);

    /// <summary>Key types (blob types) known for a host, in file order, without duplicates.</summary>
    public IReadOnlyList<string> KnownKeyTypes(IEnumerable<string> paths, string host, int port)
    {
        var name = LookupName(host, port);
        return EntriesOf(paths).Where(e => e.Marker == KnownHostMarker.None && e.MatchesHost(name))
            .Select(e => e.KeyType).Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>Whether a @cert-authority line names this host (ssh then asks for host certificates).</summary>
    public bool HasCertAuthority(IEnumerable<string> paths, string host, int port)
    {
        var name = LookupName(host, port);
        return EntriesOf(paths).Any(e => e.Marker == KnownHostMarker.CertAuthority && e.MatchesHost(name));
    }

    /// <summary>The name known_hosts records for a host: "host" on port 22, else "[host]:port".</summary>
    public static string LookupName(string host, int port) =>
        port == 22 ? host.ToLowerInvariant() : $"[{host.ToLowerInvariant()}]:{port}";

    /// <summary>Parses known_hosts text; bad lines are skipped and described in notes.</summary>
    public static List<KnownHostEntry> Parse(string text, string source, ICollection<string>? notes = null)
    {
        var result = new List<KnownHostEntry>();
        var n = 0;
        foreach (var line in text.Split('\n'))
        {
            n++;
            try
            {
                var entry = KnownHostEntry.ParseLine(line.TrimEnd('\r'), source, n);
                if (entry is not null)
                {
                    result.Add(entry);
                }
            }
            catch (FormatException e)
            {
                notes?.Add($"{source}:{n}: {e.Message}; line ignored.");
            }
        }

        return result;
    }

    public static HostKeyCheck Check(IReadOnlyList<KnownHostEntry> entries, string lookupName, byte[] offeredBlob)
    {
        var known = new List<KnownHostEntry>();
        var hasCa = false;
        foreach (var e in entries)
        {
            if (e.Marker == KnownHostMarker.Revoked)
            {
                if (e.KeyBlob.AsSpan().SequenceEqual(offeredBlob) && e.MatchesHost(lookupName))
                {
                    return new HostKeyCheck(HostKeyStatus.Revoked, known, e, hasCa);
                }

                continue;
            }

            if (!e.MatchesHost(lookupName))
            {
                continue;
            }

            if (e.Marker == KnownHostMarker.CertAuthority)
            {
                hasCa = true;
                continue;
            }

            known.Add(e);
        }

        var match = known.FirstOrDefault(e => e.KeyBlob.AsSpan().SequenceEqual(offeredBlob));
        if (match is not null)
        {
            return new HostKeyCheck(HostKeyStatus.Trusted, known, match, hasCa);
        }

        return new HostKeyCheck(known.Count > 0 ? HostKeyStatus.Changed : HostKeyStatus.Unknown, known, null, hasCa);
    }

    /// <summary>A known_hosts line for a host key, hashed (|1|salt|hmac) when asked.</summary>
    public static string FormatLine(string lookupName, byte[] blob, bool hash)
    {
        var hostField = lookupName;
        if (hash)
        {
            var salt = RandomNumberGenerator.GetBytes(20);
#pragma warning disable CA5350 // OpenSSH's hashed known_hosts names are HMAC-SHA1: writing one needs it
            using var hmac = new HMACSHA1(salt);
#pragma warning restore CA5350
            var digest = hmac.ComputeHash(Encoding.UTF8.GetBytes(lookupName));
            hostField = $"|1|{Convert.ToBase64String(salt)}|{Convert.ToBase64String(digest)}";
        }

        return $"{hostField} {SshKeyBlob.KeyType(blob)} {Convert.ToBase64String(blob)}";
    }

    /// <summary>
    /// Adds a host's key to a known_hosts file unless the file (re-read under an exclusive lock) already knows
    /// the host; safe against other threads (a per-path lock) and other processes (flock on the file itself).
    /// Returns the verdict after the re-read: Trusted when the key was added or was already there, Changed or
    /// Revoked when another writer recorded a different key meanwhile.
    /// </summary>
    public HostKeyCheck AddIfUnknown(string path, string host, int port, byte[] blob, bool hash, TimeSpan? lockTimeout = null) =>
        AddIfUnknown(path, host, port, blob, hash, out _, lockTimeout);

    /// <summary>As AddIfUnknown; added says whether this call wrote the line (false when another writer had).</summary>
    public HostKeyCheck AddIfUnknown(string path, string host, int port, byte[] blob, bool hash, out bool added, TimeSpan? lockTimeout = null)
    {
        added = false;
        var lookupName = LookupName(host, port);
        var gate = PathLocks.GetOrAdd(Path.GetFullPath(path), _ => new object());
        lock (gate)
        {
            EnsureFile(path);
            using var stream = OpenExclusive(path, lockTimeout ?? TimeSpan.FromSeconds(10));
            string current;
            using (var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 4096, leaveOpen: true))
            {
                current = reader.ReadToEnd();
            }

            var fileEntries = Parse(current, path);
            var check = Check(fileEntries, lookupName, blob);
            if (check.Status == HostKeyStatus.Unknown)
            {
                var line = FormatLine(lookupName, blob, hash);
                var prefix = current.Length > 0 && !current.EndsWith('\n') ? "\n" : "";
                var bytes = Encoding.UTF8.GetBytes(prefix + line + "\n");
                stream.Seek(0, SeekOrigin.End);
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
                var lineNumber = current.Count(c => c == '\n') + prefix.Length + 1;
                var entry = KnownHostEntry.ParseLine(line, path, lineNumber)!;
                fileEntries.Add(entry);
                check = new HostKeyCheck(HostKeyStatus.Trusted, new[] { entry }, entry, false);
                added = true;
            }

            Merge(path, fileEntries);
            return check;
        }
    }

    private void Merge(string path, List<KnownHostEntry> fileEntries)
    {
        var fresh = new Lazy<List<KnownHostEntry>>(() => fileEntries);
        _ = fresh.Value;
        _files[path] = fresh;
    }

    private static void EnsureFile(string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(directory))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(directory);
            }
            else
            {
                Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        if (!File.Exists(path))
        {
            try
            {
                var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.ReadWrite };
                if (!OperatingSystem.IsWindows())
                {
                    create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
                }

                using var created = new FileStream(path, create);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Someone else created it first.
            }
        }
    }

    private static FileStream OpenExclusive(string path, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var delay = 2;
        while (true)
        {
            try
            {
                // FileShare.None takes an exclusive flock on Unix (and a share lock on Windows): other
                // Moltar processes wait here; OpenSSH appends without locking and is unaffected.
                return new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(delay);
                delay = Math.Min(delay * 2, 50);
            }
        }
    }

    /// <summary>The largest known_hosts file read (far beyond any real one: ~100 bytes a host).</summary>
    internal const long MaxFileBytes = 64L * 1024 * 1024;

    /// <summary>Reads a file that another writer may hold locked for a moment; null when it does not exist (or is refused: a note says why).</summary>
    internal static string? ReadShared(string path, ICollection<string>? notes)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            try
            {
                if (!File.Exists(path))
                {
                    return null;
                }

                return Context.BoundedFile.ReadAllText(path, "The known_hosts file", MaxFileBytes);
            }
            catch (FileNotFoundException)
            {
                return null;
            }
            catch (Context.FileRefusedException e)
            {
                notes?.Add(e.Message);
                return null;
            }
            catch (DirectoryNotFoundException)
            {
                return null;
            }
            catch (UnauthorizedAccessException e)
            {
                notes?.Add($"{path} could not be read: {e.Message}");
                return null;
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(5);
            }
            catch (IOException e)
            {
                notes?.Add($"{path} could not be read: {e.Message}");
                return null;
            }
        }
    }
}
