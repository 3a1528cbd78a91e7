# Copy-MoltarFile against one sandbox fleet of 20 real sshd hosts, each with its own root file system (a file written
# on one host is not visible on another). Nothing here reads or writes the real ~/.ssh: HOME points at a scratch folder.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

Describe 'Copy-MoltarFile' -Skip:([bool] $SkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        Import-Module $ModulePath -Force
        $script:TestHome = Enter-TestHome -Name copy
        # These tests check that every connection is closed when a call ends (and count sockets and threads across
        # calls): the connection pool is off for them. Tests/ConnectionPool.Tests.ps1 covers the pool.
        $env:MOLTAR_CONNECTION_IDLE_SECONDS = '0'
        $script:Scratch = $TestHome.Scratch

        $script:Sandbox = Start-TestSandbox -Hosts 20
        $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint
        $script:Ssh = @{ KeyFile = $Sandbox.ClientKeyPath; KnownHostsPath = $Sandbox.KnownHostsPath; SshConfigPath = 'none' }
        $script:CmdletId = 'Moltar.Cmdlets.CopyMoltarFileCommand'

        $script:Repo = Join-Path $Scratch 'repo'
        New-Item -ItemType Directory -Force -Path $Repo | Out-Null
        Set-Content (Join-Path $Repo '.moltar.psd1') "@{ Project = 'demo' }"
        Push-Location $Repo
        $script:Instances = @(Get-MoltarInstance | Sort-Object Name)

        function New-LocalFile([string] $Relative, [string] $Content = 'x') {
            $path = Join-Path $script:Scratch $Relative
            New-Item -ItemType Directory -Force -Path (Split-Path $path) | Out-Null
            [IO.File]::WriteAllText($path, $Content)
            $path
        }

        function Get-Sha256([string] $Path) { (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant() }

        # Runs a shell command on the given instances (the independent check, over SSH); returns name -> trimmed output
        # and fails the test on any error. A host whose connection dropped (ConnectionLost) is asked once more, loudly.
        function Invoke-Remote([object[]] $On, [string] $Command) {
            $results = @($On | Invoke-MoltarCommand $Command @script:Ssh -Quiet -ErrorAction SilentlyContinue)
            $lost = @($results | Where-Object ErrorId -EQ 'ConnectionLost')
            if ($lost) {
                Write-Warning "Invoke-Remote: asking again after ConnectionLost: $($lost.Error -join '; ')"
                $again = @($On | Where-Object { $_.InstanceId -in $lost.InstanceId } | Invoke-MoltarCommand $Command @script:Ssh -Quiet -ErrorAction SilentlyContinue)
                $results = @($results | Where-Object ErrorId -NE 'ConnectionLost') + $again
            }
            $bad = @($results | Where-Object { -not $_.Succeeded })
            if ($bad -or $results.Count -ne @($On).Count) {
                throw "Invoke-Remote '$Command' failed: $(($bad | ForEach-Object { "$($_.Name): $($_.ErrorId) $($_.Error)" }) -join '; ')"
            }
            $map = @{}
            foreach ($r in $results) { $map[$r.Name] = $r.Output.TrimEnd() }
            $map
        }

        # A copy running in its own runspace (so this thread can stop it, or kill a host, while it runs).
        function Start-BackgroundCopy([object[]] $On, [string] $Path, [string] $Destination) {
            $ps = [powershell]::Create()
            $null = $ps.AddScript({
                param($ModulePath, $On, $Path, $Destination, $Ssh)
                Import-Module $ModulePath
                $On | Copy-MoltarFile $Path -Destination $Destination -Force @Ssh
            }).AddArgument($script:ModulePath).AddArgument($On).AddArgument($Path).AddArgument($Destination).AddArgument($script:Ssh)
            $handle = $ps.BeginInvoke()
            [pscustomobject]@{ PowerShell = $ps; Handle = $handle }
        }

        # Waits until the copy's progress says at least this many MB moved (fails the test at the hang guard).
        function Wait-CopyProgress($Copy, [double] $Megabytes) {
            $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
            while ([DateTime]::UtcNow -lt $deadline) {
                $moved = $Copy.PowerShell.Streams.Progress | Where-Object { $_.StatusDescription -match '; ([\d.]+) MB of' } |
                    ForEach-Object { [double]::Parse(($_.StatusDescription -replace '^.*; ([\d.]+) MB of.*$', '$1'), [cultureinfo]::InvariantCulture) }
                if (($moved | Measure-Object -Maximum).Maximum -ge $Megabytes) { return }
                if ($Copy.Handle.IsCompleted) { throw 'The copy finished before it could be interrupted.' }
                Start-Sleep -Milliseconds 20
            }
            throw "The copy did not move $Megabytes MB within 60 s."
        }

        # TCP connections of this process to the given addresses' port 22 that are still open.
        function Get-OpenConnection([string[]] $Address) {
            $wanted = [Collections.Generic.HashSet[string]]::new([string[]] @($Address | ForEach-Object { "${_}:22" }))
            @(ss -Htnp state established | Where-Object { $_ -match "pid=$PID," } |
                Where-Object { $columns = -split $_; $columns.Count -ge 4 -and $wanted.Contains(($columns[3] -replace '^\[::ffff:([^\]]+)\]:', '$1:')) })
        }

        function Get-ThrownError([scriptblock] $Script) {
            try { & $Script; $null } catch { $_ }
        }
    }

    AfterAll {
        Remove-Item env:MOLTAR_CONNECTION_IDLE_SECONDS -ErrorAction Ignore
        Pop-Location -ErrorAction Ignore
        Stop-TestSandbox $Sandbox
        Exit-TestHome $TestHome
    }

    It 'uploads one file to 20 hosts, each verified, and sha256sum over SSH agrees afterwards' {
        $Instances.Count | Should -Be 20
        $file = New-LocalFile 'one/robots.txt' "User-agent: *`nDisallow: /private/`n"
        $expected = Get-Sha256 $file

        $results = @($Instances | Copy-MoltarFile $file -Destination 'www/public/' @Ssh)

        $results.Count | Should -Be 20
        @($results.InstanceId | Sort-Object -Unique).Count | Should -Be 20
        foreach ($result in $results) {
            $result | Should -BeOfType ([Moltar.MoltarCopyResult])
            $result.Direction | Should -Be 'Upload'
            $result.Source | Should -Be $file
            $result.Destination | Should -Be '/home/ubuntu/www/public/robots.txt'
            $result.Bytes | Should -Be (Get-Item $file).Length
            $result.Sha256 | Should -Be $expected
            $result.Verified | Should -BeTrue
            $result.VerificationNote | Should -Match 'sha256sum'
        }
        # Checked independently, over SSH: the bytes are there, and no temporary file was left behind.
        $remote = Invoke-Remote $Instances 'sha256sum www/public/robots.txt; ls -A www/public'
        $remote.Count | Should -Be 20
        foreach ($output in $remote.Values) {
            $lines = $output -split "`n"
            ($lines[0] -split ' ')[0] | Should -Be $expected
            $lines[1..($lines.Count - 1)] | Should -Be @('robots.txt')
        }
    }

    It 'copies a directory tree with -Recurse: shape, empty directories, contents and permission bits' {
        $site = Join-Path $Scratch 'tree/site'
        New-LocalFile 'tree/site/index.html' '<h1>hi</h1>' | Out-Null
        New-LocalFile 'tree/site/css/main.css' 'body { margin: 0 }' | Out-Null
        $logo = Join-Path $site 'img/deep/logo.bin'
        New-Item -ItemType Directory -Force (Split-Path $logo) | Out-Null
        $bytes = [byte[]]::new(300KB); [Random]::new(3).NextBytes($bytes); [IO.File]::WriteAllBytes($logo, $bytes)
        $script = New-LocalFile 'tree/site/bin/run.sh' "#!/bin/sh`necho run`n"
        chmod 750 $script
        New-Item -ItemType Directory -Force (Join-Path $site 'empty') | Out-Null
        $on = $Instances[0..2]

        $results = @($on | Copy-MoltarFile $site -Recurse -Destination 'deploy' @Ssh)

        $results.Count | Should -Be 12
        $results.Verified | Should -Not -Contain $false
        ($results | Where-Object Source -EQ $logo).Bytes | Should -Be @(300KB, 300KB, 300KB)
        $remote = Invoke-Remote $on 'cd deploy && find . | LC_ALL=C sort && stat -c %a site/bin/run.sh site/index.html && find site -type f -exec sha256sum {} + | LC_ALL=C sort -k2'
        $local = Get-ChildItem $site -Recurse -File | ForEach-Object { '{0}  site/{1}' -f (Get-Sha256 $_.FullName), $_.FullName.Substring($site.Length + 1) }
        foreach ($output in $remote.Values) {
            $lines = $output -split "`n"
            $lines[0..10] | Should -Be @('.', './site', './site/bin', './site/bin/run.sh', './site/css', './site/css/main.css', './site/empty',
                './site/img', './site/img/deep', './site/img/deep/logo.bin', './site/index.html')
            $lines[11..12] | Should -Be @('750', '644')
            @($lines[13..($lines.Count - 1)] | Sort-Object) | Should -Be @($local | Sort-Object)
        }
    }

    It 'sets -Mode on every file written' {
        $file = New-LocalFile 'mode/secret.env' 'TOKEN=1'
        New-LocalFile 'mode/other.env' 'OTHER=1' | Out-Null
        New-LocalFile 'mode/skip.txt' 'not an env file' | Out-Null
        # A local wildcard, expanded by Moltar (the same rules as for remote paths).
        $results = @($Instances[3] | Copy-MoltarFile (Join-Path $Scratch 'mode/*.env') -Destination 'modes/' -Mode 0600 @Ssh)
        $results.Mode | Should -Be @('600', '600')
        (Invoke-Remote $Instances[3] 'stat -c "%a %n" modes/* | LC_ALL=C sort').Values | Should -Be "600 modes/other.env`n600 modes/secret.env"
        $bad = Get-ThrownError { $Instances[3] | Copy-MoltarFile $file -Destination 'modes/' -Mode 999 @Ssh }
        $bad.FullyQualifiedErrorId | Should -Be "InvalidMode,$CmdletId"
        $bad.Exception.Message | Should -Match 'octal'
    }

    It 'handles names with spaces, quotes, $, backticks and unicode in both directions' {
        $names = @('with space.txt', "it's `"quoted`".txt", 'dollar $HOME `id`.txt', 'ünïcödé 日本 🚀.txt', '-dash.txt')
        $dir = Join-Path $Scratch 'odd/names'
        foreach ($name in $names) { New-LocalFile "odd/names/$name" "content of $name" | Out-Null }
        $on = $Instances[4..5]

        $up = @($on | Copy-MoltarFile $dir -Recurse -Destination "odd dir/it's here/" @Ssh)

        $up.Count | Should -Be 10
        $up.Verified | Should -Not -Contain $false
        $remote = Invoke-Remote $on "ls -1A 'odd dir/it'\''s here/names' | LC_ALL=C sort"
        foreach ($output in $remote.Values) { @($output -split "`n" | Sort-Object) | Should -Be @($names | Sort-Object) }

        $down = Join-Path $Scratch 'odd-down'
        $back = @($on | Copy-MoltarFile -FromRemote "odd dir/it's here/names/*" -Destination $down @Ssh)
        $back.Count | Should -Be 10
        $back.Verified | Should -Not -Contain $false
        foreach ($instance in $on) {
            foreach ($name in $names) {
                Get-Content -LiteralPath (Join-Path $down $instance.Name $name) -Raw | Should -Be "content of $name"
            }
        }
    }

    It 'sends 100 MB to 5 hosts streamed, without holding the file in memory per host, with progress in bytes' {
        $script:Big = $big = Join-Path $Scratch 'big/big.bin'
        New-Item -ItemType Directory -Force (Split-Path $big) | Out-Null
        $stream = [IO.File]::Create($big)
        try {
            $chunk = [byte[]]::new(1MB); $random = [Random]::new(100)
            for ($i = 0; $i -lt 100; $i++) { $random.NextBytes($chunk); $stream.Write($chunk, 0, $chunk.Length) }
        }
        finally { $stream.Dispose() }
        $expected = Get-Sha256 $big
        $on = $Instances[6..10]

        # Peak resident memory of this process during the copy: reset the high-water mark, then read it after.
        # Holding the file per host would need 5 x 100 MB; streaming needs buffers only.
        $clearRefs = "/proc/$PID/clear_refs"
        function Get-Memory([string] $Field) { [long]((Get-Content "/proc/$PID/status" | Where-Object { $_ -like "${Field}:*" }) -replace '\D', '') * 1KB }
        [GC]::Collect()
        [IO.File]::WriteAllText($clearRefs, '5')
        $baseline = Get-Memory 'VmRSS'

        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript({
                param($ModulePath, $On, $Big, $Ssh)
                Import-Module $ModulePath
                $On | Copy-MoltarFile $Big -Destination 'big/' @Ssh
            }).AddArgument($ModulePath).AddArgument($on).AddArgument($big).AddArgument($Ssh)
            $results = @($ps.Invoke())
            $progress = @($ps.Streams.Progress)
            $ps.Streams.Error | Should -BeNullOrEmpty
        }
        finally { $ps.Dispose() }

        $growth = (Get-Memory 'VmHWM') - $baseline
        Write-Host ("    100 MB to 5 hosts: peak working set grew {0:N1} MB" -f ($growth / 1MB))
        $growth | Should -BeLessThan 150MB

        $results.Count | Should -Be 5
        foreach ($result in $results) {
            $result.Bytes | Should -Be 100MB
            $result.Sha256 | Should -Be $expected
            $result.Verified | Should -BeTrue
        }
        # Progress counts hosts and bytes as they move, and finishes.
        $progress | Should -Not -BeNullOrEmpty
        $progress[0].Activity | Should -Match '1 file \(100\.0 MB\) to 5 hosts'
        @($progress | Where-Object { $_.PercentComplete -gt 0 -and $_.PercentComplete -lt 100 -and $_.StatusDescription -match 'of 5 hosts done.*MB of 500\.0 MB' }) |
            Should -Not -BeNullOrEmpty
        $progress[-1].RecordType | Should -Be 'Completed'
        (Invoke-Remote $on 'sha256sum big/big.bin | cut -d" " -f1; rm -rf big').Values | Should -Be (@($expected) * 5)
    }

    It 'reports ConnectionLost for a host that dies mid-copy; the other host finishes' {
        $victim, $survivor = $Instances[6], $Instances[10]
        $copy = Start-BackgroundCopy @($victim, $survivor) $Big 'dying/'
        try {
            Wait-CopyProgress $copy 20
            Stop-MoltarSandboxHost $Sandbox $victim.Name
            $results = @($copy.PowerShell.EndInvoke($copy.Handle))
            $errors = @($copy.PowerShell.Streams.Error)
        }
        finally { $copy.PowerShell.Dispose() }

        $results.Name | Should -Be $survivor.Name
        $results.Verified | Should -BeTrue
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -Be "ConnectionLost,$CmdletId"
        $errors[0].TargetObject.InstanceId | Should -Be $victim.InstanceId
        $errors[0].Exception.Message | Should -Match ([regex]::Escape($victim.Name))
        $null = Start-MoltarSandboxHost $Sandbox $victim.Name
        (Invoke-Remote $victim 'ls -A dying | grep -c . || true').Values | Should -BeIn @('0', '1') -Because 'at most the .part file of the interrupted copy remains'
    }

    It 'stops at Ctrl+C without finishing the copy and closes every connection' {
        $on = $Instances[7..8]
        $addresses = @($on | ForEach-Object Address)
        $copy = Start-BackgroundCopy $on $Big 'stopped/'
        try {
            Wait-CopyProgress $copy 10
            $stopping = $copy.PowerShell.BeginStop($null, $null)
            $stopping.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($HangGuardSeconds)) | Should -BeTrue -Because 'Stop ends the copy (hang guard)'
            $copy.PowerShell.EndStop($stopping)
            $copy.PowerShell.InvocationStateInfo.State | Should -Be 'Stopped'
        }
        finally { $copy.PowerShell.Dispose() }
        $deadline = [DateTime]::UtcNow.AddSeconds($HangGuardSeconds)
        while ((Get-OpenConnection $addresses).Count -gt 0 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
        Get-OpenConnection $addresses | Should -BeNullOrEmpty
        (Invoke-Remote $on 'test -e stopped/big.bin && echo copied || echo absent').Values | Should -Be @('absent', 'absent')
    }

    It 'refuses to overwrite without -Force (per host, nothing changed) and replaces with -Force' {
        $v1 = New-LocalFile 'v1/app.ini' 'version=1'
        $v2 = New-LocalFile 'v2/app.ini' 'version=2'
        $on = $Instances[11..13]
        $first = @($on | Copy-MoltarFile $v1 -Destination 'conf/app.ini' @Ssh)
        $first.Destination | Should -Be (@('/home/ubuntu/conf/app.ini') * 3)

        $errors = $null
        $again = @($on | Copy-MoltarFile $v2 -Destination 'conf/app.ini' @Ssh -ErrorVariable errors -ErrorAction SilentlyContinue)
        $again | Should -BeNullOrEmpty
        $errors.Count | Should -Be 3
        $errors.FullyQualifiedErrorId | Should -Be (@("RemoteFileExists,$CmdletId") * 3)
        @($errors.TargetObject.InstanceId | Sort-Object) | Should -Be @($on.InstanceId | Sort-Object)
        $errors[0].Exception.Message | Should -Match 'already exists.*-Force'
        # The destination names an existing directory: the file goes inside it, and is refused there too.
        $errors = $null
        $on[0] | Copy-MoltarFile $v2 -Destination 'conf' @Ssh -ErrorVariable errors -ErrorAction SilentlyContinue
        $errors.FullyQualifiedErrorId | Should -Be "RemoteFileExists,$CmdletId"
        $errors[0].Exception.Message | Should -Match '/home/ubuntu/conf/app\.ini'
        (Invoke-Remote $on 'cat conf/app.ini; echo; ls -A conf').Values | Should -Be (@("version=1`napp.ini") * 3)

        $forced = @($on | Copy-MoltarFile $v2 -Destination 'conf/app.ini' -Force @Ssh)
        $forced.Count | Should -Be 3
        $forced.Verified | Should -Not -Contain $false
        (Invoke-Remote $on 'cat conf/app.ini; echo; ls -A conf').Values | Should -Be (@("version=2`napp.ini") * 3)

        # The same rule for downloads, locally.
        $down = Join-Path $Scratch 'conf-down'
        @($on | Copy-MoltarFile -FromRemote 'conf/app.ini' -Destination $down @Ssh).Count | Should -Be 3
        Set-Content -LiteralPath (Join-Path $down $on[0].Name 'app.ini') -Value 'local edit' -NoNewline
        $errors = $null
        $on | Copy-MoltarFile -FromRemote 'conf/app.ini' -Destination $down @Ssh -ErrorVariable errors -ErrorAction SilentlyContinue | Out-Null
        $errors.FullyQualifiedErrorId | Should -Be (@("LocalFileExists,$CmdletId") * 3)
        Get-Content -LiteralPath (Join-Path $down $on[0].Name 'app.ini') -Raw | Should -Be 'local edit'
        @($on | Copy-MoltarFile -FromRemote 'conf/app.ini' -Destination $down -Force @Ssh).Count | Should -Be 3
        Get-Content -LiteralPath (Join-Path $down $on[0].Name 'app.ini') -Raw | Should -Be 'version=2'
    }

    It 'reports permission denied on one host and an unreachable host while the others succeed' {
        $on = $Instances[14..17]
        $null = Invoke-Remote $on 'sudo install -d -o ubuntu -m 755 /srv/drop'
        $null = Invoke-Remote $on[0] 'sudo chown root:root /srv/drop && sudo chmod 700 /srv/drop'
        $file = New-LocalFile 'drop/report.csv' "a,b`n1,2`n"
        $unreachable = '127.0.20.250'

        $errors = $null
        $results = @(@($on) + $unreachable | Copy-MoltarFile $file -Destination '/srv/drop/' @Ssh -ConnectTimeoutSeconds 5 -ErrorVariable errors -ErrorAction SilentlyContinue)

        @($results.Name | Sort-Object) | Should -Be @($on[1..3].Name | Sort-Object)
        $results.Verified | Should -Not -Contain $false
        $errors.Count | Should -Be 2
        $denied = $errors | Where-Object { $_.TargetObject.InstanceId -eq $on[0].InstanceId }
        $denied.FullyQualifiedErrorId | Should -Be "CopyFailed,$CmdletId"
        $denied.Exception.Message | Should -Match ([regex]::Escape($on[0].Name))
        $denied.Exception.Message | Should -Match 'permission denied'
        $down = $errors | Where-Object { $_.TargetObject -eq $unreachable }
        $down.FullyQualifiedErrorId | Should -Be "ConnectFailed,$CmdletId"
        (Invoke-Remote $on[1..3] 'cat /srv/drop/report.csv').Values | Should -Be (@("a,b`n1,2") * 3)
        (Invoke-Remote $on[0] 'sudo ls -A /srv/drop').Values | Should -Be ''
    }

    It 'downloads from 10 hosts (selected by -Environment) into a folder per host' {
        $production = @($Instances | Where-Object Environment -EQ 'production')
        $production.Count | Should -Be 10
        $names = Invoke-Remote $production 'mkdir -p logs && hostname > logs/app.log && echo "extra $(hostname)" > logs/extra.log && chmod 600 logs/extra.log && echo no > logs/skip.txt && hostname'
        $down = Join-Path $Scratch 'logs-down'

        $results = @(Copy-MoltarFile -FromRemote 'logs/*.log' -Destination $down -Environment production @Ssh)

        $results.Count | Should -Be 20
        $results.Verified | Should -Not -Contain $false
        $results.Direction | Sort-Object -Unique | Should -Be 'Download'
        @(Get-ChildItem $down -Directory).Name | Sort-Object | Should -Be @($production.Name | Sort-Object)
        foreach ($instance in $production) {
            $folder = Join-Path $down $instance.Name
            @(Get-ChildItem $folder -File).Name | Sort-Object | Should -Be @('app.log', 'extra.log')
            (Get-Content (Join-Path $folder 'app.log')) | Should -Be $names[$instance.Name]
            (Get-Content (Join-Path $folder 'extra.log')) | Should -Be "extra $($names[$instance.Name])"
            (Get-Item (Join-Path $folder 'extra.log')).UnixFileMode | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite')
            ($results | Where-Object { $_.InstanceId -eq $instance.InstanceId -and $_.Source -eq '/home/ubuntu/logs/app.log' }).Sha256 |
                Should -Be (Get-Sha256 (Join-Path $folder 'app.log'))
        }
    }

    It 'refuses remote names that would escape: symlinks leading out, and a hostile Name tag' {
        $on = $Instances[18..19]
        $null = Invoke-Remote $on 'mkdir -p trap/sub && echo ok > trap/ok.log && echo inner > trap/sub/in.log && ln -sf /etc/passwd trap/evil.log && ln -sf ../../../../etc/hostname trap/sub/rel.log && ln -sf ok.log trap/alias.log'
        $down = Join-Path $Scratch 'trap-down'
        New-Item -ItemType Directory -Force $down | Out-Null
        $before = @(Get-ChildItem $Scratch -Recurse -File).Count

        $errors = $null
        $results = @($on | Copy-MoltarFile -FromRemote 'trap/*.log' -Destination $down @Ssh -ErrorVariable errors -ErrorAction SilentlyContinue)
        $results.Count | Should -Be 4
        @($results | ForEach-Object { Split-Path $_.Destination -Leaf } | Sort-Object -Unique) | Should -Be @('alias.log', 'ok.log')
        $errors.Count | Should -Be 2
        $errors.FullyQualifiedErrorId | Should -Be (@("PathOutsideDestination,$CmdletId") * 2)
        $errors[0].Exception.Message | Should -Match 'evil\.log.*/etc/passwd'

        $errors = $null
        $tree = @($on | Copy-MoltarFile -FromRemote 'trap' -Recurse -Destination (Join-Path $down 'tree') @Ssh -ErrorVariable errors -ErrorAction SilentlyContinue)
        $tree.Count | Should -Be 6
        $errors.Count | Should -Be 4
        $errors.FullyQualifiedErrorId | Sort-Object -Unique | Should -Be "PathOutsideDestination,$CmdletId"
        # Nothing from outside the tree was written anywhere; everything written is under the destination.
        Get-ChildItem $down -Recurse -File | Where-Object { (Get-Content $_.FullName -Raw) -match 'root:' } | Should -BeNullOrEmpty
        @(Get-ChildItem $Scratch -Recurse -File).Count | Should -Be ($before + 4 + 6)

        # A Name tag is made one safe folder name: '../../escape' cannot climb out of the destination (nor make a hidden folder).
        $hostile = [pscustomobject]@{ InstanceId = 'i-0hostile000000001'; Name = '../../escape'; Address = $on[0].Address }
        $result = $hostile | Copy-MoltarFile -FromRemote 'trap/ok.log' -Destination $down @Ssh
        $result.Destination | Should -Be (Join-Path $down '_._.._escape' 'ok.log')
        Join-Path $Scratch 'escape' | Should -Not -Exist
    }

    It '-WhatIf lists what would be copied where and changes nothing' {
        $dir = Join-Path $Scratch 'whatif'
        New-LocalFile 'whatif/a.txt' 'a' | Out-Null
        New-LocalFile 'whatif/sub/b.txt' 'b' | Out-Null
        $on = $Instances[0..1]
        $addresses = ($on | ForEach-Object { "'$($_.Address)'" }) -join ','
        $down = Join-Path $Scratch 'whatif-down'

        $output = Invoke-CleanPwsh @"
Import-Module '$ModulePath'
`$ssh = @{ KeyFile = '$($Sandbox.ClientKeyPath)'; KnownHostsPath = '$($Sandbox.KnownHostsPath)'; SshConfigPath = 'none' }
$addresses | Copy-MoltarFile '$dir' -Recurse -Destination 'whatif-dest/' -WhatIf @ssh
$addresses | Copy-MoltarFile -FromRemote 'www/public/*' -Destination '$down' -WhatIf @ssh
"@
        $LASTEXITCODE | Should -Be 0
        $text = $output -join "`n"
        foreach ($instance in $on) {
            $text | Should -Match "What if: Copy 2 files \(2 B\) to $([regex]::Escape($instance.Address)):"
            $text | Should -Match "What if: Copy www/public/\* from $([regex]::Escape($instance.Address)) into $([regex]::Escape((Join-Path $down $instance.Address)))"
        }
        $text | Should -Match ([regex]::Escape("$dir/a.txt -> ~/whatif-dest/whatif/a.txt"))
        $text | Should -Match ([regex]::Escape("$dir/sub/b.txt -> ~/whatif-dest/whatif/sub/b.txt"))

        @($on | Copy-MoltarFile $dir -Recurse -Destination 'whatif-dest/' -WhatIf @Ssh) | Should -BeNullOrEmpty
        (Invoke-Remote $on 'test -e whatif-dest && echo present || echo absent').Values | Should -Be (@('absent') * 2)
        $down | Should -Not -Exist
    }

    It 'says when a host has no sha256sum: Verified is false with the reason, not an error' {
        $on = $Instances[18..19]
        $null = Invoke-Remote $on[1] 'sudo rm /usr/bin/sha256sum'
        $file = New-LocalFile 'nosum/data.txt' 'data'

        $errors = $null
        $results = @($on | Copy-MoltarFile $file -Destination 'nosum/' @Ssh -ErrorVariable errors)

        $errors | Should -BeNullOrEmpty
        $results.Count | Should -Be 2
        $with = $results | Where-Object InstanceId -EQ $on[0].InstanceId
        $without = $results | Where-Object InstanceId -EQ $on[1].InstanceId
        $with.Verified | Should -BeTrue
        $without.Verified | Should -BeFalse
        $without.VerificationNote | Should -Match 'sha256sum is not available'
        $without.Sha256 | Should -Be (Get-Sha256 $file)
        (Invoke-Remote $on[1] 'cat nosum/data.txt').Values | Should -Be 'data'
    }

    It 'stops before contacting any host on bad input' {
        $missing = Get-ThrownError { $Instances[0] | Copy-MoltarFile (Join-Path $Scratch 'nope.txt') @Ssh }
        $missing.FullyQualifiedErrorId | Should -Be "PathNotFound,$CmdletId"
        $missing.Exception.Message | Should -Match 'nope\.txt.*does not exist'
        $directory = Get-ThrownError { $Instances[0] | Copy-MoltarFile (Join-Path $Scratch 'tree') @Ssh }
        $directory.FullyQualifiedErrorId | Should -Be "PathIsDirectory,$CmdletId"
        $directory.Exception.Message | Should -Match '-Recurse'
        $file = New-LocalFile 'bad/file.txt'
        $notFolder = Get-ThrownError { $Instances[0] | Copy-MoltarFile -FromRemote 'x' -Destination $file @Ssh }
        $notFolder.FullyQualifiedErrorId | Should -Be "DestinationIsFile,$CmdletId"
    }
}
