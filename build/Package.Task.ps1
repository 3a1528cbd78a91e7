# Task Package: the built module published to a local PSResourceGet file repository.

function Invoke-PackageTask {
    if (-not $SkipBuild) { Invoke-BuildTask }
    $repository = if ($RepositoryPath) { $RepositoryPath } else { Join-Path $out 'repository' }
    New-Item -ItemType Directory -Force -Path $repository | Out-Null
    Write-Step "Publishing Moltar $version to the local repository $repository"
    # A child pwsh with its own HOME, so registering the file repository never touches the user's PSResourceGet settings.
    $packageHome = Join-Path $out 'package-home'
    Remove-Item -Recurse -Force $packageHome -ErrorAction Ignore
    New-Item -ItemType Directory -Force -Path $packageHome | Out-Null
    $script = @"
`$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name MoltarLocal -Uri '$repository' -Trusted
Publish-PSResource -Path '$moduleDir' -Repository MoltarLocal
"@
    # NuGet inside Publish-PSResource writes NuGet/NuGet.Config where it runs: keep that in the package home too.
    $saved = @{ HOME = $env:HOME; XDG_CONFIG_HOME = $env:XDG_CONFIG_HOME }
    Push-Location $packageHome
    try {
        $env:HOME = $packageHome
        $env:XDG_CONFIG_HOME = Join-Path $packageHome '.config'
        & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -NonInteractive -Command $script
        if ($LASTEXITCODE -ne 0) { throw "Publish-PSResource failed (exit $LASTEXITCODE)." }
    }
    finally {
        Pop-Location
        $env:HOME = $saved.HOME
        $env:XDG_CONFIG_HOME = $saved.XDG_CONFIG_HOME
    }
    $package = Get-ChildItem $repository -Filter "Moltar.$version.nupkg"
    if (-not $package) { throw "Publishing wrote no Moltar.$version.nupkg into $repository." }
    Write-Step "Published $($package.FullName)"
}
