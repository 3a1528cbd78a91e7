namespace Moltar.Engine.Transfer;

/// <summary>Octal permission modes as users write them ("644", "0755", "1777").</summary>
public static class FileModes
{
    /// <summary>The mode a copied file gets when neither -Mode nor the source says otherwise.</summary>
    public const int Default = 0b110_100_100; // 644

    /// <summary>A temporary file until its content is verified (600): nobody else reads it while it fills.</summary>
    public const int PrivateFile = 0b110_000_000;

    /// <summary>The folder a remote temporary file is written in (700).</summary>
    public const int PrivateFolder = 0b111_000_000;

    /// <summary>The mode without group and world write (022 cleared).</summary>
    public static int WithoutOthersWrite(int mode) => mode & ~0b000_010_010;

    /// <summary>Parses 3 or 4 octal digits; false for anything else.</summary>
    public static bool TryParse(string? text, out int mode)
    {
        mode = 0;
        if (text is null || text.Length is < 3 or > 4 || text.Any(c => c is < '0' or > '7'))
        {
            return false;
        }

        mode = Convert.ToInt32(text, 8);
        return true;
    }

    /// <summary>The mode as octal digits, at least three ("644", "4755").</summary>
    public static string Format(int mode) => Convert.ToString(mode & 0xFFF, 8).PadLeft(3, '0');

    /// <summary>
    /// SSH.NET's ChangePermissions takes the octal digits read as a decimal number (644 for rw-r--r--).
    /// </summary>
    public static short ToSshNetDigits(int mode) => short.Parse(Format(mode), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Only read/write/execute bits: what a download keeps of the remote file's mode (never setuid/setgid/sticky).</summary>
    public static int PermissionBits(int mode) => mode & 0x1FF;
}
