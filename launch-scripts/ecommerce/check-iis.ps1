# rehost configure script for the IIS presentation tier: the gate opens once IIS serves the
# shop's front page, so a cutover is only reported done when customers could reach it.

$ErrorActionPreference = 'Stop'
$Url = 'http://localhost/'
$TimeoutSeconds = 600

$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
while ($true) {
    $w3svc = Get-Service -Name 'W3SVC' -ErrorAction SilentlyContinue
    if ($w3svc -and $w3svc.Status -ne 'Running') {
        Start-Service -Name 'W3SVC' -ErrorAction SilentlyContinue
    }
    try {
        $response = Invoke-WebRequest -Uri $Url -UseBasicParsing -TimeoutSec 10
        if ($response.StatusCode -lt 500) {
            Write-Output "rehost: IIS on ${env:COMPUTERNAME} answers $($response.StatusCode)"
            exit 0
        }
    } catch {
        $reason = $_.Exception.Message
    }
    if ((Get-Date) -gt $deadline) {
        Write-Output "rehost: IIS did not serve $Url within $TimeoutSeconds seconds: $reason"
        exit 1
    }
    Start-Sleep -Seconds 10
}
