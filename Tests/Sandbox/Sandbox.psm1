#Requires -Version 7.2
<#
.SYNOPSIS
    Starts, drives and stops the Moltar sandbox (the local EC2 endpoint and its sshd hosts) from tests.

.DESCRIPTION
    The sandbox process is Tests/Sandbox/Moltar.Sandbox (see Tests/Sandbox/CONTRACT.md). This module
    builds nothing: run `dotnet build -c Release Tests/Sandbox/Moltar.Sandbox` first, or pass -SandboxPath.

        Import-Module ./Tests/Sandbox/Sandbox.psm1
        $sandbox = Start-MoltarSandbox -Hosts 3
        Get-MoltarInstance -EndpointUrl $sandbox.Endpoint -Region $sandbox.Region ...
        Stop-MoltarSandbox $sandbox

    Errors from Start-MoltarSandbox carry a stable ErrorId: SandboxNotBuilt, SandboxBadOptions (exit 2),
    SandboxPrerequisitesMissing (exit 3: no root / no sshd; tests skip on it with its message),
    SandboxFailed (any other exit), SandboxTimeout (no ready line in time).
#>

Set-StrictMode -Version Latest

$script:DefaultSandboxPath = Join-Path $PSScriptRoot 'Moltar.Sandbox/bin/Release/net10.0/Moltar.Sandbox.dll'

function New-SandboxError {
    param([string]$Message, [string]$ErrorId, [System.Management.Automation.ErrorCategory]$Category, $Target)
    [System.Management.Automation.ErrorRecord]::new([System.InvalidOperationException]::new($Message), $ErrorId, $Category, $Target)
}

function Get-DotnetPath {
    if ($env:DOTNET_HOST_PATH -and (Test-Path -LiteralPath $env:DOTNET_HOST_PATH)) { return $env:DOTNET_HOST_PATH }
    $command = Get-Command dotnet -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($command) { return $command.Source }
    if ($env:DOTNET_ROOT) {
        $candidate = Join-Path $env:DOTNET_ROOT 'dotnet'
        if (Test-Path -LiteralPath $candidate) { return $candidate }
    }
    # The runtime running this PowerShell lives under the dotnet root: <root>/shared/Microsoft.NETCore.App/<version>/.
    $root = [System.IO.Path]::GetFullPath((Join-Path ([System.Runtime.InteropServices.RuntimeEnvironment]::GetRuntimeDirectory()) '../../..'))
    foreach ($name in 'dotnet', 'dotnet.exe') {
        $candidate = Join-Path $root $name
        if (Test-Path -LiteralPath $candidate) { return $candidate }
    }
    throw 'Cannot find the dotnet executable (not on PATH, no DOTNET_HOST_PATH or DOTNET_ROOT).'
}

function Get-TextTail {
    param([string]$Text, [int]$Lines = 40)
    if (-not $Text) { return '(stderr was empty)' }
    $all = $Text -split "`r?`n" | Where-Object { $_ -ne '' }
    ($all | Select-Object -Last $Lines) -join [Environment]::NewLine
}

function ConvertTo-SandboxHost {
    param($Json)
    [pscustomobject]@{
        PSTypeName         = 'Moltar.SandboxHost'
        Name               = $Json.name
        InstanceId         = $Json.instanceId
        Address            = $Json.address
        Port               = [int]$Json.port
        Pid                = if ($null -ne $Json.pid) { [int]$Json.pid } else { $null }
        HostPublicKey      = $Json.hostPublicKey
        HostKeyFingerprint = $Json.hostKeyFingerprint
    }
}

