# Invoke-MoltarCommand against one sandbox fleet of 20 real sshd hosts (plus, for jump hosts, sshd processes of this
# file's own in two network namespaces). Nothing here reads or writes the real ~/.ssh: HOME points at a scratch folder.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

Describe 'Invoke-MoltarCommand' -Skip:([bool] $SkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        Import-Module $ModulePath -Force
        $script:TestHome = Enter-TestHome -Name command
        # These tests check that every connection is closed when a call ends (and count sockets and threads across
        # calls): the connection pool is off for them. Tests/ConnectionPool.Tests.ps1 covers the pool.
        $env:MOLTAR_CONNECTION_IDLE_SECONDS = '0'
        $script:Scratch = $TestHome.Scratch

        $script:Sandbox = Start-TestSandbox -Hosts 20
        $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
        $script:Hosts = @($Sandbox.Hosts | Sort-Object Name)
        $script:Addresses = @($Hosts | ForEach-Object Address)
        $script:Ssh = @{ KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
        $script:CmdletId = 'Moltar.Cmdlets.InvokeMoltarCommandCommand'
        # A command that never ends would hang the whole run: let it fail as a Timeout instead (tests that are
        # about timeouts give their own -TimeoutSeconds).
        $global:PSDefaultParameterValues['Invoke-MoltarCommand:TimeoutSeconds'] = 90

        $script:Repo = Join-Path $Scratch 'repo'
        New-Item -ItemType Directory -Force -Path $Repo | Out-Null
        Set-Content (Join-Path $Repo '.moltar.psd1') "@{ Project = 'demo' }"
        Push-Location $Repo
        $script:Instances = @(Get-MoltarInstance)

        # A second runspace with the module loaded: Ctrl+C (Stop) and the progress stream are driven through it.
        $script:Runspace = [runspacefactory]::CreateRunspace()
        $Runspace.Open()
        $Runspace.SessionStateProxy.Path.SetLocation($Repo) | Out-Null
        $init = [powershell]::Create()
        $init.Runspace = $Runspace
        $null = $init.AddCommand('Import-Module').AddParameter('Name', $ModulePath).Invoke()
        $init.Dispose()

        function New-RunspaceCommand([scriptblock] $Script, [object[]] $Arguments = @()) {
            $ps = [powershell]::Create()
            $ps.Runspace = $script:Runspace
            $null = $ps.AddScript($Script)
            foreach ($argument in $Arguments) { $null = $ps.AddArgument($argument) }
            $ps
        }

        function Get-ThrownError([scriptblock] $Script) {
            try { & $Script; $null } catch { $_ }
        }

        function Find-TestHost([string] $Address) { $script:Hosts | Where-Object Address -EQ $Address }

        function New-KnownHosts([string] $Name, [string[]] $Lines) {
            $path = Join-Path $script:Scratch "$Name.known_hosts"
            Set-Content -Path $path -Value $Lines
            $path
        }

        # Remote: how many processes run exactly this command line (the grep itself never matches -x).
        function Get-RemoteProcessCount([string[]] $Address, [string] $CommandLine) {
            $results = $Address | Invoke-MoltarCommand "ps -eo args | grep -cx '$CommandLine' || true" @script:Ssh -Quiet
            ($results | ForEach-Object { [int] $_.Output.Trim() } | Measure-Object -Sum).Sum
        }

        # Client: TCP connections of this process to the given hosts' port 22 that are still open (SSH.NET's sockets
        # are dual-mode: ss shows the peer as [::ffff:127.0.10.1]:22).
        function Get-OpenConnection([string[]] $Address) {
            $wanted = [Collections.Generic.HashSet[string]]::new([string[]] @($Address | ForEach-Object { "${_}:22" }))
            @(ss -Htnp state established | Where-Object { $_ -match "pid=$PID," } |
                Where-Object { $columns = -split $_; $columns.Count -ge 4 -and $wanted.Contains(($columns[3] -replace '^\[::ffff:([^\]]+)\]:', '$1:')) })
        }
    }

    AfterAll {
        Remove-Item env:MOLTAR_CONNECTION_IDLE_SECONDS -ErrorAction Ignore
        $global:PSDefaultParameterValues.Remove('Invoke-MoltarCommand:TimeoutSeconds')
        Pop-Location -ErrorAction Ignore
        if ($Runspace) { $Runspace.Dispose() }
        Stop-TestSandbox $Sandbox
        Exit-TestHome $TestHome
    }

    Context 'results, exit codes and errors' {
        It 'returns each host its own output, stderr apart, its exit code and a CommandFailed error for non-zero exits' {
            $command = 'n=$(uname -n); echo "out $n"; echo "err $n" >&2; case $n in *-web-*) exit 0;; *-jobs-*) exit 3;; *) exit 70;; esac'
            $results = $Instances | Invoke-MoltarCommand $command @Ssh -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures
            $succeeded = $?

            $succeeded | Should -BeFalse
            $results.Count | Should -Be 20
            ($results.InstanceId | Sort-Object) | Should -Be ($Instances.InstanceId | Sort-Object)
            foreach ($result in $results) {
                $result | Should -BeOfType ([Moltar.MoltarCommandResult])
                $expected = if ($result.Name -like '*-web-*') { 0 } elseif ($result.Name -like '*-jobs-*') { 3 } else { 70 }
                $result.Output | Should -BeExactly "out $($result.Name)`n"
                $result.Error | Should -BeExactly "err $($result.Name)`n"
                $result.ExitCode | Should -Be $expected
                $result.Succeeded | Should -Be ($expected -eq 0)
                $result.ErrorId | Should -Be $(if ($expected -eq 0) { $null } else { 'CommandFailed' })
                $result.Command | Should -BeExactly $command
                $result.Address | Should -Be ($Instances | Where-Object InstanceId -EQ $result.InstanceId).Address
                $result.Duration | Should -BeGreaterThan ([TimeSpan]::Zero)
            }

            $failed = @($results | Where-Object { -not $_.Succeeded })
            $failed.Count | Should -BeGreaterThan 0
            $failures.Count | Should -Be $failed.Count
            foreach ($record in $failures) {
                $record.FullyQualifiedErrorId | Should -BeExactly "CommandFailed,$CmdletId"
                $record.TargetObject | Should -BeOfType ([Moltar.MoltarInstance])
                $record.CategoryInfo.Category | Should -Be 'InvalidResult'
                $result = $results | Where-Object InstanceId -EQ $record.TargetObject.InstanceId
                $record.Exception.Message | Should -BeExactly "The command exited with code $($result.ExitCode) on $($result.Name)."
            }
        }

        It 'leaves $? true when every host succeeds' {
            $results = $Instances | Invoke-MoltarCommand 'true' @Ssh -Quiet
            $? | Should -BeTrue
            @($results | Where-Object Succeeded).Count | Should -Be 20
        }

        It 'stops a scheduled task with -ErrorAction Stop: hosts already running finish, then one HostsFailed error names the failed hosts' {
            $results = [Collections.Generic.List[object]]::new()
            $thrown = $null
            try { $Instances | Invoke-MoltarCommand 'case $(uname -n) in *-jobs-*) exit 9;; esac' @Ssh -Quiet -ErrorAction Stop | ForEach-Object { $results.Add($_) } }
            catch { $thrown = $_ }
            $thrown | Should -Not -BeNullOrEmpty
            $thrown.FullyQualifiedErrorId | Should -BeExactly "HostsFailed,$CmdletId"
            $results.Count | Should -Be $Instances.Count -Because 'every host has its result, ran or not started'
            $failed = @($results | Where-Object ErrorId -EQ 'CommandFailed')
            $failed.Count | Should -BeGreaterThan 0
            $failed | ForEach-Object { $_.Name | Should -BeLike '*-jobs-*'; $thrown.Exception.Message | Should -Match ([regex]::Escape("$($_.Name) (CommandFailed)")) }
            @($results | Where-Object { $_.Name -notlike '*-jobs-*' -and $_.ErrorId -ne 'Skipped' } | Where-Object { -not $_.Succeeded }) | Should -BeNullOrEmpty
            $thrown.Exception.Message | Should -Match "$($failed.Count) hosts? failed"
            # Every connection is closed when the call returns.
            $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
            while ((Get-OpenConnection $Addresses) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
            Get-OpenConnection $Addresses | Should -BeNullOrEmpty
        }

        It 'brings back a 10 MB output from one host whole, beside the results of the other hosts' {
            $big = $Hosts[4].Name
            $line = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-' # 63 characters + newline = 64 bytes
            $command = "if [ `$(uname -n) = $big ]; then yes '$line' | head -c 10485760; else uname -n; fi"
            $results = $Instances | Invoke-MoltarCommand $command @Ssh -Quiet
            $large = $results | Where-Object Name -EQ $big
            $large.Succeeded | Should -BeTrue
            $large.Output.Length | Should -Be 10485760
            $large.Output -ceq ("$line`n" * 163840) | Should -BeTrue
            foreach ($other in $results | Where-Object Name -NE $big) { $other.Output | Should -BeExactly "$($other.Name)`n" }
        }

        It 'keeps at most -MaxOutputBytes of a host''s output and says so in a warning' {
            $result = $Addresses[0] | Invoke-MoltarCommand 'seq 1 20000' @Ssh -Quiet -MaxOutputBytes 100 -WarningVariable warnings
            $result.Succeeded | Should -BeTrue
            $result.Output | Should -BeExactly ((1..20000 -join "`n") + "`n").Substring(0, 100)
            $warnings.Count | Should -Be 1
            "$($warnings[0])" | Should -BeExactly "$($Addresses[0]): kept the first 100 bytes of 108894 bytes of output (-MaxOutputBytes)."
        }
    }

    Context 'fan-out' {
        It 'emits each host''s result as it finishes: a slow host does not hold back the others' {
            $slow = $Instances[0]
            # A handshake: the slow host finishes only once the pipeline has received the 19 other results (this test
            # then creates the file it waits for, over a connection of its own). Results held back until every host
            # had finished would never arrive: the slow host would run into this file's 90 s -TimeoutSeconds.
            $go = "/tmp/moltar-others-seen-$([guid]::NewGuid().ToString('n'))"
            $seen = [Collections.Generic.List[object]]::new()
            $Instances | Invoke-MoltarCommand "if [ `$(uname -n) = $($slow.Name) ]; then while [ ! -e $go ]; do sleep 0.1; done; fi; uname -n" @Ssh -Quiet -ErrorAction SilentlyContinue |
                ForEach-Object {
                    $seen.Add($_)
                    if ($seen.Count -eq 19) { $null = $slow | Invoke-MoltarCommand "touch $go" @Ssh -Quiet }
                }

            $seen.Count | Should -Be 20
            $seen[-1].Name | Should -Be $slow.Name
            foreach ($result in $seen) {
                $result.Succeeded | Should -BeTrue -Because "$($result.Name): $($result.ErrorId) $($result.Error)"
                $result.Output | Should -BeExactly "$($result.Name)`n"
            }
        }

        It 'ends a command that outlasts -TimeoutSeconds on that host only, with a Timeout error, and kills it' {
            $stuck = $Instances[1]
            # The timeout leaves the 19 quick hosts ample time for `echo done` on a loaded machine.
            $results = $Instances | Invoke-MoltarCommand "if [ `$(uname -n) = $($stuck.Name) ]; then sleep 31; fi; echo done" @Ssh -Quiet -TimeoutSeconds 10 -ErrorAction SilentlyContinue -ErrorVariable failures

            $timedOut = $results | Where-Object Name -EQ $stuck.Name
            $timedOut.Succeeded | Should -BeFalse
            $timedOut.ErrorId | Should -Be 'Timeout'
            $timedOut.ExitCode | Should -BeNullOrEmpty
            $timedOut.Error | Should -Match "did not finish within 10 s on $($stuck.Name)"
            $timedOut.Duration.TotalSeconds | Should -BeGreaterOrEqual 10 -Because 'the timeout was waited for, not cut short'
            @($results | Where-Object { $_.Succeeded -and $_.Output -eq "done`n" }).Count | Should -Be 19
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "Timeout,$CmdletId"
            $failures[0].TargetObject.InstanceId | Should -Be $stuck.InstanceId
            Get-RemoteProcessCount $stuck.Address 'sleep 31' | Should -Be 0
        }

        It 'runs hosts one at a time in the order given with -Series' {
            $order = $Instances[7, 2, 11, 5]
            $results = $order | Invoke-MoltarCommand 'sleep 0.2; uname -n' @Ssh -Quiet -Series
            $results.Name | Should -Be $order.Name
            for ($i = 1; $i -lt $results.Count; $i++) {
                $results[$i].StartTime | Should -BeGreaterThan ($results[$i - 1].StartTime + $results[$i - 1].Duration)
            }
        }

        It 'never runs more than -ThrottleLimit hosts at once' {
            $results = $Instances[0..7] | Invoke-MoltarCommand 'sleep 0.3' @Ssh -Quiet -ThrottleLimit 2
            $results.Count | Should -Be 8
            # At the moment each command started, at most two commands (itself included) were running.
            foreach ($result in $results) {
                $running = @($results | Where-Object { $_.StartTime -le $result.StartTime -and $result.StartTime -lt ($_.StartTime + $_.Duration) })
                $running.Count | Should -BeLessOrEqual 2
            }
            # And the limit was used, not just respected: some commands ran side by side.
            $sideBySide = @(foreach ($a in $results) { foreach ($b in $results) {
                        if ($a -ne $b -and $a.StartTime -lt ($b.StartTime + $b.Duration) -and $b.StartTime -lt ($a.StartTime + $a.Duration)) { $a } } })
            $sideBySide.Count | Should -BeGreaterThan 0
        }

        It 'reports a host that cannot be reached as ConnectFailed without disturbing the others' {
            $results = @($Addresses[0], '127.0.11.250', $Addresses[1]) | Invoke-MoltarCommand 'echo ok' @Ssh -Quiet -ConnectTimeoutSeconds 3 -ErrorAction SilentlyContinue -ErrorVariable failures
            $results.Count | Should -Be 3
            ($results | Where-Object Address -EQ '127.0.11.250').ErrorId | Should -Be 'ConnectFailed'
            @($results | Where-Object Succeeded).Count | Should -Be 2
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "ConnectFailed,$CmdletId"
            $failures[0].TargetObject | Should -Be '127.0.11.250'
            $failures[0].Exception.Message | Should -Match '127\.0\.11\.250:22'
        }

        It 'reports a connection dropped mid-command as ConnectionLost' {
            $victim = $Hosts[19]
            $ps = New-RunspaceCommand { param($address, $ssh) $address | Invoke-MoltarCommand 'echo started; sleep 20' @ssh } @($victim.Address, $Ssh)
            try {
                $async = $ps.BeginInvoke()
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                while ($ps.Streams.Information.Count -lt 1 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
                Stop-MoltarSandboxHost $Sandbox $victim.Name
                $result = $ps.EndInvoke($async)
                $result.Count | Should -Be 1
                $result[0].ErrorId | Should -Be 'ConnectionLost'
                $result[0].Output | Should -BeExactly "started`n"
                $ps.Streams.Error[0].FullyQualifiedErrorId | Should -BeExactly "ConnectionLost,$CmdletId"
            }
            finally {
                $ps.Dispose()
                $null = Start-MoltarSandboxHost $Sandbox $victim.Name
            }
            ($victim.Address | Invoke-MoltarCommand 'uname -n' @Ssh -Quiet).Output | Should -BeExactly "$($victim.Name)`n"
        }

        It 'writes progress: hosts done of total, and failed' {
            $ps = New-RunspaceCommand { param($instances, $ssh) $instances | Invoke-MoltarCommand 'case $(uname -n) in *-search-*) exit 1;; esac' @ssh -Quiet } @(, $Instances)
            $null = $ps.AddArgument($Ssh)
            try {
                $results = $ps.Invoke()
                $results.Count | Should -Be 20
                $failedCount = @($results | Where-Object { -not $_.Succeeded }).Count
                $progress = @($ps.Streams.Progress)
                $progress.Activity | Select-Object -Unique | Should -Be "Invoke-MoltarCommand: case `$(uname -n) in *-search-*) exit 1;; esac"
                $running = @($progress | Where-Object RecordType -EQ 'Processing')
                $running.Count | Should -Be 20
                $running[-1].StatusDescription | Should -BeExactly "20 of 20 hosts done, $failedCount failed"
                $running[-1].PercentComplete | Should -Be 100
                $progress[-1].RecordType | Should -Be 'Completed'
            }
            finally { $ps.Dispose() }
        }
    }

    Context 'Ctrl+C' {
        It 'stops every host without waiting for the commands when the pipeline is stopped (<Mode>), leaving no connection and no remote command' -TestCases @(
            # The commands outlast the hang guard: gone within it means ended by the stop, not finished.
            @{ Mode = 'exec'; Sleep = "sleep $($NeverWaitedSeconds + 47)"; Pty = $false }
            @{ Mode = 'pty'; Sleep = "sleep $($NeverWaitedSeconds + 48)"; Pty = $true }
        ) {
            $ps = New-RunspaceCommand { param($instances, $ssh, $command, $pty) $instances | Invoke-MoltarCommand $command @ssh -Pty:$pty } @(, $Instances)
            $null = $ps.AddArgument($Ssh).AddArgument("echo started; $Sleep; echo never").AddArgument($Pty)
            try {
                $async = $ps.BeginInvoke()
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                while ($ps.Streams.Information.Count -lt 20 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
                $ps.Streams.Information.Count | Should -Be 20 -Because 'every host started the command'
                Get-RemoteProcessCount $Addresses $Sleep | Should -Be 20
                (Get-OpenConnection $Addresses).Count | Should -Be 20

                $stopping = $ps.BeginStop($null, $null)
                $stopping.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($HangGuardSeconds)) | Should -BeTrue -Because 'Stop ends the run (hang guard)'
                $ps.EndStop($stopping)
                $ps.InvocationStateInfo.State | Should -Be 'Stopped'
                $async.IsCompleted | Should -BeTrue
                Get-OpenConnection $Addresses | Should -BeNullOrEmpty
                # TERM (exec) or the hang-up of the terminal (pty) ends the remote commands.
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                do { $left = Get-RemoteProcessCount $Addresses $Sleep } while ($left -gt 0 -and [DateTime]::UtcNow -lt $deadline)
                $left | Should -Be 0
            }
            finally { $ps.Dispose() }
        }
    }

    Context 'input and selection' {
        It 'selects instances with the selection parameters, as Get-MoltarInstance does' {
            $web = @(Get-MoltarInstance -Cluster web)
            $web.Count | Should -BeGreaterThan 1
            $results = Invoke-MoltarCommand -Cluster web 'uname -n' @Ssh -Quiet
            ($results.Name | Sort-Object) | Should -Be ($web.Name | Sort-Object)
            foreach ($result in $results) { $result.Output | Should -BeExactly "$($result.Name)`n" }
            $results = Invoke-MoltarCommand -Environment staging -Cluster web 'uname -n' @Ssh -Quiet
            $results.Name | ForEach-Object { $_ | Should -BeLike 'demo-staging-web-*' }
        }

        It 'stops with InstanceNotFound when the selection finds nothing' {
            $thrown = Get-ThrownError { Invoke-MoltarCommand -Cluster nosuch 'true' @Ssh }
            $thrown.FullyQualifiedErrorId | Should -BeExactly "InstanceNotFound,$CmdletId"
            $thrown.Exception.Message | Should -Match 'nothing was run'
        }

        It 'takes Get-EC2Instance-shaped objects by property, with -AddressType choosing the address' {
            $shaped = $Hosts[0..2] | ForEach-Object {
                [pscustomobject]@{
                    InstanceId       = $_.InstanceId
                    PrivateIpAddress = '10.255.255.1'
                    PublicIpAddress  = $_.Address
                    Tags             = @([pscustomobject]@{ Key = 'Cluster'; Value = 'web' }, [pscustomobject]@{ Key = 'Name'; Value = $_.Name })
                }
            }
            $results = $shaped | Invoke-MoltarCommand 'uname -n; exit 5' @Ssh -Quiet -AddressType Public -ErrorAction SilentlyContinue -ErrorVariable failures
            $results.Count | Should -Be 3
            foreach ($result in $results) {
                $source = $Hosts | Where-Object InstanceId -EQ $result.InstanceId
                $result.Name | Should -Be $source.Name
                $result.Address | Should -Be $source.Address
                $result.Output | Should -BeExactly "$($source.Name)`n"
                $result.ExitCode | Should -Be 5
            }
            $failures.Count | Should -Be 3
            $failures | ForEach-Object { $_.TargetObject | Should -BeIn $shaped }
        }

        It 'takes plain host names and addresses' {
            $results = $Addresses[0..3] | Invoke-MoltarCommand 'uname -n' @Ssh -Quiet
            ($results | ForEach-Object Address | Sort-Object) | Should -Be ($Addresses[0..3] | Sort-Object)
            foreach ($result in $results) {
                $result.InstanceId | Should -BeExactly ''
                $result.Output | Should -BeExactly "$((Find-TestHost $result.Address).Name)`n"
            }
        }

        It 'refuses input without an address, naming what it needs' {
            $thrown = Get-ThrownError { [pscustomobject]@{ InstanceId = 'i-0123456789abcdef0' } | Invoke-MoltarCommand 'true' @Ssh }
            $thrown.FullyQualifiedErrorId | Should -BeExactly "InvalidInputObject,$CmdletId"
            $thrown.Exception.Message | Should -Match 'i-0123456789abcdef0 has no address'
        }

        It 'runs nothing with -WhatIf' {
            $results = $Instances[0..2] | Invoke-MoltarCommand 'touch /tmp/moltar-whatif' @Ssh -WhatIf
            $results | Should -BeNullOrEmpty
            $check = $Instances[0..2] | Invoke-MoltarCommand 'test ! -e /tmp/moltar-whatif' @Ssh -Quiet
            @($check | Where-Object Succeeded).Count | Should -Be 3
        }
    }

    Context 'standard input, terminal and live output' {
        It 'sends -Stdin to every host' {
            $results = $Instances | Invoke-MoltarCommand 'cat; echo "<$(uname -n)"' @Ssh -Quiet -Stdin "first line`nsecond line`n"
            foreach ($result in $results) { $result.Output | Should -BeExactly "first line`nsecond line`n<$($result.Name)`n" }
        }

        It 'sends the bytes of -StdinPath to every host' {
            $file = Join-Path $Scratch 'payload.bin'
            $bytes = [byte[]]::new(1MB)
            [Random]::new(7).NextBytes($bytes)
            [IO.File]::WriteAllBytes($file, $bytes)
            $expected = (Get-FileHash $file -Algorithm SHA256).Hash.ToLowerInvariant()
            $results = $Instances | Invoke-MoltarCommand 'sha256sum | cut -d" " -f1' @Ssh -Quiet -StdinPath $file
            $results.Count | Should -Be 20
            foreach ($result in $results) { $result.Output.Trim() | Should -Be $expected }
        }

        It 'refuses -Stdin with -StdinPath, and a -StdinPath that does not exist' {
            (Get-ThrownError { $Addresses[0] | Invoke-MoltarCommand 'cat' @Ssh -Stdin 'x' -StdinPath $PSCommandPath }).FullyQualifiedErrorId |
                Should -BeExactly "StdinConflict,$CmdletId"
            $thrown = Get-ThrownError { $Addresses[0] | Invoke-MoltarCommand 'cat' @Ssh -StdinPath (Join-Path $Scratch 'missing.txt') }
            $thrown.FullyQualifiedErrorId | Should -BeExactly "StdinPathNotFound,$CmdletId"
            $thrown.Exception.Message | Should -Match 'missing\.txt'
        }

        It 'runs under a terminal with -Pty: tty answers, stderr merges into the output, the exit code is kept' {
            $results = $Instances | Invoke-MoltarCommand 'tty; echo to-stderr >&2; exit 4' @Ssh -Quiet -Pty -ErrorAction SilentlyContinue
            $results.Count | Should -Be 20
            foreach ($result in $results) {
                $result.Output | Should -Match '^/dev/pts/\d+\nto-stderr\n$'
                $result.Error | Should -BeExactly ''
                $result.ExitCode | Should -Be 4
                $result.ErrorId | Should -Be 'CommandFailed'
            }
            $plain = $Addresses[0] | Invoke-MoltarCommand 'tty' @Ssh -Quiet -ErrorAction SilentlyContinue
            $plain.Output | Should -BeExactly "not a tty`n"
            $plain.ExitCode | Should -Be 1
        }

        It 'gets sudo through requiretty with -Pty' {
            $target = $Addresses[3]
            $setup = $target | Invoke-MoltarCommand 'echo "Defaults requiretty" > /tmp/requiretty && sudo -n install -m 0440 /tmp/requiretty /etc/sudoers.d/zz-requiretty' @Ssh -Quiet
            $setup.Succeeded | Should -BeTrue
            try {
                $refused = $target | Invoke-MoltarCommand 'sudo -n id -u' @Ssh -Quiet -ErrorAction SilentlyContinue
                $refused.Succeeded | Should -BeFalse
                $refused.Error | Should -Match 'must have a tty'
                $allowed = $target | Invoke-MoltarCommand 'sudo -n id -u' @Ssh -Quiet -Pty
                $allowed.Output | Should -BeExactly "0`n"
            }
            finally {
                $null = $target | Invoke-MoltarCommand 'sudo -n rm -f /etc/sudoers.d/zz-requiretty' @Ssh -Quiet -Pty
            }
        }

        It 'writes each output line live on the Information stream, prefixed with the host name and tagged stdout or stderr' {
            $results = $Instances[0..2] | Invoke-MoltarCommand 'echo line-one; echo line-two; echo oops >&2' @Ssh -InformationVariable lines 6>$null
            $results.Count | Should -Be 3
            @($lines | Where-Object Tags -NotContains 'summary').Count | Should -Be 9
            @($lines | Where-Object Tags -Contains 'summary').Count | Should -Be 1
            foreach ($instance in $Instances[0..2]) {
                $mine = @($lines | Where-Object { ($_.MessageData.Message -replace '\e\[[0-9;]*m') -like "$($instance.Name): *" })
                ($mine | Where-Object Tags -Contains 'stdout' | ForEach-Object { $_.MessageData.Message -replace '\e\[[0-9;]*m' }) |
                    Should -Be @("$($instance.Name): line-one", "$($instance.Name): line-two")
                ($mine | Where-Object Tags -Contains 'stderr' | ForEach-Object { $_.MessageData.Message -replace '\e\[[0-9;]*m' }) |
                    Should -Be "$($instance.Name): oops"
                $mine | ForEach-Object { $_.Tags | Should -Contain 'Moltar' }
            }
            $quiet = $Instances[0..2] | Invoke-MoltarCommand 'echo line-one' @Ssh -Quiet -InformationVariable none
            @($none | Where-Object Tags -NotContains 'summary') | Should -BeNullOrEmpty -Because '-Quiet leaves only the summary line'
            $quiet.Output | Should -Be @("line-one`n", "line-one`n", "line-one`n")
        }

        It 'shows live lines plainly on a redirected console, and hides them with -Quiet or 6>$null while results remain' {
            $address = $Addresses[5]
            $script = @"
Import-Module '$ModulePath'
`$p = @{ KeyFile = '$($Sandbox.ClientKeyPath)'; KnownHostsPath = '$($Sandbox.KnownHostsPath)'; SshConfigPath = 'none' }
'== shown'
'result ' + ('$address' | Invoke-MoltarCommand 'echo live-out; echo live-err >&2' @p).Output.Trim()
'== redirected'
'result ' + ('$address' | Invoke-MoltarCommand 'echo live-out; echo live-err >&2' @p 6>`$null).Output.Trim()
'== quiet'
'result ' + ('$address' | Invoke-MoltarCommand 'echo live-out; echo live-err >&2' @p -Quiet).Output.Trim()
"@
            $output = @(Invoke-CleanPwsh -Command $script)
            $LASTEXITCODE | Should -Be 0
            $text = $output -join "`n"
            $text | Should -Not -Match '\e'
            $sections = @($text -split '== \w+\n' | Select-Object -Skip 1 | ForEach-Object { , @($_.Trim() -split "`n") })
            # Each call's summary line is information too: shown with the live lines, and with -Quiet; not with 6>$null.
            $summary = '^Invoke-MoltarCommand .*: 1 succeeded, 0 failed, 0 not started \(1 host, [\d.]+ s\)\.$'
            (@($sections[0] -notmatch $summary | Sort-Object) -join '|') | Should -BeExactly "$($address): live-err|$($address): live-out|result live-out"
            @($sections[0] -match $summary).Count | Should -Be 1
            ($sections[1] -join '|') | Should -BeExactly 'result live-out'
            (@($sections[2] -notmatch $summary) -join '|') | Should -BeExactly 'result live-out'
            @($sections[2] -match $summary).Count | Should -Be 1
        }
    }

    Context 'host keys' {
        It 'refuses unknown hosts under -StrictHostKeyChecking Yes with HostKeyUnknown, writing nothing' {
            $file = New-KnownHosts 'empty' @()
            $results = $Instances | Invoke-MoltarCommand 'true' @Ssh -KnownHostsPath $file -StrictHostKeyChecking Yes -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures
            @($results | Where-Object ErrorId -EQ 'HostKeyUnknown').Count | Should -Be 20
            $failures.Count | Should -Be 20
            $failures | ForEach-Object { $_.FullyQualifiedErrorId | Should -BeExactly "HostKeyUnknown,$CmdletId" }
            $failures[0].Exception.Message | Should -Match 'is not in known_hosts .*StrictHostKeyChecking is yes'
            (Get-Content $file -Raw) | Should -BeNullOrEmpty
        }

        It 'records each new host exactly once under AcceptNew, with 20 hosts in parallel, and trusts them afterwards' {
            $file = Join-Path $Scratch 'acceptnew/known_hosts'
            New-Item -ItemType Directory -Force -Path (Split-Path $file) | Out-Null
            $first = $Instances | Invoke-MoltarCommand 'true' @Ssh -KnownHostsPath $file -StrictHostKeyChecking AcceptNew -Quiet
            @($first | Where-Object Succeeded).Count | Should -Be 20
            $second = $Instances | Invoke-MoltarCommand 'true' @Ssh -KnownHostsPath $file -StrictHostKeyChecking Yes -Quiet
            @($second | Where-Object Succeeded).Count | Should -Be 20

            $lines = @(Get-Content $file | Where-Object { $_.Trim() })
            $lines.Count | Should -Be 20
            foreach ($h in $Hosts) {
                $entries = @($lines | Where-Object { $_ -eq "$($h.Address) $($h.HostPublicKey)" })
                $entries.Count | Should -Be 1 -Because "$($h.Address) is recorded once, with its key"
            }
        }

        It 'accepts new hosts by default, and leaves the policy to ssh config when it sets one' {
            $file = Join-Path $Scratch 'default-policy/new/known_hosts'
            $results = $Instances[0..4] | Invoke-MoltarCommand 'true' -KeyFile $Sandbox.ClientKeyPath -KnownHostsPath $file -SshConfigPath none -Quiet
            @($results | Where-Object Succeeded).Count | Should -Be 5
            @(Get-Content $file).Count | Should -Be 5

            $config = Join-Path $Scratch 'ssh_config_strict'
            Set-Content $config @('Host *', '    StrictHostKeyChecking yes')
            $strict = New-KnownHosts 'default-policy-config' @()
            $refused = $Instances[0..4] | Invoke-MoltarCommand 'true' -KeyFile $Sandbox.ClientKeyPath -KnownHostsPath $strict -SshConfigPath $config -Quiet -ErrorAction SilentlyContinue
            $refused.ErrorId | Select-Object -Unique | Should -Be 'HostKeyUnknown'
        }

        It 'refuses a changed host key under <Policy> with HostKeyMismatch naming the host, the expected and the offered fingerprints' -TestCases @(
            @{ Policy = 'Yes' }, @{ Policy = 'AcceptNew' }
        ) {
            $victim = $Hosts[6]
            $other = $Hosts[7]
            $lines = $Hosts | ForEach-Object { if ($_ -eq $victim) { "$($_.Address) $($other.HostPublicKey)" } else { "$($_.Address) $($_.HostPublicKey)" } }
            $file = New-KnownHosts "changed-$Policy" $lines
            $before = Get-Content $file -Raw
            $results = $Instances | Invoke-MoltarCommand 'true' @Ssh -KnownHostsPath $file -StrictHostKeyChecking $Policy -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures
            ($results | Where-Object Address -EQ $victim.Address).ErrorId | Should -Be 'HostKeyMismatch'
            @($results | Where-Object Succeeded).Count | Should -Be 19
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "HostKeyMismatch,$CmdletId"
            $failures[0].TargetObject.InstanceId | Should -Be $victim.InstanceId
            $message = $failures[0].Exception.Message
            $message | Should -BeLike "*$($victim.Address)*"
            $message | Should -BeLike "*has CHANGED*expected ED25519 $($other.HostKeyFingerprint)*offered ED25519 $($victim.HostKeyFingerprint)*"
            Get-Content $file -Raw | Should -BeExactly $before
        }

        It 'refuses a host key marked @revoked with HostKeyRevoked' {
            $victim = $Hosts[8]
            $lines = @($Hosts | ForEach-Object { "$($_.Address) $($_.HostPublicKey)" }) + "@revoked * $($victim.HostPublicKey)"
            $file = New-KnownHosts 'revoked' $lines
            $results = $Instances | Invoke-MoltarCommand 'true' @Ssh -KnownHostsPath $file -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures
            ($results | Where-Object Address -EQ $victim.Address).ErrorId | Should -Be 'HostKeyRevoked'
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "HostKeyRevoked,$CmdletId"
        }

        It 'checks no key under -StrictHostKeyChecking No, and warns once' {
            $file = New-KnownHosts 'unchecked' @()
            $results = $Instances | Invoke-MoltarCommand 'true' @Ssh -KnownHostsPath $file -StrictHostKeyChecking No -Quiet -WarningVariable warnings 3>$null
            @($results | Where-Object Succeeded).Count | Should -Be 20
            @($warnings | Where-Object { "$_" -match 'StrictHostKeyChecking is no' }).Count | Should -Be 1
            (Get-Content $file -Raw) | Should -BeNullOrEmpty
        }
    }

    Context 'authentication' {
        It 'logs in through a real ssh-agent with no key file given (ed25519, and RSA with rsa-sha2 signatures)' {
            $rsa = Join-Path $Scratch 'agent_rsa'
            ssh-keygen -q -t rsa -b 3072 -N '' -C 'moltar-agent-rsa' -f $rsa | Out-Null
            $authorize = $Instances | Invoke-MoltarCommand 'cat >> ~/.ssh/authorized_keys' @Ssh -Quiet -StdinPath "$rsa.pub"
            @($authorize | Where-Object Succeeded).Count | Should -Be 20

            $socket = Join-Path $Scratch 'agent.sock'
            $agent = Start-Process -FilePath ssh-agent -ArgumentList '-D', '-a', $socket -PassThru -RedirectStandardOutput (Join-Path $Scratch 'agent.out')
            try {
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                while (-not (Test-Path $socket) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
                $env:SSH_AUTH_SOCK = $socket
                ssh-add -q $Sandbox.ClientKeyPath 2>&1 | Out-Null
                $LASTEXITCODE | Should -Be 0
                $viaAgent = $Instances | Invoke-MoltarCommand 'whoami' -KnownHostsPath $Sandbox.KnownHostsPath -SshConfigPath none -Quiet
                @($viaAgent | Where-Object { $_.Succeeded -and $_.Output -eq "ubuntu`n" }).Count | Should -Be 20

                ssh-add -q -D 2>&1 | Out-Null
                ssh-add -q $rsa 2>&1 | Out-Null
                $viaRsa = $Instances | Invoke-MoltarCommand 'whoami' -KnownHostsPath $Sandbox.KnownHostsPath -SshConfigPath none -Quiet
                @($viaRsa | Where-Object Succeeded).Count | Should -Be 20
            }
            finally {
                Remove-Item env:SSH_AUTH_SOCK -ErrorAction Ignore
                Stop-Process -Id $agent.Id -ErrorAction Ignore
            }
        }

        It 'fails with AuthenticationFailed when no agent and no usable key can log in' {
            $stranger = Join-Path $Scratch 'stranger_ed25519'
            ssh-keygen -q -t ed25519 -N '' -f $stranger | Out-Null
            $results = $Instances[0..1] | Invoke-MoltarCommand 'true' -KeyFile $stranger -KnownHostsPath $Sandbox.KnownHostsPath -SshConfigPath none -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures
            $results.ErrorId | Should -Be @('AuthenticationFailed', 'AuthenticationFailed')
            $failures.Count | Should -Be 2
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "AuthenticationFailed,$CmdletId"
            $failures[0].Exception.Message | Should -Match "Permission denied for ubuntu@127\.0\.\d+\.\d+:22"
        }

        It 'uses an encrypted key with its passphrase from -Credential, and refuses it without or with a wrong one' {
            $key = Join-Path $Scratch 'encrypted_ed25519'
            Copy-Item $Sandbox.ClientKeyPath $key
            chmod 600 $key
            ssh-keygen -q -p -P '' -N 'correct horse battery' -f $key | Out-Null
            $LASTEXITCODE | Should -Be 0
            Get-Content $key -Raw | Should -Not -Be (Get-Content $Sandbox.ClientKeyPath -Raw)
            # As in Posh-SSH: the credential's user name is the SSH user (unless -User), its password the key's passphrase.
            $credential = [pscredential]::new('ubuntu', (ConvertTo-SecureString 'correct horse battery' -AsPlainText -Force))
            $results = $Instances | Invoke-MoltarCommand 'whoami' -KeyFile $key -Credential $credential -KnownHostsPath $Sandbox.KnownHostsPath -SshConfigPath none -Quiet
            @($results | Where-Object Succeeded).Count | Should -Be 20

            $missing = Get-ThrownError { $Instances | Invoke-MoltarCommand 'whoami' -KeyFile $key -KnownHostsPath $Sandbox.KnownHostsPath -SshConfigPath none }
            $missing.FullyQualifiedErrorId | Should -BeExactly "KeyFileInvalid,$CmdletId"
            $missing.Exception.Message | Should -Match 'is encrypted; give its passphrase'
            $wrong = [pscredential]::new('ubuntu', (ConvertTo-SecureString 'wrong horse' -AsPlainText -Force))
            $bad = Get-ThrownError { $Instances | Invoke-MoltarCommand 'whoami' -KeyFile $key -Credential $wrong -KnownHostsPath $Sandbox.KnownHostsPath -SshConfigPath none }
            $bad.FullyQualifiedErrorId | Should -BeExactly "KeyFileInvalid,$CmdletId"
            $bad.Exception.Message | Should -Not -Match 'wrong horse'
        }

        It 'refuses a -KeyFile or -SshConfigPath that does not exist before connecting anywhere' {
            $thrown = Get-ThrownError { $Addresses[0] | Invoke-MoltarCommand 'true' -KeyFile (Join-Path $Scratch 'nokey') -SshConfigPath none }
            $thrown.FullyQualifiedErrorId | Should -BeExactly "KeyFileNotFound,$CmdletId"
            $thrown = Get-ThrownError { $Addresses[0] | Invoke-MoltarCommand 'true' @Ssh -SshConfigPath (Join-Path $Scratch 'no_config') }
            $thrown.FullyQualifiedErrorId | Should -BeExactly "InvalidConfiguration,$CmdletId"
        }
    }

    Context 'ssh config and jump hosts' {
        BeforeAll {
            # Two network namespaces: a bastion reachable from here (10.210.1.2, sshd on port 2222), and a private
            # subnet (10.210.2.0/24, two sshd targets) that only the bastion can reach. No forwarding between them.
            $script:Bastion = "moltar-cmd-bastion-$PID"
            $script:Private = "moltar-cmd-private-$PID"
            $script:SshdDir = Join-Path $Scratch 'sshd'
            New-Item -ItemType Directory -Force -Path $SshdDir | Out-Null
            foreach ($ns in $Bastion, $Private) { if ((ip netns list) -match "^$ns\b") { ip netns delete $ns } }
            if ((ip link show mcmdb0 2>$null)) { ip link delete mcmdb0 }
            ip route delete unreachable 10.210.2.0/24 2>$null
            $setup = @(
                "netns add $Bastion", "netns add $Private",
                "link add mcmdb0 type veth peer name mcmdb1", "link set mcmdb1 netns $Bastion",
                'addr add 10.210.1.1/30 dev mcmdb0', 'link set mcmdb0 up',
                "-n $Bastion addr add 10.210.1.2/30 dev mcmdb1", "-n $Bastion link set mcmdb1 up", "-n $Bastion link set lo up",
                "-n $Bastion link add mcmdp0 type veth peer name mcmdp1", "-n $Bastion link set mcmdp1 netns $Private",
                "-n $Bastion addr add 10.210.2.1/24 dev mcmdp0", "-n $Bastion link set mcmdp0 up",
                "-n $Private addr add 10.210.2.2/24 dev mcmdp1", "-n $Private addr add 10.210.2.3/24 dev mcmdp1",
                "-n $Private link set mcmdp1 up", "-n $Private link set lo up",
                # From here the private subnet is unreachable at once: without this route a direct attempt would
                # leave through the default route (a private-range address on the real network) and time out.
                'route add unreachable 10.210.2.0/24'
            )
            foreach ($step in $setup) {
                $output = & ip @(-split $step) 2>&1
                if ($LASTEXITCODE -ne 0) { throw "ip $step failed: $output" }
            }

            Copy-Item "$($Sandbox.ClientKeyPath).pub" (Join-Path $SshdDir 'authorized_keys') -ErrorAction Ignore
            if (-not (Test-Path (Join-Path $SshdDir 'authorized_keys'))) {
                ssh-keygen -y -f $Sandbox.ClientKeyPath | Set-Content (Join-Path $SshdDir 'authorized_keys')
            }

            # Certificates (issue 18): three more servers on the bastion's address trust only a user CA (no
            # authorized_keys) and present host certificates signed by a host CA: valid for 10.210.1.2, expired, and
            # issued for another name. cert_user has its user certificate beside it (cert_user-cert.pub), as ssh loads it.
            $script:Certs = Join-Path $SshdDir 'certs'
            New-Item -ItemType Directory -Force -Path $Certs | Out-Null
            foreach ($name in 'user_ca', 'host_ca', 'cert_user') { ssh-keygen -q -t ed25519 -N '' -C $name -f (Join-Path $Certs $name) | Out-Null }
            $script:CertKey = Join-Path $Certs 'cert_user'
            ssh-keygen -q -s (Join-Path $Certs 'user_ca') -I moltar-user -n root -V '-5m:+1h' "$CertKey.pub" 2>&1 | Out-Null
            $script:HostCaLine = "@cert-authority * $(Get-Content (Join-Path $Certs 'host_ca.pub'))"

            $script:Sshd = @{}
            foreach ($spec in @(
                    @{ Name = 'bastion'; Namespace = $Bastion; Address = '10.210.1.2'; Port = 2222 }
                    @{ Name = 'target-a'; Namespace = $Private; Address = '10.210.2.2'; Port = 22 }
                    @{ Name = 'target-b'; Namespace = $Private; Address = '10.210.2.3'; Port = 22 }
                    @{ Name = 'cert-valid'; Namespace = $Bastion; Address = '10.210.1.2'; Port = 2223; Certificate = @('-n', '10.210.1.2', '-V', '-5m:+1h') }
                    @{ Name = 'cert-expired'; Namespace = $Bastion; Address = '10.210.1.2'; Port = 2224; Certificate = @('-n', '10.210.1.2', '-V', '20200101:20200102') }
                    @{ Name = 'cert-other'; Namespace = $Bastion; Address = '10.210.1.2'; Port = 2225; Certificate = @('-n', 'other.example', '-V', '-5m:+1h') })) {
                $key = Join-Path $SshdDir "$($spec.Name)_host_ed25519"
                ssh-keygen -q -t ed25519 -N '' -C $spec.Name -f $key | Out-Null
                $login = "AuthorizedKeysFile $(Join-Path $SshdDir 'authorized_keys')"
                if ($spec.Certificate) {
                    ssh-keygen -q -s (Join-Path $Certs 'host_ca') -I $spec.Name -h @($spec.Certificate) "$key.pub" 2>&1 | Out-Null
                    $login = "TrustedUserCAKeys $(Join-Path $Certs 'user_ca.pub')", 'AuthorizedKeysFile none', "HostCertificate $key-cert.pub"
                }
                $config = Join-Path $SshdDir "$($spec.Name).sshd_config"
                Set-Content $config (@(
                    "ListenAddress $($spec.Address):$($spec.Port)", "HostKey $key", 'PidFile none', 'UsePAM no',
                    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
                    'StrictModes no', 'AllowTcpForwarding yes', 'PrintMotd no', 'LogLevel VERBOSE') + $login)
                $log = Join-Path $SshdDir "$($spec.Name).log"
                $process = Start-Process -FilePath ip -ArgumentList 'netns', 'exec', $spec.Namespace, '/usr/sbin/sshd', '-D', '-f', $config, '-E', $log -PassThru
                $Sshd[$spec.Name] = [pscustomobject]@{
                    Process = $process; Log = $log; Address = $spec.Address; Port = $spec.Port
                    KnownHost = "$(if ($spec.Port -eq 22) { $spec.Address } else { "[$($spec.Address)]:$($spec.Port)" }) $((Get-Content "$key.pub") -replace ' \S+$')"
                }
            }
            foreach ($server in $Sshd.Values) {
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                while (-not ((Test-Path $server.Log) -and (Select-String -Path $server.Log -Pattern 'Server listening' -Quiet))) {
                    if ($server.Process.HasExited -or [DateTime]::UtcNow -gt $deadline) { throw "sshd on $($server.Address) did not start: $(Get-Content $server.Log -Raw -ErrorAction Ignore)" }
                    Start-Sleep -Milliseconds 50
                }
            }
            $script:PrivateTargets = @('10.210.2.2', '10.210.2.3')
            function Get-AcceptedLogins([string] $Name) { @(Select-String -Path $script:Sshd[$Name].Log -Pattern 'Accepted publickey for root').Count }
            # An ssh config sending the hosts matching Pattern through ProxyJump, every key known (StrictHostKeyChecking yes).
            function New-JumpConfig([string] $Name, [string] $Pattern, [string] $ProxyJump) {
                $knownHosts = New-KnownHosts $Name @($script:Sshd.Values.KnownHost)
                $config = Join-Path $script:Scratch "ssh_config_$Name"
                Set-Content $config @("Host $Pattern", "    ProxyJump $ProxyJump", 'Host *', '    User root',
                    "    IdentityFile $($script:Sandbox.ClientKeyPath)", "    UserKnownHostsFile $knownHosts", '    StrictHostKeyChecking yes')
                $config
            }

            # Dropbear servers (not OpenSSH) on the bastion's address. Dropbear reads authorized_keys only from the
            # user's home, so each runs in a mount namespace of its own whose /root is a fresh tmpfs holding the test's
            # authorized_keys: the machine's /root is never touched. Its SFTP is the sftp-server it execs
            # (/usr/lib/sftp-server, from openssh-sftp-server); the second one's namespace hides it (an empty tmpfs
            # over /usr/lib/openssh), as on a host without openssh-sftp-server.
            function Start-TestDropbear([string] $Name, [int] $Port, [string] $Extra = '') {
                $dir = Join-Path $script:SshdDir $Name
                New-Item -ItemType Directory -Force -Path $dir | Out-Null
                $key = Join-Path $dir 'host_ed25519'
                dropbearkey -t ed25519 -f $key 2>&1 | Out-Null
                $public = @(dropbearkey -y -f $key 2>$null | Where-Object { $_ -like 'ssh-ed25519 *' })[0]
                $log = Join-Path $dir 'dropbear.log'
                $start = Join-Path $dir 'start.sh'
                Set-Content -LiteralPath $start -Value ("mount -t tmpfs -o mode=700 tmpfs /root && mkdir -m 700 /root/.ssh && " +
                    "cp $(Join-Path $script:SshdDir 'authorized_keys') /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys && $Extra" +
                    "exec /usr/sbin/dropbear -F -E -s -r $key -p 10.210.1.2:$Port -P $(Join-Path $dir 'pid') 2>>$log")
                $process = Start-Process -FilePath ip -ArgumentList 'netns', 'exec', $script:Bastion, 'unshare', '--mount', '--propagation', 'private', 'sh', $start -PassThru
                $server = [pscustomobject]@{ Process = $process; Log = $log; Port = $Port; KnownHost = "[10.210.1.2]:$Port $(($public -split ' ')[0..1] -join ' ')" }
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                while ($true) {
                    $banner = try {
                        $tcp = [Net.Sockets.TcpClient]::new('10.210.1.2', $Port)
                        try { [IO.StreamReader]::new($tcp.GetStream()).ReadLine() } finally { $tcp.Dispose() }
                    } catch { $null }
                    if ($banner -like 'SSH-2.0-dropbear*') { return $server }
                    if ($process.HasExited -or [DateTime]::UtcNow -gt $deadline) {
                        Stop-Process -Id $process.Id -ErrorAction Ignore
                        throw "dropbear did not start: $(Get-Content $log -Raw -ErrorAction Ignore)"
                    }
                    Start-Sleep -Milliseconds 50
                }
            }
            $script:Dropbear = @(
                Start-TestDropbear 'dropbear' 2230
                Start-TestDropbear 'dropbear-no-sftp' 2231 'mount -t tmpfs -o mode=755 tmpfs /usr/lib/openssh && ')
        }

        AfterAll {
            foreach ($server in @($Dropbear | Where-Object { $_ })) { Stop-Process -Id $server.Process.Id -ErrorAction Ignore; $server.Process.WaitForExit(5000) | Out-Null }
            foreach ($server in $Sshd.Values) { Stop-Process -Id $server.Process.Id -ErrorAction Ignore; $server.Process.WaitForExit(5000) | Out-Null }
            foreach ($ns in $Bastion, $Private) { ip netns delete $ns 2>$null }
            ip route delete unreachable 10.210.2.0/24 2>$null
        }

        It 'honours a Host alias with HostName, User, Port, IdentityFile and UserKnownHostsFile from -SshConfigPath' {
            $knownHosts = New-KnownHosts 'config' @($Sshd['bastion'].KnownHost)
            $config = Join-Path $Scratch 'ssh_config'
            Set-Content $config @(
                '# a Host alias, as people keep in ~/.ssh/config'
                'Host gateway-alias'
                '    HostName 10.210.1.2'
                '    User root'
                '    Port 2222'
                "    IdentityFile $($Sandbox.ClientKeyPath)"
                "    UserKnownHostsFile $knownHosts"
                '    StrictHostKeyChecking yes'
                'Host *'
                '    ForwardX11 no')
            $result = 'gateway-alias' | Invoke-MoltarCommand 'whoami; echo $SSH_CONNECTION' -SshConfigPath $config -Quiet -Verbose 4>&1 |
                Tee-Object -Variable all | Where-Object { $_ -is [Moltar.MoltarCommandResult] }
            $result.Succeeded | Should -BeTrue
            $result.Address | Should -Be 'gateway-alias'
            $lines = $result.Output -split "`n"
            $lines[0] | Should -Be 'root'
            ($lines[1] -split ' ')[2, 3] | Should -Be @('10.210.1.2', '2222')
            # Keywords Moltar does not act on are named with -Verbose, not dropped silently.
            @($all | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -match 'ForwardX11' }).Count | Should -BeGreaterThan 0
        }

        It 'reaches targets only reachable through a -JumpHost, over one shared bastion connection' {
            $direct = $PrivateTargets[0] | Invoke-MoltarCommand 'true' -User root @Ssh -ConnectTimeoutSeconds 2 -Quiet -ErrorAction SilentlyContinue
            $direct.ErrorId | Should -Be 'ConnectFailed'

            $knownHosts = Join-Path $Scratch 'jump/known_hosts'
            New-Item -ItemType Directory -Force -Path (Split-Path $knownHosts) | Out-Null
            Set-Content $knownHosts $Sshd['bastion'].KnownHost
            $before = Get-AcceptedLogins 'bastion'
            $results = $PrivateTargets | Invoke-MoltarCommand 'echo $SSH_CONNECTION' -User root -JumpHost 'root@10.210.1.2:2222' -KeyFile $Sandbox.ClientKeyPath `
                -KnownHostsPath $knownHosts -StrictHostKeyChecking AcceptNew -SshConfigPath none -Quiet
            $results.Count | Should -Be 2
            foreach ($result in $results) {
                $result.Succeeded | Should -BeTrue
                $connection = -split $result.Output
                $connection[0] | Should -Be '10.210.2.1'   # the target saw the bastion connect
                $connection[2] | Should -Be $result.Address
            }
            (Get-AcceptedLogins 'bastion') - $before | Should -Be 1
            # The targets' keys are checked and recorded under their own names, not the tunnel's.
            $recorded = Get-Content $knownHosts
            $recorded | Should -Contain $Sshd['target-a'].KnownHost
            $recorded | Should -Contain $Sshd['target-b'].KnownHost
        }

        It 'takes the jump host from ProxyJump in ssh config' {
            $config = New-JumpConfig 'proxyjump' '10.210.2.*' 'root@10.210.1.2:2222'
            # Eight connections through one bastion: each must get through (SSH.NET's SOCKS forwarding lost about a third).
            $results = @($PrivateTargets * 4) | Invoke-MoltarCommand 'echo $SSH_CONNECTION' -SshConfigPath $config -Quiet
            $results.Count | Should -Be 8
            $results | ForEach-Object { (-split $_.Output)[0] | Should -Be '10.210.2.1' }
        }

        It 'reaches a target through a two-hop ProxyJump chain: the bastion, then a host behind it' {
            # 10.210.2.3 through 10.210.1.2:2222, then 10.210.2.2: the target sees the second hop connect.
            $config = New-JumpConfig 'two-hops' '10.210.2.3' 'root@10.210.1.2:2222,root@10.210.2.2'
            $before = Get-AcceptedLogins 'target-a'
            $result = '10.210.2.3' | Invoke-MoltarCommand 'echo $SSH_CONNECTION' -SshConfigPath $config -Quiet
            $result.Succeeded | Should -BeTrue -Because $result.Error
            (-split $result.Output)[0, 2] | Should -Be @('10.210.2.2', '10.210.2.3')
            (Get-AcceptedLogins 'target-a') - $before | Should -Be 1 -Because 'the second hop is a login of its own'
        }

        It 'logs in to a server that trusts only a user CA with a key and its certificate, from the key file and from the agent, and trusts its host certificate under StrictHostKeyChecking Yes with only a @cert-authority line' {
            $knownHosts = New-KnownHosts 'cert-authority' @($HostCaLine)
            $target = '10.210.1.2'
            $common = @{ User = 'root'; Port = 2223; KnownHostsPath = $knownHosts; StrictHostKeyChecking = 'Yes'; SshConfigPath = 'none'; Quiet = $true }

            # The key file, its cert_user-cert.pub beside it.
            $fromFile = $target | Invoke-MoltarCommand 'whoami' -KeyFile $CertKey @common
            $fromFile.Succeeded | Should -BeTrue -Because $fromFile.Error
            $fromFile.Output.Trim() | Should -Be 'root'
            # The sandbox key has no certificate: the server refuses it (the certificate is what logs in).
            $bare = $target | Invoke-MoltarCommand 'whoami' -KeyFile $Sandbox.ClientKeyPath @common -ErrorAction SilentlyContinue
            $bare.ErrorId | Should -Be 'AuthenticationFailed'

            # The key and its certificate only in a real ssh-agent (ssh-add loads cert_user-cert.pub with the key).
            $socket = Join-Path $Certs 'agent.sock'
            $agent = Start-Process -FilePath ssh-agent -ArgumentList '-D', '-a', $socket -RedirectStandardOutput (Join-Path $Certs 'agent.out') -PassThru
            try {
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                while (-not (Test-Path $socket)) { if ([DateTime]::UtcNow -gt $deadline) { throw 'ssh-agent did not start' }; Start-Sleep -Milliseconds 20 }
                $env:SSH_AUTH_SOCK = $socket
                ssh-add -q $CertKey 2>&1 | Out-Null
                @(ssh-add -L) -match '-cert-v01@openssh.com ' | Should -Not -BeNullOrEmpty -Because 'the agent holds the certificate'
                $fromAgent = $target | Invoke-MoltarCommand 'whoami' @common
                $fromAgent.Succeeded | Should -BeTrue -Because $fromAgent.Error
            }
            finally {
                Remove-Item env:SSH_AUTH_SOCK -ErrorAction Ignore
                Stop-Process -Id $agent.Id -ErrorAction Ignore
            }
        }

        It 'refuses a host certificate that is expired, issued for another host, or whose CA is @revoked, as ssh does; under AcceptNew an expired one leaves the plain key to decide, as ssh' {
            $caRevoked = "@revoked * $(Get-Content (Join-Path $Certs 'host_ca.pub'))"
            foreach ($case in @(
                    @{ Port = 2224; Lines = @($HostCaLine); ErrorId = 'HostKeyUnknown'; Says = 'expired at 2020-01-02' }
                    @{ Port = 2225; Lines = @($HostCaLine); ErrorId = 'HostKeyUnknown'; Says = 'it is for other.example' }
                    @{ Port = 2223; Lines = @($HostCaLine, $caRevoked); ErrorId = 'HostKeyRevoked'; Says = '@revoked' })) {
                $knownHosts = New-KnownHosts "cert-refused-$($case.Port)" $case.Lines
                $result = '10.210.1.2' | Invoke-MoltarCommand 'true' -User root -Port $case.Port -KeyFile $CertKey -KnownHostsPath $knownHosts -StrictHostKeyChecking Yes `
                    -SshConfigPath none -Quiet -ErrorVariable errors -ErrorAction SilentlyContinue
                $result.ErrorId | Should -Be $case.ErrorId -Because $result.Error
                $result.Error | Should -BeLike "*$($case.Says)*"
                $errors[0].FullyQualifiedErrorId | Should -Be "$($case.ErrorId),Moltar.Cmdlets.InvokeMoltarCommandCommand"
                ssh -F none -i $CertKey -o "UserKnownHostsFile=$knownHosts" -o GlobalKnownHostsFile=none -o StrictHostKeyChecking=yes -o BatchMode=yes `
                    -o IdentityAgent=none -p $case.Port root@10.210.1.2 true 2>$null
                $LASTEXITCODE | Should -Not -Be 0 -Because "ssh refuses port $($case.Port) too"
            }

            # AcceptNew: the expired certificate is dropped and the plain key recorded, as ssh records it.
            $knownHosts = New-KnownHosts 'cert-expired-accept-new' @($HostCaLine)
            $result = '10.210.1.2' | Invoke-MoltarCommand 'true' -User root -Port 2224 -KeyFile $CertKey -KnownHostsPath $knownHosts -StrictHostKeyChecking AcceptNew -SshConfigPath none -Quiet
            $result.Succeeded | Should -BeTrue -Because $result.Error
            Get-Content $knownHosts | Should -Contain $Sshd['cert-expired'].KnownHost
        }

        It 'runs commands and copies files both ways on a Dropbear server; without an sftp-server there, copying fails with a clear error' {
            $knownHosts = New-KnownHosts 'dropbear' @($Dropbear.KnownHost)
            $common = @{ User = 'root'; Port = 2230; KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $knownHosts; StrictHostKeyChecking = 'Yes'; SshConfigPath = 'none' }
            $ok = '10.210.1.2' | Invoke-MoltarCommand 'echo hello from $(whoami); echo oops >&2; exit 3' @common -Quiet -ErrorAction SilentlyContinue
            $ok.Output.Trim() | Should -Be 'hello from root'
            $ok.Error.Trim() | Should -Be 'oops'
            $ok.ExitCode | Should -Be 3
            $ok.ErrorId | Should -Be 'CommandFailed'
            $fed = '10.210.1.2' | Invoke-MoltarCommand 'cat' -Stdin "fed through stdin`n" @common -Quiet
            $fed.Output | Should -Be "fed through stdin`n"

            $local = Join-Path $Scratch 'to-dropbear.txt'
            Set-Content -LiteralPath $local -Value 'copied to dropbear'
            $remote = Join-Path $Scratch 'dropbear-remote.txt'   # dropbear shares this filesystem (only /root is its own)
            $up = @('10.210.1.2' | Copy-MoltarFile $local -Destination $remote -Force @common -ErrorVariable upErrors)
            $upErrors.Count | Should -Be 0 -Because "$upErrors"
            $up[0].Verified | Should -BeTrue
            $down = Join-Path $Scratch 'from-dropbear'
            New-Item -ItemType Directory -Force -Path $down | Out-Null
            $back = @('10.210.1.2' | Copy-MoltarFile -FromRemote $remote -Destination $down @common -ErrorVariable downErrors)
            $downErrors.Count | Should -Be 0 -Because "$downErrors"
            $back.Count | Should -Be 1
            (Get-ChildItem -LiteralPath $down -Recurse -File | Get-Content -Raw).Trim() | Should -Be 'copied to dropbear'

            # The same server without /usr/lib/sftp-server: commands still run, a copy names what is missing.
            $common.Port = 2231
            ('10.210.1.2' | Invoke-MoltarCommand 'true' @common -Quiet).Succeeded | Should -BeTrue
            $null = '10.210.1.2' | Copy-MoltarFile $local -Destination $remote -Force @common -ErrorVariable noSftp -ErrorAction SilentlyContinue
            $noSftp.Count | Should -Be 1
            $noSftp[0].FullyQualifiedErrorId | Should -Be 'ConnectFailed,Moltar.Cmdlets.CopyMoltarFileCommand'
            $noSftp[0].Exception.Message | Should -BeLike '*accepted the SSH login but has no working SFTP server*apt-get install openssh-sftp-server*'
        }

        It 'warns once per call for each ssh config keyword Moltar does not support that could change the connection, however many hosts' {
            $config = Join-Path $Scratch 'ssh_config_unsupported'
            Set-Content $config @(
                'Host *'
                '    CanonicalizeHostname yes'
                '    SetEnv MOLTAR_TEST=1'
                '    LogLevel QUIET')
            foreach ($call in 1, 2) {
                $results = $Addresses[0..3] | Invoke-MoltarCommand 'true' -KeyFile $Sandbox.ClientKeyPath -KnownHostsPath $Sandbox.KnownHostsPath -SshConfigPath $config `
                    -Quiet -WarningVariable warnings 3>$null
                @($results | Where-Object Succeeded).Count | Should -Be 4
                $texts = @($warnings | ForEach-Object { "$_" })
                $texts.Count | Should -Be 2 -Because "call $call`: $($texts -join '; ')"
                @($texts -match "'CanonicalizeHostname yes' \($([regex]::Escape($config)):2\)").Count | Should -Be 1
                @($texts -match "'SetEnv MOLTAR_TEST=1'").Count | Should -Be 1
            }
        }
    }
}
