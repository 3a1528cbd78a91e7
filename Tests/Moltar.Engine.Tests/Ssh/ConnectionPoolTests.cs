using System.Diagnostics;
using Moltar.Engine.Ssh;
using Xunit;

namespace Moltar.Engine.Tests.Ssh;

/// <summary>The connection pool against real sshd: what is reused, what is not, and what closes. Each test has a pool of its own.</summary>
[Collection("sshd")]
public sealed class ConnectionPoolTests(SshdFixture sshd)
{
    private SshOptions Pooled(SshOptions? options = null) => (options ?? sshd.Options()) with { ConnectionIdle = TimeSpan.FromMinutes(10) };

    /// <summary>The host's connections: sshd's direct children (a channel's own process, such as internal-sftp, is a grandchild).</summary>
    private static List<int> Connections(SshdHost host) => SshdFixture.ChildrenOf(host.SshdPid).Where(p => SshdFixture.Comm(p).StartsWith("sshd", StringComparison.Ordinal)).ToList();

    private static List<int> Sessions(SshdHost host) => SshdFixture.DescendantsOf(host.SshdPid).Where(p => SshdFixture.Comm(p).StartsWith("sshd", StringComparison.Ordinal)).ToList();

    /// <summary>A call that connects to the host and gives the connection back to the pool, which keeps it.</summary>
    private void KeepOne(ConnectionPool pool, SshdHost host)
    {
        using var connector = new SshConnector(Pooled());
        pool.Acquire(connector, host.Target).Return();
    }

    [SshdFact]
    public void A_returned_connection_is_reused_by_the_next_call_with_the_same_settings()
    {
        sshd.EnsureAvailable();
        var pool = new ConnectionPool();
        var host = sshd.Hosts[15];
        try
        {
            using (var connector = new SshConnector(Pooled()))
            {
                var first = pool.Acquire(connector, host.Target);
                Assert.False(first.Reused);
                Assert.True(first.Connection.Run("true").Succeeded);
                Assert.Equal(1, pool.List().Single().ChannelsInUse);
                first.Return();
            }

            var sessions = Sessions(host);
            Assert.NotEmpty(sessions);
            var info = pool.List().Single();
            Assert.Equal(0, info.ChannelsInUse);
            Assert.True(info.IsConnected);

            // A later call: a connector of its own, as each cmdlet call makes.
            using (var connector = new SshConnector(Pooled()))
            {
                var second = pool.Acquire(connector, host.Target);
                Assert.True(second.Reused);
                Assert.True(second.Connection.Run("true").Succeeded);
                second.Return();
            }

            Assert.Equal(sessions, Sessions(host));
            Assert.Equal(2, pool.List().Single().Uses);
        }
        finally
        {
            pool.CloseAll();
        }
    }

    [SshdFact]
    public void A_target_s_settings_and_keys_are_resolved_once_for_the_pool_key_and_the_new_connection()
    {
        sshd.EnsureAvailable();
        var target = sshd.Hosts[14].Target;
        using var pool = new ConnectionPool(); // Dispose closes what it kept

        // A miss (nothing kept yet, or pooling off): the key and the connection share one resolution; a hit makes one too.
        foreach (var (options, reused) in new[] { (Pooled(), false), (sshd.Options(), false), (Pooled(), true) })
        {
            using var connector = new SshConnector(options);
            var lease = pool.Acquire(connector, target);
            Assert.Equal(reused, lease.Reused);
            Assert.True(lease.Connection.Run("true").Succeeded);
            Assert.Equal(1, connector.IdentityLookups);
            lease.Return();
        }
    }

    [SshdFact]
    public void A_reused_connection_serves_the_later_call_under_that_call_s_name_and_id()
    {
        sshd.EnsureAvailable();
        var pool = new ConnectionPool();
        var host = sshd.Hosts[14];
        try
        {
            KeepOne(pool, host);

            // The instance was renamed (tags change between calls): results and messages name it as this call does.
            var renamed = host.Target with { Name = "renamed-14", InstanceId = "i-renamed14" };
            using (var connector = new SshConnector(Pooled()))
            {
                var lease = pool.Acquire(connector, renamed);
                Assert.True(lease.Reused);
                Assert.Equal("renamed-14", lease.Connection.Target.Name);
                Assert.Equal("i-renamed14", lease.Connection.Target.InstanceId);
                lease.Return();
            }

            Assert.Equal("renamed-14", pool.List().Single().Target.Name);
        }
        finally
        {
            pool.CloseAll();
        }
    }

