using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace Moltar.Engine.Ssh;

/// <summary>
/// An open, authenticated connection to one host. Runs commands (one at a time per connection is the
/// intended use; SftpChannel opens the SFTP subsystem on it for copies), and closes on Dispose. Not tied to a
/// command, so ConnectionPool keeps it warm between calls.
/// </summary>
public sealed class SshConnection : IDisposable
{
    private readonly SshClient _client;
    private IDisposable? _lease;
    private int _disposed;

    internal SshConnection(SshTarget target, SshHostSettings settings, SshClient client, IDisposable? lease)
    {
        Target = target;
        Settings = settings;
        _client = client;
        _lease = lease;
    }

    /// <summary>The instance this connection serves now: a kept connection is handed to a later call with that call's target (its name, id and tags may have changed).</summary>
    public SshTarget Target { get; private set; }
    public SshHostSettings Settings { get; }

    internal void ServeFor(SshTarget target) => Target = target;
    public bool IsConnected => Volatile.Read(ref _disposed) == 0 && _client.IsConnected;
    public string ServerVersion => _client.ConnectionInfo.ServerVersion ?? "";
    public string KeyExchangeAlgorithm => _client.ConnectionInfo.CurrentKeyExchangeAlgorithm ?? "";
    public string Cipher => _client.ConnectionInfo.CurrentClientEncryption ?? "";
    public string HostKeyAlgorithm => _client.ConnectionInfo.CurrentHostKeyAlgorithm ?? "";
    public bool ViaJumpHost => _lease is JumpLease;

    /// <summary>The SSH.NET client (engine only): SftpChannel opens the SFTP subsystem on its session.</summary>
    internal SshClient Client => _client;

    /// <summary>The jump host this connection goes through (the last hop), while it is open.</summary>
    internal JumpHost? Jump => (_lease as JumpLease)?.Owner;
    /// <summary>The local port of the jump host's forward this connection goes through (tests attack it).</summary>
    internal int? JumpPort => (_lease as JumpLease)?.Port;
    /// <summary>True when the connection runs over ssh config's ProxyCommand.</summary>
    public bool ViaProxyCommand => _lease is ProxyCommandRoute;
    /// <summary>The ProxyCommand process's id while the connection is open (tests: it ends with the connection).</summary>
    internal int? ProxyProcessId => (_lease as ProxyCommandRoute)?.ProcessId;

    /// <summary>
    /// Runs a command and waits for it: output streams live to options.OnLine, the outcome carries exit code,
    /// kept output and an ErrorId (CommandFailed, Timeout, ConnectionLost) when it did not succeed. Blocks the
    /// calling thread. On cancellation the command gets TERM, the connection is closed and
    /// OperationCanceledException is thrown. After Timeout or ConnectionLost the connection is closed.
    /// </summary>
    public ExecOutcome Run(string command, ExecOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        options ??= new ExecOptions();
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return options.Pty ? RunPty(command, options, cancellationToken) : RunExec(command, options, cancellationToken);
    }

    /// <summary>Run on a dedicated thread.</summary>
    public Task<ExecOutcome> RunAsync(string command, ExecOptions? options = null, CancellationToken cancellationToken = default) =>
        DedicatedThread.Run(() => Run(command, options, cancellationToken), "Moltar SSH run");

