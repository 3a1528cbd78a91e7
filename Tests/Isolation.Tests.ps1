# Moltar must work in a session where AWS.Tools (an older AWS SDK) or Posh-SSH (an older SSH.NET) is loaded,
# whichever comes first, and those must keep working too. Each case runs in a fresh pwsh.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:ModulePath = Get-TestModulePath
    $script:OldCore = Get-TestPackagePath -Package AWSSDK.Core -Version 3.7.402 -RelativePath 'lib/net8.0/AWSSDK.Core.dll'
    $script:Scratch = New-TestScratch -Name isolation
    Set-TestAwsEnvironment -Directory (Join-Path $Scratch 'aws')
    Add-TestAwsProfile -Name 'iso' -Region 'us-east-1'
    # One real sshd host (for Moltar's SSH beside another SSH.NET) and six synthetic instances, when sshd can run here.
    $script:Sandbox = if (Get-SandboxSkipReason) { Start-TestSandbox -Synthetic 7 -Options @{ Project = 'iso' } }
                      else { Start-TestSandbox -Hosts 1 -Synthetic 6 -Options @{ Project = 'iso' } }

    # Runs in a fresh pwsh; prints one line per fact so the test can assert each.
    $script:UseOldSdk = @"
`$credentials = [Amazon.Runtime.BasicAWSCredentials]::new('AKIDOLD', 'old-secret')
'old-sdk-version=' + [Amazon.Runtime.AWSCredentials].Assembly.GetName().Version
'old-sdk-context=' + [Runtime.Loader.AssemblyLoadContext]::GetLoadContext([Amazon.Runtime.AWSCredentials].Assembly).Name
'old-sdk-key=' + `$credentials.GetCredentials().AccessKey
"@
    $script:UseMoltar = @"
'moltar-count=' + @(Get-MoltarInstance -Project iso -ProfileName iso -EndpointUrl '$($Sandbox.Endpoint)').Count
"@
}

AfterAll {
    Stop-TestSandbox $Sandbox
    Remove-TestScratch $Scratch
}

Describe 'Dependency isolation' {
    It 'works when an older AWSSDK.Core was loaded first (AWS.Tools imported before Moltar)' {
        $output = Invoke-CleanPwsh @"
`$ErrorActionPreference = 'Stop'
Add-Type -Path '$OldCore'
$UseOldSdk
Import-Module '$ModulePath'
$UseMoltar
$UseOldSdk
"@
        $LASTEXITCODE | Should -Be 0
        $output | Should -Contain 'moltar-count=7'
        @($output | Where-Object { $_ -eq 'old-sdk-version=3.3.0.0' }).Count | Should -Be 2
        @($output | Where-Object { $_ -eq 'old-sdk-context=Default' }).Count | Should -Be 2
        @($output | Where-Object { $_ -eq 'old-sdk-key=AKIDOLD' }).Count | Should -Be 2
    }

    It 'works when Moltar was imported and used first (AWS.Tools imported after Moltar)' {
        $output = Invoke-CleanPwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
$UseMoltar
Add-Type -Path '$OldCore'
$UseOldSdk
$UseMoltar
"@
        $LASTEXITCODE | Should -Be 0
        @($output | Where-Object { $_ -eq 'moltar-count=7' }).Count | Should -Be 2
        $output | Should -Contain 'old-sdk-version=3.3.0.0'
        $output | Should -Contain 'old-sdk-key=AKIDOLD'
    }

    It 'keeps Moltar''s AWS SDK out of the default context' {
        $output = Invoke-CleanPwsh @"
Import-Module '$ModulePath'
$UseMoltar
[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -like 'AWSSDK.*' } |
    ForEach-Object { '{0}@{1}' -f `$_.GetName().Name, [Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_).Name }
"@
        $output | Should -Contain 'moltar-count=7'
        $output | Should -Contain 'AWSSDK.Core@Moltar'
        $output | Should -Contain 'AWSSDK.EC2@Moltar'
        $output | Where-Object { $_ -like 'AWSSDK.*@Default' } | Should -BeNullOrEmpty
    }
}