    [SshdFact]
    public void Another_key_another_known_hosts_file_or_an_edited_one_is_another_connection()
    {
        sshd.EnsureAvailable();
        var pool = new ConnectionPool();
        var host = sshd.Hosts[15];
        var knownHosts = sshd.NewTempFile("pool_known_hosts", File.ReadAllText(sshd.KnownHostsPath));
        try
        {
            bool ReusedWith(SshOptions options)
            {
                using var connector = new SshConnector(Pooled(options));
                var lease = pool.Acquire(connector, host.Target);
                lease.Return();
                return lease.Reused;
            }

            var baseline = sshd.Options() with { KnownHostsPaths = new[] { knownHosts } };
            Assert.False(ReusedWith(baseline));
            Assert.True(ReusedWith(baseline));
            Assert.False(ReusedWith(baseline with { KeyFiles = new[] { sshd.ClientRsaKey } }));
            Assert.False(ReusedWith(sshd.Options()));
            File.AppendAllText(knownHosts, "# edited\n");
            Assert.False(ReusedWith(baseline), "an edited known_hosts makes a new connection, checked against it");
            Assert.Equal(4, pool.List().Count);
        }
        finally
        {
            pool.CloseAll();
        }
    }

    [SshdFact]
    public void Idle_connections_close_when_their_time_is_up_and_the_server_sees_them_go()
    {
        sshd.EnsureAvailable();
        var pool = new ConnectionPool();
        var host = sshd.Hosts[16];
        var now = DateTimeOffset.UtcNow;
        pool.Clock = () => now;
        try
        {
            SshConnection connection;
            using (var connector = new SshConnector(sshd.Options() with { ConnectionIdle = TimeSpan.FromSeconds(30) }))
            {
                var lease = pool.Acquire(connector, host.Target);
                connection = lease.Connection;
                lease.Return();
            }

            now += TimeSpan.FromSeconds(29);
            pool.SweepNow();
            Assert.True(connection.IsConnected);
            Assert.Equal(TimeSpan.FromSeconds(29), pool.List().Single().IdleTime);

            now += TimeSpan.FromSeconds(2);
            pool.SweepNow();
            Assert.False(connection.IsConnected);
            Assert.Empty(pool.List());
            HangGuard.Until(() => Sessions(host).Count == 0, "the host's session to end after the pool closed it");
            Assert.Empty(Sessions(host));
        }
        finally
        {
            pool.CloseAll();
        }
    }

    [SshdFact]
    public void With_no_idle_time_nothing_is_kept_and_a_connection_not_returned_is_closed()
    {
        sshd.EnsureAvailable();
        var pool = new ConnectionPool();
        using var connector = new SshConnector(sshd.Options());
        var off = pool.Acquire(connector, sshd.Hosts[16].Target);
        off.Return();
        Assert.False(off.Connection.IsConnected);
        Assert.Empty(pool.List());

        using var pooling = new SshConnector(Pooled());
        var failed = pool.Acquire(pooling, sshd.Hosts[16].Target);
        failed.Dispose(); // what a cancelled or failed call does: the connection's state is unknown
        Assert.False(failed.Connection.IsConnected);
        Assert.Empty(pool.List());
    }

    [SshdFact]
    public void A_connection_the_server_dropped_while_kept_is_replaced_and_the_command_runs_once()
    {
        sshd.EnsureAvailable();
        var pool = new ConnectionPool();
        var host = sshd.Hosts[17];
        var marker = $"/tmp/moltar-pool-{Guid.NewGuid():n}";
        try
        {
            using (var connector = new SshConnector(Pooled()))
            {
                var lease = pool.Acquire(connector, host.Target);
                Assert.True(lease.Connection.Run($"echo ran >> {marker}").Succeeded);
                lease.Return();
            }

            // The server ends the session (as a restart or its idle timeout would): its sshd processes are killed.
            foreach (var session in Sessions(host))
            {
                try { Process.GetProcessById(session).Kill(); } catch (ArgumentException) { }
            }

            using (var connector = new SshConnector(Pooled()))
            {
                var lease = pool.Acquire(connector, host.Target);
                var connection = lease.Connection;
                var outcome = connector.RunReconnecting(ref connection, $"echo ran >> {marker}; wc -l < {marker}");
                lease.Update(connection);
                lease.Return();
                Assert.True(outcome.Succeeded, outcome.ErrorMessage);
                Assert.Equal("2", outcome.Stdout.Trim());
            }

            Assert.True(pool.List().Single().IsConnected);
        }
        finally
        {
            pool.CloseAll();
            File.Delete(marker);
        }
    }

