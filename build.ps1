#!/usr/bin/env pwsh
<#
.SYNOPSIS
    One entry point for people and CI: Build, Test, Demo, Bench, Package.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 -Task Test
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Bench', 'Package')]
    [string] $Task = 'Build',
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    # Test: only Pester files whose name matches (e.g. 'Get-MoltarInstance'); xunit runs unless -SkipUnit.
    [string] $TestFilter,
    [switch] $SkipUnit,
    [switch] $SkipPester,
    # Bench: fleet sizes (one fleet of the largest; smaller N use its first hosts) and timed runs per tool.
    [ValidateRange(1, 250)] [int[]] $Hosts = @(10, 50, 100),
    [ValidateRange(1, 100)] [int] $Runs = 5,
    # Package: the local PSResourceGet file repository to publish to; -SkipBuild packages the existing build.
    [string] $RepositoryPath,
    [switch] $SkipBuild
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$root = $PSScriptRoot
$out = Join-Path $root 'out'
$manifestSource = Join-Path $root 'Moltar.psd1'
$version = (Import-PowerShellDataFile $manifestSource).ModuleVersion
$moduleDir = Join-Path $out "Moltar/$version"
$isCI = $env:CI -eq 'true'

# Child pwsh processes: the dotnet tool runs as 'dotnet pwsh.dll', a plain install as 'pwsh'.
$pwsh = [pscustomobject]@{
    FilePath  = [Environment]::ProcessPath
    Arguments = if ([IO.Path]::GetFileNameWithoutExtension([Environment]::ProcessPath) -eq 'dotnet') { @([Reflection.Assembly]::GetEntryAssembly().Location) } else { @() }
}

function Write-Step([string] $message) {
    Write-Host "==> $message" -ForegroundColor Cyan
}

function Invoke-Native {
    param([Parameter(Mandatory)] [string] $FilePath, [string[]] $ArgumentList = @(), [switch] $Quiet)
    if ($Quiet) {
        $output = & $FilePath @ArgumentList 2>&1
        if ($LASTEXITCODE -ne 0) { $output | Out-Host; throw "$FilePath $($ArgumentList -join ' ') failed with exit code $LASTEXITCODE" }
    }
    else {
        & $FilePath @ArgumentList | Out-Host
        if ($LASTEXITCODE -ne 0) { throw "$FilePath $($ArgumentList -join ' ') failed with exit code $LASTEXITCODE" }
    }
}

