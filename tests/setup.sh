#!/usr/bin/env bash
# Installs everything the tests and the demo need beside the Rust toolchain, idempotently:
# a project-local Python virtual environment with the moto server (AWS API emulator) and cfn-lint,
# and the Debian packages the tests use when missing (qemu-utils, and the filesystem and archive
# tools of the guest-inspection tests). Prints the venv's bin directory on success.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${REHOST_VENV:-$root/.venv}"
moto_version="5.2.5"
cfn_lint_version="1.58.0"

log() { echo "setup: $*" >&2; }

# Debian packages by the command that proves each is there: qemu-utils for disk images; the
# guest-inspection tests build real filesystems, partition tables, initramfs archives and check
# registry hives with these.
missing=()
for pair in qemu-img:qemu-utils qemu-nbd:qemu-utils mkfs.ext4:e2fsprogs mkfs.fat:dosfstools \
    mcopy:mtools mkntfs:ntfs-3g ntfs-3g:ntfs-3g fusermount:fuse3 mkfs.xfs:xfsprogs sfdisk:fdisk \
    hivexsh:libhivex-bin cpio:cpio gzip:gzip xz:xz-utils zstd:zstd; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  log "installing $packages"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq $packages >&2
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
