<#
.SYNOPSIS
    Generates MAML help (en-US/Moltar.Cmdlets.dll-Help.xml) for the built module from the markdown help
    kept beside the code (src/Moltar/Help/<Cmdlet>.md, _CommonParameters.md) and the cmdlets' own metadata.
.DESCRIPTION
    Parameter types, positions, pipeline input and parameter sets come from the compiled cmdlets, so they
    cannot drift; the words come from the markdown. A cmdlet without a help file, a parameter without a
    description, or fewer than two examples fails the build.
#>
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $HelpSource,
    [Parameter(Mandatory)] [string] $OutputPath,
    # Write what there is and warn about gaps (the Build task); without it, gaps fail (the help test).
    [switch] $AllowIncomplete
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$commonParameters = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters

function Read-HelpMarkdown([string] $path) {
    # Sections: '## NAME' holds text; '### Sub' inside EXAMPLES, PARAMETERS and OUTPUTS holds named entries.
    $help = @{ Sections = @{}; Examples = [System.Collections.Generic.List[object]]::new(); Parameters = @{}; Outputs = [ordered]@{} }
    $section = $null; $entry = $null; $buffer = [System.Collections.Generic.List[string]]::new()
    $flush = {
        $text = ($buffer -join "`n").Trim()
        if ($section -and -not $entry) { $help.Sections[$section] = $text }
        elseif ($section -eq 'EXAMPLES') {
            $code = if ($text -match '(?s)```(?:powershell)?\s*\n(.*?)\n```') { $Matches[1].Trim() } else { throw "${path}: example '$entry' has no ```powershell code block." }
            $remarks = ($text -replace '(?s)```(?:powershell)?\s*\n.*?\n```', '').Trim()
            $help.Examples.Add([pscustomobject]@{ Title = $entry; Code = $code; Remarks = $remarks })
        }
        elseif ($section -eq 'PARAMETERS') { $help.Parameters[$entry.TrimStart('-')] = $text }
        elseif ($section -eq 'OUTPUTS') { $help.Outputs[$entry] = $text }
        $buffer.Clear()
    }
    foreach ($line in Get-Content -LiteralPath $path) {
        if ($line -match '^## (.+)$') { & $flush; $section = $Matches[1].Trim().ToUpperInvariant(); $entry = $null; continue }
        if ($line -match '^### (.+)$' -and $section -in 'EXAMPLES', 'PARAMETERS', 'OUTPUTS') { & $flush; $entry = $Matches[1].Trim(); continue }
        if ($line -match '^# ') { continue }
        $buffer.Add($line)
    }
    & $flush
    $help
}

function Add-Paragraphs([System.Xml.XmlWriter] $writer, [string] $text) {
    foreach ($paragraph in ($text -split "\n\s*\n")) {
        $clean = ($paragraph -split "`n" | ForEach-Object { $_.Trim() }) -join ' '
        if ($clean) { $writer.WriteElementString('maml', 'para', $maml, $clean) }
    }
}

