#Requires -Version 7.4
<#
.SYNOPSIS
    The side-by-side benchmark behind `build.ps1 -Task Bench`: Moltar against parallel-ssh, Ansible ad-hoc and a
    bash loop of ssh, on the same sandbox hosts in one run; module import; discovery of many instances; and how fast
    Moltar notices what its tests check only by behaviour (a fan-out through one jump host, a refused and a silent
    host, a command past its timeout, Ctrl+C): the tests have no speed limits, these targets do.

.DESCRIPTION
    Builds nothing: build.ps1 builds the module, the sandbox and the raw SDK paginator and passes their paths.
    Peers that are missing are installed with apt-get when root (pssh, ansible-core, librsvg2-bin for the PNG),
    otherwise left out with a note. Every client run happens in its own process (the warm Moltar excepted, which
    is timed inside one long-lived pwsh) and, where cgroups allow, in its own cgroup, so its CPU is the whole
    process tree's (ssh children, Ansible forks and the ssh ControlPersist masters they leave behind).
    Writes results.json, results.md, chart.svg and chart.png under -OutputDirectory and the README's
    Performance section (between the bench markers).
#>
[CmdletBinding()]
param(
    [string] $ModulePath,
    [string] $SandboxPath,
    [string] $RawPaginatorPath,
    # pwsh.dll of a copy of this pwsh whose assemblies are ReadyToRun-compiled, as the official packages ship
    # them (build.ps1 makes it): adds the 'moltar-cold-precompiled' row.
    [string] $PrecompiledPwshPath,
    # Fleet sizes: one sandbox of the largest; smaller N use its first hosts. (`pwsh -File` cannot pass a list:
    # call the script with -Command, or use build.ps1 -Task Bench -Hosts 10,50,100.)
    [ValidateRange(1, 250)] [int[]] $Hosts = @(10, 50, 100),
    [ValidateRange(1, 100)] [int] $Runs = 5,
    [ValidateRange(0, 1000000)] [int] $Synthetic = 10000,
    # Warm connections (issue 19): a repeat call over this many hosts with Moltar's kept connections, against
    # OpenSSH with a warm ControlMaster per host; 0 leaves it out. Uses the main fleet's first hosts.
    [ValidateRange(0, 250)] [int] $PooledHosts = 100,
    # One call over this many sandbox hosts (a fleet of its own): Moltar -ThrottleLimit N against parallel-ssh -p 200,
    # with the sshd side's CPU floor measured in the same run; 0 leaves it out.
    [ValidateRange(0, 1000)] [int] $LargeFleet = 1000,
    [Parameter(Mandatory)] [string] $OutputDirectory,
    [string] $ReadmePath,
    # Only these tools (names as in results.json: moltar-warm, moltar-cold, moltar-cold-precompiled, pssh, pssh-curve25519, ansible-raw,
    # ansible-command, ssh-loop); all when empty. Import, floor and discovery always run unless skipped.
    [string[]] $Tool,
    [switch] $SkipDiscovery,
    # Instances of the SSM Run Command row (one Invoke-MoltarCommand -Transport Ssm through the stand-in); 0 leaves it out.
    [ValidateRange(0, 100000)] [int] $SsmInstances = 1000,
    # Measure only the SSM Run Command row (no sshd fleet, no peers): writes results-ssm.json and results-ssm.md and
    # prints the row; the README's generated tables are left as they are (they need every row).
    [switch] $OnlySsm,
    [switch] $SkipImport,
    # Leaves out the responsiveness targets (a jump host, a refused and a silent host, a timeout, Ctrl+C).
    [switch] $SkipResponsiveness,
    [switch] $NoInstall,
    # Measure nothing: write the tables, chart and README again from an earlier results.json.
    [string] $ResultsPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module (Join-Path $PSScriptRoot '../Sandbox/Sandbox.psm1') -Force

$Hosts = @($Hosts | Sort-Object -Unique)
$OutputDirectory = [IO.Path]::GetFullPath($OutputDirectory)
if (-not $ResultsPath) {
    foreach ($name in 'ModulePath', 'SandboxPath', 'RawPaginatorPath') {
        $value = Get-Variable $name -ValueOnly
        if (-not $value) { throw "-$name is required (unless -ResultsPath re-renders an earlier run)." }
        Set-Variable $name (Resolve-Path -LiteralPath $value).ProviderPath
    }
}
$maxHosts = [int]($Hosts | Measure-Object -Maximum).Maximum
$cores = [Environment]::ProcessorCount
$pwshPath = [Environment]::ProcessPath
$pwshPrefix = if ([IO.Path]::GetFileNameWithoutExtension($pwshPath) -eq 'dotnet') { @([Reflection.Assembly]::GetEntryAssembly().Location) } else { @() }
$notes = [Collections.Generic.List[string]]::new()
$records = [Collections.Generic.List[object]]::new()

function Write-Step([string] $message) { Write-Host "==> $message" -ForegroundColor Cyan }

function Get-LoadAverage { (Get-Content /proc/loadavg -Raw).Split(' ')[0..2] -join ' ' }

#region peers
function Install-Peer {
    $wanted = [ordered]@{
        'parallel-ssh' = 'pssh'
        'ansible'      = 'ansible-core'
        'rsvg-convert' = 'librsvg2-bin'
        'ssh'          = 'openssh-client'
    }
    $missing = @($wanted.Keys | Where-Object { -not (Get-Command $_ -CommandType Application -ErrorAction Ignore) })
    $isRoot = (id -u) -eq '0'
    if ($missing.Count -gt 0 -and -not $NoInstall -and $isRoot -and (Get-Command apt-get -ErrorAction Ignore)) {
        $packages = @($missing | ForEach-Object { $wanted[$_] } | Sort-Object -Unique)
        Write-Step "Installing benchmark peers with apt-get: $($packages -join ' ')"
        $env:DEBIAN_FRONTEND = 'noninteractive'
        & apt-get update -qq 2>&1 | Out-Null
        & apt-get install -y -qq --no-install-recommends @packages 2>&1 | Out-Null
        if ($LASTEXITCODE -ne 0) { Write-Warning "apt-get install $($packages -join ' ') failed (exit $LASTEXITCODE)." }
        $missing = @($wanted.Keys | Where-Object { -not (Get-Command $_ -CommandType Application -ErrorAction Ignore) })
    }
    foreach ($command in $missing) {
        $why = if ($NoInstall) { '-NoInstall' } elseif (-not $isRoot) { 'not root' } else { 'apt-get could not install it' }
        $notes.Add("``$command`` is missing ($why; ``apt-get install $($wanted[$command])``): its rows are left out.")
    }
    if (-not (Get-Command ssh -CommandType Application -ErrorAction Ignore)) { throw 'The benchmark needs the OpenSSH client (ssh).' }
}

function Get-ToolVersion {
    $versions = [ordered]@{}
    $versions.OpenSSH = ((& ssh -V 2>&1) -join ' ').Trim()
    if (Get-Command parallel-ssh -ErrorAction Ignore) { $versions.pssh = ((& parallel-ssh --version 2>&1) -join ' ').Trim() }
    if (Get-Command ansible -ErrorAction Ignore) { $versions.Ansible = ((& ansible --version 2>$null | Select-Object -First 1) -join '').Trim() }
    $versions.PowerShell = "$($PSVersionTable.PSVersion) on .NET $([Environment]::Version)"
    $versions
}

function Get-Machine {
    $cpu = (Select-String -Path /proc/cpuinfo -Pattern '^model name\s*:\s*(.+)$' | Select-Object -First 1).Matches[0].Groups[1].Value.Trim()
    $memKb = [long]((Select-String -Path /proc/meminfo -Pattern '^MemTotal:\s+(\d+)').Matches[0].Groups[1].Value)
    $os = (Select-String -Path /etc/os-release -Pattern '^PRETTY_NAME="?([^"]+)"?' -ErrorAction Ignore | Select-Object -First 1)
    [ordered]@{
        Cores    = $cores
        Cpu      = $cpu
        MemoryGB = [math]::Round($memKb / 1MB, 1)
        Os       = if ($os) { $os.Matches[0].Groups[1].Value } else { [Runtime.InteropServices.RuntimeInformation]::OSDescription }
        Kernel   = (& uname -r).Trim()
    }
}
#endregion

#region measuring one process tree
# CPU of a whole process tree: a cgroup of its own (cgroup v1 cpuacct or v2 cpu.stat) when root, else /usr/bin/time
# (which sees only children that were waited for).
function Get-CpuAccounting {
    $isRoot = (id -u) -eq '0'
    if ($isRoot) {
        foreach ($line in Get-Content /proc/mounts) {
            $fields = $line.Split(' ')
            if ($fields[2] -eq 'cgroup' -and $fields[3].Split(',') -contains 'cpuacct') {
                $probe = Join-Path $fields[1] "moltar-bench-probe-$PID"
                try { [void][IO.Directory]::CreateDirectory($probe); [IO.Directory]::Delete($probe); return @{ Kind = 'cgroup1'; Root = $fields[1] } } catch { }
            }
        }
        foreach ($line in Get-Content /proc/mounts) {
            $fields = $line.Split(' ')
            if ($fields[2] -eq 'cgroup2') {
                $probe = Join-Path $fields[1] "moltar-bench-probe-$PID"
                try {
                    [void][IO.Directory]::CreateDirectory($probe)
                    $ok = Test-Path (Join-Path $probe 'cpu.stat')
                    [IO.Directory]::Delete($probe)
                    if ($ok) { return @{ Kind = 'cgroup2'; Root = $fields[1] } }
                }
                catch { }
            }
        }
    }
    if (Test-Path /usr/bin/time) { return @{ Kind = 'time'; Root = $null } }
    @{ Kind = 'none'; Root = $null }
}

$script:groupSerial = 0
function Invoke-Measured {
    <# Runs one client process (tree) to the end; returns Wall and Cpu (seconds), ExitCode, and its stdout/stderr files. #>
    param(
        [Parameter(Mandatory)] [string] $FilePath,
        [string[]] $ArgumentList = @(),
        [hashtable] $Environment = @{},
        [int] $TimeoutSeconds = 900
    )
    $script:groupSerial++
    $stdout = Join-Path $work 'last.out'
    $stderr = Join-Path $work 'last.err'
    $cpuFile = Join-Path $work 'last.cpu'
    Remove-Item $cpuFile -ErrorAction Ignore
    $group = $null
    if ($accounting.Kind -like 'cgroup*') {
        $group = Join-Path $accounting.Root "moltar-bench-$PID-$script:groupSerial"
        [void][IO.Directory]::CreateDirectory($group)
    }

    $info = [Diagnostics.ProcessStartInfo]::new('/bin/sh')
    $info.UseShellExecute = $false
    $info.WorkingDirectory = $work
    # sh joins the cgroup, then becomes the client (exec): nothing of the harness is counted, all of the client is.
    $info.ArgumentList.Add('-c')
    $info.ArgumentList.Add('if [ -n "$1" ]; then echo $$ > "$1"; fi; o=$2; e=$3; shift 3; exec "$@" </dev/null >"$o" 2>"$e"')
    $info.ArgumentList.Add('bench')
    $info.ArgumentList.Add($(if ($group) { Join-Path $group 'cgroup.procs' } else { '' }))
    $info.ArgumentList.Add($stdout)
    $info.ArgumentList.Add($stderr)
    if ($accounting.Kind -eq 'time') {
        foreach ($a in '/usr/bin/time', '-f', '%U %S', '-o', $cpuFile) { $info.ArgumentList.Add($a) }
    }
    $info.ArgumentList.Add($FilePath)
    foreach ($a in $ArgumentList) { $info.ArgumentList.Add($a) }
    foreach ($key in $childEnvironment.Keys) {
        if ($null -eq $childEnvironment[$key]) { [void]$info.Environment.Remove($key) } else { $info.Environment[$key] = $childEnvironment[$key] }
    }
    foreach ($key in $Environment.Keys) { $info.Environment[$key] = [string]$Environment[$key] }

    $clock = [Diagnostics.Stopwatch]::StartNew()
    $process = [Diagnostics.Process]::Start($info)
    $exited = $process.WaitForExit($TimeoutSeconds * 1000)
    $clock.Stop()
    if (-not $exited) {
        try { $process.Kill($true) } catch { }
        [void]$process.WaitForExit(10000)
    }
    $exitCode = if ($exited) { $process.ExitCode } else { -1 }
    $process.Dispose()

    $cpu = $null
    if ($group) {
        # What the client left running (Ansible's ControlPersist ssh masters) is ended by PID, and its CPU counted.
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        $signal = 'TERM'
        while ($true) {
            $left = @(Get-Content (Join-Path $group 'cgroup.procs') | Where-Object { $_ })
            if ($left.Count -eq 0) { break }
            if ([DateTime]::UtcNow -gt $deadline) { $signal = 'KILL' }
            & kill "-$signal" @left 2>$null
            Start-Sleep -Milliseconds 100
        }
        if ($accounting.Kind -eq 'cgroup1') {
            $user = [long](Get-Content (Join-Path $group 'cpuacct.usage_user'))
            $sys = [long](Get-Content (Join-Path $group 'cpuacct.usage_sys'))
            $cpu = ($user + $sys) / 1e9
        }
        else {
            $stat = @{}
            foreach ($line in Get-Content (Join-Path $group 'cpu.stat')) { $k, $v = $line.Split(' '); $stat[$k] = [long]$v }
            $cpu = $stat['usage_usec'] / 1e6
        }
        try { [IO.Directory]::Delete($group) } catch { Write-Warning "Could not remove the cgroup ${group}: $($_.Exception.Message)" }
    }
    elseif ($accounting.Kind -eq 'time' -and (Test-Path $cpuFile)) {
        $fields = (Get-Content $cpuFile | Select-Object -Last 1).Split(' ')
        $cpu = [double]$fields[0] + [double]$fields[1]
    }
    [pscustomobject]@{ Wall = $clock.Elapsed.TotalSeconds; Cpu = $cpu; ExitCode = $exitCode; TimedOut = -not $exited; Stdout = $stdout; Stderr = $stderr }
}

function Get-Tail([string] $path, [int] $lines = 5) {
    if (Test-Path $path) { ((Get-Content $path -Tail $lines) -join ' | ') } else { '' }
}
#endregion

#region the tools
function Get-SshOption([switch] $Curve25519) {
    $options = @('-F', '/dev/null', '-i', $sandbox.ClientKeyPath, '-o', "UserKnownHostsFile=$($sandbox.KnownHostsPath)",
        '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes')
    if ($Curve25519) { $options += @('-o', 'KexAlgorithms=curve25519-sha256') }
    $options
}

function Get-ToolDefinition {
    $tools = [ordered]@{}
    $tools['moltar-warm'] = @{ Label = 'Moltar, warm (module imported; in-process)'; Available = $true }
    $tools['moltar-cold'] = @{ Label = 'Moltar, cold (fresh `pwsh`: import + run)'; Available = $true }
    $tools['moltar-cold-precompiled'] = @{ Label = 'Moltar, cold, precompiled pwsh (the same pwsh with its assemblies ReadyToRun-compiled, as the official packages ship it)'; Available = [bool]$PrecompiledPwshPath }
    $hasPssh = [bool](Get-Command parallel-ssh -ErrorAction Ignore)
    $tools['pssh'] = @{ Label = 'parallel-ssh `-p N`'; Available = $hasPssh }
    $tools['pssh-curve25519'] = @{ Label = 'parallel-ssh `-p N`, `KexAlgorithms=curve25519-sha256`'; Available = $hasPssh }
    $hasAnsible = [bool](Get-Command ansible -ErrorAction Ignore)
    $tools['ansible-raw'] = @{ Label = 'Ansible `-m raw -f N`'; Available = $hasAnsible }
    $tools['ansible-command'] = @{ Label = 'Ansible `-m command -f N`'; Available = $hasAnsible }
    $tools['ssh-loop'] = @{ Label = 'bash: `ssh … &` per host, then `wait`'; Available = $true }
    foreach ($name in @($tools.Keys)) {
        if ($Tool -and $Tool -notcontains $name) { $tools.Remove($name) }
    }
    $tools
}

function Invoke-Tool {
    <# One timed run of one tool on the first $N hosts; returns Wall, Cpu (seconds), Ok. #>
    param([string] $Name, [int] $N, [string] $Command, [int] $Run)
    $hostsFile = $hostFiles[$N]
    switch ($Name) {
        'moltar-warm' {
            $request = @{ HostsFile = $hostsFile; Command = $Command; ThrottleLimit = $N } | ConvertTo-Json -Compress
            $answer = Invoke-WarmWorker $request
            return [pscustomobject]@{ Wall = $answer.Wall; Cpu = $answer.Cpu; Ok = $answer.Failed -eq 0; Detail = "$($answer.Failed) failed" }
        }
        { $_ -in 'moltar-cold', 'moltar-cold-precompiled' } {
            $prefix = if ($Name -eq 'moltar-cold-precompiled') { @($PrecompiledPwshPath) } else { @($pwshPrefix) }
            $program = if ($Name -eq 'moltar-cold-precompiled') { (Get-Command dotnet).Source } else { $pwshPath }
            $arguments = @($prefix) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $PSScriptRoot 'MoltarCold.ps1'),
                '-ModulePath', $ModulePath, '-HostsFile', $hostsFile, '-Command', $Command, '-ThrottleLimit', $N,
                '-KeyFile', $sandbox.ClientKeyPath, '-KnownHostsPath', $sandbox.KnownHostsPath, '-User', $sandbox.User)
            $m = Invoke-Measured -FilePath $program -ArgumentList $arguments
        }
        { $_ -in 'pssh', 'pssh-curve25519' } {
            $ssh = Get-SshOption -Curve25519:($Name -eq 'pssh-curve25519')
            $arguments = @('-h', $hostsFile, '-p', $N, '-l', $sandbox.User, '-t', '0', '-i', '-x', ($ssh -join ' '), $Command)
            $m = Invoke-Measured -FilePath (Get-Command parallel-ssh).Source -ArgumentList $arguments
        }
        { $_ -in 'ansible-raw', 'ansible-command' } {
            $module = if ($Name -eq 'ansible-raw') { 'raw' } else { 'command' }
            # A fresh ControlPath folder per run: within a run Ansible shares its connections as it does by default
            # (ControlPersist); no run reuses the previous run's masters (they are ended and counted after each run).
            $controlDir = Join-Path $work "cp$script:groupSerial"
            New-Item -ItemType Directory -Force $controlDir | Out-Null
            $arguments = @('all', '-i', $inventories[$N], '-u', $sandbox.User, '--private-key', $sandbox.ClientKeyPath, '-f', $N, '-m', $module, '-a', $Command)
            $m = Invoke-Measured -FilePath (Get-Command ansible).Source -ArgumentList $arguments -Environment @{ ANSIBLE_SSH_CONTROL_PATH_DIR = $controlDir }
            Remove-Item -Recurse -Force $controlDir -ErrorAction Ignore
        }
        'ssh-loop' {
            $m = Invoke-Measured -FilePath '/bin/bash' -ArgumentList (@($loopScript, $hostsFile, $sandbox.User, $Command) + (Get-SshOption))
        }
    }
    $detail = if ($m.TimedOut) { 'timed out' } elseif ($m.ExitCode -ne 0) { "exit $($m.ExitCode): $(Get-Tail $m.Stderr 3) $(Get-Tail $m.Stdout 3)" } else { '' }
    [pscustomobject]@{ Wall = $m.Wall; Cpu = $m.Cpu; Ok = ($m.ExitCode -eq 0); Detail = $detail }
}

