# Issue 9, reliability and security: the fault matrix (every way a host, the network or the EC2 API can fail, each
# its own test), the scale rows (200 hosts, 1,000 invocations, 200 MB from one host) and the security checks (shell
# metacharacters, known_hosts under parallel writers, @revoked keys, secrets in streams). One sandbox for the file:
# 180 real sshd hosts with their own root file systems (127.0.70.x when MOLTAR_SANDBOX_FIRST_ADDRESS says so), plus
# stand-ins this file makes itself on 127.0.71.x: silent hosts (a TcpListener that accepts and never speaks) and
# dead ones (nothing listening). Nothing here reads or writes the real ~/.ssh or ~/.aws.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

Describe 'Reliability and security' -Skip:([bool] $SkipReason) {
    BeforeAll {
        # What injected shell would create, here or on a host: unique to this run, checked absent after each try.
        # Set first, so that AfterAll never sees it empty, whatever fails below.
        $script:PwnedName = "moltar-pwned-$PID"
        $script:Pwned = "/tmp/$PwnedName"
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        Import-Module $ModulePath -Force
        $script:TestHome = Enter-TestHome -Name reliability
        # These tests check that every connection is closed when a call ends (and count sockets and threads across
        # calls): the connection pool is off for them. Tests/ConnectionPool.Tests.ps1 covers the pool.
        $env:MOLTAR_CONNECTION_IDLE_SECONDS = '0'
        $script:Scratch = $TestHome.Scratch

        # Where this file's own stand-ins live: the third octet after the sandbox's (127.0.70.x -> 127.0.71.x).
        $first = if ($env:MOLTAR_SANDBOX_FIRST_ADDRESS) { $env:MOLTAR_SANDBOX_FIRST_ADDRESS } else { '127.0.1.1' }
        $octets = $first.Split('.')
        $script:StandInPrefix = '127.0.{0}.' -f ([int] $octets[2] + 1)

        $clock = [Diagnostics.Stopwatch]::StartNew()
        $script:HostCount = if ($env:MOLTAR_RELIABILITY_HOSTS) { [int] $env:MOLTAR_RELIABILITY_HOSTS } else { 180 }
        $script:Sandbox = Start-TestSandbox -Hosts $HostCount
        Write-Host "Reliability: $HostCount sandbox hosts up in $([math]::Round($clock.Elapsed.TotalSeconds, 1)) s"
        $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
        $script:Ssh = @{ KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
        $script:CmdletId = 'Moltar.Cmdlets.InvokeMoltarCommandCommand'
        $script:DefaultMaxOutputBytes = 16MB   # Invoke-MoltarCommand -MaxOutputBytes, as its help says
        $script:Fleet = @(Get-MoltarSandboxFleet $Sandbox)

        $script:Repo = Join-Path $Scratch 'repo'
        New-Item -ItemType Directory -Force -Path $Repo | Out-Null
        Set-Content (Join-Path $Repo '.moltar.psd1') "@{ Project = 'demo' }"
        Push-Location $Repo
        $script:Instances = @(Get-MoltarInstance)
        $script:Listeners = [Collections.Generic.List[Net.Sockets.TcpListener]]::new()
        $script:AgentPid = $null

        # The independent check, over a good connection: name -> trimmed output; fails the test on any error.
        function Invoke-Remote([object[]] $On, [string] $Command) {
            $results = @($On | Invoke-MoltarCommand $Command @script:Ssh -Quiet -ErrorAction SilentlyContinue)
            $bad = @($results | Where-Object { -not $_.Succeeded })
            if ($bad -or $results.Count -ne @($On).Count) {
                throw "Invoke-Remote '$Command' failed: $(($bad | ForEach-Object { "$($_.Name): $($_.ErrorId) $($_.Error)" }) -join '; ')"
            }
            $map = @{}
            foreach ($r in $results) { $map[$r.Name] = $r.Output.TrimEnd() }
            $map
        }

        # A host that accepts TCP and never says a word (the kernel completes the handshake; nobody reads or writes).
        function New-SilentHost([string] $Address) {
            $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Parse($Address), 22)
            $listener.Start(64)
            $script:Listeners.Add($listener)
            $listener
        }

        # A PowerShell in a runspace of its own (this thread can watch its live output and kill its session meanwhile).
        # The module is imported by the runspace's initial state (one command, no batch); Close-RunspaceCommand stops it
        # before disposing, so a failed assertion never disposes a runspace that is still running.
        function New-RunspaceCommand([scriptblock] $Script, [object[]] $Arguments = @()) {
            $state = [initialsessionstate]::CreateDefault()
            $state.ImportPSModule($script:ModulePath)
            $ps = [powershell]::Create($state)
            $null = $ps.AddScript($Script)
            foreach ($argument in $Arguments) { $null = $ps.AddArgument($argument) }
            $ps
        }

        function Close-RunspaceCommand([powershell] $PowerShell) {
            if ($PowerShell.InvocationStateInfo.State -eq 'Running') { $PowerShell.Stop() }
            $PowerShell.Dispose()
        }

        # TCP connections of this process to the given addresses' port 22 that are still established.
        function Get-OpenConnection([string[]] $Address) {
            $wanted = [Collections.Generic.HashSet[string]]::new([string[]] @($Address | ForEach-Object { "${_}:22" }))
            @(ss -Htnp state established | Where-Object { $_ -match "pid=$PID," } |
                Where-Object { $columns = -split $_; $columns.Count -ge 4 -and $wanted.Contains(($columns[3] -replace '^\[::ffff:([^\]]+)\]:', '$1:')) })
        }

        function New-Key([string] $Name, [string] $Passphrase = '') {
            $path = Join-Path $script:Scratch $Name
            Remove-Item $path, "$path.pub" -ErrorAction Ignore
            ssh-keygen -q -t ed25519 -N $Passphrase -C "moltar-test-$Name" -f $path | Out-Null
            if ($LASTEXITCODE -ne 0) { throw "ssh-keygen failed for $Name" }
            $path
        }

        function Get-Fingerprint([string] $PublicKeyPath) { (-split (ssh-keygen -l -f $PublicKeyPath))[1] }

        # The base64 lines of a private key file: key material that must never be printed.
        function Get-KeyMaterial([string] $Path) {
            @(Get-Content $Path | Where-Object { $_ -and $_ -notmatch '^-----' })
        }

        function Get-ResourceUse {
            [GC]::Collect(); [GC]::WaitForPendingFinalizers(); [GC]::Collect()
            $process = [Diagnostics.Process]::GetCurrentProcess()
            $fds = @(Get-ChildItem /proc/self/fd -ErrorAction SilentlyContinue)
            [pscustomobject]@{
                Fds        = $fds.Count
                Sockets    = @($fds | Where-Object { "$($_.LinkTarget)" -like 'socket:*' }).Count
                Threads    = $process.Threads.Count
                ManagedMB  = [math]::Round([GC]::GetTotalMemory($true) / 1MB, 1)
                WorkingSetMB = [math]::Round($process.WorkingSet64 / 1MB, 1)
            }
        }

        # A fleet entry that is not a sandbox host (EC2 says running; nothing or a mute listener is behind the address).
        function New-FleetEntry([string] $Id, [string] $Address, [hashtable] $Tags) {
            @{ instanceId = $Id; state = 'running'; privateIpAddress = $Address; publicIpAddress = $Address; tags = $Tags }
        }
    }

    AfterAll {
        Remove-Item env:MOLTAR_CONNECTION_IDLE_SECONDS -ErrorAction Ignore
        foreach ($listener in @($Listeners)) { try { $listener.Stop() } catch { } }
        if ($AgentPid) { Stop-Process -Id $AgentPid -ErrorAction Ignore }
        Pop-Location -ErrorAction Ignore
        Stop-TestSandbox $Sandbox
        Exit-TestHome $TestHome
        # Only what a successful injection would have made in /tmp (the test that found it has failed already).
        if ($PwnedName -match '^moltar-pwned-\d+$') {
            Get-ChildItem -LiteralPath '/tmp' -Filter "$PwnedName*" -File -ErrorAction Ignore | Remove-Item -Force -ErrorAction Ignore
        }
    }

    Context 'fault matrix' {
        It 'host down (nothing listening): ConnectFailed at once, without waiting for the connect timeout; the others'' results intact' {
            $on = $Instances[0..4]
            $down = $on[2]
            Stop-MoltarSandboxHost $Sandbox $down.Name
            try {
                # A refused connection is known at once: the connect timeout, longer than the hang guard, is not waited out.
                $run = Invoke-HangGuarded -What 'a run with a host down' -ArgumentList @(, $on), $Ssh, $NeverWaitedSeconds {
                    param($on, $ssh, $connectTimeout)
                    $on | Invoke-MoltarCommand 'uname -n' @ssh -Quiet -ConnectTimeoutSeconds $connectTimeout -ErrorAction Continue
                }
                $results = $run.Output
                $failures = $run.Errors
            }
            finally { $null = Start-MoltarSandboxHost $Sandbox $down.Name }

            $results.Count | Should -Be 5
            $failed = $results | Where-Object InstanceId -EQ $down.InstanceId
            $failed.Succeeded | Should -BeFalse
            $failed.ErrorId | Should -BeExactly 'ConnectFailed'
            $failed.Error | Should -Match "$([regex]::Escape($down.Address)):22"
            $failed.Error | Should -Match 'refused'
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "ConnectFailed,$CmdletId"
            $failures[0].TargetObject.InstanceId | Should -Be $down.InstanceId
            foreach ($ok in $results | Where-Object InstanceId -NE $down.InstanceId) {
                $ok.Succeeded | Should -BeTrue
                $ok.Output | Should -BeExactly "$($ok.Name)`n"
            }
        }

        It 'host silent (accepts TCP, never speaks SSH): Timeout within -ConnectTimeoutSeconds, no hang; the others'' results intact' {
            $address = "${StandInPrefix}1"
            $listener = New-SilentHost $address
            $on = @($Instances[5..8]) + $address
            # The silent host never ends the handshake by itself: only the connect timeout ends the run within the hang guard.
            $run = Invoke-HangGuarded -What 'a run with a silent host' -ArgumentList @(, $on), $Ssh {
                param($on, $ssh)
                $on | Invoke-MoltarCommand 'uname -n' @ssh -Quiet -ConnectTimeoutSeconds 3 -ErrorAction Continue
            }
            $results = $run.Output
            $failures = $run.Errors
            $listener.Pending() | Should -BeTrue -Because 'the stand-in did accept the TCP connection'

            $results.Count | Should -Be 5
            $silent = $results | Where-Object Address -EQ $address
            $silent.ErrorId | Should -BeExactly 'Timeout'
            $silent.Error | Should -Match 'did not complete the SSH handshake within 3 s'
            $silent.Duration.TotalSeconds | Should -BeGreaterOrEqual 2.5 -Because 'the connect timeout was waited for, not cut short'
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "Timeout,$CmdletId"
            $failures[0].CategoryInfo.Category | Should -Be 'OperationTimeout'
            @($results | Where-Object Succeeded).Count | Should -Be 4
        }

        It 'auth refused (<Case>): AuthenticationFailed naming the user and every key and agent identity tried, no key material' -TestCases @(
            @{ Case = 'a key the host does not trust, and an agent'; User = 'ubuntu'; WrongKey = $true }
            @{ Case = 'a user the host does not have'; User = 'deploy'; WrongKey = $false }
        ) {
            $target = $Instances[9]
            $wrong = New-Key 'wrong_ed25519'
            $agentKey = New-Key 'agent_ed25519'
            $socket = Join-Path $Scratch 'agent.sock'
            Remove-Item $socket -ErrorAction Ignore
            $agentOutput = ssh-agent -a $socket -s
            $script:AgentPid = [int] ([regex]::Match("$agentOutput", 'SSH_AGENT_PID=(\d+)').Groups[1].Value)
            $env:SSH_AUTH_SOCK = $socket
            try {
                ssh-add -q $agentKey 2>&1 | Out-Null
                $key = if ($WrongKey) { $wrong } else { $Sandbox.ClientKeyPath }
                $results = @($target | Invoke-MoltarCommand 'true' -User $User -KeyFile $key -KnownHostsPath $Sandbox.KnownHostsPath -SshConfigPath none -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures)
            }
            finally {
                Remove-Item env:SSH_AUTH_SOCK
                Stop-Process -Id $AgentPid -ErrorAction Ignore
                $script:AgentPid = $null
            }

            $results.Count | Should -Be 1
            $results[0].ErrorId | Should -BeExactly 'AuthenticationFailed'
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "AuthenticationFailed,$CmdletId"
            $message = $failures[0].Exception.Message
            $message | Should -Match "$User@$([regex]::Escape($target.Address)):22"
            $message | Should -Match ([regex]::Escape("agent ed25519 $(Get-Fingerprint "$agentKey.pub")"))
            $message | Should -Match ([regex]::Escape("$key (ed25519 $(Get-Fingerprint "$key.pub"))"))
            foreach ($line in (Get-KeyMaterial $key) + (Get-KeyMaterial $agentKey)) { $message | Should -Not -Match ([regex]::Escape($line)) }
            $message | Should -Not -Match 'PRIVATE KEY'
            $message | Should -Not -Match ([regex]::Escape((-split (Get-Content "$key.pub"))[1])) -Because 'not even the public key blob is needed to say which key it was'
        }

        It 'host key changed: HostKeyMismatch, and nothing ran on that host while the others ran' {
            $on = $Instances[11..13]
            $victim = $on[0]
            $impostor = New-Key 'impostor_host_ed25519'
            $impostorKey = (Get-Content "$impostor.pub") -replace ' moltar-test-.*$', ''
            $knownHosts = Join-Path $Scratch 'changed.known_hosts'
            Get-Content $Sandbox.KnownHostsPath | ForEach-Object { if ($_ -like "$($victim.Address) *") { "$($victim.Address) $impostorKey" } else { $_ } } |
                Set-Content $knownHosts
            $before = (Get-FileHash $knownHosts).Hash
            $marker = "/tmp/moltar-mitm-$([guid]::NewGuid().ToString('n'))"

            $results = @($on | Invoke-MoltarCommand "touch $marker" -KeyFile $Sandbox.ClientKeyPath -KnownHostsPath $knownHosts -SshConfigPath none `
                    -StrictHostKeyChecking AcceptNew -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures)

            $refused = $results | Where-Object InstanceId -EQ $victim.InstanceId
            $refused.ErrorId | Should -BeExactly 'HostKeyMismatch'
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "HostKeyMismatch,$CmdletId"
            $failures[0].CategoryInfo.Category | Should -Be 'SecurityError'
            $real = ($Sandbox.Hosts | Where-Object Address -EQ $victim.Address).HostKeyFingerprint
            $failures[0].Exception.Message | Should -Match "host key of the host $([regex]::Escape($victim.Address)) has CHANGED"
            $failures[0].Exception.Message | Should -Match ([regex]::Escape((Get-Fingerprint "$impostor.pub")))
            $failures[0].Exception.Message | Should -Match ([regex]::Escape($real))
            @($results | Where-Object Succeeded).Count | Should -Be 2
            (Get-FileHash $knownHosts).Hash | Should -Be $before -Because 'AcceptNew never replaces a key it already has'

            $seen = Invoke-Remote $on "test -e $marker && echo ran || echo absent"
            $seen[$victim.Name] | Should -Be 'absent'
            $seen[$on[1].Name] | Should -Be 'ran'
            $seen[$on[2].Name] | Should -Be 'ran'
        }

        It 'command past -TimeoutSeconds: Timeout, the remote command ended, the connection closed; the quick host unaffected' {
            $on = $Instances[14..16]
            $quick = $on[2]
            # The slow command outlasts the hang guard: gone within it means ended by the timeout, not finished. The
            # timeout leaves the quick host ample time for `echo done` on a loaded machine.
            $sleep = "sleep $($NeverWaitedSeconds + 71.5)"
            $results = @($on | Invoke-MoltarCommand "if [ `$(uname -n) != $($quick.Name) ]; then $sleep; fi; echo done" @Ssh -Quiet -TimeoutSeconds 10 -ErrorAction SilentlyContinue -ErrorVariable failures)
            Get-OpenConnection ($on | ForEach-Object Address) | Should -BeNullOrEmpty -Because 'a timed-out host''s connection is closed before its result is written'

            $results.Count | Should -Be 3
            foreach ($slow in $results | Where-Object InstanceId -NE $quick.InstanceId) {
                $slow.ErrorId | Should -BeExactly 'Timeout'
                $slow.ExitCode | Should -BeNullOrEmpty
                $slow.Error | Should -Match "did not finish within 10 s on $($slow.Name)"
                $slow.Duration.TotalSeconds | Should -BeGreaterOrEqual 10 -Because 'the timeout was waited for, not cut short'
            }
            @($failures | Where-Object FullyQualifiedErrorId -EQ "Timeout,$CmdletId").Count | Should -Be 2
            ($results | Where-Object InstanceId -EQ $quick.InstanceId).Output | Should -BeExactly "done`n"

            $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
            do {
                $left = Invoke-Remote $on[0..1] "ps -eo args | grep -cx '$sleep' || true"
                $count = ($left.Values | ForEach-Object { [int] $_ } | Measure-Object -Sum).Sum
            } while ($count -gt 0 -and [DateTime]::UtcNow -lt $deadline -and -not (Start-Sleep -Milliseconds 250))
            $count | Should -Be 0 -Because 'the timed-out command is terminated on the host, not left running'
        }

        It 'connection dropped mid-command (its sshd session killed): ConnectionLost for that host only, the others intact' {
            $on = $Instances[17..20]
            $victim = $on[0]
            $ps = New-RunspaceCommand { param($on, $ssh, $command) $on | Invoke-MoltarCommand $command @ssh } @(, $on)
            # The victim's command outlasts the hang guard: only noticing the lost connection ends its run in time.
            $null = $ps.AddArgument($Ssh).AddArgument("if [ `$(uname -n) = $($victim.Name) ]; then echo session=`$PPID; sleep $NeverWaitedSeconds; else sleep 4; echo ok; fi")
            try {
                $async = $ps.BeginInvoke()
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                $line = $null
                while (-not $line -and [DateTime]::UtcNow -lt $deadline) {
                    $line = @($ps.Streams.Information | Where-Object { "$($_.MessageData)" -match "^$([regex]::Escape($victim.Name)): session=(\d+)$" })[0]
                    if (-not $line) { Start-Sleep -Milliseconds 50 }
                }
                $line | Should -Not -BeNullOrEmpty -Because 'the victim printed the pid of its sshd session process'
                $session = [int] ([regex]::Match("$($line.MessageData)", 'session=(\d+)').Groups[1].Value)
                @(Get-OpenConnection $victim.Address).Count | Should -Be 1 -Because 'the connection is open while the command runs'
                # A second connection, as root on that host, kills the first connection's session process.
                $null = Invoke-Remote $victim "sudo kill -9 $session"
                $async.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($HangGuardSeconds)) | Should -BeTrue -Because 'the lost connection ends the run (hang guard)'
                $results = @($ps.EndInvoke($async))
                $errors = @($ps.Streams.Error)
            }
            finally { Close-RunspaceCommand $ps }

            $results.Count | Should -Be 4
            $lost = $results | Where-Object InstanceId -EQ $victim.InstanceId
            $lost.ErrorId | Should -BeExactly 'ConnectionLost'
            $lost.Output | Should -BeExactly "session=$session`n"
            $errors.Count | Should -Be 1
            $errors[0].FullyQualifiedErrorId | Should -BeExactly "ConnectionLost,$CmdletId"
            foreach ($ok in $results | Where-Object InstanceId -NE $victim.InstanceId) {
                $ok.Succeeded | Should -BeTrue
                $ok.Output | Should -BeExactly "ok`n"
            }
            (Invoke-Remote $victim 'uname -n')[$victim.Name] | Should -Be $victim.Name
        }

        It 'API <Fault>: the SDK retries and the command then runs' -TestCases @(
            @{ Fault = 'throttled twice'; Setting = @{ ThrottleFirst = 2 }; Code = 'RequestLimitExceeded' }
            @{ Fault = 'failing twice with 500'; Setting = @{ ErrorFirst = 2 }; Code = 'InternalError' }
        ) {
            $target = $Instances[21]
            Clear-MoltarSandboxRequest $Sandbox
            Set-MoltarSandboxFault $Sandbox @Setting
            try { $results = @(Invoke-MoltarCommand -Name $target.InstanceId 'uname -n' @Ssh -Quiet) }
            finally { Clear-MoltarSandboxFault $Sandbox }
            $results.Count | Should -Be 1
            $results[0].Output | Should -BeExactly "$($target.Name)`n"
            $requests = @(Get-MoltarSandboxRequest $Sandbox -Action DescribeInstances)
            $requests.Count | Should -Be 3
            @($requests[0..1] | Where-Object ErrorCode -EQ $Code).Count | Should -Be 2
            $requests[2].Status | Should -Be 200
        }

        It 'API <Fault> past the retries: one terminating ApiFailed error with the code and the last request id; no host contacted' -TestCases @(
            @{ Fault = 'throttled'; Setting = @{ ThrottleFirst = 1000 }; Code = 'RequestLimitExceeded' }
            @{ Fault = 'failing with 500'; Setting = @{ ErrorRate = 1.0 }; Code = 'InternalError' }
        ) {
            $target = $Instances[22]
            $marker = "/tmp/moltar-api-$([guid]::NewGuid().ToString('n'))"
            Clear-MoltarSandboxRequest $Sandbox
            Set-MoltarSandboxFault $Sandbox @Setting
            $Error.Clear()
            $caught = $null
            try { $output = @(Invoke-MoltarCommand -Name $target.InstanceId "touch $marker" @Ssh -Quiet -ErrorAction Stop) }
            catch { $caught = $_ }
            finally { Clear-MoltarSandboxFault $Sandbox }

            $caught | Should -Not -BeNullOrEmpty
            $caught.FullyQualifiedErrorId | Should -BeExactly "ApiFailed,$CmdletId"
            $Error.Count | Should -Be 1 -Because 'the whole call fails once, not once per attempt or host'
            $output | Should -BeNullOrEmpty
            $requests = @(Get-MoltarSandboxRequest $Sandbox -Action DescribeInstances)
            $requests.Count | Should -Be 3 -Because 'the SDK''s standard retry mode makes three attempts'
            $caught.Exception.Message | Should -Match $Code
            $caught.Exception.Message | Should -Match "request id $([regex]::Escape($requests[-1].RequestId))"
            $caught.Exception.Message | Should -Match ([regex]::Escape($Sandbox.Endpoint))
            (Invoke-Remote $target "test -e $marker && echo ran || echo absent")[$target.Name] | Should -Be 'absent'
        }

        It 'expired or invalid credentials (<Case>): one terminating error that names them and says what to do' -TestCases @(
            @{ Case = 'profile'; Credentials = @{ ProfileName = 'demo' }; Names = "profile 'demo'" }
            @{ Case = 'keys given as parameters'; Credentials = @{ AccessKey = 'AKIAEXPIREDEXAMPLE01'; SecretKey = 'expired-secret-Zq9'; SessionToken = 'expired-token-Xy7'; Region = 'us-east-1' }; Names = 'Parameter -AccessKey' }
        ) {
            Clear-MoltarSandboxRequest $Sandbox
            Set-MoltarSandboxFault $Sandbox -AuthFailure
            $Error.Clear()
            $caught = $null
            try { $output = @(Invoke-MoltarCommand -Name $Instances[23].InstanceId 'true' @Credentials @Ssh -Quiet -ErrorAction Stop) }
            catch { $caught = $_ }
            finally { Clear-MoltarSandboxFault $Sandbox }

            $caught.FullyQualifiedErrorId | Should -BeExactly "AwsCredentialsRejected,$CmdletId"
            $caught.CategoryInfo.Category | Should -Be 'AuthenticationError'
            $Error.Count | Should -Be 1
            $output | Should -BeNullOrEmpty
            $message = $caught.Exception.Message
            $message | Should -Match ([regex]::Escape($Names))
            $message | Should -Match 'AuthFailure'
            $message | Should -Match 'aws sso login'
            $message | Should -Match '-ProfileName'
            if ($Credentials.SecretKey) {
                $message | Should -Not -Match $Credentials.SecretKey
                $message | Should -Not -Match $Credentials.SessionToken
            }
            @(Get-MoltarSandboxRequest $Sandbox -Action DescribeInstances).Count | Should -Be 1 -Because 'refused credentials are not retried'
        }
    }

    Context 'at scale' {
        It '200 hosts, 10 down and 10 silent: the 180 healthy results all emitted, the dead and silent ones bounded by the connect timeout' {
            $extra = @(
                foreach ($i in 1..10) { New-FleetEntry ('i-0dead{0:x12}' -f $i) "$StandInPrefix$(100 + $i)" @{ Project = 'demo'; Environment = 'production'; Cluster = 'web'; Name = "zz-down-$i" } }
                foreach ($i in 1..10) {
                    $address = "$StandInPrefix$(120 + $i)"
                    $null = New-SilentHost $address
                    New-FleetEntry ('i-05113e{0:x11}' -f $i) $address @{ Project = 'demo'; Environment = 'staging'; Cluster = 'jobs'; Name = "zz-silent-$i" }
                }
            )
            Set-MoltarSandboxFleet $Sandbox -Instance (@($Fleet) + $extra)
            try {
                $clock = [Diagnostics.Stopwatch]::StartNew()
                # Silent hosts never end the handshake by themselves: only the connect timeout ends the run within the hang guard.
                $run = Invoke-HangGuarded -What "a run over $($HostCount + 20) hosts" -ArgumentList $Ssh {
                    param($ssh)
                    Invoke-MoltarCommand 'uname -n' @ssh -Quiet -ConnectTimeoutSeconds 5 -ErrorAction Continue
                }
                $results = $run.Output
                $failures = $run.Errors
                $elapsed = $clock.Elapsed.TotalSeconds
            }
            finally { Set-MoltarSandboxFleet $Sandbox -Instance $Fleet }
            Write-Host "Reliability: $($HostCount + 20) hosts ($HostCount healthy, 10 down, 10 silent) in $([math]::Round($elapsed, 1)) s"

            $results.Count | Should -Be ($HostCount + 20)
            $healthy = @($results | Where-Object Succeeded)
            $healthy.Count | Should -Be $HostCount
            foreach ($r in $healthy) { $r.Output | Should -BeExactly "$($r.Name)`n" }
            @($results | Where-Object Name -Like 'zz-down-*' | Where-Object ErrorId -EQ 'ConnectFailed').Count | Should -Be 10
            @($results | Where-Object Name -Like 'zz-silent-*' | Where-Object ErrorId -EQ 'Timeout').Count | Should -Be 10
            $failures.Count | Should -Be 20
            foreach ($r in $results | Where-Object Name -Like 'zz-silent-*') { $r.Error | Should -Match 'within 5 s' }
            # How long the whole run takes is the benchmark's (its dead-and-silent-hosts row), not a limit here.
        }

        It '1,000 consecutive invocations, rotating over 20 hosts: no growth in open sockets, threads or memory beyond noise' {
            # Each call goes to 2 of the 20 hosts, in turn: 2,000 connections, every host reached 100 times, two at once
            # within each call. MOLTAR_SOAK_HOSTS_PER_INVOCATION (up to 20, all hosts in every call: 20,000 connections,
            # about 4 min on an idle 2-core machine) and MOLTAR_SOAK_INVOCATIONS change it.
            $twenty = $Instances[41..60]
            $perCall = if ($env:MOLTAR_SOAK_HOSTS_PER_INVOCATION) { [int] $env:MOLTAR_SOAK_HOSTS_PER_INVOCATION } else { 2 }
            $invocations = if ($env:MOLTAR_SOAK_INVOCATIONS) { [int] $env:MOLTAR_SOAK_INVOCATIONS } else { 1000 }
            function Invoke-Round([int] $From, [int] $Count) {
                for ($i = $From; $i -lt $From + $Count; $i++) {
                    $on = foreach ($k in 0..($perCall - 1)) { $twenty[($i * $perCall + $k) % 20] }
                    $r = @($on | Invoke-MoltarCommand 'true' @script:Ssh -Quiet -ThrottleLimit 20)
                    if ($r.Count -ne $perCall -or @($r | Where-Object { -not $_.Succeeded }).Count) { throw "invocation $i failed: $($r.Error -join '; ')" }
                }
            }
            $warmUp = [math]::Min(50, [math]::Max(1, [int] ($invocations / 10)))
            Invoke-Round 0 $warmUp
            $before = Get-ResourceUse
            $clock = [Diagnostics.Stopwatch]::StartNew()
            Invoke-Round $warmUp $invocations
            $elapsed = $clock.Elapsed.TotalSeconds
            # Connect threads let go of abandoned clients a moment later; give them that moment.
            $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
            do { $after = Get-ResourceUse } while ($after.Threads -gt $before.Threads + 5 -and [DateTime]::UtcNow -lt $deadline -and -not (Start-Sleep -Milliseconds 500))
            Write-Host ("Reliability: {0} invocations x {1} host(s) over 20 hosts in {2:0.0} s; before {3}; after {4}" -f $invocations, $perCall, $elapsed, $before, $after)

            $after.Sockets | Should -BeLessOrEqual ($before.Sockets + 5)
            $after.Fds | Should -BeLessOrEqual ($before.Fds + 10)
            $after.Threads | Should -BeLessOrEqual ($before.Threads + 5)
            $after.ManagedMB | Should -BeLessOrEqual ($before.ManagedMB + 30)
            $after.WorkingSetMB | Should -BeLessOrEqual ($before.WorkingSetMB + 150)
            Get-OpenConnection ($twenty | ForEach-Object Address) | Should -BeNullOrEmpty
        }

        It 'one host printing 200 MB: the result keeps -MaxOutputBytes (default) and counts the rest; memory stays bounded' {
            $target = $Instances[61]
            # 2 million lines of 100 characters, far faster than the pipeline thread can write them as live output
            # (6>$null still makes every record). The peak resident set comes from the kernel (VmHWM, reset first).
            function Get-StatusKB([string] $Field) { [long] ((-split (Get-Content /proc/self/status | Where-Object { $_ -like "${Field}:*" }))[1]) }
            [GC]::Collect(); [GC]::WaitForPendingFinalizers(); [GC]::Collect()
            [IO.File]::WriteAllText('/proc/self/clear_refs', '5')
            $baseline = Get-StatusKB VmRSS
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $results = @($target | Invoke-MoltarCommand "yes $('x' * 99) | head -c 200000000; echo end >&2" @Ssh -WarningVariable warnings -WarningAction SilentlyContinue 6>$null)
            $growthMB = ((Get-StatusKB VmHWM) - $baseline) / 1KB
            Write-Host ("Reliability: 200 MB from one host in {0:0.0} s; peak resident set growth {1:0} MB" -f $clock.Elapsed.TotalSeconds, $growthMB)

            $results.Count | Should -Be 1
            $result = $results[0]
            $result.Succeeded | Should -BeTrue
            $result.OutputBytes | Should -Be 200000000
            $result.ErrorBytes | Should -Be 4
            $result.Truncated | Should -BeTrue
            $result.Output.Length | Should -Be $script:DefaultMaxOutputBytes
            $result.Output.Substring(0, 201) | Should -BeExactly ((('x' * 99) + "`n") * 2 + 'x')
            $result.Error | Should -BeExactly "end`n"
            # Live lines the console could not keep up with are skipped, and said so, rather than buffered.
            @($warnings | Where-Object { "$_" -match 'line\(s\) of output were not shown live' }).Count | Should -BeLessOrEqual 1
            $growthMB | Should -BeLessThan (3 * $script:DefaultMaxOutputBytes / 1MB + 100) -Because 'kept bytes, their text and a bounded queue of lines; never the 200 MB'

            # Keeping 1 MB, nothing else may hold the output either (SSH.NET buffers whatever is not read at once:
            # a reader that waited for the console made this grow by 135-240 MB here).
            [GC]::Collect(); [GC]::WaitForPendingFinalizers(); [GC]::Collect()
            [IO.File]::WriteAllText('/proc/self/clear_refs', '5')
            $baseline = Get-StatusKB VmRSS
            $small = @($target | Invoke-MoltarCommand "yes $('x' * 99) | head -c 200000000" @Ssh -MaxOutputBytes 1MB -WarningAction SilentlyContinue 6>$null)
            $smallGrowthMB = ((Get-StatusKB VmHWM) - $baseline) / 1KB
            Write-Host ("Reliability: 200 MB from one host keeping 1 MB; peak resident set growth {0:0} MB" -f $smallGrowthMB)
            $small[0].Output.Length | Should -Be 1MB
            $small[0].OutputBytes | Should -Be 200000000
            $smallGrowthMB | Should -BeLessThan 80
        }
    }

    Context 'security' {
        BeforeAll {
            Set-Content (Join-Path $Scratch 'payload.txt') 'payload' -NoNewline
            # Whatever injected shell might have created, on these hosts and on this machine: must stay empty.
            # (in /tmp, or in the directory an injected relative 'touch' would have run in).
            function Assert-NothingInjected([object[]] $On) {
                $remote = Invoke-Remote $On "ls -d /tmp/$script:PwnedName* ~/$script:PwnedName* 2>/dev/null | wc -l"
                foreach ($name in $remote.Keys) { $remote[$name] | Should -Be '0' -Because "nothing injected ran on $name" }
                $local = foreach ($directory in '/tmp', $script:Repo, $env:HOME, (Get-Location).Path) { Get-Item (Join-Path $directory "$script:PwnedName*") -ErrorAction Ignore }
                @($local) | Should -BeNullOrEmpty -Because 'nothing injected ran on this machine'
            }
        }

        It 'tags with shell metacharacters (Name, Environment, Cluster, Packages) reach no shell, remote or local' {
            $target = $Instances[62]
            $tags = @{
                Project     = 'demo'
                Name        = "x; touch $Pwned-name"
                Environment = "`$(touch $Pwned-env)"
                Cluster     = "``touch $Pwned-cluster``"
                Packages    = "|a'; touch $Pwned-pkg; '|b|"
            }
            $hostile = foreach ($entry in $Fleet) {
                if ($entry.instanceId -eq $target.InstanceId) { $copy = $entry.PSObject.Copy(); $copy.tags = $tags; $copy } else { $entry }
            }
            Set-MoltarSandboxFleet $Sandbox -Instance @($hostile)
            try {
                $found = @(Get-MoltarInstance -Environment $tags.Environment -Cluster $tags.Cluster)
                $found.Count | Should -Be 1
                $found[0].Name | Should -BeExactly $tags.Name
                ($found | Invoke-MoltarCommand 'uname -n' @Ssh -Quiet).Output | Should -BeExactly "$($target.Name)`n"
                (Invoke-MoltarCommand -Environment $tags.Environment -Cluster $tags.Cluster 'uname -n' @Ssh -Quiet).Output | Should -BeExactly "$($target.Name)`n"
                $file = Join-Path $Scratch 'tagged.txt'
                Set-Content $file 'tagged'
                $up = @($found | Copy-MoltarFile $file -Destination '/tmp/moltar-tags/' -Force @Ssh)
                $up.Verified | Should -Be $true
                $down = Join-Path $Scratch 'tag-downloads'
                $got = @($found | Copy-MoltarFile -FromRemote '/tmp/moltar-tags/*' -Destination $down -Force @Ssh)
                $got.Count | Should -Be 1
                [IO.Path]::GetFullPath($got[0].Destination) | Should -BeLike "$down/*" -Because 'the Name tag names a folder under -Destination, made safe'
                Get-Content $got[0].Destination | Should -Be 'tagged'
                ($found | Enter-MoltarInstance -WhatIf @Ssh -- uname 6>&1 | Out-String) | Should -Not -Match 'touch'
            }
            finally { Set-MoltarSandboxFleet $Sandbox -Instance $Fleet }
            Assert-NothingInjected $target
        }

        It 'remote paths with shell metacharacters are copied to exactly those names (Copy-MoltarFile), nothing else runs' {
            $target = $Instances[63]
            $dir = '/tmp/moltar-paths'
            # A remote file name holds no '/', so the injected commands touch relative names (the shell's directory).
            $names = @(
                "a; touch $PwnedName-semicolon"
                "`$(touch $PwnedName-dollar)"
                "``touch $PwnedName-backtick``"
                "it's; touch $PwnedName-quote #"
                "x`" && touch $PwnedName-dquote && `""
                "new`nline; touch $PwnedName-newline"
                '-rf'
                "| touch $PwnedName-pipe"
                "> $PwnedName-redirect"
            )
            $file = Join-Path $Scratch 'payload.txt'
            foreach ($name in $names) {
                $result = $target | Copy-MoltarFile $file -Destination "$dir/$name" -Force @Ssh
                $result.Destination | Should -BeExactly "$dir/$name"
                $result.Verified | Should -BeTrue
            }
            $sub = "$dir/d; touch $PwnedName-dir `$(id)/"
            ($target | Copy-MoltarFile $file -Destination $sub -Force @Ssh).Destination | Should -BeExactly "${sub}payload.txt"

            # The names as the host has them, NUL-separated, base64 so that nothing is lost on the way.
            $listing = (Invoke-Remote $target "cd $dir && for f in *; do printf '%s\0' `"`$f`"; done | base64 -w0")[$target.Name]
            $found = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($listing)).TrimEnd([char] 0).Split([char] 0)
            ($found | Sort-Object) | Should -Be (@($names) + "d; touch $PwnedName-dir `$(id)" | Sort-Object)
            $down = Join-Path $Scratch 'path-downloads'
            $back = @($target | Copy-MoltarFile -FromRemote "$dir/*" -Destination $down -Force @Ssh -ErrorAction SilentlyContinue)
            @($back | Where-Object Verified).Count | Should -BeGreaterOrEqual ($names.Count - 1)
            Assert-NothingInjected $target
        }

        It 'a user name that is no user name is refused before anything runs (<Case>)' -TestCases @(
            @{ Case = '-User a;b'; User = 'a;b'; Source = 'Parameter' }
            @{ Case = 'MOLTAR_USER'; User = 'a;b'; Source = 'Environment' }
            @{ Case = 'project file, an ssh option'; User = '-oProxyCommand=touch /tmp/moltar-pwned-{0}-user'; Source = 'ProjectFile' }
        ) {
            $target = $Instances[64]
            $user = $User -f $PID
            $repo = Join-Path $Scratch "user-repo-$Source"
            New-Item -ItemType Directory -Force -Path $repo | Out-Null
            Set-Content (Join-Path $repo '.moltar.psd1') ("@{ Project = 'demo'" + $(if ($Source -eq 'ProjectFile') { "; User = '$user'" }) + ' }')
            # A User counts from a project file only once it is trusted (untrusted it is ignored with a warning).
            if ($Source -eq 'ProjectFile') { Approve-MoltarProject -Path $repo | Out-Null }
            $parameters = if ($Source -eq 'Parameter') { @{ User = $user } } else { @{} }
            if ($Source -eq 'Environment') { $env:MOLTAR_USER = $user }
            Push-Location $repo
            try {
                $expected = if ($Source -eq 'Parameter') { 'ParameterArgumentValidationError' } else { 'InvalidProjectSetting' }
                foreach ($cmdlet in 'InvokeMoltarCommandCommand', 'EnterMoltarInstanceCommand', 'CopyMoltarFileCommand') {
                    $run = switch ($cmdlet) {
                        'InvokeMoltarCommandCommand' { { $target | Invoke-MoltarCommand "touch $Pwned-ran" @parameters @Ssh -Quiet } }
                        'EnterMoltarInstanceCommand' { { $target | Enter-MoltarInstance @parameters @Ssh -- touch "$Pwned-ran" } }
                        'CopyMoltarFileCommand' { { $target | Copy-MoltarFile (Join-Path $Scratch 'payload.txt') -Destination "$Pwned-copied" @parameters @Ssh } }
                    }
                    $run | Should -Throw -ErrorId "$expected,Moltar.Cmdlets.$cmdlet" -ExpectedMessage "*'$user' is not a user name*"
                }
            }
            finally {
                Pop-Location
                Remove-Item env:MOLTAR_USER -ErrorAction Ignore
            }
            Assert-NothingInjected $target
        }

        It 'an address with shell metacharacters or an ssh option is refused, piped or discovered; the other hosts run' {
            $target = $Instances[65]
            foreach ($address in "$($target.Address); touch $Pwned-addr", "-oProxyCommand=touch $Pwned-addr") {
                $piped = [pscustomobject]@{ InstanceId = 'i-0badaddress00001'; Address = $address }
                { $piped | Invoke-MoltarCommand "touch $Pwned-ran" @Ssh -Quiet } | Should -Throw -ErrorId "InvalidInputObject,$CmdletId" -ExpectedMessage "*is not a host name or IP address*"
                { $piped | Enter-MoltarInstance @Ssh -JumpHost "ubuntu@$($target.Address)" -- true } | Should -Throw -ErrorId 'InvalidInputObject,Moltar.Cmdlets.EnterMoltarInstanceCommand'
            }
            $bad = New-FleetEntry 'i-0badadd7e55000002' "$($target.Address) -oProxyCommand=touch$Pwned-fleet" @{ Project = 'demo'; Environment = 'quarantine'; Cluster = 'web'; Name = 'zz-bad-address' }
            $fleet = foreach ($entry in $Fleet) {
                if ($entry.instanceId -eq $target.InstanceId) { $copy = $entry.PSObject.Copy(); $copy.tags = @{ Project = 'demo'; Environment = 'quarantine'; Cluster = 'web'; Name = $target.Name }; $copy } else { $entry }
            }
            Set-MoltarSandboxFleet $Sandbox -Instance (@($fleet) + $bad)
            try {
                $results = @(Invoke-MoltarCommand -Environment quarantine 'uname -n' @Ssh -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures)
            }
            finally { Set-MoltarSandboxFleet $Sandbox -Instance $Fleet }
            $results.Count | Should -Be 1
            $results[0].Output | Should -BeExactly "$($target.Name)`n"
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "InvalidAddress,$CmdletId"
            $failures[0].Exception.Message | Should -Match 'zz-bad-address'
            Assert-NothingInjected $target
        }

        It 'a jump host that is an ssh option or has shell metacharacters is refused: nothing runs here or there' {
            $target = $Instances[65]
            $jump = "-oProxyCommand=touch $Pwned-jump"
            $results = @($target | Invoke-MoltarCommand "touch $Pwned-ran" -JumpHost $jump @Ssh -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures)
            $results[0].ErrorId | Should -BeExactly 'InvalidConfiguration'
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "InvalidConfiguration,$CmdletId"
            { $target | Enter-MoltarInstance -JumpHost "ubuntu@bastion;touch $Pwned-jump" @Ssh -- true } |
                Should -Throw -ErrorId 'InvalidConfiguration,Moltar.Cmdlets.EnterMoltarInstanceCommand' -ExpectedMessage '*is not a host name or IP address*'
            Assert-NothingInjected $target
        }

        It 'known_hosts: two processes accepting the same 20 new hosts at once record each exactly once, well-formed' {
            $twenty = $Instances[21..40]
            $knownHosts = Join-Path $Scratch 'parallel/known_hosts'
            Remove-Item (Split-Path $knownHosts) -Recurse -Force -ErrorAction Ignore
            $go = Join-Path $Scratch 'parallel-go'
            $child = Join-Path $Scratch 'accept-new.ps1'
            Set-Content $child @'
param([string] $ModulePath, [string] $Addresses, [string] $Key, [string] $KnownHosts, [string] $Ready, [string] $Go)
$PSStyle.OutputRendering = 'PlainText'
Import-Module $ModulePath
Set-Content $Ready 'ready'
while (-not (Test-Path $Go)) { Start-Sleep -Milliseconds 10 }
$results = ($Addresses -split ',') | Invoke-MoltarCommand 'true' -KeyFile $Key -KnownHostsPath $KnownHosts -StrictHostKeyChecking AcceptNew -SshConfigPath none -Quiet -ThrottleLimit 20 -ErrorAction SilentlyContinue 6>$null
"succeeded=$(@($results | Where-Object Succeeded).Count)"
$results | Where-Object { -not $_.Succeeded } | ForEach-Object { "failed=$($_.Address) $($_.ErrorId) $($_.Error)" }
'@
            $pwsh = Get-PwshInvocation
            $processes = foreach ($n in 1, 2) {
                $info = [Diagnostics.ProcessStartInfo]::new($pwsh.FilePath)
                foreach ($argument in @($pwsh.Arguments) + @('-NoProfile', '-NonInteractive', '-File', $child, '-ModulePath', $ModulePath,
                        '-Addresses', (($twenty | ForEach-Object Address) -join ','), '-Key', $Sandbox.ClientKeyPath, '-KnownHosts', $knownHosts,
                        '-Ready', (Join-Path $Scratch "parallel-ready-$n"), '-Go', $go)) { $info.ArgumentList.Add($argument) }
                $info.UseShellExecute = $false
                $info.RedirectStandardOutput = $true
                $info.RedirectStandardError = $true
                $process = [Diagnostics.Process]::Start($info)
                [pscustomobject]@{ Process = $process; Out = $process.StandardOutput.ReadToEndAsync(); Err = $process.StandardError.ReadToEndAsync() }
            }
            try {
                $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
                while (-not ((Test-Path (Join-Path $Scratch 'parallel-ready-1')) -and (Test-Path (Join-Path $Scratch 'parallel-ready-2'))) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
                Set-Content $go 'go'
                foreach ($p in $processes) { $p.Process.WaitForExit($HangGuardSeconds * 1000) | Should -BeTrue -Because 'the hang guard' }
            }
            finally { foreach ($p in $processes) { if (-not $p.Process.HasExited) { $p.Process.Kill($true) } } }
            foreach ($p in $processes) {
                $p.Out.Result.Trim() | Should -BeExactly 'succeeded=20' -Because ($p.Err.Result -replace '\x1b\[[0-9;]*m', '')
            }

            $text = [IO.File]::ReadAllText($knownHosts)
            $text | Should -Match "`n$" -Because 'every line is complete'
            $lines = $text.TrimEnd("`n").Split("`n")
            $lines.Count | Should -Be 20
            foreach ($instance in $twenty) {
                $expected = "$($instance.Address) $(($Sandbox.Hosts | Where-Object Address -EQ $instance.Address).HostPublicKey)"
                @($lines | Where-Object { $_ -eq $expected }).Count | Should -Be 1 -Because "$($instance.Address) is recorded exactly once"
            }
            @(ssh-keygen -l -f $knownHosts).Count | Should -Be 20 -Because 'OpenSSH reads every line'
        }

        It 'a host key marked @revoked is refused under StrictHostKeyChecking <Policy>, and nothing runs there' -TestCases @(
            @{ Policy = 'Yes' }, @{ Policy = 'AcceptNew' }, @{ Policy = 'No' }
        ) {
            $target = $Instances[66]
            $hostKey = ($Sandbox.Hosts | Where-Object Address -EQ $target.Address).HostPublicKey
            $knownHosts = Join-Path $Scratch "revoked-$Policy.known_hosts"
            @(Get-Content $Sandbox.KnownHostsPath) + "@revoked * $hostKey" | Set-Content $knownHosts
            $marker = "$Pwned-revoked"
            $results = @($target | Invoke-MoltarCommand "touch $marker" -KeyFile $Sandbox.ClientKeyPath -KnownHostsPath $knownHosts -SshConfigPath none `
                    -StrictHostKeyChecking $Policy -Quiet -ErrorAction SilentlyContinue -ErrorVariable failures -WarningAction SilentlyContinue)
            $results[0].ErrorId | Should -BeExactly 'HostKeyRevoked'
            $failures[0].FullyQualifiedErrorId | Should -BeExactly "HostKeyRevoked,$CmdletId"
            $failures[0].Exception.Message | Should -Match "@revoked in $([regex]::Escape($knownHosts)):\d+"
            Assert-NothingInjected $target
        }

        It 'secrets never reach any stream or error: AWS secret key and session token, a key passphrase, private key material (-Verbose -Debug)' {
            $target = $Instances[67]
            $accessKey = 'AKIAMOLTARSCANTEST01'
            $secretKey = "sk-$([guid]::NewGuid().ToString('n'))"
            $sessionToken = "st-$([guid]::NewGuid().ToString('n'))$([guid]::NewGuid().ToString('n'))"
            $passphrase = "pp-$([guid]::NewGuid().ToString('n'))"
            $encrypted = Join-Path $Scratch 'client_encrypted'
            Copy-Item $Sandbox.ClientKeyPath $encrypted
            ssh-keygen -q -p -f $encrypted -N $passphrase | Out-Null
            # A credential's user name is the SSH user (as in Posh-SSH); its password is the key's passphrase.
            $credential = [pscredential]::new($Sandbox.User, (ConvertTo-SecureString $passphrase -AsPlainText -Force))
            $wrongCredential = [pscredential]::new($Sandbox.User, (ConvertTo-SecureString "not-$passphrase" -AsPlainText -Force))
            $keyed = @{ KeyFile = $encrypted; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
            $aws = @{ AccessKey = $accessKey; SecretKey = $secretKey; SessionToken = $sessionToken; Region = 'us-east-1' }
            $file = Join-Path $Scratch 'secret-scan.txt'
            Set-Content $file 'scan'

            $Error.Clear()
            $records = [Collections.Generic.List[object]]::new()
            function Capture([scriptblock] $Script) {
                # Streamed, so that what a call wrote before its terminating error (a HostsFailed under Pester's
                # $ErrorActionPreference) is kept too.
                try { & $Script *>&1 | ForEach-Object { $records.Add($_) } } catch { $records.Add($_) }
            }
            Capture { Get-MoltarInstance @aws -Verbose -Debug }
            Set-MoltarSandboxFault $Sandbox -AuthFailure
            try { Capture { Get-MoltarInstance @aws -Verbose -Debug -ErrorAction Stop } }
            finally { Clear-MoltarSandboxFault $Sandbox }
            Capture { Invoke-MoltarCommand -Name $target.InstanceId 'echo ran' @aws @keyed -Credential $credential -Verbose -Debug }
            Capture { $target | Invoke-MoltarCommand 'echo ran' @keyed -Credential $wrongCredential -Verbose -Debug -ErrorAction Stop }
            Capture { $target | Invoke-MoltarCommand 'echo ran' @keyed -Credential $credential -User nobody -Verbose -Debug }
            Capture { $target | Copy-MoltarFile $file -Destination '/tmp/moltar-scan/' -Force @keyed -Credential $credential -Verbose -Debug }
            Capture { $target | Enter-MoltarInstance @keyed -Credential $credential -Verbose -Debug -WhatIf -- true }

            $text = [Text.StringBuilder]::new()
            foreach ($record in @($records) + @($Error)) {
                $null = $text.AppendLine(($record | Out-String -Width 4096))
                if ($record -is [Management.Automation.ErrorRecord]) {
                    $null = $text.AppendLine($record.Exception.ToString()).AppendLine("$($record.ErrorDetails)").AppendLine(($record.TargetObject | Out-String))
                }
                elseif ($record -is [Management.Automation.InformationRecord]) { $null = $text.AppendLine("$($record.MessageData)") }
                elseif ($record.PSObject.Properties['Message']) { $null = $text.AppendLine("$($record.Message)") }
                else { $null = $text.AppendLine(($record | Format-List * | Out-String -Width 4096)) }
            }
            $all = $text.ToString()
            # The scan saw what it should have: verbose lines, the command's output, each kind of failure.
            $all | Should -Match 'credentials from Parameter -AccessKey'
            $all | Should -Match 'ran'
            $all | Should -Match 'AwsCredentialsRejected|AuthFailure'
            $all | Should -Match 'KeyFileInvalid|passphrase is wrong'
            $all | Should -Match 'Permission denied for nobody@'

            foreach ($secret in $secretKey, $sessionToken, $passphrase, "not-$passphrase", 'PRIVATE KEY') {
                $all.Contains($secret) | Should -BeFalse -Because "'$($secret.Substring(0, 6))...' is a secret"
            }
            foreach ($line in (Get-KeyMaterial $encrypted) + (Get-KeyMaterial $Sandbox.ClientKeyPath)) {
                $all.Contains($line) | Should -BeFalse -Because 'private key material is never printed'
            }
        }
    }
}