Describe 'Dependency isolation: an older build of the v4 AWS SDK (AWS.Tools 5), both orders' {
    BeforeAll {
        # Same assembly versions as Moltar's (4.0.0.0), older files: only separate load contexts keep both working.
        $script:OldCoreV4 = Get-TestPackagePath -Package AWSSDK.Core -Version 4.0.102.14 -RelativePath 'lib/net8.0/AWSSDK.Core.dll'
        $script:OldEc2 = Get-TestPackagePath -Package AWSSDK.EC2 -Version 4.0.129.1 -RelativePath 'lib/net8.0/AWSSDK.EC2.dll'
        # The older SDK's own call: DescribeInstances against the sandbox, as Get-EC2Instance would make it.
        $script:UseOldEc2 = @"
`$config = [Amazon.EC2.AmazonEC2Config]::new()
`$config.ServiceURL = '$($Sandbox.Endpoint)'
`$config.AuthenticationRegion = 'us-east-1'
`$client = [Amazon.EC2.AmazonEC2Client]::new([Amazon.Runtime.BasicAWSCredentials]::new('AKIDOLD', 'old-secret'), `$config)
`$response = `$client.DescribeInstancesAsync([Amazon.EC2.Model.DescribeInstancesRequest]::new()).GetAwaiter().GetResult()
'old-ec2-count=' + @(`$response.Reservations.Instances).Count
'old-ec2-file=' + [Diagnostics.FileVersionInfo]::GetVersionInfo([Amazon.EC2.AmazonEC2Client].Assembly.Location).FileVersion
'old-core-file=' + [Diagnostics.FileVersionInfo]::GetVersionInfo([Amazon.Runtime.AWSCredentials].Assembly.Location).FileVersion
'old-ec2-context=' + [Runtime.Loader.AssemblyLoadContext]::GetLoadContext([Amazon.EC2.AmazonEC2Client].Assembly).Name
"@
        $script:LoadOldEc2 = "Add-Type -Path '$OldCoreV4'; Add-Type -Path '$OldEc2'"
        $script:MoltarSdk = @"
[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'AWSSDK.EC2' } |
    ForEach-Object { 'ec2-loaded={0}@{1}' -f [Diagnostics.FileVersionInfo]::GetVersionInfo(`$_.Location).FileVersion, [Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_).Name }
"@
    }

    It 'works when the older SDK was loaded and used first (AWS.Tools imported before Moltar)' {
        $output = Invoke-CleanPwsh @"
`$ErrorActionPreference = 'Stop'
$LoadOldEc2
$UseOldEc2
Import-Module '$ModulePath'
$UseMoltar
$UseOldEc2
$MoltarSdk
"@
        $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")
        $output | Should -Contain 'moltar-count=7'
        @($output | Where-Object { $_ -eq 'old-ec2-count=7' }).Count | Should -Be 2
        @($output | Where-Object { $_ -like 'old-ec2-file=4.0.129.1*' }).Count | Should -Be 2
        @($output | Where-Object { $_ -like 'old-core-file=4.0.102.14*' }).Count | Should -Be 2
        @($output | Where-Object { $_ -eq 'old-ec2-context=Default' }).Count | Should -Be 2
        $output | Should -Contain 'ec2-loaded=4.0.132.2@Moltar'
        @($output | Where-Object { $_ -like 'ec2-loaded=4.0.129.1*@Default' }).Count | Should -Be 1
    }

    It 'works when Moltar was imported and used first (AWS.Tools imported after Moltar)' {
        $output = Invoke-CleanPwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
$UseMoltar
$LoadOldEc2
$UseOldEc2
$UseMoltar
$MoltarSdk
"@
        $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")
        @($output | Where-Object { $_ -eq 'moltar-count=7' }).Count | Should -Be 2
        $output | Should -Contain 'old-ec2-count=7'
        $output | Should -Contain 'old-ec2-context=Default'
        @($output | Where-Object { $_ -like 'old-ec2-file=4.0.129.1*' }).Count | Should -Be 1
        $output | Should -Contain 'ec2-loaded=4.0.132.2@Moltar'
    }
}

Describe 'Dependency isolation: an older SSH.NET (Posh-SSH), both orders' -Skip:([bool] $SkipReason) {
    BeforeAll {
        # A stand-in for Posh-SSH's SSH.NET: simple name Renci.SshNet, version 2020.0.1.0, a public Renci.SshNet.SshClient.
        $project = Join-Path $PSScriptRoot 'Coexistence/Renci.SshNet.StandIn/Renci.SshNet.StandIn.csproj'
        $script:StandIn = if ($env:MOLTAR_TEST_SSHNET_STANDIN) { $env:MOLTAR_TEST_SSHNET_STANDIN }
                          else { Join-Path $PSScriptRoot 'Coexistence/Renci.SshNet.StandIn/bin/Release/netstandard2.0/Renci.SshNet.dll' }
        if (-not (Test-Path $StandIn)) {
            $built = dotnet build $project -c Release --nologo -v:q 2>&1
            if ($LASTEXITCODE -ne 0) { throw "Building the SSH.NET stand-in failed: $built" }
        }
        $target = $Sandbox.Hosts[0]
        $script:UseStandIn = @"
`$client = [Renci.SshNet.SshClient]::new('old.example', 'posh', 'secret')
'standin=' + [Renci.SshNet.SshClient]::Identity + ' ' + `$client.Host + ' ' + [Renci.SshNet.SshClient].Assembly.GetName().Version
'standin-context=' + [Runtime.Loader.AssemblyLoadContext]::GetLoadContext([Renci.SshNet.SshClient].Assembly).Name
"@
        $script:UseMoltarSsh = @"
`$result = '$($target.Address)' | Invoke-MoltarCommand 'uname -n' -KeyFile '$($Sandbox.ClientKeyPath)' -KnownHostsPath '$($Sandbox.KnownHostsPath)' -SshConfigPath none -Quiet
'moltar-ssh=' + `$result.Succeeded + ' ' + `$result.Output.Trim()
"@
        $script:LoadedSshNet = @"
[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'Renci.SshNet' } |
    ForEach-Object { 'sshnet-loaded={0}@{1}' -f `$_.GetName().Version, [Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_).Name }
"@
        $script:Expected = "moltar-ssh=True $($target.Name)"
    }

    It 'works when the older SSH.NET was loaded first (Posh-SSH imported before Moltar)' {
        $output = Invoke-CleanPwsh @"
`$ErrorActionPreference = 'Stop'
Add-Type -Path '$StandIn'
$UseStandIn
Import-Module '$ModulePath'
$UseMoltarSsh
$UseStandIn
$LoadedSshNet
"@
        $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")
        $output | Should -Contain $Expected
        @($output | Where-Object { $_ -eq 'standin=Renci.SshNet stand-in 2020.0.1 old.example 2020.0.1.0' }).Count | Should -Be 2
        @($output | Where-Object { $_ -eq 'standin-context=Default' }).Count | Should -Be 2
        $output | Should -Contain 'sshnet-loaded=2020.0.1.0@Default'
        @($output | Where-Object { $_ -like 'sshnet-loaded=2026.*@Moltar' }).Count | Should -Be 1
    }

    It 'works when Moltar ran a command first (Posh-SSH imported after Moltar)' {
        $output = Invoke-CleanPwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
$UseMoltarSsh
Add-Type -Path '$StandIn'
$UseStandIn
$UseMoltarSsh
$LoadedSshNet
"@
        $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")
        @($output | Where-Object { $_ -eq $Expected }).Count | Should -Be 2
        $output | Should -Contain 'standin=Renci.SshNet stand-in 2020.0.1 old.example 2020.0.1.0'
        $output | Should -Contain 'standin-context=Default'
        $output | Should -Contain 'sshnet-loaded=2020.0.1.0@Default'
        @($output | Where-Object { $_ -like 'sshnet-loaded=2026.*@Moltar' }).Count | Should -Be 1
    }
}
