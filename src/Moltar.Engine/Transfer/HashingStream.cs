using System.Security.Cryptography;

namespace Moltar.Engine.Transfer;

/// <summary>
/// Passes bytes through to another stream (reading from it for uploads, writing to it for downloads) while
/// computing their SHA-256 and counting them, so a file is hashed as it streams and never held in memory.
/// Each read or write checks the cancellation token, which is how a copy in progress stops.
/// </summary>
internal sealed class HashingStream : Stream
{
    private readonly Stream _inner;
    private readonly bool _reading;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly Action<long>? _progress;
    private readonly CancellationToken _cancellationToken;
    private string? _hex;

    private HashingStream(Stream inner, bool reading, Action<long>? progress, CancellationToken cancellationToken)
    {
        _inner = inner;
        _reading = reading;
        _progress = progress;
        _cancellationToken = cancellationToken;
    }

    /// <summary>Hashes what is read from inner (uploads).</summary>
    public static HashingStream ForReading(Stream inner, Action<long>? progress, CancellationToken cancellationToken) =>
        new(inner, reading: true, progress, cancellationToken);

    /// <summary>Hashes what is written to inner (downloads).</summary>
    public static HashingStream ForWriting(Stream inner, Action<long>? progress, CancellationToken cancellationToken) =>
        new(inner, reading: false, progress, cancellationToken);

    /// <summary>Bytes passed through so far.</summary>
    public long BytesTransferred { get; private set; }

    /// <summary>The SHA-256 (lower-case hex) of every byte passed through; call once, at the end.</summary>
    public string Sha256 => _hex ??= Convert.ToHexString(_hash.GetHashAndReset()).ToLowerInvariant();

    public override bool CanRead => _reading;
    public override bool CanWrite => !_reading;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position
    {
        get => BytesTransferred;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (!_reading)
        {
            throw new NotSupportedException();
        }

        _cancellationToken.ThrowIfCancellationRequested();
        int n = _inner.Read(buffer);
        Account(buffer[..n]);
        return n;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (_reading)
        {
            throw new NotSupportedException();
        }

        _cancellationToken.ThrowIfCancellationRequested();
        _inner.Write(buffer);
        Account(buffer);
    }

    private void Account(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0)
        {
            return;
        }

        _hash.AppendData(bytes);
        BytesTransferred += bytes.Length;
        _progress?.Invoke(bytes.Length);
    }

    public override void Flush() => _inner.Flush();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
        }

        base.Dispose(disposing);
    }
}
