# The attacks of SECURITY.md, each performed against the built module and the sandbox (a real EC2-compatible endpoint
# and real sshd hosts): a cloned repository's project file and hooks, a folder owned by another user, hostile tag
# values, symlink trees. Every test fails when the defence it names is taken out.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
    $script:NotRoot = -not $IsLinux -or (& id -u) -ne '0'
}

Describe 'Trust boundaries' -Skip:([bool] $SkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        Import-Module $ModulePath -Force
        $script:TestHome = Enter-TestHome -Name security
        $script:Scratch = $TestHome.Scratch
        # The trust file of this test file: under the scratch HOME (~/.config/moltar), never the developer's.
        $script:SavedConfigHome = $env:XDG_CONFIG_HOME
        Remove-Item env:XDG_CONFIG_HOME -ErrorAction Ignore

        $script:Sandbox = Start-TestSandbox -Hosts 2
        $script:Hosts = @($Sandbox.Hosts | Sort-Object Name)
        $script:Ssh = @{ KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
        $script:Pwned = Join-Path $Scratch 'pwned'

        function New-Folder([string] $Path) { New-Item -ItemType Directory -Force -Path $Path | Select-Object -ExpandProperty FullName }
        function New-Hook([string] $Folder, [string] $Name, [string] $Body) {
            $path = Join-Path $Folder $Name
            [IO.File]::WriteAllText($path, "#!/bin/sh`n$Body`n")
            [IO.File]::SetUnixFileMode($path, [IO.UnixFileMode]0x1ED)
            $path
        }
        function Get-DescribeCount { @(Get-MoltarSandboxRequest $Sandbox | Where-Object action -EQ 'DescribeInstances').Count }
    }
    AfterAll {
        Pop-Location -ErrorAction Ignore
        Stop-TestSandbox $Sandbox
        if ($SavedConfigHome) { $env:XDG_CONFIG_HOME = $SavedConfigHome }
        Exit-TestHome $TestHome
    }

    Context '1. a project file decides no endpoint, key, user or host trust until the user trusts it' {
        BeforeAll {
            # A cloned repository whose project file points Moltar at an endpoint of its author's choosing.
            $script:Clone = New-Folder (Join-Path $Scratch 'clone')
            $script:CloneFile = Join-Path $Clone '.moltar.psd1'
            Set-Content $CloneFile "@{ Project = 'demo'; EndpointUrl = '$($Sandbox.Endpoint)'; User = 'root' }"
            Push-Location $Clone
        }
        AfterAll { Pop-Location }

        It 'sends no request to an untrusted EndpointUrl (listing and Tab completion); one warning names the file and the settings' {
            Clear-MoltarSandboxRequest $Sandbox
            # Without the project's endpoint the call goes to AWS's own, which the test machine cannot reach: it fails.
            { Get-MoltarInstance -WarningVariable script:warnings -WarningAction SilentlyContinue } | Should -Throw -ErrorId 'ApiUnreachable,*'
            $completion = TabExpansion2 -inputScript 'Get-MoltarInstance -Environment ' -cursorColumn 'Get-MoltarInstance -Environment '.Length
            Get-DescribeCount | Should -Be 0
            $completion.CompletionMatches.Count | Should -Be 0
            $script:warnings.Count | Should -Be 1
            "$script:warnings" | Should -BeLike "*$CloneFile is not trusted: its EndpointUrl, User settings are ignored*Approve-MoltarProject*"
            $context = Get-MoltarContext -WarningAction SilentlyContinue
            $context.ProjectTrust | Should -Be 'NotTrusted'
            $context.IgnoredProjectSettings | Should -Be @('EndpointUrl', 'User')
            $context.EndpointUrl | Should -BeNullOrEmpty
        }

        It 'honours the file once Approve-MoltarProject trusted it, and no longer once it changed' {
            $record = Approve-MoltarProject
            $record.Directory | Should -Be $Clone
            $record.TrustedSettings | Should -Be @('EndpointUrl', 'User')
            $record.TrustFile | Should -Be (Join-Path $env:HOME '.config/moltar/trusted-projects')
            (Get-Item $record.TrustFile).UnixMode | Should -Be '-rw-------'
            Clear-MoltarSandboxRequest $Sandbox
            (Get-MoltarContext).ProjectTrust | Should -Be 'Trusted'
            @(Get-MoltarInstance -WarningVariable warnings).Count | Should -Be $Hosts.Count
            $warnings.Count | Should -Be 0
            $completion = TabExpansion2 -inputScript 'Get-MoltarInstance -Environment ' -cursorColumn 'Get-MoltarInstance -Environment '.Length
            $completion.CompletionMatches.Count | Should -BeGreaterThan 0
            Get-DescribeCount | Should -BeGreaterThan 0

            # The author pushes a change: untrusted again until approved again.
            Add-Content $CloneFile '# changed upstream'
            Clear-MoltarSandboxRequest $Sandbox
            (Get-MoltarContext -WarningAction SilentlyContinue).ProjectTrust | Should -Be 'ChangedSinceTrusted'
            { Get-MoltarInstance -WarningAction SilentlyContinue } | Should -Throw -ErrorId 'ApiUnreachable,*'
            Get-DescribeCount | Should -Be 0
        }
    }

    Context '1. even trusted, a project file makes host-key checking stricter than ssh config, never looser' {
        BeforeAll {
            $script:Strict = New-Folder (Join-Path $Scratch 'strict')
            $script:StrictFile = Join-Path $Strict '.moltar.psd1'
            $script:EmptyKnownHosts = Join-Path $Scratch 'empty_known_hosts'
            [IO.File]::WriteAllText($EmptyKnownHosts, '')
            $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
            Push-Location $Strict
            function Set-Policies([string] $Project, [string] $SshConfig) {
                Set-Content $StrictFile "@{ Project = 'demo'; StrictHostKeyChecking = '$Project' }"
                Approve-MoltarProject | Out-Null
                $script:Config = Join-Path $Scratch "ssh_config_$SshConfig"
                Set-Content $Config "Host *`n  StrictHostKeyChecking $SshConfig`n  UserKnownHostsFile $EmptyKnownHosts`n  IdentityFile $($Sandbox.ClientKeyPath)`n  User $($Sandbox.User)`n"
            }
        }
        AfterAll { Pop-Location; Remove-Item env:MOLTAR_ENDPOINT_URL }

        It 'project No against ssh config yes: the host is refused (Invoke-MoltarCommand and Enter-MoltarInstance''s ssh)' {
            Set-Policies -Project 'No' -SshConfig 'yes'
            $target = Get-MoltarInstance -Name $Hosts[0].Name
            $result = $target | Invoke-MoltarCommand 'true' -SshConfigPath $Config -Quiet -ErrorAction SilentlyContinue
            $result.ErrorId | Should -Be 'HostKeyUnknown'

            $script = "Set-Location -LiteralPath '$Strict'; Import-Module '$ModulePath'; " +
                      "Get-MoltarInstance -Name '$($Hosts[0].Name)' | Enter-MoltarInstance -SshConfigPath '$Config' -- echo entered; 'EXIT=' + `$LASTEXITCODE"
            $output = @(Invoke-CleanPwsh $script 2>&1 | ForEach-Object { "$_" })
            $output | Should -Not -Contain 'entered'
            $output | Should -Contain 'EXIT=255'
            ($output -join "`n") | Should -BeLike '*-o StrictHostKeyChecking=yes*'
        }

        It 'project Yes against ssh config accept-new: the stricter Yes applies' {
            Set-Policies -Project 'Yes' -SshConfig 'accept-new'
            $target = Get-MoltarInstance -Name $Hosts[0].Name
            $result = $target | Invoke-MoltarCommand 'true' -SshConfigPath $Config -Quiet -ErrorAction SilentlyContinue
            $result.ErrorId | Should -Be 'HostKeyUnknown'
            (Get-Content $EmptyKnownHosts -Raw) | Should -BeNullOrEmpty
        }
    }

    Context '2. hooks run only from a trusted project folder the user owns' {
        BeforeAll {
            $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
            # Deploying to a port nobody listens on fails at once: the failed-deploy hook is the one that would run.
            $script:Target = Get-MoltarInstance -Project demo -Name $Hosts[0].Name
            function Invoke-FailingDeploy {
                $Target | Invoke-MoltarDeploy -Package demo-app -Port 1 -Confirm:$false -Quiet @Ssh -ErrorAction SilentlyContinue -WarningVariable script:HookWarnings -WarningAction SilentlyContinue 6>$null | Out-Null
            }
        }
        AfterAll { Remove-Item env:MOLTAR_ENDPOINT_URL }

        It 'a hook in a project folder owned by another user never runs: the search stops there' -Skip:$NotRoot {
            $user = "moltar16-$PID"
            & useradd --system --no-create-home --shell /usr/sbin/nologin $user
            $LASTEXITCODE | Should -Be 0
            try {
                $theirs = New-Folder (Join-Path $Scratch 'theirs')
                Set-Content (Join-Path $theirs '.moltar-project') 'demo'
                $hook = New-Hook $theirs '.moltar-failed-deploy' "touch '$Pwned-other-user'"
                $mine = New-Folder (Join-Path $theirs 'mine')
                & chown -R "${user}:" $theirs
                & chown root: $mine
                Push-Location $mine
                try {
                    Invoke-FailingDeploy
                    (Get-MoltarContext -WarningAction SilentlyContinue).ProjectFile | Should -BeNullOrEmpty
                }
                finally { Pop-Location }
                "$Pwned-other-user" | Should -Not -Exist
                "$HookWarnings" | Should -BeLike "*$hook*ignored: $theirs is not owned by you*"
            }
            finally {
                Remove-Item -Recurse -Force (Join-Path $Scratch 'theirs') -ErrorAction Ignore
                & userdel $user
            }
        }

        It 'a hook in a folder others can write (a /tmp of its own) never runs' {
            $shared = New-Folder (Join-Path $Scratch 'shared-tmp')
            [IO.File]::SetUnixFileMode($shared, [IO.UnixFileMode]0x3FF)   # 1777, as /tmp
            Set-Content (Join-Path $shared '.moltar-project') 'demo'
            New-Hook $shared '.moltar-failed-deploy' "touch '$Pwned-shared'" | Out-Null
            $anything = New-Folder (Join-Path $shared 'anything')
            Push-Location $anything
            try { Invoke-FailingDeploy } finally { Pop-Location }
            "$Pwned-shared" | Should -Not -Exist
            "$HookWarnings" | Should -BeLike "*ignored: $shared is writable by others*"
        }

        It 'a hook in the user''s own but untrusted project does not run; -WhatIf names it; trusted, it runs' {
            $own = New-Folder (Join-Path $Scratch 'own')
            Set-Content (Join-Path $own '.moltar-project') 'demo'
            $hook = New-Hook $own '.moltar-failed-deploy' "touch '$Pwned-own'"
            Push-Location $own
            try {
                Invoke-FailingDeploy
                "$Pwned-own" | Should -Not -Exist
                "$HookWarnings" | Should -BeLike "*The deploy hook $hook was not run: the project $own is not trusted*"

                $whatIf = Invoke-CleanPwsh ("Set-Location -LiteralPath '$own'; Import-Module '$ModulePath'; `$env:MOLTAR_ENDPOINT_URL = '$($Sandbox.Endpoint)'; " +
                                            "Get-MoltarInstance -Name '$($Hosts[0].Name)' | Invoke-MoltarDeploy -Package demo-app -WhatIf -SshConfigPath none")
                ($whatIf -join "`n") | Should -BeLike "*The hook $hook will not run: the project $own is not trusted*"

                Approve-MoltarProject | Out-Null
                $whatIf = Invoke-CleanPwsh ("Set-Location -LiteralPath '$own'; Import-Module '$ModulePath'; `$env:MOLTAR_ENDPOINT_URL = '$($Sandbox.Endpoint)'; " +
                                            "Get-MoltarInstance -Name '$($Hosts[0].Name)' | Invoke-MoltarDeploy -Package demo-app -WhatIf -SshConfigPath none")
                ($whatIf -join "`n") | Should -BeLike "*Afterwards runs the hook $hook*"
                Invoke-FailingDeploy
                "$Pwned-own" | Should -Exist
            }
            finally { Pop-Location }
        }
    }
}
