# Task ReadyToRun: ReadyToRun images of what a fan-out runs first, for pwsh 7.6 (.NET 10) on Linux x64, into the
# built module's deps/r2r-net10-linux-x64/; the module's load context prefers them there and uses the portable IL in
# deps/ everywhere else. Part of Build; alone (-Task ReadyToRun) it refreshes the images of an existing build.

function Invoke-ReadyToRunTask {
    param([string] $Publish = (Join-Path $out 'publish'))
    if (-not (Test-Path (Join-Path $moduleDir 'deps/Moltar.Engine.dll'))) { throw "There is no built module in $moduleDir to add ReadyToRun images to: run -Task Build." }
    Write-Step 'ReadyToRun images for .NET 10 on Linux x64'
    $common = @('-c', $Configuration, "-p:Version=$version", '--nologo', '-v:q')
    Invoke-Native dotnet (@('publish', (Join-Path $root 'build/ReadyToRun/Moltar.ReadyToRun.csproj'), '-o', (Join-Path $Publish 'r2r')) + $common)
    $r2rDir = Join-Path $moduleDir 'deps/r2r-net10-linux-x64'
    New-Item -ItemType Directory -Force -Path $r2rDir | Out-Null
    foreach ($file in 'Moltar.Engine.dll', 'Renci.SshNet.dll', 'BouncyCastle.Cryptography.dll', 'AWSSDK.Core.dll') {
        Copy-Item (Join-Path $Publish "r2r/$file") $r2rDir
    }
}
