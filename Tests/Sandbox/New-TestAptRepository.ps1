#Requires -Version 7.2
<#
.SYNOPSIS
    Builds, at test time, a flat APT repository of tiny test packages for deploy tests.

.DESCRIPTION
    Packages (Architecture: all, built with dpkg-deb --root-owner-group, indexed with
    dpkg-scanpackages --multiversion so every version is installable):

      moltar-test-app     1.0.0, 1.1.0   /opt/moltar-test-app/VERSION holds the version;
                                         /etc/moltar-test-app/app.conf is a conffile whose shipped
                                         content changes between versions (for --force-confold)
      moltar-test-worker  1.0.0, 1.1.0   /opt/moltar-test-worker/VERSION
      moltar-test-broken  1.0.0          its postinst exits 1 (dpkg leaves it half-configured, apt exits 100)
      demo-app            1.0.0, 1.1.0   /opt/demo-app/VERSION: the package the sandbox tags its generated
                                         instances with (Packages = |demo-app|), for the help examples and the demo
      moltar-test-noisy   1.0.0, 1.1.0   its postinst prints a line of 30,000 characters (more than Systems Manager
                                         returns of a stream: deploys over SSM with an output bucket)

    Everything is world-readable: the sandbox bind-mounts the folder read-only at /srv/apt in each host
    (`Start-MoltarSandbox -AptRepository <the returned path>`), where `deb [trusted=yes] file:/srv/apt ./`
    is the only APT source. The folder is new and empty before; remove it when done.

.OUTPUTS
    The repository folder (string).

.EXAMPLE
    $repo = & ./Tests/Sandbox/New-TestAptRepository.ps1
    $sandbox = Start-MoltarSandbox -Hosts 6 -AptRepository $repo
