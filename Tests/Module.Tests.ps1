BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:ModulePath = Get-TestModulePath
    $script:ModuleDir = Split-Path $ModulePath
}

Describe 'The built module folder' {
    It 'has a valid manifest whose version is the folder name' {
        $manifest = Test-ModuleManifest $ModulePath
        $manifest.Version.ToString() | Should -Be (Split-Path $ModuleDir -Leaf)
        $manifest.CompatiblePSEditions | Should -Contain 'Core'
    }

    It 'keeps dependencies in deps/ and ships no System.Management.Automation' {
        (Get-ChildItem $ModuleDir -Recurse -File).Name | Should -Not -Contain 'System.Management.Automation.dll'
        Join-Path $ModuleDir 'deps/Moltar.Engine.dll' | Should -Exist
        Join-Path $ModuleDir 'deps/AWSSDK.EC2.dll' | Should -Exist
        Join-Path $ModuleDir 'deps/AWSSDK.SimpleSystemsManagement.dll' | Should -Exist
        Join-Path $ModuleDir 'deps/AWSSDK.S3.dll' | Should -Exist
        Join-Path $ModuleDir 'deps/Renci.SshNet.dll' | Should -Exist
        Join-Path $ModuleDir 'Moltar.Cmdlets.dll' | Should -Exist
        # One copy of the user-facing types, in the default context.
        Join-Path $ModuleDir 'deps/Moltar.Model.dll' | Should -Not -Exist
        Join-Path $ModuleDir 'Moltar.Engine.dll' | Should -Not -Exist
    }

    It 'exports exactly the cmdlets the manifest lists, in a clean pwsh' {
        $listed = (Import-PowerShellDataFile $ModulePath).CmdletsToExport | Sort-Object
        $exported = Invoke-CleanPwsh "(Import-Module '$ModulePath' -PassThru).ExportedCommands.Keys | Sort-Object"
        $LASTEXITCODE | Should -Be 0
        $exported | Should -Be $listed
        foreach ($name in $listed) {
            $type = Invoke-CleanPwsh "Import-Module '$ModulePath'; (Get-Command $name).ImplementingType.Name"
            $type | Should -BeLike '*Command'
        }
    }

    It 'loads the engine and the AWS SDK in its private context and the model in the default one' {
        $script = @"
Import-Module '$ModulePath'
`$null = Get-MoltarContext
`$null = [Moltar.MoltarInstance]::new()
[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -in 'Moltar.Engine', 'Moltar.Model', 'AWSSDK.Core' } |
    ForEach-Object { '{0}={1}' -f `$_.GetName().Name, [Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_).Name }
"@
        $contexts = Invoke-CleanPwsh $script
        $contexts | Should -Contain 'Moltar.Engine=Moltar'
        $contexts | Should -Contain 'Moltar.Model=Default'
    }

    It 'loads neither the engine nor the model at import: the first cmdlet that needs them does' {
        # PowerShell reads the signature of every public constructor in Moltar.Cmdlets.dll at import; one that names
        # an engine or model type would load that assembly (and the engine's own start-up) into every import.
        $script = @"
Import-Module '$ModulePath'
'import=' + ((([AppDomain]::CurrentDomain.GetAssemblies().GetName().Name | Where-Object { `$_ -like 'Moltar.*' }) | Sort-Object) -join ',')
`$null = Get-MoltarContext
'use=' + ((([AppDomain]::CurrentDomain.GetAssemblies().GetName().Name | Where-Object { `$_ -like 'Moltar.*' }) | Sort-Object) -join ',')
"@
        $loaded = Invoke-CleanPwsh $script
        $LASTEXITCODE | Should -Be 0
        $loaded | Should -Contain 'import=Moltar.Cmdlets'
        $loaded | Should -Contain 'use=Moltar.Cmdlets,Moltar.Engine,Moltar.Model'
    }

    It 'names no .NET type in brackets in Moltar.psm1 but PowerShell''s own accelerators' {
        # Each other type literal costs every import a case-insensitive search of all loaded assemblies at parse time.
        $ast = [System.Management.Automation.Language.Parser]::ParseFile((Join-Path $ModuleDir 'Moltar.psm1'), [ref] $null, [ref] $null)
        $accelerators = [psobject].Assembly.GetType('System.Management.Automation.TypeAccelerators')::Get.Keys
        $named = $ast.FindAll({ param($node) $node -is [System.Management.Automation.Language.TypeExpressionAst] -or $node -is [System.Management.Automation.Language.TypeConstraintAst] }, $true) |
            ForEach-Object TypeName | ForEach-Object FullName
        @($named).Count | Should -BeGreaterThan 0 -Because 'the script does name accelerators ([string], [type])'
        $named | Where-Object { $_ -notin $accelerators } | Should -BeNullOrEmpty
    }

    It 'runs SSH.NET, BouncyCastle and the engine precompiled on Linux x64 under .NET 10, and from the IL elsewhere' {
        $precompiled = [OperatingSystem]::IsLinux() -and [Runtime.InteropServices.RuntimeInformation]::ProcessArchitecture -eq 'X64' -and [Environment]::Version.Major -eq 10
        # A connect to a closed port runs SSH.NET's client set-up and the engine's connect path, then ConnectFailed.
        $probe = @"
Import-Module '@MODULE@'
'127.0.0.1' | Invoke-MoltarCommand true -Port 1 -KeyFile '@KEY@' -SshConfigPath none -KnownHostsPath '@KNOWNHOSTS@' -ErrorAction SilentlyContinue -ErrorVariable failures | Out-Null
'error=' + `$failures[0].FullyQualifiedErrorId
[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -in 'Renci.SshNet', 'Moltar.Engine' } | ForEach-Object { 'from=' + `$_.Location }
"@
        $scratch = New-TestScratch -Name r2r
        $key = Join-Path $scratch 'id_ed25519'
        & ssh-keygen -q -t ed25519 -N '' -f $key | Out-Null
        # The same module without its precompiled images: the portable IL must serve alone.
        $portable = Join-Path $scratch 'Moltar'
        Copy-Item -Recurse $ModuleDir $portable
        Remove-Item -Recurse -Force (Join-Path $portable 'deps/r2r-net10-linux-x64')
        try {
            $counts = foreach ($module in $ModulePath, (Join-Path $portable 'Moltar.psd1')) {
                $jitLog = Join-Path $scratch "jit-$([guid]::NewGuid()).txt"
                $env:DOTNET_JitDisasmSummary = '1'; $env:DOTNET_JitStdOutFile = $jitLog
                try { $output = Invoke-CleanPwsh $probe.Replace('@MODULE@', $module).Replace('@KEY@', $key).Replace('@KNOWNHOSTS@', (Join-Path $scratch 'known_hosts')) }
                finally { Remove-Item env:DOTNET_JitDisasmSummary, env:DOTNET_JitStdOutFile }
                $output | Should -Contain 'error=ConnectFailed,Moltar.Cmdlets.InvokeMoltarCommandCommand'
                $from = @($output | Where-Object { "$_" -like 'from=*' })
                $from.Count | Should -Be 2
                [pscustomobject]@{ Module = $module; From = $from; Jitted = @(Select-String -Path $jitLog -Pattern 'JIT compiled (Renci\.SshNet|Moltar\.Engine)\.' -ErrorAction SilentlyContinue).Count }
            }
            $counts[1].From | ForEach-Object { $_ | Should -BeLike "from=$portable/deps/*.dll" }
            $counts[1].From | Should -Not -BeLike '*r2r-net10-linux-x64*'
            $counts[1].Jitted | Should -BeGreaterThan 100 -Because 'IL is compiled as it runs'
            if ($precompiled) {
                $counts[0].From | ForEach-Object { $_ | Should -BeLike "from=$ModuleDir/deps/r2r-net10-linux-x64/*.dll" }
                $counts[0].Jitted | Should -BeLessThan 20 -Because 'the precompiled code is used, not compiled again'
            }
            else {
                $counts[0].From | Should -Not -BeLike '*r2r-net10-linux-x64*'
            }
        }
        finally { Remove-TestScratch $scratch }
    }

    It 'imports again with -Force and after Remove-Module, which takes the cmdlets with it' {
        $script = "Import-Module '$ModulePath'; Remove-Module Moltar; 'left=' + [bool](Get-Command Get-MoltarInstance -ErrorAction Ignore); " +
            "Import-Module '$ModulePath'; Import-Module '$ModulePath' -Force; (Get-MoltarContext).ThrottleLimit"
        Invoke-CleanPwsh $script | Should -Be @('left=False', 32)
        $LASTEXITCODE | Should -Be 0
    }

    It 'is a script root module (Moltar.psm1) that loads the binary cmdlets as its nested module and exports no function' {
        $manifest = Import-PowerShellDataFile $ModulePath
        $manifest.RootModule | Should -Be 'Moltar.psm1'
        $manifest.NestedModules | Should -Be @('Moltar.Cmdlets.dll')
        Join-Path $ModuleDir 'Moltar.psm1' | Should -Exist
        $shape = Invoke-CleanPwsh @"
`$module = Import-Module '$ModulePath' -PassThru
'type=' + `$module.ModuleType
'path=' + `$module.Path
'nested=' + ((`$module.NestedModules | ForEach-Object { '{0}:{1}' -f `$_.Name, `$_.ModuleType }) -join ',')
'functions=' + `$module.ExportedFunctions.Count
'source=' + (Get-Command Get-MoltarInstance).Source
"@
        $LASTEXITCODE | Should -Be 0
        $shape | Should -Contain 'type=Script'
        $shape | Should -Contain ('path=' + (Join-Path $ModuleDir 'Moltar.psm1'))
        $shape | Should -Contain 'nested=Moltar.Cmdlets:Binary'
        $shape | Should -Contain 'functions=0'
        $shape | Should -Contain 'source=Moltar'
    }
}

Describe 'Tab completion from Moltar.psm1' {
    BeforeAll {
        Import-Module $ModulePath -Force
        $script:Scratch = New-TestScratch -Name completion
        $script:SavedAws = @{ AWS_CONFIG_FILE = $env:AWS_CONFIG_FILE; AWS_SHARED_CREDENTIALS_FILE = $env:AWS_SHARED_CREDENTIALS_FILE; MOLTAR_PROFILE_LOCATION = $env:MOLTAR_PROFILE_LOCATION }
        $env:AWS_SHARED_CREDENTIALS_FILE = Join-Path $Scratch 'credentials'
        $env:AWS_CONFIG_FILE = Join-Path $Scratch 'config'
        Remove-Item env:MOLTAR_PROFILE_LOCATION -ErrorAction Ignore
        Set-Content $env:AWS_SHARED_CREDENTIALS_FILE "[default]`naws_access_key_id = x`n[acme-prod]`naws_access_key_id = y`n"
        Set-Content $env:AWS_CONFIG_FILE "[default]`nregion = eu-west-1`n[profile acme-staging]`nregion = eu-west-1`n[profile Acme Shop]`nregion = eu-west-1`n[sso-session acme]`nsso_region = eu-west-1`n[services local]`nec2 =`n"
        $script:Other = Join-Path $Scratch 'other-credentials'
        Set-Content $Other "[acme-other]`naws_access_key_id = z`n"

        function Get-Completion([string] $line) {
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText
        }
    }
    AfterAll {
        foreach ($name in $SavedAws.Keys) {
            if ($null -ne $SavedAws[$name]) { Set-Item "env:$name" $SavedAws[$name] } else { Remove-Item "env:$name" -ErrorAction Ignore }
        }
        Remove-TestScratch $Scratch
    }

    It 'completes -ProfileName from the shared credentials and config files, quoting names that need it' {
        Get-Completion 'Get-MoltarInstance -ProfileName ' | Should -Be @("'Acme Shop'", 'acme-prod', 'acme-staging', 'default')
        Get-Completion 'Get-MoltarInstance -ProfileName acme-s' | Should -Be @('acme-staging')
    }

    It 'reads only the -ProfileLocation file when one is given' {
        Get-Completion "Get-MoltarInstance -ProfileLocation '$Other' -ProfileName " | Should -Be @('acme-other')
    }

    It 'offers the completion on every cmdlet that takes -ProfileName, and completes nothing when the files are missing' {
        $commands = @(Get-Command -Module Moltar | Where-Object { $_.Parameters.ContainsKey('ProfileName') })
        $commands.Count | Should -BeGreaterThan 4
        foreach ($command in $commands) {
            Get-Completion "$($command.Name) -ProfileName acme-p" | Should -Be @('acme-prod') -Because $command.Name
        }
        # (PowerShell falls back to file names when a completer offers nothing: no profile name is what counts.)
        $line = "Get-MoltarInstance -ProfileLocation '$(Join-Path $Scratch 'absent')' -ProfileName "
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches | Where-Object ResultType -eq 'ParameterValue' | Should -BeNullOrEmpty
    }
}

Describe 'Get-MoltarContext' {
    BeforeAll {
        Import-Module $ModulePath -Force
        $script:Scratch = New-TestScratch -Name context
        Set-TestAwsEnvironment -Directory (Join-Path $Scratch 'aws')
        New-Item -ItemType Directory -Force -Path (Join-Path $Scratch 'repo/src/deep') | Out-Null
        Set-Content (Join-Path $Scratch 'repo/.moltar.psd1') "@{ Project = 'shop'; Region = 'eu-west-1'; User = 'deploy'; Packages = @('app-web') }"
        # User counts only from a trusted project file: these tests trust theirs (the record stays in the scratch folder).
        $script:SavedConfigHome = $env:XDG_CONFIG_HOME
        $env:XDG_CONFIG_HOME = Join-Path $Scratch 'config'
        Approve-MoltarProject -Path (Join-Path $Scratch 'repo') | Out-Null
    }
    AfterAll {
        Pop-Location -ErrorAction Ignore
        Remove-TestScratch $Scratch
        Remove-Item env:MOLTAR_USER -ErrorAction Ignore
        if ($SavedConfigHome) { $env:XDG_CONFIG_HOME = $SavedConfigHome } else { Remove-Item env:XDG_CONFIG_HOME -ErrorAction Ignore }
    }

    It 'finds the project file from a subdirectory and says where each value came from' {
        Push-Location (Join-Path $Scratch 'repo/src/deep')
        try { $context = Get-MoltarContext } finally { Pop-Location }
        $context.Project | Should -Be 'shop'
        $context.Packages | Should -Be @('app-web')
        $context.ProjectFile | Should -Be (Join-Path $Scratch 'repo/.moltar.psd1')
        ($context.Settings | Where-Object Name -EQ 'User').Source | Should -BeLike 'ProjectFile*'
    }

    It 'takes parameter over environment over project file' {
        Push-Location (Join-Path $Scratch 'repo')
        try {
            $env:MOLTAR_USER = 'env-user'
            (Get-MoltarContext).User | Should -Be 'env-user'
            (Get-MoltarContext -Project other).Project | Should -Be 'other'
            (Get-MoltarContext).Region | Should -Be 'eu-west-1'
        }
        finally { Pop-Location; Remove-Item env:MOLTAR_USER }
    }

    # Issue 21: the fan-out's limit is resolved once, in the context, so -Verbose's context line tells the truth about
    # it; -WhatIf on a host name contacts nothing.
    It 'says where <Name>''s -ThrottleLimit came from in -Verbose''s context line, and that is the limit used' -TestCases @(
        @{ Name = 'Invoke-MoltarCommand'; Call = { param($extra) 'moltar-21.invalid' | Invoke-MoltarCommand 'true' -SshConfigPath none -WhatIf -Verbose @extra 4>&1 } }
        @{ Name = 'Copy-MoltarFile'; Call = { param($extra) 'moltar-21.invalid' | Copy-MoltarFile -Path (Join-Path $script:Scratch 'moltar-21.txt') -Destination 'moltar-21/' -SshConfigPath none -WhatIf -Verbose @extra 4>&1 } }
        @{ Name = 'Invoke-MoltarDeploy'; Call = { param($extra) 'moltar-21.invalid' | Invoke-MoltarDeploy -Package app-web -Force -SshConfigPath none -WhatIf -Verbose @extra 4>&1 3>$null } }
    ) {
        function Get-ThrottleLine([hashtable] $Extra) {
            $context = @(& $Call $Extra | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -like 'Context: *' })
            $context.Count | Should -Be 1
            ($context[0].Message -split '; ' | Where-Object { $_ -like 'ThrottleLimit=*' }) -join '|'
        }
        Set-Content (Join-Path $Scratch 'moltar-21.txt') 'copied nowhere (-WhatIf)'
        Push-Location $Scratch
        try {
            Get-ThrottleLine @{ ThrottleLimit = 3 } | Should -BeExactly 'ThrottleLimit=3 from Parameter'
            Get-ThrottleLine @{} | Should -BeExactly 'ThrottleLimit=32 from Default'
            $env:MOLTAR_THROTTLE_LIMIT = '7'
            Get-ThrottleLine @{} | Should -BeExactly 'ThrottleLimit=7 from Environment MOLTAR_THROTTLE_LIMIT'
            Get-ThrottleLine @{ ThrottleLimit = 3 } | Should -BeExactly 'ThrottleLimit=3 from Parameter'
            if ($Name -eq 'Invoke-MoltarCommand') {
                Get-ThrottleLine @{ Series = $true } | Should -BeExactly 'ThrottleLimit=1 from Parameter' -Because '-Series is one host at a time'
            }
        }
        finally { Pop-Location; Remove-Item env:MOLTAR_THROTTLE_LIMIT -ErrorAction Ignore }
    }

    It 'reports a broken project file as one clear error with a stable id' {
        $broken = Join-Path $Scratch 'broken'
        New-Item -ItemType Directory -Force -Path $broken | Out-Null
        Set-Content (Join-Path $broken '.moltar.psd1') "@{ Projekt = 'typo' }"
        Push-Location $broken
        try {
            { Get-MoltarContext -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidProjectSetting,Moltar.Cmdlets.GetMoltarContextCommand' -ExpectedMessage "*'Projekt' is not a project file setting*"
        }
        finally { Pop-Location }
    }
    # Issue 21: one reading of a piped object's tags (as discovery reads an instance's: the project's TagNames, an SDK
    # Tag list or a hashtable) and one Origin rule. Invoke-MoltarDeploy refuses untagged piped instances before it connects.
    Context 'Piped instances' {
        BeforeAll {
            New-Item -ItemType Directory -Force -Path (Join-Path $Scratch 'tagged') | Out-Null
            Set-Content (Join-Path $Scratch 'tagged/.moltar.psd1') "@{ Project = 'shop'; TagNames = @{ Name = 'Host'; Packages = 'Debs' } }"
        }

        It 'reads Name and Packages from the tags the project renamed, in an SDK-shaped Tags list and in a hashtable' {
            $sdk = [pscustomobject]@{
                InstanceId = 'i-0123456789abcdef0'; PrivateIpAddress = '10.21.0.7'
                Tags = @([pscustomobject]@{ Key = 'Host'; Value = 'web-7' }, [pscustomobject]@{ Key = 'Debs'; Value = '|app-db|' }, [pscustomobject]@{ Key = 'Name'; Value = 'not-this' })
            }
            $hashed = [pscustomobject]@{ InstanceId = 'i-0123456789abcdef1'; PrivateIpAddress = '10.21.0.8'; Tags = @{ host = 'web-8'; debs = '|app-web|app-db|' } }
            Push-Location (Join-Path $Scratch 'tagged')
            try {
                $thrown = $null
                try { $sdk, $hashed | Invoke-MoltarDeploy -Package app-web -SshConfigPath none -WhatIf -ErrorAction Stop }
                catch { $thrown = $_ }
            }
            finally { Pop-Location }
            $thrown | Should -Not -BeNullOrEmpty
            $thrown.FullyQualifiedErrorId | Should -BeLike 'PackageNotTagged,*'
            $thrown.Exception.Message | Should -BeLike "*web-7 (10.21.0.7)'s Debs tag (|app-db|) lacks app-web*"
            $thrown.Exception.Message | Should -Not -BeLike '*web-8*' -Because 'the hashtable''s debs tag lists app-web (a hashtable matches keys in any case)'
        }

        It 'names the object as piped, whole, in a host''s error record' {
            # Port 1 on a loopback address: refused at once (no sshd is started, nothing is reached).
            $piped = [pscustomobject]@{ InstanceId = 'i-0123456789abcdef2'; PrivateIpAddress = '127.0.21.9'; Tags = @([pscustomobject]@{ Key = 'Host'; Value = 'web-9' }) }
            Push-Location (Join-Path $Scratch 'tagged')
            try {
                $result = $piped | Invoke-MoltarCommand 'true' -Port 1 -SshConfigPath none -KnownHostsPath (Join-Path $Scratch 'known_hosts') -Quiet -ErrorVariable failures -ErrorAction SilentlyContinue
            }
            finally { Pop-Location }
            $result.Succeeded | Should -BeFalse
            $result.Name | Should -Be 'web-9'
            $failures.Count | Should -Be 1
            # A PSCustomObject is whole only as the PSObject piped (its base object has no properties).
            $failures[0].TargetObject.InstanceId | Should -Be 'i-0123456789abcdef2'
            $failures[0].TargetObject.Tags.Value | Should -Be 'web-9'
        }
    }
}

Describe 'A broken installation' {
    It 'says the deps folder is missing instead of crashing' {
        $copy = Join-Path (New-TestScratch -Name nodeps) 'Moltar'
        Copy-Item -Recurse (Split-Path (Get-TestModulePath)) $copy
        Remove-Item -Recurse (Join-Path $copy 'deps')
        try {
            $output = Invoke-CleanPwsh "try { Import-Module '$(Join-Path $copy 'Moltar.psd1')' -ErrorAction Stop; 'imported' } catch { 'error: ' + `$_.Exception.Message }"
            $LASTEXITCODE | Should -Be 0
            "$output" | Should -Match 'error: Moltar is incomplete: .*deps must hold Moltar.Engine.dll'
        }
        finally { Remove-TestScratch (Split-Path $copy) }
    }
}

