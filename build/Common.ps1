# Helpers every task uses (dot-sourced by build.ps1, which sets $root, $out, $version, $moduleDir, $isCI and $pwsh).

function Write-Step([string] $message) {
    Write-Host "==> $message" -ForegroundColor Cyan
}

function Invoke-Native {
    param([Parameter(Mandatory)] [string] $FilePath, [string[]] $ArgumentList = @(), [switch] $Quiet)
    if ($Quiet) {
        $output = & $FilePath @ArgumentList 2>&1
        if ($LASTEXITCODE -ne 0) { $output | Out-Host; throw "$FilePath $($ArgumentList -join ' ') failed with exit code $LASTEXITCODE" }
    }
    else {
        & $FilePath @ArgumentList | Out-Host
        if ($LASTEXITCODE -ne 0) { throw "$FilePath $($ArgumentList -join ' ') failed with exit code $LASTEXITCODE" }
    }
}

function Get-NuGetPackageRoot {
    if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path ([Environment]::GetFolderPath('UserProfile')) '.nuget/packages' }
}
