using Moltar.Engine;

namespace Moltar.Infrastructure;

/// <summary>
/// One host's failure in an error record: the message names the host; Failure is the engine's value as it was made
/// where the failure happened, and the inner exception is the one behind it (the bug's own, for Unexpected).
/// </summary>
public sealed class MoltarHostException : Exception
{
    // Internal: PowerShell reads every public constructor's signature at import, and MoltarFailure would load the engine then.
    internal MoltarHostException(string message, MoltarFailure failure) : base(message, failure.Exception) => Failure = failure;

    public MoltarFailure Failure { get; }
}
