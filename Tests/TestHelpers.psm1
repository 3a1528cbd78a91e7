# Shared by the Pester files: where the built module is, a clean AWS environment, and the sandbox.
$script:SandboxModule = Join-Path $PSScriptRoot 'Sandbox/Sandbox.psm1'

function Get-TestModulePath {
    if ($env:MOLTAR_TEST_MODULE) { return $env:MOLTAR_TEST_MODULE }
    $built = Get-ChildItem (Join-Path $PSScriptRoot '../out/Moltar') -Filter Moltar.psd1 -Recurse -ErrorAction Ignore | Select-Object -First 1
    if (-not $built) { throw 'The module is not built: run ./build.ps1 -Task Build (tests import the built folder, never sources).' }
    $built.FullName
}

function Get-PwshInvocation {
    <# How to start another pwsh like this one: the dotnet tool runs as 'dotnet pwsh.dll'. #>
    $process = [Environment]::ProcessPath
    $arguments = @()
    if ([IO.Path]::GetFileNameWithoutExtension($process) -eq 'dotnet') {
        $arguments = @([Reflection.Assembly]::GetEntryAssembly().Location)
    }
    [pscustomobject]@{ FilePath = $process; Arguments = $arguments }
}

function Invoke-CleanPwsh {
    <# Runs a command in a fresh pwsh (no profile, non-interactive) and returns its output; $LASTEXITCODE is its exit code. #>
    param([Parameter(Mandatory)] [string] $Command)
    $pwsh = Get-PwshInvocation
    & $pwsh.FilePath @($pwsh.Arguments) -NoProfile -NonInteractive -Command $Command
}

function Get-TestPackagePath {
    <# A file inside a NuGet package that build/tools.proj restored (e.g. the older AWSSDK.Core for isolation tests). #>
    param([Parameter(Mandatory)] [string] $Package, [Parameter(Mandatory)] [string] $Version, [Parameter(Mandatory)] [string] $RelativePath)
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path ([Environment]::GetFolderPath('UserProfile')) '.nuget/packages' }
    $path = Join-Path $packages "$($Package.ToLowerInvariant())/$Version/$RelativePath"
    if (-not (Test-Path $path)) { throw "$path is missing: build.ps1 -Task Test restores build/tools.proj first." }
    $path
}

function Get-CreatedScratch {
    # Kept per process, not per module import: every test file imports this module again with -Force.
    $created = [AppDomain]::CurrentDomain.GetData('MoltarTestScratch')
    if (-not $created) {
        $created = [Collections.Generic.HashSet[string]]::new([StringComparer]::Ordinal)
        [AppDomain]::CurrentDomain.SetData('MoltarTestScratch', $created)
    }
    , $created
}

function New-TestScratch {
    <# A new folder with a name nobody else has (never a fixed name an earlier or parallel run could have left or
       be using) under the temp folder, recorded so that Remove-TestScratch removes exactly it. #>
    param([Parameter(Mandatory)] [ValidatePattern('^[A-Za-z0-9-]+$')] [string] $Name)
    $path = [IO.Directory]::CreateTempSubdirectory("moltar-$Name-").FullName
    $null = (Get-CreatedScratch).Add($path)
    $path
}

function Remove-TestScratch {
    <# Removes a folder that New-TestScratch made in this process, and nothing else: $null, '' or any other path (a
       set-up that failed before it made its folder, a variable that was never set) is left alone. #>
    param([AllowNull()] [AllowEmptyString()] [string] $Path)
    $created = Get-CreatedScratch
    if (-not $Path -or -not $created.Contains($Path)) { return }
    Remove-Item -LiteralPath $Path -Recurse -Force -ErrorAction Ignore
    $null = $created.Remove($Path)
}

function Get-SandboxSkipReason {
    # Empty when the sandbox fleet can run here; otherwise why not (build.ps1 fails instead when CI=true).
    "$env:MOLTAR_TEST_SKIP_REASON"
}

