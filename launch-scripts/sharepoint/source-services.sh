#!/bin/sh
# Stops (or starts again) the on-premises SharePoint farm's services around its cutover. Run on
# the operator's machine, not in the instances: `rehost cutover` runs `stop` as the farm's
# preCutover hook, before the final sync, so no user writes after it; `rehost rollback` (or a
# failed cutover) runs `start` as its postRollback hook. Each source server is reached over
# OpenSSH (built into Windows Server 2019 and later) as FARM_ADMIN with the operator's key.
# Web front ends stop first and the database last; they start in the opposite order. Active
# Directory (dc01) keeps running: the cutover domain controller is a copy, not a move.
set -eu

action=${1:-}
user=${FARM_ADMIN:-farm-admin}
case "$action" in
  stop) order="web01 web02 app01 app02 sql01" ;;
  start) order="sql01 app01 app02 web01 web02" ;;
  *) echo "usage: $0 stop|start" >&2; exit 2 ;;
esac

for host in $order; do
  case "$host" in
    web*) services="W3SVC SPTimerV4" ;;
    app*) services="SPTimerV4 SPAdminV4 SPSearchHostController" ;;
    sql*) services="MSSQLSERVER" ;;
  esac
  for service in $services; do
    if [ "$action" = stop ]; then
      command="Stop-Service -Name $service -Force"
    else
      command="Start-Service -Name $service"
    fi
    echo "$host: $command"
    ssh -o BatchMode=yes -o ConnectTimeout=15 "$user@$host" \
      "powershell -NoProfile -NonInteractive -Command $command"
  done
done
