BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-Module (Get-TestModulePath) -Force
    $script:Scratch = New-TestScratch -Name get
    New-Item -ItemType Directory -Force -Path $Scratch | Out-Null
    Set-TestAwsEnvironment -Directory (Join-Path $Scratch 'aws')
    Add-TestAwsProfile -Name 'shop' -Region 'us-east-1' -AccessKey 'AKIDSHOP'
    Add-TestAwsProfile -Name 'acme-shop' -Region 'us-east-1' -AccessKey 'AKIDACME'
    Add-TestAwsProfile -Name 'noregion' -AccessKey 'AKIDNOREGION'

    function New-TestInstance([string] $Id, [hashtable] $Tags, [string] $State = 'running', [string] $PrivateIp = '10.0.0.1', [string] $PublicIp) {
        @{ instanceId = $Id; state = $State; privateIpAddress = $PrivateIp; publicIpAddress = $PublicIp
           privateDnsName = "ip-$($PrivateIp -replace '\.', '-').ec2.internal"; tags = $Tags }
    }
    $script:Fleet = @(
        New-TestInstance 'i-0534a9f3c20000001' @{ Project = 'shop'; Environment = 'staging'; Cluster = 'web'; Name = 'shop-staging-web-1'; Packages = '|shop-web|' } -PrivateIp '10.0.0.53' -PublicIp '3.3.3.1'
        New-TestInstance 'i-0534b111110000002' @{ Project = 'shop'; Environment = 'staging'; Cluster = 'web'; Name = 'shop-staging-web-2'; Packages = '|shop-web|shop-worker|' } -PrivateIp '10.0.0.54'
        New-TestInstance 'i-0f000000000000003' @{ Project = 'shop'; Environment = 'staging'; Cluster = 'jobs'; Name = 'shop-staging-jobs-1'; Packages = '|shop-worker|' } -PrivateIp '10.0.0.60'
        New-TestInstance 'i-0a000000000000004' @{ Project = 'shop'; Environment = 'production'; Cluster = 'web'; Name = 'shop-production-web-1'; Packages = '|shop-web|'; Team = 'blue' } -PrivateIp '10.0.1.10' -PublicIp '3.3.3.4'
        New-TestInstance 'i-0b000000000000005' @{ Project = 'shop'; Environment = 'production'; Cluster = 'web'; Name = 'shop-production-web-2'; Packages = '|shop-web|'; Team = 'green' } -State 'stopped' -PrivateIp '10.0.1.11'
        New-TestInstance 'i-0c000000000000006' @{ Project = 'other'; Environment = 'staging'; Cluster = 'web'; Name = 'other-web-1' } -PrivateIp '10.0.2.1'
        New-TestInstance 'i-0d000000000000007' $null -PrivateIp '10.0.3.1'
        New-TestInstance 'i-0e000000000000008' @{ App = 'legacy'; Environment = 'staging'; Cluster = 'web'; Name = 'legacy-web-1' } -PrivateIp '10.0.4.1'
    )
    $fleetFile = Join-Path $Scratch 'fleet.json'
    @{ instances = $Fleet } | ConvertTo-Json -Depth 5 | Set-Content $fleetFile
    $script:Sandbox = Start-TestSandbox -FleetFile $fleetFile
    $env:MOLTAR_ENDPOINT_URL = $Sandbox.Endpoint

    $script:Repo = Join-Path $Scratch 'shop-repo'
    New-Item -ItemType Directory -Force -Path (Join-Path $Repo 'src/app') | Out-Null
    Set-Content (Join-Path $Repo '.moltar.psd1') "@{ Project = 'shop' }"
    Push-Location (Join-Path $Repo 'src/app')
}

AfterAll {
    Pop-Location -ErrorAction Ignore
    Stop-TestSandbox $Sandbox
    Remove-Item env:MOLTAR_ENDPOINT_URL -ErrorAction Ignore
    Remove-TestScratch $Scratch
}

