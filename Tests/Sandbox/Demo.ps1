# The one-command demo: a sandbox of 6 instances over 2 environments and 3 clusters, and Moltar working on it.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $SandboxPath
)
$ErrorActionPreference = 'Stop'

function Say([string] $text) { Write-Host "`n# $text" -ForegroundColor Yellow }
function Show([string] $command) {
    Write-Host "PS> $command" -ForegroundColor Green
    Invoke-Expression $command | Out-Host
}

Import-Module (Join-Path $PSScriptRoot 'Sandbox.psm1') -Force
$scratch = Join-Path ([IO.Path]::GetTempPath()) "moltar-demo-$PID"
$sandbox = $null
try {
    Say 'Starting a sandbox: a local EC2-compatible endpoint and 6 real sshd hosts on loopback addresses.'
    # Each host has its own root filesystem and, as its only APT source, a repository built here (demo-app 1.0.0, 1.1.0).
    $repository = & (Join-Path $PSScriptRoot 'New-TestAptRepository.ps1') -Path (Join-Path $scratch 'apt')
    $sandbox = Start-MoltarSandbox -SandboxPath $SandboxPath -Hosts 6 -Project demo -Environments production, staging -Clusters web, jobs, search -AptRepository $repository
    Write-Host "  EC2 endpoint $($sandbox.Endpoint); hosts $(($sandbox.Hosts | ForEach-Object address) -join ', ')"

    Say 'A repository says which project it is about in .moltar.psd1; the project name picks the AWS profile.'
    New-Item -ItemType Directory -Force -Path (Join-Path $scratch 'aws'), (Join-Path $scratch 'demo-app') | Out-Null
    $env:AWS_SHARED_CREDENTIALS_FILE = Join-Path $scratch 'aws/credentials'
    $env:AWS_CONFIG_FILE = Join-Path $scratch 'aws/config'
    Set-Content $env:AWS_SHARED_CREDENTIALS_FILE "[demo]`naws_access_key_id = AKIDDEMO`naws_secret_access_key = demo-secret"
    Set-Content $env:AWS_CONFIG_FILE "[profile demo]`nregion = $($sandbox.Region)"
    Set-Content (Join-Path $scratch 'demo-app/.moltar.psd1') @"
@{
    Project        = 'demo'
    EndpointUrl    = '$($sandbox.Endpoint)'
    User           = '$($sandbox.User)'
    KeyFile        = '$($sandbox.ClientKeyPath)'
    KnownHostsPath = '$($sandbox.KnownHostsPath)'
}
"@
    Get-Content (Join-Path $scratch 'demo-app/.moltar.psd1') | ForEach-Object { Write-Host "  $_" }
    Set-Location (Join-Path $scratch 'demo-app')
    Import-Module $ModulePath
    # The demo's trust record goes to its scratch folder, not to your ~/.config/moltar.
    $env:XDG_CONFIG_HOME = Join-Path $scratch 'config'

    Say 'A cloned project file is somebody else''s text: its endpoint, user, key and known_hosts count only once you trust it.'
    Show 'Approve-MoltarProject | Format-List Directory, TrustedSettings'

    Say 'Get-MoltarContext shows what a call will use, and where each value came from.'
    Show 'Get-MoltarContext | Format-List Project, ProfileName, Region, EndpointUrl, User'

    Say 'Get-MoltarInstance lists the project''s running instances; ShortId is enough to name one.'
    Show 'Get-MoltarInstance'

    Say 'Positional selection: Environment, then Cluster.'
    Show 'Get-MoltarInstance production web'

    if (Get-Command Invoke-MoltarCommand -ErrorAction Ignore) {
        Say 'Run a command on every web instance, in parallel, over SSH.'
        Show "Get-MoltarInstance -Cluster web | Invoke-MoltarCommand 'uname -n'"
    }
    if (Get-Command Invoke-MoltarDeploy -ErrorAction Ignore) {
        Say 'Deploying is upgrading a Debian package: -WhatIf shows the exact commands per host, and runs nothing.'
        Show 'Invoke-MoltarDeploy staging web -Package demo-app -WhatIf'
        Say 'Deploy it to production two hosts at a time; dpkg verifies each host. (-Confirm:$false: no prompt per batch.)'
        Show 'Invoke-MoltarDeploy production -Package demo-app -BatchSize 2 -Quiet -Confirm:$false'
        Say 'Roll back by pinning a version.'
        Show 'Invoke-MoltarDeploy production -Package demo-app -Version 1.0.0 -Quiet -Confirm:$false'
    }
    Say 'Done. Stopping the sandbox.'
}
finally {
    Set-Location ([IO.Path]::GetTempPath())
    if ($sandbox) { Stop-MoltarSandbox $sandbox }
    Remove-Item -Recurse -Force $scratch -ErrorAction Ignore
}
