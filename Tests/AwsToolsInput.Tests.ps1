# Input as AWS Tools for PowerShell users have it: Get-EC2Instance's Reservation objects (made here by the real AWS SDK
# against the sandbox, as Get-EC2Instance makes them), instance-id strings, -InstanceId on every cmdlet that selects
# instances, AWS.Tools' parameter aliases, its session defaults ($StoredAWSCredentials from another copy of the SDK),
# and -Credential as Posh-SSH means it. One sandbox of 3 real sshd hosts.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

Describe 'Input from AWS Tools' -Skip:([bool] $SkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        Import-Module $ModulePath -Force
        # AWS.Tools carries AWSSDK.Core 3.x: that copy makes the $StoredAWSCredentials object (found before HOME moves).
        $script:OlderCore = Get-TestPackagePath -Package 'AWSSDK.Core' -Version '3.7.402' -RelativePath 'lib/netcoreapp3.1/AWSSDK.Core.dll'
        $script:TestHome = Enter-TestHome -Name awstools
        $script:Scratch = $TestHome.Scratch
        $script:Sandbox = Start-TestSandbox -Hosts 3
        $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
        $script:Hosts = @($Sandbox.Hosts | Sort-Object Name)
        $script:Names = @($Hosts | ForEach-Object Name)
        $script:Ids = @($Hosts | ForEach-Object InstanceId)
        $script:Ssh = @{ KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
        $script:Repo = Join-Path $Scratch 'repo'
        New-Item -ItemType Directory -Force -Path $Repo | Out-Null
        Set-Content (Join-Path $Repo '.moltar.psd1') "@{ Project = 'demo' }"
        Push-Location $Repo

        # Reservation objects as Get-EC2Instance returns them: the real AWSSDK.EC2 (the build's copy, in a child pwsh
        # so this session keeps only Moltar's own), serialized back as they cross the process boundary is not enough:
        # the child pipes them straight into Moltar itself.
        $script:Ec2Dll = Get-ChildItem (Join-Path (Split-Path $ModulePath) 'deps') -Filter AWSSDK.EC2.dll -Recurse | Select-Object -First 1 -ExpandProperty FullName
        $script:CoreDll = Get-ChildItem (Join-Path (Split-Path $ModulePath) 'deps') -Filter AWSSDK.Core.dll -Recurse | Select-Object -First 1 -ExpandProperty FullName
    }

    AfterAll {
        Pop-Location -ErrorAction Ignore
        Stop-TestSandbox $Sandbox
        if ($TestHome) { Exit-TestHome $TestHome }
    }

    It 'takes Get-EC2Instance output: Reservation objects of the real SDK run on their instances' {
        $script = @"
Add-Type -Path '$CoreDll'
Add-Type -Path '$Ec2Dll'
`$config = [Amazon.EC2.AmazonEC2Config]::new()
`$config.ServiceURL = '$($Sandbox.Endpoint)'
`$config.AuthenticationRegion = 'us-east-1'
`$client = [Amazon.EC2.AmazonEC2Client]::new([Amazon.Runtime.BasicAWSCredentials]::new('AKIDTEST', 'test-secret-key'), `$config)
`$reservations = `$client.DescribeInstancesAsync([Amazon.EC2.Model.DescribeInstancesRequest]::new()).GetAwaiter().GetResult().Reservations
'TYPE ' + `$reservations[0].GetType().FullName
Import-Module '$ModulePath'
`$results = `$reservations | Invoke-MoltarCommand 'uname -n' -KeyFile '$($Sandbox.ClientKeyPath)' -KnownHostsPath '$($Sandbox.KnownHostsPath)' -SshConfigPath none -Quiet -InformationAction Ignore
'RAN ' + ((`$results | Where-Object Succeeded | ForEach-Object { `$_.Name + '=' + `$_.Output.Trim() } | Sort-Object) -join ' ')
"@
        $output = Invoke-CleanPwsh $script
        $text = $output -join "`n"
        $output | Should -Contain 'TYPE Amazon.EC2.Model.Reservation' -Because $text
        $output | Should -Contain ('RAN ' + (($Names | ForEach-Object { "$_=$_" }) -join ' ')) -Because $text
    }

    It 'looks instance-id strings up instead of treating them as host names' {
        $results = @($Ids | Invoke-MoltarCommand 'uname -n' @Ssh -Quiet -InformationAction Ignore)
        $results.Count | Should -Be 3
        ($results | Sort-Object Name | ForEach-Object { "$($_.InstanceId) $($_.Name) $($_.Output.Trim())" }) |
            Should -Be @(0..2 | ForEach-Object { "$($Ids[$_]) $($Names[$_]) $($Names[$_])" })
        # Host names and addresses still work beside them.
        $mixed = @(@($Ids[0], $Hosts[1].Address) | Invoke-MoltarCommand 'uname -n' @Ssh -Quiet -InformationAction Ignore)
        ($mixed.Output | ForEach-Object Trim | Sort-Object) | Should -Be @($Names[0], $Names[1])
    }

    It 'an instance id that is not found is a terminating InstanceNotFound naming it; nothing runs' {
        $missing = 'i-0fffffffffffffff7'
        { @($Ids[0], $missing) | Invoke-MoltarCommand 'true' @Ssh -Quiet } |
            Should -Throw -ErrorId 'InstanceNotFound,Moltar.Cmdlets.InvokeMoltarCommandCommand' -ExpectedMessage "*$missing*"
    }

    It '-InstanceId selects instances on every cmdlet that selects them' {
        (Get-MoltarInstance -InstanceId $Ids[1]).Name | Should -Be $Names[1]
        @(Get-MoltarInstance -InstanceId $Ids[0], $Ids[2]).Name | Sort-Object | Should -Be @($Names[0], $Names[2])
        (Invoke-MoltarCommand -InstanceId $Ids[2] 'uname -n' @Ssh -Quiet -InformationAction Ignore).Output.Trim() | Should -Be $Names[2]
        $file = Join-Path $Scratch 'by-id.txt'
        Set-Content $file 'by id' -NoNewline
        $copied = @(Copy-MoltarFile -InstanceId $Ids[0] $file -Force @Ssh -InformationAction Ignore)
        $copied.Count | Should -Be 1
        $copied[0].Name | Should -Be $Names[0]
        # -WhatIf writes to the console host: read it from a console.
        $whatIf = Invoke-CleanPwsh ("Import-Module '$ModulePath'; Set-Location '$Repo'; `$env:MOLTAR_ENDPOINT_URL = '$($Sandbox.Endpoint)'; " +
            "Invoke-MoltarDeploy -InstanceId $($Ids[1]) -Package demo-app -Force -WhatIf -SshConfigPath none; 'ENTER'; Enter-MoltarInstance -InstanceId $($Ids[2]) -WhatIf -SshConfigPath none")
        $text = $whatIf -join "`n"
        $text | Should -Match ("Deploying demo-app, batch 1 of 1, to 1 instance\(s\):\s+" + [regex]::Escape("$($Names[1]) ($($Hosts[1].Address))"))
        ($text -split 'ENTER')[1] | Should -Match ([regex]::Escape($Hosts[2].Address))
        { Enter-MoltarInstance -InstanceId $Ids[0], $Ids[1] -WhatIf } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Moltar.Cmdlets.EnterMoltarInstanceCommand'
        { Get-MoltarInstance -InstanceId 'web-1' } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Moltar.Cmdlets.GetMoltarInstanceCommand'
    }

    It 'takes AWS.Tools'' aliases: -AK, -SK, -ST and -RegionToCall' {
        Clear-MoltarSandboxRequest $Sandbox
        $found = @(Get-MoltarInstance -AK 'AKIAALIAS17EXAMPLE' -SK 'alias-secret' -ST 'alias-token' -RegionToCall 'us-east-1')
        $found.Count | Should -Be 3
        $request = @(Get-MoltarSandboxRequest $Sandbox -Action DescribeInstances)[-1]
        $request.AccessKeyId | Should -Be 'AKIAALIAS17EXAMPLE'
        $request.Region | Should -Be 'us-east-1'
        foreach ($command in 'Get-MoltarInstance', 'Get-MoltarContext', 'Invoke-MoltarCommand', 'Copy-MoltarFile', 'Invoke-MoltarDeploy', 'Enter-MoltarInstance') {
            $parameters = (Get-Command $command).Parameters
            $parameters.AccessKey.Aliases | Should -Contain 'AK'
            $parameters.SecretKey.Aliases | Should -Contain 'SK'
            $parameters.SessionToken.Aliases | Should -Contain 'ST'
            $parameters.Region.Aliases | Should -Contain 'RegionToCall'
        }
    }

    It 'honours $StoredAWSCredentials and $StoredAWSRegion from AWS.Tools (another copy of the SDK) after its own parameters' {
        $script = @"
Add-Type -Path '$OlderCore'
# What Set-AWSCredential / Set-DefaultAWSRegion leave in the session (an AWSPSCredentials: Credentials and Name).
`$global:StoredAWSCredentials = [pscustomobject]@{ Name = 'client-a'; Credentials = [Amazon.Runtime.BasicAWSCredentials]::new('AKIASTORED17EXAMPLE', 'stored-secret') }
`$global:StoredAWSRegion = 'eu-central-1'
Import-Module '$ModulePath'
Set-Location '$Repo'
`$context = Get-MoltarContext
'CREDENTIALS ' + `$context.CredentialSource
'REGION ' + `$context.Region + ' FROM ' + `$context.RegionSource
'FOUND ' + @(Get-MoltarInstance -RegionToCall us-east-1).Count
'PARAMETER ' + @(Get-MoltarInstance -AccessKey AKIAPARAMETER17 -SecretKey s -Region us-east-1).Count
"@
        Clear-MoltarSandboxRequest $Sandbox
        $output = Invoke-CleanPwsh $script
        $text = $output -join "`n"
        $output | Should -Contain "CREDENTIALS `$StoredAWSCredentials (Set-AWSCredential, profile 'client-a')" -Because $text
        $output | Should -Contain "REGION eu-central-1 FROM `$StoredAWSRegion (Set-DefaultAWSRegion)" -Because $text
        $output | Should -Contain 'FOUND 3' -Because $text
        $output | Should -Contain 'PARAMETER 3' -Because $text
        $keys = @(Get-MoltarSandboxRequest $Sandbox -Action DescribeInstances).AccessKeyId
        $keys | Should -Be @('AKIASTORED17EXAMPLE', 'AKIAPARAMETER17') -Because 'the stored credentials sign, and -AccessKey still wins over them'
    }

    It '-Credential: its user name is the SSH user unless -User is given (as in Posh-SSH)' {
        $credential = [pscredential]::new('nobody17', (ConvertTo-SecureString 'unused' -AsPlainText -Force))
        $denied = Invoke-MoltarCommand -InstanceId $Ids[0] 'whoami' -Credential $credential @Ssh -Quiet -InformationAction Ignore -ErrorAction SilentlyContinue -ErrorVariable failures
        $denied.Succeeded | Should -BeFalse
        "$($failures[0])" | Should -Match 'nobody17@'
        $asUser = Invoke-MoltarCommand -InstanceId $Ids[0] 'whoami' -Credential $credential -User ubuntu @Ssh -Quiet -InformationAction Ignore
        $asUser.Output | Should -Be "ubuntu`n"
        $bad = [pscredential]::new('-oProxyCommand=x', (ConvertTo-SecureString 'unused' -AsPlainText -Force))
        { Invoke-MoltarCommand -InstanceId $Ids[0] 'whoami' -Credential $bad @Ssh } | Should -Throw -ErrorId 'InvalidCredentialUser,Moltar.Cmdlets.InvokeMoltarCommandCommand'
    }
}