    [SshdFact]
    public void A_copy_whose_kept_connection_the_server_dropped_gets_one_new_connection_as_a_command_does()
    {
        sshd.EnsureAvailable();
        var host = sshd.Hosts[13];
        using var pool = new ConnectionPool(); // Dispose closes what it kept
        KeepOne(pool, host);

        var log = new System.Collections.Concurrent.ConcurrentQueue<SshLogEntry>();
        using (var connector = new SshConnector(Pooled(), log.Enqueue))
        {
            var kept = pool.Acquire(connector, host.Target);
            Assert.True(kept.Reused);
            var dropped = kept.Connection;
            // The server ends the session (a restart, its idle timeout) after the copy took the kept connection.
            foreach (var session in Sessions(host))
            {
                try { Process.GetProcessById(session).Kill(); } catch (ArgumentException) { }
            }
            HangGuard.Until(() => !dropped.IsConnected, "the client noticing the dropped connection");

            using (Moltar.Engine.Transfer.HostCopySession.Open(connector, kept, CancellationToken.None))
            {
                Assert.NotSame(dropped, kept.Connection);
                Assert.True(kept.Connection.IsConnected);
            }

            Assert.Single(log, e => e.Message == "the connection was gone before the copy started; connected again");
        }

        Assert.True(pool.List().Single().IsConnected);
    }

    [SshdFact]
    public void Sftp_runs_as_a_channel_of_a_kept_connection_and_closing_it_leaves_the_connection_open()
    {
        sshd.EnsureAvailable();
        var pool = new ConnectionPool();
        var host = sshd.Hosts[18];
        var path = $"/tmp/moltar-pool-sftp-{Guid.NewGuid():n}";
        try
        {
            using var connector = new SshConnector(Pooled());
            var lease = pool.Acquire(connector, host.Target);
            var connections = Connections(host);
            Assert.NotEmpty(connections);
            var sftp = SftpChannel.Open(lease.Connection, lease.Reused);
            using (var stream = new MemoryStream("over the kept connection"u8.ToArray()))
            {
                sftp.UploadFile(stream, path);
            }

            Assert.Equal(connections, Connections(host));
            SftpChannel.Close(sftp);
            Assert.True(lease.Connection.IsConnected);
            var outcome = lease.Connection.Run($"cat {path}");
            Assert.Equal("over the kept connection", outcome.Stdout);
            lease.Return();
            Assert.True(pool.List().Single().IsConnected);
        }
        finally
        {
            pool.CloseAll();
            File.Delete(path);
        }
    }
    [SshdFact]
    public void A_connection_through_a_jump_host_is_kept_with_its_bastion_until_it_closes()
    {
        sshd.EnsureAvailable();
        // The shared pool: a disposing connector hands its jump hosts to it (the cmdlets' pool).
        var pool = ConnectionPool.Shared;
        var bastion = sshd.Bastion;
        var target = sshd.Hosts[19];
        var options = Pooled(sshd.Options() with { JumpHost = $"root@{bastion.Address}:{bastion.Port}" });
        var bastionSessions = Sessions(bastion).Count;
        try
        {
            JumpHost jump;
            using (var connector = new SshConnector(options))
            {
                var lease = pool.Acquire(connector, target.Target);
                Assert.True(lease.Connection.ViaJumpHost);
                jump = lease.Connection.Jump!;
                lease.Return();
            }

            // The connector is gone; the bastion connection the kept one runs through is not.
            Assert.Equal(1, jump.OpenListeners);
            using (var connector = new SshConnector(options))
            {
                var lease = pool.Acquire(connector, target.Target);
                Assert.True(lease.Reused);
                Assert.True(lease.Connection.Run("true").Succeeded);
                lease.Return();
            }

            pool.Close(info => info.Target.Address == target.Address);
            Assert.Equal(0, jump.OpenListeners);
            HangGuard.Until(() => Sessions(bastion).Count <= bastionSessions, "the bastion's session to end after its last kept connection closed");

            Assert.True(Sessions(bastion).Count <= bastionSessions, "the bastion connection closed with the last kept connection through it");
        }
        finally
        {
            pool.Close(info => info.Target.Address == target.Address);
        }
    }
}