function Invoke-SandboxControl {
    param(
        [Parameter(Mandatory)] $Sandbox,
        [Parameter(Mandatory)] [string]$Method,
        [Parameter(Mandatory)] [string]$Path,
        $Body
    )
    $uri = "$($Sandbox.Endpoint)/_sandbox/$Path"
    $request = @{ Method = $Method; Uri = $uri; TimeoutSec = 120; ErrorAction = 'Stop' }
    if ($PSBoundParameters.ContainsKey('Body')) {
        $request.ContentType = 'application/json'
        $request.Body = if ($Body -is [string]) { $Body } else { ConvertTo-Json -InputObject $Body -Depth 10 -Compress }
    }
    try {
        Invoke-RestMethod @request
    }
    catch {
        $detail = $_.ErrorDetails.Message
        if ($detail) {
            try { $detail = ($detail | ConvertFrom-Json -ErrorAction Stop).error } catch { }
        }
        if (-not $detail) { $detail = $_.Exception.Message }
        throw "Sandbox control $Method /_sandbox/$Path failed: $detail"
    }
}

<#
.SYNOPSIS
    Starts a sandbox process and waits for its ready line.
.OUTPUTS
    Moltar.Sandbox: Endpoint, SsmEndpoint (the SSM stand-in: set AWS_ENDPOINT_URL_SSM to it), S3Endpoint (its output
    bucket: set AWS_ENDPOINT_URL_S3 to it), Region, User, ClientKeyPath, KnownHostsPath, Hosts, StateDir, Process, Pid,
    Instances (count served), StartupSeconds and Startup (how the hosts' start went, one line; null without hosts), AccessKey/SecretKey (any values work; the endpoint checks the SigV4 shape only), Ready (raw JSON).
#>
function Start-MoltarSandbox {
    [CmdletBinding()]
    [OutputType('Moltar.Sandbox')]
    param(
        [ValidateRange(0, 1000)] [int]$Hosts = 0,
        [ValidateRange(0, 1000000)] [int]$Synthetic = 0,
        [string]$FleetFile,
        [string]$AptRepository,
        [string]$Project,
        [string[]]$Environments,
        [string[]]$Clusters,
        [switch]$SharedRoot,
        [ValidateRange(0, 65535)] [int]$Port = 0,
        [string]$SandboxPath = $script:DefaultSandboxPath,
        # A hang guard, not a speed limit: the sandbox itself waits for each host (adapting to load) and exits with
        # the failed hosts' logs when one never comes up. Default: 10 minutes, 2 s more per host past 300 (180 hosts
        # took 162 s beside two other suites).
        [ValidateRange(1, 7200)] [int]$TimeoutSeconds = 0
    )
    if ($TimeoutSeconds -eq 0) { $TimeoutSeconds = 600 + 2 * [Math]::Max(0, $Hosts - 300) }

    if (-not (Test-Path -LiteralPath $SandboxPath -PathType Leaf)) {
        $PSCmdlet.ThrowTerminatingError((New-SandboxError -ErrorId 'SandboxNotBuilt' -Category ObjectNotFound -Target $SandboxPath `
            -Message "The sandbox is not built: '$SandboxPath' does not exist. Run: dotnet build -c Release Tests/Sandbox/Moltar.Sandbox"))
    }

    $stateDir = [System.IO.Directory]::CreateTempSubdirectory('moltar-sandbox-').FullName
    $info = [System.Diagnostics.ProcessStartInfo]::new((Get-DotnetPath))
    $info.UseShellExecute = $false
    $info.RedirectStandardInput = $true
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $arguments = [System.Collections.Generic.List[string]]::new()
    $arguments.AddRange([string[]]@((Resolve-Path -LiteralPath $SandboxPath).ProviderPath, '--state-dir', $stateDir, '--port', $Port))
    if ($Hosts) { $arguments.AddRange([string[]]@('--hosts', $Hosts)) }
    if ($Synthetic) { $arguments.AddRange([string[]]@('--synthetic', $Synthetic)) }
    if ($FleetFile) { $arguments.AddRange([string[]]@('--fleet', (Resolve-Path -LiteralPath $FleetFile).ProviderPath)) }
    if ($AptRepository) { $arguments.AddRange([string[]]@('--apt-repo', (Resolve-Path -LiteralPath $AptRepository).ProviderPath)) }
    if ($Project) { $arguments.AddRange([string[]]@('--project', $Project)) }
    if ($Environments) { $arguments.AddRange([string[]]@('--environments', ($Environments -join ','))) }
    if ($Clusters) { $arguments.AddRange([string[]]@('--clusters', ($Clusters -join ','))) }
    if ($SharedRoot) { $arguments.Add('--shared-root') }
    foreach ($argument in $arguments) { $info.ArgumentList.Add($argument) }

    Write-Verbose "Starting sandbox: $($info.FileName) $($arguments -join ' ')"
    $process = [System.Diagnostics.Process]::Start($info)
    # Drain stderr for the whole life of the process (a full pipe would block it); read it on failure.
    $stderr = $process.StandardError.ReadToEndAsync()
    $line = $process.StandardOutput.ReadLineAsync()
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not $line.Wait(100)) {
        if ($process.HasExited -or [DateTime]::UtcNow -gt $deadline) { break }
    }

    $ready = $null
    if ($line.IsCompleted -and -not $line.IsFaulted -and $line.Result) {
        try { $ready = $line.Result | ConvertFrom-Json -ErrorAction Stop } catch { $ready = $null }
    }
    if ($null -eq $ready) {
        $timedOut = -not $process.HasExited
        if ($timedOut) {
            try { $process.Kill($true) } catch { }
        }
        [void]$process.WaitForExit(10000)
        $tail = if ($stderr.Wait(5000)) { Get-TextTail $stderr.Result } else { '(stderr unavailable)' }
        $exitCode = if ($process.HasExited) { $process.ExitCode } else { $null }
        $process.Dispose()
        Remove-Item -LiteralPath $stateDir -Recurse -Force -ErrorAction SilentlyContinue
        $errorId, $category, $what = if ($timedOut) {
            'SandboxTimeout', [System.Management.Automation.ErrorCategory]::OperationTimeout, "did not print its ready line within $TimeoutSeconds s"
        }
        elseif ($exitCode -eq 2) {
            'SandboxBadOptions', [System.Management.Automation.ErrorCategory]::InvalidArgument, 'rejected its options (exit 2)'
        }
        elseif ($exitCode -eq 3) {
            'SandboxPrerequisitesMissing', [System.Management.Automation.ErrorCategory]::NotInstalled, 'cannot run sshd hosts here (exit 3)'
        }
        else {
            'SandboxFailed', [System.Management.Automation.ErrorCategory]::InvalidResult, "exited with code $exitCode before it was ready"
        }
        $PSCmdlet.ThrowTerminatingError((New-SandboxError -ErrorId $errorId -Category $category -Target $SandboxPath `
            -Message "The sandbox $what.$([Environment]::NewLine)$tail"))
    }
    # Keep stdout drained too; the sandbox prints nothing after the ready line.
    $null = $process.StandardOutput.BaseStream.CopyToAsync([System.IO.Stream]::Null)

    [pscustomobject]@{
        PSTypeName     = 'Moltar.Sandbox'
        Endpoint       = $ready.endpoint
        SsmEndpoint    = $ready.ssmEndpoint
        S3Endpoint     = $ready.s3Endpoint
        Region         = $ready.region
        User           = $ready.user
        ClientKeyPath  = $ready.clientKeyPath
        KnownHostsPath = $ready.knownHostsPath
        Hosts          = @($ready.hosts | Where-Object { $_ } | ForEach-Object { ConvertTo-SandboxHost $_ })
        StateDir       = $stateDir
        Process        = $process
        Pid            = $process.Id
        Instances      = if ($ready.PSObject.Properties['instances']) { [int]$ready.instances } else { $null }
        StartupSeconds = if ($ready.PSObject.Properties['startupSeconds']) { $ready.startupSeconds } else { $null }
        Startup        = if ($ready.PSObject.Properties['startup']) { $ready.startup } else { $null }
        AccessKey      = 'AKIAMOLTARSANDBOX001'
        SecretKey      = 'moltar-sandbox-secret'
        Ready          = $line.Result
        StandardError  = $stderr
    }
}

<#
.SYNOPSIS
    Stops a sandbox: closes its stdin (it stops every host and exits), waits, kills it by PID if it
    hangs, and removes its state folder.
#>
function Stop-MoltarSandbox {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline)] [psobject]$Sandbox,
        [ValidateRange(1, 600)] [int]$TimeoutSeconds = 30,
        [switch]$KeepStateDir
    )
    process {
        $process = [System.Diagnostics.Process]$Sandbox.Process
        try {
            if (-not $process.HasExited) {
                try { $process.StandardInput.Close() } catch { }
                if (-not $process.WaitForExit($TimeoutSeconds * 1000)) {
                    Write-Warning "Sandbox process $($Sandbox.Pid) did not stop within $TimeoutSeconds s after stdin closed; killing it."
                    try { $process.Kill($true) } catch { }
                    [void]$process.WaitForExit(10000)
                }
            }
            if ($process.HasExited -and $process.ExitCode -ne 0) {
                $tail = if ($Sandbox.StandardError -and $Sandbox.StandardError.Wait(2000)) { Get-TextTail $Sandbox.StandardError.Result } else { '' }
                Write-Warning "Sandbox process $($Sandbox.Pid) exited with code $($process.ExitCode). $tail"
            }
        }
        finally {
            $process.Dispose()
        }
        if (-not $KeepStateDir -and $Sandbox.StateDir -and (Test-Path -LiteralPath $Sandbox.StateDir)) {
            try {
                Remove-Item -LiteralPath $Sandbox.StateDir -Recurse -Force -ErrorAction Stop
            }
            catch {
                Write-Warning "Could not remove the sandbox state folder '$($Sandbox.StateDir)': $($_.Exception.Message)"
            }
        }
    }
}

