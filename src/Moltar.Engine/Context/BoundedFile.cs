namespace Moltar.Engine.Context;

/// <summary>
/// Reads a file Moltar was pointed at (project file, ssh config, known_hosts, keys) with a size limit, and refuses
/// FIFOs, devices and sockets before opening them: a hostile path must not hang the prompt or fill memory.
/// </summary>
public static class BoundedFile
{
    /// <summary>Project files, ssh config, known_hosts and keys are far smaller than this.</summary>
    public const long DefaultLimit = 4 * 1024 * 1024;

    /// <summary>The file's bytes; FileRefusedException (naming the file and what is wrong) for a file that is not a regular file or too large.</summary>
    public static byte[] ReadAllBytes(string path, string what, long limit = DefaultLimit)
    {
        CheckRegular(path, what);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = stream.Read(chunk, 0, chunk.Length)) > 0)
        {
            if (buffer.Length + read > limit)
                throw new FileRefusedException($"{what} '{path}' is larger than {limit / 1024} KiB; Moltar does not read it. Point Moltar at the intended file.");
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    public static string ReadAllText(string path, string what, long limit = DefaultLimit) =>
        System.Text.Encoding.UTF8.GetString(ReadAllBytes(path, what, limit));

    /// <summary>Refuses a path (or what its symbolic links lead to) that is a FIFO, device or socket.</summary>
    public static void CheckRegular(string path, string what)
    {
        string target = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
        var status = FileStatus.Of(target);
        if (status is null)
            throw new FileNotFoundException($"{what} '{path}' does not exist.", path);
        if (status.Kind != FileKind.Regular)
            throw new FileRefusedException($"{what} '{path}' is a {Describe(status.Kind)}, not a regular file; Moltar does not read it.");
    }

    private static string Describe(FileKind kind) => kind switch
    {
        FileKind.Fifo => "FIFO (named pipe)",
        FileKind.Device => "device",
        FileKind.Socket => "socket",
        FileKind.Directory => "directory",
        _ => kind.ToString().ToLowerInvariant(),
    };
}

/// <summary>A file Moltar will not read (a FIFO, device or socket, or larger than its limit); the message says which and why.</summary>
public sealed class FileRefusedException : IOException
{
    public FileRefusedException(string message) : base(message) { }
}
