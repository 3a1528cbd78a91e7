# Unattended runs: -ErrorAction Stop stops starting new hosts but lets running ones finish, every fan-out ends with one
# summary line, a scheduled task (a real pwsh -NonInteractive -File with only PATH and HOME) exits non-zero when a host
# failed, and a confirmation nobody can answer is a clear error. One sandbox fleet of 4 real sshd hosts; the 4th is
# stopped (connection refused: the host that fails at once).
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

Describe 'Unattended runs' -Skip:([bool] $SkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        Import-Module $ModulePath -Force
        $script:TestHome = Enter-TestHome -Name unattended
        $script:Scratch = $TestHome.Scratch

        $script:Sandbox = Start-TestSandbox -Hosts 4
        $all = @($Sandbox.Hosts | Sort-Object Name)
        $script:Healthy = @($all[0..2])
        $script:Down = $all[3]
        # (An array's own Address() method hides member enumeration: $HealthyAddresses would not list the addresses.)
        $script:HealthyAddresses = @($Healthy | ForEach-Object Address)
        Stop-MoltarSandboxHost $Sandbox $Down.Name
        $script:Ssh = @{ KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
        $global:PSDefaultParameterValues['Invoke-MoltarCommand:TimeoutSeconds'] = 90

        # What each healthy host has in the file: read over SSH (the hosts have their own root filesystems).
        function Get-RemoteText([string] $Path) {
            $byAddress = @{}
            foreach ($result in ($script:HealthyAddresses | Invoke-MoltarCommand "cat $Path 2>/dev/null || true" @script:Ssh -Quiet -InformationAction Ignore)) {
                $byAddress[$result.Address] = $result.Output.Trim()
            }
            $byAddress
        }

        # A scheduled task as Task Scheduler, cron or a systemd timer runs it: pwsh -NonInteractive -File, only PATH and
        # HOME in the environment, no terminal (a new session, standard input at its end), output to files.
        function Invoke-ScheduledTask([string] $Name, [string] $Body) {
            $folder = Join-Path $script:Scratch $Name
            New-Item -ItemType Directory -Force -Path $folder | Out-Null
            $task = Join-Path $folder 'task.ps1'
            Set-Content -Path $task -Value $Body
            $pwsh = Get-PwshInvocation
            $stdout = Join-Path $folder 'stdout.txt'
            $stderr = Join-Path $folder 'stderr.txt'
            $argv = @('-i', "PATH=$env:PATH", "HOME=$env:HOME", 'setsid', '-w', $pwsh.FilePath) + @($pwsh.Arguments) + @('-NoProfile', '-NonInteractive', '-File', $task)
            $process = Start-Process -FilePath 'env' -ArgumentList $argv -RedirectStandardInput '/dev/null' -RedirectStandardOutput $stdout `
                                     -RedirectStandardError $stderr -PassThru -Wait
            [pscustomobject]@{
                ExitCode   = $process.ExitCode
                Output     = Get-Content -Raw -Path $stdout
                Error      = Get-Content -Raw -Path $stderr
                Transcript = Get-Content -Raw -Path (Join-Path $folder 'transcript.txt') -ErrorAction Ignore
            }
        }

        function New-TaskBody([string[]] $Address, [string] $Marker) {
            $list = ($Address | ForEach-Object { "'$_'" }) -join ', '
            @"
`$ErrorActionPreference = 'Stop'
Start-Transcript -Path (Join-Path `$PSScriptRoot 'transcript.txt') | Out-Null
try {
    Import-Module '$script:ModulePath'
    $list | Invoke-MoltarCommand 'sleep 3; echo finished > $Marker' -KeyFile '$($script:Sandbox.ClientKeyPath)' -KnownHostsPath '$($script:Sandbox.KnownHostsPath)' -SshConfigPath none -Quiet | Out-Null
}
finally {
    Stop-Transcript | Out-Null
}
"@
        }
    }

    AfterAll {
        $global:PSDefaultParameterValues.Remove('Invoke-MoltarCommand:TimeoutSeconds')
        Stop-TestSandbox $Sandbox
        if ($TestHome) { Exit-TestHome $TestHome }
    }

    It 'a scheduled task with -ErrorAction Stop: one host down at once, every healthy host finishes its 3-second command, the task exits non-zero, the transcript has the summary' {
        $marker = "moltar-task-$([guid]::NewGuid().ToString('n'))"
        # The down host comes last: hosts start in the order given, so every healthy one has started when it fails.
        $run = Invoke-ScheduledTask -Name 'failing' -Body (New-TaskBody -Address ($HealthyAddresses + $Down.Address) -Marker $marker)
        $run.ExitCode | Should -Not -Be 0 -Because "$($run.Output)$($run.Error)"
        $remote = Get-RemoteText $marker
        foreach ($healthy in $Healthy) { $remote[$healthy.Address] | Should -Be 'finished' -Because "$($healthy.Name) was running when $($Down.Name) failed" }
        # The summary names the command cut to 60 characters.
        $run.Transcript | Should -Match ("Invoke-MoltarCommand 'sleep 3; echo finished > moltar-task-[0-9a-f]+\.\.\.': " + [regex]::Escape('3 succeeded, 1 failed, 0 not started (4 hosts'))
        "$($run.Output)$($run.Error)" | Should -Match 'HostsFailed|1 host failed'
        "$($run.Output)$($run.Error)" | Should -Match ([regex]::Escape($Down.Address))
    }

    It 'the same scheduled task with every host healthy exits 0' {
        $marker = "moltar-task-$([guid]::NewGuid().ToString('n'))"
        $run = Invoke-ScheduledTask -Name 'healthy' -Body (New-TaskBody -Address $HealthyAddresses -Marker $marker)
        $run.ExitCode | Should -Be 0 -Because "$($run.Output)$($run.Error)"
        $remote = Get-RemoteText $marker
        foreach ($healthy in $Healthy) { $remote[$healthy.Address] | Should -Be 'finished' }
        $run.Transcript | Should -Match ("Invoke-MoltarCommand 'sleep 3; echo finished > moltar-task-[0-9a-f]+\.\.\.': " + [regex]::Escape('3 succeeded, 0 failed, 0 not started (3 hosts'))
    }

    It '-ErrorAction Stop: no host starts after the first failure; the results are written, then one HostsFailed error names the failed host and the counts' {
        $marker = "stop-$((New-Guid).ToString('n').Substring(0, 8))"
        $results = [Collections.Generic.List[object]]::new()
        $thrown = $null
        try {
            @($Down.Address) + $HealthyAddresses |
                Invoke-MoltarCommand "echo started > $marker" @Ssh -ThrottleLimit 1 -Quiet -ErrorAction Stop -InformationVariable info -InformationAction SilentlyContinue |
                ForEach-Object { $results.Add($_) }
        }
        catch { $thrown = $_ }
        $thrown | Should -Not -BeNullOrEmpty
        $thrown.FullyQualifiedErrorId | Should -Be 'HostsFailed,Moltar.Cmdlets.InvokeMoltarCommandCommand'
        $thrown.CategoryInfo.Category | Should -Be 'OperationStopped'
        "$thrown" | Should -BeLike "*1 host failed: $($Down.Address) (ConnectFailed)*3 not started*0 succeeded*"
        @($thrown.TargetObject) | Should -Be @($Down.Address)
        $results.Count | Should -Be 4
        ($results | Where-Object Address -EQ $Down.Address).ErrorId | Should -Be 'ConnectFailed'
        @($results | Where-Object ErrorId -EQ 'Skipped').Count | Should -Be 3
        $summary = @($info | Where-Object { $_.Tags -contains 'summary' })
        $summary.Count | Should -Be 1
        "$($summary[0].MessageData)" | Should -BeLike "Invoke-MoltarCommand 'echo started > $marker': 0 succeeded, 1 failed, 3 not started (4 hosts, * s)."
        (Get-RemoteText $marker).Values | Should -Not -Contain 'started' -Because 'no host starts after the first failure'
    }

    It 'without -ErrorAction Stop every host runs, each failure is its own error, and the summary line comes last on the Information stream' {
        $results = @(@($Down.Address) + $HealthyAddresses |
            Invoke-MoltarCommand 'true' @Ssh -ThrottleLimit 1 -Quiet -ErrorVariable errors -ErrorAction SilentlyContinue -InformationVariable info -InformationAction SilentlyContinue)
        @($results | Where-Object Succeeded).Count | Should -Be 3
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -Be 'ConnectFailed,Moltar.Cmdlets.InvokeMoltarCommandCommand'
        $summary = @($info | Where-Object { $_.Tags -contains 'summary' })
        $summary.Count | Should -Be 1
        $summary[0].Tags | Should -Contain 'Moltar'
        "$($summary[0].MessageData)" | Should -BeLike "Invoke-MoltarCommand 'true': 3 succeeded, 1 failed, 0 not started (4 hosts, * s)."
        $info[-1] | Should -Be $summary[0]
    }

    It 'Copy-MoltarFile with -ErrorAction Stop: the hosts already copying finish, then one HostsFailed error; the summary counts them' {
        $name = "moltar-copy-$([guid]::NewGuid().ToString('n')).txt"
        $local = Join-Path $Scratch $name
        Set-Content -Path $local -Value 'copied' -NoNewline
        $thrown = $null
        # The down host last: every healthy host has started copying when it fails (hosts start in the order given).
        try { $HealthyAddresses + $Down.Address | Copy-MoltarFile $local @Ssh -ErrorAction Stop -InformationVariable info -InformationAction SilentlyContinue | Out-Null }
        catch { $thrown = $_ }
        $thrown.FullyQualifiedErrorId | Should -Be 'HostsFailed,Moltar.Cmdlets.CopyMoltarFileCommand'
        "$thrown" | Should -BeLike "*1 host failed: $($Down.Address) (ConnectFailed)*"
        $remote = Get-RemoteText $name
        foreach ($healthy in $Healthy) { $remote[$healthy.Address] | Should -Be 'copied' }
        "$(@($info | Where-Object { $_.Tags -contains 'summary' })[0].MessageData)" | Should -BeLike 'Copy-MoltarFile upload of 1 file (6 B): 3 succeeded, 1 failed, 0 not started (4 hosts, * s).'
    }

    It 'a confirmation nobody can answer is a ConfirmationNotPossible error that says to pass -Confirm:$false (<Case>)' -ForEach @(
        @{ Case = 'pwsh -NonInteractive'; NonInteractive = $true }
        @{ Case = 'standard input at its end, as under cron'; NonInteractive = $false }
    ) {
        $pwsh = Get-PwshInvocation
        $command = "Import-Module '$ModulePath'; try { '$($Healthy[0].Address)' | Invoke-MoltarDeploy -Package demo-app -Force -SshConfigPath none -KeyFile '$($Sandbox.ClientKeyPath)' } " +
                   "catch { 'ERRORID ' + `$_.FullyQualifiedErrorId; 'MESSAGE ' + `$_.Exception.Message }"
        $flags = @('-NoProfile') + $(if ($NonInteractive) { '-NonInteractive' } else { @() })
        $output = Get-Content /dev/null | & $pwsh.FilePath @($pwsh.Arguments) @flags -Command $command
        $text = $output -join "`n"
        $text | Should -Match 'ERRORID ConfirmationNotPossible,Moltar.Cmdlets.InvokeMoltarDeployCommand' -Because $text
        $text | Should -Match ([regex]::Escape('Pass -Confirm:$false'))
    }
}
