#!/bin/sh
# rehost configure script for the Tomcat application tier (Ubuntu).
#
# The shop's JDBC URL in Tomcat's context.xml still carries the database server's on-premises
# address. Resolve the migrated SQL Server by name, swap the address, restart Tomcat and wait
# until it serves again. Exit code 0 opens the launch gate for the IIS web tier.
set -eu

DB_HOST="${DB_HOST:-shopdb.corp.example.com}"
OLD_DB_ADDRESS="${OLD_DB_ADDRESS:-192.168.20.15}"
CONTEXT_XML="${CONTEXT_XML:-/etc/tomcat9/context.xml}"
TOMCAT_SERVICE="${TOMCAT_SERVICE:-tomcat9}"
TIMEOUT_SECONDS=900

log() { echo "rehost: $*"; }

deadline=$(( $(date +%s) + TIMEOUT_SECONDS ))
new_address=""
while [ -z "$new_address" ]; do
  new_address=$(getent ahostsv4 "$DB_HOST" | awk 'NR == 1 { print $1 }') || true
  if [ -z "$new_address" ]; then
    if [ "$(date +%s)" -gt "$deadline" ]; then
      log "$DB_HOST did not resolve within ${TIMEOUT_SECONDS}s"
      exit 2
    fi
    sleep 15
  fi
done
log "$DB_HOST resolves to $new_address"

if [ ! -f "$CONTEXT_XML" ]; then
  log "$CONTEXT_XML not found"
  exit 3
fi
if grep -q "$OLD_DB_ADDRESS" "$CONTEXT_XML"; then
  cp -p "$CONTEXT_XML" "${CONTEXT_XML}.rehost-backup"
  # Dots in an IPv4 address are regex metacharacters: escape them.
  old_pattern=$(printf '%s' "$OLD_DB_ADDRESS" | sed 's/\./\\./g')
  sed -i "s/${old_pattern}/${new_address}/g" "$CONTEXT_XML"
  log "JDBC URL now points at $new_address (was $OLD_DB_ADDRESS)"
else
  log "context.xml does not mention $OLD_DB_ADDRESS; left unchanged"
fi

systemctl restart "$TOMCAT_SERVICE"
while ! curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8080/; do
  if [ "$(date +%s)" -gt "$deadline" ]; then
    log "Tomcat did not answer on port 8080 within ${TIMEOUT_SECONDS}s"
    exit 4
  fi
  sleep 5
done
log "Tomcat serves on port 8080"
