# The benchmark's responsiveness rows: how fast Moltar notices what the tests check only by behaviour (the tests have
# no speed limits, issue 15). One pwsh, module imported, one untimed round first; each figure measured -Runs times
# in-process. Writes one JSON line: seconds per run for each figure.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $HostsFile,
    [Parameter(Mandatory)] [string] $KeyFile,
    [Parameter(Mandatory)] [string] $KnownHostsPath,
    [string] $User = 'ubuntu',
    [int] $Runs = 5
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue' # stdout is the answer channel
Import-Module $ModulePath
$ssh = @{ User = $User; KeyFile = $KeyFile; KnownHostsPath = $KnownHostsPath; SshConfigPath = 'none'; StrictHostKeyChecking = 'Yes' }
$addresses = @([IO.File]::ReadAllLines($HostsFile) | Where-Object { $_ })
if ($addresses.Count -lt 2) { throw 'The responsiveness rows need at least 2 sandbox hosts (one of them the jump host).' }
# The first host is the jump host for up to 20 of the others (the fan-out the test Twenty_targets_behind_one_jump_host runs).
$bastion = $addresses[0]
$targets = @($addresses | Select-Object -Skip 1 -First 20)

function Measure-Seconds([scriptblock] $Script) {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $null = & $Script
    $clock.Elapsed.TotalSeconds
}

function Invoke-Checked([string] $What, [scriptblock] $Script, [scriptblock] $IsRight) {
    $results = @(& $Script)
    if (-not (& $IsRight $results)) { throw "${What}: unexpected results: $(($results | ForEach-Object { "$($_.Name) $($_.ErrorId) $($_.Error)" }) -join '; ')" }
}

# A port on 127.0.0.1 where nothing listens (refused at once), and one that accepts TCP and never speaks (silent).
$probe = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
$probe.Start(); $refusedPort = $probe.LocalEndpoint.Port; $probe.Stop()
$silent = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
$silent.Start(128)
$silentPort = $silent.LocalEndpoint.Port

$jump = { $targets | Invoke-MoltarCommand 'true' @ssh -JumpHost "$User@$bastion" -ThrottleLimit 32 -Quiet -ErrorAction SilentlyContinue }
$direct = { $targets | Invoke-MoltarCommand 'true' @ssh -ThrottleLimit 32 -Quiet -ErrorAction SilentlyContinue }
$refused = { '127.0.0.1' | Invoke-MoltarCommand 'true' @ssh -Port $refusedPort -ConnectTimeoutSeconds 30 -Quiet -ErrorAction SilentlyContinue }
$silentRun = { '127.0.0.1' | Invoke-MoltarCommand 'true' @ssh -Port $silentPort -ConnectTimeoutSeconds 2 -Quiet -ErrorAction SilentlyContinue }
$timeout = { $targets[0] | Invoke-MoltarCommand 'sleep 60' @ssh -TimeoutSeconds 2 -Quiet -ErrorAction SilentlyContinue }
$allOk = { param($r) $r.Count -eq $targets.Count -and @($r | Where-Object Succeeded).Count -eq $targets.Count }

# Ctrl+C: the pipeline stopped while every target runs a long command; the time Stop takes to return.
$runspace = [runspacefactory]::CreateRunspace()
$runspace.Open()
$null = ([powershell]::Create($runspace)).AddCommand('Import-Module').AddParameter('Name', $ModulePath).Invoke()
function Measure-Stop {
    $ps = [powershell]::Create($runspace)
    $null = $ps.AddScript({ param($targets, $ssh) $targets | Invoke-MoltarCommand 'echo started; sleep 60' @ssh -ThrottleLimit 32 }).AddArgument($targets).AddArgument($ssh)
    try {
        $async = $ps.BeginInvoke()
        $deadline = [DateTime]::UtcNow.AddMinutes(3)
        while ($ps.Streams.Information.Count -lt $targets.Count) {
            if ([DateTime]::UtcNow -gt $deadline -or $async.IsCompleted) { throw "Not every target started the command: $(@($ps.Streams.Error) -join '; ')" }
            Start-Sleep -Milliseconds 20
        }
        Measure-Seconds { $ps.Stop() }
    }
    finally { $ps.Dispose() }
}

# One untimed round: the JIT and the first connections are not what these rows measure.
Invoke-Checked 'direct' $direct $allOk
Invoke-Checked 'jump host' $jump $allOk
$null = & $refused; $null = & $silentRun; $null = & $timeout; $null = Measure-Stop

$report = [ordered]@{ Targets = $targets.Count; JumpHost = @(); Direct = @(); Refused = @(); Silent = @(); SilentTimeout = 2; CommandTimeout = @(); CommandTimeoutSeconds = 2; Stop = @() }
foreach ($run in 1..$Runs) {
    $report.Direct += Measure-Seconds { Invoke-Checked 'direct' $direct $allOk }
    $report.JumpHost += Measure-Seconds { Invoke-Checked 'jump host' $jump $allOk }
    $report.Refused += Measure-Seconds { Invoke-Checked 'refused' $refused { param($r) $r.Count -eq 1 -and $r[0].ErrorId -eq 'ConnectFailed' } }
    $report.Silent += Measure-Seconds { Invoke-Checked 'silent' $silentRun { param($r) $r.Count -eq 1 -and $r[0].ErrorId -eq 'Timeout' } }
    $report.CommandTimeout += Measure-Seconds { Invoke-Checked 'command timeout' $timeout { param($r) $r.Count -eq 1 -and $r[0].ErrorId -eq 'Timeout' } }
    $report.Stop += Measure-Stop
}
$silent.Stop()
$runspace.Dispose()
[Console]::Out.WriteLine(($report | ConvertTo-Json -Compress))
