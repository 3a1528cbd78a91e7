using System.Reflection;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace Moltar.Engine.Ssh;

/// <summary>
/// The SFTP subsystem on a channel of an open connection, so copies use pooled connections as commands do (ssh's
/// ControlMaster does the same). SSH.NET 2026.0.0 opens SFTP only on a session of its own and has no public way
/// to share one: an SftpClient is given the connection's session and opens its SFTP channel on it (what
/// SftpClient.Connect does after its own handshake). Reached by reflection, looked up once; when a later SSH.NET
/// lacks these members this fails loudly (SshLibraryIncompatible) before anything is copied.
/// Closing the channel leaves the connection open (Close takes the session back from the SftpClient first).
/// </summary>
internal static class SftpChannel
{
    private const BindingFlags Instance = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance;

    internal sealed record Members(PropertyInfo? Session, FieldInfo? SftpSession, MethodInfo? Connect, string? Missing)
    {
        public static Members Find()
        {
            var session = typeof(BaseClient).GetProperty("Session", Instance);
            if (session?.SetMethod is null || session.GetMethod is null)
                return new(null, null, null, $"{typeof(BaseClient).FullName}.Session");
            var sftpSession = typeof(SftpClient).GetField("_sftpSession", Instance);
            if (sftpSession is null)
                return new(null, null, null, $"{typeof(SftpClient).FullName}._sftpSession");
            var connect = typeof(SftpClient).GetMethod("CreateAndConnectToSftpSession", Instance, Type.EmptyTypes);
            if (connect is null || !sftpSession.FieldType.IsAssignableFrom(connect.ReturnType))
                return new(null, null, null, $"{typeof(SftpClient).FullName}.CreateAndConnectToSftpSession()");
            return new(session, sftpSession, connect, null);
        }
    }

    private static readonly Lazy<Members> Library = new(Members.Find);

    /// <summary>
    /// Opens an SFTP channel on the connection's session. SshFailure ConnectionLost when a reused connection turned
    /// out to be gone (the caller takes another), ConnectFailed when the server refuses SFTP (or ends the new session over it).
    /// </summary>
    public static SftpClient Open(SshConnection connection, bool reused)
    {
        var members = Library.Value;
        if (members.Missing is { } missing)
            throw ChannelEof.Incompatible(missing);
        var ssh = connection.Client;
        var session = members.Session!.GetValue(ssh)
            ?? throw SshFailure.ConnectionLost(connection.Target, $"The connection to {connection.Target.DisplayName} is closed.");
        var sftp = new SftpClient(ssh.ConnectionInfo);
        members.Session.SetValue(sftp, session);
        try
        {
            members.SftpSession!.SetValue(sftp, members.Connect!.Invoke(sftp, null));
            return sftp;
        }
        catch (TargetInvocationException e) when (e.InnerException is { } inner)
        {
            Release(sftp, members);
            if (reused && !connection.IsConnected)
                throw SshFailure.ConnectionLost(connection.Target, $"The connection to {connection.Target.DisplayName} was lost before the copy started: {inner.Message}", inner);
            if (inner is SshException or System.Net.Sockets.SocketException or ObjectDisposedException)
                throw new SshFailure(SshErrorIds.ConnectFailed,
                    $"The host {connection.Settings.HostName}:{connection.Settings.Port} accepted the SSH login but has no working SFTP server ({inner.Message}). " +
                    "Copying files needs SFTP on the host: OpenSSH has it built in; Dropbear runs /usr/lib/sftp-server (Debian and Ubuntu: apt-get install openssh-sftp-server).",
                    connection.Settings.HostName, inner);
            throw;
        }
    }

    /// <summary>Closes the SFTP channel; the connection stays open.</summary>
    public static void Close(SftpClient sftp) => Release(sftp, Library.Value);

    private static void Release(SftpClient sftp, Members members)
    {
        if (members.SftpSession!.GetValue(sftp) is IDisposable channel)
        {
            SshConnector.SafeDispose(channel);
            members.SftpSession.SetValue(sftp, null);
        }

        // Without its session the client's Dispose has nothing of the connection's to close.
        members.Session!.SetValue(sftp, null);
        SshConnector.SafeDispose(sftp);
    }
}
