# Task Demo: the module against a sandbox, narrated.

function Invoke-DemoTask {
    Invoke-BuildTask
    $sandboxDll = Build-Sandbox
    $skipReason = Initialize-TestPrerequisite
    if ($skipReason) { throw "The demo needs the sandbox fleet: $skipReason" }
    & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -File (Join-Path $root 'Tests/Sandbox/Demo.ps1') -ModulePath (Join-Path $moduleDir 'Moltar.psd1') -SandboxPath $sandboxDll
    if ($LASTEXITCODE -ne 0) { throw "The demo failed (exit $LASTEXITCODE)." }
}
