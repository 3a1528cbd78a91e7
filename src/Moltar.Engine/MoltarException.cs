namespace Moltar.Engine;

/// <summary>
/// A failure the user can act on, thrown where it happens; <see cref="Failure"/> is the value that travels on to the
/// error record. ErrorId is stable (tests and scripts match on it).
/// </summary>
public class MoltarException : Exception
{
    public MoltarException(string errorId, FailureCategory category, string message, Exception? inner = null, string? host = null)
        : base(message, inner)
    {
        Failure = new MoltarFailure(errorId, category, message, host, this);
    }

    /// <summary>Carries a failure value made elsewhere (e.g. Unexpected for a bug's exception, kept as the inner exception).</summary>
    public MoltarException(MoltarFailure failure)
        : base((failure ?? throw new ArgumentNullException(nameof(failure))).Message, failure.Exception)
    {
        Failure = failure;
    }

    public MoltarFailure Failure { get; }
    public string ErrorId => Failure.ErrorId;
    public FailureCategory Category => Failure.Category;
}