<#
.SYNOPSIS
    Injects faults into the EC2 endpoint (replaces the current ones). Only the given settings are sent.
.PARAMETER ThrottleFirst
    The next K EC2 requests get HTTP 503 RequestLimitExceeded (the SDK retries these).
.PARAMETER ErrorFirst
    The next K EC2 requests (after throttled ones) get HTTP 500 InternalError.
.PARAMETER ErrorRate
    Each EC2 request fails with HTTP 500 InternalError with this probability (repeatable with -Seed).
.PARAMETER AuthFailure
    Every EC2 request gets HTTP 401 AuthFailure (the SDK does not retry it).
.PARAMETER DelayMs
    Every EC2 answer is delayed by this many milliseconds.
#>
function Set-MoltarSandboxFault {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)] [psobject]$Sandbox,
        [ValidateRange(0, [int]::MaxValue)] [int]$ThrottleFirst,
        [ValidateRange(0, [int]::MaxValue)] [int]$ErrorFirst,
        [ValidateRange(0.0, 1.0)] [double]$ErrorRate,
        [switch]$AuthFailure,
        [int]$Seed,
        [ValidateRange(0, 600000)] [int]$DelayMs
    )
    $body = [ordered]@{}
    if ($PSBoundParameters.ContainsKey('ThrottleFirst')) { $body.throttleFirst = $ThrottleFirst }
    if ($PSBoundParameters.ContainsKey('ErrorFirst')) { $body.errorFirst = $ErrorFirst }
    if ($PSBoundParameters.ContainsKey('ErrorRate')) { $body.errorRate = $ErrorRate }
    if ($PSBoundParameters.ContainsKey('AuthFailure')) { $body.authFailure = [bool]$AuthFailure }
    if ($PSBoundParameters.ContainsKey('Seed')) { $body.seed = $Seed }
    if ($PSBoundParameters.ContainsKey('DelayMs')) { $body.delayMs = $DelayMs }
    $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Post -Path 'faults' -Body ([pscustomobject]$body)
}

