# The install a user does: publish to a PSResourceGet repository, Install-PSResource into a fresh module path,
# import by name in a clean pwsh, and work against the sandbox.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:Scratch = New-TestScratch -Name package
    New-Item -ItemType Directory -Force -Path $Scratch | Out-Null
    Set-TestAwsEnvironment -Directory (Join-Path $Scratch 'aws')
    $script:Sandbox = Start-TestSandbox -Hosts 2 -Options @{ Project = 'demo'; Environments = 'production'; Clusters = 'web' }
    Add-TestAwsProfile -Name 'demo' -Region $Sandbox.Region
    $script:Repository = Join-Path $Scratch 'repository'
    $build = Join-Path $PSScriptRoot '../build.ps1'
    $pwsh = Get-PwshInvocation
    $script:PackageOutput = & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -NonInteractive -File $build -Task Package -SkipBuild -RepositoryPath $Repository 2>&1
    $script:PackageExit = $LASTEXITCODE
}

AfterAll {
    Stop-TestSandbox $Sandbox
    Remove-TestScratch $Scratch
}

Describe 'Packaging' {
    It 'publishes the built module as a nupkg to a local repository' {
        $PackageExit | Should -Be 0 -Because ($PackageOutput -join "`n")
        $version = (Import-PowerShellDataFile (Get-TestModulePath)).ModuleVersion
        Join-Path $Repository "Moltar.$version.nupkg" | Should -Exist
    }

    It 'installs with Install-PSResource into a fresh module path and works against the sandbox' {
        $freshHome = Join-Path $Scratch 'home'
        New-Item -ItemType Directory -Force -Path $freshHome | Out-Null
        $script = @"
`$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name MoltarTest -Uri '$Repository' -Trusted
Install-PSResource -Name Moltar -Repository MoltarTest -Scope CurrentUser -TrustRepository -Quiet
Import-Module Moltar
'base=' + (Get-Module Moltar).ModuleBase
'root=' + [IO.Path]::GetFileName((Get-Module Moltar).Path) + ' ' + (Get-Module Moltar).ModuleType
'instances=' + @(Get-MoltarInstance -Project demo -EndpointUrl '$($Sandbox.Endpoint)').Count
Get-MoltarInstance -Project demo -EndpointUrl '$($Sandbox.Endpoint)' |
    Invoke-MoltarCommand 'uname -n' -KeyFile '$($Sandbox.ClientKeyPath)' -KnownHostsPath '$($Sandbox.KnownHostsPath)' -StrictHostKeyChecking Yes -Quiet |
    ForEach-Object { 'ran=' + `$_.Output.Trim() }
"@
        $saved = @{ HOME = $env:HOME; XDG_CONFIG_HOME = $env:XDG_CONFIG_HOME }
        Push-Location $freshHome
        try {
            $env:HOME = $freshHome
            $env:XDG_CONFIG_HOME = Join-Path $freshHome '.config'
            $output = Invoke-CleanPwsh $script 2>&1
        }
        finally {
            Pop-Location
            $env:HOME = $saved.HOME
            $env:XDG_CONFIG_HOME = $saved.XDG_CONFIG_HOME
        }
        $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")
        ($output | Where-Object { "$_" -like 'base=*' }) | Should -BeLike "base=$freshHome*"
        $output | Should -Contain 'root=Moltar.psm1 Script' -Because 'the package ships the root script module'
        $output | Should -Contain 'instances=2'
        @($output | Where-Object { "$_" -like 'ran=*' } | Sort-Object) | Should -Be @($Sandbox.Hosts.Name | Sort-Object | ForEach-Object { "ran=$_" })
    }
}

Describe 'The manifest' {
    It 'has explicit exports, editions, version floor and real PSData' {
        $manifest = Test-ModuleManifest (Get-TestModulePath)
        $data = Import-PowerShellDataFile (Get-TestModulePath)
        $data.CmdletsToExport | Should -Not -Contain '*'
        $data.FunctionsToExport.Count | Should -Be 0
        $manifest.CompatiblePSEditions | Should -Be @('Core')
        $manifest.PowerShellVersion | Should -Be ([version]'7.4')
        $manifest.Tags | Should -Contain 'EC2'
        $manifest.ReleaseNotes | Should -Match '### Added'
        $manifest.ReleaseNotes | Should -Not -Match 'See CHANGELOG'
        $manifest.Description.Length | Should -BeGreaterThan 40
    }

    It 'names the licence that ships with it, and links nowhere made up' {
        $data = Import-PowerShellDataFile (Get-TestModulePath)
        $licence = Join-Path (Split-Path (Get-TestModulePath)) 'LICENSE'
        $licence | Should -Exist
        Get-Content $licence -TotalCount 1 | Should -Be 'MIT License'
        $data.PrivateData.PSData.LicenseUri | Should -Be 'https://opensource.org/licenses/MIT'
        $data.Copyright | Should -Match 'MIT License'
        foreach ($uri in @($data.PrivateData.PSData.LicenseUri, $data.PrivateData.PSData.ProjectUri, $data.PrivateData.PSData.IconUri) -ne $null) {
            ([uri] $uri).Host | Should -Not -Match '(^|\.)(example\.(com|org|net)|example|invalid|test|localhost)$'
        }
    }
}
