# Moltar's root module. The cmdlets are binary: the manifest loads Moltar.Cmdlets.dll as a nested module (its
# ModuleInitializer sets up the private load context of the engine), and the manifest's CmdletsToExport is the
# whole public surface. This script holds what is better written in PowerShell than in C#, and nothing that costs
# time at import: Import-Module must stay within 0.1 s of a bare pwsh start (build.ps1 -Task Bench measures it).
#
# Clean-up on Remove-Module: the cmdlets' assembly runs ModuleInitializer.OnRemove (C#, IModuleAssemblyCleanup).
# Script-side clean-up, when this file sets up something that outlives the module, goes in a
# $ExecutionContext.SessionState.Module.OnRemove block here. (The completer below needs none: re-importing
# registers it again over the old one, and it completes nothing once the cmdlets are gone.)
#
# What keeps the import cheap (measured on the precompiled pwsh 7.6, see README "Performance"):
# - no .NET type is named in [brackets]: PowerShell resolves every type literal of the file while it parses it, by a
#   case-insensitive search of each loaded assembly in turn (~15 ms for five names); the completer looks its types
#   up by name when it runs instead;
# - strict mode is set inside the function and the completer, which pay for it when they run, not at import.

# The cmdlets that take -ProfileName (every one that talks to AWS).
$script:ProfileCommands = @(
    'Copy-MoltarFile'
    'Enter-MoltarInstance'
    'Get-MoltarContext'
    'Get-MoltarInstance'
    'Invoke-MoltarCommand'
    'Invoke-MoltarDeploy'
)

function Get-MoltarProfileName {
    <# The profile names in the files the engine reads: -ProfileLocation (or MOLTAR_PROFILE_LOCATION) alone when
       given, else the shared credentials file ([name]) and the config file ([profile name], [default]), each where
       AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE say, else under ~/.aws. Files that do not exist give none. #>
    param([string] $ProfileLocation)
    Set-StrictMode -Version 3.0
    $location = if ($ProfileLocation) { $ProfileLocation } else { $env:MOLTAR_PROFILE_LOCATION }
    $files = if ($location) { @($location) }
    else {
        # The folder the engine's AWS session uses, asked each time as the engine does ($HOME is fixed when pwsh starts).
        $awsHome = Join-Path (('System.Environment' -as [type])::GetFolderPath('UserProfile')) '.aws'
        @(
            $(if ($env:AWS_SHARED_CREDENTIALS_FILE) { $env:AWS_SHARED_CREDENTIALS_FILE } else { Join-Path $awsHome 'credentials' })
            $(if ($env:AWS_CONFIG_FILE) { $env:AWS_CONFIG_FILE } else { Join-Path $awsHome 'config' })
        )
    }
    foreach ($file in $files) {
        if (-not (Test-Path -LiteralPath $file -PathType Leaf)) { continue }
        foreach ($line in (Get-Content -LiteralPath $file -ErrorAction Stop)) {
            # [name] or [profile name]; other sections of the config file ([sso-session x], [services x]) are no profiles.
            if ($line -match '^\s*\[\s*(?:profile\s+)?(?<name>[^\]\s][^\]]*?)\s*\]') {
                $name = $Matches['name']
                if ($name -notmatch '^(sso-session|services)\s') { $name }
            }
        }
    }
}

Register-ArgumentCompleter -CommandName $script:ProfileCommands -ParameterName ProfileName -ScriptBlock {
    param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)
    Set-StrictMode -Version 3.0
    $codeGeneration = 'System.Management.Automation.Language.CodeGeneration' -as [type]
    $prefix = "$wordToComplete".Trim("'", '"')
    $location = if ($fakeBoundParameters.Contains('ProfileLocation')) { "$($fakeBoundParameters['ProfileLocation'])" } else { $null }
    try { $names = @(Get-MoltarProfileName -ProfileLocation $location) }
    catch { return } # completion never throws at the prompt: no suggestions is the honest answer
    $names | Where-Object { $_.StartsWith($prefix, 'OrdinalIgnoreCase') } | Sort-Object -Unique | ForEach-Object {
        # A bare word when it is one; otherwise one single-quoted string, escaped by PowerShell's own rules.
        $text = if ($_ -match '^[\w.@+:/][\w.@+:/-]*$') { $_ } else { "'" + $codeGeneration::EscapeSingleQuotedStringContent($_) + "'" }
        New-Object System.Management.Automation.CompletionResult -ArgumentList $text, $_, 'ParameterValue', $_
    }
}