    private ExecOutcome RunExec(string command, ExecOptions options, CancellationToken cancellationToken)
    {
        var start = DateTimeOffset.Now;
        var clock = Stopwatch.StartNew();
        var encoding = options.Encoding ?? new UTF8Encoding(false);
        // A caller that lets lines be skipped (LineRoom) gets them split only while the reader keeps up: SSH.NET
        // reads the socket on its own thread and buffers what this side has not read yet, without limit. When that
        // backlog grows (splitting is slower than a host can print), lines are skipped until it has been read away,
        // so memory stays bounded. Without LineRoom every line is delivered, however long that takes.
        Stream? outSource = null, errSource = null;
        Func<bool>? Room(Func<Stream?> source) => options.OnLine is null || options.LineRoom is null ? null
            : () => options.LineRoom() && Backlog(source()) < MaxReadBacklog;
        var stdout = new OutputCollector(ExecStream.Stdout, options.MaxOutputBytes, encoding, options.OnLine, options.MaxLineLength, Room(() => outSource));
        var stderr = new OutputCollector(ExecStream.Stderr, options.MaxOutputBytes, encoding, options.OnLine, options.MaxLineLength, Room(() => errSource));

        ChannelEof.EnsureAvailable(); // before the command starts: never one that could wait for input forever

        SshCommand cmd;
        Task execution;
        try
        {
            cmd = _client.CreateCommand(command, encoding);
            execution = cmd.ExecuteAsync(CancellationToken.None); // cancellation: Wait below, then Abort
        }
        catch (Exception e) when (e is SshException or ObjectDisposedException or InvalidOperationException or System.Net.Sockets.SocketException
                                  || SshFailure.IsLibraryFaultOnLostSession(e))
        {
            return NotStarted(command, start, clock, e);
        }

        using (cmd)
        {
            outSource = cmd.OutputStream;
            errSource = cmd.ExtendedOutputStream;
            var outReader = Pump(cmd.OutputStream, stdout, "stdout");
            var errReader = Pump(cmd.ExtendedOutputStream, stderr, "stderr");
            Thread? stdinWriter = null;
            try
            {
                var input = cmd.CreateInputStream();
                if (options.Stdin is { Length: > 0 } bytes)
                {
                    // Writing can block on the channel window: a thread of its own keeps this one free to time out.
                    stdinWriter = new Thread(() =>
                    {
                        try
                        {
                            input.Write(bytes, 0, bytes.Length);
                        }
                        catch (Exception)
                        {
                        }
                        finally
                        {
                            try
                            {
                                ChannelEof.EndInput(cmd, input);
                            }
                            catch (Exception)
                            {
                                // The channel is gone (or the library changed under a running command): nothing left to end.
                            }
                        }
                    })
                    { IsBackground = true, Name = "Moltar SSH stdin" };
                    stdinWriter.Start();
                }
                else
                {
                    // End-of-file at once, so a command that reads stdin (cat, an apt prompt) does not wait forever.
                    // SSH.NET's input stream sends EOF on Dispose only after some input was written, hence the direct call.
                    input.Dispose();
                    ChannelEof.Send(cmd);
                }
            }
            catch (Exception e) when (e is SshException or ObjectDisposedException or InvalidOperationException)
            {
                // The channel is already gone; the outcome below says why.
            }

            var ended = Wait(((IAsyncResult)execution).AsyncWaitHandle, options.Timeout, cancellationToken);
            if (ended != WaitResult.Completed)
            {
                Abort(cmd);
            }

            outReader.Join(TimeSpan.FromSeconds(5));
            errReader.Join(TimeSpan.FromSeconds(5));
            stdout.Complete();
            stderr.Complete();

            if (ended == WaitResult.Cancelled)
            {
                throw new OperationCanceledException("The command was cancelled.", cancellationToken);
            }

            var failure = stdout.CallbackFailure ?? stderr.CallbackFailure;
            if (failure is not null)
            {
                throw new InvalidOperationException("The output line callback failed: " + failure.Message, failure);
            }

            string? errorId = null;
            string? message = null;
            int? exitCode = null;
            string? signal = null;
            if (ended == WaitResult.TimedOut)
            {
                errorId = SshErrorIds.Timeout;
                message = $"The command did not finish within {options.Timeout!.Value.TotalSeconds:0.###} s on {Target.DisplayName}; it was sent TERM and the connection closed.";
            }
            else if (execution.IsFaulted || !_client.IsConnected && cmd.ExitStatus is null && cmd.ExitSignal is null)
            {
                errorId = SshErrorIds.ConnectionLost;
                var reason = execution.Exception?.GetBaseException().Message;
                message = $"The connection to {Target.DisplayName} dropped while the command ran{(reason is null ? "" : ": " + reason)}.";
                Close();
            }
            else
            {
                exitCode = cmd.ExitStatus;
                signal = cmd.ExitSignal;
                (errorId, message) = Judge(exitCode, signal);
            }

            return new ExecOutcome
            {
                Command = command,
                ExitCode = exitCode,
                ExitSignal = signal,
                Stdout = stdout.Text,
                Stderr = stderr.Text,
                StdoutBytes = stdout.TotalBytes,
                StderrBytes = stderr.TotalBytes,
                StdoutTruncated = stdout.Truncated,
                StderrTruncated = stderr.Truncated,
                LinesNotShown = stdout.LinesNotShown + stderr.LinesNotShown,
                StartTime = start,
                Duration = clock.Elapsed,
                Failure = SshFailure.ValueOf(errorId, message, Target.Address),
            };
        }
    }