function Enter-TestHome {
    <# A scratch folder for one test file: AWS settings pointed into it (with a 'demo' profile), HOME pointed at its
       empty home/ (the engine reads ~ for default keys, ~/.ssh/config and known_hosts) and no ssh agent, so nothing
       reads or writes the real ~/.ssh or ~/.aws. Returns what Exit-TestHome needs to put the process back. #>
    param([Parameter(Mandatory)] [string] $Name)
    $scratch = New-TestScratch -Name $Name
    Set-TestAwsEnvironment -Directory (Join-Path $scratch 'aws')
    Add-TestAwsProfile -Name 'demo' -Region 'us-east-1'
    $saved = [pscustomobject]@{ Scratch = $scratch; Home = $env:HOME; Agent = $env:SSH_AUTH_SOCK }
    $env:HOME = Join-Path $scratch 'home'
    New-Item -ItemType Directory -Force -Path $env:HOME | Out-Null
    Remove-Item env:SSH_AUTH_SOCK -ErrorAction Ignore
    $saved
}

function Exit-TestHome {
    <# Undoes Enter-TestHome: HOME and the agent as they were, no sandbox endpoint, the scratch folder gone. Nothing
       to undo (the set-up failed before Enter-TestHome returned) is nothing done. #>
    param([AllowNull()] $Saved)
    if (-not $Saved) { return }
    $env:HOME = $Saved.Home
    if ($Saved.Agent) { $env:SSH_AUTH_SOCK = $Saved.Agent } else { Remove-Item env:SSH_AUTH_SOCK -ErrorAction Ignore }
    Remove-Item env:MOLTAR_ENDPOINT_URL -ErrorAction Ignore
    Remove-TestScratch $Saved.Scratch
}

function Set-TestAwsEnvironment {
    <# Points every AWS setting at a scratch folder so a developer's real ~/.aws is never read or used.
       The AWS SDK reads AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE once per process (static default paths),
       so a second test file in the same Pester process that named another folder would add profiles the SDK
       never reads. The first folder named in a process is therefore kept for every later call (made again and
       emptied each time); Invoke-PesterRun.ps1 removes it at the end. #>
    param([Parameter(Mandatory)] [string] $Directory)
    New-Item -ItemType Directory -Force -Path $Directory | Out-Null    # callers may keep other scratch files there
    $pinned = [AppDomain]::CurrentDomain.GetData('MoltarTestAwsDirectory')
    if ($pinned) { $Directory = $pinned } else { [AppDomain]::CurrentDomain.SetData('MoltarTestAwsDirectory', $Directory) }
    New-Item -ItemType Directory -Force -Path $Directory | Out-Null
    foreach ($name in 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE',
                      'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_EC2', 'AWS_ENDPOINT_URL_SSM', 'AWS_ENDPOINT_URL_S3', 'MOLTAR_TRANSPORT',
                      'MOLTAR_PROJECT', 'MOLTAR_PROFILE', 'MOLTAR_REGION', 'MOLTAR_ENDPOINT_URL', 'MOLTAR_PACKAGES',
                      'MOLTAR_USER', 'MOLTAR_PORT', 'MOLTAR_ADDRESS_TYPE', 'MOLTAR_JUMP_HOST', 'MOLTAR_THROTTLE_LIMIT',
                      'MOLTAR_KEY_FILE', 'MOLTAR_KNOWN_HOSTS', 'MOLTAR_STRICT_HOST_KEY_CHECKING', 'MOLTAR_PROFILE_LOCATION') {
        Remove-Item "env:$name" -ErrorAction Ignore
    }
    $env:AWS_SHARED_CREDENTIALS_FILE = Join-Path $Directory 'credentials'
    $env:AWS_CONFIG_FILE = Join-Path $Directory 'config'
    $env:AWS_EC2_METADATA_DISABLED = 'true'
    Set-Content -Path $env:AWS_SHARED_CREDENTIALS_FILE -Value ''
    Set-Content -Path $env:AWS_CONFIG_FILE -Value ''
}

