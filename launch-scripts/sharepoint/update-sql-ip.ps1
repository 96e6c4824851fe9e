# rehost configure script for SharePoint servers (application servers and web front ends).
#
# SharePoint finds its configuration database through the "dsn" value under the ConfigDB key;
# after the move that connection string still carries the SQL Server's on-premises address.
# This script resolves the migrated SQL Server through DNS (the domain controller launched
# first, so DNS answers by now), swaps the old address for the new one, restarts the SharePoint
# services that cache it and checks that SQL Server answers. Exit code 0 means the server is
# ready; anything else fails the launch gate, so the web tier never starts against a broken farm.

$ErrorActionPreference = 'Stop'

# Farm-specific values: the SQL Server's DNS name and the address it had on premises.
$SqlHostName = 'sql01.corp.example.com'
$OldSqlAddress = '192.168.10.20'
$SharePointVersion = '16.0'
$ResolveTimeoutSeconds = 900

$configDb = "HKLM:\SOFTWARE\Microsoft\Shared Tools\Web Server Extensions\$SharePointVersion\Secure\ConfigDB"
Write-Output "rehost: updating the SharePoint configuration database address on ${env:COMPUTERNAME}"

# Wait until DNS gives an IPv4 address for the SQL Server.
$deadline = (Get-Date).AddSeconds($ResolveTimeoutSeconds)
$newAddress = $null
while (-not $newAddress) {
    try {
        $newAddress = [System.Net.Dns]::GetHostAddresses($SqlHostName) |
            Where-Object { $_.AddressFamily -eq 'InterNetwork' } |
            Select-Object -First 1 -ExpandProperty IPAddressToString
    } catch {
        $newAddress = $null
    }
    if (-not $newAddress) {
        if ((Get-Date) -gt $deadline) {
            Write-Output "rehost: $SqlHostName did not resolve within $ResolveTimeoutSeconds seconds"
            exit 2
        }
        Start-Sleep -Seconds 15
    }
}
Write-Output "rehost: $SqlHostName resolves to $newAddress"

if (-not (Test-Path $configDb)) {
    Write-Output "rehost: $configDb not found: is SharePoint $SharePointVersion installed here?"
    exit 3
}
$dsn = (Get-ItemProperty -Path $configDb -Name 'dsn').dsn
if ($dsn.Contains($OldSqlAddress)) {
    $updated = $dsn.Replace($OldSqlAddress, $newAddress)
    Set-ItemProperty -Path $configDb -Name 'dsn' -Value $updated
    Write-Output "rehost: configuration database now at $newAddress (was $OldSqlAddress)"
} elseif ($dsn.Contains($newAddress) -or $dsn.Contains($SqlHostName)) {
    Write-Output 'rehost: connection string already current'
} else {
    Write-Output "rehost: connection string names neither $OldSqlAddress nor $newAddress; left unchanged"
    exit 4
}

# Services that read the connection string at start-up.
foreach ($service in 'SPTimerV4', 'SPAdminV4', 'W3SVC') {
    if (Get-Service -Name $service -ErrorAction SilentlyContinue) {
        Restart-Service -Name $service -Force
    }
}

# The farm is only usable if SQL Server accepts connections.
$client = New-Object System.Net.Sockets.TcpClient
try {
    $client.Connect($newAddress, 1433)
    Write-Output "rehost: SQL Server at ${newAddress}:1433 accepts connections"
} catch {
    Write-Output "rehost: SQL Server at ${newAddress}:1433 does not accept connections: $($_.Exception.Message)"
    exit 5
} finally {
    $client.Close()
}
exit 0