function Start-WarmWorker {
    $info = [Diagnostics.ProcessStartInfo]::new($pwshPath)
    foreach ($a in @($pwshPrefix) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $PSScriptRoot 'MoltarWarmWorker.ps1'),
            '-ModulePath', $ModulePath, '-KeyFile', $sandbox.ClientKeyPath, '-KnownHostsPath', $sandbox.KnownHostsPath, '-User', $sandbox.User)) {
        $info.ArgumentList.Add($a)
    }
    $info.UseShellExecute = $false
    $info.WorkingDirectory = $work
    $info.RedirectStandardInput = $true
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    foreach ($key in $childEnvironment.Keys) {
        if ($null -eq $childEnvironment[$key]) { [void]$info.Environment.Remove($key) } else { $info.Environment[$key] = $childEnvironment[$key] }
    }
    $process = [Diagnostics.Process]::Start($info)
    $script:warmStderr = $process.StandardError.ReadToEndAsync()
    $process
}

function Invoke-WarmWorker([string] $request) {
    $warm.StandardInput.WriteLine($request)
    $warm.StandardInput.Flush()
    $line = $warm.StandardOutput.ReadLine()
    if ($null -eq $line) {
        $warm.WaitForExit(5000) | Out-Null
        throw "The warm Moltar worker ended: $(if ($script:warmStderr.Wait(2000)) { $script:warmStderr.Result })"
    }
    $line | ConvertFrom-Json
}
#endregion