Describe 'Get-MoltarInstance selection' {
    It 'lists the running instances of the project found from a subdirectory, ordered by name' {
        $found = Get-MoltarInstance
        $found.Name | Should -Be @('shop-production-web-1', 'shop-staging-jobs-1', 'shop-staging-web-1', 'shop-staging-web-2')
        $found | ForEach-Object { $_ | Should -BeOfType ([Moltar.MoltarInstance]) }
    }

    It 'takes Environment, Cluster and Name by position' {
        (Get-MoltarInstance staging web).Name | Should -Be @('shop-staging-web-1', 'shop-staging-web-2')
        (Get-MoltarInstance staging web 'web-2').InstanceId | Should -Be 'i-0534b111110000002'
        (Get-MoltarInstance -Cluster jobs).Name | Should -Be 'shop-staging-jobs-1'
    }

    It 'matches -Name terms against ids, tags and addresses, all terms joined by / required' {
        (Get-MoltarInstance -Name '34a').Name | Should -Be 'shop-staging-web-1'
        (Get-MoltarInstance -Name '34a/53').Name | Should -Be 'shop-staging-web-1'
        Get-MoltarInstance -Name '34a/54' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        (Get-MoltarInstance -Name '10.0.0.6').Name | Should -Be 'shop-staging-jobs-1'
        (Get-MoltarInstance -Name 'blue').Name | Should -Be 'shop-production-web-1'
    }

    It 'requires every -Package in the Packages tag' {
        (Get-MoltarInstance -Package shop-worker).Name | Should -Be @('shop-staging-jobs-1', 'shop-staging-web-2')
        (Get-MoltarInstance -Package shop-web, shop-worker).Name | Should -Be 'shop-staging-web-2'
    }

    It 'adds -Tag filters and -State' {
        (Get-MoltarInstance -Tag @{ Team = 'blue', 'green' }).Name | Should -Be 'shop-production-web-1'
        (Get-MoltarInstance -Tag @{ Team = 'green' } -State stopped).Name | Should -Be 'shop-production-web-2'
        (Get-MoltarInstance production -State All).Name | Should -Be @('shop-production-web-1', 'shop-production-web-2')
    }

    It 'returns just the first in listing order with -First' {
        (Get-MoltarInstance staging -First).Name | Should -Be 'shop-staging-jobs-1'
    }

    It 'lists untagged instances, with the instance id as display name, when no project narrows the search' {
        Push-Location $Scratch
        try {
            $all = Get-MoltarInstance -ProfileName shop -State All
            $all.InstanceId | Should -Contain 'i-0d000000000000007'
            ($all | Where-Object InstanceId -EQ 'i-0d000000000000007').DisplayName | Should -Be 'i-0d000000000000007'
            ($all | Where-Object InstanceId -EQ 'i-0d000000000000007').Tags.Count | Should -Be 0
        }
        finally { Pop-Location }
    }

    It 'uses the tag names the project file gives' {
        $legacy = Join-Path $Scratch 'legacy'
        New-Item -ItemType Directory -Force -Path $legacy | Out-Null
        Set-Content (Join-Path $legacy '.moltar.psd1') "@{ Project = 'legacy'; ProfileName = 'shop'; TagNames = @{ Project = 'App' } }"
        # ProfileName counts only from a trusted project file: trust this one (the record stays in the scratch folder).
        $saved = $env:XDG_CONFIG_HOME
        $env:XDG_CONFIG_HOME = Join-Path $Scratch 'config'
        Push-Location $legacy
        try {
            Approve-MoltarProject | Out-Null
            (Get-MoltarInstance).Name | Should -Be 'legacy-web-1'
        }
        finally {
            Pop-Location
            if ($saved) { $env:XDG_CONFIG_HOME = $saved } else { Remove-Item env:XDG_CONFIG_HOME -ErrorAction Ignore }
        }
    }

    It 'fills every property of the instance object' {
        $one = Get-MoltarInstance staging web 'web-1'
        $one.Project | Should -Be 'shop'
        $one.Environment | Should -Be 'staging'
        $one.Cluster | Should -Be 'web'
        $one.Packages | Should -Be @('shop-web')
        $one.State | Should -Be 'running'
        $one.Region | Should -Be 'us-east-1'
        $one.PrivateIpAddress | Should -Be '10.0.0.53'
        $one.PublicIpAddress | Should -Be '3.3.3.1'
        $one.PrivateDnsName | Should -Be 'ip-10-0-0-53.ec2.internal'
        $one.Address | Should -Be '3.3.3.1'
        $one.Tags['Name'] | Should -Be 'shop-staging-web-1'
        (Get-MoltarInstance staging web 'web-1' -AddressType Private).Address | Should -Be '10.0.0.53'
        (Get-MoltarInstance staging web 'web-2').Address | Should -Be '10.0.0.54'
    }
}

