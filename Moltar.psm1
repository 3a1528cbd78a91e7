# Loader: the binary module for PowerShell 7.4+. Dependencies load in a private context (see ModuleInitializer).
if ($PSVersionTable.PSEdition -ne 'Core' -or $PSVersionTable.PSVersion -lt [version]'7.4') {
    throw "Moltar needs PowerShell 7.4 or later (this is $($PSVersionTable.PSEdition) $($PSVersionTable.PSVersion)). Install it from https://aka.ms/powershell and run 'pwsh'."
}
if (-not (Test-Path (Join-Path $PSScriptRoot 'deps/Moltar.Engine.dll'))) {
    throw "Moltar is incomplete: $(Join-Path $PSScriptRoot 'deps') must hold Moltar.Engine.dll and its dependencies. Reinstall the module."
}
Import-Module -Name (Join-Path $PSScriptRoot 'Moltar.Cmdlets.dll') -ErrorAction Stop
# The manifest's CmdletsToExport is the one list of what the module exports.
Export-ModuleMember -Cmdlet '*'