#region warm connections and the large fleet
# CPU the sandbox hosts' sshd spent so far, seconds (each listener with the sessions it reaped: measure after a call).
function Get-ServerCpu($Fleet) { (Get-MoltarSandboxSshd $Fleet | Measure-Object CpuSeconds -Sum).Sum }

function Measure-ServerCpu([scriptblock] $Call, [int] $SettleMilliseconds) {
    <# Runs the call (timed by itself) and adds Server: the sandbox sshd's CPU seconds in it, read before and after,
       outside the call, once the settle time has let the sessions' last processes be reaped. #>
    $before = Get-ServerCpu $sandbox
    $result = & $Call
    Start-Sleep -Milliseconds $SettleMilliseconds
    $result | Add-Member -NotePropertyName Server -NotePropertyValue ((Get-ServerCpu $sandbox) - $before) -PassThru -Force
}

function Invoke-PooledRows([int] $N) {
    # Moltar: the warm worker keeps its connections (idle 600 s); one untimed call opens them, the timed ones reuse them.
    $request = @{ HostsFile = $hostFiles[$N]; Command = 'true'; ThrottleLimit = $N; ConnectionIdleSeconds = 600 } | ConvertTo-Json -Compress
    $first = Invoke-WarmWorker $request
    Write-Host ('    untimed call that opens the connections: {0} s, {1} kept' -f (Format-Seconds $first.Wall), $first.Kept)
    # The sshd side's CPU during each call (its floor: that ÷ cores); 0.5 s lets the commands' shells be reaped.
    $moltar = foreach ($run in 1..$Runs) {
        $a = Measure-ServerCpu { Invoke-WarmWorker $request } -SettleMilliseconds 500
        Write-Host ('    run {0} moltar-pooled   {1,7:0.000} s wall, {2} kept, {3} failed, sshd {4:0.00} s CPU' -f $run, $a.Wall, $a.Kept, $a.Failed, $a.Server)
        $records.Add([pscustomobject]@{ Tool = 'moltar-pooled'; Command = 'true'; Hosts = $N; Run = $run; Wall = $a.Wall; Cpu = $a.Cpu; Ok = $a.Failed -eq 0; Detail = "$($a.Failed) failed" })
        $a
    }
    $null = Invoke-WarmWorker (@{ Disconnect = $true } | ConvertTo-Json -Compress)

    # OpenSSH: a master per host (ControlPersist), started untimed; then each run is one `ssh -o ControlMaster=no` per host, at once.
    $controlDir = Join-Path $work 'cm'
    New-Item -ItemType Directory -Force $controlDir | Out-Null
    $control = @('-o', "ControlPath=$controlDir/%C")
    # Not through Invoke-Measured: it ends whatever a client leaves running (its cgroup), and the masters must stay.
    & /bin/bash $loopScript $hostFiles[$N] $sandbox.User 'true' @(Get-SshOption) @control -o ControlMaster=yes -o ControlPersist=600 -f 2>$null
    $openssh = @()
    try {
        $live = @(Get-Content $hostFiles[$N] | Where-Object { & ssh @(Get-SshOption) @control -O check -l $sandbox.User $_ 2>$null; $LASTEXITCODE -eq 0 }).Count
        Write-Host "    $live of $N ControlMaster masters running"
        if ($live -ne $N) { $notes.Add("The ControlMaster row: only $live of $N masters were running; the others' ssh connected directly."); }
        $openssh = foreach ($run in 1..$Runs) {
            $m = Measure-ServerCpu { Invoke-Measured -FilePath '/bin/bash' -ArgumentList (@($loopScript, $hostFiles[$N], $sandbox.User, 'true') + (Get-SshOption) + $control + @('-o', 'ControlMaster=no')) } -SettleMilliseconds 500
            Write-Host ('    run {0} ssh-controlmaster {1,7:0.000} s wall, sshd {2:0.00} s CPU{3}' -f $run, $m.Wall, $m.Server, $(if ($m.ExitCode) { "  FAILED $(Get-Tail $m.Stderr 2)" }))
            $records.Add([pscustomobject]@{ Tool = 'ssh-controlmaster'; Command = 'true'; Hosts = $N; Run = $run; Wall = $m.Wall; Cpu = $m.Cpu; Ok = $m.ExitCode -eq 0; Detail = '' })
            $m
        }
    }
    finally {
        # Invoke-Measured ended the masters with its cgroup when it has one; without, ask each to exit.
        foreach ($address in Get-Content $hostFiles[$N]) { & ssh @(Get-SshOption) @control -O exit -l $sandbox.User $address 2>$null | Out-Null }
    }
    function Get-PooledSummary($runs, [int] $failed) {
        $server = Get-Median @($runs | ForEach-Object Server)
        [ordered]@{ Median = Get-Median @($runs | ForEach-Object Wall); Min = ($runs | ForEach-Object Wall | Measure-Object -Minimum).Minimum; Failed = $failed
            ServerCpu = $server; Floor = $server / $cores }
    }
    $report.Pooled = [ordered]@{
        Hosts         = $N
        Moltar        = Get-PooledSummary $moltar @($moltar | Where-Object Failed).Count
        ControlMaster = Get-PooledSummary $openssh @($openssh | Where-Object ExitCode -NE 0).Count
    }
}

function Invoke-LargeFleetRows([int] $N) {
    $runs = [math]::Min($Runs, 3)
    $hostsFile = Join-Path $work "hosts-large-$N.txt"
    Set-Content $hostsFile ($sandbox.Hosts | ForEach-Object Address)
    $hostFiles[$N] = $hostsFile
    $null = Invoke-WarmWorker (@{ HostsFile = $hostsFile; Command = 'true'; ThrottleLimit = $N } | ConvertTo-Json -Compress) # untimed: JIT, known_hosts read
    $moltar = [Collections.Generic.List[object]]::new(); $pssh = [Collections.Generic.List[object]]::new()
    foreach ($run in 1..$runs) {
        # 1 s: the last of 1,000 sessions' processes are reaped
        $a = Measure-ServerCpu { Invoke-WarmWorker (@{ HostsFile = $hostsFile; Command = 'true'; ThrottleLimit = $N } | ConvertTo-Json -Compress) } -SettleMilliseconds 1000
        $server = $a.Server
        $moltar.Add([pscustomobject]@{ Wall = $a.Wall; Cpu = $a.Cpu; Server = $server; PeakRssMB = $a.PeakRssMB; Failed = $a.Failed })
        Write-Host ('    run {0} moltar -ThrottleLimit {1}: {2:0.00} s wall, client {3:0.0} s CPU, sshd {4:0.0} s CPU, peak {5} MB, {6} failed' -f $run, $N, $a.Wall, $a.Cpu, $server, $a.PeakRssMB, $a.Failed)
        $records.Add([pscustomobject]@{ Tool = 'moltar-large'; Command = 'true'; Hosts = $N; Run = $run; Wall = $a.Wall; Cpu = $a.Cpu; Ok = $a.Failed -eq 0; Detail = "$($a.Failed) failed" })
        if (Get-Command parallel-ssh -ErrorAction Ignore) {
            $m = Measure-ServerCpu { Invoke-Measured -FilePath (Get-Command parallel-ssh).Source -ArgumentList @('-h', $hostsFile, '-p', 200, '-l', $sandbox.User, '-t', '0', '-x', ((Get-SshOption) -join ' '), 'true') } -SettleMilliseconds 1000
            $server = $m.Server
            $pssh.Add([pscustomobject]@{ Wall = $m.Wall; Cpu = $m.Cpu; Server = $server; Failed = [int]($m.ExitCode -ne 0) })
            Write-Host ('    run {0} parallel-ssh -p 200: {1:0.00} s wall, client {2} s CPU, sshd {3:0.0} s CPU{4}' -f $run, $m.Wall, $(if ($null -ne $m.Cpu) { '{0:0.0}' -f $m.Cpu } else { '–' }), $server, $(if ($m.ExitCode) { "  FAILED $(Get-Tail $m.Stdout 2)" }))
            $records.Add([pscustomobject]@{ Tool = 'pssh-200-large'; Command = 'true'; Hosts = $N; Run = $run; Wall = $m.Wall; Cpu = $m.Cpu; Ok = $m.ExitCode -eq 0; Detail = '' })
        }
    }
    function Get-LargeSummary($list) {
        if (-not $list.Count) { return $null }
        $wall = Get-Median @($list | ForEach-Object Wall)
        $server = Get-Median @($list | ForEach-Object Server)
        [ordered]@{ Wall = $wall; WallMin = ($list | ForEach-Object Wall | Measure-Object -Minimum).Minimum; ClientCpu = Get-Median @($list | Where-Object { $null -ne $_.Cpu } | ForEach-Object Cpu)
            ServerCpu = $server; ServerCpuPerConnection = $server / $N; Floor = $server / $cores; OverFloor = if ($server -gt 0) { $wall / ($server / $cores) } else { $null }
            PeakRssMB = if ($list[0].PSObject.Properties['PeakRssMB']) { ($list | ForEach-Object PeakRssMB | Measure-Object -Maximum).Maximum } else { $null }
            Failed = @($list | Where-Object Failed).Count }
    }
    $report.LargeFleet = [ordered]@{ Hosts = $N; Runs = $runs; Moltar = Get-LargeSummary $moltar; Pssh = Get-LargeSummary $pssh }
}
#endregion

#region statistics and output
function Measure-StartUp([string] $Program, [string[]] $Prefix, [string] $What) {
    <# Bare start and start + Import-Module Moltar of one pwsh, alternating, $Runs * 4 times each (at least 12: a
       start varies by tens of ms on a 2-core machine, the quantity measured is about 0.1 s): medians and minima. #>
    $bare = [Collections.Generic.List[double]]::new(); $imported = [Collections.Generic.List[double]]::new()
    foreach ($i in 1..([math]::Max(12, $Runs * 4))) {
        $bare.Add((Invoke-Measured -FilePath $Program -ArgumentList (@($Prefix) + @('-NoProfile', '-NonInteractive', '-Command', 'exit'))).Wall)
        $m = Invoke-Measured -FilePath $Program -ArgumentList (@($Prefix) + @('-NoProfile', '-NonInteractive', '-Command', "Import-Module '$ModulePath' -ErrorAction Stop; exit"))
        if ($m.ExitCode -ne 0) { throw "Import-Module on $What failed: $(Get-Tail $m.Stderr)" }
        $imported.Add($m.Wall)
    }
    [ordered]@{
        BareMedian = Get-Median $bare; BareMin = ($bare | Measure-Object -Minimum).Minimum
        ImportMedian = Get-Median $imported; ImportMin = ($imported | Measure-Object -Minimum).Minimum
    }
}

