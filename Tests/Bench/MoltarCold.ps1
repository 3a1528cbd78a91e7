# One cold Moltar fan-out, as a person or a scheduled task runs it: a fresh pwsh imports the module, runs the
# command on every host in the file (results stream to stdout as the table view), exits 1 unless all succeeded.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $HostsFile,
    [Parameter(Mandatory)] [string] $Command,
    [Parameter(Mandatory)] [int] $ThrottleLimit,
    [Parameter(Mandatory)] [string] $KeyFile,
    [Parameter(Mandatory)] [string] $KnownHostsPath,
    [string] $User = 'ubuntu'
)
Import-Module $ModulePath -ErrorAction Stop
$hosts = Get-Content -LiteralPath $HostsFile
$hosts | Invoke-MoltarCommand -Command $Command -User $User -KeyFile $KeyFile -KnownHostsPath $KnownHostsPath `
    -SshConfigPath none -StrictHostKeyChecking Yes -ThrottleLimit $ThrottleLimit -OutVariable results
$ok = @($results | Where-Object Succeeded).Count
if ($ok -ne @($hosts).Count) { exit 1 }
exit 0
