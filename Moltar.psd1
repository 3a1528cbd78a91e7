@{
    # The script root module holds what is better in script (argument completers); the binary cmdlets load as its
    # nested module. PowerShellVersion and CompatiblePSEditions refuse older hosts with PowerShell's own message.
    RootModule           = 'Moltar.psm1'
    NestedModules        = @('Moltar.Cmdlets.dll')
    ModuleVersion        = '0.1.0'
    CompatiblePSEditions = @('Core')
    PowerShellVersion    = '7.4'
    GUID                 = '6f0e8d3c-2b7a-4f5e-9c41-8a3d2e7b9f10'
    Author               = 'Moltar maintainers'
    CompanyName          = 'Moltar'
    Copyright            = '(c) 2026 Moltar maintainers. MIT License (LICENSE).'
    Description          = 'Find AWS EC2 instances by their tags, then run commands, copy files, open ssh and deploy Debian packages on them over SSH, in parallel.'
    FormatsToProcess     = @('Moltar.format.ps1xml')
    CmdletsToExport      = @(
        'Approve-MoltarProject'
        'Copy-MoltarFile'
        'Disconnect-MoltarInstance'
        'Enter-MoltarInstance'
        'Get-MoltarConnection'
        'Get-MoltarContext'
        'Get-MoltarInstance'
        'Invoke-MoltarCommand'
        'Invoke-MoltarDeploy'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('AWS', 'EC2', 'SSH', 'Deploy', 'Apt', 'Debian', 'Parallel', 'DevOps', 'PSEdition_Core', 'Linux', 'Windows')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            # ProjectUri: none until the project has a public home; a made-up address would be a broken link.
            ReleaseNotes = 'See CHANGELOG.md'
        }
    }
}
