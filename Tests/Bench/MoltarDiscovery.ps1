# Discovery in one fresh pwsh: Get-MoltarInstance (every page, running instances, as by default) Runs times
# against the endpoint. One JSON line: per-call milliseconds, instances, resident memory after the import and peak.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $Endpoint,
    [Parameter(Mandatory)] [string] $Region,
    [Parameter(Mandatory)] [string] $AccessKey,
    [Parameter(Mandatory)] [string] $SecretKey,
    [int] $Runs = 5
)
$ErrorActionPreference = 'Stop'
function Get-ProcStatus([string] $field) {
    $line = Select-String -Path /proc/self/status -Pattern "^${field}:" | Select-Object -First 1
    if ($line) { [long](($line.Line -split '\s+')[1]) * 1024 } else { 0 }
}
Import-Module $ModulePath
$rssBefore = Get-ProcStatus VmRSS
$times = foreach ($run in 1..$Runs) {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $instances = Get-MoltarInstance -EndpointUrl $Endpoint -Region $Region -AccessKey $AccessKey -SecretKey $SecretKey
    $clock.Elapsed.TotalMilliseconds
    $count = @($instances).Count
    $instances = $null
}
[ordered]@{ milliseconds = @($times); instances = $count; rssBeforeBytes = $rssBefore; peakRssBytes = (Get-ProcStatus VmHWM) } | ConvertTo-Json -Compress
