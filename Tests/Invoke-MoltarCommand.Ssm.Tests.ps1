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

        $s3 = @([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'AWSSDK.S3' })
        $s3.Count | Should -Be 1
        [Runtime.Loader.AssemblyLoadContext]::GetLoadContext($s3[0]) | Should -Not -Be ([Runtime.Loader.AssemblyLoadContext]::Default)

        # -MaxOutputBytes bounds what is read back, as it bounds what is kept over SSH.
        $capped = $target | Invoke-MoltarCommand 'head -c 30000 /dev/zero | tr "\0" x' -Transport Ssm -OutputS3BucketName moltar-output -MaxOutputBytes 1000 `
            -WarningVariable cappedWarnings -WarningAction SilentlyContinue
        $capped.Output | Should -BeExactly ('x' * 1000)
        $capped.Truncated | Should -BeTrue
        "$cappedWarnings" | Should -BeLike "$($target.InstanceId): kept the first 1000 bytes of 30000 bytes of stdout read from s3://moltar-output/*/stdout (-MaxOutputBytes)."
        $null = Get-MoltarSandboxS3Request $Sandbox -Clear

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

    It 'reads a deploy step''s output whole from the output bucket when Systems Manager truncated it, and says when it could not' {
        # moltar-test-noisy's postinst prints a line of 30,000 characters: apt-get install's stdout is longer than the 24,000 the service returns.
        $target = $HostInstances[0]
        $line = 'n' * 30000
        $deploy = @{ Package = 'moltar-test-noisy'; Transport = 'Ssm'; Force = $true; Quiet = $true; Confirm = $false; WarningAction = 'SilentlyContinue' }
        function Get-OutputWarning($warnings) { @($warnings | Where-Object { $_.Message -notmatch 'deploying anyway \(-Force\)' } | ForEach-Object Message) }

        $cut = $target | Invoke-MoltarDeploy @deploy -Version 1.0.0 -WarningVariable cutWarnings
        $cut.Succeeded | Should -BeTrue -Because $cut.Error
        $cut.Output.Contains($line) | Should -BeFalse
        $cut.Output.Contains('n' * 20000) | Should -BeTrue
        $cut.Output | Should -Match ([regex]::Escape('[Moltar: this stream is not whole: only the part above came back]'))
        $cut.Truncated | Should -BeTrue
        $cutWarning = @(Get-OutputWarning $cutWarnings)
        $cutWarning.Count | Should -Be 1
        $cutWarning[0] | Should -Match 'Systems Manager returns the first 24000 characters of each stream.*-OutputS3BucketName'

        Clear-MoltarSandboxSsmRequest $Sandbox
        $whole = $target | Invoke-MoltarDeploy @deploy -Version 1.1.0 -OutputS3BucketName moltar-output -OutputS3KeyPrefix deploys -WarningVariable wholeWarnings
        $whole.Succeeded | Should -BeTrue -Because $whole.Error
        $whole.Output.Contains($line) | Should -BeTrue
        $whole.Truncated | Should -BeFalse
        Get-OutputWarning $wholeWarnings | Should -BeNullOrEmpty
        @(Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand | ForEach-Object { "$($_.Body.OutputS3BucketName)/$($_.Body.OutputS3KeyPrefix)" } | Sort-Object -Unique) |
            Should -Be @('moltar-output/deploys') -Because 'every step is sent with the bucket'
        $read = @(Get-MoltarSandboxS3Request $Sandbox -Clear)
        $read.Count | Should -Be 1 -Because 'only the truncated stream (apt-get install''s stdout) is read back'
        "$($read[0].Bucket)/$($read[0].Key) $($read[0].Status)" | Should -BeLike "moltar-output/deploys/*/$($target.InstanceId)/awsrunShellScript/0.awsrunShellScript/stdout 200"

        Set-MoltarSandboxSsm $Sandbox -OutputUploadDenied $target.InstanceId
        $unread = $target | Invoke-MoltarDeploy @deploy -Version 1.0.0 -OutputS3BucketName moltar-output -WarningVariable unreadWarnings
        $unread.Succeeded | Should -BeTrue -Because $unread.Error
        $unread.Truncated | Should -BeTrue
        $unread.Output.Contains($line) | Should -BeFalse
        $unreadWarning = @(Get-OutputWarning $unreadWarnings)
        $unreadWarning.Count | Should -Be 1
        $unreadWarning[0] | Should -Match "SsmOutputUnreadable: $($target.InstanceId): stdout could not be read from s3://moltar-output/.+/stdout \(NoSuchKey: "
    }

    It 'refuses the output bucket parameters of a deploy where they cannot apply (<Id>)' -TestCases @(
        @{ Id = 'SsmOnlyParameter'; Arguments = @{ OutputS3BucketName = 'moltar-output'; Transport = 'Ssh' }; Pattern = 'applies to -Transport Ssm only' }
        @{ Id = 'OutputS3BucketNameMissing'; Arguments = @{ OutputS3KeyPrefix = 'runs'; Transport = 'Ssm' }; Pattern = 'give -OutputS3BucketName too' }
    ) {
        $err = Get-ThrownError { $HostInstances | Invoke-MoltarDeploy -Package demo-app -Confirm:$false @Arguments }
        $err.FullyQualifiedErrorId | Should -BeExactly "$Id,Moltar.Cmdlets.InvokeMoltarDeployCommand"
        $err.Exception.Message | Should -Match $Pattern
        @(Get-MoltarSandboxSsmRequest $Sandbox).Count | Should -Be 0
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

    Context 'Invoke-MoltarDeploy -Transport Ssm: batches, -MaxFailures, hooks and -WhatIf, with the results SSH gives' {
        BeforeAll {
            # A trusted project with both hook files, which record what they were told; the deploys run from it.
            $script:HookProject = Join-Path $Scratch 'ssm-hooks'
            $script:HookOut = Join-Path $Scratch 'ssm-hook-out'
            New-Item -ItemType Directory -Force -Path $HookProject, $HookOut | Out-Null
            Set-Content (Join-Path $HookProject '.moltar.psd1') "@{ Project = 'demo' }"
            $record = 'printf "PACKAGES=%s\nVERSION=%s\nFAILED_HOSTS=%s\nNOT_STARTED_HOSTS=%s\n" "$PACKAGES" "$VERSION" "$FAILED_HOSTS" "$NOT_STARTED_HOSTS"'
            foreach ($hook in @(@('.moltar-after-deploy', 'after'), @('.moltar-failed-deploy', 'failed'))) {
                $path = Join-Path $HookProject $hook[0]
                [IO.File]::WriteAllText($path, "#!/bin/sh`n$record > '$HookOut/$($hook[1]).env'`n")
                [IO.File]::SetUnixFileMode($path, [IO.UnixFileMode]0x1ED)   # 0755
            }
            $script:SavedConfigHome = $env:XDG_CONFIG_HOME
            $env:XDG_CONFIG_HOME = Join-Path $Scratch 'config'
            Approve-MoltarProject -Path $HookProject | Out-Null
            function Read-HookEnv([string] $Which) { Read-TestHookRecord (Join-Path $HookOut "$Which.env") }
            function Clear-HookEnv { Remove-Item (Join-Path $HookOut '*.env') -ErrorAction Ignore }
            $script:OverSsh = @{ User = $Sandbox.User; KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
            Push-Location $HookProject
        }
        AfterAll {
            Pop-Location
            if ($null -eq $SavedConfigHome) { Remove-Item env:XDG_CONFIG_HOME -ErrorAction Ignore } else { $env:XDG_CONFIG_HOME = $SavedConfigHome }
        }

        It 'stops after -MaxFailures: later batches are NotStarted, and the failed-deploy hook and -OnFailure get every result' {
            Clear-HookEnv
            $seen = @{}
            # No version 9.9.9 exists: apt-get install fails on the first batch's instance and changes nothing.
            $results = @($HostInstances | Invoke-MoltarDeploy -Package demo-app -Version 9.9.9 -Transport Ssm -BatchSize 1 -MaxFailures 0 -Quiet -Confirm:$false `
                    -OnFailure { param($all) $seen.Results = @($all) } -AfterDeploy { $seen.After = $true } `
                    -ErrorVariable errors -ErrorAction SilentlyContinue -WarningVariable stopWarning -WarningAction SilentlyContinue)
            $results.Count | Should -Be 3
            $results[0].InstanceId | Should -Be $HostInstances[0].InstanceId
            $results[0].Status | Should -Be 'Failed'
            $results[0].ErrorId | Should -Be 'DeployFailed'
            $results[0].Error | Should -Match "apt-get install failed \(exit 100\)"
            $results[0].Error | Should -Match '9\.9\.9'
            $results[0].Batch | Should -Be 1
            foreach ($i in 1, 2) {
                $results[$i].InstanceId | Should -Be $HostInstances[$i].InstanceId
                $results[$i].Status | Should -Be 'NotStarted'
                $results[$i].ErrorId | Should -Be 'NotStarted'
                $results[$i].Batch | Should -Be ($i + 1)
                $results[$i].Output | Should -BeNullOrEmpty
            }
            $errors.Count | Should -Be 1
            $errors[0].FullyQualifiedErrorId | Should -BeExactly 'DeployFailed,Moltar.Cmdlets.InvokeMoltarDeployCommand'
            "$stopWarning" | Should -BeLike '*more than -MaxFailures 0: batches 2 to 3 (2 hosts) are not started*'
            @(Get-MoltarSandboxSsmRequest $Sandbox -Action SendCommand | ForEach-Object { $_.Body.InstanceIds } | Sort-Object -Unique) |
                Should -Be @($HostInstances[0].InstanceId) -Because 'the later batches never started'
            $seen.Results.Count | Should -Be 3
            $seen.ContainsKey('After') | Should -BeFalse
            $hook = Read-HookEnv 'failed'
            $hook.FAILED_HOSTS | Should -Be $HostInstances[0].Name
            $hook.NOT_STARTED_HOSTS | Should -Be "$($HostInstances[1].Name) $($HostInstances[2].Name)"
            $hook.PACKAGES | Should -Be 'demo-app'
            $hook.VERSION | Should -Be '9.9.9'
            Read-HookEnv 'after' | Should -BeNullOrEmpty
        }

        It 'gives a result identical in shape to the same deploy over SSH, property by property, and runs the after-deploy hook' {
            $overSsh = $HostInstances[1] | Invoke-MoltarDeploy -Package demo-app -Version 1.1.0 @OverSsh -Quiet -Confirm:$false
            Clear-HookEnv
            $seen = @{}
            $overSsm = $HostInstances[2] | Invoke-MoltarDeploy -Package demo-app -Version 1.1.0 -Transport Ssm -Quiet -Confirm:$false `
                -AfterDeploy { param($all) $seen.Results = @($all) }
            $overSsh.Succeeded | Should -BeTrue -Because $overSsh.Error
            $overSsm.Succeeded | Should -BeTrue -Because $overSsm.Error

            function Show($value) {
                if ($value -is [Collections.IDictionary]) { (@($value.GetEnumerator() | Sort-Object Key | ForEach-Object { "$($_.Key)=$($_.Value)" })) -join ',' } else { "$value" }
            }
            $same = 'Packages', 'Version', 'Succeeded', 'Status', 'ErrorId', 'Batch', 'Truncated', 'Error', 'PreviousVersions', 'InstalledVersions'
            $own = 'InstanceId', 'Name', 'Address', 'DisplayName', 'Output', 'StartTime', 'Duration'
            $properties = @($overSsh.PSObject.Properties.Name)
            @($overSsm.PSObject.Properties.Name) | Should -Be $properties
            @($properties | Where-Object { $_ -notin $same + $own }) | Should -BeNullOrEmpty -Because 'every property is compared below'
            foreach ($name in $properties) {
                $ssh = $overSsh.$name; $ssm = $overSsm.$name
                ($null -eq $ssm) | Should -Be ($null -eq $ssh) -Because "$name is set over both transports or over neither"
                ((Show $ssm) -eq '') | Should -Be ((Show $ssh) -eq '') -Because "$name is empty over both transports or over neither"
                if ($name -in $same) { Show $ssm | Should -BeExactly (Show $ssh) -Because "$name is the same over both transports" }
            }
            $overSsm.InstanceId | Should -Be $HostInstances[2].InstanceId
            $overSsm.Name | Should -Be $HostInstances[2].Name
            $overSsm.InstalledVersions['demo-app'] | Should -Be '1.1.0'
            $overSsm.Duration | Should -BeGreaterThan ([TimeSpan]::Zero)
            # The same steps in the same order: as root over SSM (env), through sudo over SSH.
            function Get-Step($result) { @($result.Output -split "`n" | Where-Object { $_.StartsWith('$ ') } | ForEach-Object { $_ -replace '^\$ (sudo -n |env )', '$ ' }) }
            (Get-Step $overSsm).Count | Should -BeGreaterThan 3
            Get-Step $overSsm | Should -Be (Get-Step $overSsh)

            $seen.Results.Count | Should -Be 1
            $hook = Read-HookEnv 'after'
            $hook.PACKAGES | Should -Be 'demo-app'
            $hook.VERSION | Should -Be '1.1.0'
            $hook.FAILED_HOSTS | Should -Be ''
            Read-HookEnv 'failed' | Should -BeNullOrEmpty
        }

        It '-WhatIf prints each batch''s instances with the commands the agent would run as root, and sends nothing' {
            $ids = ($HostInstances.InstanceId | ForEach-Object { "'$_'" }) -join ','
            $output = Invoke-CleanPwsh ("Import-Module '$ModulePath'; Set-Location '$Repo'; Get-MoltarInstance | Where-Object InstanceId -In @($ids) | Sort-Object Name | " +
                                        "Invoke-MoltarDeploy -Package demo-app -Version 1.1.0 -Transport Ssm -BatchSize 2 -WhatIf")
            $LASTEXITCODE | Should -Be 0
            $text = $output -join "`n"
            $text | Should -Match 'What if: Deploying demo-app=1\.1\.0, batch 1 of 2, to 2 instance\(s\):'
            $text | Should -Match 'What if: Deploying demo-app=1\.1\.0, batch 2 of 2, to 1 instance\(s\):'
            foreach ($h in $HostInstances) { $text | Should -Match ([regex]::Escape("  $($h.Name) ($($h.Address)) as root:")) }
            $install = "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=60 --allow-downgrades 'demo-app=1.1.0'"
            @($output | Where-Object { $_.Trim() -eq $install }).Count | Should -Be 3
            $text | Should -Not -Match 'sudo'
            @(Get-MoltarSandboxSsmRequest $Sandbox).Count | Should -Be 0
        }
    }
}
