# Issue 15: a test file's clean-up removes only what its own set-up made and recorded, also when that set-up failed
# half-way. Each file that starts a sandbox is run with a sandbox that cannot start (its set-up has made its scratch
# folders by then, and fails there), from a folder of canary files, with a temp folder of its own: the canaries must
# all survive, and nothing the file made may be left in its temp folder. One child pwsh runs them all, one file
# after another (a pwsh and a Pester import per file cost more than the files' failing set-ups).
BeforeDiscovery {
    # Never this file itself (it names the function too): it would run itself without end.
    $script:SandboxFiles = @(Get-ChildItem $PSScriptRoot -Filter *.Tests.ps1 -File |
        Where-Object { $_.Name -ne 'Cleanup.Tests.ps1' -and (Get-Content -Raw $_.FullName) -match 'Start-TestSandbox' } |
        ForEach-Object { @{ File = $_.Name; Path = $_.FullName } })
}

Describe 'A test file whose set-up fails half-way' -Skip:([bool] $env:MOLTAR_TEST_CLEANUP_CHILD) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:Scratch = New-TestScratch -Name cleanup
        $script:CanaryNames = @('notes.txt', 'moltar-pwned-1', '.moltar.psd1', 'id_ed25519')
        $script:Runs = @{}
        foreach ($file in $SandboxFiles) {
            $name = [IO.Path]::GetFileNameWithoutExtension($file.File)
            $canary = New-Item -ItemType Directory -Path (Join-Path $Scratch "cwd-$name")
            foreach ($canaryName in $CanaryNames) { Set-Content -LiteralPath (Join-Path $canary $canaryName) -Value $canaryName }
            $Runs[$file.File] = @{ Path = $file.Path; Canary = $canary.FullName; Temp = (New-Item -ItemType Directory -Path (Join-Path $Scratch "tmp-$name")).FullName }
        }
        $plan = Join-Path $Scratch 'plan.json'
        $Runs.Values | ConvertTo-Json | Set-Content -LiteralPath $plan

        $script = @"
`$env:MOLTAR_TEST_CLEANUP_CHILD = '1'
`$env:MOLTAR_TEST_SANDBOX = '$(Join-Path $Scratch 'not-built/Moltar.Sandbox.dll')'
`$env:MOLTAR_TEST_SKIP_REASON = ''
Import-Module '$((Get-Module Pester).Path)'
foreach (`$run in @(Get-Content -Raw -LiteralPath '$plan' | ConvertFrom-Json)) {
    # .NET reads TMPDIR at every GetTempPath: each file gets its own temp folder.
    `$env:TMPDIR = `$run.Temp
    Set-Location -LiteralPath `$run.Canary
    `$configuration = New-PesterConfiguration
    `$configuration.Run.Path = `$run.Path
    `$configuration.Run.PassThru = `$true
    `$configuration.Output.Verbosity = 'None'
    `$result = Invoke-Pester -Configuration `$configuration
    `$errors = @(`$result.Containers.Blocks.ErrorRecord) + @(`$result.Containers.ErrorRecord)
    [pscustomobject]@{
        Path         = `$run.Path
        FailedBlocks = `$result.FailedBlocksCount + `$result.FailedContainersCount
        Passed       = `$result.PassedCount
        NotBuilt     = [bool] (`$errors | Where-Object { "`$_" -match 'The sandbox is not built' })
        Seconds      = [math]::Round(`$result.Duration.TotalSeconds, 1)
        # Looked at as soon as the file is done (its AfterAll has run), before the next file starts.
        Left         = @(Get-ChildItem -LiteralPath `$run.Temp -Force -Filter 'moltar-*' | ForEach-Object Name)
    } | ConvertTo-Json -Compress
}
"@
        $script:Output = @(Invoke-CleanPwsh $script)
        $script:Results = @{}
        foreach ($line in $Output) {
            if ($line -match '^\{"Path"') { $result = $line | ConvertFrom-Json; $Results[(Split-Path -Leaf $result.Path)] = $result }
        }
        Write-Host "Cleanup: $(($Results.Keys | Sort-Object | ForEach-Object { "$_ $($Results[$_].Seconds) s" }) -join ', ')"
    }
    AfterAll { Remove-TestScratch $Scratch }

    It 'has files to check, and ran every one of them' {
        $SandboxFiles.Count | Should -BeGreaterThan 5
        $Results.Count | Should -Be $SandboxFiles.Count -Because ($Output -join "`n")
    }

    It '<File> removes only what its own set-up made' -ForEach $SandboxFiles {
        $run = $Runs[$File]
        $result = $Results[$File]
        $result | Should -Not -BeNullOrEmpty -Because ($Output -join "`n")
        # The set-up really ran and failed where the sandbox starts.
        $result.NotBuilt | Should -BeTrue -Because ($Output -join "`n")
        $result.FailedBlocks | Should -BeGreaterThan 0
        # Nothing outside its scratch was touched: every canary is there with its content.
        foreach ($canaryName in $CanaryNames) {
            Get-Content -LiteralPath (Join-Path $run.Canary $canaryName) -ErrorAction Ignore | Should -Be $canaryName -Because "$canaryName in the folder the file ran from"
        }
        @(Get-ChildItem -LiteralPath $run.Canary -Force).Count | Should -Be $CanaryNames.Count
        # And what it made for itself is gone.
        @($result.Left) | Should -BeNullOrEmpty
    }
}
