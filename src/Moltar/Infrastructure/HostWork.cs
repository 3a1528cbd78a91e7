using Moltar.Engine.Ssh;

namespace Moltar.Infrastructure;

/// <summary>One host to work on, and what the user gave for it (the error records' target object).</summary>
public sealed record HostWork(SshTarget Target, object Origin);