Describe 'Views' {
    BeforeAll { Import-Module (Get-TestModulePath) -Force }

    It 'has a table and a list view for <_>' -ForEach @('Moltar.MoltarInstance', 'Moltar.MoltarCommandResult', 'Moltar.MoltarCopyResult', 'Moltar.MoltarDeployResult') {
        $controls = (Get-FormatData -TypeName $_).FormatViewDefinition.Control | ForEach-Object { $_.GetType().Name }
        $controls | Should -Contain 'TableControl'
        $controls | Should -Contain 'ListControl'
    }

    It 'shows a command result in the table by name (else id), status, seconds and its first non-blank line' {
        $ok = [Moltar.MoltarCommandResult]@{ InstanceId = 'i-0aaa'; Name = 'web-1'; Address = '10.0.0.1'; ExitCode = 0; Succeeded = $true
            Output = "`n  `r`nfirst line`r`nsecond`n"; Duration = [timespan]::FromMilliseconds(1234) }
        $failed = [Moltar.MoltarCommandResult]@{ InstanceId = 'i-0bbb'; Address = '10.0.0.2'; ExitCode = 3; ErrorId = 'CommandFailed'
            Output = 'not shown'; Error = "`nboom`n"; Duration = [timespan]::FromSeconds(2) }
        $silent = [Moltar.MoltarCommandResult]@{ InstanceId = 'i-0ccc'; Name = 'web-3'; Succeeded = $true; Output = "  `n" }
        $ok.Summary | Should -BeExactly 'first line'
        $failed.Summary | Should -BeExactly 'boom'
        $silent.Summary | Should -BeExactly ''
        $failed.DisplayName | Should -Be 'i-0bbb'
        ([Moltar.MoltarCommandResult]@{ InstanceId = 'i-0ddd'; Name = "web`e]0;x`a-4" }).DisplayName | Should -BeExactly 'web?]0;x?-4'
        ([Moltar.MoltarInstance]@{ InstanceId = 'i-0ddd'; Name = "web`e[2J" }).ToString() | Should -BeExactly 'web?[2J'
        $failed.Status | Should -Be 'CommandFailed'
        $lines = ($ok, $failed | Format-Table | Out-String -Width 200) -split "`n" | Where-Object { $_.Trim() }
        $lines[0] | Should -Match '^Name\s+Address\s+ExitCode\s+Status\s+Seconds\s+Output'
        $lines[2] | Should -Match '^web-1\s+10\.0\.0\.1\s+0\s+ok\s+1\.23\s+first line\s*$'
        $lines[3] | Should -Match '^i-0bbb\s+10\.0\.0\.2\s+3\s+CommandFailed\s+2\.00\s+boom\s*$'
    }

    It 'lists an instance with its packages and tags in one line each' {
        $tags = [System.Collections.Generic.Dictionary[string, string]]::new()
        $tags['Name'] = 'web-1'; $tags['Cluster'] = 'web'
        $instance = [Moltar.MoltarInstance]@{ InstanceId = 'i-0123456789abcdef0'; Name = 'web-1'; Packages = @('a', 'b'); Tags = $tags }
        $text = $instance | Format-List | Out-String
        $text | Should -Match 'Packages\s+: a, b'
        $text | Should -Match 'Tags\s+: Cluster=web, Name=web-1'
    }
}