function Invoke-Build {
    Write-Step "Building Moltar $version ($Configuration) into $moduleDir"
    $publish = Join-Path $out 'publish'
    Remove-Item -Recurse -Force $publish, $moduleDir -ErrorAction Ignore
    $common = @('-c', $Configuration, "-p:Version=$version", '--nologo', '-v:q')
    Invoke-Native dotnet (@('publish', (Join-Path $root 'src/Moltar/Moltar.csproj'), '-o', (Join-Path $publish 'module')) + $common)
    Invoke-Native dotnet (@('publish', (Join-Path $root 'src/Moltar.Engine/Moltar.Engine.csproj'), '-o', (Join-Path $publish 'deps')) + $common)

    New-Item -ItemType Directory -Force -Path (Join-Path $moduleDir 'deps') | Out-Null
    foreach ($file in 'Moltar.psd1', 'Moltar.format.ps1xml', 'LICENSE') {
        Copy-Item (Join-Path $root $file) $moduleDir
    }
    # Release notes: this version's section of CHANGELOG.md, so the gallery page says what changed.
    $changelog = Get-Content -Raw (Join-Path $root 'CHANGELOG.md')
    if ($changelog -notmatch "(?ms)^## $([regex]::Escape($version))\b[^\n]*\n(?<notes>.*?)(?=^## |\z)") {
        throw "CHANGELOG.md has no section for $version."
    }
    # PowerShell's own escaping: it also doubles the curly single quotes, which end a single-quoted string too.
    $notes = [System.Management.Automation.Language.CodeGeneration]::EscapeSingleQuotedStringContent($Matches['notes'].Trim())
    $builtManifest = Join-Path $moduleDir 'Moltar.psd1'
    (Get-Content -Raw $builtManifest).Replace("ReleaseNotes = 'See CHANGELOG.md'", "ReleaseNotes = '$notes'") | Set-Content -NoNewline $builtManifest
    # The cmdlets and the model load in the default context; everything else from deps/.
    foreach ($file in 'Moltar.Cmdlets.dll', 'Moltar.Model.dll') {
        Copy-Item (Join-Path $publish "module/$file") $moduleDir
    }
    Get-ChildItem (Join-Path $publish 'deps') -File |
        Where-Object { $_.Name -notin 'Moltar.Model.dll', 'Moltar.Model.pdb' -and $_.Extension -in '.dll', '.json' } |
        Copy-Item -Destination (Join-Path $moduleDir 'deps')
    # ReadyToRun images of what a fan-out runs first, for pwsh 7.6 (.NET 10) on Linux x64; the module's load
    # context prefers them there and uses the portable IL in deps/ everywhere else.
    Invoke-Native dotnet (@('publish', (Join-Path $root 'build/ReadyToRun/Moltar.ReadyToRun.csproj'), '-o', (Join-Path $publish 'r2r')) + $common)
    $r2rDir = Join-Path $moduleDir 'deps/r2r-net10-linux-x64'
    New-Item -ItemType Directory -Force -Path $r2rDir | Out-Null
    foreach ($file in 'Moltar.Engine.dll', 'Renci.SshNet.dll', 'BouncyCastle.Cryptography.dll', 'AWSSDK.Core.dll') {
        Copy-Item (Join-Path $publish "r2r/$file") $r2rDir
    }

    # Help: MAML generated from src/Moltar/Help/*.md and the cmdlets' metadata, in a child pwsh so this
    # process never loads the module. Incomplete help is a warning here and a failing test in Test.
    $helpDir = Join-Path $moduleDir 'en-US'
    New-Item -ItemType Directory -Force -Path $helpDir | Out-Null
    Copy-Item (Join-Path $root 'src/Moltar/Help/about_Moltar.help.txt') $helpDir
    & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -NonInteractive -File (Join-Path $root 'build/New-MamlHelp.ps1') `
        -ModulePath (Join-Path $moduleDir 'Moltar.psd1') -HelpSource (Join-Path $root 'src/Moltar/Help') `
        -OutputPath (Join-Path $helpDir 'Moltar.Cmdlets.dll-Help.xml') -AllowIncomplete
    if ($LASTEXITCODE -ne 0) { throw 'Generating help failed.' }

    $shipped = Get-ChildItem $moduleDir -Recurse -File
    if ($shipped.Name -contains 'System.Management.Automation.dll') { throw 'The build ships System.Management.Automation.dll; it must not.' }
    $null = Test-ModuleManifest (Join-Path $moduleDir 'Moltar.psd1')
    Write-Step "Built $(Join-Path $moduleDir 'Moltar.psd1')"
}

function Build-Sandbox {
    Write-Step 'Building the sandbox (local EC2 endpoint + sshd fleet)'
    Invoke-Native dotnet @('build', (Join-Path $root 'Tests/Sandbox/Moltar.Sandbox/Moltar.Sandbox.csproj'), '-c', 'Release', '--nologo', '-v:q')
    Join-Path $root 'Tests/Sandbox/Moltar.Sandbox/bin/Release/net10.0/Moltar.Sandbox.dll'
}

function Build-TestStandIn {
    # Posh-SSH's older SSH.NET, emulated: an assembly named Renci.SshNet, version 2020.0.1.0 (Tests/Isolation.Tests.ps1).
    Write-Step 'Building the SSH.NET stand-in for the coexistence tests'
    $project = Join-Path $root 'Tests/Coexistence/Renci.SshNet.StandIn/Renci.SshNet.StandIn.csproj'
    Invoke-Native dotnet @('build', $project, '-c', 'Release', '--nologo', '-v:q') -Quiet
    Join-Path $root 'Tests/Coexistence/Renci.SshNet.StandIn/bin/Release/netstandard2.0/Renci.SshNet.dll'
}