function Add-TestAwsProfile {
    param([Parameter(Mandatory)] [string] $Name, [string] $Region, [string] $AccessKey = 'AKIDTEST', [string] $SecretKey = 'test-secret-key')
    Add-Content -Path $env:AWS_SHARED_CREDENTIALS_FILE -Value "[$Name]`naws_access_key_id = $AccessKey`naws_secret_access_key = $SecretKey`n"
    if ($Region) {
        $section = if ($Name -eq 'default') { 'default' } else { "profile $Name" }
        Add-Content -Path $env:AWS_CONFIG_FILE -Value "[$section]`nregion = $Region`n"
    }
}

function Start-TestSandbox {
    <# Starts the sandbox for one test file; call Stop-TestSandbox in AfterAll. #>
    param([int] $Hosts = 0, [int] $Synthetic = 0, [string] $FleetFile, [hashtable] $Options = @{})
    Import-Module $script:SandboxModule -Force -Global
    $arguments = @{ Hosts = $Hosts; Synthetic = $Synthetic } + $Options
    if ($FleetFile) { $arguments.FleetFile = $FleetFile }
    if ($env:MOLTAR_TEST_SANDBOX) { $arguments.SandboxPath = $env:MOLTAR_TEST_SANDBOX }
    $sandbox = Start-MoltarSandbox @arguments
    if ($sandbox.Startup) { Write-Host "Sandbox: $($sandbox.Startup)" }
    $sandbox
}

function Stop-TestSandbox {
    param([AllowNull()] $Sandbox)
    if ($Sandbox) { Stop-MoltarSandbox $Sandbox }
}

# The only wall-clock limit a test may have is a hang guard, minutes long, never a speed target: speed is measured
# by the benchmark (build.ps1 -Task Bench). A test that must show something is not waited for makes that thing
# longer than the guard ($NeverWaitedSeconds), so ending within the guard at all is the proof, however loaded the
# machine is.
$HangGuardSeconds = 180
$NeverWaitedSeconds = 600

function Read-TestHookRecord {
    <# The NAME=value lines a test's deploy hook wrote to a file, as a hashtable; $null when the hook did not run. #>
    param([Parameter(Mandatory)] [string] $Path)
    if (-not (Test-Path $Path)) { return $null }
    $values = @{}
    foreach ($line in Get-Content $Path) { $key, $value = $line -split '=', 2; $values[$key] = $value }
    $values
}

function Invoke-HangGuarded {
    <# Runs $Script (given $ArgumentList) in a runspace of its own, with the built module imported and the current
       location; returns its Output and its Errors (ErrorRecords, as -ErrorVariable would hold them). Fails the test
       if it has not ended within the hang guard. #>
    param([Parameter(Mandatory)] [scriptblock] $Script, [object[]] $ArgumentList = @(), [string] $What = 'the command')
    $ps = [powershell]::Create()
    $ps.Runspace = [runspacefactory]::CreateRunspace()
    $ps.Runspace.Open()
    $ps.Runspace.SessionStateProxy.Path.SetLocation((Get-Location).ProviderPath) | Out-Null
    $null = $ps.AddCommand('Import-Module').AddParameter('Name', (Get-TestModulePath)).AddStatement().AddScript($Script)
    foreach ($argument in $ArgumentList) { $null = $ps.AddArgument($argument) }
    $async = $ps.BeginInvoke()
    if (-not $async.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($HangGuardSeconds))) {
        $null = $ps.BeginStop($null, $null)   # not waited for: it may hang as well
        throw "Hang guard: $What had not ended after $($HangGuardSeconds / 60) minutes."
    }
    try { [pscustomobject]@{ Output = @($ps.EndInvoke($async)); Errors = @($ps.Streams.Error) } }
    finally { $ps.Runspace.Dispose(); $ps.Dispose() }
}

Export-ModuleMember -Function * -Variable HangGuardSeconds, NeverWaitedSeconds
