# Issue 19: connections kept open between calls (the pool), checked from the server side: each sandbox host's sshd
# session processes (found under the host's PID in /proc) show whether a call made a new connection or reused one,
# and whether a closed connection really ended on the host. One fleet of 8 real sshd hosts for the file; each test
# uses hosts of its own and closes what it kept. Nothing here reads or writes the real ~/.ssh or ~/.aws.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

Describe 'Connection pool' -Skip:([bool] $SkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        Import-Module $ModulePath -Force
        $script:TestHome = Enter-TestHome -Name pool
        $script:Scratch = $TestHome.Scratch
        $script:Sandbox = Start-TestSandbox -Hosts 8
        $script:Hosts = @($Sandbox.Hosts | Sort-Object Name)
        $script:Ssh = @{ KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
        $global:PSDefaultParameterValues['Invoke-MoltarCommand:TimeoutSeconds'] = 90

        # The sshd processes of one sandbox host's open connections (Get-MoltarSandboxSshd): a new connection is a new
        # PID, a closed one's go away.
        function Get-SessionProcess([object] $TestHost) {
            $sshd = Get-MoltarSandboxSshd $script:Sandbox $TestHost.Name
            if (-not $sshd.ListenerPid) { throw "No sshd under host $($TestHost.Name)" }
            $sshd.Sessions
        }

        # Why a host shows no session where one is expected: what the pool says about it, which sshd was taken for
        # its listener and what runs under it, and the end of the host's sshd log (its connections and why they ended).
        function Get-SessionEvidence([object] $TestHost) {
            $sshd = Get-MoltarSandboxSshd $script:Sandbox $TestHost.Name
            $pool = @(Get-MoltarConnection | Where-Object Address -EQ $TestHost.Address | ForEach-Object { "connected=$($_.IsConnected) uses=$($_.Uses) age=$($_.Age)" }) -join '; '
            $under = @(Get-ChildItem "/proc/$($sshd.ListenerPid)/task/*/children" -ErrorAction Ignore | Get-Content -ErrorAction Ignore) -join ' '
            $log = Join-Path $script:Sandbox.StateDir "hosts/$($TestHost.Name)/sshd.log"
            $tail = if (Test-Path -LiteralPath $log) { (Get-Content -LiteralPath $log -Tail 8) -join ' | ' } else { "no $log" }
            "[evidence: host pid $($TestHost.Pid), listener $($sshd.ListenerPid) with children '$under'; pool: '$pool'; sshd.log: $tail]"
        }

        # Waits (hang guard) until the host has no sshd session left; returns what is left (empty when all went).
        function Wait-NoSession([object[]] $TestHost) {
            $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
            do { $left = @($TestHost | ForEach-Object { Get-SessionProcess $_ }) } while ($left.Count -and [DateTime]::UtcNow -lt $deadline -and -not (Start-Sleep -Milliseconds 200))
            $left
        }

        # Runs a command on hosts (by address), failing the test on any error; returns the results.
        function Invoke-OnHost([object[]] $TestHost, [string] $Command, [hashtable] $Extra = @{}) {
            $results = @($TestHost | ForEach-Object Address | Invoke-MoltarCommand $Command @script:Ssh @Extra -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures)
            $failures | Should -BeNullOrEmpty -Because ($failures | Out-String)
            $results
        }

        # A pwsh of its own that runs $Script line by line as this test sends lines: 'called' and the like come back on stdout.
        function Start-ChildPwsh([string] $Script) {
            $path = Join-Path $script:Scratch "child-$([guid]::NewGuid().ToString('n')).ps1"
            Set-Content $path $Script
            $pwsh = Get-PwshInvocation
            $info = [Diagnostics.ProcessStartInfo]::new($pwsh.FilePath)
            foreach ($argument in @($pwsh.Arguments) + @('-NoProfile', '-NonInteractive', '-File', $path)) { $info.ArgumentList.Add($argument) }
            $info.UseShellExecute = $false
            $info.RedirectStandardInput = $true
            $info.RedirectStandardOutput = $true
            $info.RedirectStandardError = $true
            $process = [Diagnostics.Process]::Start($info)
            [pscustomobject]@{ Process = $process; Err = $process.StandardError.ReadToEndAsync() }
        }

        function Read-ChildLine($Child, [string] $Expected) {
            $read = $Child.Process.StandardOutput.ReadLineAsync()
            $read.Wait([TimeSpan]::FromSeconds($HangGuardSeconds)) | Should -BeTrue -Because "the child says '$Expected' (hang guard)"
            $read.Result | Should -BeExactly $Expected -Because ($Child.Err.IsCompleted ? $Child.Err.Result : '')
        }

        $script:ChildPrologue = @"
`$PSStyle.OutputRendering = 'PlainText'
Import-Module '$ModulePath'
`$ssh = @{ KeyFile = '$($Sandbox.ClientKeyPath)'; KnownHostsPath = '$($Sandbox.KnownHostsPath)'; SshConfigPath = 'none' }
"@
    }

    AfterEach {
        Disconnect-MoltarInstance
    }

    AfterAll {
        $global:PSDefaultParameterValues.Remove('Invoke-MoltarCommand:TimeoutSeconds')
        Stop-TestSandbox $Sandbox
        Exit-TestHome $TestHome
    }

    It 'a second call reuses the connections: the hosts see no new sshd session' {
        $on = $Hosts[0..1]
        $first = Invoke-OnHost $on 'echo one'
        $first.Output | Should -Be @("one`n", "one`n")
        $sessions = @($on | ForEach-Object { ,@(Get-SessionProcess $_) })
        for ($i = 0; $i -lt $on.Count; $i++) { $sessions[$i].Count | Should -BeGreaterThan 0 -Because "the first call's connection stays open $(Get-SessionEvidence $on[$i])" }

        $second = Invoke-OnHost $on 'echo two'
        $second.Output | Should -Be @("two`n", "two`n")
        for ($i = 0; $i -lt $on.Count; $i++) {
            $now = Get-SessionProcess $on[$i]
            $now -join ',' | Should -BeExactly ($sessions[$i] -join ',') -Because "the second call made no new connection $(if (($now -join ',') -ne ($sessions[$i] -join ',')) { Get-SessionEvidence $on[$i] })"
        }

        $kept = @(Get-MoltarConnection | Where-Object Address -In ($on | ForEach-Object Address))
        $kept.Count | Should -Be 2
        foreach ($c in $kept) {
            $c.Uses | Should -Be 2
            $c.ChannelsInUse | Should -Be 0
            $c.IsConnected | Should -BeTrue
            $c.User | Should -BeExactly $Sandbox.User
            $c.Age | Should -BeGreaterOrEqual $c.IdleTime
            $c.IdleLimit | Should -Be ([TimeSpan]::FromSeconds(60))
        }
    }

    It 'copies reuse them too: the SFTP channel and the shell run on kept connections' {
        $on = $Hosts[2]
        $file = Join-Path $Scratch 'pooled.txt'
        Set-Content $file 'pooled copy'
        $copied = @($on.Address | Copy-MoltarFile -Path $file -Destination 'pool-copy/' @Ssh -ErrorAction Stop)
        $copied.Verified | Should -BeTrue
        $sessions = Get-SessionProcess $on
        $sessions.Count | Should -BeGreaterThan 0 -Because "the copy's connection stays open $(Get-SessionEvidence $on)"

        Set-Content $file 'pooled copy, again'
        $again = @($on.Address | Copy-MoltarFile -Path $file -Destination 'pool-copy/' @Ssh -Force -ErrorAction Stop)
        $again.Verified | Should -BeTrue -Because 'sha256sum on the host agrees with the bytes sent'
        (Get-SessionProcess $on) -join ',' | Should -BeExactly ($sessions -join ',') -Because 'the second copy made no new connection'
        (Invoke-OnHost $on 'cat pool-copy/pooled.txt').Output | Should -BeExactly "pooled copy, again`n"
        # The SFTP channel is closed after the copy; the connection that carried it still runs commands.
        @(Get-MoltarConnection | Where-Object Address -EQ $on.Address | Where-Object ChannelsInUse -GT 0) | Should -BeNullOrEmpty
    }

    It 'a server restart between calls is survived and no command runs twice' {
        $on = $Hosts[3]
        (Invoke-OnHost $on 'echo ran >> pool-runs; wc -l < pool-runs').Output.Trim() | Should -Be '1'
        Stop-MoltarSandboxHost $Sandbox $on.Name
        $null = Start-MoltarSandboxHost $Sandbox $on.Name
        $result = Invoke-OnHost $on 'echo ran >> pool-runs; wc -l < pool-runs'
        $result.Succeeded | Should -BeTrue
        $result.Output.Trim() | Should -Be '2' -Because 'the command ran once in each call'
        (Invoke-OnHost $on 'wc -l < pool-runs').Output.Trim() | Should -Be '2'
    }

    It 'a host key that changed between calls is refused: a kept connection is not used past the change' {
        $on = $Hosts[4]
        $knownHosts = Join-Path $Scratch 'changed.known_hosts'
        Copy-Item $Sandbox.KnownHostsPath $knownHosts
        $ssh = $Ssh.Clone()
        $ssh.KnownHostsPath = $knownHosts
        $first = @($on.Address | Invoke-MoltarCommand 'echo ran >> pool-key-runs' @ssh -Quiet -ErrorAction Stop)
        $first.Succeeded | Should -BeTrue
        (Get-SessionProcess $on).Count | Should -BeGreaterThan 0 -Because "the connection is kept $(Get-SessionEvidence $on)"

        # The host's known key is now another one: what the user trusts no longer matches the host.
        $other = Join-Path $Scratch 'other-key'
        ssh-keygen -q -t ed25519 -N '' -C other -f $other | Out-Null
        $otherKey = (Get-Content "$other.pub") -replace ' other$', ''
        $lines = Get-Content $knownHosts | ForEach-Object { if ((-split $_)[0] -eq $on.Address) { "$($on.Address) $otherKey" } else { $_ } }
        Set-Content $knownHosts $lines

        $second = @($on.Address | Invoke-MoltarCommand 'echo ran >> pool-key-runs' @ssh -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures)
        $second.Succeeded | Should -BeFalse
        $second.ErrorId | Should -BeExactly 'HostKeyMismatch'
        (Invoke-OnHost $on 'wc -l < pool-key-runs').Output.Trim() | Should -Be '1' -Because 'the refused call ran nothing'
    }

    It 'idle connections close after -ConnectionIdleSeconds; the host sees them go' {
        $on = $Hosts[5]
        # Long enough that even a loaded machine looks at the host before the idle time is up.
        $null = Invoke-OnHost $on 'true' @{ ConnectionIdleSeconds = 15 }
        @(Get-MoltarConnection | Where-Object Address -EQ $on.Address).IdleLimit | Should -Be ([TimeSpan]::FromSeconds(15))
        (Get-SessionProcess $on).Count | Should -BeGreaterThan 0 -Because "the connection is kept for now $(Get-SessionEvidence $on)"
        Wait-NoSession $on | Should -BeNullOrEmpty -Because 'the idle connection was closed'
        @(Get-MoltarConnection | Where-Object Address -EQ $on.Address) | Should -BeNullOrEmpty
    }

    It '-ConnectionIdleSeconds 0 (and MOLTAR_CONNECTION_IDLE_SECONDS=0) keeps nothing' {
        $on = $Hosts[5]
        $null = Invoke-OnHost $on 'true' @{ ConnectionIdleSeconds = 0 }
        @(Get-MoltarConnection | Where-Object Address -EQ $on.Address) | Should -BeNullOrEmpty
        Wait-NoSession $on | Should -BeNullOrEmpty
        $env:MOLTAR_CONNECTION_IDLE_SECONDS = '0'
        try { $null = Invoke-OnHost $on 'true' }
        finally { Remove-Item env:MOLTAR_CONNECTION_IDLE_SECONDS }
        @(Get-MoltarConnection | Where-Object Address -EQ $on.Address) | Should -BeNullOrEmpty
    }

    It 'a bad idle time is refused with a clear error' {
        { $Hosts[5].Address | Invoke-MoltarCommand 'true' @Ssh -ConnectionIdleSeconds -1 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Moltar.Cmdlets.InvokeMoltarCommandCommand'
        $env:MOLTAR_CONNECTION_IDLE_SECONDS = 'soon'
        try { { $Hosts[5].Address | Invoke-MoltarCommand 'true' @Ssh } | Should -Throw -ExpectedMessage '*MOLTAR_CONNECTION_IDLE_SECONDS*soon*not a number of seconds from 0*' }
        finally { Remove-Item env:MOLTAR_CONNECTION_IDLE_SECONDS }
    }

    It 'Disconnect-MoltarInstance closes the connections it is given, then all; the hosts see them go' {
        $on = $Hosts[6..7]
        $null = Invoke-OnHost $on 'true'
        foreach ($h in $on) { (Get-SessionProcess $h).Count | Should -BeGreaterThan 0 -Because "the connection is kept $(Get-SessionEvidence $h)" }

        $closed = @(Get-MoltarConnection | Where-Object Address -EQ $on[0].Address | Disconnect-MoltarInstance -PassThru)
        $closed.Count | Should -Be 1
        $closed[0].Address | Should -BeExactly $on[0].Address
        Wait-NoSession $on[0] | Should -BeNullOrEmpty
        (Get-SessionProcess $on[1]).Count | Should -BeGreaterThan 0 -Because 'only the connection given was closed'
        $null = @() | Disconnect-MoltarInstance
        (Get-SessionProcess $on[1]).Count | Should -BeGreaterThan 0 -Because 'an empty pipeline closes nothing'

        Disconnect-MoltarInstance
        Wait-NoSession $on[1] | Should -BeNullOrEmpty
        Get-MoltarConnection | Should -BeNullOrEmpty
    }

    It 'Remove-Module closes everything while pwsh keeps running; the hosts see the connections go' {
        $on = $Hosts[0]
        $child = Start-ChildPwsh ($ChildPrologue + @"

`$null = '$($on.Address)' | Invoke-MoltarCommand 'true' @ssh -Quiet -ConnectionIdleSeconds $NeverWaitedSeconds -ErrorAction Stop 6>`$null
'called'
`$null = [Console]::In.ReadLine()
Remove-Module Moltar
'removed'
`$null = [Console]::In.ReadLine()
"@)
        try {
            Disconnect-MoltarInstance   # this process's own connection to the host, so only the child's remain
            Wait-NoSession $on | Should -BeNullOrEmpty
            Read-ChildLine $child 'called'
            (Get-SessionProcess $on).Count | Should -BeGreaterThan 0 -Because "the child keeps its connection $(Get-SessionEvidence $on)"
            $child.Process.StandardInput.WriteLine('go')
            Read-ChildLine $child 'removed'
            Wait-NoSession $on | Should -BeNullOrEmpty -Because 'Remove-Module closed it, long before its idle time'
            $child.Process.HasExited | Should -BeFalse -Because 'it was the module''s removal, not the end of the process'
            $child.Process.StandardInput.WriteLine('go')
            $child.Process.WaitForExit($HangGuardSeconds * 1000) | Should -BeTrue
        }
        finally { if (-not $child.Process.HasExited) { $child.Process.Kill($true) } }
    }

    It 'a kept connection never keeps a finished pwsh running, and its end closes them' {
        $on = $Hosts[1]
        Disconnect-MoltarInstance
        Wait-NoSession $on | Should -BeNullOrEmpty
        $child = Start-ChildPwsh ($ChildPrologue + @"

`$null = '$($on.Address)' | Invoke-MoltarCommand 'true' @ssh -Quiet -ConnectionIdleSeconds $NeverWaitedSeconds -ErrorAction Stop 6>`$null
'called'
`$null = [Console]::In.ReadLine()
"@)
        try {
            Read-ChildLine $child 'called'
            (Get-SessionProcess $on).Count | Should -BeGreaterThan 0 -Because "the child keeps its connection $(Get-SessionEvidence $on)"
            $child.Process.StandardInput.WriteLine('go')
            # The idle time outlasts the hang guard: ending within it means nothing kept the process.
            $child.Process.WaitForExit($HangGuardSeconds * 1000) | Should -BeTrue -Because 'the script ended; a kept connection must not hold pwsh (hang guard)'
            $child.Process.ExitCode | Should -Be 0 -Because $child.Err.Result
            Wait-NoSession $on | Should -BeNullOrEmpty
        }
        finally { if (-not $child.Process.HasExited) { $child.Process.Kill($true) } }
    }

    It 'a large -ThrottleLimit leaves sockets, threads and handles at their baseline once the connections are closed' {
        function Get-ResourceUse {
            [GC]::Collect(); [GC]::WaitForPendingFinalizers(); [GC]::Collect()
            $fds = @(Get-ChildItem /proc/self/fd -ErrorAction SilentlyContinue)
            [pscustomobject]@{
                Fds     = $fds.Count
                Sockets = @($fds | Where-Object { "$($_.LinkTarget)" -like 'socket:*' }).Count
                Threads = [Diagnostics.Process]::GetCurrentProcess().Threads.Count
            }
        }
        Disconnect-MoltarInstance
        # Each host twice in one call: two connections to each, at once, all kept (one channel per connection).
        $targets = @($Hosts | ForEach-Object Address) * 2
        $null = @($targets | Invoke-MoltarCommand 'true' @Ssh -Quiet -ThrottleLimit 1000 -ConnectionIdleSeconds 0)
        $before = Get-ResourceUse
        # Each command waits (at most 3 minutes) until the host's other one runs too, so both run at once on two
        # connections whatever the machine's load: one that ended first would leave its connection free for the other.
        $barrier = "/tmp/moltar-pool-barrier-$([guid]::NewGuid().ToString('n'))"
        $both = "mkdir -p $barrier && touch $barrier/`$`$; i=0; while [ `$(ls $barrier | wc -l) -lt 2 ] && [ `$i -lt 1800 ]; do sleep 0.1; i=`$((i+1)); done; echo `$((1+1))"
        try {
            $results = @($targets | Invoke-MoltarCommand $both @Ssh -Quiet -ThrottleLimit 1000 -ErrorAction Stop)
            $results.Count | Should -Be $targets.Count
            @($results | Where-Object Output -NE "2`n") | Should -BeNullOrEmpty
            @(Get-MoltarConnection).Count | Should -Be $targets.Count -Because 'a connection carries one command at a time, so each host got two'
            $again = @($targets | Invoke-MoltarCommand 'true' @Ssh -Quiet -ThrottleLimit 1000 -ErrorAction Stop)
            $again.Count | Should -Be $targets.Count
            # Which of a host's two connections each use took depends on timing (one may have served both); none was new.
            $kept = @(Get-MoltarConnection)
            $kept.Count | Should -Be $targets.Count -Because 'the second call opened no connection'
            ($kept | Measure-Object Uses -Sum).Sum | Should -Be (2 * $targets.Count) -Because 'every command of the second call ran on a kept connection'
            Disconnect-MoltarInstance
            $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
            do { $after = Get-ResourceUse } while (($after.Threads -gt $before.Threads + 5 -or $after.Sockets -gt $before.Sockets) -and [DateTime]::UtcNow -lt $deadline -and -not (Start-Sleep -Milliseconds 500))
            Write-Host "Pool: before $before; after $after"
            $after.Sockets | Should -BeLessOrEqual $before.Sockets
            $after.Fds | Should -BeLessOrEqual ($before.Fds + 5)
            $after.Threads | Should -BeLessOrEqual ($before.Threads + 5)
            Wait-NoSession $Hosts | Should -BeNullOrEmpty
        }
        finally { $null = @($Hosts | ForEach-Object Address | Invoke-MoltarCommand "rm -rf $barrier" @Ssh -Quiet -ConnectionIdleSeconds 0 -ErrorAction SilentlyContinue) }
    }
}