function Get-MissingPrerequisite {
    $needed = [ordered]@{
        sshd               = @{ Path = '/usr/sbin/sshd'; Package = 'openssh-server' }
        ssh                = @{ Path = 'ssh'; Package = 'openssh-client' }
        'ssh-keygen'       = @{ Path = 'ssh-keygen'; Package = 'openssh-client' }
        'ssh-agent'        = @{ Path = 'ssh-agent'; Package = 'openssh-client' }
        unshare            = @{ Path = 'unshare'; Package = 'util-linux' }
        sudo               = @{ Path = 'sudo'; Package = 'sudo' }
        'dpkg-scanpackages' = @{ Path = 'dpkg-scanpackages'; Package = 'dpkg-dev' }
        tmux               = @{ Path = 'tmux'; Package = 'tmux' }
        ip                 = @{ Path = 'ip'; Package = 'iproute2' }
        # Enter-MoltarInstance's jump host test: the bastion's sshd runs per connection inside a network namespace.
        'systemd-socket-activate' = @{ Path = 'systemd-socket-activate'; Package = 'systemd' }
        # The SSH engine's tests against a non-OpenSSH server.
        dropbear           = @{ Path = '/usr/sbin/dropbear'; Package = 'dropbear-bin' }
        # Security tests: a host user whose login shell is not POSIX-like (copies must not rely on its quoting).
        fish               = @{ Path = '/usr/bin/fish'; Package = 'fish' }
    }
    foreach ($name in $needed.Keys) {
        if (-not (Get-Command $needed[$name].Path -ErrorAction Ignore)) {
            [pscustomobject]@{ Command = $name; Package = $needed[$name].Package }
        }
    }
}

function Initialize-TestPrerequisite {
    if (-not $IsLinux) {
        return 'the sandbox fleet needs Linux (sshd in mount namespaces)'
    }
    $isRoot = (id -u) -eq '0'
    $missing = @(Get-MissingPrerequisite)
    if ($missing.Count -gt 0 -and $isRoot -and (Get-Command apt-get -ErrorAction Ignore)) {
        $packages = $missing.Package | Sort-Object -Unique
        Write-Step "Installing test prerequisites with apt-get: $($packages -join ' ')"
        $env:DEBIAN_FRONTEND = 'noninteractive'
        Invoke-Native apt-get @('update', '-qq') -Quiet
        Invoke-Native apt-get (@('install', '-y', '-qq', '--no-install-recommends') + $packages) -Quiet
        $missing = @(Get-MissingPrerequisite)
    }
    $reasons = @()
    if ($missing.Count -gt 0) {
        $reasons += "missing $($missing.Command -join ', ') (apt-get install $(($missing.Package | Sort-Object -Unique) -join ' '))"
    }
    if (-not $isRoot) {
        $reasons += 'not root (hosts with their own root filesystem need mount namespaces)'
    }
    if ($reasons.Count -eq 0) { return $null }
    $reason = $reasons -join '; '
    if ($isCI) { throw "CI=true and the sandbox cannot run: $reason" }
    Write-Warning "Sandbox tests will be skipped: $reason"
    $reason
}

function Get-NuGetPackageRoot {
    if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path ([Environment]::GetFolderPath('UserProfile')) '.nuget/packages' }
}

function Get-PesterModulePath {
    Invoke-Native dotnet @('restore', (Join-Path $root 'build/tools.proj'), '--nologo', '-v:q') -Quiet
    $packages = Get-NuGetPackageRoot
    $path = Join-Path $packages 'pester/5.9.1/tools/Pester.psd1'
    if (-not (Test-Path $path)) { throw "Pester was restored but $path is missing." }
    $path
}

