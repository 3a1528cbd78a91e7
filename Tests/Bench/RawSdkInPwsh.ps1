# The raw SDK baseline inside pwsh: AWSSDK.Core/EC2 (the module's own copies) loaded into a plain pwsh without
# Moltar, DescribeInstances paged by NextToken with the request Get-MoltarInstance sends. Same process type, runtime
# settings and heap as the Moltar figure. One JSON line like RawPaginator's.
param(
    [Parameter(Mandatory)] [string] $DependencyPath,
    [Parameter(Mandatory)] [string] $Endpoint,
    [string] $Region = 'us-east-1',
    [int] $Runs = 10
)
$ErrorActionPreference = 'Stop'
function Get-ProcStatus([string] $field) {
    $line = Select-String -Path /proc/self/status -Pattern "^${field}:" | Select-Object -First 1
    if ($line) { [long](($line.Line -split '\s+')[1]) * 1024 } else { 0 }
}
Add-Type -Path (Join-Path $DependencyPath 'AWSSDK.Core.dll'), (Join-Path $DependencyPath 'AWSSDK.EC2.dll')
$rssBefore = Get-ProcStatus VmRSS
$pages = 0; $count = 0
$times = foreach ($run in 1..$Runs) {
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $config = [Amazon.EC2.AmazonEC2Config]::new()
    $config.ServiceURL = $Endpoint
    $config.AuthenticationRegion = $Region
    $client = [Amazon.EC2.AmazonEC2Client]::new([Amazon.Runtime.BasicAWSCredentials]::new('AKIAMOLTARSANDBOX001', 'moltar-sandbox-secret'), $config)
    $filter = [Amazon.EC2.Model.Filter]::new()
    $filter.Name = 'instance-state-name'
    $filter.Values = [Collections.Generic.List[string]]::new([string[]]@('running'))
    $request = [Amazon.EC2.Model.DescribeInstancesRequest]::new()
    $request.Filters = [Collections.Generic.List[Amazon.EC2.Model.Filter]]::new([Amazon.EC2.Model.Filter[]]@($filter))
    $request.MaxResults = 1000
    $pages = 0; $count = 0
    do {
        $page = $client.DescribeInstancesAsync($request).GetAwaiter().GetResult()
        $pages++
        foreach ($reservation in $page.Reservations) { $count += $reservation.Instances.Count }
        $request.NextToken = $page.NextToken
    } while ($page.NextToken)
    $client.Dispose()
    $clock.Elapsed.TotalMilliseconds
}
[ordered]@{ milliseconds = @($times); instances = $count; pages = $pages; rssBeforeBytes = $rssBefore; peakRssBytes = (Get-ProcStatus VmHWM) } | ConvertTo-Json -Compress
