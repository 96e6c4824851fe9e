<#
.SYNOPSIS
  rehost source-side preparation for Windows servers: run it on the source machine, as an
  administrator, before its disks are replicated, so the copy boots on Nitro instance types and
  runs its configure script.

.DESCRIPTION
  Checks, and with -Apply installs from packages you downloaded beforehand (this script never
  downloads anything):
    - the AWS NVMe storage driver (service AWSNVMe, boot start): without it Windows stops at
      INACCESSIBLE_BOOT_DEVICE on every Nitro instance type;
    - the AWS ENA network driver (service ena): without it the instance has no network on Nitro;
    - EC2Launch v2, which runs user data (rehost's configure script and launch-gate signal) at
      first boot; EC2Launch v1 or EC2Config also run user data and are left alone;
    - that the hardware clock is read as UTC (RealTimeIsUniversal = 1), as EC2 keeps it;
    - the SAN policy, which must bring the migrated data disks online (OnlineAll).
  Dry run by default: it reports what it would do and changes nothing. Running it again after
  -Apply changes nothing. Works with Windows PowerShell 2.0 and later.

.PARAMETER NvmeDriverPath
  Folder of the extracted AWS NVMe driver package (AWSNVMe.zip: install.ps1 or an .inf file).
.PARAMETER EnaDriverPath
  Folder of the extracted AWS ENA driver package (AwsEnaNetworkDriver.zip: install.ps1 or an .inf).
.PARAMETER EC2LaunchPath
  Path of AmazonEC2Launch.msi (EC2Launch v2).
.PARAMETER Apply
  Make the changes; without it nothing is changed.

.EXAMPLE
  .\prepare-windows-for-ec2.ps1 -NvmeDriverPath C:\stage\AWSNVMe -EnaDriverPath C:\stage\AwsEnaNetworkDriver -EC2LaunchPath C:\stage\AmazonEC2Launch.msi
  .\prepare-windows-for-ec2.ps1 -NvmeDriverPath C:\stage\AWSNVMe -EnaDriverPath C:\stage\AwsEnaNetworkDriver -EC2LaunchPath C:\stage\AmazonEC2Launch.msi -Apply
#>
param(
    [string]$NvmeDriverPath = "",
    [string]$EnaDriverPath = "",
    [string]$EC2LaunchPath = "",
    [switch]$Apply
)

$ErrorActionPreference = 'Stop'
$script:problems = 0
$script:changes = 0

function Say([string]$text) { Write-Host "prepare: $text" }
function Warn([string]$text) {
    Write-Warning "prepare: $text"
    $script:problems++
}
function Would([string]$text) {
    $script:changes++
    if ($Apply) { Say $text } else { Say "would $text" }
}

# A local path only: refuse anything that looks like a URL, so nothing is ever fetched.
function Test-LocalPath([string]$path, [string]$what) {
    if ($path -eq '') { return $false }
    if ($path -match '^[a-zA-Z][a-zA-Z0-9+.-]*://') {
        throw "$what must be a local path to a package you downloaded, not $path"
    }
    if (-not (Test-Path -LiteralPath $path)) {
        throw "$what $path does not exist"
    }
    return $true
}

$services = 'HKLM:\SYSTEM\CurrentControlSet\Services'

function Get-ServiceStart([string]$name) {
    $key = Join-Path $services $name
    if (-not (Test-Path -LiteralPath $key)) { return $null }
    $value = (Get-ItemProperty -LiteralPath $key -Name Start -ErrorAction SilentlyContinue)
    if ($value -eq $null) { return $null }
    return [int]$value.Start
}

# Installs a driver package folder: the package's own install.ps1 when it has one, else pnputil
# on every .inf in it (the -i -a form works from Windows Server 2008 R2 on).
function Install-DriverPackage([string]$folder, [string]$what) {
    $installer = Join-Path $folder 'install.ps1'
    if (Test-Path -LiteralPath $installer) {
        & powershell.exe -NoProfile -ExecutionPolicy Bypass -File $installer
        if ($LASTEXITCODE -ne 0) { throw "$what installer $installer exited with $LASTEXITCODE" }
        return
    }
    $infs = @(Get-ChildItem -LiteralPath $folder -Recurse -Filter '*.inf')
    if ($infs.Count -eq 0) { throw "$what package $folder holds neither install.ps1 nor an .inf file" }
    foreach ($inf in $infs) {
        & pnputil.exe -i -a $inf.FullName
        if ($LASTEXITCODE -ne 0) { throw "pnputil could not add $($inf.FullName) (exit $LASTEXITCODE)" }
    }
}

# --- NVMe ---------------------------------------------------------------------------------
$nvmeStart = Get-ServiceStart 'AWSNVMe'
if ($nvmeStart -eq 0) {
    Say 'AWS NVMe driver: present, boot start'
} elseif ($nvmeStart -ne $null) {
    Would "set the AWSNVMe service to boot start (Start = 0, now $nvmeStart)"
    if ($Apply) { Set-ItemProperty -LiteralPath (Join-Path $services 'AWSNVMe') -Name Start -Value 0 -Type DWord }
} elseif (Test-LocalPath $NvmeDriverPath '-NvmeDriverPath') {
    Would "install the AWS NVMe driver from $NvmeDriverPath"
    if ($Apply) {
        Install-DriverPackage $NvmeDriverPath 'AWS NVMe driver'
        if ((Get-ServiceStart 'AWSNVMe') -ne 0) {
            Set-ItemProperty -LiteralPath (Join-Path $services 'AWSNVMe') -Name Start -Value 0 -Type DWord
        }
    }
} else {
    Warn 'AWS NVMe driver missing: download AWSNVMe.zip from AWS, extract it and pass -NvmeDriverPath'
}

# --- ENA ----------------------------------------------------------------------------------
if ((Get-ServiceStart 'ena') -ne $null) {
    Say 'AWS ENA driver: present'
} elseif (Test-LocalPath $EnaDriverPath '-EnaDriverPath') {
    Would "install the AWS ENA driver from $EnaDriverPath"
    if ($Apply) { Install-DriverPackage $EnaDriverPath 'AWS ENA driver' }
} else {
    Warn 'AWS ENA driver missing: download AwsEnaNetworkDriver.zip from AWS, extract it and pass -EnaDriverPath'
}
foreach ($pv in 'xenvbd', 'xennet', 'AWSPVDriver') {
    if ((Get-ServiceStart $pv) -ne $null) { Say "Xen-era driver $pv present (used only on Xen instance types)" }
}

# --- the agent that runs user data --------------------------------------------------------
$launchV2 = Join-Path $env:ProgramFiles 'Amazon\EC2Launch\EC2Launch.exe'
$launchV1 = Join-Path $env:ProgramData 'Amazon\EC2-Windows\Launch\Module\Ec2Launch.psd1'
if (Test-Path -LiteralPath $launchV2) {
    Say 'EC2Launch v2: present'
} elseif (Test-Path -LiteralPath $launchV1) {
    Say 'EC2Launch v1: present (runs user data; EC2Launch v2 is its successor)'
} elseif ((Get-ServiceStart 'Ec2Config') -ne $null) {
    Say 'EC2Config: present (runs user data)'
} elseif (Test-LocalPath $EC2LaunchPath '-EC2LaunchPath') {
    Would "install EC2Launch v2 from $EC2LaunchPath"
    if ($Apply) {
        $p = Start-Process -FilePath 'msiexec.exe' -ArgumentList @('/i', "`"$EC2LaunchPath`"", '/qn', '/norestart') -Wait -PassThru
        if ($p.ExitCode -ne 0 -and $p.ExitCode -ne 3010) { throw "msiexec exited with $($p.ExitCode) installing $EC2LaunchPath" }
    }
} else {
    Warn 'no agent runs user data (EC2Launch v2, v1 or EC2Config): the launch gate and configure scripts cannot work; download AmazonEC2Launch.msi and pass -EC2LaunchPath, or launch with --no-health-gate'
}

# --- clock and disks ----------------------------------------------------------------------
$tz = 'HKLM:\SYSTEM\CurrentControlSet\Control\TimeZoneInformation'
$utc = Get-ItemProperty -LiteralPath $tz -Name RealTimeIsUniversal -ErrorAction SilentlyContinue
if ($utc -eq $null -or [int]$utc.RealTimeIsUniversal -ne 1) {
    Would 'set RealTimeIsUniversal = 1 (EC2 keeps the hardware clock in UTC)'
    if ($Apply) { Set-ItemProperty -LiteralPath $tz -Name RealTimeIsUniversal -Value 1 -Type DWord }
} else {
    Say 'hardware clock read as UTC'
}
$partmgr = Get-ItemProperty -LiteralPath (Join-Path $services 'partmgr\Parameters') -Name SanPolicy -ErrorAction SilentlyContinue
# 1 = OnlineAll; other policies leave migrated data disks offline on the new hardware.
if ($partmgr -eq $null -or [int]$partmgr.SanPolicy -ne 1) {
    Would 'set the SAN policy to OnlineAll so the migrated data disks come online'
    if ($Apply) {
        $cmd = Join-Path $env:TEMP 'rehost-san-policy.txt'
        Set-Content -LiteralPath $cmd -Value 'san policy=OnlineAll' -Encoding ASCII
        & diskpart.exe /s $cmd | Out-Null
        Remove-Item -LiteralPath $cmd -Force
        if ($LASTEXITCODE -ne 0) { throw "diskpart exited with $LASTEXITCODE setting the SAN policy" }
    }
} else {
    Say 'SAN policy: OnlineAll'
}

if (-not $Apply -and $script:changes -gt 0) {
    Say 'dry run: nothing was changed; run again with -Apply to make these changes'
} elseif ($script:changes -eq 0) {
    Say 'nothing to change'
}
if ($script:problems -gt 0) { Say "$($script:problems) problem(s) need attention (see the warnings above)" }
exit 0
