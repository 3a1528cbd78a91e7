namespace Moltar.Engine.Ssh;

public enum SshLogLevel
{
    Verbose,
    Warning,
}

/// <summary>A message for the user's verbose or warning stream; Target is null for call-wide messages.</summary>
public sealed record SshLogEntry(SshLogLevel Level, string Message, SshTarget? Target = null);

/// <summary>
/// What one invocation connects with. Null means "from ssh config, else the default". Explicit values here
/// win over ssh config (as `ssh -o` does); SshTarget.User/Port win over these.
/// </summary>
public sealed record SshOptions
{
    /// <summary>Default user when neither the target, these options nor ssh config name one.</summary>
    public const string DefaultUser = "ubuntu";

    public string? User { get; init; }
    public int? Port { get; init; }
    /// <summary>Private key files tried first (before ssh config's IdentityFile). Encrypted ones need Passphrase.</summary>
    public IReadOnlyList<string> KeyFiles { get; init; } = Array.Empty<string>();
    /// <summary>Passphrase for encrypted key files. Never logged.</summary>
    public string? Passphrase { get; init; }
    /// <summary>"[user@]host[:port]" (comma-separated for a chain), or "none"; null = ssh config's ProxyJump.</summary>
    public string? JumpHost { get; init; }
    /// <summary>The host key policy; wins over ssh config. Null = ssh config's, else DefaultStrictHostKeyChecking.</summary>
    public StrictHostKeyChecking? StrictHostKeyChecking { get; init; }
    /// <summary>
    /// A policy from a trusted project file: it applies only where it is stricter than what the user's own settings
    /// (StrictHostKeyChecking, ssh config, DefaultStrictHostKeyChecking) give for a host — never looser.
    /// </summary>
    public StrictHostKeyChecking? StricterHostKeyChecking { get; init; }
    /// <summary>The policy when neither StrictHostKeyChecking nor ssh config sets one. Null = Yes (OpenSSH's ask, with nobody to answer).</summary>
    public StrictHostKeyChecking? DefaultStrictHostKeyChecking { get; init; }
    /// <summary>User known_hosts files; the first is the one AcceptNew writes to. Null = ssh config, else ~/.ssh/known_hosts.</summary>
    public IReadOnlyList<string>? KnownHostsPaths { get; init; }
    /// <summary>Global known_hosts files (read only). Null = ssh config, else /etc/ssh/ssh_known_hosts.</summary>
    public IReadOnlyList<string>? GlobalKnownHostsPaths { get; init; }
    /// <summary>The user's ssh config. Null = ~/.ssh/config; "" or "none" = read no user config.</summary>
    public string? ConfigPath { get; init; }
    /// <summary>The system-wide ssh config. Null = /etc/ssh/ssh_config; "" or "none" = none.</summary>
    public string? SystemConfigPath { get; init; }
    public TimeSpan? ConnectTimeout { get; init; }
    public TimeSpan? ServerAliveInterval { get; init; }
    /// <summary>
    /// How long a finished call's connections stay open for the next call (ConnectionPool); zero (the engine's
    /// default) closes them when the call ends. The cmdlets pass the context's ConnectionIdleSeconds.
    /// </summary>
    public TimeSpan ConnectionIdle { get; init; } = TimeSpan.Zero;
    /// <summary>Use ssh-agent identities (SSH_AUTH_SOCK, the Windows agent pipe, or AgentPath).</summary>
    public bool UseAgent { get; init; } = true;
    /// <summary>The agent's socket (or \\.\pipe\name); null = IdentityAgent from ssh config, else SSH_AUTH_SOCK.</summary>
    public string? AgentPath { get; init; }
    /// <summary>Home directory for ~ and the default key and known_hosts paths; null = the user's.</summary>
    public string? HomeDirectory { get; init; }
    /// <summary>Key exchange algorithms in OpenSSH list syntax (+append, -remove, ^prepend, or a list); wins over ssh config.</summary>
    public string? KexAlgorithms { get; init; }
    /// <summary>Ciphers in OpenSSH list syntax; wins over ssh config.</summary>
    public string? Ciphers { get; init; }

    /// <summary>Whose OpenSSH rules apply (default paths, how ProxyCommand and Match exec run); null = this machine's.</summary>
    public OpenSshPlatform? Platform { get; init; }

    /// <summary>Connect timeout when neither these options nor ssh config give one.</summary>
    public static readonly TimeSpan DefaultConnectTimeout = TimeSpan.FromSeconds(15);

    // The record's generated ToString would print the passphrase: list the members by hand, passphrase masked.
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append(System.Globalization.CultureInfo.InvariantCulture, $"User = {User}, Port = {Port}, KeyFiles = [{string.Join(", ", KeyFiles)}], ");
        builder.Append(System.Globalization.CultureInfo.InvariantCulture, $"Passphrase = {(Passphrase is null ? "" : "***")}, JumpHost = {JumpHost}, ");
        builder.Append(System.Globalization.CultureInfo.InvariantCulture, $"StrictHostKeyChecking = {StrictHostKeyChecking}, DefaultStrictHostKeyChecking = {DefaultStrictHostKeyChecking}, StricterHostKeyChecking = {StricterHostKeyChecking}, KnownHostsPaths = [{string.Join(", ", KnownHostsPaths ?? Array.Empty<string>())}], ");
        builder.Append(System.Globalization.CultureInfo.InvariantCulture, $"ConfigPath = {ConfigPath}, ConnectTimeout = {ConnectTimeout}, ServerAliveInterval = {ServerAliveInterval}, ConnectionIdle = {ConnectionIdle}, ");
        builder.Append(System.Globalization.CultureInfo.InvariantCulture, $"UseAgent = {UseAgent}, AgentPath = {AgentPath}, KexAlgorithms = {KexAlgorithms}, Ciphers = {Ciphers}");
        return true;
    }
}