function Get-Field($Record, [string] $Name) {
    <# A field results.json of an older run may lack: the report holds ordered dictionaries while measuring and
       objects when re-read with -ResultsPath; $null when absent. #>
    if ($Record -is [Collections.IDictionary]) { $Record[$Name] } else { $Record.PSObject.Properties[$Name]?.Value }
}

function Get-Median([double[]] $values) {
    if (-not $values -or $values.Count -eq 0) { return $null }
    $sorted = [double[]]($values | Sort-Object)
    $mid = [math]::Floor($sorted.Count / 2)
    if ($sorted.Count % 2) { $sorted[$mid] } else { ($sorted[$mid - 1] + $sorted[$mid]) / 2 }
}

function Get-Summary {
    param([string] $Name, [string] $Command, [int] $N)
    $runs = @($records | Where-Object { $_.Tool -eq $Name -and $_.Command -eq $Command -and $_.Hosts -eq $N })
    $good = @($runs | Where-Object Ok)
    if ($good.Count -eq 0) { return $null }
    $cpu = @($good | Where-Object { $null -ne $_.Cpu } | ForEach-Object Cpu)
    [pscustomobject]@{
        Min        = ($good.Wall | Measure-Object -Minimum).Minimum
        Median     = Get-Median $good.Wall
        CpuMedian  = if ($cpu.Count) { Get-Median $cpu } else { $null }
        CpuPerHost = if ($cpu.Count) { (Get-Median $cpu) / $N } else { $null }
        Runs       = $good.Count
        Failed     = $runs.Count - $good.Count
    }
}

function Format-Seconds($value) { if ($null -eq $value) { '–' } elseif ($value -lt 10) { '{0:0.00}' -f $value } else { '{0:0.0}' -f $value } }
function Format-Ms($seconds) { if ($null -eq $seconds) { '–' } else { '{0:0.0}' -f ($seconds * 1000) } }

function New-SsmMarkdown($s) {
    <# The SSM Run Command row: its heading and table (lines). #>
    ''
    "**SSM Run Command: one ``Invoke-MoltarCommand 'true' -Transport Ssm`` over $($s.Instances) instances (tag targets, the sandbox's Systems Manager stand-in; its agents run the command locally), 3 fresh processes**"
    ''
    '| | seconds: median (min) | succeeded | client peak memory (whole process) | over the process before the call |'
    '|---|---:|---:|---:|---:|'
    "| Invoke-MoltarCommand -Transport Ssm | $(Format-Seconds $s.Median) ($(Format-Seconds $s.Min)) | $($s.Succeeded) of $($s.Results) | $('{0:0} MB' -f ($s.PeakRss / 1MB)) | $('{0:0} MB' -f ($s.PeakOverBaseline / 1MB)) |"
}

function New-Markdown {
    $commands = @('true', 'uname -n')
    $lines = [Collections.Generic.List[string]]::new()
    $m = $report.Machine
    $lines.Add("Measured $($report.Finished) on $($m.Cores) × $($m.Cpu) (nproc $($m.Cores)), $($m.MemoryGB) GB memory, $($m.Os), kernel $($m.Kernel);")
    $versions = [pscustomobject]$report.Versions # a dictionary when measured, an object when read back
    $others = @($versions.PSObject.Properties | Where-Object Name -ne 'OpenSSH' | ForEach-Object { "$($_.Name) $($_.Value)" })
    $lines.Add("$($versions.OpenSSH); $($others -join '; ').")
    $lines.Add("Load average (1/5/15 min) at start $($report.LoadAtStart), at the end $($report.LoadAtEnd); $Runs runs of each, interleaved; client and sshd hosts share the same cores.")
    $lines.Add('')
    $lines.Add('**Fan-out wall time, seconds: median (min)**')
    $lines.Add('')
    $header = '| Tool |'; $rule = '|---|'
    foreach ($c in $commands) { foreach ($n in $Hosts) { $header += " ``$c`` N=$n |"; $rule += '---:|' } }
    $lines.Add($header); $lines.Add($rule)
    foreach ($name in $tools.Keys) {
        if (-not $tools[$name].Available) { continue }
        $row = "| $($tools[$name].Label) |"
        foreach ($c in $commands) {
            foreach ($n in $Hosts) {
                $s = Get-Summary $name $c $n
                $row += if ($s) { " $(Format-Seconds $s.Median) ($(Format-Seconds $s.Min))$(if ($s.Failed) { " ‡$($s.Failed)" }) |" } else { ' – |' }
            }
        }
        $lines.Add($row)
    }
    if ($report.Floor) {
        $row = "| Handshake floor: CPU of one ``ssh host true`` × N / $cores cores |"
        foreach ($c in $commands) { foreach ($n in $Hosts) { $row += " $(Format-Seconds ($report.Floor.CpuPerSsh * $n / $cores)) |" } }
        $lines.Add($row)
    }
    $lines.Add('')
    $lines.Add('**Client CPU per host, ms (user+sys of the client process tree ÷ N, median), `true`**')
    $lines.Add('')
    $header = '| Tool |'; $rule = '|---|'
    foreach ($n in $Hosts) { $header += " N=$n |"; $rule += '---:|' }
    $lines.Add($header); $lines.Add($rule)
    foreach ($name in $tools.Keys) {
        if (-not $tools[$name].Available) { continue }
        $row = "| $($tools[$name].Label) |"
        foreach ($n in $Hosts) { $s = Get-Summary $name 'true' $n; $row += " $(if ($s) { Format-Ms $s.CpuPerHost } else { '–' }) |" }
        $lines.Add($row)
    }
    if ($report.Floor) {
        $lines.Add("| One OpenSSH ``ssh host true`` process (default KEX $($report.Floor.Kex)) |$(' {0} |' -f (Format-Ms $report.Floor.CpuPerSsh) * $Hosts.Count)")
        if ($report.Floor.CpuPerSshCurve) {
            $lines.Add("| One OpenSSH ``ssh host true`` process, ``KexAlgorithms=curve25519-sha256`` |$(' {0} |' -f (Format-Ms $report.Floor.CpuPerSshCurve) * $Hosts.Count)")
        }
    }
    if ($report.Import) {
        $i = $report.Import
        $lines.Add('')
        $lines.Add('**Start-up, seconds: median (min)**')
        $lines.Add('')
        $lines.Add('| | wall | over bare `pwsh` |')
        $lines.Add('|---|---:|---:|')
        $lines.Add("| ``pwsh -NoProfile -c exit`` | $(Format-Seconds $i.BareMedian) ($(Format-Seconds $i.BareMin)) | |")
        $lines.Add("| ``pwsh -NoProfile -c 'Import-Module Moltar; exit'`` | $(Format-Seconds $i.ImportMedian) ($(Format-Seconds $i.ImportMin)) | $(Format-Seconds $i.OverMedian) ($(Format-Seconds $i.OverMin)) |")
        if ($null -ne (Get-Field $i 'PrecompiledBareMedian')) {
            $lines.Add("| the same on the precompiled pwsh: ``-c exit`` | $(Format-Seconds $i.PrecompiledBareMedian) ($(Format-Seconds $i.PrecompiledBareMin)) | |")
            $lines.Add("| the same on the precompiled pwsh: ``Import-Module Moltar`` | $(Format-Seconds $i.PrecompiledImportMedian) ($(Format-Seconds $i.PrecompiledImportMin)) | $(Format-Seconds ($i.PrecompiledImportMedian - $i.PrecompiledBareMedian)) ($(Format-Seconds ($i.PrecompiledImportMin - $i.PrecompiledBareMin))) |")
        }
    }
    if ($report.Discovery) {
        $d = $report.Discovery
        $lines.Add('')
        $lines.Add("**Discovery of $($d.Instances) instances ($($d.Pages) pages of DescribeInstances), seconds: median (min)**")
        $lines.Add('')
        $lines.Add('| | first call in a fresh process | calls 4 and on in one process | peak memory over the process before the first call |')
        $lines.Add('|---|---:|---:|---:|')
        $rows = @(@('Get-MoltarInstance', $d.Moltar), @('Raw AWSSDK.EC2 paginator, console program (same request)', $d.Raw))
        if ($null -ne (Get-Field $d 'RawPwsh')) {
            $rows += , @('Raw AWSSDK.EC2 NextToken loop in a plain `pwsh` (same request, same process type)', $d.RawPwsh)
        }
        foreach ($row in $rows) {
            $s = $row[1]
            $lines.Add("| $($row[0]) | $(Format-Seconds $s.FirstMedian) ($(Format-Seconds $s.FirstMin)) | $(Format-Seconds $s.LaterMedian) ($(Format-Seconds $s.LaterMin)) | $('{0:0} MB' -f ($s.PeakOverBaseline / 1MB)) |")
        }
    }
    if ($report.Contains('Ssm') -and $report.Ssm) {
        foreach ($line in New-SsmMarkdown $report.Ssm) { $lines.Add($line) }
    }
    $pooled = $report['Pooled']
    if ($pooled) {
        $lines.Add('')
        $lines.Add("**A repeat call over the same $($pooled.Hosts) hosts, ``true``, seconds: median (min)**")
        $lines.Add('')
        $lines.Add('| | wall | sshd CPU in the call | its floor: sshd CPU ÷ cores |')
        $lines.Add('|---|---:|---:|---:|')
        $rows = [ordered]@{
            'Moltar, warm, connections kept from the call before (`-ConnectionIdleSeconds`)'                     = $pooled.Moltar
            'OpenSSH, a warm ControlMaster per host: `ssh -o ControlMaster=no … </dev/null &` per host, then `wait`' = $pooled.ControlMaster
        }
        foreach ($row in $rows.GetEnumerator()) {
            $figures = $row.Value
            # (results.json of runs before 2026-12-05 carry no sshd figures)
            $server = Get-Field $figures 'ServerCpu'
            $cells = if ($null -ne $server) { '{0} | {1}' -f (Format-Seconds $server), (Format-Seconds ($server / $cores)) } else { '– | –' }
            $lines.Add("| $($row.Key) | $(Format-Seconds $figures.Median) ($(Format-Seconds $figures.Min)) | $cells |")
        }
    }
    $large = $report['LargeFleet']
    if ($large) {
        $lines.Add('')
        $lines.Add("**One call over $($large.Hosts) sandbox hosts, ``true`` ($($large.Runs) runs; medians)**")
        $lines.Add('')
        $lines.Add('| | wall, s | sshd CPU floor: sshd CPU ÷ cores, s | wall ÷ floor | client CPU, s | sshd CPU per connection, ms | client peak memory |')
        $lines.Add('|---|---:|---:|---:|---:|---:|---:|')
        foreach ($row in @(@("Moltar, warm, ``-ThrottleLimit $($large.Hosts)``", $large.Moltar), @('parallel-ssh `-p 200`', $large.Pssh))) {
            $s = $row[1]
            if (-not $s) { continue }
            $lines.Add("| $($row[0]) | $(Format-Seconds $s.Wall) ($(Format-Seconds $s.WallMin)) | $(Format-Seconds $s.Floor) | $(if ($s.OverFloor) { '{0:0.00}×' -f $s.OverFloor } else { '–' }) | $(Format-Seconds $s.ClientCpu) | $(Format-Ms $s.ServerCpuPerConnection) | $(if ($s.PeakRssMB) { '{0:0} MB' -f $s.PeakRssMB } else { '–' }) |")
        }
    }
    $lines.Add('')
    $lines.Add('**Targets (one run, this machine)**')
    $lines.Add('')
    $lines.Add('| Target | Measured | Met |')
    $lines.Add('|---|---|:---:|')
    foreach ($t in $report.Targets) { $lines.Add("| $($t.Target) | $($t.Measured) | $(if ($null -eq $t.Met) { 'n/a' } elseif ($t.Met) { 'yes' } else { '**no**' }) |") }
    if ($notes.Count) {
        $lines.Add('')
        foreach ($note in $notes) { $lines.Add("- $note") }
    }
    $lines -join "`n"
}

