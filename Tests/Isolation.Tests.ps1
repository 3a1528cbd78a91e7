# Moltar must work in a session where AWS.Tools (an older AWSSDK.Core) is loaded, whichever comes first.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:ModulePath = Get-TestModulePath
    $script:OldCore = Get-TestPackagePath -Package AWSSDK.Core -Version 3.7.402 -RelativePath 'lib/net8.0/AWSSDK.Core.dll'
    $script:Scratch = Join-Path ([IO.Path]::GetTempPath()) "moltar-isolation-$PID"
    Set-TestAwsEnvironment -Directory (Join-Path $Scratch 'aws')
    Add-TestAwsProfile -Name 'iso' -Region 'us-east-1'
    $script:Sandbox = Start-TestSandbox -Synthetic 7 -Options @{ Project = 'iso' }

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
    Remove-Item -Recurse -Force $Scratch -ErrorAction Ignore
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
