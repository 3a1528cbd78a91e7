# Role credentials: with no AWS profile files at all, a discovery and a fan-out run on the credentials the machine was
# given — the EC2 instance profile (IMDSv2, region from the instance), container credentials, web identity through STS —
# each from the sandbox's loopback stand-in, reached through the settings the AWS SDK itself honours. Every run is a
# fresh pwsh with only PATH, HOME and those settings in its environment. One sandbox of 2 real sshd hosts.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    $script:SkipReason = Get-SandboxSkipReason
}

Describe 'Role credentials' -Skip:([bool] $SkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
        $script:ModulePath = Get-TestModulePath
        $script:TestHome = Enter-TestHome -Name rolecredentials
        $script:Scratch = $TestHome.Scratch
        $script:Sandbox = Start-TestSandbox -Hosts 2
        $script:Stand = Get-MoltarSandboxCredential $Sandbox
        $script:HostNames = @($Sandbox.Hosts | ForEach-Object Name | Sort-Object)
        # An empty home: no ~/.aws at all.
        $script:EmptyHome = Join-Path $Scratch 'empty-home'
        New-Item -ItemType Directory -Force -Path $EmptyHome | Out-Null

        # Runs a script in a fresh pwsh whose environment is only PATH, HOME and the given variables; returns its output lines.
        function Invoke-Isolated([hashtable] $Environment, [string] $Script) {
            $file = Join-Path $script:Scratch "run-$([guid]::NewGuid().ToString('n')).ps1"
            Set-Content -Path $file -Value $Script
            $pwsh = Get-PwshInvocation
            $assignments = @("PATH=$env:PATH", "HOME=$script:EmptyHome", "MOLTAR_ENDPOINT_URL=$($script:Sandbox.Endpoint)") +
                           @($Environment.GetEnumerator() | ForEach-Object { "$($_.Key)=$($_.Value)" })
            $output = & env -i @assignments $pwsh.FilePath @($pwsh.Arguments) -NoProfile -NonInteractive -File $file 2>&1
            [pscustomobject]@{ ExitCode = $LASTEXITCODE; Lines = @($output | ForEach-Object { "$_" }); Text = ($output | ForEach-Object { "$_" }) -join "`n" }
        }

        # A discovery that prints the error id and message it ends with.
        $script:ProbeError = "Import-Module '$ModulePath'; try { Get-MoltarInstance } catch { 'ERRORID ' + `$_.FullyQualifiedErrorId; 'MESSAGE ' + `$_.Exception.Message }"

        # Discovery, then a fan-out to every instance found; prints what the test checks.
        $script:DiscoverAndRun = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
`$context = Get-MoltarContext
'CREDENTIALS ' + `$context.CredentialSource
'REGION ' + `$context.Region + ' FROM ' + `$context.RegionSource
`$instances = @(Get-MoltarInstance)
'FOUND ' + ((`$instances.Name | Sort-Object) -join ' ')
`$results = `$instances | Invoke-MoltarCommand 'uname -n' -KeyFile '$($Sandbox.ClientKeyPath)' -KnownHostsPath '$($Sandbox.KnownHostsPath)' -SshConfigPath none -Quiet -InformationAction Ignore
'RAN ' + ((`$results | Where-Object Succeeded | ForEach-Object { `$_.Output.Trim() } | Sort-Object) -join ' ')
"@

        # A run of $DiscoverAndRun succeeded on these credentials: found and ran on every host, and every EC2 request
        # since $Since was signed with keys the given stand-in issued.
        function Assert-RanWith($Run, [DateTimeOffset] $Since, [string] $Source, [string] $CredentialLine) {
            $Run.ExitCode | Should -Be 0 -Because $Run.Text
            $Run.Lines | Should -Contain "CREDENTIALS $CredentialLine"
            $Run.Lines | Should -Contain "RAN $($script:HostNames -join ' ')"
            $signed = @(Get-SignedBy $Since)
            $signed.Count | Should -BeGreaterThan 0
            $signed | ForEach-Object { $_.Credential.Source | Should -Be $Source }
        }

        # The EC2 requests signed since the given time, and the stand-in source that issued each one's access key.
        function Get-SignedBy([DateTimeOffset] $Since) {
            $issued = @{}
            foreach ($credential in (Get-MoltarSandboxCredential $script:Sandbox).Issued) { $issued[$credential.AccessKeyId] = $credential }
            foreach ($request in @(Get-MoltarSandboxRequest $script:Sandbox -Action DescribeInstances | Where-Object { [DateTimeOffset] $_.Time -ge $Since })) {
                [pscustomobject]@{ Request = $request; Credential = $issued[$request.AccessKeyId] }
            }
        }
    }

    AfterAll {
        Stop-TestSandbox $Sandbox
        if ($TestHome) { Exit-TestHome $TestHome }
    }

    It '(a) the EC2 instance profile over IMDSv2, region from the instance: discovery and fan-out' {
        Set-MoltarSandboxCredential $Sandbox -ImdsMode v2 -Region 'us-east-1'
        $since = [DateTimeOffset]::UtcNow
        $run = Invoke-Isolated @{ AWS_EC2_METADATA_SERVICE_ENDPOINT = $Stand.MetadataEndpoint } $DiscoverAndRun
        Assert-RanWith $run $since 'imds' "the EC2 instance profile (role moltar-sandbox-role, IMDSv2 at $($Sandbox.Endpoint))"
        $run.Lines | Should -Contain "REGION us-east-1 FROM the EC2 instance's region (instance metadata at $($Sandbox.Endpoint))"
        $run.Lines | Should -Contain "FOUND $($HostNames -join ' ')"
        @(Get-SignedBy $since) | ForEach-Object { $_.Request.Region | Should -Be 'us-east-1' }
    }

    It '(a) the region comes from the instance only when nothing else names one' {
        Set-MoltarSandboxCredential $Sandbox -ImdsMode v2 -Region 'eu-west-2'
        $run = Invoke-Isolated @{ AWS_EC2_METADATA_SERVICE_ENDPOINT = $Stand.MetadataEndpoint; AWS_REGION = 'us-east-1' } `
            "Import-Module '$ModulePath'; `$c = Get-MoltarContext; 'REGION ' + `$c.Region + ' FROM ' + `$c.RegionSource"
        $run.Lines | Should -Contain 'REGION us-east-1 FROM Environment AWS_REGION'
    }

    It 'an IMDSv1-only metadata service is refused with a clear error, and no credentials are read from it' {
        Set-MoltarSandboxCredential $Sandbox -ImdsMode v1only -Region 'us-east-1'
        $before = @((Get-MoltarSandboxCredential $Sandbox).Issued).Count
        $run = Invoke-Isolated @{ AWS_EC2_METADATA_SERVICE_ENDPOINT = $Stand.MetadataEndpoint } $ProbeError
        $run.Lines | Should -Contain 'ERRORID InstanceMetadataV1Only,Moltar.Cmdlets.GetMoltarInstanceCommand' -Because $run.Text
        $run.Text | Should -Match 'never uses IMDSv1'
        $run.Text | Should -Match '--http-tokens required'
        @((Get-MoltarSandboxCredential $Sandbox).Issued).Count | Should -Be $before -Because 'IMDSv1 reads are never made'
        Set-MoltarSandboxCredential $Sandbox -ImdsMode v2
    }

    It '(b) container credentials (<Case>): discovery and fan-out' -ForEach @(
        @{ Case = 'no authorization token'; Authorization = $null; Variables = @{} }
        @{ Case = 'AWS_CONTAINER_AUTHORIZATION_TOKEN'; Authorization = 'Bearer task-secret-17'; Variables = @{ AWS_CONTAINER_AUTHORIZATION_TOKEN = 'Bearer task-secret-17' } }
    ) {
        $settings = @{ ImdsMode = 'v2' }
        if ($Authorization) { $settings.ContainerAuthorization = $Authorization }
        Set-MoltarSandboxCredential $Sandbox @settings
        $since = [DateTimeOffset]::UtcNow
        $variables = @{ AWS_CONTAINER_CREDENTIALS_FULL_URI = $Stand.ContainerCredentialsUri; AWS_REGION = 'us-east-1'; AWS_EC2_METADATA_DISABLED = 'true' } + $Variables
        $run = Invoke-Isolated $variables $DiscoverAndRun
        Assert-RanWith $run $since 'container' "container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI $($Stand.ContainerCredentialsUri))"
    }

    It '(b) container credentials with a wrong authorization token: a CredentialsUnavailable error that names the source' {
        Set-MoltarSandboxCredential $Sandbox -ContainerAuthorization 'Bearer the-right-one'
        $run = Invoke-Isolated @{ AWS_CONTAINER_CREDENTIALS_FULL_URI = $Stand.ContainerCredentialsUri; AWS_CONTAINER_AUTHORIZATION_TOKEN = 'Bearer wrong'; AWS_REGION = 'us-east-1' } $ProbeError
        $run.Lines | Should -Contain 'ERRORID CredentialsUnavailable,Moltar.Cmdlets.GetMoltarInstanceCommand' -Because $run.Text
        $run.Text | Should -Match ([regex]::Escape("container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI $($Stand.ContainerCredentialsUri))"))
        $run.Text | Should -Not -Match 'the-right-one|Bearer wrong'
        Set-MoltarSandboxCredential $Sandbox
    }

    It '(c) web identity through STS AssumeRoleWithWebIdentity: discovery and fan-out' {
        Set-MoltarSandboxCredential $Sandbox -WebIdentityToken 'oidc-token-from-the-ci-17'
        $tokenFile = Join-Path $Scratch 'web-identity-token'
        Set-Content -Path $tokenFile -Value 'oidc-token-from-the-ci-17' -NoNewline
        $since = [DateTimeOffset]::UtcNow
        $run = Invoke-Isolated @{ AWS_WEB_IDENTITY_TOKEN_FILE = $tokenFile; AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/moltar-ci'; AWS_ROLE_SESSION_NAME = 'moltar-17'
                                  AWS_ENDPOINT_URL_STS = $Stand.StsEndpoint; AWS_REGION = 'us-east-1'; AWS_EC2_METADATA_DISABLED = 'true' } $DiscoverAndRun
        Assert-RanWith $run $since 'sts' "web identity (AWS_WEB_IDENTITY_TOKEN_FILE $tokenFile, role arn:aws:iam::123456789012:role/moltar-ci)"
    }

    It 'with no profile files and no role, CredentialsNotFound lists every source it tried' {
        $run = Invoke-Isolated @{ AWS_EC2_METADATA_DISABLED = 'true'; AWS_REGION = 'us-east-1' } $ProbeError
        $run.Lines | Should -Contain 'ERRORID CredentialsNotFound,Moltar.Cmdlets.GetMoltarInstanceCommand' -Because $run.Text
        foreach ($tried in '-AccessKey and -ProfileName', 'AWS_ACCESS_KEY_ID and AWS_PROFILE', "'default' profile", 'web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN not set)',
                           'container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI not set)',
                           'the EC2 instance profile (AWS_EC2_METADATA_DISABLED is true)') {
            $run.Text | Should -Match ([regex]::Escape($tried))
        }
    }

    It 'with a project whose profile does not exist, the role is used and never the default profile' {
        Set-MoltarSandboxCredential $Sandbox -ImdsMode v2 -Region 'us-east-1'
        $aws = Join-Path $Scratch 'aws-default-only'
        New-Item -ItemType Directory -Force -Path $aws | Out-Null
        Set-Content (Join-Path $aws 'credentials') "[default]`naws_access_key_id = AKIADEFAULTPROFILE17`naws_secret_access_key = other-client`n"
        $repo = Join-Path $Scratch 'client-repo'
        New-Item -ItemType Directory -Force -Path $repo | Out-Null
        Set-Content (Join-Path $repo '.moltar.psd1') "@{ Project = 'demo' }"
        $since = [DateTimeOffset]::UtcNow
        $run = Invoke-Isolated @{ AWS_EC2_METADATA_SERVICE_ENDPOINT = $Stand.MetadataEndpoint; AWS_SHARED_CREDENTIALS_FILE = (Join-Path $aws 'credentials') } `
            "Import-Module '$ModulePath'; Set-Location '$repo'; 'FOUND ' + @(Get-MoltarInstance).Count"
        $run.Lines | Should -Contain 'FOUND 2' -Because $run.Text
        @(Get-SignedBy $since | Where-Object { $_.Request.AccessKeyId -eq 'AKIADEFAULTPROFILE17' }) | Should -BeNullOrEmpty
        @(Get-SignedBy $since | ForEach-Object { $_.Credential.Source }) | Should -Contain 'imds'
    }

    It 'expiring instance-profile credentials are refreshed during a long run: no request is signed with expired keys' {
        # A discovery that reads 3 pages, each answered 2.5 s late, with credentials that live 3 s: the later pages
        # can only be signed with credentials fetched again during the call.
        $fleet = @(Get-MoltarSandboxFleet $Sandbox)
        $bulk = foreach ($i in 1..2100) { [ordered]@{ instanceId = 'i-{0:x17}' -f (0x17000000 + $i); state = 'running'; privateIpAddress = '10.1.0.1'; tags = @{ Project = 'bulk17'; Name = "bulk-$i" } } }
        Set-MoltarSandboxFleet $Sandbox -Instance (@($fleet) + @($bulk))
        Set-MoltarSandboxCredential $Sandbox -ImdsMode v2 -Region 'us-east-1' -LifetimeSeconds 3
        Set-MoltarSandboxFault $Sandbox -DelayMs 2500
        try {
            $since = [DateTimeOffset]::UtcNow
            $run = Invoke-Isolated @{ AWS_EC2_METADATA_SERVICE_ENDPOINT = $Stand.MetadataEndpoint } "Import-Module '$ModulePath'; 'FOUND ' + @(Get-MoltarInstance -Project bulk17).Count"
        }
        finally {
            Clear-MoltarSandboxFault $Sandbox
            Set-MoltarSandboxCredential $Sandbox
            Set-MoltarSandboxFleet $Sandbox -Instance $fleet
        }
        $run.Lines | Should -Contain 'FOUND 2100' -Because $run.Text
        $signed = @(Get-SignedBy $since)
        $signed.Count | Should -Be 3
        foreach ($one in $signed) {
            $one.Credential.Source | Should -Be 'imds'
            # Signed when the request left (the log's time is when it arrived, before the 2.5 s delay).
            $one.Credential.Expiration | Should -BeGreaterThan ([DateTimeOffset] $one.Request.Time) -Because "$($one.Request.AccessKeyId) must not have expired when it signed a request"
        }
        @($signed.Request.AccessKeyId | Select-Object -Unique).Count | Should -BeGreaterThan 1 -Because 'the credentials were fetched again as they expired'
    }
}