function Get-Target {
    $targets = [Collections.Generic.List[object]]::new()
    $n = $maxHosts
    $cold = Get-Summary 'moltar-cold' 'true' $n
    $precompiled = Get-Summary 'moltar-cold-precompiled' 'true' $n
    $warmSummary = Get-Summary 'moltar-warm' 'true' $n
    $pssh = Get-Summary 'pssh' 'true' $n
    $raw = Get-Summary 'ansible-raw' 'true' $n
    function Ratio($a, $b) { if ($a -and $b) { $a.Median / $b.Median } else { $null } }
    # One row per Moltar figure: cold on this pwsh, cold on the precompiled pwsh users install, warm.
    function Add-WallTarget([string] $text, $peer, [double] $limit) {
        foreach ($figure in @(@('cold', $cold), @('cold on the precompiled pwsh', $precompiled), @('warm', $warmSummary))) {
            $ratio = Ratio $figure[1] $peer
            if ($null -eq $ratio -and $figure[0] -ne 'cold') { continue }
            $measured = 'not measured'
            $met = $null
            if ($null -ne $ratio) {
                $met = $ratio -le $limit
                $measured = '{0:0.00}× ({1} s vs {2} s)' -f $ratio, (Format-Seconds $figure[1].Median), (Format-Seconds $peer.Median)
            }
            $targets.Add([pscustomobject]@{ Target = "$text ($($figure[0]))"; Measured = $measured; Met = $met })
        }
    }
    Add-WallTarget "N=$n ``true``: Moltar wall ≤ 0.7 × parallel-ssh" $pssh 0.7
    Add-WallTarget "N=$n ``true``: Moltar wall ≤ 0.25 × Ansible ``-m raw``" $raw 0.25
    if ($report.Floor -and $cold -and $null -ne $cold.CpuPerHost) {
        $limit = $report.Floor.CpuPerSsh / 3
        $measured = 'cold {0} ms, warm {1} ms per host (N={2}) vs ⅓ × {3} ms = {4} ms' -f (Format-Ms $cold.CpuPerHost), (Format-Ms $warmSummary.CpuPerHost), $n, (Format-Ms $report.Floor.CpuPerSsh), (Format-Ms $limit)
        $targets.Add([pscustomobject]@{ Target = 'Client CPU per host ≤ ⅓ of one OpenSSH `ssh` process'; Measured = $measured; Met = $cold.CpuPerHost -le $limit })
    }
    if ($report.Import) {
        # 0.1 s: the import is the root script module (Moltar.psm1) and the binary cmdlets it nests. Judged on pwsh as
        # installed (the official packages are ReadyToRun-compiled) when the precompiled copy ran; the dotnet tool
        # pwsh, IL only, also JIT-compiles PowerShell's own module-import code on every import (printed beside it).
        $i = $report.Import
        if ($null -ne (Get-Field $i 'PrecompiledBareMedian')) {
            $over = $i.PrecompiledImportMedian - $i.PrecompiledBareMedian
            $measured = '{0} s (median; min {1} s) on the precompiled pwsh; {2} s on the IL-only dotnet tool pwsh' -f (Format-Seconds $over), (Format-Seconds ($i.PrecompiledImportMin - $i.PrecompiledBareMin)), (Format-Seconds $i.OverMedian)
        }
        else {
            $over = $i.OverMedian
            $measured = '{0} s (median; min {1} s) on the IL-only dotnet tool pwsh (no precompiled pwsh in this run)' -f (Format-Seconds $i.OverMedian), (Format-Seconds $i.OverMin)
        }
        $targets.Add([pscustomobject]@{ Target = 'Import ≤ 0.1 s over bare `pwsh` start'; Measured = $measured; Met = $over -le 0.1 })
    }
    if ($report.Discovery) {
        $d = $report.Discovery
        $later = $d.Moltar.LaterMedian / $d.Raw.LaterMedian
        $first = $d.Moltar.FirstMedian / $d.Raw.FirstMedian
        $measured = 'calls 4 and on {0:0.00}×, first call {1:0.00}× the paginator' -f $later, $first
        if ($null -ne (Get-Field $d 'RawPwsh')) { $measured += '; {0:0.00}× and {1:0.00}× the SDK loop in pwsh' -f ($d.Moltar.LaterMedian / $d.RawPwsh.LaterMedian), ($d.Moltar.FirstMedian / $d.RawPwsh.FirstMedian) }
        $targets.Add([pscustomobject]@{ Target = "Discovery of $($d.Instances) instances within 1.2 × the raw SDK paginator"; Measured = $measured; Met = ($later -le 1.2 -and $first -le 1.2) })
    }
    if ($report['Pooled'] -and $null -ne $report['Pooled'].Moltar.Median) {
        $p = $report['Pooled']
        $measured = '{0} s (min {1} s); a warm ControlMaster per host: {2} s' -f (Format-Seconds $p.Moltar.Median), (Format-Seconds $p.Moltar.Min), (Format-Seconds $p.ControlMaster.Median)
        $server = Get-Field $p.Moltar 'ServerCpu'
        if ($null -ne $server) { $measured += "; the sshd side's floor in Moltar's call: {0} s" -f (Format-Seconds ($server / $cores)) }
        $targets.Add([pscustomobject]@{ Target = "A repeat call over the same $($p.Hosts) hosts ≤ 0.15 s (kept connections)"; Measured = $measured; Met = $p.Moltar.Median -le 0.15 })
    }
    if ($report['LargeFleet'] -and $report['LargeFleet'].Moltar) {
        $l = $report['LargeFleet']
        $peer = if ($l.Pssh) { '; parallel-ssh -p 200: {0} s, {1:0.00}× its floor' -f (Format-Seconds $l.Pssh.Wall), $l.Pssh.OverFloor } else { '' }
        $measured = '{0} s vs a floor of {1} s: {2:0.00}×{3}' -f (Format-Seconds $l.Moltar.Wall), (Format-Seconds $l.Moltar.Floor), $l.Moltar.OverFloor, $peer
        $targets.Add([pscustomobject]@{ Target = "One call over $($l.Hosts) hosts within 1.3 × the sshd side's CPU floor"; Measured = $measured; Met = $null -ne $l.Moltar.OverFloor -and $l.Moltar.OverFloor -le 1.3 -and -not $l.Moltar.Failed })
        $targets.Add([pscustomobject]@{ Target = "Client peak memory < 300 MB for one call over $($l.Hosts) hosts"; Measured = '{0:0} MB (resident, whole pwsh)' -f $l.Moltar.PeakRssMB; Met = $l.Moltar.PeakRssMB -lt 300 })
    }
    if ($report.Responsiveness) {
        # What the tests prove by behaviour only (no speed limits there): how fast, here. Medians; the min in brackets.
        $r = $report.Responsiveness
        function Format-Figure($figure) { '{0} s ({1} s)' -f (Format-Seconds $figure.Median), (Format-Seconds $figure.Min) }
        $measured = "$(Format-Figure $r.JumpHost) vs $(Format-Figure $r.Direct) direct"
        $targets.Add([pscustomobject]@{ Target = "``true`` on $($r.Targets) targets behind one jump host ≤ 2 × the same fan-out direct"
                Measured = $measured; Met = $r.JumpHost.Median -le 2 * $r.Direct.Median })
        $targets.Add([pscustomobject]@{ Target = 'A refused connection is reported ≤ 1 s (with `-ConnectTimeoutSeconds 30`)'; Measured = Format-Figure $r.Refused; Met = $r.Refused.Median -le 1 })
        $targets.Add([pscustomobject]@{ Target = "A silent host (TCP, no SSH) is given up ≤ 1 s after ``-ConnectTimeoutSeconds $($r.SilentTimeout)``"
                Measured = Format-Figure $r.Silent; Met = $r.Silent.Median -le $r.SilentTimeout + 1 })
        $targets.Add([pscustomobject]@{ Target = "A command past ``-TimeoutSeconds $($r.CommandTimeoutSeconds)`` is ended ≤ 1 s after it (one host, connect included)"
                Measured = Format-Figure $r.CommandTimeout; Met = $r.CommandTimeout.Median -le $r.CommandTimeoutSeconds + 1 })
        $targets.Add([pscustomobject]@{ Target = "Ctrl+C with $($r.Targets) hosts mid-command returns ≤ 2 s"; Measured = Format-Figure $r.Stop; Met = $r.Stop.Median -le 2 })
    }
    $targets
}