<# .SYNOPSIS Removes every injected fault. #>
function Clear-MoltarSandboxFault {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [psobject]$Sandbox)
    $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Delete -Path 'faults'
}

<#
.SYNOPSIS
    The EC2 requests the sandbox received, oldest first: Action, Parameters (every form field, e.g.
    'Filter.1.Name'), Status, ErrorCode, AccessKeyId, Region, RequestId, Method, UserAgent, Time, DurationMs.
#>
function Get-MoltarSandboxRequest {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)] [psobject]$Sandbox,
        [string]$Action
    )
    $requests = Invoke-SandboxControl -Sandbox $Sandbox -Method Get -Path 'requests'
    foreach ($request in @($requests)) {
        if ($null -eq $request) { continue }
        if ($Action -and $request.action -ne $Action) { continue }
        [pscustomobject]@{
            PSTypeName  = 'Moltar.SandboxRequest'
            Action      = $request.action
            Parameters  = $request.parameters
            Status      = [int]$request.status
            ErrorCode   = $request.errorCode
            AccessKeyId = $request.accessKeyId
            Region      = $request.region
            RequestId   = $request.requestId
            Method      = $request.method
            UserAgent   = $request.userAgent
            Time        = $request.time
            DurationMs  = $request.durationMs
        }
    }
}

