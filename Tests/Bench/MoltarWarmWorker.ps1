# The warm Moltar of the benchmark: one pwsh that imports the module once, then runs fan-outs on request and
# times each in-process. One JSON request per stdin line ({"HostsFile","Command","ThrottleLimit"}), one JSON
# answer per stdout line ({"Wall","Cpu","Ok","Failed"}; seconds, Cpu = this process's user+sys).
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
while ($null -ne ($line = $in.ReadLine())) {
    $request = $line | ConvertFrom-Json
    $hosts = [IO.File]::ReadAllLines($request.HostsFile)
    $process = [Diagnostics.Process]::GetCurrentProcess()
    $cpu = $process.TotalProcessorTime
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $results = $hosts | Invoke-MoltarCommand -Command $request.Command -User $User -KeyFile $KeyFile -KnownHostsPath $KnownHostsPath `
        -SshConfigPath none -StrictHostKeyChecking Yes -ThrottleLimit $request.ThrottleLimit -ErrorAction SilentlyContinue 6>$null
    $clock.Stop()
    $process.Refresh()
    $cpu = $process.TotalProcessorTime - $cpu
    $ok = @($results | Where-Object Succeeded).Count
    $answer = [ordered]@{ Wall = $clock.Elapsed.TotalSeconds; Cpu = $cpu.TotalSeconds; Ok = $ok; Failed = $hosts.Count - $ok }
    $out.WriteLine(($answer | ConvertTo-Json -Compress))
    $out.Flush()
}
