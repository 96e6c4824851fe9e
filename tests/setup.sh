#!/usr/bin/env bash
# Installs everything the tests and the demo need beside the Rust toolchain, idempotently:
# a project-local Python virtual environment with the moto server (AWS API emulator) and cfn-lint,
# and qemu-utils (qemu-img, qemu-nbd) when missing. Prints the venv's bin directory on success.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${REHOST_VENV:-$root/.venv}"
moto_version="5.2.5"
cfn_lint_version="1.58.0"

log() { echo "setup: $*" >&2; }

if ! command -v qemu-img >/dev/null 2>&1 || ! command -v qemu-nbd >/dev/null 2>&1; then
  log "installing qemu-utils"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq qemu-utils >&2
fi

stamp="$venv/.rehost-versions"
want="moto[server]==$moto_version cfn-lint==$cfn_lint_version"
if [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/cfn-lint" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating virtual environment $venv ($want)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin"
