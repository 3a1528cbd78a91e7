# Task Build: the module folder out/Moltar/<version>/ (manifest, root script module, cmdlets, deps/, help).

function Invoke-BuildTask {
    Write-Step "Building Moltar $version ($Configuration) into $moduleDir"
    $publish = Join-Path $out 'publish'
    Remove-Item -Recurse -Force $publish, $moduleDir -ErrorAction Ignore
    $common = @('-c', $Configuration, "-p:Version=$version", '--nologo', '-v:q')
    Invoke-Native dotnet (@('publish', (Join-Path $root 'src/Moltar/Moltar.csproj'), '-o', (Join-Path $publish 'module')) + $common)
    Invoke-Native dotnet (@('publish', (Join-Path $root 'src/Moltar.Engine/Moltar.Engine.csproj'), '-o', (Join-Path $publish 'deps')) + $common)

    New-Item -ItemType Directory -Force -Path (Join-Path $moduleDir 'deps') | Out-Null
    foreach ($file in 'Moltar.psd1', 'Moltar.psm1', 'Moltar.format.ps1xml', 'LICENSE') {
        Copy-Item (Join-Path $root $file) $moduleDir
    }
    # Release notes: this version's section of CHANGELOG.md, so the gallery page says what changed.
    $changelog = Get-Content -Raw (Join-Path $root 'CHANGELOG.md')
    if ($changelog -notmatch "(?ms)^## $([regex]::Escape($version))\b[^\n]*\n(?<notes>.*?)(?=^## |\z)") {
        throw "CHANGELOG.md has no section for $version."
    }
    # PowerShell's own escaping: it also doubles the curly single quotes, which end a single-quoted string too.
    $notes = [System.Management.Automation.Language.CodeGeneration]::EscapeSingleQuotedStringContent($Matches['notes'].Trim())
    $builtManifest = Join-Path $moduleDir 'Moltar.psd1'
    (Get-Content -Raw $builtManifest).Replace("ReleaseNotes = 'See CHANGELOG.md'", "ReleaseNotes = '$notes'") | Set-Content -NoNewline $builtManifest
    # The cmdlets and the model load in the default context; everything else from deps/.
    foreach ($file in 'Moltar.Cmdlets.dll', 'Moltar.Model.dll') {
        Copy-Item (Join-Path $publish "module/$file") $moduleDir
    }
    Get-ChildItem (Join-Path $publish 'deps') -File |
        Where-Object { $_.Name -notin 'Moltar.Model.dll', 'Moltar.Model.pdb' -and $_.Extension -in '.dll', '.json' } |
        Copy-Item -Destination (Join-Path $moduleDir 'deps')
    Invoke-ReadyToRunTask -Publish $publish

    # Help: MAML generated from src/Moltar/Help/*.md and the cmdlets' metadata, in a child pwsh so this
    # process never loads the module. Incomplete help is a warning here and a failing test in Test.
    $helpDir = Join-Path $moduleDir 'en-US'
    New-Item -ItemType Directory -Force -Path $helpDir | Out-Null
    Copy-Item (Join-Path $root 'src/Moltar/Help/about_Moltar.help.txt') $helpDir
    & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -NonInteractive -File (Join-Path $root 'build/New-MamlHelp.ps1') `
        -ModulePath (Join-Path $moduleDir 'Moltar.psd1') -HelpSource (Join-Path $root 'src/Moltar/Help') `
        -OutputPath (Join-Path $helpDir 'Moltar.Cmdlets.dll-Help.xml') -AllowIncomplete
    if ($LASTEXITCODE -ne 0) { throw 'Generating help failed.' }

    $shipped = Get-ChildItem $moduleDir -Recurse -File
    if ($shipped.Name -contains 'System.Management.Automation.dll') { throw 'The build ships System.Management.Automation.dll; it must not.' }
    $null = Test-ModuleManifest (Join-Path $moduleDir 'Moltar.psd1')
    Write-Step "Built $(Join-Path $moduleDir 'Moltar.psd1')"
}
