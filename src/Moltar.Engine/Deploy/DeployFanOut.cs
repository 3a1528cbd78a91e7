using System.Diagnostics;
using System.Text;
using Moltar.Engine.FanOut;
using Moltar.Engine.Ssh;

namespace Moltar.Engine.Deploy;

/// <summary>What a deploy did on one host that it reached.</summary>
public sealed class DeployOutcome
{
    /// <summary>The SSH user the commands ran as (sudo unless root).</summary>
    public string User { get; init; } = "";
    /// <summary>Configured versions before the deploy, by package (absent: not installed).</summary>
    public IReadOnlyDictionary<string, string> PreviousVersions { get; init; } = new Dictionary<string, string>();
    /// <summary>Configured versions after the deploy (or when it stopped), by package.</summary>
    public IReadOnlyDictionary<string, string> InstalledVersions { get; init; } = new Dictionary<string, string>();
    /// <summary>The versions the host had to end up with (pinned, or apt's candidate).</summary>
    public IReadOnlyDictionary<string, string> ExpectedVersions { get; init; } = new Dictionary<string, string>();
    /// <summary>Every step's command line ("$ ...") and its output, stdout then stderr.</summary>
    public string Output { get; init; } = "";
    /// <summary>True when a step's output was longer than the bytes kept per step (Output marks where).</summary>
    public bool Truncated { get; init; }
    /// <summary>Why it failed and the failing step's stderr; empty on success.</summary>
    public string Error { get; init; } = "";
    /// <summary>Null on success; DeployFailed, VerifyFailed, Timeout or ConnectionLost, with a sentence naming the host and what failed.</summary>
    public MoltarFailure? Failure { get; init; }
    public string? ErrorId => Failure?.ErrorId;
    public string? ErrorMessage => Failure?.Message;
    public DateTimeOffset StartTime { get; init; }
    public TimeSpan Duration { get; init; }
    public bool Succeeded => ErrorId is null;

    public override string ToString() => Succeeded ? "ok" : $"{ErrorId}: {ErrorMessage}";
}

