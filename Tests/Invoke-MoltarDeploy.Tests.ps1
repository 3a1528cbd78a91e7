# Invoke-MoltarDeploy against 6 sandbox hosts with their own root filesystem and a test APT repository built here:
# real apt-get and dpkg run in each host; the machine itself is not changed.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:ModulePath = Get-TestModulePath
    Import-Module $ModulePath -Force
    $script:Id = ',Moltar.Cmdlets.InvokeMoltarDeployCommand'
    $script:Scratch = New-TestScratch -Name deploy
    New-Item -ItemType Directory -Force -Path $Scratch | Out-Null
    Set-TestAwsEnvironment -Directory (Join-Path $Scratch 'aws')
    Add-TestAwsProfile -Name 'shop' -Region 'us-east-1'

    $script:Repo = & (Join-Path $PSScriptRoot 'Sandbox/New-TestAptRepository.ps1') -Path (Join-Path $Scratch 'apt')
    $script:Sandbox = Start-TestSandbox -Hosts 6 -Options @{ AptRepository = $Repo; Project = 'shop'; Environments = 'production'; Clusters = 'web', 'jobs' }
    $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint

    # Every host runs the app and the worker; the last two (by name) are also tagged with the broken package.
    $fleet = @(Get-MoltarSandboxFleet $Sandbox | Sort-Object { $_.tags.Name })
    for ($i = 0; $i -lt $fleet.Count; $i++) {
        $fleet[$i].tags.Packages = if ($i -ge 4) { '|moltar-test-app|moltar-test-worker|moltar-test-broken|' } else { '|moltar-test-app|moltar-test-worker|' }
    }
    Set-MoltarSandboxFleet $Sandbox -Instance $fleet

    # SSH settings from the environment (as a scheduled task would have them); never the real ~/.ssh.
    $env:MOLTAR_KEY_FILE = $Sandbox.ClientKeyPath
    $env:MOLTAR_KNOWN_HOSTS = $Sandbox.KnownHostsPath
    $env:MOLTAR_STRICT_HOST_KEY_CHECKING = 'Yes'
    $script:SavedDefaults = $PSDefaultParameterValues.Clone()
    $PSDefaultParameterValues['Invoke-MoltarDeploy:SshConfigPath'] = 'none'
    $PSDefaultParameterValues['Invoke-MoltarCommand:SshConfigPath'] = 'none'
    # ConfirmImpact High asks before every batch; the tests run non-interactively, like a scheduled task with -Confirm:$false.
    $PSDefaultParameterValues['Invoke-MoltarDeploy:Confirm'] = $false

    # The app's repository: a project file and the original tool's hook files, which record their environment.
    $script:Project = Join-Path $Scratch 'shop-app'
    $script:HookOut = Join-Path $Scratch 'hook-out'
    New-Item -ItemType Directory -Force -Path $Project, $HookOut | Out-Null
    Set-Content (Join-Path $Project '.moltar.psd1') "@{ Project = 'shop' }"
    function New-Hook([string] $Name, [string] $Body) {
        $path = Join-Path $Project $Name
        [IO.File]::WriteAllText($path, "#!/bin/sh`n$Body`n")
        [IO.File]::SetUnixFileMode($path, [IO.UnixFileMode]0x1ED)
    }
    $record = 'printf "ENV=%s\nPACKAGES=%s\nVERSION=%s\nFAILED_HOSTS=%s\nNOT_STARTED_HOSTS=%s\nPWD=%s\n" "$ENV" "$PACKAGES" "$VERSION" "$FAILED_HOSTS" "$NOT_STARTED_HOSTS" "$(pwd)"'
    New-Hook '.moltar-after-deploy' "$record > '$HookOut/after.env'; echo after-deploy hook ran"
    New-Hook '.moltar-failed-deploy' "$record > '$HookOut/failed.env'"
    # Hooks run only from a project the user trusted: the test trusts its own (the record stays in the scratch folder).
    $script:SavedConfigHome = $env:XDG_CONFIG_HOME
    $env:XDG_CONFIG_HOME = Join-Path $Scratch 'config'
    Approve-MoltarProject -Path $Project | Out-Null
    function Read-HookEnv([string] $Which) { Read-TestHookRecord (Join-Path $HookOut "$Which.env") }
    function Clear-HookEnv { Remove-Item (Join-Path $HookOut '*.env') -ErrorAction Ignore }
    Push-Location $Project

    $script:Hosts = @(Get-MoltarInstance production)
    $script:Names = @($Hosts.Name)

    function Get-Dpkg([string] $Package) {
        # Name -> "version status" as dpkg on each host reports it ('' when dpkg does not know the package).
        $answers = @{}
        foreach ($result in $Hosts | Invoke-MoltarCommand "dpkg-query -W -f='`${Version} `${Status}' $Package 2>/dev/null; true" -Quiet) {
            $result.Succeeded | Should -BeTrue -Because $result.Error
            $answers[$result.Name] = $result.Output.Trim()
        }
        $answers
    }
    function Get-LoginCount {
        # sshd logs every accepted login; a call that touches no host leaves these counts alone.
        $total = 0
        foreach ($h in $Sandbox.Hosts) {
            $total += @(Select-String -LiteralPath (Join-Path $Sandbox.StateDir "hosts/$($h.Name)/sshd.log") -Pattern 'Accepted publickey' -SimpleMatch).Count
        }
        $total
    }
    function Invoke-OnHost([string] $Name, [string] $Command) {
        $result = $Hosts | Where-Object Name -EQ $Name | Invoke-MoltarCommand $Command -Quiet
        $result.Succeeded | Should -BeTrue -Because "$Command on $($Name): $($result.Error)"
        $result.Output
    }
}