    private ExecOutcome RunPty(string command, ExecOptions options, CancellationToken cancellationToken)
    {
        var start = DateTimeOffset.Now;
        var clock = Stopwatch.StartNew();
        var encoding = options.Encoding ?? new UTF8Encoding(false);
        var output = new OutputCollector(ExecStream.Stdout, options.MaxOutputBytes, encoding, options.OnLine, options.MaxLineLength, options.LineRoom);
        var nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
        var parser = new PtyMarkerParser(nonce);

        ShellStream shell;
        try
        {
            var modes = new Dictionary<TerminalModes, uint>
            {
                [TerminalModes.ECHO] = 0,   // the typed line and stdin are not echoed back
                [TerminalModes.ONLCR] = 0,  // keep \n line ends
            };
            shell = _client.CreateShellStream(options.TerminalType, options.TerminalColumns, options.TerminalRows, 0, 0, 64 * 1024, modes);
            shell.Write(PtyMarkerParser.CommandLine(command, nonce));
            shell.Flush();
        }
        catch (Exception e) when (e is SshException or ObjectDisposedException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            return NotStarted(command, start, clock, e);
        }

        using (shell)
        {
            var done = new ManualResetEventSlim(false);
            var endSeen = new ManualResetEventSlim(false);
            var stdin = options.Stdin;
            var reader = new Thread(() =>
            {
                var buffer = new byte[32 * 1024];
                var stdinSent = false;
                try
                {
                    // Read until the server closes the channel (Read returns 0 only after SSH.NET has finished
                    // disposing the stream on its own thread): disposing it ourselves while the server closes it
                    // deadlocks inside SSH.NET (ShellStream lock vs channel lock).
                    int n;
                    while ((n = shell.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        parser.Feed(buffer.AsSpan(0, n), output.Append);
                        if (parser.Ended && !endSeen.IsSet)
                        {
                            endSeen.Set();
                            // Everything up to the exit marker is here: the wrapper may end now (PtyMarkerParser.CommandLine).
                            var ack = PtyMarkerParser.Acknowledgement(nonce);
                            shell.Write(ack, 0, ack.Length);
                            shell.Flush();
                        }

                        if (parser.Started && !stdinSent)
                        {
                            stdinSent = true;
                            // The command runs now: its stdin is the terminal. Send the input, then ^D for end-of-file.
                            var bytes = new List<byte>(stdin ?? Array.Empty<byte>());
                            if (bytes.Count > 0 && bytes[^1] != (byte)'\n')
                            {
                                bytes.Add(4);
                            }

                            bytes.Add(4);
                            shell.Write(bytes.ToArray(), 0, bytes.Count);
                            shell.Flush();
                        }
                    }
                }
                catch (Exception)
                {
                    // Stream closed under us (abort or connection lost); the outcome says which.
                }
                finally
                {
                    done.Set();
                }
            })
            { IsBackground = true, Name = "Moltar SSH pty" };
            reader.Start();

            var clock2 = Stopwatch.StartNew();
            var ended = Wait(new[] { done.WaitHandle, endSeen.WaitHandle }, options.Timeout, cancellationToken);
            if (ended == WaitResult.Completed && !done.IsSet)
            {
                // The exit marker came; the channel should close right after. If something keeps the terminal
                // open (a background job), stop waiting after a moment: the exit code is known.
                var grace = TimeSpan.FromSeconds(2);
                if (options.Timeout is { } limit && limit - clock2.Elapsed < grace)
                {
                    grace = limit - clock2.Elapsed < TimeSpan.Zero ? TimeSpan.Zero : limit - clock2.Elapsed;
                }

                var after = Wait(done.WaitHandle, grace, cancellationToken);
                if (after != WaitResult.Completed)
                {
                    Close();
                }

                if (after == WaitResult.Cancelled)
                {
                    ended = WaitResult.Cancelled;
                }
            }
            else if (ended != WaitResult.Completed)
            {
                // Close the connection first (SSH.NET's message thread stops), then dispose the stream so the reader
                // returns; disposing it while that thread may be closing the channel could deadlock inside SSH.NET.
                Close();
                var stream = shell;
                new Thread(() => SshConnector.SafeDispose(stream)) { IsBackground = true, Name = "Moltar SSH pty close" }.Start();
            }

            reader.Join(TimeSpan.FromSeconds(3));
            output.Complete();
            if (ended == WaitResult.Cancelled)
            {
                throw new OperationCanceledException("The command was cancelled.", cancellationToken);
            }

            if (output.CallbackFailure is { } failure)
            {
                throw new InvalidOperationException("The output line callback failed: " + failure.Message, failure);
            }

            string? errorId;
            string? message;
            if (ended == WaitResult.TimedOut)
            {
                errorId = SshErrorIds.Timeout;
                message = $"The command did not finish within {options.Timeout!.Value.TotalSeconds:0.###} s on {Target.DisplayName}; the connection was closed.";
            }
            else if (parser.ExitCode is null)
            {
                if (!_client.IsConnected)
                {
                    errorId = SshErrorIds.ConnectionLost;
                    message = $"The connection to {Target.DisplayName} dropped while the command ran.";
                }
                else
                {
                    errorId = SshErrorIds.CommandFailed;
                    message = $"The command on {Target.DisplayName} ended without reporting an exit status (the terminal session closed).";
                }

                Close();
            }
            else
            {
                (errorId, message) = Judge(parser.ExitCode, null);
            }

            return new ExecOutcome
            {
                Command = command,
                ExitCode = parser.ExitCode,
                Stdout = output.Text,
                StdoutBytes = output.TotalBytes,
                StdoutTruncated = output.Truncated,
                LinesNotShown = output.LinesNotShown,
                StartTime = start,
                Duration = clock.Elapsed,
                Failure = SshFailure.ValueOf(errorId, message, Target.Address),
            };
        }
    }

    private (string? ErrorId, string? Message) Judge(int? exitCode, string? signal)
    {
        if (exitCode == 0)
        {
            return (null, null);
        }

        if (exitCode is int code)
        {
            return (SshErrorIds.CommandFailed, $"The command exited with code {code} on {Target.DisplayName}.");
        }

        if (signal is not null)
        {
            return (SshErrorIds.CommandFailed, $"The command was killed by signal {signal} on {Target.DisplayName}.");
        }

        return (SshErrorIds.CommandFailed, $"The command on {Target.DisplayName} ended without an exit status.");
    }

    private ExecOutcome NotStarted(string command, DateTimeOffset start, Stopwatch clock, Exception e)
    {
        var lost = !_client.IsConnected || SshFailure.MeansConnectionGone(e);
        if (lost)
        {
            Close();
        }

        return new ExecOutcome
        {
            Command = command,
            StartTime = start,
            Duration = clock.Elapsed,
            Started = false,
            Failure = SshFailure.ValueOf(lost ? SshErrorIds.ConnectionLost : SshErrorIds.CommandFailed, lost
                ? $"The connection to {Target.DisplayName} was lost before the command started: {e.Message}"
                : $"The command could not be started on {Target.DisplayName}: {e.Message}", Target.Address),
        };
    }

    private enum WaitResult
    {
        Completed,
        TimedOut,
        Cancelled,
    }

    private static WaitResult Wait(WaitHandle handle, TimeSpan? timeout, CancellationToken cancellationToken) =>
        Wait(new[] { handle }, timeout, cancellationToken);

    /// <summary>Waits for any of the handles (Completed), the token (Cancelled) or the timeout (TimedOut).</summary>
    private static WaitResult Wait(WaitHandle[] handles, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var ms = timeout is { } t ? (int)Math.Clamp(t.TotalMilliseconds, 0, int.MaxValue - 1) : Timeout.Infinite;
        var all = cancellationToken.CanBeCanceled ? handles.Append(cancellationToken.WaitHandle).ToArray() : handles;
        var index = WaitHandle.WaitAny(all, ms);
        if (index == WaitHandle.WaitTimeout)
        {
            return WaitResult.TimedOut;
        }

        if (index < handles.Length || handles.Any(h => h.WaitOne(0)))
        {
            return WaitResult.Completed;
        }

        return WaitResult.Cancelled;
    }

    /// <summary>Ends a running command: TERM (waiting briefly for it to go), then the connection is closed.</summary>
    private void Abort(SshCommand cmd)
    {
        try
        {
            cmd.CancelAsync(forceKill: false, millisecondsTimeout: 250);
        }
        catch (Exception)
        {
        }

        Close();
    }

    /// <summary>Bytes SSH.NET has received but this side has not read, above which lines are skipped.</summary>
    internal const long MaxReadBacklog = 4L * 1024 * 1024;

    private static long Backlog(Stream? stream)
    {
        try
        {
            return stream?.Length ?? 0;
        }
        catch (Exception)
        {
            return 0; // a stream that cannot say (or is closed): no backlog known
        }
    }

    private static Thread Pump(Stream stream, OutputCollector collector, string name)
    {
        var thread = new Thread(() =>
        {
            var buffer = new byte[32 * 1024];
            try
            {
                int n;
                while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
                {
                    collector.Append(buffer.AsSpan(0, n));
                }
            }
            catch (Exception)
            {
                // Disposed under us: the command was aborted or the connection dropped.
            }
        })
        { IsBackground = true, Name = "Moltar SSH " + name };
        thread.Start();
        return thread;
    }

    private void Close()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        SshConnector.SafeDispose(_client);
        Interlocked.Exchange(ref _lease, null)?.Dispose();
    }

