# Runs the Pester suite in its own process and writes the counts for build.ps1 to add up.
param(
    [Parameter(Mandatory)] [string] $PesterPath,
    [string] $TestFilter,
    [Parameter(Mandatory)] [string] $SummaryPath,
    [Parameter(Mandatory)] [string] $ResultPath
)
$ErrorActionPreference = 'Stop'
Import-Module $PesterPath -Force
$configuration = New-PesterConfiguration
$paths = Get-ChildItem $PSScriptRoot -Filter *.Tests.ps1 -File
if ($TestFilter) { $paths = $paths | Where-Object Name -Like "*$TestFilter*" }
$configuration.Run.Path = @($paths.FullName)
$configuration.Run.PassThru = $true
$configuration.Output.Verbosity = 'Detailed'
$configuration.TestResult.Enabled = $true
$configuration.TestResult.OutputPath = $ResultPath
$configuration.TestResult.OutputFormat = 'NUnitXml'
$result = Invoke-Pester -Configuration $configuration
# The AWS scratch folder every test file shared (Set-TestAwsEnvironment), and its parent if nothing else is left there.
if ($awsDirectory = [AppDomain]::CurrentDomain.GetData('MoltarTestAwsDirectory')) {
    Remove-Item -LiteralPath $awsDirectory -Recurse -Force -ErrorAction Ignore
    $parent = Split-Path $awsDirectory
    if ((Test-Path -LiteralPath $parent) -and -not (Get-ChildItem -LiteralPath $parent -Force)) { Remove-Item -LiteralPath $parent -Force }
}
# A block or file that failed to run (BeforeAll threw) counts as a failure, never as silence.
@{
    Passed  = $result.PassedCount
    Failed  = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
    Skipped = $result.SkippedCount
} | ConvertTo-Json | Set-Content -Path $SummaryPath