<# .SYNOPSIS Empties the request log. #>
function Clear-MoltarSandboxRequest {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [psobject]$Sandbox)
    $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Delete -Path 'requests'
}

<# .SYNOPSIS The instances the EC2 endpoint serves, as fleet JSON objects (camelCase properties). #>
function Get-MoltarSandboxFleet {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [psobject]$Sandbox)
    $fleet = Invoke-SandboxControl -Sandbox $Sandbox -Method Get -Path 'fleet'
    @($fleet.instances) | Where-Object { $null -ne $_ }
}

<#
.SYNOPSIS
    Replaces the instances the EC2 endpoint serves (fleet JSON, CONTRACT.md), from objects/hashtables
    (-Instance), a fleet JSON file (-Path) or a JSON string (-Json).
.EXAMPLE
    Set-MoltarSandboxFleet $sandbox -Instance @{ instanceId = 'i-0123456789abcdef0'; state = 'stopped'; tags = @{ Name = 'web-1' } }
#>
function Set-MoltarSandboxFleet {
    [CmdletBinding(DefaultParameterSetName = 'Instance')]
    param(
        [Parameter(Mandatory, Position = 0)] [psobject]$Sandbox,
        [Parameter(Mandatory, ParameterSetName = 'Instance', Position = 1)] [AllowEmptyCollection()] [object[]]$Instance,
        [Parameter(Mandatory, ParameterSetName = 'Path')] [string]$Path,
        [Parameter(Mandatory, ParameterSetName = 'Json')] [string]$Json
    )
    $body = switch ($PSCmdlet.ParameterSetName) {
        'Instance' { ConvertTo-Json -InputObject ([ordered]@{ instances = @($Instance) }) -Depth 10 -Compress }
        'Path' { Get-Content -LiteralPath $Path -Raw }
        'Json' { $Json }
    }
    $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Put -Path 'fleet' -Body $body
}

<# .SYNOPSIS Kills the sshd of one or more hosts (by PID; the instance stays "running" in EC2, like a hung machine). #>
function Stop-MoltarSandboxHost {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)] [psobject]$Sandbox,
        [Parameter(Mandatory, Position = 1, ValueFromPipeline, ValueFromPipelineByPropertyName)] [string[]]$Name
    )
    process {
        foreach ($hostName in $Name) {
            $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Post -Path "hosts/$([uri]::EscapeDataString($hostName))/stop"
            foreach ($entry in @($Sandbox.Hosts)) {
                if ($entry.Name -eq $hostName) { $entry.Pid = $null }
            }
        }
    }
}

<# .SYNOPSIS Starts stopped hosts again (same address, same host key); outputs the host with its new Pid. #>
function Start-MoltarSandboxHost {
    [CmdletBinding()]
    [OutputType('Moltar.SandboxHost')]
    param(
        [Parameter(Mandatory, Position = 0)] [psobject]$Sandbox,
        [Parameter(Mandatory, Position = 1, ValueFromPipeline, ValueFromPipelineByPropertyName)] [string[]]$Name
    )
    process {
        foreach ($hostName in $Name) {
            $started = ConvertTo-SandboxHost (Invoke-SandboxControl -Sandbox $Sandbox -Method Post -Path "hosts/$([uri]::EscapeDataString($hostName))/start")
            foreach ($entry in @($Sandbox.Hosts)) {
                if ($entry.Name -eq $hostName) { $entry.Pid = $started.Pid }
            }
            $started
        }
    }
}

