using System.Security.Cryptography;
using System.Text;

namespace Moltar.Engine.Context;

/// <summary>Whether the user has trusted a project folder's Moltar files as they are now.</summary>
public enum ProjectTrustState
{
    NotTrusted,
    /// <summary>The folder was trusted, but one of its Moltar files changed since: untrusted again.</summary>
    ChangedSinceTrusted,
    Trusted,
}

/// <summary>
/// The user's trust records: one line per project folder with the hash of its Moltar files (project file,
/// dotfiles, hooks) when the user approved them. Kept under the user's own config folder, never in a repository.
/// </summary>
public sealed class ProjectTrust
{
    public const string FileName = "trusted-projects";

    /// <summary>The trust file: $XDG_CONFIG_HOME/moltar/trusted-projects (else ~/.config/...; %APPDATA%\Moltar\... on Windows).</summary>
    public string Path { get; }

    public ProjectTrust(string? path = null, Func<string, string?>? environment = null)
    {
        Path = path ?? DefaultPath(environment ?? System.Environment.GetEnvironmentVariable);
    }

    public static string DefaultPath(Func<string, string?> environment)
    {
        if (OperatingSystem.IsWindows())
        {
            string appData = environment("APPDATA") is { Length: > 0 } a ? a : System.Environment.GetFolderPath(System.Environment.SpecialFolder.ApplicationData);
            return System.IO.Path.Combine(appData, "Moltar", FileName);
        }
        string config = environment("XDG_CONFIG_HOME") is { Length: > 0 } x && System.IO.Path.IsPathRooted(x)
            ? x
            : System.IO.Path.Combine(environment("HOME") is { Length: > 0 } h ? h : System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".config");
        return System.IO.Path.Combine(config, "moltar", FileName);
    }

    /// <summary>The state of <paramref name="project"/> as it was read (its hash against the record for its folder).</summary>
    public ProjectTrustState StateOf(ProjectFile project)
    {
        var records = Read();
        if (!records.TryGetValue(project.Directory, out var hash))
            return ProjectTrustState.NotTrusted;
        return string.Equals(hash, project.ContentHash, StringComparison.Ordinal) ? ProjectTrustState.Trusted : ProjectTrustState.ChangedSinceTrusted;
    }

    /// <summary>Records <paramref name="project"/>'s folder and content hash as trusted (replacing an older record for that folder).</summary>
    public void Trust(ProjectFile project)
    {
        var records = Read();
        records[project.Directory] = project.ContentHash;
        string folder = System.IO.Path.GetDirectoryName(Path)!;
        if (!Directory.Exists(folder))
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(folder);
            else Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var text = new StringBuilder();
        text.Append("# Moltar: project folders whose .moltar.psd1, dotfiles and hooks you trusted, with their SHA-256. Written by Approve-MoltarProject.\n");
        foreach (var (directory, hash) in records.OrderBy(r => r.Key, StringComparer.Ordinal))
            text.Append(hash).Append('\t').Append(directory).Append('\n');
        string temporary = Path + ".part";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temporary, options))
        {
            var bytes = Encoding.UTF8.GetBytes(text.ToString());
            stream.Write(bytes, 0, bytes.Length);
        }
        File.Move(temporary, Path, overwrite: true);
    }

    private Dictionary<string, string> Read()
    {
        var records = new Dictionary<string, string>(StringComparer.Ordinal);
        var status = FileStatus.Of(Path);
        if (status is null)
            return records;
        // A trust file someone else could have written trusts nothing.
        if (!status.OwnedByCurrentUser || status.WritableByOthers)
            throw new MoltarException("UntrustedTrustFile", FailureCategory.SecurityError,
                $"The trust file '{Path}' is not owned by you or is writable by others, so it trusts nothing. Remove it (or chmod 600 it if it is yours) and approve your projects again.");
        foreach (var line in BoundedFile.ReadAllText(Path, "The trust file").Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
                continue;
            int tab = line.IndexOf('\t');
            if (tab > 0)
                records[line.Substring(tab + 1)] = line.Substring(0, tab);
        }
        return records;
    }

    /// <summary>SHA-256 over each file's name and content, in the order given.</summary>
    public static string Hash(IEnumerable<(string Name, byte[] Content)> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, content) in files)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(name + "\0" + content.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\0"));
            sha.AppendData(content);
        }
        return "sha256:" + Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }
}