Describe 'Short ids' {
    It 'gives each instance the shortest unique prefix of at least 3 characters, which -Name finds again' {
        $all = Get-MoltarInstance -State All
        @($all.ShortId | Sort-Object -Unique).Count | Should -Be $all.Count
        ($all | Where-Object Name -EQ 'shop-staging-web-1').ShortId | Should -Be '0534a'
        ($all | Where-Object Name -EQ 'shop-production-web-1').ShortId | Should -Be '0a0'
        foreach ($instance in $all) {
            (Get-MoltarInstance -State All -Name $instance.ShortId).InstanceId | Should -Be $instance.InstanceId
        }
    }
}

Describe 'Output' {
    It 'shows a table of ShortId, Name, Environment, Cluster, State and Address' {
        $text = Get-MoltarInstance staging web | Format-Table | Out-String -Width 200
        $header = ($text -split "`n" | Where-Object { $_ -match 'ShortId' } | Select-Object -First 1) -split '\s+' | Where-Object { $_ }
        $header | Should -Be @('ShortId', 'Name', 'Environment', 'Cluster', 'State', 'Address')
        $text | Should -Match '0534a\s+shop-staging-web-1\s+staging\s+web\s+running\s+3\.3\.3\.1'
    }

    It 'narrates the context and the exact filters with -Verbose' {
        $verbose = Get-MoltarInstance staging web -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        ($verbose.Message -join "`n") | Should -Match 'tag:Project=shop; tag:Environment=staging; tag:Cluster=web; instance-state-name=running'
        ($verbose.Message -join "`n") | Should -Match "credentials from profile 'shop'"
    }
}