<#
.SYNOPSIS
    Sets how the credential stand-ins behave (all optional; replaces the current settings): ImdsMode 'v2' or 'v1only',
    RoleName, Region (the instance identity document's), LifetimeSeconds of issued credentials, TokenTtlCapSeconds of
    IMDS tokens, ContainerAuthorization (the Authorization value the container endpoint requires), WebIdentityToken
    (the only token STS accepts). They answer at the sandbox endpoint: AWS_EC2_METADATA_SERVICE_ENDPOINT = Endpoint,
    AWS_CONTAINER_CREDENTIALS_FULL_URI = ContainerCredentialsUri, AWS_ENDPOINT_URL_STS = StsEndpoint (see Get-MoltarSandboxCredential).
#>
function Set-MoltarSandboxCredential {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)] [psobject]$Sandbox,
        [ValidateSet('v2', 'v1only')] [string]$ImdsMode = 'v2',
        [string]$RoleName,
        [string]$Region,
        [ValidateRange(1, 43200)] [int]$LifetimeSeconds,
        [ValidateRange(1, 21600)] [int]$TokenTtlCapSeconds,
        [string]$ContainerAuthorization,
        [string]$WebIdentityToken
    )
    $body = [ordered]@{ imdsMode = $ImdsMode }
    if ($RoleName) { $body.roleName = $RoleName }
    if ($Region) { $body.region = $Region }
    if ($LifetimeSeconds) { $body.lifetimeSeconds = $LifetimeSeconds }
    if ($TokenTtlCapSeconds) { $body.tokenTtlCapSeconds = $TokenTtlCapSeconds }
    if ($ContainerAuthorization) { $body.containerAuthorization = $ContainerAuthorization }
    if ($WebIdentityToken) { $body.webIdentityToken = $WebIdentityToken }
    $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Post -Path 'credentials' -Body ([pscustomobject]$body)
}

<# .SYNOPSIS The credentials the stand-ins issued (Source imds/container/sts, AccessKeyId, Expiration, Time) and where they answer. #>
function Get-MoltarSandboxCredential {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [psobject]$Sandbox)
    $state = Invoke-SandboxControl -Sandbox $Sandbox -Method Get -Path 'credentials'
    [pscustomobject]@{
        MetadataEndpoint        = $Sandbox.Endpoint
        ContainerCredentialsUri = "$($Sandbox.Endpoint)/_container/credentials"
        StsEndpoint             = "$($Sandbox.Endpoint)/_sts"
        Settings                = $state.settings
        Issued                  = @($state.issued | Where-Object { $null -ne $_ } | ForEach-Object {
            [pscustomobject]@{ Source = $_.source; AccessKeyId = $_.accessKeyId; Expiration = [DateTimeOffset]$_.expiration; Time = [DateTimeOffset]$_.time }
        })
    }
}

<#
.SYNOPSIS
    Sets how the SSM stand-in behaves (replaces the current settings; none given = every running instance managed,
    no faults): Unmanaged (instance ids with no agent: SendCommand refuses them), Undeliverable (agents that never
    report: invocations end Failed/Undeliverable after UndeliverableAfterMs), AccessDenied, ThrottleFirst (the next K
    SSM requests, of ThrottleActions only when given, answer ThrottlingException), StartDelayMs (agents wait before
    running, so a test can act while commands are in flight), VisibleAfterMs (a new command's invocations stay out of
    sight that long, as the eventually consistent service has them: not listed, InvocationDoesNotExist),
    SendCommandReplyDelayMs (a successful SendCommand is answered that long after its command began: a client can give
    up while the command already runs), OutputUploadDenied (instances whose agents may not write to the output bucket:
    their S3 objects are missing).