function Get-PipelineText($parameterSetData) {
    $kinds = @()
    if ($parameterSetData.ValueFromPipeline) { $kinds += 'ByValue' }
    if ($parameterSetData.ValueFromPipelineByPropertyName) { $kinds += 'ByPropertyName' }
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

function Write-Parameter([System.Xml.XmlWriter] $writer, $parameter, $setData, [string] $description, [bool] $withDescription) {
    $writer.WriteStartElement('command', 'parameter', $command)
    $writer.WriteAttributeString('required', "$($setData.IsMandatory)".ToLowerInvariant())
    $writer.WriteAttributeString('variableLength', "$($parameter.ParameterType.IsArray)".ToLowerInvariant())
    $writer.WriteAttributeString('globbing', 'false')
    $writer.WriteAttributeString('pipelineInput', (Get-PipelineText $setData))
    $writer.WriteAttributeString('position', $(if ($setData.Position -ge 0) { "$($setData.Position)" } else { 'named' }))
    $writer.WriteAttributeString('aliases', $(if ($parameter.Aliases.Count) { $parameter.Aliases -join ', ' } else { 'none' }))
    $writer.WriteElementString('maml', 'name', $maml, $parameter.Name)
    if ($withDescription) {
        $writer.WriteStartElement('maml', 'description', $maml); Add-Paragraphs $writer $description; $writer.WriteEndElement()
    }
    $isSwitch = $parameter.ParameterType -eq [System.Management.Automation.SwitchParameter]
    if (-not $isSwitch) {
        $writer.WriteStartElement('command', 'parameterValue', $command)
        $writer.WriteAttributeString('required', 'true')
        $writer.WriteString($parameter.ParameterType.Name)
        $writer.WriteEndElement()
    }
    if ($withDescription) {
        $writer.WriteStartElement('dev', 'type', $dev); $writer.WriteElementString('maml', 'name', $maml, $parameter.ParameterType.FullName); $writer.WriteEndElement()
        $default = if ($description -match '(?m)^Default(?: value)?:\s*(.+)$') { $Matches[1].Trim() } else { 'None' }
        $writer.WriteElementString('dev', 'defaultValue', $dev, $default)
    }
    $writer.WriteEndElement()
}

$maml = 'http://schemas.microsoft.com/maml/2004/10'
$command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$dev = 'http://schemas.microsoft.com/maml/dev/2004/10'

$module = Import-Module $ModulePath -PassThru -Force
$common = Read-HelpMarkdown (Join-Path $HelpSource '_CommonParameters.md')
$problems = [System.Collections.Generic.List[string]]::new()

$settings = [System.Xml.XmlWriterSettings]@{ Indent = $true; Encoding = [System.Text.UTF8Encoding]::new($false) }
New-Item -ItemType Directory -Force -Path (Split-Path $OutputPath) | Out-Null
$writer = [System.Xml.XmlWriter]::Create($OutputPath, $settings)
$writer.WriteStartDocument()
$writer.WriteStartElement('helpItems', 'http://msh')
$writer.WriteAttributeString('schema', 'maml')
foreach ($cmdlet in $module.ExportedCmdlets.Values | Sort-Object Name) {
    $source = Join-Path $HelpSource "$($cmdlet.Name).md"
    if (-not (Test-Path $source)) { $problems.Add("$($cmdlet.Name): no help file $source"); continue }
    $help = Read-HelpMarkdown $source
    foreach ($required in 'SYNOPSIS', 'DESCRIPTION') {
        if (-not $help.Sections[$required]) { $problems.Add("$($cmdlet.Name): no $required") }
    }
    if ($help.Examples.Count -lt 2) { $problems.Add("$($cmdlet.Name): $($help.Examples.Count) example(s); at least two are required") }
    $own = @($cmdlet.Parameters.Values | Where-Object { $_.Name -notin $commonParameters })
    $descriptions = @{}
    foreach ($parameter in $own) {
        $text = if ($help.Parameters.ContainsKey($parameter.Name)) { $help.Parameters[$parameter.Name] } elseif ($common.Parameters.ContainsKey($parameter.Name)) { $common.Parameters[$parameter.Name] } else { $null }
        if (-not $text) { $problems.Add("$($cmdlet.Name): parameter -$($parameter.Name) has no description") }
        $descriptions[$parameter.Name] = "$text"
    }
    foreach ($documented in $help.Parameters.Keys) {
        if ($documented -notin $own.Name) { $problems.Add("$($cmdlet.Name): help describes -$documented, which the cmdlet does not have") }
    }

    $writer.WriteStartElement('command', 'command', $command)
    $writer.WriteAttributeString('xmlns', 'maml', $null, $maml)
    $writer.WriteAttributeString('xmlns', 'dev', $null, $dev)
    $writer.WriteStartElement('command', 'details', $command)
    $writer.WriteElementString('command', 'name', $command, $cmdlet.Name)
    $writer.WriteStartElement('maml', 'description', $maml); Add-Paragraphs $writer "$($help.Sections['SYNOPSIS'])"; $writer.WriteEndElement()
    $writer.WriteElementString('command', 'verb', $command, $cmdlet.Verb)
    $writer.WriteElementString('command', 'noun', $command, $cmdlet.Noun)
    $writer.WriteEndElement()
    $writer.WriteStartElement('maml', 'description', $maml); Add-Paragraphs $writer "$($help.Sections['DESCRIPTION'])"; $writer.WriteEndElement()

    $writer.WriteStartElement('command', 'syntax', $command)
    foreach ($set in $cmdlet.ParameterSets) {
        $writer.WriteStartElement('command', 'syntaxItem', $command)
        $writer.WriteElementString('maml', 'name', $maml, $cmdlet.Name)
        foreach ($setParameter in $set.Parameters | Where-Object { $_.Name -notin $commonParameters }) {
            $parameter = $cmdlet.Parameters[$setParameter.Name]
            Write-Parameter $writer $parameter $setParameter '' $false
        }
        $writer.WriteEndElement()
    }
    $writer.WriteEndElement()

    $writer.WriteStartElement('command', 'parameters', $command)
    foreach ($parameter in $own | Sort-Object Name) {
        $setData = $parameter.ParameterSets.Values | Select-Object -First 1
        Write-Parameter $writer $parameter $setData $descriptions[$parameter.Name] $true
    }
    $writer.WriteEndElement()

    $writer.WriteStartElement('command', 'returnValues', $command)
    foreach ($output in $help.Outputs.Keys) {
        $writer.WriteStartElement('command', 'returnValue', $command)
        $writer.WriteStartElement('dev', 'type', $dev); $writer.WriteElementString('maml', 'name', $maml, $output); $writer.WriteEndElement()
        $writer.WriteStartElement('maml', 'description', $maml); Add-Paragraphs $writer $help.Outputs[$output]; $writer.WriteEndElement()
        $writer.WriteEndElement()
    }
    $writer.WriteEndElement()
    if ($help.Sections['NOTES']) {
        $writer.WriteStartElement('maml', 'alertSet', $maml); $writer.WriteStartElement('maml', 'alert', $maml)
        Add-Paragraphs $writer $help.Sections['NOTES']
        $writer.WriteEndElement(); $writer.WriteEndElement()
    }

    $writer.WriteStartElement('command', 'examples', $command)
    foreach ($example in $help.Examples) {
        $writer.WriteStartElement('command', 'example', $command)
        $writer.WriteElementString('maml', 'title', $maml, "--- $($example.Title) ---")
        $writer.WriteElementString('dev', 'code', $dev, $example.Code)
        $writer.WriteStartElement('dev', 'remarks', $dev); Add-Paragraphs $writer $example.Remarks; $writer.WriteEndElement()
        $writer.WriteEndElement()
    }
    $writer.WriteEndElement()
    $writer.WriteEndElement()
}
$writer.WriteEndElement()
$writer.WriteEndDocument()
$writer.Close()
Remove-Module $module -Force

if ($problems.Count) {
    $message = "Help is incomplete:`n  $($problems -join "`n  ")"
    if ($AllowIncomplete) { Write-Warning $message }
    else { Remove-Item $OutputPath -ErrorAction Ignore; throw $message }
}