function New-Chart {
    param([string] $SvgPath)
    $commands = @('true', 'uname -n')
    $colors = @{ 'moltar-warm' = '#1b7837'; 'moltar-cold' = '#5aae61'; 'moltar-cold-precompiled' = '#a6dba0'; 'pssh' = '#2166ac'; 'pssh-curve25519' = '#67a9cf'; 'ansible-raw' = '#b2182b'; 'ansible-command' = '#ef8a62'; 'ssh-loop' = '#762a83'; 'floor' = '#999999' }
    $panelW = 440; $panelH = 320; $left = 60; $top = 50; $gap = 60
    $width = $left + ($panelW + $gap) * $commands.Count + 250
    $height = $top + $panelH + 70
    $sb = [Text.StringBuilder]::new()
    [void]$sb.AppendLine("<svg xmlns='http://www.w3.org/2000/svg' width='$width' height='$height' font-family='DejaVu Sans, sans-serif' font-size='12'>")
    [void]$sb.AppendLine("<rect width='100%' height='100%' fill='white'/>")
    [void]$sb.AppendLine("<text x='$left' y='22' font-size='15' font-weight='bold'>Wall time vs hosts (median of $Runs runs; $($report.Machine.Cores) cores, $([Security.SecurityElement]::Escape($report.Machine.Cpu)))</text>")
    $xMin = ($Hosts | Measure-Object -Minimum).Minimum; $xMax = $maxHosts
    if ($xMax -eq $xMin) { $xMax = $xMin + 1 }
    $series = foreach ($name in $tools.Keys) { if ($tools[$name].Available) { $name } }
    for ($p = 0; $p -lt $commands.Count; $p++) {
        $c = $commands[$p]
        $x0 = $left + $p * ($panelW + $gap)
        $points = @{}
        $yMaxData = 0.1
        $yMinData = 100.0
        foreach ($name in $series) {
            $points[$name] = [Collections.Generic.List[object]]::new()
            foreach ($n in $Hosts) {
                $s = Get-Summary $name $c $n
                if ($s) { $points[$name].Add([pscustomobject]@{ X = $n; Y = $s.Median }); $yMaxData = [math]::Max($yMaxData, $s.Median); $yMinData = [math]::Min($yMinData, $s.Median) }
            }
        }
        if ($report.Floor) {
            $points['floor'] = [Collections.Generic.List[object]]::new()
            foreach ($n in $Hosts) { $points['floor'].Add([pscustomobject]@{ X = $n; Y = $report.Floor.CpuPerSsh * $n / $cores }) }
            $yMinData = [math]::Min($yMinData, $report.Floor.CpuPerSsh * $Hosts[0] / $cores)
        }
        # Log scale: the fastest and the slowest tool differ by a factor of a hundred.
        $ticks = @(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)
        $yMin = ($ticks | Where-Object { $_ -le $yMinData } | Select-Object -Last 1) ?? 0.05
        $yMax = ($ticks | Where-Object { $_ -ge $yMaxData } | Select-Object -First 1) ?? 500
        $sx = { param($v) $x0 + ($v - $xMin) / ($xMax - $xMin) * $panelW }
        $sy = { param($v) $top + $panelH - ([math]::Log10([math]::Min([math]::Max($v, $yMin), $yMax)) - [math]::Log10($yMin)) / ([math]::Log10($yMax) - [math]::Log10($yMin)) * $panelH }
        [void]$sb.AppendLine("<text x='$($x0 + $panelW / 2)' y='$($top - 12)' text-anchor='middle' font-weight='bold'>$([Security.SecurityElement]::Escape($c))</text>")
        foreach ($v in $ticks | Where-Object { $_ -ge $yMin -and $_ -le $yMax }) {
            $y = & $sy $v
            [void]$sb.AppendLine("<line x1='$x0' x2='$($x0 + $panelW)' y1='$y' y2='$y' stroke='#e5e5e5'/><text x='$($x0 - 6)' y='$($y + 4)' text-anchor='end'>$v</text>")
        }
        foreach ($n in $Hosts) {
            $x = & $sx $n
            [void]$sb.AppendLine("<line x1='$x' x2='$x' y1='$top' y2='$($top + $panelH)' stroke='#f0f0f0'/><text x='$x' y='$($top + $panelH + 16)' text-anchor='middle'>$n</text>")
        }
        [void]$sb.AppendLine("<rect x='$x0' y='$top' width='$panelW' height='$panelH' fill='none' stroke='#444'/>")
        [void]$sb.AppendLine("<text x='$($x0 + $panelW / 2)' y='$($top + $panelH + 36)' text-anchor='middle'>hosts (N = throttle)</text>")
        if ($p -eq 0) { [void]$sb.AppendLine("<text x='16' y='$($top + $panelH / 2)' transform='rotate(-90 16 $($top + $panelH / 2))' text-anchor='middle'>seconds (log scale)</text>") }
        foreach ($name in $points.Keys) {
            $pts = $points[$name]
            if ($pts.Count -eq 0) { continue }
            $coords = ($pts | ForEach-Object { '{0:0.0},{1:0.0}' -f (& $sx $_.X), (& $sy $_.Y) }) -join ' '
            $dash = if ($name -eq 'floor') { " stroke-dasharray='5,4'" } else { '' }
            [void]$sb.AppendLine("<polyline points='$coords' fill='none' stroke='$($colors[$name])' stroke-width='2'$dash/>")
            foreach ($pt in $pts) { [void]$sb.AppendLine("<circle cx='$('{0:0.0}' -f (& $sx $pt.X))' cy='$('{0:0.0}' -f (& $sy $pt.Y))' r='3' fill='$($colors[$name])'/>") }
        }
    }
    $lx = $left + ($panelW + $gap) * $commands.Count - 20
    $ly = $top + 10
    $legend = [Collections.Generic.List[object]]::new()
    foreach ($name in $series) { $legend.Add([pscustomobject]@{ Name = $name; Label = $tools[$name].Label }) }
    if ($report.Floor) { $legend.Add([pscustomobject]@{ Name = 'floor'; Label = 'handshake floor' }) }
    foreach ($entry in $legend) {
        $label = $entry.Label -replace '`', '' -replace ' \(.*\)$', '' -replace ', KexAlgorithms=curve25519-sha256', ' (curve25519)' -replace ' per host, then wait', ' + wait'
        [void]$sb.AppendLine("<line x1='$lx' x2='$($lx + 22)' y1='$ly' y2='$ly' stroke='$($colors[$entry.Name])' stroke-width='3'/><text x='$($lx + 28)' y='$($ly + 4)'>$([Security.SecurityElement]::Escape($label))</text>")
        $ly += 20
    }
    [void]$sb.AppendLine('</svg>')
    Set-Content -Path $SvgPath -Value $sb.ToString() -Encoding utf8NoBOM
}

function Update-Readme([string] $path, [string] $markdown) {
    $begin = '<!-- bench:begin -->'; $end = '<!-- bench:end -->'
    $text = Get-Content -Raw $path
    $block = "$begin`n$markdown`n$end"
    $i = $text.IndexOf($begin); $j = $text.IndexOf($end)
    if ($i -ge 0 -and $j -gt $i) {
        $text = $text.Substring(0, $i) + $block + $text.Substring($j + $end.Length)
    }
    else {
        $text = $text.TrimEnd() + "`n`n## Performance`n`n$block`n"
    }
    # Exactly one newline at the end, however many runs rewrote the file.
    Set-Content -Path $path -Value ($text.TrimEnd() + "`n") -NoNewline -Encoding utf8NoBOM
}
#endregion

