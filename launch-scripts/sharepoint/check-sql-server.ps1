# rehost configure script for SQL Server: the gate opens once the database engine accepts
# connections, so SharePoint servers never start against a database that is still recovering.

$ErrorActionPreference = 'Stop'
$ServiceName = 'MSSQLSERVER'   # 'MSSQL$<instance>' for a named instance
$Port = 1433
$TimeoutSeconds = 1200

$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
while ($true) {
    $service = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
    if ($service -and $service.Status -ne 'Running') {
        Start-Service -Name $ServiceName -ErrorAction SilentlyContinue
    }
    $client = New-Object System.Net.Sockets.TcpClient
    try {
        $client.Connect('127.0.0.1', $Port)
        Write-Output "rehost: SQL Server on ${env:COMPUTERNAME} accepts connections on port $Port"
        exit 0
    } catch {
        if ((Get-Date) -gt $deadline) {
            Write-Output "rehost: SQL Server did not accept connections on port $Port within $TimeoutSeconds seconds"
            exit 1
        }
    } finally {
        $client.Close()
    }
    Start-Sleep -Seconds 15
}