AfterAll {
    Pop-Location -ErrorAction Ignore
    if ($script:SavedDefaults) {
        foreach ($key in @($PSDefaultParameterValues.Keys)) { if (-not $SavedDefaults.ContainsKey($key)) { $PSDefaultParameterValues.Remove($key) } }
    }
    Stop-TestSandbox $Sandbox
    if ($SavedConfigHome) { $env:XDG_CONFIG_HOME = $SavedConfigHome } else { Remove-Item env:XDG_CONFIG_HOME -ErrorAction Ignore }
    foreach ($name in 'MOLTAR_ENDPOINT_URL', 'MOLTAR_KEY_FILE', 'MOLTAR_KNOWN_HOSTS', 'MOLTAR_STRICT_HOST_KEY_CHECKING') { Remove-Item "env:$name" -ErrorAction Ignore }
    Remove-TestScratch $Scratch
}

Describe 'Invoke-MoltarDeploy' -Skip:([bool]$SkipReason) {
    Context 'input is checked before anything is contacted' {
        BeforeAll {
            Clear-MoltarSandboxRequest $Sandbox
            $script:LoginsBefore = Get-LoginCount
        }

        It 'refuses a malicious package name: <Package>' -ForEach @(
            @{ Package = 'x; rm -rf /' }
            @{ Package = '$(reboot)' }
            @{ Package = "app`nreboot" }
            @{ Package = 'App' }
        ) {
            { Invoke-MoltarDeploy production -Package 'moltar-test-app', $Package } | Should -Throw -ErrorId "InvalidPackageName$Id"
        }

        It 'refuses a malicious or malformed version: <Version>' -ForEach @(
            @{ Version = '1.0; reboot' }
            @{ Version = "1.0' && reboot '" }
            @{ Version = '`id`' }
            @{ Version = 'v1.0' }
            @{ Version = '1.0-' }
        ) {
            { Invoke-MoltarDeploy production -Package moltar-test-app -Version $Version } | Should -Throw -ErrorId "InvalidVersion$Id"
        }

        It 'says which parameter was wrong and what a valid value looks like' {
            $e = { Invoke-MoltarDeploy production -Package 'x; rm -rf /' } | Should -Throw -PassThru
            $e.Exception.Message | Should -BeLike "*'x; rm -rf /' from -Package is not a Debian package name: it contains ';'*Nothing was deployed*"
            $e.CategoryInfo.Category | Should -Be 'InvalidArgument'
            $e = { Invoke-MoltarDeploy production -Package moltar-test-app -Version '1.0;reboot' } | Should -Throw -PassThru
            $e.Exception.Message | Should -BeLike "*-Version '1.0;reboot' is not a Debian version*e.g. 1.4.2*"
        }

        It 'refuses a bad package name from the original .moltar-packages dotfile, naming the file' {
            $dir = Join-Path $Scratch 'bad-dotfiles'
            New-Item -ItemType Directory -Force -Path $dir | Out-Null
            Set-Content (Join-Path $dir '.moltar-project') 'shop'
            Set-Content (Join-Path $dir '.moltar-packages') "moltar-test-app`n`$(touch /tmp/pwned)"
            Push-Location $dir
            try {
                $e = { Invoke-MoltarDeploy production } | Should -Throw -ErrorId "InvalidPackageName$Id" -PassThru
                $e.Exception.Message | Should -BeLike "*from *.moltar-packages is not a Debian package name*"
            }
            finally { Pop-Location }
        }

        It 'needs a package: NoPackage when neither -Package nor the project names one' {
            { Invoke-MoltarDeploy production } | Should -Throw -ErrorId "NoPackage$Id"
        }

        It 'refuses a -BatchSize that is neither a count nor a percentage' {
            { Invoke-MoltarDeploy production -Package moltar-test-app -BatchSize 'half' } | Should -Throw -ErrorId "InvalidBatchSize$Id"
            { Invoke-MoltarDeploy production -Package moltar-test-app -BatchSize '0%' } | Should -Throw -ErrorId "InvalidBatchSize$Id"
        }

        It 'made none of these calls reach the EC2 endpoint or a host' {
            @(Get-MoltarSandboxRequest $Sandbox).Count | Should -Be 0
            Get-LoginCount | Should -Be $LoginsBefore
        }
    }

    It 'refuses piped instances whose Packages tag lacks the package, before connecting, unless -Force' {
        $logins = Get-LoginCount
        $e = { $Hosts[0] | Invoke-MoltarDeploy -Package moltar-test-broken } | Should -Throw -ErrorId "PackageNotTagged$Id" -PassThru
        $e.Exception.Message | Should -BeLike "*$($Names[0])*lacks moltar-test-broken*-Force*"
        { 'not-an-instance.example' | Invoke-MoltarDeploy -Package moltar-test-app } | Should -Throw -ErrorId "PackageNotTagged$Id"
        Get-LoginCount | Should -Be $logins
    }

    It '-WhatIf prints every host with the exact commands, per batch, and touches no host' {
        $logins = Get-LoginCount
        $command = "Import-Module '$ModulePath'; Set-Location '$Project'; " +
                   "Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.1.0 -BatchSize 50% -SshConfigPath none -WhatIf"
        $output = Invoke-CleanPwsh $command
        $LASTEXITCODE | Should -Be 0
        $text = $output -join "`n"
        Get-LoginCount | Should -Be $logins

        $text | Should -Match 'What if: Deploying moltar-test-app=1\.1\.0, batch 1 of 2, to 3 instance\(s\):'
        $text | Should -Match 'What if: Deploying moltar-test-app=1\.1\.0, batch 2 of 2, to 3 instance\(s\):'
        foreach ($h in $Hosts) {
            $text | Should -Match ([regex]::Escape("  $($h.Name) ($($h.Address)) as ubuntu:"))
        }
        $install = "sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=60 --allow-downgrades 'moltar-test-app=1.1.0'"
        @($output | Where-Object { $_.Trim() -eq $install }).Count | Should -Be 6
        @($output | Where-Object { $_.Trim() -eq 'sudo -n DEBIAN_FRONTEND=noninteractive apt-get update -q' }).Count | Should -Be 6
        @($output | Where-Object { $_.Trim() -eq "dpkg-query -W -f='`${Package}\t`${Version}\t`${Status}\n' 'moltar-test-app'" }).Count | Should -Be 12

        $dpkg = Get-Dpkg moltar-test-app
        foreach ($name in $Names) { $dpkg[$name] | Should -BeNullOrEmpty -Because "-WhatIf must not install on $name" }
    }

    It 'deploys 1.1.0 to all 6 hosts, dpkg on each says 1.1.0, and the after-deploy hook runs once' {
        Clear-HookEnv
        $seen = @{}
        $results = Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.1.0 -Quiet -InformationVariable info `
            -AfterDeploy { param($all) $seen.Results = $all.Count; $seen.Type = $all[0].GetType().FullName }
        $results.Count | Should -Be 6
        foreach ($r in $results) {
            $r | Should -BeOfType ([Moltar.MoltarDeployResult])
            $r.Succeeded | Should -BeTrue -Because $r.Error
            $r.Status | Should -Be 'Succeeded'
            $r.Batch | Should -Be 1
            $r.Packages | Should -Be @('moltar-test-app')
            $r.PreviousVersions.Count | Should -Be 0
            $r.InstalledVersions['moltar-test-app'] | Should -Be '1.1.0'
            $r.Output | Should -Match 'Setting up moltar-test-app \(1\.1\.0\)'
            $r.Error | Should -BeNullOrEmpty
        }
        ($results.Name | Sort-Object) | Should -Be ($Names | Sort-Object)
        $dpkg = Get-Dpkg moltar-test-app
        foreach ($name in $Names) { $dpkg[$name] | Should -Be '1.1.0 install ok installed' }

        $summary = @($info | Where-Object { $_.Tags -contains 'summary' })
        $summary.Count | Should -Be 1
        "$($summary[0].MessageData)" | Should -BeLike '*moltar-test-app=1.1.0 to production: 6 succeeded, 0 failed, 0 not started (1 batch,*'
        $hook = Read-HookEnv 'after'
        $hook.ENV | Should -Be 'production'
        $hook.PACKAGES | Should -Be 'moltar-test-app'
        $hook.VERSION | Should -Be '1.1.0'
        $hook.FAILED_HOSTS | Should -Be ''
        $hook.PWD | Should -Be $Project
        (Read-HookEnv 'failed') | Should -BeNullOrEmpty
        @($info | Where-Object { "$($_.MessageData)" -eq '.moltar-after-deploy: after-deploy hook ran' }).Count | Should -Be 1
        $seen.Results | Should -Be 6
        $seen.Type | Should -Be 'Moltar.MoltarDeployResult'
    }

    It 'a second deploy reuses the connections the first one kept: no host sees a new login' {
        $first = @(Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.1.0 -Quiet -ConnectionIdleSeconds 600)
        @($first | Where-Object { -not $_.Succeeded }) | Should -BeNullOrEmpty
        $logins = Get-LoginCount
        $second = @(Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.1.0 -Quiet -ConnectionIdleSeconds 600)
        $second.Count | Should -Be 6
        @($second | Where-Object { -not $_.Succeeded }) | Should -BeNullOrEmpty
        Get-LoginCount | Should -Be $logins -Because 'every step of the second deploy ran on a connection kept from the first'
        @(Get-MoltarConnection | Where-Object Address -In ($Hosts | ForEach-Object Address)).Count | Should -Be 6
        Disconnect-MoltarInstance
    }

    It 'rolls back to 1.0.0 with -Version, keeping a config file changed on the host, and cleans with -Clean' {
        $null = Invoke-OnHost $Names[0] 'echo "# changed on the host" | sudo tee -a /etc/moltar-test-app/app.conf'
        $results = Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.0.0 -Clean -Quiet
        foreach ($r in $results) {
            $r.Succeeded | Should -BeTrue -Because $r.Error
            $r.PreviousVersions['moltar-test-app'] | Should -Be '1.1.0'
            $r.InstalledVersions['moltar-test-app'] | Should -Be '1.0.0'
            $r.Output | Should -Match 'DOWNGRADED'
            $r.Output | Should -Match ([regex]::Escape('$ sudo -n DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -q'))
            $r.Output | Should -Match ([regex]::Escape('$ sudo -n DEBIAN_FRONTEND=noninteractive apt-get clean'))
        }
        $dpkg = Get-Dpkg moltar-test-app
        foreach ($name in $Names) { $dpkg[$name] | Should -Be '1.0.0 install ok installed' }
        $conf = Invoke-OnHost $Names[0] 'cat /etc/moltar-test-app/app.conf; cat /opt/moltar-test-app/VERSION'
        $conf | Should -Match '# changed on the host'
        $conf | Should -Match 'version = 1\.1\.0'   # the kept (older-shipped, locally changed) file, not 1.0.0's
        $conf | Should -Match '(?m)^1\.0\.0$'
    }

    It "deploys with no parameter but the environment from the original's dotfiles (.moltar-project, .moltar-packages)" {
        $legacy = Join-Path $Scratch 'legacy-app'
        New-Item -ItemType Directory -Force -Path $legacy | Out-Null
        Set-Content (Join-Path $legacy '.moltar-project') 'shop'
        Set-Content (Join-Path $legacy '.moltar-packages') "moltar-test-app`nmoltar-test-worker"
        Push-Location $legacy
        try { $results = Invoke-MoltarDeploy production 6>$null }
        finally { Pop-Location }

        $results.Count | Should -Be 6
        foreach ($r in $results) {
            $r.Succeeded | Should -BeTrue -Because $r.Error
            $r.Packages | Should -Be @('moltar-test-app', 'moltar-test-worker')
            $r.Version | Should -BeNullOrEmpty
            $r.PreviousVersions['moltar-test-app'] | Should -Be '1.0.0'
            $r.PreviousVersions.ContainsKey('moltar-test-worker') | Should -BeFalse
            # Not pinned: apt's candidate is what the host must end up with.
            $r.Output | Should -Match 'Candidate: 1\.1\.0'
            $r.InstalledVersions['moltar-test-app'] | Should -Be '1.1.0'
            $r.InstalledVersions['moltar-test-worker'] | Should -Be '1.1.0'
        }
        $app = Get-Dpkg moltar-test-app
        $worker = Get-Dpkg moltar-test-worker
        foreach ($name in $Names) {
            $app[$name] | Should -Be '1.1.0 install ok installed'
            $worker[$name] | Should -Be '1.1.0 install ok installed'
        }
    }

    It 'a package whose postinst fails triggers .moltar-failed-deploy with the right FAILED_HOSTS' {
        Clear-HookEnv
        $tagged = $Names[4, 5]   # only these carry moltar-test-broken in their Packages tag
        $failedSeen = @{}
        try {
            $results = Invoke-MoltarDeploy production -Package moltar-test-broken -Quiet -ErrorVariable errors -ErrorAction SilentlyContinue `
                -OnFailure { param($all) $failedSeen.Names = @($all | Where-Object { -not $_.Succeeded } | ForEach-Object Name) }
            $broken = Get-Dpkg moltar-test-broken
        }
        finally {
            foreach ($name in $tagged) { $null = Invoke-OnHost $name 'sudo dpkg --purge moltar-test-broken' }
        }

        $results.Count | Should -Be 2
        ($results.Name | Sort-Object) | Should -Be $tagged
        foreach ($r in $results) {
            $r.Succeeded | Should -BeFalse
            $r.Status | Should -Be 'Failed'
            $r.ErrorId | Should -Be 'DeployFailed'
            $r.Error | Should -BeLike '*apt-get install failed (exit 100)*'
            $r.Output | Should -Match 'postinst fails on purpose'
            $r.InstalledVersions.Count | Should -Be 0   # half-configured is not installed
        }
        $errors.Count | Should -Be 2
        foreach ($e in $errors) {
            $e.FullyQualifiedErrorId | Should -Be "DeployFailed$Id"
            $e.TargetObject | Should -BeOfType ([Moltar.MoltarInstance])
            $e.TargetObject.Name | Should -BeIn $tagged
        }
        $hook = Read-HookEnv 'failed'
        $hook | Should -Not -BeNullOrEmpty
        $hook.FAILED_HOSTS | Should -Be ($tagged -join ' ')
        $hook.ENV | Should -Be 'production'
        $hook.PACKAGES | Should -Be 'moltar-test-broken'
        $hook.VERSION | Should -Be ''
        (Read-HookEnv 'after') | Should -BeNullOrEmpty
        ($failedSeen.Names | Sort-Object) | Should -Be $tagged

        $broken[$tagged[0]] | Should -Be '1.0.0 install ok half-configured'
        $broken[$Names[0]] | Should -BeNullOrEmpty
    }

    It 'batches of 2 with -MaxFailures 0 stop after the first failing batch; hosts of that batch finish, later hosts are untouched' {
        # The third host gets a half-configured package (piped with -Force past its tag): apt then exits 100 there.
        $setup = $Hosts[2] | Invoke-MoltarDeploy -Package moltar-test-broken -Force -Quiet -WarningVariable warnings -ErrorAction SilentlyContinue
        try {
            $setup.ErrorId | Should -Be 'DeployFailed'
            "$warnings" | Should -BeLike "*$($Names[2])*lacks moltar-test-broken; deploying anyway (-Force)*"

            $results = Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.0.0 -BatchSize 2 -MaxFailures 0 -PauseSeconds 1 -Quiet `
                -ErrorVariable errors -ErrorAction SilentlyContinue -WarningVariable stopWarning -InformationVariable info
            $dpkg = Get-Dpkg moltar-test-app
        }
        finally { $null = Invoke-OnHost $Names[2] 'sudo dpkg --purge moltar-test-broken' }

        $byName = @{}; foreach ($r in $results) { $byName[$r.Name] = $r }
        $results.Count | Should -Be 6
        foreach ($i in 0, 1, 3) {
            $byName[$Names[$i]].Status | Should -Be 'Succeeded' -Because $byName[$Names[$i]].Error
        }
        $failed = $byName[$Names[2]]
        $failed.ErrorId | Should -Be 'DeployFailed'
        $failed.Error | Should -BeLike '*apt-get install failed (exit 100)*'
        $failed.Output | Should -Match 'postinst fails on purpose'
        $failed.Batch | Should -Be 2
        $byName[$Names[3]].Batch | Should -Be 2
        foreach ($i in 4, 5) {
            $byName[$Names[$i]].Status | Should -Be 'NotStarted'
            $byName[$Names[$i]].ErrorId | Should -Be 'NotStarted'
            $byName[$Names[$i]].Batch | Should -Be 3
            $byName[$Names[$i]].Output | Should -BeNullOrEmpty
        }
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -Be "DeployFailed$Id"
        $errors[0].TargetObject.Name | Should -Be $Names[2]
        "$stopWarning" | Should -BeLike '*more than -MaxFailures 0: batches 3 to 3 (2 hosts) are not started*'
        "$(@($info | Where-Object { $_.Tags -contains 'summary' })[0].MessageData)" | Should -BeLike '*3 succeeded, 1 failed, 2 not started (3 batches,*'

        foreach ($i in 0, 1, 3) { $dpkg[$Names[$i]] | Should -Be '1.0.0 install ok installed' }
        # apt unpacked the app on the failing host before dpkg choked on the half-configured package; the result says so.
        $dpkg[$Names[2]] | Should -Be "$($failed.InstalledVersions['moltar-test-app']) install ok installed"
        foreach ($i in 4, 5) { $dpkg[$Names[$i]] | Should -Be '1.1.0 install ok installed' -Because 'batch 3 never started' }
    }

    It 'VerifyFailed when apt-get succeeds but dpkg does not show the package installed' {
        # Something on the host (here an apt hook) removes the package right after apt installed it.
        $conf = '/etc/apt/apt.conf.d/99moltar-test-undo'
        $null = Invoke-OnHost $Names[5] "echo 'DPkg::Post-Invoke { ""dpkg --remove moltar-test-worker || true""; };' | sudo tee $conf"
        try {
            $result = $Hosts[5] | Invoke-MoltarDeploy -Package moltar-test-worker -Version 1.0.0 -Quiet -ErrorVariable errors -ErrorAction SilentlyContinue
        }
        finally { $null = Invoke-OnHost $Names[5] "sudo rm -f $conf" }
        $result.ErrorId | Should -Be 'VerifyFailed'
        $result.PreviousVersions['moltar-test-worker'] | Should -Be '1.1.0'
        $result.InstalledVersions.ContainsKey('moltar-test-worker') | Should -BeFalse
        $result.Error | Should -BeLike "*$($Names[5]): apt-get succeeded but dpkg says moltar-test-worker is not installed*expected 1.0.0*"
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -Be "VerifyFailed$Id"
    }

    It 'with -ErrorAction Stop a host that cannot be reached ends the call, after the other hosts, the summary and the failure hook' {
        Clear-HookEnv
        $down = $Names[1]
        Stop-MoltarSandboxHost $Sandbox -Name $down
        try {
            $caught = $null
            try {
                Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.1.0 -Quiet -ErrorAction Stop -OutVariable out -InformationVariable info | Out-Null
            }
            catch { $caught = $_ }
        }
        finally { $null = Start-MoltarSandboxHost $Sandbox -Name $down }
        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -Be "ConnectFailed$Id"
        $caught.Exception.Message | Should -BeLike "*$down*"
        $out.Count | Should -Be 6
        @($out | Where-Object Succeeded).Count | Should -Be 5
        ($out | Where-Object Name -EQ $down).ErrorId | Should -Be 'ConnectFailed'
        "$(@($info | Where-Object { $_.Tags -contains 'summary' })[0].MessageData)" | Should -BeLike '*5 succeeded, 1 failed, 0 not started*'
        (Read-HookEnv 'failed').FAILED_HOSTS | Should -Be $down
    }

    It 'reports a failing hook as HookFailed (file hook exit code, script block exception)' {
        $hook = Join-Path $Project '.moltar-after-deploy'
        $original = Get-Content -Raw $hook
        [IO.File]::WriteAllText($hook, "#!/bin/sh`necho 'notify failed' >&2`nexit 7`n")
        Approve-MoltarProject -Path $Project | Out-Null   # a changed hook is untrusted until approved again
        try {
            $results = Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.1.0 -Quiet -AfterDeploy { throw 'chat webhook down' } `
                -ErrorVariable errors -ErrorAction SilentlyContinue -InformationVariable info
        }
        finally { [IO.File]::WriteAllText($hook, $original); Approve-MoltarProject -Path $Project | Out-Null }
        @($results | Where-Object Succeeded).Count | Should -Be 6
        $errors.Count | Should -Be 2
        $errors.FullyQualifiedErrorId | Should -Be @("HookFailed$Id", "HookFailed$Id")
        "$($errors[0])" | Should -BeLike '*.moltar-after-deploy exited with code 7*'
        "$($errors[1])" | Should -BeLike '*-AfterDeploy script block failed: chat webhook down*'
        @($info | Where-Object { "$($_.MessageData)" -eq '.moltar-after-deploy: notify failed' }).Count | Should -Be 1
    }

    It 'asks once per batch by default (ConfirmImpact High), and a declined batch is not deployed' {
        # A console session answering the prompts: Yes for batch 1, No for batch 2.
        $pwsh = Get-PwshInvocation
        $command = "Import-Module '$ModulePath'; Set-Location '$Project'; " +
                   "`$r = Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.0.0 -BatchSize 3 -Quiet -SshConfigPath none; 'RESULTS ' + ((`$r.Name | Sort-Object) -join ' ')"
        $output = 'Y', 'N' | & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -Command $command
        $text = $output -join "`n"
        $LASTEXITCODE | Should -Be 0 -Because $text
        $flat = ($output -join ' ') -replace '\s+', ' '   # the console wraps long prompt lines
        @($output | Where-Object { $_ -eq 'Invoke-MoltarDeploy' }).Count | Should -Be 2 -Because $text   # the prompt's caption
        $flat | Should -Match ([regex]::Escape("Deploy moltar-test-app=1.0.0 to batch 1 of 2: $($Hosts[0].Name) ($($Hosts[0].Address))"))
        $flat | Should -Match 'Deploy moltar-test-app=1\.0\.0 to batch 2 of 2: '
        $flat | Should -Match '3 succeeded, 0 failed, 0 not started, 3 declined \(2 batches'
        ($output | Where-Object { $_ -like 'RESULTS *' }) | Should -Be "RESULTS $(($Names[0..2] | Sort-Object) -join ' ')" -Because $text

        $dpkg = Get-Dpkg moltar-test-app
        foreach ($i in 0..2) { $dpkg[$Names[$i]] | Should -Be '1.0.0 install ok installed' }
        foreach ($i in 3..5) { $dpkg[$Names[$i]] | Should -Be '1.1.0 install ok installed' -Because 'batch 2 was declined' }
    }

    It '-TimeoutSeconds ends a remote command that takes too long: error id Timeout' {
        # An apt hook on the host makes apt-get install wait 60 s before it calls dpkg: the timeout ends it there,
        # never inside dpkg (an interrupted dpkg would break the later tests' installs on this host, and under load
        # dpkg alone can take longer than the timeout).
        $conf = '/etc/apt/apt.conf.d/99moltar-test-slow'
        $null = Invoke-OnHost $Names[0] "echo 'DPkg::Pre-Invoke { ""sleep 60""; };' | sudo tee $conf"
        try {
            $result = $Hosts[0] | Invoke-MoltarDeploy -Package moltar-test-app -Version 1.1.0 -TimeoutSeconds 5 -Quiet -ErrorVariable errors -ErrorAction SilentlyContinue
        }
        finally { $null = Invoke-OnHost $Names[0] "sudo rm -f $conf" }
        $result.ErrorId | Should -Be 'Timeout'
        $result.Error | Should -BeLike "*$($Names[0]): apt-get install did not complete*5 s*"
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -Be "Timeout$Id"
        $errors[0].CategoryInfo.Category | Should -Be 'OperationTimeout'
    }

    It 'deploys, runs commands and copies files where an ssh config ProxyCommand is the only way to the hosts' {
        # HostName turns every address into a name that does not resolve; the proxy (bash's /dev/tcp, as a stand-in
        # for aws ssm start-session) connects to the address as typed (%n) and records each connection it carries.
        $marker = Join-Path $Scratch 'proxy-connections'
        $config = Join-Path $Scratch 'proxy-ssh-config'
        Set-Content -LiteralPath $config -Value @(
            'Host *'
            '  HostName %h.moltar-proxy.invalid'
            "  ProxyCommand bash -c 'echo %h >> $marker; exec 3<>/dev/tcp/%n/%p; cat <&3 & exec cat >&3'"
        )
        # known_hosts names the hosts by that name (the key is checked for the name connected to, as ssh does).
        $known = Join-Path $Scratch 'proxy-known_hosts'
        (Get-Content -LiteralPath $Sandbox.KnownHostsPath) -replace '^(\[?)(\d+\.\d+\.\d+\.\d+)(\]?)', '$1$2.moltar-proxy.invalid$3' | Set-Content -LiteralPath $known
        $savedKnown = $env:MOLTAR_KNOWN_HOSTS
        $env:MOLTAR_KNOWN_HOSTS = $known
        try {
            $results = @(Invoke-MoltarDeploy production -Package moltar-test-app -Version 1.1.0 -Quiet -SshConfigPath $config)
            $results.Count | Should -Be 6
            foreach ($r in $results) { $r.Succeeded | Should -BeTrue -Because $r.Error }

            $commands = @($Hosts | Invoke-MoltarCommand 'echo $SSH_CONNECTION' -Quiet -SshConfigPath $config)
            foreach ($c in $commands) {
                $c.Succeeded | Should -BeTrue -Because $c.Error
                ($c.Output -split ' ')[2] | Should -Be ($Hosts | Where-Object Name -eq $c.Name).Address
            }

            $file = Join-Path $Scratch 'through-proxy.txt'
            Set-Content -LiteralPath $file -Value 'copied through the proxy'
            $copied = @($Hosts[0] | Copy-MoltarFile $file -Destination '/tmp/' -Force -SshConfigPath $config -ErrorVariable copyErrors)
            $copyErrors.Count | Should -Be 0 -Because "$copyErrors"
            $copied.Count | Should -Be 1
            $copied[0].Verified | Should -BeTrue
        }
        finally { $env:MOLTAR_KNOWN_HOSTS = $savedKnown }
        (Invoke-OnHost $Names[0] 'cat /tmp/through-proxy.txt').Trim() | Should -Be 'copied through the proxy'

        $through = @(Get-Content -LiteralPath $marker)
        foreach ($h in $Hosts) { $through | Should -Contain "$($h.Address).moltar-proxy.invalid" }
        # No proxy process outlives its connection.
        @(Get-Process bash -ErrorAction Ignore | Where-Object { $_.CommandLine -like "*$marker*" }).Count | Should -Be 0
    }

    It 'a host and a hook flooding output at a slow consumer: the deploy finishes, lines beyond room are dropped and counted, memory stays bounded' {
        # apt-get update on the host prints 100 MB first (a million 100-character lines, APT's Pre-Invoke hook), and the
        # after-deploy hook a million lines more; downstream (6>&1) a consumer sleeps now and then, so the pipeline
        # thread writes far slower than either produces. Workers never wait for it: what finds no room is counted.
        $conf = '/etc/apt/apt.conf.d/99moltar-test-flood'
        $null = Invoke-OnHost $Names[0] "echo 'APT::Update::Pre-Invoke { ""yes $('x' * 99) | head -c 100000000""; };' | sudo tee $conf"
        $hookPath = Join-Path $Project '.moltar-after-deploy'
        $savedHook = [IO.File]::ReadAllText($hookPath)
        [IO.File]::WriteAllText($hookPath, "#!/bin/sh`nyes $('y' * 99) | head -n 1000000`n")
        Approve-MoltarProject -Path $Project | Out-Null
        # The peak resident set comes from the kernel (VmHWM, reset first), as in Reliability's 200 MB command.
        function Get-StatusKB([string] $Field) { [long] ((-split (Get-Content /proc/self/status | Where-Object { $_ -like "${Field}:*" }))[1]) }
        [GC]::Collect(); [GC]::WaitForPendingFinalizers(); [GC]::Collect()
        [IO.File]::WriteAllText('/proc/self/clear_refs', '5')
        $baseline = Get-StatusKB VmRSS
        $script:Shown = 0
        try {
            $results = @($Hosts[0] | Invoke-MoltarDeploy -Package moltar-test-app -Version 1.1.0 -WarningVariable warnings -WarningAction SilentlyContinue 6>&1 |
                ForEach-Object {
                    if ($_ -is [Management.Automation.InformationRecord]) {
                        if (++$script:Shown % 100 -eq 0) { Start-Sleep -Milliseconds 5 }
                    }
                    else { $_ }
                })
        }
        finally {
            $null = Invoke-OnHost $Names[0] "sudo rm -f $conf"
            [IO.File]::WriteAllText($hookPath, $savedHook)
            Approve-MoltarProject -Path $Project | Out-Null
        }
        $growthMB = ((Get-StatusKB VmHWM) - $baseline) / 1KB
        Write-Host ("Deploy flood: {0} lines shown; peak resident set growth {1:0} MB" -f $script:Shown, $growthMB)

        $results.Count | Should -Be 1
        $results[0].Status | Should -Be 'Succeeded' -Because $results[0].Error
        $results[0].Truncated | Should -BeTrue
        $notShown = @($warnings | ForEach-Object { "$_" } | Where-Object { $_ -match '\d+ line\(s\) of output were not shown live' })
        $notShown | Should -HaveCount 2 -Because 'one warning for the host''s lines, one for the hook''s'
        $counted = ($notShown | ForEach-Object { [long] [regex]::Match($_, '(\d+) line\(s\)').Groups[1].Value } | Measure-Object -Sum).Sum
        # Every line was shown or counted, none silently lost: a million from the host, a million from the hook.
        ($script:Shown + $counted) | Should -BeGreaterOrEqual 2000000
        $script:Shown | Should -BeLessThan 2000000
        # Kept: the result's MiB per step and a bounded queue of lines; never the 200 MB of lines (400 MB as .NET strings).
        $growthMB | Should -BeLessThan 150
    }
}
