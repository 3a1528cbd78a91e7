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
        function Invoke-OnHost($Target, [string] $Command) {
            $result = $Target | Invoke-MoltarCommand $Command -Quiet @Ssh
            $result.Succeeded | Should -BeTrue -Because "$Command`: $($result.Error)"
            $result.Output
        }
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

    Context '3. Tab completion of hostile tag values inserts one quoted word; 4. hook variables carry only safe tokens' {
        BeforeAll {
            $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
            $script:Fleet = @(Get-MoltarSandboxFleet $Sandbox)
            # Environment tags anyone in the account can set, each an attempt on whoever presses Tab.
            $script:Hostile = @(
                "x';New-Item '$Pwned-c1';'"                          # ends a single-quoted string
                "x$([char]0x2019);New-Item '$Pwned-c2';$([char]0x2018)"   # ’ and ‘ end single-quoted strings too
                "`$(New-Item '$Pwned-c3')"                            # a subexpression, were it bare or double-quoted
                '-WhatIf'                                             # an option, were it bare
                "$([char]0x2013)Verbose"                              # – reads as - at the start of a parameter
                "two`nlines`tand a tab"                               # control characters (what EC2's XML can carry)
            )
            $extra = for ($i = 0; $i -lt $Hostile.Count; $i++) {
                @{ instanceId = 'i-0c1600000000000' + $i.ToString('00'); state = 'running'; privateIpAddress = "10.16.0.$($i + 1)"
                   tags = @{ Project = 'demo'; Environment = $Hostile[$i]; Cluster = 'web'; Name = "hostile-$i" } }
            }
            # A real host whose Name and Environment tags are shell code, for the hook variables.
            $script:HookHost = $Fleet | Where-Object { $_.tags.Name -eq $Hosts[1].Name }
            $HookHost.tags.Name = "web;touch $Pwned-name"
            $HookHost.tags.Environment = "prod`$(touch $Pwned-env)"
            Set-MoltarSandboxFleet $Sandbox -Instance (@($Fleet) + @($extra))
        }
        AfterAll {
            $HookHost.tags.Name = $Hosts[1].Name
            Set-MoltarSandboxFleet $Sandbox -Instance $Fleet
            Remove-Item env:MOLTAR_ENDPOINT_URL
        }

        It 'each completion is one quoted string that selects exactly its instance; list text and tooltip have no control characters' {
            # (-Cluster makes a listing of its own: completion keeps listings for a minute, and earlier tests listed 'demo'.)
            $line = 'Get-MoltarInstance -Project demo -Cluster web -Environment '
            $offered = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches
            foreach ($i in 0..($Hostile.Count - 1)) {
                $value = $Hostile[$i]
                $printable = $value -replace '[\p{Cc}]', '?'
                $match = @($offered | Where-Object ListItemText -EQ $printable)
                $match.Count | Should -Be 1 -Because "'$printable' is offered once"
                $match[0].ToolTip | Should -Be $printable
                $match[0].CompletionText | Should -Match '^''.*''$' -Because 'a hostile value is always quoted'
                # Accepting the completion and pressing Enter: the command runs as typed, nothing else.
                $found = @(Invoke-Expression ($line + $match[0].CompletionText))
                $found.InstanceId | Should -Be ('i-0c1600000000000' + $i.ToString('00')) -Because $match[0].CompletionText
            }
            Get-ChildItem "$Pwned-c*" -ErrorAction Ignore | Should -BeNullOrEmpty
            $offered.ListItemText -join '' | Should -Not -Match '[\p{Cc}]'
        }

        It 'FAILED_HOSTS and ENV never carry a hostile Name or Environment tag, even to a hook that evaluates them' {
            $project = New-Folder (Join-Path $Scratch 'hook-vars')
            Set-Content (Join-Path $project '.moltar-project') 'demo'
            $record = Join-Path $Scratch 'hook-vars.txt'
            # A careless hook: it evaluates the variables as shell code.
            New-Hook $project '.moltar-failed-deploy' "eval ""echo FAILED=`$FAILED_HOSTS ENV=`$ENV"" > '$record'" | Out-Null
            Push-Location $project
            try {
                Approve-MoltarProject | Out-Null
                $target = Get-MoltarInstance | Where-Object InstanceId -EQ $HookHost.instanceId
                $target | Invoke-MoltarDeploy -Package demo-app -Port 1 -Confirm:$false -Quiet @Ssh -ErrorAction SilentlyContinue 6>$null | Out-Null
            }
            finally { Pop-Location }
            Get-Content $record | Should -Be "FAILED=$($target.Address) ENV="
            "$Pwned-name" | Should -Not -Exist
            "$Pwned-env" | Should -Not -Exist
        }
    }

    Context '6. an upload does not follow a symbolic link out of its tree' {
        BeforeAll {
            $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
            $script:UploadTarget = Get-MoltarInstance -Project demo -Name $Hosts[0].Name
            # A cloned site whose dist/robots.txt leads to the user's AWS credentials.
            $script:Site = New-Folder (Join-Path $Scratch 'site')
            $secretFolder = New-Folder (Join-Path $Scratch 'fake-home/.aws')
            Set-Content (Join-Path $secretFolder 'credentials') 'aws_secret_access_key = upload-attack-secret'
            $script:Dist = New-Folder (Join-Path $Site 'dist')
            Set-Content (Join-Path $Dist 'index.html') '<h1>hi</h1>'
            New-Item -ItemType SymbolicLink -Path (Join-Path $Dist 'robots.txt') -Target '../../fake-home/.aws/credentials' | Out-Null
            $script:Remote = "/tmp/moltar16-upload-$PID"
        }
        AfterAll { Remove-Item env:MOLTAR_ENDPOINT_URL }

        It 'refuses the whole upload (SymlinkOutsideTree) and the host gets nothing; -FollowSymlink sends it' {
            { $UploadTarget | Copy-MoltarFile $Dist -Recurse -Destination "$Remote/" @Ssh } |
                Should -Throw -ErrorId 'SymlinkOutsideTree,Moltar.Cmdlets.CopyMoltarFileCommand' -ExpectedMessage "*robots.txt*outside*-FollowSymlink*"
            { $UploadTarget | Copy-MoltarFile "$Dist/*" -Destination "$Remote/" @Ssh } |
                Should -Throw -ErrorId 'SymlinkOutsideTree,Moltar.Cmdlets.CopyMoltarFileCommand'
            ($UploadTarget | Invoke-MoltarCommand "cat $Remote/dist/robots.txt $Remote/robots.txt; ls $Remote" -Quiet @Ssh -ErrorAction SilentlyContinue).Output |
                Should -Not -BeLike '*upload-attack-secret*'

            $copied = $UploadTarget | Copy-MoltarFile $Dist -Recurse -Destination "$Remote/" -FollowSymlink @Ssh
            @($copied | Where-Object Verified).Count | Should -Be 2
            ($UploadTarget | Invoke-MoltarCommand "cat $Remote/dist/robots.txt" -Quiet @Ssh).Output | Should -BeLike '*upload-attack-secret*'
        }
    }

    Context '7. temporary files are private until verified; downloads never keep group/world write bits' {
        BeforeAll {
            $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
            $script:CopyTarget = Get-MoltarInstance -Project demo -Name $Hosts[0].Name
        }
        AfterAll { Remove-Item env:MOLTAR_ENDPOINT_URL }

        It 'another user on the host cannot read an upload while it is written and verified' {
            $remote = "/tmp/moltar16-part-$PID"
            $big = Join-Path $Scratch 'big.bin'
            $stream = [IO.File]::Create($big); $stream.SetLength(400MB); $stream.Dispose()
            $runspace = [runspacefactory]::CreateRunspace(); $runspace.Open()
            $shell = [powershell]::Create(); $shell.Runspace = $runspace
            $null = $shell.AddScript({ param($Module, $Target, $Path, $Destination, $Ssh)
                Import-Module $Module; $Target | Copy-MoltarFile $Path -Destination $Destination @Ssh }).
                AddArgument($ModulePath).AddArgument($CopyTarget).AddArgument($big).AddArgument("$remote/").AddArgument($Ssh)
            $handle = $shell.BeginInvoke()
            try {
                # As soon as the temporary file has bytes: what are its modes, and can 'nobody' read it?
                $seen = $null
                $deadline = [DateTime]::UtcNow.AddMinutes(3)
                while (-not $seen -and -not $handle.IsCompleted -and [DateTime]::UtcNow -lt $deadline) {
                    $probe = "for f in $remote/.moltar-*; do [ -e `"`$f`" ] || continue; c=`$f; [ -d `"`$f`" ] && c=`$f/content; " +
                             "[ -s `"`$c`" ] && echo `"`$(stat -c %a `"`$f`") `$(stat -c %a `"`$c`") `$(sudo -n -u nobody head -c 1 `"`$c`" >/dev/null 2>&1 && echo readable || echo denied)`"; done; true"
                    $seen = Invoke-OnHost $CopyTarget $probe
                }
                $copied = $shell.EndInvoke($handle)
            }
            finally { $shell.Dispose(); $runspace.Dispose() }
            $seen | Should -Not -BeNullOrEmpty -Because 'the temporary file was seen while it filled'
            $seen.Trim() | Should -Be '700 600 denied'
            $copied.Verified | Should -BeTrue
            (Invoke-OnHost $CopyTarget "stat -c %a $remote/big.bin; ls -A $remote | wc -l; rm -rf $remote").Trim() -split '\s+' | Should -Be @('644', '1')
        }

        It 'a downloaded file loses the group/world write bits the host gave it' {
            Invoke-OnHost $CopyTarget "mkdir -p /tmp/moltar16-dl-$PID && echo hi > /tmp/moltar16-dl-$PID/open.txt && chmod 666 /tmp/moltar16-dl-$PID/open.txt" | Out-Null
            $local = New-Folder (Join-Path $Scratch 'downloads')
            $copied = $CopyTarget | Copy-MoltarFile -FromRemote "/tmp/moltar16-dl-$PID/open.txt" -Destination $local @Ssh
            $copied.Mode | Should -Be '644'
            (Get-Item $copied.Destination).UnixMode | Should -Be '-rw-r--r--'
            Invoke-OnHost $CopyTarget "rm -rf /tmp/moltar16-dl-$PID" | Out-Null
        }
    }

    Context '5. a Name tag never chooses where downloads land' {
        BeforeAll {
            $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
            $script:Fleet5 = @(Get-MoltarSandboxFleet $Sandbox)
            $script:Renamed = $Fleet5 | Where-Object { $_.tags.Name -eq $Hosts[0].Name }
        }
        AfterAll {
            $Renamed.tags.Name = $Hosts[0].Name
            Set-MoltarSandboxFleet $Sandbox -Instance $Fleet5
            Remove-Item env:MOLTAR_ENDPOINT_URL
        }

        It 'Name <Name> lands in folder <Folder>' -ForEach @(
            @{ Name = '.ssh'; Folder = '_ssh' }
            @{ Name = 'CON'; Folder = '_CON' }
            @{ Name = '..'; Folder = '_' }
        ) {
            $Renamed.tags.Name = $Name
            Set-MoltarSandboxFleet $Sandbox -Instance $Fleet5
            $target = Get-MoltarInstance -Project demo | Where-Object InstanceId -EQ $Renamed.instanceId
            $downloads = New-Folder (Join-Path $Scratch "dl-$Folder")
            $copied = $target | Copy-MoltarFile -FromRemote /etc/hostname -Destination $downloads @Ssh
            $copied.Destination | Should -Be (Join-Path $downloads "$Folder/hostname")
            @(Get-ChildItem -Force $downloads).Name | Should -Be @($Folder)
        }

        It '8. control characters in a Name or Environment tag show as ? in the instance, copy and deploy tables' {
            $Renamed.tags.Name = "evil`nname`tx"
            $environment = $Renamed.tags.Environment
            $Renamed.tags.Environment = "prod`nfake row"
            try {
                Set-MoltarSandboxFleet $Sandbox -Instance $Fleet5
                $target = Get-MoltarInstance -Project demo | Where-Object InstanceId -EQ $Renamed.instanceId
                $downloads = New-Folder (Join-Path $Scratch 'dl-control')
                $copied = $target | Copy-MoltarFile -FromRemote /etc/hostname -Destination $downloads @Ssh
                $deployed = $target | Invoke-MoltarDeploy -Package demo-app -Port 1 -Confirm:$false -Quiet @Ssh -ErrorAction SilentlyContinue -WarningAction SilentlyContinue 6>$null
                foreach ($table in ($target | Format-Table | Out-String -Width 300), ($copied | Format-Table | Out-String -Width 300),
                                   ($deployed | Format-Table | Out-String -Width 300)) {
                    $table | Should -Match ([regex]::Escape('evil?name?x'))
                    $table | Should -Not -Match "evil`n|`t|`r"
                }
                ($target | Format-Table | Out-String -Width 300) | Should -Match ([regex]::Escape('prod?fake'))
                "$copied" | Should -BeLike 'evil?name?x: *'
            }
            finally { $Renamed.tags.Environment = $environment }
        }

        It '8. control characters show as ? in the list views and in errors and warnings that quote a remote file name' {
            # Tag values travel in EC2's XML, which cannot carry ESC: a C1 CSI (U+009B) and a right-to-left override can.
            $esc = [char]27
            $Renamed.tags.Name = "evil`u{9b}31mname"
            $environment = $Renamed.tags.Environment
            $Renamed.tags.Environment = "prod`u{202e}gnp.exe"
            $remote = "/tmp/moltar16-esc-$PID"
            try {
                Set-MoltarSandboxFleet $Sandbox -Instance $Fleet5
                $target = Get-MoltarInstance -Project demo | Where-Object InstanceId -EQ $Renamed.instanceId
                # A host whose file names carry escape sequences: one file, one folder.
                $made = $target | Invoke-MoltarCommand ("mkdir -p $remote/d`$(printf '\033')[2Jir && printf 'a\033[2Jb\n' > $remote/x`$(printf '\033')[2Jy.txt && cat $remote/x*") -Quiet @Ssh
                $made.Succeeded | Should -BeTrue -Because $made.Error
                $downloads = New-Folder (Join-Path $Scratch 'dl-escape')
                $copied = $target | Copy-MoltarFile -FromRemote "$remote/*" -Destination $downloads @Ssh -WarningVariable warnings -WarningAction SilentlyContinue
                $copied | Should -HaveCount 1
                $null = $target | Copy-MoltarFile -FromRemote "$remote/*" -Destination $downloads @Ssh -ErrorVariable failures -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
                $deployed = $target | Invoke-MoltarDeploy -Package demo-app -Port 1 -Confirm:$false -Quiet @Ssh -ErrorAction SilentlyContinue -WarningAction SilentlyContinue 6>$null

                $lists = foreach ($item in $target, $made, $copied, $deployed) { $item | Format-List | Out-String -Width 300 }
                foreach ($list in $lists) {
                    $list | Should -Match ([regex]::Escape('evil?31mname'))
                    $list | Should -Not -Match "$esc|`u{9b}|`u{202e}"
                }
                $lists[0] | Should -Match ([regex]::Escape('prod?gnp.exe'))
                $lists[1] | Should -Match ([regex]::Escape('a?[2Jb'))
                $lists[2] | Should -Match ([regex]::Escape('x?[2Jy.txt'))
                $target.Name | Should -Be "evil`u{9b}31mname" -Because 'the property stays the raw tag value'

                "$warnings" | Should -Match ([regex]::Escape('d?[2Jir'))
                $failures | Should -HaveCount 1
                $failures[0].FullyQualifiedErrorId | Should -Be 'LocalFileExists,Moltar.Cmdlets.CopyMoltarFileCommand'
                "$($failures[0])" | Should -Match ([regex]::Escape('x?[2Jy.txt'))
                foreach ($message in @($warnings) + @($failures)) { "$message" | Should -Not -Match $esc }
            }
            finally {
                $Renamed.tags.Environment = $environment
                $Renamed.tags.Name = $Hosts[0].Name
                Set-MoltarSandboxFleet $Sandbox -Instance $Fleet5
                $null = $target | Invoke-MoltarCommand "rm -rf $remote" -Quiet @Ssh
            }
        }

        It 'a symbolic link planted where the host folder goes is not written through' {
            $Renamed.tags.Name = 'web-victim'
            Set-MoltarSandboxFleet $Sandbox -Instance $Fleet5
            $target = Get-MoltarInstance -Project demo | Where-Object InstanceId -EQ $Renamed.instanceId
            $downloads = New-Folder (Join-Path $Scratch 'dl-shared')
            $elsewhere = New-Folder (Join-Path $Scratch 'dl-elsewhere')
            New-Item -ItemType SymbolicLink -Path (Join-Path $downloads 'web-victim') -Target $elsewhere | Out-Null
            $copied = $target | Copy-MoltarFile -FromRemote /etc/hostname -Destination $downloads @Ssh -ErrorVariable failures -ErrorAction SilentlyContinue
            $copied | Should -BeNullOrEmpty
            $failures[0].FullyQualifiedErrorId | Should -Be 'PathOutsideDestination,Moltar.Cmdlets.CopyMoltarFileCommand'
            "$($failures[0])" | Should -BeLike '*web-victim*is a symbolic link*'
            Get-ChildItem -Force $elsewhere | Should -BeNullOrEmpty
        }
    }

    Context '9. a host flooding a deploy step: its output is bounded and never waits for the pipeline thread' {
        BeforeAll {
            $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
            $script:Flooder = Get-MoltarInstance -Project demo -Name $Hosts[1].Name
            # The host's own dpkg-query (in its own root filesystem) prints 400,000 lines (3.2 MB) at once, then fails:
            # the deploy's first step. The pipeline thread cannot write 400,000 lines as fast as they arrive.
            Invoke-OnHost $Flooder ("printf '#!/bin/sh\nyes xxxxxxx | head -n 400000\nexit 2\n' | sudo -n tee /usr/local/bin/dpkg-query >/dev/null" +
                              " && sudo -n chmod 755 /usr/local/bin/dpkg-query")
            $script:Flooded = $Flooder | Invoke-MoltarDeploy -Package demo-app -Confirm:$false @Ssh -WarningVariable floodWarnings `
                -WarningAction SilentlyContinue -ErrorAction SilentlyContinue 6>$null
            $script:FloodWarnings = @($floodWarnings | ForEach-Object { "$_" })
        }
        AfterAll {
            Invoke-OnHost $Flooder 'sudo -n rm -f /usr/local/bin/dpkg-query'
            Remove-Item env:MOLTAR_ENDPOINT_URL
        }

        It 'the result keeps the first MiB of the step''s output, marks where it was cut, and a warning says so' {
            $Flooded.ErrorId | Should -Be 'DeployFailed'
            $Flooded.Truncated | Should -BeTrue
            $Flooded.Output | Should -Match ([regex]::Escape('[Moltar: this stream had 3200000 bytes; the first 1048576 are kept above]'))
            $Flooded.Output.Length | Should -BeLessThan 1.1MB
            @($FloodWarnings -match 'kept the first 1048576 bytes of a step''s output') | Should -HaveCount 1
        }

        It 'live lines the pipeline thread could not keep up with are skipped and counted, not waited for' {
            # A worker that waited for the pipeline thread would show every line and never say this.
            @($FloodWarnings -match '\d+ line\(s\) of output were not shown live') | Should -HaveCount 1
        }
    }

    Context '11. copies do not rely on the login shell''s quoting (a host user whose shell is fish)' -Skip:$NotRoot {
        BeforeAll {
            $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
            $script:FishHost = Get-MoltarInstance -Project demo -Name $Hosts[1].Name
            # In the host's own root filesystem: its user's login shell becomes fish, where '\\' inside single quotes
            # is one backslash (sh keeps both), so a single-quoted path names another file there.
            $script:LoginShell = (Invoke-OnHost $FishHost 'getent passwd ubuntu | cut -d: -f7').Trim()
            Invoke-OnHost $FishHost 'sudo -n usermod -s /usr/bin/fish ubuntu' | Out-Null
            # sshd reads the login shell when the user logs in: a kept connection still runs the old one (as with
            # OpenSSH's ControlMaster), so the next command logs in again.
            $FishHost | Disconnect-MoltarInstance
            $script:FishRemote = "/tmp/moltar16-fish-$PID"
        }
        AfterAll {
            if ($LoginShell) {
                Invoke-OnHost $FishHost "sudo -n usermod -s $LoginShell ubuntu; rm -rf $FishRemote" | Out-Null
                $FishHost | Disconnect-MoltarInstance
            }
            Remove-Item env:MOLTAR_ENDPOINT_URL
        }

        It 'uploads a tree whose names hold backslashes and quotes into new folders, each file verified by the host''s sha256sum' {
            (Invoke-OnHost $FishHost 'echo $version').Trim() | Should -Match '^\d+\.\d+' -Because 'the host user''s commands now run in fish'
            # .NET's own file API: PowerShell's path cmdlets read '\' as a separator, even on Linux.
            $tree = New-Folder (Join-Path $Scratch 'fish-tree')
            $deep = [IO.Directory]::CreateDirectory([IO.Path]::Combine($tree, 'back\\slash')).FullName
            $quoted = [IO.Directory]::CreateDirectory([IO.Path]::Combine($tree, "it's here")).FullName
            [IO.File]::WriteAllText([IO.Path]::Combine($deep, 'f\\1.txt'), 'one')
            [IO.File]::WriteAllText([IO.Path]::Combine($quoted, 'two.txt'), 'two')
            $copied = @($FishHost | Copy-MoltarFile $tree -Destination "$FishRemote/new/" -Recurse @Ssh)
            $copied | Should -HaveCount 2
            $copied.Verified | Should -Be @($true, $true)
            $copied.VerificationNote | Should -Be @('SHA-256 and size match (sha256sum on the host).', 'SHA-256 and size match (sha256sum on the host).')
            ($copied.Destination | Sort-Object) | Should -Be @("$FishRemote/new/fish-tree/back\\slash/f\\1.txt", "$FishRemote/new/fish-tree/it's here/two.txt")
            # Verified means the host hashed exactly these paths: the folders were made with these names, not fish's reading.
            (Invoke-OnHost $FishHost "ls $FishRemote/new/fish-tree").Trim() -split "`n" | Should -Be @('back\\slash', "it's here")
        }
    }
}