#>
[CmdletBinding()]
[OutputType([string])]
param(
    # Where to build; a new folder under the temp directory by default. Must not exist or be empty.
    [string] $Path
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

foreach ($tool in 'dpkg-deb', 'dpkg-scanpackages') {
    if (-not (Get-Command $tool -CommandType Application -ErrorAction Ignore)) {
        throw "New-TestAptRepository needs $tool (apt-get install dpkg-dev)."
    }
}

if (-not $Path) {
    $Path = [IO.Directory]::CreateTempSubdirectory('moltar-apt-').FullName
}
elseif ((Test-Path -LiteralPath $Path) -and (Get-ChildItem -LiteralPath $Path -Force | Select-Object -First 1)) {
    throw "New-TestAptRepository: '$Path' is not empty."
}
$repo = Join-Path $Path 'repo'
$work = Join-Path $Path 'build'
New-Item -ItemType Directory -Force -Path $repo, $work | Out-Null

function Write-TextFile([string] $File, [string] $Text, [int] $Mode = 0x1A4) {
    # LF line ends whatever the platform; 0644 unless told otherwise.
    New-Item -ItemType Directory -Force -Path (Split-Path $File) | Out-Null
    [IO.File]::WriteAllText($File, $Text.Replace("`r`n", "`n"))
    [IO.File]::SetUnixFileMode($File, [IO.UnixFileMode]$Mode)
}

function New-TestPackage {
    param(
        [string] $Name,
        [string] $Version,
        [hashtable] $Files = @{},
        [string[]] $Conffiles = @(),
        [string] $Postinst
    )
    $root = Join-Path $work "$($Name)_$Version"
    Write-TextFile (Join-Path $root 'DEBIAN/control') @"
Package: $Name
Version: $Version
Architecture: all
Maintainer: Moltar tests <tests@example.invalid>
Section: misc
Priority: optional
Description: Moltar deploy test package
 Installed by the Invoke-MoltarDeploy tests inside sandbox hosts only.

"@
    foreach ($file in $Files.Keys) {
        Write-TextFile (Join-Path $root $file.TrimStart('/')) $Files[$file]
    }
    if ($Conffiles) {
        Write-TextFile (Join-Path $root 'DEBIAN/conffiles') (($Conffiles -join "`n") + "`n")
    }
    if ($Postinst) {
        Write-TextFile (Join-Path $root 'DEBIAN/postinst') $Postinst -Mode 0x1ED  # 0755
    }
    $deb = Join-Path $repo "$($Name)_$($Version)_all.deb"
    $output = & dpkg-deb --root-owner-group -Zgzip --build $root $deb 2>&1
    if ($LASTEXITCODE -ne 0) { throw "dpkg-deb failed for $Name $($Version): $output" }
}

foreach ($version in '1.0.0', '1.1.0') {
    New-TestPackage -Name 'moltar-test-app' -Version $version -Conffiles '/etc/moltar-test-app/app.conf' -Files @{
        '/opt/moltar-test-app/VERSION'  = "$version`n"
        '/etc/moltar-test-app/app.conf' = "# shipped with moltar-test-app $version`nversion = $version`n"
    }
    New-TestPackage -Name 'moltar-test-worker' -Version $version -Files @{
        '/opt/moltar-test-worker/VERSION' = "$version`n"
    }
    New-TestPackage -Name 'demo-app' -Version $version -Files @{
        '/opt/demo-app/VERSION' = "$version`n"
    }
    New-TestPackage -Name 'moltar-test-noisy' -Version $version -Files @{
        '/opt/moltar-test-noisy/VERSION' = "$version`n"
    } -Postinst @"
#!/bin/sh
head -c 30000 /dev/zero | tr '\0' n
echo
"@
}
New-TestPackage -Name 'moltar-test-broken' -Version '1.0.0' -Files @{
    '/opt/moltar-test-broken/VERSION' = "1.0.0`n"
} -Postinst @"
#!/bin/sh
echo 'moltar-test-broken: postinst fails on purpose' >&2
exit 1
"@

# --multiversion: without it only the newest version of each package is indexed (no rollback).
$index = & sh -c 'cd "$1" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null' sh $repo
if ($LASTEXITCODE -ne 0) { throw "dpkg-scanpackages failed (exit $LASTEXITCODE)." }
$packages = Join-Path $repo 'Packages'
Write-TextFile $packages (($index -join "`n") + "`n")
# Packages.gz and a Release file listing both: without them apt-get update prints "Err: ... Method gave a blank
# filename" for every compression it tries (it still succeeds, but the noise reaches every host's output).
$source = [IO.File]::OpenRead($packages)
try {
    $target = [IO.File]::Create("$packages.gz")
    try {
        $gzip = [IO.Compression.GZipStream]::new($target, [IO.Compression.CompressionLevel]::Optimal)
        try { $source.CopyTo($gzip) } finally { $gzip.Dispose() }
    }
    finally { $target.Dispose() }
}
finally { $source.Dispose() }
$hashes = foreach ($file in 'Packages', 'Packages.gz') {
    $item = Get-Item -LiteralPath (Join-Path $repo $file)
    " $((Get-FileHash -LiteralPath $item.FullName -Algorithm SHA256).Hash.ToLowerInvariant()) $($item.Length) $file"
}
$release = @(
    'Origin: moltar-test'
    'Label: moltar-test'
    'Suite: moltar-test'
    'Codename: moltar-test'
    "Date: $([DateTime]::UtcNow.ToString('ddd, dd MMM yyyy HH:mm:ss', [Globalization.CultureInfo]::InvariantCulture)) UTC"
    'Architectures: all'
    'SHA256:'
) + $hashes
Write-TextFile (Join-Path $repo 'Release') (($release -join "`n") + "`n")
Remove-Item -LiteralPath $work -Recurse -Force

# World-readable: hosts read it as their own users through a read-only bind mount.
foreach ($item in @(Get-Item -LiteralPath $Path) + @(Get-ChildItem -LiteralPath $Path -Recurse -Force)) {
    $mode = if ($item.PSIsContainer) { 0x1ED } else { 0x1A4 }
    [IO.File]::SetUnixFileMode($item.FullName, [IO.UnixFileMode]$mode)
}
$repo
