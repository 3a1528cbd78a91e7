# SSM Run Command at scale in one fresh pwsh: one Invoke-MoltarCommand -Transport Ssm over every instance of the
# project (server-side tag targets) through the sandbox's Systems Manager stand-in, whose agents run the command on
# the synthetic instances locally. One JSON line: the call's milliseconds, results, succeeded, resident memory after
# the import and the process's peak.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $Endpoint,
    [Parameter(Mandatory)] [string] $SsmEndpoint,
    [Parameter(Mandatory)] [string] $Region,
    [Parameter(Mandatory)] [string] $AccessKey,
    [Parameter(Mandatory)] [string] $SecretKey,
    [string] $Project = 'demo',
    [int] $ThrottleLimit = 100
)
$ErrorActionPreference = 'Stop'
function Get-ProcStatus([string] $field) {
    $line = Select-String -Path /proc/self/status -Pattern "^${field}:" | Select-Object -First 1
    if ($line) { [long](($line.Line -split '\s+')[1]) * 1024 } else { 0 }
}
$env:AWS_ENDPOINT_URL_SSM = $SsmEndpoint
Import-Module $ModulePath
$rssBefore = Get-ProcStatus VmRSS
$clock = [Diagnostics.Stopwatch]::StartNew()
$results = @(Invoke-MoltarCommand 'true' -Project $Project -Transport Ssm -ThrottleLimit $ThrottleLimit -Quiet -EndpointUrl $Endpoint -Region $Region `
        -AccessKey $AccessKey -SecretKey $SecretKey -ErrorAction SilentlyContinue 6>$null)
$elapsed = $clock.Elapsed.TotalMilliseconds
[ordered]@{ milliseconds = $elapsed; results = $results.Count; succeeded = @($results | Where-Object Succeeded).Count
            rssBeforeBytes = $rssBefore; peakRssBytes = (Get-ProcStatus VmHWM) } | ConvertTo-Json -Compress