function Get-TestIsolation {
    <# How the test runners are started. As root on Linux they run in a network namespace of their own: every sandbox
       host, sshd and listener of this run lives on a loopback no other run shares (two suites on one machine never
       meet on an address or a port), and the veth pairs and routes the jump-host tests make never touch the
       machine's own network. Elsewhere they run as they are. Nothing in a test run needs the outside network:
       everything is built and restored before. #>
    if ($IsLinux -and (id -u) -eq '0' -and (Get-Command unshare -ErrorAction Ignore) -and (Get-Command ip -ErrorAction Ignore)) {
        return @('unshare', '--net', '--', '/bin/sh', '-c', 'ip link set lo up && exec "$0" "$@"')
    }
    @()
}

function Invoke-TestRunner {
    param([Parameter(Mandatory)] [AllowEmptyString()] [string[]] $Command)
    $line = @(Get-TestIsolation) + $Command
    & $line[0] @($line | Select-Object -Skip 1)
}

# The Pester files of the second lane of a split run (Invoke-Test); the first lane runs xunit, then every other file
# (the clean-up checks and Reliability, whose 180-host sandbox and soak are the longest). Measured to end together.
$secondLanePester = @(
    'Invoke-MoltarCommand.Tests.ps1', 'Copy-MoltarFile.Tests.ps1', 'Invoke-MoltarDeploy.Tests.ps1', 'Enter-MoltarInstance.Tests.ps1',
    'Get-MoltarInstance.Tests.ps1', 'Security.Tests.ps1', 'Unattended.Tests.ps1', 'RoleCredentials.Tests.ps1', 'AwsToolsInput.Tests.ps1',
    'Isolation.Tests.ps1', 'Help.Tests.ps1', 'Module.Tests.ps1', 'Package.Tests.ps1'
)

