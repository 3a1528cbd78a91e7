# Issue 15: a test file's clean-up removes only what its own set-up made and recorded, also when that set-up failed
# half-way. Each file that starts a sandbox is run in a child pwsh whose sandbox cannot start (its set-up has made
# its scratch folders by then, and fails there), from a folder of canary files, with a temp folder of its own: the
# canaries must all survive, and nothing the child made may be left in its temp folder.
BeforeDiscovery {
    # Never this file itself (it names the function too): it would run itself without end.
    $script:SandboxFiles = @(Get-ChildItem $PSScriptRoot -Filter *.Tests.ps1 -File |
        Where-Object { $_.Name -ne 'Cleanup.Tests.ps1' -and (Get-Content -Raw $_.FullName) -match 'Start-TestSandbox' } |
        ForEach-Object { @{ File = $_.Name; Path = $_.FullName } })
}

Describe 'A test file whose set-up fails half-way' -Skip:([bool] $env:MOLTAR_TEST_CLEANUP_CHILD) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:PesterPath = (Get-Module Pester).Path
        $script:Scratch = New-TestScratch -Name cleanup
        $script:CanaryNames = @('notes.txt', 'moltar-pwned-1', '.moltar.psd1', 'id_ed25519')
    }
    AfterAll { Remove-TestScratch $Scratch }

    It 'has files to check' {
        $SandboxFiles.Count | Should -BeGreaterThan 5
    }

    It '<File> removes only what its own set-up made' -ForEach $SandboxFiles {
        $name = [IO.Path]::GetFileNameWithoutExtension($File)
        $canary = New-Item -ItemType Directory -Path (Join-Path $Scratch "cwd-$name")
        foreach ($canaryName in $CanaryNames) { Set-Content -LiteralPath (Join-Path $canary $canaryName) -Value $canaryName }
        $childTemp = New-Item -ItemType Directory -Path (Join-Path $Scratch "tmp-$name")

        $script = @"
`$env:TMPDIR = '$childTemp'
`$env:MOLTAR_TEST_CLEANUP_CHILD = '1'
`$env:MOLTAR_TEST_SANDBOX = '$(Join-Path $Scratch 'not-built/Moltar.Sandbox.dll')'
`$env:MOLTAR_TEST_SKIP_REASON = ''
Import-Module '$PesterPath'
Set-Location -LiteralPath '$canary'
`$configuration = New-PesterConfiguration
`$configuration.Run.Path = '$Path'
`$configuration.Run.PassThru = `$true
`$configuration.Output.Verbosity = 'None'
`$result = Invoke-Pester -Configuration `$configuration
'failed-blocks=' + (`$result.FailedBlocksCount + `$result.FailedContainersCount)
'passed=' + `$result.PassedCount
'not-built=' + [bool] (@(`$result.Containers.Blocks.ErrorRecord) + @(`$result.Containers.ErrorRecord) | Where-Object { "`$_" -match 'The sandbox is not built' })
"@
        $output = @(Invoke-CleanPwsh $script)

        # The set-up really ran and failed where the sandbox starts.
        $output | Should -Contain 'not-built=True' -Because ($output -join "`n")
        $output | Should -Not -Contain 'failed-blocks=0'
        # Nothing outside its scratch was touched: every canary is there with its content.
        foreach ($canaryName in $CanaryNames) {
            Get-Content -LiteralPath (Join-Path $canary $canaryName) -ErrorAction Ignore | Should -Be $canaryName -Because "$canaryName in the folder the file ran from"
        }
        @(Get-ChildItem -LiteralPath $canary -Force).Count | Should -Be $CanaryNames.Count
        # And what it made for itself is gone.
        @(Get-ChildItem -LiteralPath $childTemp -Force -Filter 'moltar-*' | ForEach-Object Name) | Should -BeNullOrEmpty
    }
}