#>
function Set-MoltarSandboxSsm {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)] [psobject]$Sandbox,
        [string[]]$Unmanaged,
        [string[]]$Undeliverable,
        [ValidateRange(0, 600000)] [int]$UndeliverableAfterMs,
        [string[]]$AccessDenied,
        [ValidateRange(0, 100000)] [int]$ThrottleFirst,
        [string[]]$ThrottleActions,
        [ValidateRange(0, 600000)] [int]$StartDelayMs,
        [ValidateRange(0, 600000)] [int]$VisibleAfterMs,
        [ValidateRange(0, 600000)] [int]$SendCommandReplyDelayMs,
        [string[]]$OutputUploadDenied
    )
    $body = [ordered]@{}
    if ($Unmanaged) { $body.unmanaged = @($Unmanaged) }
    if ($Undeliverable) { $body.undeliverable = @($Undeliverable) }
    if ($PSBoundParameters.ContainsKey('UndeliverableAfterMs')) { $body.undeliverableAfterMs = $UndeliverableAfterMs }
    if ($AccessDenied) { $body.accessDenied = @($AccessDenied) }
    if ($PSBoundParameters.ContainsKey('ThrottleFirst')) { $body.throttleFirst = $ThrottleFirst }
    if ($ThrottleActions) { $body.throttleActions = @($ThrottleActions) }
    if ($PSBoundParameters.ContainsKey('StartDelayMs')) { $body.startDelayMs = $StartDelayMs }
    if ($PSBoundParameters.ContainsKey('VisibleAfterMs')) { $body.visibleAfterMs = $VisibleAfterMs }
    if ($PSBoundParameters.ContainsKey('SendCommandReplyDelayMs')) { $body.sendCommandReplyDelayMs = $SendCommandReplyDelayMs }
    if ($OutputUploadDenied) { $body.outputUploadDenied = @($OutputUploadDenied) }
    $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Post -Path 'ssm/settings' -Body ([pscustomobject]$body)
}

<# .SYNOPSIS The SSM requests the stand-in received, oldest first: Action (SendCommand...), Body (the JSON request), Status, ErrorCode, Time. #>
function Get-MoltarSandboxSsmRequest {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)] [psobject]$Sandbox,
        [string]$Action
    )
    # Assigned first: Invoke-RestMethod writes a JSON array as one object, which @(...) would wrap once more.
    $requests = Invoke-SandboxControl -Sandbox $Sandbox -Method Get -Path 'ssm/requests'
    foreach ($request in @($requests)) {
        if ($null -eq $request) { continue }
        if ($Action -and $request.action -ne $Action) { continue }
        [pscustomobject]@{
            PSTypeName = 'Moltar.SandboxSsmRequest'
            Action     = $request.action
            Body       = $request.body
            Status     = [int]$request.status
            ErrorCode  = $request.errorCode
            Time       = $request.time
        }
    }
}

