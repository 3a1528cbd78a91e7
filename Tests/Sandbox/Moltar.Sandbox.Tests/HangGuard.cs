namespace Moltar.Sandbox.Tests;

/// <summary>
/// The only wall-clock limit these tests have: a guard against hanging, minutes long, never a speed target (how fast
/// the sandbox answers is measured by the benchmark, `build.ps1 -Task Bench`).
/// </summary>
internal static class HangGuard
{
    public static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);
}