# ---------------------------------------------------------------------------------------------------------------
if ($ResultsPath) {
    # Only the report: the tables, chart and README from an earlier results.json.
    $saved = Get-Content -Raw $ResultsPath | ConvertFrom-Json
    $report = [ordered]@{}
    foreach ($property in $saved.PSObject.Properties) { $report[$property.Name] = $property.Value }
    $Hosts = @($saved.Hosts | ForEach-Object { [int]$_ })
    $maxHosts = ($Hosts | Measure-Object -Maximum).Maximum
    $Runs = $saved.Runs
    $cores = $saved.Machine.Cores
    foreach ($record in $saved.Records) { $records.Add($record) }
    foreach ($note in $saved.Notes) { $notes.Add($note) }
    $report.Records = $records
    $report.Notes = $notes
    $tools = Get-ToolDefinition
    foreach ($name in $tools.Keys) { $tools[$name].Available = [bool]($records | Where-Object Tool -eq $name | Select-Object -First 1) }
    $report.Targets = Get-Target
}
else {
    if (-not $OnlySsm) { Install-Peer }
    $accounting = Get-CpuAccounting
    if ($accounting.Kind -eq 'time') { $notes.Add('CPU is from `/usr/bin/time` (not root: no cgroup), which misses processes a client leaves running (Ansible''s ssh masters).') }
    elseif ($accounting.Kind -eq 'none') { $notes.Add('Client CPU was not measured (no cgroup access and no /usr/bin/time).') }
    $tools = Get-ToolDefinition
    $report = [ordered]@{
        Started     = (Get-Date).ToUniversalTime().ToString('yyyy-MM-dd HH:mm') + ' UTC'
        Finished    = $null
        Machine     = Get-Machine
        Versions    = Get-ToolVersion
        LoadAtStart = Get-LoadAverage
        LoadAtEnd   = $null
        Hosts       = $Hosts
        Runs        = $Runs
        CpuAccounting = $accounting.Kind
        Floor       = $null
        Import      = $null
        Discovery   = $null
        Ssm         = $null
        Responsiveness = $null
        Pooled      = $null
        LargeFleet  = $null
        Records     = $records
        Targets     = $null
        Notes       = $notes
    }
    Write-Step "Machine: $($report.Machine.Cores) × $($report.Machine.Cpu), $($report.Machine.MemoryGB) GB; load $($report.LoadAtStart); CPU accounting: $($accounting.Kind)"

    New-Item -ItemType Directory -Force $OutputDirectory | Out-Null
    $work = [IO.Directory]::CreateTempSubdirectory('moltar-bench-').FullName
    $awsFile = Join-Path $work 'aws-empty'
    Set-Content $awsFile ''
    # Every client gets the same clean environment: no agent, no user AWS files, nothing written to ~.
    $childEnvironment = @{
        SSH_AUTH_SOCK                 = $null
        AWS_CONFIG_FILE               = $awsFile
        AWS_SHARED_CREDENTIALS_FILE   = $awsFile
        AWS_EC2_METADATA_DISABLED     = 'true'
        POWERSHELL_TELEMETRY_OPTOUT   = '1'
        POWERSHELL_UPDATECHECK        = 'Off'
        ANSIBLE_CONFIG                = (Join-Path $work 'ansible.cfg')
        ANSIBLE_HOME                  = (Join-Path $work 'ansible-home')
        ANSIBLE_LOCAL_TEMP            = (Join-Path $work 'ansible-tmp')
        ANSIBLE_HOST_KEY_CHECKING     = 'True'
        ANSIBLE_NOCOLOR               = '1'
        ANSIBLE_RETRY_FILES_ENABLED   = 'False'
        ANSIBLE_DEPRECATION_WARNINGS  = 'False'
        ANSIBLE_PYTHON_INTERPRETER    = 'auto_silent'
    }
    foreach ($name in [Environment]::GetEnvironmentVariables().Keys) {
        if ($name -like 'MOLTAR_*' -or ($name -like 'AWS_*' -and -not $childEnvironment.ContainsKey($name))) { $childEnvironment[$name] = $null }
    }
    Set-Content (Join-Path $work 'ansible.cfg') ''

    $sandbox = $null
    $warm = $null
    if (-not $OnlySsm) {
        try {
            Write-Step "Starting a sandbox of $maxHosts own-root sshd hosts"
            $sandbox = Start-MoltarSandbox -SandboxPath $SandboxPath -Hosts $maxHosts -TimeoutSeconds 600
            $addresses = @($sandbox.Hosts | ForEach-Object { $_.Address })
            $hostFiles = @{}; $inventories = @{}
            foreach ($n in $Hosts) {
                $hostFiles[$n] = Join-Path $work "hosts-$n.txt"
                Set-Content $hostFiles[$n] ($addresses | Select-Object -First $n)
                $inventories[$n] = Join-Path $work "inventory-$n.ini"
                Set-Content $inventories[$n] (@('[bench]') + ($addresses | Select-Object -First $n))
            }
            $childEnvironment['ANSIBLE_SSH_ARGS'] = "-C -o ControlMaster=auto -o ControlPersist=60s -F /dev/null -o UserKnownHostsFile=$($sandbox.KnownHostsPath) -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes"
            $loopScript = Join-Path $work 'ssh-loop.sh'
            Set-Content $loopScript @'
#!/bin/bash
# ssh-loop.sh HOSTS_FILE USER COMMAND SSH_OPTION...: one ssh per host in the background, then wait for each.
# Each ssh reads /dev/null: one that read the loop's input (the hosts file) would take the next hosts' lines, so
# that no ssh is started for them (a ControlMaster client reads it at once: 10 of 100 hosts ran the command).
hosts=$1 user=$2 command=$3; shift 3
pids=()
while read -r host; do ssh "$@" -l "$user" "$host" "$command" < /dev/null & pids+=($!); done < "$hosts"
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
expected=$(grep -c . "$hosts")
if [ "${#pids[@]}" -ne "$expected" ]; then echo "ssh-loop.sh: started ${#pids[@]} ssh for $expected hosts" >&2; exit 2; fi
exit $failed
'@

            # The handshake floor: one ssh at a time, so its CPU is the handshake's and nothing else's.
            Write-Step 'Handshake floor: CPU of one `ssh host true`'
            $floorRuns = [math]::Max(5, [math]::Min(10, $addresses.Count))
            $default = foreach ($i in 0..($floorRuns - 1)) {
                Invoke-Measured -FilePath ssh -ArgumentList (@(Get-SshOption) + @('-l', $sandbox.User, $addresses[$i % $addresses.Count], 'true'))
            }
            $curve = foreach ($i in 0..($floorRuns - 1)) {
                Invoke-Measured -FilePath ssh -ArgumentList (@(Get-SshOption -Curve25519) + @('-l', $sandbox.User, $addresses[$i % $addresses.Count], 'true'))
            }
            if (@($default | Where-Object ExitCode -ne 0).Count) { throw "ssh to the sandbox failed: $(Get-Tail $default[-1].Stderr)" }
            $kex = (& ssh @(Get-SshOption) -l $sandbox.User -v $addresses[0] true 2>&1 | Select-String 'kex: algorithm: (\S+)' | Select-Object -First 1)
            if ($accounting.Kind -ne 'none') {
                $report.Floor = [ordered]@{
                    CpuPerSsh      = Get-Median @($default | ForEach-Object Cpu)
                    CpuPerSshCurve = Get-Median @($curve | ForEach-Object Cpu)
                    WallPerSsh     = Get-Median @($default | ForEach-Object Wall)
                    Kex            = if ($kex) { $kex.Matches[0].Groups[1].Value } else { 'unknown' }
                    Runs           = $floorRuns
                }
                Write-Host ("    one ssh: {0} ms CPU ({1}), {2} ms with curve25519" -f (Format-Ms $report.Floor.CpuPerSsh), $report.Floor.Kex, (Format-Ms $report.Floor.CpuPerSshCurve))
            }

            if (-not $SkipImport) {
                Write-Step 'Import-Module Moltar over a bare pwsh start'
                $report.Import = Measure-StartUp $pwshPath $pwshPrefix 'pwsh'
                $report.Import.OverMedian = $report.Import.ImportMedian - $report.Import.BareMedian
                $report.Import.OverMin = $report.Import.ImportMin - $report.Import.BareMin
                if ($PrecompiledPwshPath) {
                    $precompiledStartUp = Measure-StartUp (Get-Command dotnet).Source @($PrecompiledPwshPath) 'the precompiled pwsh'
                    foreach ($key in 'BareMedian', 'BareMin', 'ImportMedian', 'ImportMin') { $report.Import["Precompiled$key"] = $precompiledStartUp[$key] }
                }
                Write-Host ('    bare {0} s, with import {1} s (medians)' -f (Format-Seconds $report.Import.BareMedian), (Format-Seconds $report.Import.ImportMedian))
            }

            if ($tools.Contains('moltar-warm')) {
                Write-Step 'Starting the warm Moltar (one pwsh, module imported, one untimed fan-out)'
                $warm = Start-WarmWorker
                $first = Invoke-WarmWorker (@{ HostsFile = $hostFiles[$maxHosts]; Command = 'true'; ThrottleLimit = $maxHosts } | ConvertTo-Json -Compress)
                Write-Host ('    untimed first fan-out to {0} hosts: {1} s, {2} failed' -f $maxHosts, (Format-Seconds $first.Wall), $first.Failed)
            }

            $order = @($tools.Keys | Where-Object { $tools[$_].Available })
            foreach ($n in $Hosts) {
                Write-Step "N=$n hosts (load $(Get-LoadAverage))"
                foreach ($run in 1..$Runs) {
                    # The order rotates from run to run, so no tool always follows the same neighbour.
                    $rotated = @(for ($k = 0; $k -lt $order.Count; $k++) { $order[($k + $run - 1) % $order.Count] })
                    foreach ($command in 'true', 'uname -n') {
                        foreach ($name in $rotated) {
                            $r = Invoke-Tool -Name $name -N $n -Command $command -Run $run
                            $records.Add([pscustomobject]@{ Tool = $name; Command = $command; Hosts = $n; Run = $run; Wall = $r.Wall; Cpu = $r.Cpu; Ok = $r.Ok; Detail = $r.Detail })
                            $flag = if ($r.Ok) { '' } else { "  FAILED $($r.Detail)" }
                            Write-Host ('    run {0} {1,-16} {2,-9} {3,7:0.000} s wall {4,7} s CPU{5}' -f $run, $name, $command, $r.Wall, $(if ($null -ne $r.Cpu) { '{0:0.000}' -f $r.Cpu } else { '–' }), $flag)
                        }
                    }
                }
            }

            if ($PooledHosts -gt 0 -and $tools.Contains('moltar-warm')) {
                $pooledN = [math]::Min($PooledHosts, $addresses.Count)
                if (-not $hostFiles.ContainsKey($pooledN)) { $hostFiles[$pooledN] = Join-Path $work "hosts-$pooledN.txt"; Set-Content $hostFiles[$pooledN] ($addresses | Select-Object -First $pooledN) }
                Write-Step "Warm connections: a repeat call over $pooledN hosts, Moltar's kept connections against a ControlMaster per host"
                Invoke-PooledRows $pooledN
            }

            if (-not $SkipResponsiveness -and $addresses.Count -ge 2) {
                Write-Step 'Responsiveness: a jump host, a refused and a silent host, a command past its timeout, Ctrl+C'
                $m = Invoke-Measured -FilePath $pwshPath -ArgumentList (@($pwshPrefix) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $PSScriptRoot 'MoltarResponsiveness.ps1'),
                        '-ModulePath', $ModulePath, '-HostsFile', $hostFiles[$maxHosts], '-KeyFile', $sandbox.ClientKeyPath, '-KnownHostsPath', $sandbox.KnownHostsPath,
                        '-User', $sandbox.User, '-Runs', $Runs))
                if ($m.ExitCode -ne 0) {
                    $notes.Add("The responsiveness rows failed: $(Get-Tail $m.Stderr)")
                }
                else {
                    $r = Get-Content $m.Stdout | Select-Object -Last 1 | ConvertFrom-Json
                    $report.Responsiveness = [ordered]@{ Targets = $r.Targets; SilentTimeout = $r.SilentTimeout; CommandTimeoutSeconds = $r.CommandTimeoutSeconds }
                    foreach ($figure in 'JumpHost', 'Direct', 'Refused', 'Silent', 'CommandTimeout', 'Stop') {
                        $values = @($r.$figure)
                        $report.Responsiveness[$figure] = [ordered]@{ Median = Get-Median $values; Min = ($values | Measure-Object -Minimum).Minimum }
                        Write-Host ('    {0,-15} {1} s (min {2} s)' -f $figure, (Format-Seconds $report.Responsiveness[$figure].Median), (Format-Seconds $report.Responsiveness[$figure].Min))
                    }
                }
            }
        }
        finally {
            if ($warm) {
                try { $warm.StandardInput.Close(); if (-not $warm.WaitForExit(10000)) { $warm.Kill() } } catch { }
                $warm.Dispose()
            }
            if ($sandbox) { Stop-MoltarSandbox $sandbox }
        }
    }

    if ($LargeFleet -gt 0 -and $tools.Contains('moltar-warm') -and -not $OnlySsm) {
        Write-Step "One call over $LargeFleet sandbox hosts (a fleet of its own)"
        $sandbox = $null; $warm = $null
        try {
            $sandbox = Start-MoltarSandbox -SandboxPath $SandboxPath -Hosts $LargeFleet -TimeoutSeconds 3600
            $warm = Start-WarmWorker
            Invoke-LargeFleetRows $LargeFleet
        }
        catch { $notes.Add("The $LargeFleet-host rows failed: $($_.Exception.Message)") }
        finally {
            if ($warm) {
                try { $warm.StandardInput.Close(); if (-not $warm.WaitForExit(30000)) { $warm.Kill() } } catch { }
                $warm.Dispose()
            }
            if ($sandbox) { Stop-MoltarSandbox $sandbox }
        }
    }

    if (-not $SkipDiscovery -and $Synthetic -gt 0 -and -not $OnlySsm) {
        Write-Step "Discovery of $Synthetic synthetic instances"
        $discoverySandbox = Start-MoltarSandbox -SandboxPath $SandboxPath -Synthetic $Synthetic -TimeoutSeconds 600
        try {
            $common = @('--endpoint', $discoverySandbox.Endpoint, '--region', $discoverySandbox.Region)
            # The endpoint answers its first requests slowly (its own JIT): one untimed pass first.
            $null = Invoke-Measured -FilePath dotnet -ArgumentList (@($RawPaginatorPath) + $common + @('--runs', '1'))
            $rawRuns = [Collections.Generic.List[object]]::new(); $pwshRuns = [Collections.Generic.List[object]]::new(); $moltarRuns = [Collections.Generic.List[object]]::new()
            # Each process makes $perProcess calls: the first is the cold one; the SDK's XML code keeps tiering up for
            # a few more, so 'later' is calls 4 and on (steady state) for all three.
            $perProcess = [math]::Max(10, 2 * $Runs)
            $dependencies = Join-Path (Split-Path $ModulePath) 'deps'
            foreach ($round in 1..5) {
                $m = Invoke-Measured -FilePath dotnet -ArgumentList (@($RawPaginatorPath) + $common + @('--runs', $perProcess))
                if ($m.ExitCode -ne 0) { throw "The raw paginator failed: $(Get-Tail $m.Stderr)" }
                $rawRuns.Add((Get-Content $m.Stdout | Select-Object -Last 1 | ConvertFrom-Json))
                $m = Invoke-Measured -FilePath $pwshPath -ArgumentList (@($pwshPrefix) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $PSScriptRoot 'RawSdkInPwsh.ps1'),
                        '-DependencyPath', $dependencies, '-Endpoint', $discoverySandbox.Endpoint, '-Region', $discoverySandbox.Region, '-Runs', $perProcess))
                if ($m.ExitCode -ne 0) { throw "The raw SDK loop in pwsh failed: $(Get-Tail $m.Stderr)" }
                $pwshRuns.Add((Get-Content $m.Stdout | Select-Object -Last 1 | ConvertFrom-Json))
                $m = Invoke-Measured -FilePath $pwshPath -ArgumentList (@($pwshPrefix) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $PSScriptRoot 'MoltarDiscovery.ps1'),
                        '-ModulePath', $ModulePath, '-Endpoint', $discoverySandbox.Endpoint, '-Region', $discoverySandbox.Region,
                        '-AccessKey', $discoverySandbox.AccessKey, '-SecretKey', $discoverySandbox.SecretKey, '-Runs', $perProcess))
                if ($m.ExitCode -ne 0) { throw "Get-MoltarInstance failed: $(Get-Tail $m.Stderr)" }
                $moltarRuns.Add((Get-Content $m.Stdout | Select-Object -Last 1 | ConvertFrom-Json))
                $text = foreach ($pair in @(@('raw paginator', $rawRuns[-1]), @('raw SDK in pwsh', $pwshRuns[-1]), @('Get-MoltarInstance', $moltarRuns[-1]))) {
                    "$($pair[0]) $(($pair[1].milliseconds | ForEach-Object { '{0:0}' -f $_ }) -join '/') ms"
                }
                Write-Host "    round ${round}: $($text -join '; ')"
            }
            function Get-DiscoverySummary($runs) {
                $first = @($runs | ForEach-Object { $_.milliseconds[0] / 1000 })
                $later = @($runs | ForEach-Object { $_.milliseconds | Select-Object -Skip 3 } | ForEach-Object { $_ / 1000 })
                [ordered]@{
                    FirstMedian = Get-Median $first; FirstMin = ($first | Measure-Object -Minimum).Minimum
                    LaterMedian = Get-Median $later; LaterMin = ($later | Measure-Object -Minimum).Minimum
                    PeakOverBaseline = Get-Median @($runs | ForEach-Object { $_.peakRssBytes - $_.rssBeforeBytes })
                    PeakRss = Get-Median @($runs | ForEach-Object { $_.peakRssBytes })
                    Instances = $runs[0].instances
                }
            }
            $report.Discovery = [ordered]@{
                Instances = $rawRuns[0].instances
                Pages     = $rawRuns[0].pages
                Raw       = Get-DiscoverySummary $rawRuns
                RawPwsh   = Get-DiscoverySummary $pwshRuns
                Moltar    = Get-DiscoverySummary $moltarRuns
            }
            if ($report.Discovery.Moltar.Instances -ne $report.Discovery.Instances) {
                $notes.Add("Get-MoltarInstance returned $($report.Discovery.Moltar.Instances) instances, the raw paginator $($report.Discovery.Instances).")
            }
        }
        finally {
            Stop-MoltarSandbox $discoverySandbox
        }
    }

    if ($SsmInstances -gt 0) {
        Write-Step "SSM Run Command: $SsmInstances instances in one call"
        $ssmSandbox = Start-MoltarSandbox -SandboxPath $SandboxPath -Synthetic $SsmInstances -TimeoutSeconds 600
        try {
            $ssmRuns = foreach ($round in 1..3) {
                $m = Invoke-Measured -FilePath $pwshPath -ArgumentList (@($pwshPrefix) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $PSScriptRoot 'MoltarSsm.ps1'),
                        '-ModulePath', $ModulePath, '-Endpoint', $ssmSandbox.Endpoint, '-SsmEndpoint', $ssmSandbox.SsmEndpoint, '-Region', $ssmSandbox.Region,
                        '-AccessKey', $ssmSandbox.AccessKey, '-SecretKey', $ssmSandbox.SecretKey))
                if ($m.ExitCode -ne 0) { throw "Invoke-MoltarCommand -Transport Ssm failed: $(Get-Tail $m.Stderr)" }
                $run = Get-Content $m.Stdout | Select-Object -Last 1 | ConvertFrom-Json
                Write-Host "    round ${round}: $('{0:0}' -f $run.milliseconds) ms, $($run.succeeded) of $($run.results) succeeded, peak $('{0:0}' -f ($run.peakRssBytes / 1MB)) MB"
                $run
            }
            $seconds = @($ssmRuns | ForEach-Object { $_.milliseconds / 1000 })
            $report.Ssm = [ordered]@{
                Instances        = $SsmInstances
                Results          = $ssmRuns[0].results
                Succeeded        = ($ssmRuns | Measure-Object -Property succeeded -Minimum).Minimum
                Median           = Get-Median $seconds
                Min              = ($seconds | Measure-Object -Minimum).Minimum
                PeakOverBaseline = Get-Median @($ssmRuns | ForEach-Object { $_.peakRssBytes - $_.rssBeforeBytes })
                PeakRss          = Get-Median @($ssmRuns | ForEach-Object { $_.peakRssBytes })
            }
            if ($report.Ssm.Results -ne $SsmInstances) { $notes.Add("Invoke-MoltarCommand -Transport Ssm returned $($report.Ssm.Results) results for $SsmInstances instances.") }
        }
        finally {
            Stop-MoltarSandbox $ssmSandbox
        }
    }

    $report.LoadAtEnd = Get-LoadAverage
    $report.Finished = (Get-Date).ToUniversalTime().ToString('yyyy-MM-dd HH:mm') + ' UTC'
    $failedRuns = @($records | Where-Object { -not $_.Ok })
    if ($failedRuns.Count) { $notes.Add("‡ runs that failed (not counted in the figures): $(@($failedRuns | ForEach-Object { "$($_.Tool) N=$($_.Hosts) '$($_.Command)' run $($_.Run): $($_.Detail)" }) -join '; ')") }
    if (-not $OnlySsm) { $report.Targets = Get-Target }
}