<#
.SYNOPSIS
    The sshd side of each sandbox host, read from /proc: its listener (the shallowest sshd under the host's PID), the
    sshd processes of its open connections (the listener's sshd descendants: one connection is one or two of them, a
    command's shell is not one), and the CPU seconds the host's sshd has spent: the listener with the sessions it
    has reaped (ended connections) and the open sessions with the commands they have reaped (kept connections).
    Linux only; -Name picks hosts.
#>
function Get-MoltarSandboxSshd {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [psobject]$Sandbox, [Parameter(Position = 1)] [string[]]$Name)
    $parent = @{}; $comm = @{}; $ticks = @{}
    foreach ($dir in [IO.Directory]::GetDirectories('/proc')) {
        $id = 0
        if (-not [int]::TryParse([IO.Path]::GetFileName($dir), [ref] $id)) { continue }
        try { $stat = [IO.File]::ReadAllText("$dir/stat") } catch { continue } # the process ended meanwhile
        $open = $stat.IndexOf('('); $close = $stat.LastIndexOf(')')
        $comm[$id] = $stat.Substring($open + 1, $close - $open - 1)
        $fields = $stat.Substring($close + 2).Split(' ')
        $parent[$id] = [int] $fields[1]
        $ticks[$id] = [long] $fields[11] + [long] $fields[12] + [long] $fields[13] + [long] $fields[14] # utime stime cutime cstime
    }
    $children = @{}
    foreach ($id in $parent.Keys) {
        if (-not $children.ContainsKey($parent[$id])) { $children[$parent[$id]] = [Collections.Generic.List[int]]::new() }
        $children[$parent[$id]].Add($id)
    }
    foreach ($h in @($Sandbox.Hosts | Where-Object { -not $Name -or $_.Name -in $Name })) {
        $listener = $null
        $queue = [Collections.Generic.Queue[int]]::new()
        if ($null -ne $h.Pid) { $queue.Enqueue([int] $h.Pid) }
        while ($queue.Count -and $null -eq $listener) {
            $id = $queue.Dequeue()
            if ($comm[$id] -like 'sshd*') { $listener = $id }
            elseif ($children.ContainsKey($id)) { foreach ($child in $children[$id]) { $queue.Enqueue($child) } }
        }
        $sessions = [Collections.Generic.List[int]]::new()
        $queue.Clear()
        if ($null -ne $listener -and $children.ContainsKey($listener)) { foreach ($child in $children[$listener]) { $queue.Enqueue($child) } }
        while ($queue.Count) {
            $id = $queue.Dequeue()
            if ($comm[$id] -like 'sshd*') { $sessions.Add($id) }
            if ($children.ContainsKey($id)) { foreach ($child in $children[$id]) { $queue.Enqueue($child) } }
        }
        [pscustomobject]@{
            Name        = $h.Name
            ListenerPid = $listener
            Sessions    = @($sessions | Sort-Object)
            # The listener's own CPU and that of the sessions it has reaped, plus the live sessions' (a kept connection's
            # commands are reaped by its session, not the listener): each tick counted once, whether a session is
            # still open or already ended. USER_HZ = 100.
            CpuSeconds  = if ($null -ne $listener) { ($ticks[$listener] + ($sessions | ForEach-Object { $ticks[$_] } | Measure-Object -Sum).Sum) / 100.0 } else { 0.0 }
        }
    }
}

<# .SYNOPSIS Empties the SSM request log. #>
function Clear-MoltarSandboxSsmRequest {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [psobject]$Sandbox)
    $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Delete -Path 'ssm/requests'
}

<# .SYNOPSIS The commands the SSM stand-in holds: commandId, status, maxConcurrency, maxErrors, invocations (instanceId, status, statusDetails, responseCode). #>
function Get-MoltarSandboxSsmCommand {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [psobject]$Sandbox)
    $commands = Invoke-SandboxControl -Sandbox $Sandbox -Method Get -Path 'ssm/commands'
    @($commands) | Where-Object { $null -ne $_ }
}

<# .SYNOPSIS The requests the output bucket stand-in (S3) received, oldest first: Method, Bucket, Key, Status, ErrorCode; -Clear empties the log after reading it. #>
function Get-MoltarSandboxS3Request {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [psobject]$Sandbox, [switch]$Clear)
    $requests = Invoke-SandboxControl -Sandbox $Sandbox -Method Get -Path 's3/requests'
    foreach ($request in @($requests)) {
        if ($null -eq $request) { continue }
        [pscustomobject]@{
            PSTypeName = 'Moltar.SandboxS3Request'
            Method     = $request.method
            Bucket     = $request.bucket
            Key        = $request.key
            Status     = [int]$request.status
            ErrorCode  = $request.errorCode
        }
    }
    if ($Clear) { $null = Invoke-SandboxControl -Sandbox $Sandbox -Method Delete -Path 's3/requests' }
}

Export-ModuleMember -Function Set-MoltarSandboxSsm, Get-MoltarSandboxSsmRequest, Clear-MoltarSandboxSsmRequest, Get-MoltarSandboxSsmCommand, Get-MoltarSandboxS3Request
Export-ModuleMember -Function Set-MoltarSandboxCredential, Get-MoltarSandboxCredential, Get-MoltarSandboxSshd
Export-ModuleMember -Function Start-MoltarSandbox, Stop-MoltarSandbox, Set-MoltarSandboxFault, Clear-MoltarSandboxFault,
    Get-MoltarSandboxRequest, Clear-MoltarSandboxRequest, Get-MoltarSandboxFleet, Set-MoltarSandboxFleet,
    Stop-MoltarSandboxHost, Start-MoltarSandboxHost
