# rehost configure script for the domain controllers: the farm's first launch wave.
#
# Every later tier authenticates against Active Directory and resolves names through its DNS,
# so the launch gate opens only once the directory services run and SYSVOL is shared.

$ErrorActionPreference = 'Stop'
$TimeoutSeconds = 1200
$required = 'NTDS', 'DNS', 'Netlogon', 'Kdc', 'W32Time'

$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
while ($true) {
    $missing = @($required | Where-Object {
        $s = Get-Service -Name $_ -ErrorAction SilentlyContinue
        -not $s -or $s.Status -ne 'Running'
    })
    $sysvol = [bool](Get-WmiObject -Class Win32_Share -Filter "Name='SYSVOL'" -ErrorAction SilentlyContinue)
    if ($missing.Count -eq 0 -and $sysvol) {
        Write-Output "rehost: directory services running on ${env:COMPUTERNAME}"
        exit 0
    }
    if ((Get-Date) -gt $deadline) {
        Write-Output "rehost: still waiting for services: $($missing -join ', '); SYSVOL shared: $sysvol"
        exit 1
    }
    Start-Sleep -Seconds 15
}
