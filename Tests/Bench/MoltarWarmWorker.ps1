# The warm Moltar of the benchmark: one pwsh that imports the module once, then runs fan-outs on request and
# times each in-process. One JSON request per stdin line ({"HostsFile","Command","ThrottleLimit"}, optional
# "ConnectionIdleSeconds" (default 0: every call makes its own connections, as the peers do) and "Disconnect"
# (close the kept connections instead of running anything)), one JSON answer per stdout line
# ({"Wall","Cpu","Ok","Failed","PeakRssMB","Kept"}; seconds, Cpu = this process's user+sys, PeakRssMB = the
# process's peak resident set during the call, Kept = connections open after it).
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $KeyFile,
    [Parameter(Mandatory)] [string] $KnownHostsPath,
    [string] $User = 'ubuntu'
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue' # stdout is the answer channel
Import-Module $ModulePath
$in = [Console]::In
$out = [Console]::Out
function Get-StatusMB([string] $Field) { [long] ((-split (Get-Content /proc/self/status | Where-Object { $_ -like "${Field}:*" }))[1]) / 1KB }
while ($null -ne ($line = $in.ReadLine())) {
    $request = $line | ConvertFrom-Json
    if ($request.PSObject.Properties['Disconnect'] -and $request.Disconnect) {
        Disconnect-MoltarInstance
        $out.WriteLine((@{ Wall = 0; Cpu = 0; Ok = 0; Failed = 0; PeakRssMB = 0; Kept = @(Get-MoltarConnection).Count } | ConvertTo-Json -Compress))
        $out.Flush()
        continue
    }
    $idle = if ($request.PSObject.Properties['ConnectionIdleSeconds']) { [int] $request.ConnectionIdleSeconds } else { 0 }
    $hosts = [IO.File]::ReadAllLines($request.HostsFile)
    [GC]::Collect()
    try { [IO.File]::WriteAllText('/proc/self/clear_refs', '5') } catch { } # the peak resident set starts again here
    $process = [Diagnostics.Process]::GetCurrentProcess()
    $cpu = $process.TotalProcessorTime
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $results = $hosts | Invoke-MoltarCommand -Command $request.Command -User $User -KeyFile $KeyFile -KnownHostsPath $KnownHostsPath `
        -SshConfigPath none -StrictHostKeyChecking Yes -ThrottleLimit $request.ThrottleLimit -ConnectionIdleSeconds $idle -ErrorAction SilentlyContinue 6>$null
    $clock.Stop()
    $process.Refresh()
    $cpu = $process.TotalProcessorTime - $cpu
    $ok = @($results | Where-Object Succeeded).Count
    $answer = [ordered]@{ Wall = $clock.Elapsed.TotalSeconds; Cpu = $cpu.TotalSeconds; Ok = $ok; Failed = $hosts.Count - $ok
        PeakRssMB = [math]::Round((Get-StatusMB 'VmHWM'), 1); Kept = @(Get-MoltarConnection).Count }
    $results = $null
    $out.WriteLine(($answer | ConvertTo-Json -Compress))
    $out.Flush()
}
