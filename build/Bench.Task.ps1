# Task Bench: Moltar beside its peers on one sandbox (Tests/Bench/Invoke-Benchmark.ps1 measures and writes the README table).

function New-PrecompiledPwsh {
    <# The pwsh here is the dotnet tool, whose own assemblies are IL only (it JIT-compiles ~5,700 methods at every
       start); the official PowerShell packages ship them ReadyToRun-compiled. For the benchmark's cold row "as
       installed": a copy of this pwsh with its assemblies compiled by the crossgen2 that the module build restored,
       against the runtime running it. Returns that pwsh.dll, or $null with the reason as a warning. #>
    param([Parameter(Mandatory)] [string] $Destination)
    $pwshDll = @($pwsh.Arguments)[0]
    $packages = Get-NuGetPackageRoot
    $crossgen = Get-ChildItem (Join-Path $packages 'microsoft.netcore.app.crossgen2.linux-x64/10.*/tools/crossgen2') -ErrorAction Ignore |
        Sort-Object { [version]$_.Directory.Parent.Name } | Select-Object -Last 1
    if (-not $pwshDll -or -not $IsLinux -or -not $crossgen) {
        Write-Warning 'No precompiled pwsh for the benchmark (needs the dotnet tool pwsh on Linux and crossgen2 from the module build).'
        return $null
    }
    $source = Split-Path $pwshDll
    $runtime = [Runtime.InteropServices.RuntimeEnvironment]::GetRuntimeDirectory().TrimEnd('/')
    $stamp = Join-Path $Destination '.compiled-from'
    $identity = "$source $runtime $($crossgen.FullName)"
    if ((Test-Path $stamp) -and (Get-Content -Raw $stamp).Trim() -eq $identity) { return (Join-Path $Destination 'pwsh.dll') }
    Write-Step "Precompiling a copy of pwsh ($source) with $($crossgen.FullName)"
    Remove-Item -Recurse -Force $Destination -ErrorAction Ignore
    Copy-Item -Recurse $source $Destination
    $assemblies = Get-ChildItem $source -Filter *.dll -File
    $failed = $assemblies | ForEach-Object -ThrottleLimit ([Environment]::ProcessorCount) -Parallel {
        $output = & $using:crossgen.FullName $_.FullName -o (Join-Path $using:Destination $_.Name) -r "$using:runtime/*.dll" -r "$using:source/*.dll" --targetos linux --targetarch x64 -O 2>&1
        if ($LASTEXITCODE -ne 0) { "$($_.Name): $($output | Select-Object -Last 1)" }
    }
    # An assembly crossgen2 cannot compile stays IL (the copy above), as in the official packages.
    foreach ($failure in @($failed)) { Write-Host "    left as IL: $failure" }
    Set-Content $stamp $identity
    Join-Path $Destination 'pwsh.dll'
}

function Invoke-BenchTask {
    Invoke-BuildTask
    $sandboxDll = Build-Sandbox
    $skipReason = Initialize-TestPrerequisite
    if ($skipReason) { throw "The benchmark needs the sandbox fleet: $skipReason" }
    Write-Step 'Building the raw AWSSDK.EC2 paginator (the discovery baseline)'
    $rawProject = Join-Path $root 'Tests/Bench/RawPaginator/RawPaginator.csproj'
    Invoke-Native dotnet @('build', $rawProject, '-c', 'Release', '--nologo', '-v:q')
    $benchmark = @{
        ModulePath       = Join-Path $moduleDir 'Moltar.psd1'
        SandboxPath      = $sandboxDll
        RawPaginatorPath = Join-Path $root 'Tests/Bench/RawPaginator/bin/Release/net10.0/RawPaginator.dll'
        Hosts            = $Hosts
        Runs             = $Runs
        OutputDirectory  = Join-Path $out 'bench'
        ReadmePath       = Join-Path $root 'README.md'
    }
    # The SSM row alone has no cold-start rows: no precompiled pwsh needed.
    $precompiled = if ($OnlySsm) { $null } else { New-PrecompiledPwsh -Destination (Join-Path $out 'bench-pwsh') }
    if ($precompiled) { $benchmark.PrecompiledPwshPath = $precompiled }
    if ($OnlySsm) { $benchmark.OnlySsm = $true }
    & (Join-Path $root 'Tests/Bench/Invoke-Benchmark.ps1') @benchmark
}