    public void Dispose() => Close();
}

/// <summary>
/// Sends SSH_MSG_CHANNEL_EOF on a command's channel. SSH.NET (2026.0.1, the newest) sends EOF only when the stream of
/// SshCommand.CreateInputStream() is disposed after data was written to it, and has no other public way: the
/// channel is reached by reflection, the one place Moltar reaches into a library. When a later SSH.NET lacks those
/// members this fails loudly (SshLibraryIncompatible) rather than leave stdin open, where a command that reads it
/// (cat, an apt prompt) would wait forever; LibraryInternalsTests and ExecTests.Stdin_is_sent_then_end_of_file fail
/// first when an upgrade changes them.
/// <para>
/// Every EOF goes out under the channel's own messaging lock: SSH.NET's SendEof checks that the channel is open
/// before it takes that lock, so when the command ends at that moment its Close (which sends CLOSE under the lock)
/// can come in between and the EOF follow the CLOSE. sshd then ends the whole connection ("ieof packet referred to
/// nonexistent channel"), and a kept connection is lost. Under the lock the open check and the EOF are one step.
/// The lock is taken the way the loaded build takes it (<see cref="LockKind"/>): SSH.NET's .NET 9+ builds type it
/// System.Threading.Lock, which a Monitor on the same object does not exclude.
/// </para>
/// </summary>
internal static class ChannelEof
{
    private const System.Reflection.BindingFlags Instance = System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance;

