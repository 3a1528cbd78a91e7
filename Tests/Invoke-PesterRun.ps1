# Runs the Pester suite in its own process and writes the counts for build.ps1 to add up.
param(
    [Parameter(Mandatory)] [string] $PesterPath,
    [string] $TestFilter,
    # A lane of a run split in two (build.ps1): only these files, or every file but these (names, comma-separated).
    [string] $Include,
    [string] $Exclude,
    [Parameter(Mandatory)] [string] $SummaryPath,
    [Parameter(Mandatory)] [string] $ResultPath
)
$ErrorActionPreference = 'Stop'
Import-Module $PesterPath -Force
$configuration = New-PesterConfiguration
$paths = Get-ChildItem $PSScriptRoot -Filter *.Tests.ps1 -File
if ($TestFilter) { $paths = $paths | Where-Object Name -Like "*$TestFilter*" }
if ($Include) { $paths = $paths | Where-Object Name -In $Include.Split(',') }
if ($Exclude) { $paths = $paths | Where-Object Name -NotIn $Exclude.Split(',') }
$configuration.Run.Path = @($paths.FullName)
$configuration.Run.PassThru = $true
$configuration.Output.Verbosity = 'Detailed'
# The NUnit report is written below, not by Invoke-Pester: its writer throws on a control character in a failure
# message (an ANSI colour from a child process), and inside Invoke-Pester that lost the whole run's result.
$configuration.TestResult.Enabled = $false
$result = $null
try {
    $result = Invoke-Pester -Configuration $configuration
}
catch {
    Write-Host "Invoke-Pester failed: $_" -ForegroundColor Red
}
if ($result) {
    try { $result | Export-NUnitReport -Path $ResultPath }
    catch {
        Remove-Item -LiteralPath $ResultPath -ErrorAction Ignore # half a report would read as a short run
        Write-Warning "The NUnit report could not be written ($ResultPath): $($_.Exception.Message)"
    }
}
# The AWS scratch folder every test file shared (Set-TestAwsEnvironment), and its parent if nothing else is left there.
if ($awsDirectory = [AppDomain]::CurrentDomain.GetData('MoltarTestAwsDirectory')) {
    Remove-Item -LiteralPath $awsDirectory -Recurse -Force -ErrorAction Ignore
    $parent = Split-Path $awsDirectory
    if ((Test-Path -LiteralPath $parent) -and -not (Get-ChildItem -LiteralPath $parent -Force)) { Remove-Item -LiteralPath $parent -Force }
}
# A block or file that failed to run (BeforeAll threw) counts as a failure, never as silence; so does a run that
# returned no result at all.
if (-not $result) {
    @{ Passed = 0; Failed = 1; Skipped = 0 } | ConvertTo-Json | Set-Content -Path $SummaryPath
    exit 1
}
@{
    Passed  = [int] $result.PassedCount
    Failed  = [int] $result.FailedCount + [int] $result.FailedBlocksCount + [int] $result.FailedContainersCount
    Skipped = [int] $result.SkippedCount
} | ConvertTo-Json | Set-Content -Path $SummaryPath