/// <summary>
/// Runs a deploy's steps (DeployPlan) on hosts through the fan-out: per host one SSH connection, each step a
/// separate command, stopping at the first step that fails; output lines stream as the fan-out's Output events.
/// </summary>
public static class DeployFanOut
{
    /// <summary>
    /// A runner for one batch. Completed events carry a DeployOutcome (which may be a failure), or an SshFailure
    /// as Error when the host could not be reached. Add targets, Complete(), drain on the pipeline thread.
    /// </summary>
    public static FanOutRunner<SshTarget, DeployOutcome> Run(SshConnector connector, DeployRequest request, ExecOptions? exec = null,
        FanOutOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connector);
        ArgumentNullException.ThrowIfNull(request);
        exec ??= new ExecOptions();
        return new FanOutRunner<SshTarget, DeployOutcome>(
            ctx =>
            {
                ctx.Status("connecting");
                using var lease = ConnectionPool.Shared.Acquire(connector, ctx.Item, ctx.CancellationToken);
                var connection = lease.Connection;
                try
                {
                    var steps = DeployPlan.For(request, connection.Settings.User);
                    // The same never-waiting path as Invoke-MoltarCommand: a host flooding apt's output cannot stall
                    // its reader (nor make SSH.NET buffer without limit) while the pipeline thread is behind.
                    var live = new SshFanOut.LiveLines<DeployOutcome>(ctx);
                    var lineOptions = live.Options(exec);
                    var outcome = RunSteps(ctx.Item, connection.Settings.User, request, steps, exec.MaxOutputBytes, step =>
                    {
                        ctx.Status(step.Kind.ToString().ToLowerInvariant());
                        live.Show("$ " + step.Command);
                        var ran = connector.RunReconnecting(ref connection, step.Command, lineOptions, ctx.CancellationToken);
                        live.Count(ran);
                        return ran;
                    });
                    live.WarnIfSkipped(exec.MaxOutputBytes);
                    if (outcome.Truncated)
                    {
                        ctx.Warning($"kept the first {exec.MaxOutputBytes} bytes of a step's output; the rest was counted, not kept " +
                            "(the result's Output says which step).");
                    }
                    lease.Update(connection);
                    lease.Return();
                    return outcome;
                }
                finally
                {
                    lease.Update(connection); // a replaced connection is the one to close
                }
            },
            options,
            cancellationToken,
            isFailure: outcome => !outcome.Succeeded);
    }

    /// <summary>
    /// A runner for one batch over Systems Manager (-Transport Ssm): the same steps (as root: the SSM agent's user),
    /// verification and outcomes as <see cref="Run"/>, each step one Run Command through <paramref name="ssm"/>.
    /// </summary>
    public static FanOutRunner<SshTarget, DeployOutcome> RunOverSsm(Ssm.SsmStepRunner ssm, DeployRequest request,
        FanOutOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ssm);
        ArgumentNullException.ThrowIfNull(request);
        return new FanOutRunner<SshTarget, DeployOutcome>(
            ctx => RunSteps(ctx.Item, "root", request, DeployPlan.For(request, "root"), MaxStepOutputBytes, step =>
            {
                ctx.Status(step.Kind.ToString().ToLowerInvariant());
                return ssm.Run(ctx.Item.InstanceId, step.Command, ctx.Warning, ctx.CancellationToken);
            }),
            options,
            cancellationToken,
            isFailure: outcome => !outcome.Succeeded);
    }

    /// <summary>
    /// Bytes of each stream kept per step (the result's Output holds every step): a host cannot make a deploy's
    /// result grow past a few MiB. apt's own output for a deploy is a few KiB.
    /// </summary>
    public const long MaxStepOutputBytes = 1024 * 1024;

    /// <summary>The steps in order, each judged by its exit code and output; the first failure ends the host's deploy.</summary>
    internal static DeployOutcome RunSteps(SshTarget target, string user, DeployRequest request, IReadOnlyList<DeployStep> steps,
                                           long maxOutputBytes, Func<DeployStep, ExecOutcome> run)
    {
        bool truncated = false;
        void Keep(StringBuilder transcript, string text, bool cut, long bytes)
        {
            Append(transcript, text);
            if (cut)
            {
                truncated = true;
                // Over SSM a stream can also come back cut by the service (or by what the output bucket held): no byte count then.
                transcript.AppendLine(bytes > maxOutputBytes
                    ? string.Create(System.Globalization.CultureInfo.CurrentCulture, $"[Moltar: this stream had {bytes} bytes; the first {maxOutputBytes} are kept above]")
                    : "[Moltar: this stream is not whole: only the part above came back]");
            }
        }

        var start = DateTimeOffset.Now;
        var clock = Stopwatch.StartNew();
        var transcript = new StringBuilder();
        IReadOnlyDictionary<string, string> previous = new Dictionary<string, string>();
        IReadOnlyDictionary<string, string> installed = new Dictionary<string, string>();
        var expected = new Dictionary<string, string>(StringComparer.Ordinal);
        if (request.Version is { } pinned)
            foreach (var package in request.Packages) expected[package] = pinned;

        DeployOutcome Finish(MoltarFailure? failure = null, string? detail = null) => new()
        {
            User = user,
            PreviousVersions = previous,
            InstalledVersions = installed,
            ExpectedVersions = expected,
            Output = transcript.ToString(),
            Truncated = truncated,
            Error = failure is null ? "" : failure.Message + (string.IsNullOrWhiteSpace(detail) ? "" : Environment.NewLine + detail!.TrimEnd()),
            Failure = failure,
            StartTime = start,
            Duration = clock.Elapsed,
        };

        MoltarFailure Failed(string errorId, string message) => new(errorId, FailureCategory.InvalidResult, message, target.Address);

        foreach (var step in steps)
        {
            // Until apt-get install runs, the host has what it had before; from then on only dpkg can say.
            installed = step.Kind < DeployStepKind.Install ? previous
                : step.Kind == DeployStepKind.Install ? new Dictionary<string, string>() : installed;
            var outcome = run(step);
            transcript.Append("$ ").AppendLine(step.Command);
            Keep(transcript, outcome.Stdout, outcome.StdoutTruncated, outcome.StdoutBytes);
            Keep(transcript, outcome.Stderr, outcome.StderrTruncated, outcome.StderrBytes);

            // The connection itself failed (SSH's Timeout, ConnectionLost; SSM's delivery failures): keep that id.
            if (outcome.ErrorId is SshErrorIds.Timeout or SshErrorIds.ConnectionLost || Ssm.SsmErrorIds.IsDeliveryFailure(outcome.ErrorId))
                return Finish(outcome.Failure! with { Message = $"{target.DisplayName}: {Describe(step.Kind)} did not complete: {outcome.ErrorMessage}" }, outcome.Stderr);

            switch (step.Kind)
            {
                case DeployStepKind.Previous:
                case DeployStepKind.Verify:
                    // Exit 1: some package is unknown to dpkg (not installed); that is an answer, not a failure.
                    if (outcome.ExitCode is not (0 or 1))
                        return Finish(Failed(DeployErrorIds.DeployFailed, $"{target.DisplayName}: dpkg-query failed ({ExitText(outcome)}); is this a Debian or Ubuntu host?"), outcome.Stderr);
                    var states = DeployVerification.ParseDpkgQuery(outcome.Stdout);
                    var versions = DeployVerification.InstalledVersions(request.Packages, states);
                    if (step.Kind == DeployStepKind.Previous)
                    {
                        previous = versions;
                        break;
                    }
                    installed = versions;
                    var problems = DeployVerification.Problems(request.Packages, expected, states);
                    if (problems.Count > 0)
                        return Finish(Failed(DeployErrorIds.VerifyFailed, $"{target.DisplayName}: apt-get succeeded but dpkg says {string.Join("; ", problems)}."));
                    break;

                case DeployStepKind.Policy:
                    if (outcome.ExitCode != 0)
                        return Finish(Failed(DeployErrorIds.DeployFailed, $"{target.DisplayName}: apt-cache policy failed ({ExitText(outcome)})."), outcome.Stderr);
                    var missing = DeployVerification.Expected(request, DeployVerification.ParseCandidates(outcome.Stdout), out expected);
                    if (missing.Count > 0)
                        return Finish(Failed(DeployErrorIds.DeployFailed, $"{target.DisplayName}: {string.Join("; ", missing)}. Nothing was installed."));
                    break;

                default:
                    if (outcome.ExitCode != 0)
                    {
                        // What the host has now, for the result (best effort; the deploy has failed either way).
                        if (step.Kind >= DeployStepKind.Install && steps.FirstOrDefault(s => s.Kind == DeployStepKind.Verify) is { } verify)
                        {
                            var after = run(verify);
                            transcript.Append("$ ").AppendLine(verify.Command);
                            Keep(transcript, after.Stdout, after.StdoutTruncated, after.StdoutBytes);
                            if (after.ExitCode is 0 or 1)
                                installed = DeployVerification.InstalledVersions(request.Packages, DeployVerification.ParseDpkgQuery(after.Stdout));
                        }
                        // Half-installed packages, held packages, a missing version: apt explains on stderr ("E: ...").
                        return Finish(Failed(DeployErrorIds.DeployFailed, $"{target.DisplayName}: {Describe(step.Kind)} failed ({ExitText(outcome)}){FirstError(outcome.Stderr)}"), outcome.Stderr);
                    }
                    break;
            }
        }
        return Finish();
    }

    private static string Describe(DeployStepKind kind) => kind switch
    {
        DeployStepKind.Previous => "dpkg-query (versions before)",
        DeployStepKind.Update => "apt-get update",
        DeployStepKind.Policy => "apt-cache policy",
        DeployStepKind.Install => "apt-get install",
        DeployStepKind.Autoremove => "apt-get autoremove",
        DeployStepKind.Clean => "apt-get clean",
        DeployStepKind.Verify => "dpkg-query (versions after)",
        _ => kind.ToString(),
    };

    private static string ExitText(ExecOutcome outcome) =>
        outcome.ExitCode is { } code ? $"exit {code}" : outcome.ExitSignal is { } signal ? $"signal {signal}" : "no exit status";

    /// <summary>apt's own "E: ..." line (the reason), if it printed one; else the last stderr line.</summary>
    private static string FirstError(string stderr)
    {
        var lines = stderr.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        var reason = lines.FirstOrDefault(l => l.StartsWith("E: ", StringComparison.Ordinal)) ?? lines.LastOrDefault();
        return reason is null ? "." : $": {reason}";
    }

    private static void Append(StringBuilder transcript, string text)
    {
        if (string.IsNullOrEmpty(text))
            return;
        transcript.Append(text);
        if (!text.EndsWith('\n'))
            transcript.AppendLine();
    }
}
