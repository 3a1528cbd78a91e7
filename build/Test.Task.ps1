# Task Test: xunit and Pester against the built module, in two lanes on a full run; ends with "Tests: N passed, N failed".

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

# The Pester files of the second lane of a split run (Invoke-TestTask); the first lane runs xunit, then every other file
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

function Invoke-TestTask {
    Invoke-BuildTask
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