    /// <summary>
    /// The library's members this reaches for, looked up once: the command's channel field, the channel's SendEof()
    /// and the lock its Close() sends CLOSE under.
    /// </summary>
    internal sealed record Members(System.Reflection.FieldInfo? Channel, System.Reflection.MethodInfo? SendEof, System.Reflection.FieldInfo? MessagingLock,
        LockKind? Locking, System.Reflection.FieldInfo? CloseSent, System.Reflection.FieldInfo? CloseReceived, string? Missing)
    {
        public static Members Of(Type commandType)
        {
            var field = commandType.GetField("_channel", Instance);
            if (field is null)
                return Lacking($"{commandType.FullName}._channel");
            // The field is typed as an interface (IChannelSession); SendEof is declared on it or an interface it extends.
            var sendEof = new[] { field.FieldType }.Concat(field.FieldType.GetInterfaces())
                .Select(t => t.GetMethod("SendEof", Instance, Type.EmptyTypes)).FirstOrDefault(m => m is not null);
            if (sendEof is null)
                return Lacking($"{field.FieldType.FullName}.SendEof()");
            // The lock is a private field of the channels' base class (Renci.SshNet.Channels.Channel) when the field is
            // typed as an interface, else of the field's class or one of its bases.
            var channelClass = field.FieldType.IsInterface ? commandType.Assembly.GetType($"{field.FieldType.Namespace}.Channel") : field.FieldType;
            System.Reflection.FieldInfo? Find(string name) => BaseTypes(channelClass).Select(t => t.GetField(name, Instance)).FirstOrDefault(f => f is not null);
            var messagingLock = Find("_messagingLock");
            var closeSent = Find("_closeMessageSent");
            var closeReceived = Find("_closeMessageReceived");
            var locking = messagingLock is null ? null : LockKind.Of(messagingLock.FieldType);
            var missing = locking is null ? "_messagingLock" : closeSent?.FieldType != typeof(bool) ? "_closeMessageSent" : closeReceived?.FieldType != typeof(bool) ? "_closeMessageReceived" : null;
            return missing is not null
                ? Lacking($"{field.FieldType.Namespace}.Channel.{missing}")
                : new(field, sendEof, messagingLock, locking, closeSent, closeReceived, null);
        }

        /// <summary>A library without <paramref name="missing"/>: nothing is reached for.</summary>
        private static Members Lacking(string missing) => new(null, null, null, null, null, null, missing);

        private static IEnumerable<Type> BaseTypes(Type? type)
        {
            for (; type is not null; type = type.BaseType)
                yield return type;
        }
    }

