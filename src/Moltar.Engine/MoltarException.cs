namespace Moltar.Engine;

/// <summary>
/// A failure the user can act on. ErrorId is stable (tests and scripts match on it); Category names a
/// PowerShell ErrorCategory so the cmdlet layer can map it without the engine knowing PowerShell.
/// </summary>
public class MoltarException : Exception
{
    public string ErrorId { get; }
    public string Category { get; }

    public MoltarException(string errorId, string category, string message, Exception? inner = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Category = category;
    }
}