function Start-TestLane {
    <# Starts a test runner in the background (isolated as Invoke-TestRunner's), its output into the lane's log and
       its standard input at its end. #>
    param([Parameter(Mandatory)] [hashtable] $Lane)
    $line = @(Get-TestIsolation) + $Lane.Command
    $start = [Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($argument in @('-c', 'exec "$@" < /dev/null > "$MOLTAR_LANE_LOG" 2>&1', 'sh') + $line) { $start.ArgumentList.Add($argument) }
    $start.Environment['MOLTAR_LANE_LOG'] = $Lane.Log
    $start.UseShellExecute = $false
    [Diagnostics.Process]::Start($start)
}

function Add-PesterCount {
    <# Adds a Pester runner's counts (its summary file) to the run's; a runner that left none, or failed without a
       failed test, counts as one failure. #>
    param([hashtable] $Total, [string] $SummaryPath, [int] $ExitCode)
    $count = if (Test-Path $SummaryPath) { Get-Content -Raw $SummaryPath | ConvertFrom-Json } else { $null }
    if ($count -and $count.Passed -is [long] -and $count.Failed -is [long] -and $count.Skipped -is [long]) {
        $Total.Passed += $count.Passed; $Total.Failed += $count.Failed; $Total.Skipped += $count.Skipped
        if ($ExitCode -ne 0 -and $count.Failed -eq 0) { $Total.Failed += 1; Write-Warning "Pester did not run cleanly (exit $ExitCode)." }
    }
    else {
        Write-Warning "Pester did not finish or left no counts (exit $ExitCode, $SummaryPath)."
        $Total.Failed += 1
    }
}

function Read-TrxCount([string] $directory) {
    $passed = 0; $failed = 0; $skipped = 0
    foreach ($trx in Get-ChildItem $directory -Filter *.trx -Recurse -ErrorAction Ignore) {
        [xml] $doc = Get-Content -Raw $trx.FullName
        $counters = $doc.TestRun.ResultSummary.Counters
        $passed += [int] $counters.passed
        $failed += [int] $counters.failed + [int] $counters.error + [int] $counters.timeout + [int] $counters.aborted
        $skipped += [int] $counters.notExecuted
    }
    @{ Passed = $passed; Failed = $failed; Skipped = $skipped }
}

function Invoke-Test {
    Invoke-Build
    $sandboxDll = Build-Sandbox
    $skipReason = Initialize-TestPrerequisite
    if (Get-TestIsolation) { Write-Step 'Test runners run in a network namespace of their own (loopback shared with no other run)' }
    $results = Join-Path $out 'test-results'
    Remove-Item -Recurse -Force $results -ErrorAction Ignore
    New-Item -ItemType Directory -Force -Path $results | Out-Null

    $env:MOLTAR_TEST_MODULE = Join-Path $moduleDir 'Moltar.psd1'
    $env:MOLTAR_TEST_SANDBOX = $sandboxDll
    if (-not $SkipPester) { $env:MOLTAR_TEST_SSHNET_STANDIN = Build-TestStandIn }
    $env:MOLTAR_TEST_SKIP_REASON = $skipReason
    $total = @{ Passed = 0; Failed = 0; Skipped = 0 }
    # A full run on 2 cores is split in two lanes that run at the same time, each in a network namespace of its own
    # (so their sandboxes cannot meet on an address): much of a test's time is waiting on hosts, timeouts and child
    # processes. Without that isolation, or with -TestFilter, one lane as before.
    $split = -not $SkipPester -and -not $TestFilter -and [bool] (Get-TestIsolation)
    $secondLane = $null

    if (-not $SkipPester) {
        $pester = Get-PesterModulePath
        Write-Step "Pester $((Split-Path (Split-Path $pester)) | Split-Path -Leaf) against $env:MOLTAR_TEST_MODULE"
        $runner = Join-Path $root 'Tests/Invoke-PesterRun.ps1'
        $pesterRun = @($pwsh.FilePath) + @($pwsh.Arguments) + @('-NoProfile', '-NonInteractive', '-File', $runner, '-PesterPath', $pester, '-TestFilter', "$TestFilter")
        $lanes = @(@{ Name = 'pester'; Arguments = @() })
        if ($split) {
            $files = $secondLanePester -join ','
            $lanes = @(@{ Name = 'pester-1'; Arguments = @('-Exclude', $files) },
                       @{ Name = 'pester-2'; Arguments = @('-Include', $files); Log = Join-Path $results 'pester-2.log' })
        }
        foreach ($lane in $lanes) {
            $lane.Summary = Join-Path $results "$($lane.Name)-summary.json"
            $lane.Command = $pesterRun + @('-SummaryPath', $lane.Summary, '-ResultPath', (Join-Path $results "$($lane.Name).xml")) + $lane.Arguments
        }
        if ($split) {
            $secondLane = $lanes[1]
            $secondLane.Process = Start-TestLane $secondLane
            Write-Step "Pester, second lane: $($secondLanePester.Count) files run beside what follows, in a network namespace of their own (their output comes at the end)"
        }
    }

    try {
        if (-not $SkipUnit) {
            foreach ($project in 'Tests/Moltar.Engine.Tests/Moltar.Engine.Tests.csproj', 'Tests/Sandbox/Moltar.Sandbox.Tests/Moltar.Sandbox.Tests.csproj') {
                $name = [IO.Path]::GetFileNameWithoutExtension($project)
                Write-Step "xunit: $name"
                Invoke-Native dotnet @('build', (Join-Path $root $project), '-c', $Configuration, '--nologo', '-v:q') -Quiet
                Invoke-TestRunner @('dotnet', 'test', (Join-Path $root $project), '-c', $Configuration, '--no-build', '--nologo', '-v:q',
                    '--logger', "trx;LogFileName=$name.trx", '--logger', 'console;verbosity=minimal', '--results-directory', $results)
                $count = Read-TrxCount (Join-Path $results "$name.trx")
                if ($LASTEXITCODE -ne 0 -and $count.Failed -eq 0) { $count.Failed = 1; Write-Warning "$name did not run cleanly (exit $LASTEXITCODE)." }
                foreach ($key in 'Passed', 'Failed', 'Skipped') { $total[$key] += $count[$key] }
            }
        }

        if (-not $SkipPester) {
            Invoke-TestRunner $lanes[0].Command
            Add-PesterCount $total $lanes[0].Summary $LASTEXITCODE
            if ($secondLane) {
                $secondLane.Process.WaitForExit()
                Write-Step "Pester, second lane ($($secondLanePester -join ', ')):"
                Get-Content -LiteralPath $secondLane.Log | Write-Host
                Add-PesterCount $total $secondLane.Summary $secondLane.Process.ExitCode
            }
        }
    }
    finally {
        # Stopped early (Ctrl+C, an error): the second lane does not go on running on its own.
        if ($secondLane -and $secondLane.Process -and -not $secondLane.Process.HasExited) { $secondLane.Process.Kill($true) }
    }

    $line = "Tests: $($total.Passed) passed, $($total.Failed) failed"
    if ($total.Skipped -gt 0) { $line += ", $($total.Skipped) skipped" }
    Write-Output $line
    if ($total.Failed -gt 0) { exit 1 }
    if ($isCI -and $total.Skipped -gt 0) {
        Write-Output 'CI=true: skipped tests count as failures (every prerequisite must be present in CI).'
        exit 1
    }
}

function Invoke-Demo {
    Invoke-Build
    $sandboxDll = Build-Sandbox
    $skipReason = Initialize-TestPrerequisite
    if ($skipReason) { throw "The demo needs the sandbox fleet: $skipReason" }
    & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -File (Join-Path $root 'Tests/Sandbox/Demo.ps1') -ModulePath (Join-Path $moduleDir 'Moltar.psd1') -SandboxPath $sandboxDll
    if ($LASTEXITCODE -ne 0) { throw "The demo failed (exit $LASTEXITCODE)." }
}

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

function Invoke-Bench {
    Invoke-Build
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
    $precompiled = New-PrecompiledPwsh -Destination (Join-Path $out 'bench-pwsh')
    if ($precompiled) { $benchmark.PrecompiledPwshPath = $precompiled }
    & (Join-Path $root 'Tests/Bench/Invoke-Benchmark.ps1') @benchmark
}

function Invoke-Package {
    if (-not $SkipBuild) { Invoke-Build }
    $repository = if ($RepositoryPath) { $RepositoryPath } else { Join-Path $out 'repository' }
    New-Item -ItemType Directory -Force -Path $repository | Out-Null
    Write-Step "Publishing Moltar $version to the local repository $repository"
    # A child pwsh with its own HOME, so registering the file repository never touches the user's PSResourceGet settings.
    $packageHome = Join-Path $out 'package-home'
    Remove-Item -Recurse -Force $packageHome -ErrorAction Ignore
    New-Item -ItemType Directory -Force -Path $packageHome | Out-Null
    $script = @"
`$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name MoltarLocal -Uri '$repository' -Trusted
Publish-PSResource -Path '$moduleDir' -Repository MoltarLocal
"@
    # NuGet inside Publish-PSResource writes NuGet/NuGet.Config where it runs: keep that in the package home too.
    $saved = @{ HOME = $env:HOME; XDG_CONFIG_HOME = $env:XDG_CONFIG_HOME }
    Push-Location $packageHome
    try {
        $env:HOME = $packageHome
        $env:XDG_CONFIG_HOME = Join-Path $packageHome '.config'
        & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -NonInteractive -Command $script
        if ($LASTEXITCODE -ne 0) { throw "Publish-PSResource failed (exit $LASTEXITCODE)." }
    }
    finally {
        Pop-Location
        $env:HOME = $saved.HOME
        $env:XDG_CONFIG_HOME = $saved.XDG_CONFIG_HOME
    }
    $package = Get-ChildItem $repository -Filter "Moltar.$version.nupkg"
    if (-not $package) { throw "Publishing wrote no Moltar.$version.nupkg into $repository." }
    Write-Step "Published $($package.FullName)"
}

switch ($Task) {
    'Build' { Invoke-Build }
    'Test' { Invoke-Test }
    'Demo' { Invoke-Demo }
    'Bench' { Invoke-Bench }
    'Package' { Invoke-Package }
}
