#!/usr/bin/env pwsh
<#
.SYNOPSIS
    One entry point for people and CI: Build, Test, Demo, Bench, Package, Sandbox, ReadyToRun. Each task lives in
    build/<Task>.Task.ps1 (its entry point is Invoke-<Task>Task); build/Common.ps1 holds what they share.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 -Task Test
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Bench', 'Package', 'Sandbox', 'ReadyToRun')]
    [string] $Task = 'Build',
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    # Test: only Pester files whose name matches (e.g. 'Get-MoltarInstance'); xunit runs unless -SkipUnit.
    [string] $TestFilter,
    [switch] $SkipUnit,
    [switch] $SkipPester,
    # Bench: fleet sizes (one fleet of the largest; smaller N use its first hosts) and timed runs per tool.
    [ValidateRange(1, 250)] [int[]] $Hosts = @(10, 50, 100),
    [ValidateRange(1, 100)] [int] $Runs = 5,
    # Bench: only the SSM Run Command row (1,000 instances through the stand-in, no sshd fleet); the README is left as it is.
    [switch] $OnlySsm,
    # Package: the local PSResourceGet file repository to publish to; -SkipBuild packages the existing build.
    [string] $RepositoryPath,
    [switch] $SkipBuild
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$root = $PSScriptRoot
$out = Join-Path $root 'out'
$manifestSource = Join-Path $root 'Moltar.psd1'
$version = (Import-PowerShellDataFile $manifestSource).ModuleVersion
$moduleDir = Join-Path $out "Moltar/$version"
$isCI = $env:CI -eq 'true'

# Child pwsh processes: the dotnet tool runs as 'dotnet pwsh.dll', a plain install as 'pwsh'.
$pwsh = [pscustomobject]@{
    FilePath  = [Environment]::ProcessPath
    Arguments = if ([IO.Path]::GetFileNameWithoutExtension([Environment]::ProcessPath) -eq 'dotnet') { @([Reflection.Assembly]::GetEntryAssembly().Location) } else { @() }
}

foreach ($file in 'Common.ps1', 'Build.Task.ps1', 'ReadyToRun.Task.ps1', 'Sandbox.Task.ps1', 'Test.Task.ps1', 'Demo.Task.ps1', 'Bench.Task.ps1', 'Package.Task.ps1') {
    . (Join-Path $root "build/$file")
}

& "Invoke-$($Task)Task"