    /// <summary>
    /// How the library takes its messaging lock. SSH.NET's .NET 9+ builds (the one loaded on .NET 10) type it
    /// System.Threading.Lock, whose <c>lock</c> is its own Enter/Exit: a Monitor on that object excludes nothing.
    /// Older builds lock an object with Monitor. Null for a lock of a shape neither way takes.
    /// </summary>
    internal sealed record LockKind(string Name, Action<object> Enter, Action<object> Exit)
    {
        public static readonly LockKind Monitor = new("Monitor", System.Threading.Monitor.Enter, System.Threading.Monitor.Exit);

        public static LockKind? Of(Type lockType)
        {
            if (lockType.FullName != "System.Threading.Lock")
                return lockType.IsValueType ? null : Monitor;
            // Looked up at run time: this assembly is built for .NET 8, which has no System.Threading.Lock.
            var enter = lockType.GetMethod("Enter", Type.EmptyTypes);
            var exit = lockType.GetMethod("Exit", Type.EmptyTypes);
            return enter is null || exit is null ? null
                : new(lockType.FullName, o => enter.Invoke(o, null), o => exit.Invoke(o, null));
        }
    }

    private static readonly Lazy<Members> Command = new(() => Members.Of(typeof(SshCommand)));

    /// <summary>Sends EOF unless the channel is closed; a channel already gone is no error. Throws SshLibraryIncompatible when the library changed.</summary>
    public static void Send(SshCommand command) => Send(command, Command.Value);

    internal static void Send(object command, Members members) => UnderChannelLock(command, members, channel =>
    {
        if (channel is null)
            return; // not opened: nothing to end
        try
        {
            members.SendEof!.Invoke(channel, null);
        }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is SshException or ObjectDisposedException or InvalidOperationException)
        {
            // The channel closed already (the command ended at once): there is no input left to end.
        }
    });

    /// <summary>
    /// Disposes the command's input stream (SSH.NET then sends EOF when input was written and the channel is open)
    /// under the channel's lock, so that EOF cannot follow the channel's CLOSE either.
    /// </summary>
    public static void EndInput(SshCommand command, Stream input) => UnderChannelLock(command, Command.Value, _ => input.Dispose());

    /// <summary>
    /// Runs <paramref name="action"/> under the channel's messaging lock unless a CLOSE was sent or received: the
    /// library's Close() sends CLOSE and records it under that lock, while the channel's IsOpen can still read true
    /// after it, so the records, not IsOpen, say whether an EOF may still go out.
    /// </summary>
    internal static void UnderChannelLock(object command, Members members, Action<object?> action)
    {
        EnsureAvailable(members);
        var channel = members.Channel!.GetValue(command);
        if (channel is null || members.MessagingLock!.GetValue(channel) is not { } messagingLock)
        {
            action(channel);
            return;
        }

        members.Locking!.Enter(messagingLock);
        try
        {
            if ((bool)members.CloseSent!.GetValue(channel)! || (bool)members.CloseReceived!.GetValue(channel)!)
                return; // the channel is closing: no input is left to end, and an EOF now could follow the CLOSE
            action(channel);
        }
        finally
        {
            members.Locking.Exit(messagingLock);
        }
    }

    /// <summary>Throws SshLibraryIncompatible before a command starts when its input could not be ended.</summary>
    public static void EnsureAvailable() => EnsureAvailable(Command.Value);

    internal static void EnsureAvailable(Members members)
    {
        if (members.Missing is { } missing)
            throw Incompatible(missing);
    }

    internal static SshFailure Incompatible(string missing) => new(SshErrorIds.SshLibraryIncompatible,
        $"This SSH.NET ({typeof(SshCommand).Assembly.GetName().Version}) has no {missing}, which Moltar uses to end a command's standard " +
        "input (SSH.NET has no public way to). The command was not run: it could wait forever for input. Moltar is built for SSH.NET 2026.0.1; " +
        "reinstall Moltar so it loads the SSH.NET it ships with.");
}