if ($OnlySsm) {
    # One row: its own files; the README's generated section is rewritten only by a run of every row.
    New-Item -ItemType Directory -Force $OutputDirectory | Out-Null
    $report | ConvertTo-Json -Depth 8 | Set-Content (Join-Path $OutputDirectory 'results-ssm.json')
    $markdown = (@("Measured $($report.Started) to $($report.Finished) on $($report.Machine.Cores) × $($report.Machine.Cpu); load $($report.LoadAtStart) at the start, $($report.LoadAtEnd) at the end.") +
                 @(New-SsmMarkdown $report.Ssm) + @($notes | ForEach-Object { ''; $_ })) -join "`n"
    Set-Content (Join-Path $OutputDirectory 'results-ssm.md') $markdown
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
    Write-Host ''
    Write-Host $markdown
    Write-Step "Wrote $(Join-Path $OutputDirectory 'results-ssm.md') and results-ssm.json (README untouched: -OnlySsm)"
    return
}

# The work folder goes whether or not the rendering below fails (a run once left it behind that way).
try {
$markdown = New-Markdown
New-Item -ItemType Directory -Force $OutputDirectory | Out-Null
$report | ConvertTo-Json -Depth 8 | Set-Content (Join-Path $OutputDirectory 'results.json')
Set-Content (Join-Path $OutputDirectory 'results.md') $markdown
$svg = Join-Path $OutputDirectory 'chart.svg'
New-Chart -SvgPath $svg
if (Get-Command rsvg-convert -ErrorAction Ignore) {
    & rsvg-convert -f png -o (Join-Path $OutputDirectory 'chart.png') $svg
    if ($LASTEXITCODE -ne 0) { Write-Warning 'rsvg-convert failed; chart.svg only.' }
}
else {
    Write-Warning 'rsvg-convert is missing (apt-get install librsvg2-bin): chart.svg only, no chart.png.'
}
if ($ReadmePath) { Update-Readme $ReadmePath $markdown }
}
finally {
    if (-not $ResultsPath) { Remove-Item -Recurse -Force $work -ErrorAction Ignore }
}
Write-Host ''
Write-Host $markdown
Write-Step "Wrote $(Join-Path $OutputDirectory 'results.md'), results.json, chart.svg$(if (Test-Path (Join-Path $OutputDirectory 'chart.png')) { ', chart.png' })"
