# Task Sandbox: the local EC2 endpoint and sshd fleet the tests, the demo and the benchmark run against, and the
# machine prerequisites they need (installed with apt-get as root).

function Build-Sandbox {
    Write-Step 'Building the sandbox (local EC2 endpoint + sshd fleet)'
    Invoke-Native dotnet @('build', (Join-Path $root 'Tests/Sandbox/Moltar.Sandbox/Moltar.Sandbox.csproj'), '-c', 'Release', '--nologo', '-v:q')
    Join-Path $root 'Tests/Sandbox/Moltar.Sandbox/bin/Release/net10.0/Moltar.Sandbox.dll'
}

function Build-TestStandIn {
    # Posh-SSH's older SSH.NET, emulated: an assembly named Renci.SshNet, version 2020.0.1.0 (Tests/Isolation.Tests.ps1).
    Write-Step 'Building the SSH.NET stand-in for the coexistence tests'
    $project = Join-Path $root 'Tests/Coexistence/Renci.SshNet.StandIn/Renci.SshNet.StandIn.csproj'
    Invoke-Native dotnet @('build', $project, '-c', 'Release', '--nologo', '-v:q') -Quiet
    Join-Path $root 'Tests/Coexistence/Renci.SshNet.StandIn/bin/Release/netstandard2.0/Renci.SshNet.dll'
}

function Get-MissingPrerequisite {
    $needed = [ordered]@{
        sshd               = @{ Path = '/usr/sbin/sshd'; Package = 'openssh-server' }
        ssh                = @{ Path = 'ssh'; Package = 'openssh-client' }
        'ssh-keygen'       = @{ Path = 'ssh-keygen'; Package = 'openssh-client' }
        'ssh-agent'        = @{ Path = 'ssh-agent'; Package = 'openssh-client' }
        unshare            = @{ Path = 'unshare'; Package = 'util-linux' }
        sudo               = @{ Path = 'sudo'; Package = 'sudo' }
        'dpkg-scanpackages' = @{ Path = 'dpkg-scanpackages'; Package = 'dpkg-dev' }
        tmux               = @{ Path = 'tmux'; Package = 'tmux' }
        ip                 = @{ Path = 'ip'; Package = 'iproute2' }
        # Enter-MoltarInstance's jump host test: the bastion's sshd runs per connection inside a network namespace.
        'systemd-socket-activate' = @{ Path = 'systemd-socket-activate'; Package = 'systemd' }
        # The SSH engine's tests against a non-OpenSSH server.
        dropbear           = @{ Path = '/usr/sbin/dropbear'; Package = 'dropbear-bin' }
        # Security tests: a host user whose login shell is not POSIX-like (copies must not rely on its quoting).
        fish               = @{ Path = '/usr/bin/fish'; Package = 'fish' }
    }
    foreach ($name in $needed.Keys) {
        if (-not (Get-Command $needed[$name].Path -ErrorAction Ignore)) {
            [pscustomobject]@{ Command = $name; Package = $needed[$name].Package }
        }
    }
}

function Initialize-TestPrerequisite {
    if (-not $IsLinux) {
        return 'the sandbox fleet needs Linux (sshd in mount namespaces)'
    }
    $isRoot = (id -u) -eq '0'
    $missing = @(Get-MissingPrerequisite)
    if ($missing.Count -gt 0 -and $isRoot -and (Get-Command apt-get -ErrorAction Ignore)) {
        $packages = $missing.Package | Sort-Object -Unique
        Write-Step "Installing test prerequisites with apt-get: $($packages -join ' ')"
        $env:DEBIAN_FRONTEND = 'noninteractive'
        Invoke-Native apt-get @('update', '-qq') -Quiet
        Invoke-Native apt-get (@('install', '-y', '-qq', '--no-install-recommends') + $packages) -Quiet
        $missing = @(Get-MissingPrerequisite)
    }
    $reasons = @()
    if ($missing.Count -gt 0) {
        $reasons += "missing $($missing.Command -join ', ') (apt-get install $(($missing.Package | Sort-Object -Unique) -join ' '))"
    }
    if (-not $isRoot) {
        $reasons += 'not root (hosts with their own root filesystem need mount namespaces)'
    }
    if ($reasons.Count -eq 0) { return $null }
    $reason = $reasons -join '; '
    if ($isCI) { throw "CI=true and the sandbox cannot run: $reason" }
    Write-Warning "Sandbox tests will be skipped: $reason"
    $reason
}

function Invoke-SandboxTask {
    $sandboxDll = Build-Sandbox
    Write-Step "Built $sandboxDll (Tests/Sandbox/Sandbox.psm1 starts it: Start-MoltarSandbox -SandboxPath <that path>)"
}
