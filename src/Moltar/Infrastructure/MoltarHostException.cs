namespace Moltar.Infrastructure;

/// <summary>One host's failure, with the host named in the message.</summary>
public sealed class MoltarHostException(string message, Exception inner) : Exception(message, inner);
