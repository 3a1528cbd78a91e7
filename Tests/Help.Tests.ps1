# Every cmdlet has complete help generated from src/Moltar/Help, and every example in it runs against the sandbox.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $manifest = Import-PowerShellDataFile (Get-TestModulePath)
    $script:CmdletNames = @($manifest.CmdletsToExport | ForEach-Object { @{ Name = $_ } })
    # Examples are read from the help source (not Get-Help) so discovery needs no module import.
    $script:Examples = foreach ($name in $manifest.CmdletsToExport) {
        $source = Join-Path $PSScriptRoot "../src/Moltar/Help/$name.md"
        if (-not (Test-Path $source)) { continue }
        $text = Get-Content -Raw $source
        $index = 0
        foreach ($match in [regex]::Matches($text, '(?ms)^### (?<title>[^\n]+)\n(?<body>.*?)(?=^### |^## |\z)')) {
            if ($match.Groups['body'].Value -notmatch '(?s)```powershell\s*\n(?<code>.*?)\n```') { continue }
            $index++
            @{ Cmdlet = $name; Title = $match.Groups['title'].Value.Trim(); Code = $Matches['code']; Index = $index
               Interactive = $match.Groups['body'].Value -match '\(interactive\)' }
        }
    }
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:ModulePath = Get-TestModulePath
    Import-Module $ModulePath -Force
}

Describe 'Help for <Name>' -ForEach $CmdletNames {
    BeforeAll { $script:Help = Get-Help $Name -Full }

    It 'has a synopsis and a description' {
        $Help.Synopsis | Should -Not -BeNullOrEmpty
        $Help.Synopsis | Should -Not -Match '^\s*Get-|^\s*Invoke-|^\s*Copy-|^\s*Enter-'
        ($Help.description.Text -join ' ') | Should -Not -BeNullOrEmpty
    }

    It 'describes every parameter' {
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        $parameters = (Get-Command $Name).Parameters.Keys | Where-Object { $_ -notin $common }
        foreach ($parameter in $parameters) {
            $entry = $Help.parameters.parameter | Where-Object name -EQ $parameter
            $entry | Should -Not -BeNullOrEmpty -Because "-$parameter must be documented"
            ($entry.description.Text -join ' ') | Should -Not -BeNullOrEmpty -Because "-$parameter needs a description"
        }
    }

    It 'names its output type and has at least two examples' {
        $Help.returnValues.returnValue.type.name | Should -Match '^Moltar\.'
        @($Help.examples.example).Count | Should -BeGreaterOrEqual 2
    }
}

Describe 'Help source' {
    It 'is complete for every exported cmdlet (the generator fails on any gap)' {
        $target = Join-Path ([IO.Path]::GetTempPath()) "moltar-help-$PID.xml"
        $generator = Join-Path $PSScriptRoot '../build/New-MamlHelp.ps1'
        $output = Invoke-CleanPwsh "& '$generator' -ModulePath '$ModulePath' -HelpSource '$(Join-Path $PSScriptRoot '../src/Moltar/Help')' -OutputPath '$target' 2>&1"
        $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")
        $target | Should -Exist
        Remove-Item $target
    }

    It 'has an about_Moltar topic covering the project file, profiles, SSH and error ids' {
        $about = Get-Help about_Moltar | Out-String
        foreach ($topic in 'THE PROJECT FILE', 'AWS PROFILES', 'SSH', 'ERRORS', 'HostKeyMismatch', 'ProfileNotFound', 'StrictHostKeyChecking') {
            $about | Should -Match ([regex]::Escape($topic))
        }
    }
}

Describe 'Examples run against the sandbox' {
    BeforeAll {
        $script:Scratch = New-TestScratch -Name examples
        Set-TestAwsEnvironment -Directory (Join-Path $Scratch 'aws')
        # The deploy examples install demo-app (the generated instances' Packages tag) from a test APT repository.
        $repository = & (Join-Path $PSScriptRoot 'Sandbox/New-TestAptRepository.ps1') -Path (Join-Path $Scratch 'apt')
        $script:Sandbox = Start-TestSandbox -Hosts 6 -Options @{ Project = 'demo'; Environments = 'production', 'staging'; Clusters = 'web', 'jobs', 'search'; AptRepository = $repository }
        Add-TestAwsProfile -Name 'demo' -Region $Sandbox.Region
        $env:AWS_ENDPOINT_URL_SSM = $Sandbox.SsmEndpoint   # -Transport Ssm examples reach the sandbox's Systems Manager
        $env:AWS_ENDPOINT_URL_S3 = $Sandbox.S3Endpoint     # ... and its output bucket
        $script:Project = Join-Path $Scratch 'demo-app'
        New-Item -ItemType Directory -Force -Path $Project | Out-Null
        Set-Content (Join-Path $Project '.moltar.psd1') @"
@{
    Project        = 'demo'
    EndpointUrl    = '$($Sandbox.Endpoint)'
    User           = '$($Sandbox.User)'
    KeyFile        = '$($Sandbox.ClientKeyPath)'
    KnownHostsPath = '$($Sandbox.KnownHostsPath)'
    StrictHostKeyChecking = 'Yes'
}
"@
        # The examples' project is trusted, as a user trusts their own (its trust record stays in the scratch folder).
        $script:SavedConfigHome = $env:XDG_CONFIG_HOME
        $env:XDG_CONFIG_HOME = Join-Path $Scratch 'config'
        Approve-MoltarProject -Path $Project | Out-Null
        Push-Location $Project
    }
    AfterAll {
        Pop-Location -ErrorAction Ignore
        if ($SavedConfigHome) { $env:XDG_CONFIG_HOME = $SavedConfigHome } else { Remove-Item env:XDG_CONFIG_HOME -ErrorAction Ignore }
        Remove-Item env:AWS_ENDPOINT_URL_SSM, env:AWS_ENDPOINT_URL_S3 -ErrorAction Ignore
        Stop-TestSandbox $Sandbox
        Remove-TestScratch $Scratch
    }

    It '<Cmdlet> example <Index>: <Title>' -ForEach @($Examples | Where-Object { -not $_.Interactive }) {
        # Terminating errors fail the test by throwing; non-terminating ones are collected from the error stream,
        # and a native program (ssh under Enter-MoltarInstance) must exit 0.
        $global:LASTEXITCODE = 0
        # What an example writes to the temp folder (a scheduled task's transcript) stays in this file's scratch.
        $savedTemp = $env:TMPDIR
        $env:TMPDIR = New-Item -ItemType Directory -Force -Path (Join-Path $Scratch 'tmp')
        try { $output = & ([scriptblock]::Create($Code)) 2>&1 6>$null }
        finally { if ($null -eq $savedTemp) { Remove-Item env:TMPDIR -ErrorAction Ignore } else { $env:TMPDIR = $savedTemp } }
        $errors = @($output | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $errors | Should -BeNullOrEmpty -Because ($errors | Out-String)
        $global:LASTEXITCODE | Should -Be 0
    }
}
