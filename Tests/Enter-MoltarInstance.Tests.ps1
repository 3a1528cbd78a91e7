BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-Module (Get-TestModulePath) -Force
    $script:Scratch = New-TestScratch -Name enter
    Set-TestAwsEnvironment -Directory (Join-Path $Scratch 'aws')
    Add-TestAwsProfile -Name 'shop' -Region 'us-east-1'

    # Three real hosts: shop-staging-web-1 and -2 (two in staging/web: ambiguous), shop-staging-jobs-1 (alone).
    # Plus one behind a bastion (10.240.41.2, reachable only through it), one without any address, and one whose
    # TCP connect never completes (127.0.43.1: its listener's accept queue is full, so the kernel drops new SYNs; no
    # packet ever leaves the machine).
    $fleetFile = Join-Path $Scratch 'fleet.json'
    New-Item -ItemType Directory -Force -Path $Scratch | Out-Null
    @{ instances = @(
        @{ instanceId = 'i-0e7777777700000a1'; state = 'running'; privateIpAddress = '10.240.41.2'
           tags = @{ Project = 'shop'; Environment = 'staging'; Cluster = 'hidden'; Name = 'shop-staging-hidden-1' } }
        @{ instanceId = 'i-0d8888888800000b2'; state = 'running'; privateIpAddress = $null
           tags = @{ Project = 'shop'; Environment = 'staging'; Cluster = 'noaddr'; Name = 'shop-staging-noaddr-1' } }
        @{ instanceId = 'i-0c9999999900000c3'; state = 'running'; privateIpAddress = '127.0.43.1'
           tags = @{ Project = 'shop'; Environment = 'staging'; Cluster = 'silent'; Name = 'shop-staging-silent-1' } }
    ) } | ConvertTo-Json -Depth 5 | Set-Content $fleetFile
    $script:Silent = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Parse('127.0.43.1'), 22)
    $Silent.Start(1)
    $script:SilentQueue = foreach ($i in 1..3) {
        $client = [Net.Sockets.TcpClient]::new()
        $null = $client.ConnectAsync('127.0.43.1', 22).Wait(1000)  # the third never completes: the queue is full
        $client
    }
    $script:Sandbox = Start-TestSandbox -Hosts 3 -FleetFile $fleetFile -Options @{ Project = 'shop'; Environments = @('staging'); Clusters = @('web', 'jobs') }
    $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint

    $script:Repo = Join-Path $Scratch 'shop-repo'
    New-Item -ItemType Directory -Force -Path $Repo | Out-Null
    Set-Content (Join-Path $Repo '.moltar.psd1') "@{ Project = 'shop' }"
    Push-Location $Repo

    # Never the real ~/.ssh: the sandbox's key and known_hosts, no ssh config.
    $script:Ssh = @{ KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
    $script:SshExe = (Get-Command ssh -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
    $script:Address = @{}
    Get-MoltarInstance | ForEach-Object { $Address[$_.Name] = $_.Address }

    function Invoke-EnterScript([string] $Script) {
        <# Runs Enter-MoltarInstance in a child pwsh, whose stdout ssh inherits, so its output can be read here.
           Lines '### name' start sections; the result maps each name to its stdout lines, and 'stderr' to all of
           stderr (a separate pipe: its lines would land in any section). #>
        $prelude = "`$ErrorActionPreference = 'Stop'; Set-Location -LiteralPath '$Repo'; Import-Module '$(Get-TestModulePath)'; " +
                   "`$k = @{ KeyFile = '$($Sandbox.ClientKeyPath)'; KnownHostsPath = '$($Sandbox.KnownHostsPath)'; SshConfigPath = 'none' }`n"
        $stderr = Join-Path $Scratch "stderr-$([guid]::NewGuid().ToString('n')).txt"
        $lines = @(Invoke-CleanPwsh ($prelude + $Script) 2>$stderr | ForEach-Object { "$_" })
        $sections = @{}
        $current = '(start)'
        $sections[$current] = [System.Collections.Generic.List[string]]::new()
        foreach ($line in $lines) {
            if ($line -match '^### (.+)$') { $current = $Matches[1]; $sections[$current] = [System.Collections.Generic.List[string]]::new() }
            else { $sections[$current].Add($line) }
        }
        $sections['stderr'] = Get-Content -LiteralPath $stderr -Raw -ErrorAction Ignore
        $sections
    }

    function Get-ExpectedLine([string] $Address, [string] $Tail) {
        "$SshExe -F none -i $($Sandbox.ClientKeyPath) -o UserKnownHostsFile=$($Sandbox.KnownHostsPath) ubuntu@$Address$Tail"
    }
}

AfterAll {
    foreach ($client in @($SilentQueue)) { if ($client) { $client.Dispose() } }
    if ($Silent) { $Silent.Stop() }
    Pop-Location -ErrorAction Ignore
    Stop-TestSandbox $Sandbox
    Remove-Item env:MOLTAR_ENDPOINT_URL -ErrorAction Ignore
    Remove-TestScratch $Scratch
}

Describe 'Enter-MoltarInstance runs the system ssh on one instance' {
    BeforeAll {
        # One child pwsh for all of these (each start costs seconds on a shared machine).
        $script:Run = Invoke-EnterScript @'
'### remote'
function Enter-Web2 { Enter-MoltarInstance staging web -Name web-2 @k -- 'hostname; exit 3' }
Enter-Web2
"EXIT=$LASTEXITCODE"
'### dashdash'
Enter-MoltarInstance staging jobs @k -- echo after the dashes
"EXIT=$LASTEXITCODE"
'### argumentlist'
Enter-MoltarInstance staging jobs @k -ArgumentList 'echo from -ArgumentList; exit 4'
"EXIT=$LASTEXITCODE"
'### first'
Enter-MoltarInstance staging web -First @k -- hostname
"EXIT=$LASTEXITCODE"
'### pipeline'
Get-MoltarInstance staging jobs | Enter-MoltarInstance @k -- hostname
"EXIT=$LASTEXITCODE"
'### unreachable'
Enter-MoltarInstance staging silent @k -ConnectTimeoutSeconds 3 -- hostname
"EXIT=$LASTEXITCODE"
'### whatif'
$global:LASTEXITCODE = 42
Enter-MoltarInstance staging jobs @k -WhatIf -- 'hostname; exit 3'
"EXIT=$LASTEXITCODE"
'### secret'
$credential = [pscredential]::new('ubuntu', (ConvertTo-SecureString 'sekrit-passphrase-17' -AsPlainText -Force))  # its user name is the SSH user
Enter-MoltarInstance staging jobs @k -Credential $credential -WhatIf 3>&1
'### end'
'@
    }

    It 'selects by position and -Name, prints the ssh command line, runs the words after -- and sets $LASTEXITCODE in the caller' {
        $lines = $Run['remote']
        $lines[0] | Should -BeExactly (Get-ExpectedLine $Address['shop-staging-web-2'] " 'hostname; exit 3'")
        $lines | Should -Contain 'shop-staging-web-2'
        $lines[-1] | Should -BeExactly 'EXIT=3'
    }

    It 'hands words after -- back to the remote command when PowerShell bound them to a selection position' {
        # 'echo' would otherwise be the -Name filter (position 2) and no instance would match.
        $Run['dashdash'][0] | Should -BeExactly (Get-ExpectedLine $Address['shop-staging-jobs-1'] ' echo after the dashes')
        $Run['dashdash'] | Should -Contain 'after the dashes'
        $Run['dashdash'][-1] | Should -BeExactly 'EXIT=0'
    }

    It 'runs -ArgumentList as the remote command' {
        $Run['argumentlist'] | Should -Contain 'from -ArgumentList'
        $Run['argumentlist'][-1] | Should -BeExactly 'EXIT=4'
    }

    It 'takes the first instance listed with -First' {
        $Run['first'][0] | Should -BeExactly (Get-ExpectedLine $Address['shop-staging-web-1'] ' hostname')
        $Run['first'] | Should -Contain 'shop-staging-web-1'
        $Run['first'][-1] | Should -BeExactly 'EXIT=0'
    }

    It 'enters the one instance that came down the pipeline, with the command after --' {
        $Run['pipeline'] | Should -Contain 'shop-staging-jobs-1'
        $Run['pipeline'][-1] | Should -BeExactly 'EXIT=0'
    }

    It 'sets $LASTEXITCODE to 255 when ssh cannot connect, with -ConnectTimeoutSeconds passed on' {
        $Run['unreachable'][0] | Should -BeExactly ("$SshExe -F none -i $($Sandbox.ClientKeyPath) -o UserKnownHostsFile=$($Sandbox.KnownHostsPath) " +
                                                    "-o ConnectTimeout=3 ubuntu@127.0.43.1 hostname")
        $Run['unreachable'][-1] | Should -BeExactly 'EXIT=255'
        $Run['stderr'] | Should -Match 'connect to host 127\.0\.43\.1 port 22: Connection timed out'
    }

    It 'prints only the command line with -WhatIf, and leaves $LASTEXITCODE alone' {
        $Run['whatif'] | Should -Be @(("What if: " + (Get-ExpectedLine $Address['shop-staging-jobs-1'] " 'hostname; exit 3'")), 'EXIT=42')
    }

    It 'never puts a passphrase on the command line' {
        $text = $Run['secret'] -join "`n"
        $text | Should -Not -Match 'sekrit-passphrase-17'
        $text | Should -Match 'ssh asks for the key''s passphrase itself'
        $text | Should -Match ([regex]::Escape("What if: " + (Get-ExpectedLine $Address['shop-staging-jobs-1'] '')))
    }
}

Describe 'Enter-MoltarInstance selects exactly one instance' {
    It 'refuses several matches with AmbiguousInstance, listing every candidate and how to narrow them' {
        $err = { Enter-MoltarInstance staging web @Ssh -- hostname } |
            Should -Throw -ErrorId 'AmbiguousInstance,Moltar.Cmdlets.EnterMoltarInstanceCommand' -PassThru
        $message = $err.Exception.Message
        $message | Should -Match '2 instances match .*Environment=staging Cluster=web'
        $candidates = @(Get-MoltarInstance staging web)
        $candidates.Count | Should -Be 2
        foreach ($instance in $candidates) {
            $message | Should -Match ("(?m)^\s+{0}\s+{1}\s+{2}\s*$" -f [regex]::Escape($instance.ShortId), [regex]::Escape($instance.Name), [regex]::Escape($instance.Address))
        }
        $message | Should -Match ([regex]::Escape("Enter-MoltarInstance staging web $($candidates[0].ShortId)"))
        $message | Should -Match '-First'
        $err.TargetObject.Name | Should -Be $candidates.Name
    }

    It 'refuses several piped instances the same way' {
        $err = { Get-MoltarInstance staging web | Enter-MoltarInstance @Ssh } |
            Should -Throw -ErrorId 'AmbiguousInstance,Moltar.Cmdlets.EnterMoltarInstanceCommand' -PassThru
        $err.Exception.Message | Should -Match '2 objects came down the pipeline'
        $err.Exception.Message | Should -Match 'shop-staging-web-1'
        $err.Exception.Message | Should -Match 'shop-staging-web-2'
        $err.Exception.Message | Should -Match 'Select-Object -First 1'
    }

    It 'names the filters when nothing matches (InstanceNotFound)' {
        $err = { Enter-MoltarInstance staging nothing @Ssh } |
            Should -Throw -ErrorId 'InstanceNotFound,Moltar.Cmdlets.EnterMoltarInstanceCommand' -PassThru
        $err.Exception.Message | Should -Match 'Project=shop Environment=staging Cluster=nothing'
        { @() | Enter-MoltarInstance @Ssh } | Should -Throw -ErrorId 'InstanceNotFound,Moltar.Cmdlets.EnterMoltarInstanceCommand'
    }

    It 'says so when the one instance has no address (NoAddress)' {
        { Enter-MoltarInstance staging noaddr @Ssh } | Should -Throw -ErrorId 'NoAddress,Moltar.Cmdlets.EnterMoltarInstanceCommand'
    }

    It 'refuses pipeline input together with a selection (SelectionWithInputObject)' {
        $err = { Get-MoltarInstance staging jobs | Enter-MoltarInstance @Ssh uptime } |
            Should -Throw -ErrorId 'SelectionWithInputObject,Moltar.Cmdlets.EnterMoltarInstanceCommand' -PassThru
        $err.Exception.Message | Should -Match "-Environment 'uptime'"
        $err.Exception.Message | Should -Match 'Enter-MoltarInstance -- uptime'
    }

    It 'refuses a mistyped parameter instead of running it on the host (NamedParameterNotFound)' {
        $err = { Enter-MoltarInstance staging jobs @Ssh -Frist } |
            Should -Throw -ErrorId 'NamedParameterNotFound,Moltar.Cmdlets.EnterMoltarInstanceCommand' -PassThru
        $err.Exception.Message | Should -Match '-Frist'
        $err.Exception.Message | Should -Match 'after --'
    }

    It 'fails loudly (DashDashNotSupported) instead of binding the words after -- as the selection when the command text cannot be read' {
        # A PowerShell without the public InvocationInfo.Statement (the one thing the "--" split relies on): the words
        # after -- must not become -Name 'echo' (another instance, or none) or run elsewhere. Moltar's own seam (the
        # member name it reads) stands in for such a PowerShell; PowerShell itself is not touched.
        $split = [Moltar.Cmdlets.EnterMoltarInstanceCommand].Assembly.GetType('Moltar.Infrastructure.DashDashSplit', $true)
        $field = $split.GetField('StatementMember', [Reflection.BindingFlags]'NonPublic, Static')
        $saved = $field.GetValue($null)
        $saved | Should -BeExactly 'Statement'
        $MyInvocation.PSObject.Properties[$saved] | Should -Not -BeNullOrEmpty -Because 'this PowerShell has InvocationInfo.Statement'
        $field.SetValue($null, 'NoSuchMemberInThisPowerShell')
        try {
            $err = { Enter-MoltarInstance staging jobs @Ssh -WhatIf -- echo hi } |
                Should -Throw -ErrorId 'DashDashNotSupported,Moltar.Cmdlets.EnterMoltarInstanceCommand' -PassThru
            $err.Exception.Message | Should -Match 'InvocationInfo.Statement'
            $err.Exception.Message | Should -Match '-ArgumentList'
            # Without "--" nothing needs the command text: the same call by parameter names still works.
            { Enter-MoltarInstance staging jobs @Ssh -WhatIf -ArgumentList echo, hi 6>$null } | Should -Not -Throw
        }
        finally { $field.SetValue($null, $saved) }
    }

    It 'says so when the ssh it found cannot be started (SshStartFailed)' {
        $bogus = New-Item -ItemType Directory -Force -Path (Join-Path $Scratch 'bogus-ssh')
        $fake = Join-Path $bogus.FullName 'ssh'
        Set-Content -LiteralPath $fake -Value 'not a program: no ELF header, no #! line'
        chmod 755 $fake
        $saved = $env:PATH
        try {
            $env:PATH = $bogus.FullName
            $err = { Enter-MoltarInstance staging jobs @Ssh -- hostname 6>$null } |
                Should -Throw -ErrorId 'SshStartFailed,Moltar.Cmdlets.EnterMoltarInstanceCommand' -PassThru
        }
        finally {
            $env:PATH = $saved
        }
        $err.Exception.Message | Should -Match ([regex]::Escape("Could not start $fake"))
    }

    It 'completes Environment, Cluster and Name by position from live tag values' {
        $line = 'Enter-MoltarInstance st'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('staging')
        $line = 'Enter-MoltarInstance staging j'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('jobs')
        $line = 'Enter-MoltarInstance staging web shop-staging-w'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('shop-staging-web-1', 'shop-staging-web-2')
    }

    It 'says how to install ssh when there is no ssh on PATH (SshClientNotFound)' {
        $empty = New-Item -ItemType Directory -Force -Path (Join-Path $Scratch 'no-ssh-here')
        $saved = $env:PATH
        try {
            $env:PATH = $empty.FullName
            $err = { Enter-MoltarInstance staging jobs @Ssh -- hostname } |
                Should -Throw -ErrorId 'SshClientNotFound,Moltar.Cmdlets.EnterMoltarInstanceCommand' -PassThru
        }
        finally {
            $env:PATH = $saved
        }
        $message = $err.Exception.Message
        $message | Should -Match 'Debian/Ubuntu: sudo apt-get install openssh-client'
        $message | Should -Match 'RHEL.*: sudo dnf install openssh-clients'
        $message | Should -Match 'macOS'
        $message | Should -Match 'Windows: Add-WindowsCapability -Online -Name OpenSSH.Client'
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }
}

Describe 'Enter-MoltarInstance through a jump host' {
    BeforeAll {
        # The target lives in a network namespace of its own (10.240.41.2 on its loopback); nothing in the
        # machine's namespace routes there. The bastion is an sshd started per connection inside that namespace
        # (systemd-socket-activate listens on 127.0.41.1:22 here and hands each connection to `sshd -i` there).
        $script:JumpSkip = if (-not (Get-Command systemd-socket-activate -ErrorAction Ignore)) { 'systemd-socket-activate is missing (apt-get install systemd)' }
                           elseif ((id -u) -ne '0') { 'network namespaces need root' }
        if ($JumpSkip) { return }

        $lab = [pscustomobject]@{
            Namespace  = "moltar-enter-$PID"
            Bastion    = '127.0.41.1'
            Target     = '10.240.41.2'
            TargetName = 'moltar-enter-target'
            Directory  = (New-Item -ItemType Directory -Force -Path (Join-Path $Scratch 'jump')).FullName
            Processes  = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()
        }
        $script:Lab = $lab
        $dir = $lab.Directory
        $hostKey = Join-Path $dir 'host_ed25519'
        ssh-keygen -q -t ed25519 -N '' -C 'moltar-enter-lab' -f $hostKey
        ssh-keygen -y -f $Sandbox.ClientKeyPath | Set-Content (Join-Path $dir 'authorized_keys')
        $config = Join-Path $dir 'sshd_config'
        @(
            "HostKey $hostKey", 'PidFile none', "AuthorizedKeysFile $dir/authorized_keys", 'StrictModes no',
            'PermitRootLogin prohibit-password', 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
            'AllowTcpForwarding yes'
        ) | Set-Content $config
        $hostPublic = (Get-Content "$hostKey.pub").Trim()
        $lab | Add-Member KnownHosts (Join-Path $dir 'known_hosts')
        @("$($lab.Bastion) $hostPublic", "$($lab.Target) $hostPublic") | Set-Content $lab.KnownHosts
        # For ssh's own -J: the jump ssh gets only -F, so the keys and known_hosts come from this config.
        $lab | Add-Member SshConfig (Join-Path $dir 'ssh_config')
        @('Host *', '  User root', "  IdentityFile $($Sandbox.ClientKeyPath)", '  IdentitiesOnly yes',
          "  UserKnownHostsFile $($lab.KnownHosts)", '  StrictHostKeyChecking yes') | Set-Content $lab.SshConfig

        function Start-LabProcess([string[]] $Command) {
            $info = [System.Diagnostics.ProcessStartInfo]::new($Command[0])
            foreach ($argument in $Command | Select-Object -Skip 1) { $info.ArgumentList.Add($argument) }
            $info.UseShellExecute = $false
            $info.RedirectStandardInput = $true
            $info.RedirectStandardOutput = $true
            $info.RedirectStandardError = $true
            $process = [System.Diagnostics.Process]::Start($info)
            $null = $process.StandardOutput.BaseStream.CopyToAsync([IO.Stream]::Null)
            $null = $process.StandardError.BaseStream.CopyToAsync([IO.Stream]::Null)
            $Lab.Processes.Add($process)
        }

        ip netns add $lab.Namespace
        if ($LASTEXITCODE) { throw "ip netns add $($lab.Namespace) failed" }
        ip -n $lab.Namespace link set lo up
        ip -n $lab.Namespace addr add "$($lab.Target)/32" dev lo
        if ($LASTEXITCODE) { throw "could not give $($lab.Namespace) the address $($lab.Target)" }
        Start-LabProcess @('ip', 'netns', 'exec', $lab.Namespace, 'unshare', '--uts', 'sh', '-c',
            "hostname $($lab.TargetName) && exec /usr/sbin/sshd -D -f $config -E $dir/target.log -o ListenAddress=$($lab.Target)")
        Start-LabProcess @('systemd-socket-activate', '-l', "$($lab.Bastion):22", '-a', '--inetd',
            'ip', 'netns', 'exec', $lab.Namespace, '/usr/sbin/sshd', '-i', '-f', $config, '-E', "$dir/bastion.log")
        $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
        while (-not ((Test-Path "$dir/target.log") -and (Select-String -Path "$dir/target.log" -Pattern 'Server listening on' -Quiet))) {
            if ([DateTime]::UtcNow -gt $deadline) { throw "The target sshd did not start: $(Get-Content "$dir/target.log" -Raw -ErrorAction Ignore)" }
            Start-Sleep -Milliseconds 100
        }
        $listening = $false
        while (-not $listening -and [DateTime]::UtcNow -lt $deadline) {
            $client = [System.Net.Sockets.TcpClient]::new()
            try { $client.Connect($lab.Bastion, 22); $listening = $true } catch { Start-Sleep -Milliseconds 100 } finally { $client.Dispose() }
        }
        if (-not $listening) { throw "The bastion does not listen on $($lab.Bastion):22" }

        $script:JumpRun = Invoke-EnterScript @"
'### proxycommand'
Enter-MoltarInstance staging hidden -User root -JumpHost root@$($lab.Bastion) -KeyFile '$($Sandbox.ClientKeyPath)' -KnownHostsPath '$($lab.KnownHosts)' -SshConfigPath none -- 'hostname; exit 5'
"EXIT=`$LASTEXITCODE"
'### dashj'
Enter-MoltarInstance staging hidden -JumpHost $($lab.Bastion) -SshConfigPath '$($lab.SshConfig)' -- 'hostname; exit 6'
"EXIT=`$LASTEXITCODE"
'### direct'
& '$SshExe' -F '$($lab.SshConfig)' -o ConnectTimeout=3 -o BatchMode=yes root@$($lab.Target) hostname
"EXIT=`$LASTEXITCODE"
'### end'
"@
    }

    AfterAll {
        if (-not $Lab) { return }
        # Every process inside the namespace is this file's (target sshd, its sessions, bastion sshd -i).
        foreach ($id in @(ip netns pids $Lab.Namespace 2>$null)) {
            Stop-Process -Id ([int]$id) -Force -ErrorAction Ignore
        }
        foreach ($process in $Lab.Processes) {
            if (-not $process.HasExited) { $process.Kill($true) }
            [void]$process.WaitForExit(5000)
            $process.Dispose()
        }
        ip netns del $Lab.Namespace 2>$null
    }

    It 'reaches a host that only the bastion can reach: keys, known_hosts and policy go to the bastion through a ProxyCommand' {
        if ($JumpSkip) { Set-ItResult -Skipped -Because $JumpSkip; return }
        $lines = $JumpRun['proxycommand']
        $shared = "-F none -i $($Sandbox.ClientKeyPath) -o UserKnownHostsFile=$($Lab.KnownHosts)"
        $lines[0] | Should -BeExactly "$SshExe $shared -o 'ProxyCommand=$SshExe $shared -l root -W ''[%h]:%p'' $($Lab.Bastion)' root@$($Lab.Target) 'hostname; exit 5'"
        $lines | Should -Contain $Lab.TargetName
        $lines[-1] | Should -BeExactly 'EXIT=5'
        Get-Content (Join-Path $Lab.Directory 'bastion.log') -Raw | Should -Match 'Accepted publickey for root'
    }

    It 'uses ssh -J with the user resolved from ssh config when no key or known_hosts option needs carrying' {
        if ($JumpSkip) { Set-ItResult -Skipped -Because $JumpSkip; return }
        $lines = $JumpRun['dashj']
        $lines[0] | Should -BeExactly "$SshExe -F $($Lab.SshConfig) -J root@$($Lab.Bastion) root@$($Lab.Target) 'hostname; exit 6'"
        $lines | Should -Contain $Lab.TargetName
        $lines[-1] | Should -BeExactly 'EXIT=6'
    }

    It 'cannot reach the target without the bastion (the test would prove nothing otherwise)' {
        if ($JumpSkip) { Set-ItResult -Skipped -Because $JumpSkip; return }
        $JumpRun['direct'] | Should -Be @('EXIT=255')
        $JumpRun['stderr'] | Should -Match "$([regex]::Escape($Lab.Target)) port 22"
    }
}

Describe 'Enter-MoltarInstance in a real terminal' {
    It 'hands the terminal to ssh: hostname runs on the host, exit comes back to the PowerShell prompt, Ctrl+C ends a remote command' {
        if (-not (Get-Command tmux -ErrorAction Ignore)) { Set-ItResult -Skipped -Because 'tmux is missing (apt-get install tmux)'; return }
        $socket = "moltar-enter-$PID"
        $pwsh = Get-PwshInvocation
        $shellCommand = (@($pwsh.FilePath) + @($pwsh.Arguments) + @('-NoProfile', '-NoLogo') | ForEach-Object { "'" + ($_ -replace "'", "'\''") + "'" }) -join ' '
        function Get-Pane { @(tmux -L $socket capture-pane -p -t enter -S -200) | ForEach-Object TrimEnd }
        function Wait-Pane([string] $What, [scriptblock] $Condition) {
            $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
            while ([DateTime]::UtcNow -lt $deadline) {
                $pane = Get-Pane
                if (& $Condition $pane) { return }
                Start-Sleep -Milliseconds 200
            }
            throw "Timed out waiting for $What. The pane:`n$((Get-Pane) -join "`n")"
        }
        function Send-Line([string] $Text) {
            tmux -L $socket send-keys -t enter -l $Text
            tmux -L $socket send-keys -t enter Enter
        }

        # A server of our own (-L): it starts with this process's environment (sandbox endpoint, scratch AWS files).
        tmux -L $socket new-session -d -s enter -x 200 -y 50 -c $Repo $shellCommand
        try {
            Wait-Pane 'the PowerShell prompt' { param($pane) @($pane -match '^PS .*>$').Count -ge 1 }
            Send-Line ("Import-Module '$(Get-TestModulePath)'; Enter-MoltarInstance staging jobs -KeyFile '$($Sandbox.ClientKeyPath)' " +
                       "-KnownHostsPath '$($Sandbox.KnownHostsPath)' -SshConfigPath none")
            Wait-Pane 'the remote shell prompt' { param($pane) @($pane -match '^ubuntu@shop-staging-jobs-1:.*\$$').Count -ge 1 }
            Send-Line 'hostname'
            Wait-Pane 'the output of hostname' { param($pane) $pane -contains 'shop-staging-jobs-1' }
            Send-Line 'exit 7'
            Wait-Pane 'the PowerShell prompt after the session' {
                param($pane)
                $closed = [array]::FindLastIndex([string[]]$pane, [Predicate[string]] { param($l) $l -match '^Connection to \S+ closed\.$' })
                $closed -ge 0 -and @($pane | Select-Object -Skip ($closed + 1) | Where-Object { $_ -match '^PS .*>$' }).Count -ge 1
            }
            Send-Line '"LASTEXITCODE=$LASTEXITCODE"'
            Wait-Pane '$LASTEXITCODE' { param($pane) $pane -contains 'LASTEXITCODE=7' }

            $pane = Get-Pane
            $pane | Should -Contain (Get-ExpectedLine $Address['shop-staging-jobs-1'] '')
            $pane | Should -Contain 'shop-staging-jobs-1'
            $pane | Should -Contain 'LASTEXITCODE=7'

            # Ctrl+C during a remote command: ssh ends, the prompt comes back long before the command would have (it
            # outlasts the hang guard of Wait-Pane). The remote side says when it runs: Ctrl+C comes after that.
            tmux -L $socket send-keys -t enter -l 'Clear-Host'
            tmux -L $socket send-keys -t enter Enter
            Wait-Pane 'a cleared screen' { param($pane) @($pane | Where-Object { $_ }).Count -eq 1 -and $pane[0] -match '^PS .*>$' }
            Send-Line ("Enter-MoltarInstance staging jobs -KeyFile '$($Sandbox.ClientKeyPath)' -KnownHostsPath '$($Sandbox.KnownHostsPath)' " +
                       "-SshConfigPath none -- 'echo remote-`$((6*7))-running; exec sleep $NeverWaitedSeconds'")
            Wait-Pane 'the remote command running' { param($pane) $pane -contains 'remote-42-running' }
            tmux -L $socket send-keys -t enter C-c
            Wait-Pane 'the PowerShell prompt after Ctrl+C' { param($pane) @($pane -match '^PS .*>$').Count -ge 1 }
            Send-Line '"AFTERCTRLC=$LASTEXITCODE"'
            Wait-Pane '$LASTEXITCODE after Ctrl+C' { param($pane) $pane -contains 'AFTERCTRLC=255' }
        }
        finally {
            tmux -L $socket kill-server 2>$null
        }
    }
}
