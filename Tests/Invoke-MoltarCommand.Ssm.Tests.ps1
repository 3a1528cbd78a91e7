# Invoke-MoltarCommand -Transport Ssm against the sandbox's Systems Manager stand-in (AWS_ENDPOINT_URL_SSM): 3 real
# sshd hosts whose simulated agents run each command on the host as root, and 60 synthetic instances whose agents run
# it locally (never as root). The stand-in's request logs show what Moltar asked of EC2, of Systems Manager and of the
# S3 output bucket its agents write full output to (AWS_ENDPOINT_URL_S3).
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

Describe 'Invoke-MoltarCommand -Transport Ssm' -Skip:([bool] $SkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        Import-Module $ModulePath -Force
        $script:TestHome = Enter-TestHome -Name ssm
        $script:Scratch = $TestHome.Scratch

        # demo-app 1.0.0 and 1.1.0 for the deploy over SSM (the generated instances' Packages tag names demo-app).
        $aptRepository = & (Join-Path $PSScriptRoot 'Sandbox/New-TestAptRepository.ps1') -Path (Join-Path $Scratch 'apt')
        $script:Sandbox = Start-TestSandbox -Hosts 3 -Synthetic 60 -Options @{ AptRepository = $aptRepository }
        $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
        $env:AWS_ENDPOINT_URL_SSM = $Sandbox.SsmEndpoint
        $env:AWS_ENDPOINT_URL_S3 = $Sandbox.S3Endpoint
        $script:Hosts = @($Sandbox.Hosts | Sort-Object Name)
        $script:HostIds = @($Hosts | ForEach-Object InstanceId)
        $script:CmdletId = 'Moltar.Cmdlets.InvokeMoltarCommandCommand'

        $script:Repo = Join-Path $Scratch 'repo'
        New-Item -ItemType Directory -Force -Path $Repo | Out-Null
        Set-Content (Join-Path $Repo '.moltar.psd1') "@{ Project = 'demo' }"
        Push-Location $Repo
        $script:Instances = @(Get-MoltarInstance)
        $script:HostInstances = @($Instances | Where-Object InstanceId -In $HostIds | Sort-Object Name)
        $script:MachineName = (hostname)

        function Get-ThrownError([scriptblock] $Script) {
            try { & $Script; $null } catch { $_ }
        }

        # What an instance's command printed, as Systems Manager returned it (host-backed: the host's name).
        function Get-ExpectedName($Instance) {
            if ($Instance.InstanceId -in $script:HostIds) { $Instance.Name } else { $script:MachineName }
        }
        # The uid a command runs as: root on a host (the agent's user); on a synthetic instance (run on this machine)
        # never root: nobody when the sandbox runs as root, else the sandbox's own user.
        $script:MyUid = [int](id -u)
        function Get-ExpectedUid($Instance) {
            if ($Instance.InstanceId -in $script:HostIds) { 0 } elseif ($script:MyUid -eq 0) { 65534 } else { $script:MyUid }
        }
    }

    AfterAll {
        Pop-Location -ErrorAction Ignore
        Stop-TestSandbox $Sandbox
        Exit-TestHome $TestHome
    }

    BeforeEach {
        Set-MoltarSandboxSsm $Sandbox
        Clear-MoltarSandboxSsmRequest $Sandbox
        Clear-MoltarSandboxRequest $Sandbox
        $null = Get-MoltarSandboxS3Request $Sandbox -Clear
    }

    It 'runs the canonical pipeline through Systems Manager: one correct result per instance' {
        $web = @(Get-MoltarInstance -Cluster web)
        $results = @($web | Invoke-MoltarCommand 'uname -n; id -u' -Transport Ssm)
        $results.Count | Should -Be $web.Count
        foreach ($instance in $web) {
            $result = @($results | Where-Object InstanceId -EQ $instance.InstanceId)
            $result.Count | Should -Be 1
            $result[0] | Should -BeOfType ([Moltar.MoltarCommandResult])
            $result[0].Name | Should -Be $instance.Name
            $result[0].Succeeded | Should -BeTrue
            $result[0].ExitCode | Should -Be 0
            $result[0].Output | Should -BeExactly "$(Get-ExpectedName $instance)`n$(Get-ExpectedUid $instance)`n"
        }
        @(Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand).Count | Should -Be 1
    }

    It 'runs a synthetic instance''s script on this machine never as root (the stand-in''s own safety)' {
        $synthetic = @($Instances | Where-Object InstanceId -NotIn $HostIds | Select-Object -First 2)
        $synthetic.Count | Should -Be 2
        $results = @($synthetic | Invoke-MoltarCommand 'id -u; touch /root/moltar-ssm-probe 2>/dev/null && echo wrote' -Transport Ssm -ErrorAction SilentlyContinue)
        $results.Count | Should -Be 2
        foreach ($result in $results) {
            $result.Output | Should -BeExactly "$(Get-ExpectedUid $result)`n"
        }
        if ($MyUid -eq 0) { Test-Path /root/moltar-ssm-probe | Should -BeFalse }
    }

    It 'loads AWSSDK.SimpleSystemsManagement from the module''s deps, in its private load context' {
        $null = $HostInstances[0] | Invoke-MoltarCommand 'true' -Transport Ssm
        $assembly = @([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'AWSSDK.SimpleSystemsManagement' })
        $assembly.Count | Should -Be 1
        [Runtime.Loader.AssemblyLoadContext]::GetLoadContext($assembly[0]) | Should -Not -Be ([Runtime.Loader.AssemblyLoadContext]::Default)
        $assembly[0].Location | Should -BeLike (Join-Path (Split-Path $ModulePath) 'deps*')
    }

    It 'gives exit codes and standard error as over SSH, with CommandFailed per failed instance' {
        $results = @($HostInstances | Invoke-MoltarCommand 'echo oops >&2; case $(uname -n) in *-web-*) exit 0;; *) exit 7;; esac' -Transport Ssm -ErrorAction SilentlyContinue -ErrorVariable failures)
        $results.Count | Should -Be 3
        foreach ($result in $results) {
            $result.Error | Should -BeExactly "oops`n"
            if ($result.Name -like '*-web-*') { $result.ExitCode | Should -Be 0; $result.ErrorId | Should -BeNullOrEmpty }
            else { $result.ExitCode | Should -Be 7; $result.ErrorId | Should -Be 'CommandFailed' }
        }
        $failures.Count | Should -Be @($results | Where-Object { -not $_.Succeeded }).Count
        $failures[0].FullyQualifiedErrorId | Should -BeExactly "CommandFailed,$CmdletId"
    }

    It 'targets the selection by tags on the service side: no DescribeInstances, honouring TagNames' {
        $results = @(Invoke-MoltarCommand 'uname -n' -Environment production -Cluster web -Transport Ssm)
        $expected = @($Instances | Where-Object { $_.Environment -eq 'production' -and $_.Cluster -eq 'web' })
        $results.Count | Should -Be $expected.Count
        ($results.InstanceId | Sort-Object) | Should -Be ($expected.InstanceId | Sort-Object)
        @(Get-MoltarSandboxRequest $Sandbox -Action DescribeInstances).Count | Should -Be 0
        $send = @(Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand)
        $send.Count | Should -Be 1
        ($send[0].Body.Targets | ForEach-Object { "$($_.Key)=$($_.Values -join ',')" }) |
            Should -Be @('tag:Project=demo', 'tag:Environment=production', 'tag:Cluster=web')

        $renamed = Join-Path $Scratch 'renamed'
        New-Item -ItemType Directory -Force -Path $renamed | Out-Null
        Set-Content (Join-Path $renamed '.moltar.psd1') "@{ Project = 'demo'; TagNames = @{ Environment = 'Stage' } }"
        Push-Location $renamed
        try {
            Clear-MoltarSandboxSsmRequest $Sandbox
            $err = Get-ThrownError { Invoke-MoltarCommand 'true' -Environment production -Transport Ssm }
            $err.FullyQualifiedErrorId | Should -BeExactly "InstanceNotFound,$CmdletId"
            (Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand).Body.Targets.Key | Should -Contain 'tag:Stage'
        }
        finally { Pop-Location }
    }

    It 'sends piped instance ids in chunks of 50 and reports every instance' {
        $results = @($Instances | Invoke-MoltarCommand 'echo ok' -Transport Ssm)
        $results.Count | Should -Be $Instances.Count
        @($results | Where-Object Output -EQ "ok`n").Count | Should -Be $Instances.Count
        $sends = @(Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand)
        $sends.Count | Should -Be ([math]::Ceiling($Instances.Count / 50))
        $sends | ForEach-Object { $_.Body.InstanceIds.Count | Should -BeLessOrEqual 50 }
        $describe = @(Get-MoltarSandboxSsmRequest $Sandbox -Action DescribeInstanceInformation)
        $describe | ForEach-Object { $_.Body.Filters[0].Values.Count | Should -BeLessOrEqual 50 }
    }

    It 'reports an instance Systems Manager does not manage, with its own error id, and runs on the others' {
        $unmanaged = $HostInstances[0]
        Set-MoltarSandboxSsm $Sandbox -Unmanaged $unmanaged.InstanceId
        $results = @($HostInstances | Invoke-MoltarCommand 'echo ok' -Transport Ssm -ErrorAction SilentlyContinue -ErrorVariable failures)
        $results.Count | Should -Be 3
        $bad = $results | Where-Object InstanceId -EQ $unmanaged.InstanceId
        $bad.ErrorId | Should -Be 'SsmNotManaged'
        $bad.Error | Should -Match 'AmazonSSMManagedInstanceCore'
        @($results | Where-Object Succeeded).Count | Should -Be 2
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeExactly "SsmNotManaged,$CmdletId"
        $failures[0].TargetObject.InstanceId | Should -Be $unmanaged.InstanceId
        (Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand).Body.InstanceIds | Should -Not -Contain $unmanaged.InstanceId
    }

    It 'reports an instance whose agent never reports as SsmUndeliverable' {
        $silent = $HostInstances[1]
        Set-MoltarSandboxSsm $Sandbox -Undeliverable $silent.InstanceId -UndeliverableAfterMs 300
        $results = @($HostInstances | Invoke-MoltarCommand 'echo ok' -Transport Ssm -ErrorAction SilentlyContinue)
        ($results | Where-Object InstanceId -EQ $silent.InstanceId).ErrorId | Should -Be 'SsmUndeliverable'
        @($results | Where-Object Succeeded).Count | Should -Be 2
    }

    It 'maps -TimeoutSeconds to the execution timeout and reports Timeout with the output so far' {
        $result = $HostInstances[0] | Invoke-MoltarCommand 'echo before; sleep 640; echo after' -Transport Ssm -TimeoutSeconds 2 -ErrorAction SilentlyContinue -ErrorVariable failures
        $result.ErrorId | Should -Be 'Timeout'
        $result.ExitCode | Should -BeNullOrEmpty
        $result.Output | Should -BeExactly "before`n"
        $failures[0].FullyQualifiedErrorId | Should -BeExactly "Timeout,$CmdletId"
        (Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand).Body.Parameters.executionTimeout | Should -Be '2'
    }

    It 'says so when Systems Manager truncated the output (24,000 characters)' {
        $result = $HostInstances[0] | Invoke-MoltarCommand 'head -c 30000 /dev/zero | tr "\0" x' -Transport Ssm -WarningVariable warnings -WarningAction SilentlyContinue
        $result.Succeeded | Should -BeTrue
        $result.Output.Length | Should -Be 24000
        $result.Truncated | Should -BeTrue
        $warnings | Should -Match '24000 characters'
    }

    It 'reads the whole output from the S3 output bucket when Systems Manager truncated it, at the agent''s key' {
        $target = $HostInstances[0]
        $result = $target | Invoke-MoltarCommand 'head -c 30000 /dev/zero | tr "\0" x; head -c 25000 /dev/zero | tr "\0" y >&2' -Transport Ssm `
            -OutputS3BucketName moltar-output -OutputS3KeyPrefix runs/nightly -WarningVariable warnings -WarningAction SilentlyContinue
        $result.Succeeded | Should -BeTrue
        $result.Output | Should -BeExactly ('x' * 30000)
        $result.Error | Should -BeExactly ('y' * 25000)
        $result.Truncated | Should -BeFalse
        $warnings.Count | Should -Be 0
        $send = Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand
        $send.Body.OutputS3BucketName | Should -BeExactly 'moltar-output'
        $send.Body.OutputS3KeyPrefix | Should -BeExactly 'runs/nightly'
        $commandId = @(Get-MoltarSandboxSsmCommand $Sandbox)[-1].commandId
        $folder = "runs/nightly/$commandId/$($target.InstanceId)/awsrunShellScript/0.awsrunShellScript"
        @(Get-MoltarSandboxS3Request $Sandbox -Clear | ForEach-Object { "$($_.Method) $($_.Bucket)/$($_.Key) $($_.Status)" }) |
            Should -Be @("GET moltar-output/$folder/stdout 200", "GET moltar-output/$folder/stderr 200")

        # Streams the service returned whole are not read again.
        $short = $target | Invoke-MoltarCommand 'echo short' -Transport Ssm -OutputS3BucketName moltar-output
        $short.Output | Should -BeExactly "short`n"
        @(Get-MoltarSandboxS3Request $Sandbox).Count | Should -Be 0
    }

    It 'keeps the truncated output with its own warning (SsmOutputUnreadable) when the bucket has no object for it' {
        $target = $HostInstances[1]
        Set-MoltarSandboxSsm $Sandbox -OutputUploadDenied $target.InstanceId
        $result = $target | Invoke-MoltarCommand 'head -c 30000 /dev/zero | tr "\0" x' -Transport Ssm -OutputS3BucketName moltar-output `
            -WarningVariable warnings -WarningAction SilentlyContinue
        $result.Succeeded | Should -BeTrue
        $result.Output | Should -BeExactly ('x' * 24000)
        $result.Truncated | Should -BeTrue
        $warnings.Count | Should -Be 1
        $warnings[0].Message | Should -Match "^SsmOutputUnreadable: $($target.InstanceId): stdout could not be read from s3://moltar-output/.+/stdout \(NoSuchKey: "
        $warnings[0].Message | Should -Match 'the first 24000 characters Systems Manager returned'
        (Get-MoltarSandboxS3Request $Sandbox).ErrorCode | Should -Be 'NoSuchKey'
    }

    It 'refuses the output bucket parameters where they cannot apply (<Id>)' -TestCases @(
        @{ Id = 'SsmOnlyParameter'; Arguments = @{ OutputS3BucketName = 'moltar-output'; Transport = 'Ssh' }; Pattern = 'applies to -Transport Ssm only' }
        @{ Id = 'OutputS3BucketNameMissing'; Arguments = @{ OutputS3KeyPrefix = 'runs'; Transport = 'Ssm' }; Pattern = 'give -OutputS3BucketName too' }
    ) {
        $err = Get-ThrownError { $HostInstances | Invoke-MoltarCommand 'true' @Arguments }
        $err.FullyQualifiedErrorId | Should -BeExactly "$Id,$CmdletId"
        $err.Exception.Message | Should -Match $Pattern
        @(Get-MoltarSandboxSsmRequest $Sandbox).Count | Should -Be 0
    }

    It 'rides out throttling of its polling (ThrottlingException) and still reports every instance' {
        Set-MoltarSandboxSsm $Sandbox -ThrottleFirst 8 -ThrottleActions ListCommandInvocations
        $results = @($HostInstances | Invoke-MoltarCommand 'uname -n' -Transport Ssm -Verbose 4>&1)
        $objects = @($results | Where-Object { $_ -is [Moltar.MoltarCommandResult] })
        $objects.Count | Should -Be 3
        $objects | ForEach-Object { $_.Output | Should -BeExactly "$($_.Name)`n" }
        @(Get-MoltarSandboxSsmRequest $Sandbox -Action ListCommandInvocations | Where-Object ErrorCode -EQ 'ThrottlingException').Count | Should -Be 8
        @($results | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -match 'throttled' }).Count | Should -BeGreaterThan 0
    }

    It 'cancels the command (CancelCommand) when the pipeline is stopped, ending the remote scripts' {
        $sleep = "sleep $($NeverWaitedSeconds + 49)"
        $ps = [powershell]::Create()
        $ps.Runspace = [runspacefactory]::CreateRunspace()
        $ps.Runspace.Open()
        try {
            $ps.Runspace.SessionStateProxy.Path.SetLocation($Repo) | Out-Null
            $null = $ps.AddScript({ param($module, $instances, $command) Import-Module $module; $instances | Invoke-MoltarCommand $command -Transport Ssm })
            $null = $ps.AddArgument($ModulePath).AddArgument($HostInstances).AddArgument("echo started; $sleep; echo never")
            $async = $ps.BeginInvoke()
            $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
            do {
                Start-Sleep -Milliseconds 100
                $running = @((Get-MoltarSandboxSsmCommand $Sandbox).invocations | Where-Object status -EQ 'InProgress')
            } while ($running.Count -lt 3 -and [DateTime]::UtcNow -lt $deadline)
            $running.Count | Should -Be 3 -Because 'every instance started the command'
            Start-Sleep -Seconds 1   # the scripts reach their sleep

            $stopping = $ps.BeginStop($null, $null)
            $stopping.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($HangGuardSeconds)) | Should -BeTrue -Because 'Stop ends the run (hang guard)'
            $ps.EndStop($stopping)
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            @(Get-MoltarSandboxSsmRequest $Sandbox -Action CancelCommand).Count | Should -Be 1
            do {
                Start-Sleep -Milliseconds 100
                $states = @(@(Get-MoltarSandboxSsmCommand $Sandbox)[-1].invocations.status)
            } while (@($states | Where-Object { $_ -ne 'Cancelled' }).Count -gt 0 -and [DateTime]::UtcNow -lt $deadline)
            $states | Should -Be @('Cancelled', 'Cancelled', 'Cancelled')
        }
        finally {
            $ps.Runspace.Dispose()
            $ps.Dispose()
        }
        $left = @($HostInstances | Invoke-MoltarCommand "ps -eo args | grep -cx '$sleep' || true" -Transport Ssm)
        $left | ForEach-Object { $_.Output.Trim() | Should -Be '0' }
    }

    It 'refuses what cannot apply over Systems Manager with a stable error id (<Parameter>)' -TestCases @(
        @{ Parameter = 'Pty'; Arguments = @{ Pty = $true } }
        @{ Parameter = 'Stdin'; Arguments = @{ Stdin = 'data' } }
        @{ Parameter = 'User'; Arguments = @{ User = 'deploy' } }
        @{ Parameter = 'JumpHost'; Arguments = @{ JumpHost = 'bastion' } }
    ) {
        Clear-MoltarSandboxSsmRequest $Sandbox
        $err = Get-ThrownError { $HostInstances | Invoke-MoltarCommand 'true' -Transport Ssm @Arguments }
        $err.FullyQualifiedErrorId | Should -BeExactly "SsmParameterNotSupported,$CmdletId"
        $err.Exception.Message | Should -Match "-$Parameter does not apply"
        @(Get-MoltarSandboxSsmRequest $Sandbox).Count | Should -Be 0
    }

    It 'refuses a selection tag targets cannot express (-Name substring) with SsmSelectionNotSupported' {
        $err = Get-ThrownError { Invoke-MoltarCommand 'true' -Name web -Transport Ssm }
        $err.FullyQualifiedErrorId | Should -BeExactly "SsmSelectionNotSupported,$CmdletId"
        $err.Exception.Message | Should -Match '-Tag @\{ Name'
    }

    It 'shows the SendCommand requests with -WhatIf and sends nothing' {
        $HostInstances | Invoke-MoltarCommand 'touch /tmp/whatif' -Transport Ssm -WhatIf
        $text = (Invoke-CleanPwsh "Import-Module '$ModulePath'; Set-Location '$Repo'; Invoke-MoltarCommand 'touch /tmp/whatif' -Environment production -Cluster web -Transport Ssm -ThrottleLimit 5 -WhatIf") -join "`n"
        $text | Should -Match 'What if: .*SendCommand AWS-RunShellScript Targets=tag:Project=demo tag:Environment=production tag:Cluster=web MaxConcurrency=5 MaxErrors=100% executionTimeout=3600'
        @(Get-MoltarSandboxSsmRequest $Sandbox).Count | Should -Be 0
    }

    Context 'Enter-MoltarInstance -Transport Ssm' {
        BeforeAll {
            $script:SavedPath = $env:PATH
            # Stand-ins for the AWS CLI and the plugin: 'aws' records its arguments and the account it was given.
            $script:StandIns = Join-Path $Scratch 'session-tools'
            New-Item -ItemType Directory -Force -Path $StandIns | Out-Null
            $script:AwsLog = Join-Path $Scratch 'aws-args.txt'
            Set-Content (Join-Path $StandIns 'aws') "#!/bin/sh`nprintf '%s\n' `"`$@`" > '$AwsLog'`necho `"key=`$AWS_ACCESS_KEY_ID profile=`${AWS_PROFILE:-none}`" >> '$AwsLog'`nexit 3"
            Set-Content (Join-Path $StandIns 'session-manager-plugin') "#!/bin/sh`nexit 0"
            chmod +x (Join-Path $StandIns 'aws') (Join-Path $StandIns 'session-manager-plugin')
            $script:OnlyAws = Join-Path $Scratch 'only-aws'
            New-Item -ItemType Directory -Force -Path $OnlyAws | Out-Null
            Copy-Item (Join-Path $StandIns 'aws') $OnlyAws
            chmod +x (Join-Path $OnlyAws 'aws')
        }
        AfterEach { $env:PATH = $SavedPath }

        It 'names both tools when neither is on PATH, and the missing one when one is' {
            $env:PATH = Join-Path $Scratch 'empty-path'
            $err = Get-ThrownError { $HostInstances[0] | Enter-MoltarInstance -Transport Ssm }
            $err.FullyQualifiedErrorId | Should -BeExactly 'SessionManagerNotFound,Moltar.Cmdlets.EnterMoltarInstanceCommand'
            $err.Exception.Message | Should -Match "the AWS CLI \('aws'\) and the Session Manager plugin \('session-manager-plugin'\) were not found"
            $env:PATH = $OnlyAws
            $err = Get-ThrownError { $HostInstances[0] | Enter-MoltarInstance -Transport Ssm }
            $err.FullyQualifiedErrorId | Should -BeExactly 'SessionManagerNotFound,Moltar.Cmdlets.EnterMoltarInstanceCommand'
            $err.Exception.Message | Should -Match "the Session Manager plugin \('session-manager-plugin'\) was not found"
            $err.Exception.Message | Should -Not -Match "AWS CLI \('aws'\) and"
        }

        It 'runs aws ssm start-session for the one instance with the account, region and endpoint Moltar resolved' {
            Remove-Item $AwsLog -ErrorAction Ignore
            $env:PATH = "$StandIns$([IO.Path]::PathSeparator)$SavedPath"
            Enter-MoltarInstance production web $HostInstances.Where({ $_.Name -like '*-production-web-*' })[0].ShortId -Transport Ssm 6>$null
            $LASTEXITCODE | Should -Be 3
            $target = $HostInstances.Where({ $_.Name -like '*-production-web-*' })[0]
            Get-Content $AwsLog | Should -Be @('ssm', 'start-session', '--target', $target.InstanceId, '--region', $Sandbox.Region,
                                                '--endpoint-url', $Sandbox.SsmEndpoint, "key=AKIDTEST profile=none")
        }
    }

    It 'deploys, pins and rolls back over SSM, leaving the versions dpkg reports over SSH' {
        $target = $HostInstances[0]
        $ssh = @{ User = $Sandbox.User; KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none'; Quiet = $true }
        function Get-InstalledOverSsh { ($target | Invoke-MoltarCommand 'dpkg-query -W -f=''${Version}'' demo-app' @ssh).Output }

        $pinned = $target | Invoke-MoltarDeploy -Package demo-app -Version 1.1.0 -Transport Ssm -Quiet -Confirm:$false
        $pinned | Should -BeOfType ([Moltar.MoltarDeployResult])
        $pinned.Succeeded | Should -BeTrue -Because $pinned.Error
        $pinned.InstalledVersions['demo-app'] | Should -Be '1.1.0'
        Get-InstalledOverSsh | Should -BeExactly '1.1.0'

        $rolledBack = $target | Invoke-MoltarDeploy -Package demo-app -Version 1.0.0 -Transport Ssm -Quiet -Confirm:$false
        $rolledBack.Succeeded | Should -BeTrue -Because $rolledBack.Error
        $rolledBack.PreviousVersions['demo-app'] | Should -Be '1.1.0'
        $rolledBack.InstalledVersions['demo-app'] | Should -Be '1.0.0'
        Get-InstalledOverSsh | Should -BeExactly '1.0.0'
        $rolledBack.Output | Should -Match 'apt-get'
        @(Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand).Count | Should -BeGreaterThan 4 -Because 'each deploy step is one Run Command'
    }

    It 'takes the transport from MOLTAR_TRANSPORT, shown by Get-MoltarContext, below the parameter' {
        $env:MOLTAR_TRANSPORT = 'Ssm'
        try {
            $context = Get-MoltarContext
            $context.Transport | Should -Be 'Ssm'
            ($context.Settings | Where-Object Name -EQ 'Transport').SourceText | Should -Be 'Environment MOLTAR_TRANSPORT'
            $result = $HostInstances[0] | Invoke-MoltarCommand 'uname -n'
            $result.Output | Should -BeExactly "$($HostInstances[0].Name)`n"
            @(Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand).Count | Should -Be 1
            (Get-MoltarContext -ErrorAction Stop).Transport | Should -Be 'Ssm'
        }
        finally { Remove-Item env:MOLTAR_TRANSPORT }
        (Get-MoltarContext).Transport | Should -Be 'Ssh'
    }
}