Describe 'Nothing found' {
    It 'is a non-terminating ObjectNotFound error naming the filters and the region' {
        $result = Get-MoltarInstance production jobs -ErrorVariable problems -ErrorAction SilentlyContinue
        $result | Should -BeNullOrEmpty
        $problems.Count | Should -Be 1
        $problems[0].FullyQualifiedErrorId | Should -Be 'InstanceNotFound,Moltar.Cmdlets.GetMoltarInstanceCommand'
        $problems[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $problems[0].Exception.Message | Should -Match 'Environment=production Cluster=jobs'
        $problems[0].Exception.Message | Should -Match 'us-east-1'
    }

    It 'stops a scheduled task with -ErrorAction Stop' {
        { Get-MoltarInstance production jobs -ErrorAction Stop } | Should -Throw -ErrorId 'InstanceNotFound,Moltar.Cmdlets.GetMoltarInstanceCommand'
    }
}

Describe 'Accounts and regions' {
    It 'picks the profile from the project name, lower-cased with dashes' {
        $verbose = Get-MoltarInstance -Project 'Acme Shop' -Verbose -ErrorAction SilentlyContinue 4>&1 |
            Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        ($verbose.Message -join "`n") | Should -Match "credentials from profile 'acme-shop'"
        (Get-MoltarSandboxRequest -Sandbox $Sandbox | Select-Object -Last 1).accessKeyId | Should -Be 'AKIDACME'
    }

    It 'refuses a project whose profile does not exist, naming the files read' {
        { Get-MoltarInstance -Project 'No Such Client' } |
            Should -Throw -ErrorId 'ProfileNotFound,Moltar.Cmdlets.GetMoltarInstanceCommand' -ExpectedMessage "*'No Such Client', 'no-such-client', 'no_such_client'*$($env:AWS_SHARED_CREDENTIALS_FILE)*"
    }

    It 'refuses a named profile that does not exist instead of falling back' {
        $env:AWS_ACCESS_KEY_ID = 'AKIDENV'; $env:AWS_SECRET_ACCESS_KEY = 'secret'
        try {
            { Get-MoltarInstance -ProfileName missing } | Should -Throw -ErrorId 'ProfileNotFound,Moltar.Cmdlets.GetMoltarInstanceCommand'
        }
        finally { Remove-Item env:AWS_ACCESS_KEY_ID, env:AWS_SECRET_ACCESS_KEY }
    }

    It 'says how to set a region when none is set' {
        { Get-MoltarInstance -ProfileName noregion } |
            Should -Throw -ErrorId 'RegionNotFound,Moltar.Cmdlets.GetMoltarInstanceCommand' -ExpectedMessage '*-Region*AWS_REGION*'
        (Get-MoltarInstance -ProfileName noregion -Region us-east-1 -ErrorAction SilentlyContinue).Count | Should -BeGreaterThan 0
    }

    It 'honours environment credentials and explicit keys' {
        $env:AWS_ACCESS_KEY_ID = 'AKIDENV'; $env:AWS_SECRET_ACCESS_KEY = 'secret'; $env:AWS_REGION = 'us-east-1'
        try {
            Push-Location $Scratch
            $null = Get-MoltarInstance -State All
            (Get-MoltarSandboxRequest -Sandbox $Sandbox | Select-Object -Last 1).accessKeyId | Should -Be 'AKIDENV'
            $null = Get-MoltarInstance -State All -AccessKey AKIDPARAM -SecretKey s
            (Get-MoltarSandboxRequest -Sandbox $Sandbox | Select-Object -Last 1).accessKeyId | Should -Be 'AKIDPARAM'
        }
        finally { Pop-Location; Remove-Item env:AWS_ACCESS_KEY_ID, env:AWS_SECRET_ACCESS_KEY, env:AWS_REGION }
    }

    It 'takes credentials from a credential_process profile' {
        Add-Content -Path $env:AWS_CONFIG_FILE -Value @"
[profile fromprocess]
region = us-east-1
credential_process = /bin/sh -c "printf '{\"Version\":1,\"AccessKeyId\":\"AKIDPROCESS\",\"SecretAccessKey\":\"s\"}'"
"@
        $null = Get-MoltarInstance -ProfileName fromprocess
        (Get-MoltarSandboxRequest -Sandbox $Sandbox | Select-Object -Last 1).accessKeyId | Should -Be 'AKIDPROCESS'
    }

    It 'fails clearly, without waiting for input, when an assume-role profile needs MFA in a non-interactive session' {
        Add-Content -Path $env:AWS_CONFIG_FILE -Value @"
[profile needsmfa]
role_arn = arn:aws:iam::123456789012:role/ops
source_profile = shop
mfa_serial = arn:aws:iam::123456789012:mfa/ops-user
region = us-east-1
"@
        $output = Invoke-CleanPwsh "Import-Module '$(Get-TestModulePath)'; try { Get-MoltarInstance -ProfileName needsmfa -EndpointUrl '$($Sandbox.Endpoint)' -ErrorAction Stop } catch { `$_.FullyQualifiedErrorId; `$_.Exception.Message }"
        $output[0] | Should -Be 'MfaRequired,Moltar.Cmdlets.GetMoltarInstanceCommand'
        $output[1] | Should -Match "profile 'needsmfa'.*arn:aws:iam::123456789012:mfa/ops-user"
    }

    It 'refuses -AccessKey without -SecretKey' {
        { Get-MoltarInstance -AccessKey AKID } | Should -Throw -ErrorId 'IncompleteCredentials,Moltar.Cmdlets.GetMoltarInstanceCommand'
    }
}

Describe 'The EC2 API' {
    BeforeEach { Clear-MoltarSandboxRequest -Sandbox $Sandbox; Clear-MoltarSandboxFault -Sandbox $Sandbox }
    AfterAll { Clear-MoltarSandboxFault -Sandbox $Sandbox }

    It 'filters server-side and never sends an empty list' {
        $null = Get-MoltarInstance staging web
        $requests = @(Get-MoltarSandboxRequest -Sandbox $Sandbox)
        $requests.Count | Should -Be 1
        $parameters = $requests[0].parameters
        $names = $parameters.PSObject.Properties | Where-Object Name -Like 'Filter.*.Name' | ForEach-Object Value
        $names | Should -Be @('tag:Project', 'tag:Environment', 'tag:Cluster', 'instance-state-name')
        $parameters.PSObject.Properties | Where-Object { [string]::IsNullOrEmpty($_.Value) } | Should -BeNullOrEmpty
    }

    It 'is retried by the SDK when throttled' {
        Set-MoltarSandboxFault -Sandbox $Sandbox -ThrottleFirst 2
        (Get-MoltarInstance staging web).Count | Should -Be 2
        @(Get-MoltarSandboxRequest -Sandbox $Sandbox).Count | Should -Be 3
    }

    It 'fails with the error code and the request id after the retries' {
        Set-MoltarSandboxFault -Sandbox $Sandbox -ErrorRate 1.0
        { Get-MoltarInstance staging web } | Should -Throw -ErrorId 'ApiFailed,Moltar.Cmdlets.GetMoltarInstanceCommand' -ExpectedMessage '*InternalError*request id*'
        @(Get-MoltarSandboxRequest -Sandbox $Sandbox).Count | Should -BeGreaterThan 1
    }

    It 'says which credentials were refused and what to do' {
        Set-MoltarSandboxFault -Sandbox $Sandbox -AuthFailure
        { Get-MoltarInstance } | Should -Throw -ErrorId 'AwsCredentialsRejected,Moltar.Cmdlets.GetMoltarInstanceCommand' -ExpectedMessage "*profile 'shop'*AuthFailure*"
        @(Get-MoltarSandboxRequest -Sandbox $Sandbox).Count | Should -Be 1
    }
}

Describe 'Many instances' {
    BeforeAll {
        $script:Big = Start-TestSandbox -Synthetic 2500 -Options @{ Project = 'big' }
    }
    AfterAll { Stop-TestSandbox $Big }

    It 'reads every page of 2,500 instances' {
        $found = Get-MoltarInstance -Project big -ProfileName shop -EndpointUrl $Big.Endpoint -State All
        $found.Count | Should -Be 2500
        @($found.InstanceId | Sort-Object -Unique).Count | Should -Be 2500
        @($found.ShortId | Sort-Object -Unique).Count | Should -Be 2500
        $requests = @(Get-MoltarSandboxRequest -Sandbox $Big | Where-Object action -EQ 'DescribeInstances')
        $requests.Count | Should -Be 3
        $requests | ForEach-Object { $_.parameters.MaxResults | Should -Be '1000' }
        $requests[1].parameters.NextToken | Should -Not -BeNullOrEmpty
    }
}

Describe 'Tab completion' {
    It 'completes <Parameter> from live tag values' -ForEach @(
        @{ Parameter = 'Environment'; Line = 'Get-MoltarInstance -Environment '; Expected = @('production', 'staging') }
        @{ Parameter = 'Cluster'; Line = 'Get-MoltarInstance -Environment staging -Cluster '; Expected = @('jobs', 'web') }
        @{ Parameter = 'Name'; Line = 'Get-MoltarInstance staging web -Name shop-staging-w'; Expected = @('shop-staging-web-1', 'shop-staging-web-2') }
    ) {
        $completion = TabExpansion2 -inputScript $Line -cursorColumn $Line.Length
        $completion.CompletionMatches.CompletionText | Should -Be $Expected
    }
}
