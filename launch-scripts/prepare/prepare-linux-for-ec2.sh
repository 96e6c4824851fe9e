#!/bin/sh
# rehost source-side preparation for Linux servers, run on the source machine (as root) before its
# disks are replicated, so the copy boots on Nitro instance types:
#
#   1. the NVMe storage driver (`nvme`) and the ENA network driver (`ena`) go into the initramfs
#      (dracut, initramfs-tools or mkinitcpio, whichever the system uses), which is then rebuilt
#      for every installed kernel;
#   2. /etc/fstab entries that mount by kernel device name (/dev/sd*, /dev/hd*, /dev/xvd*, /dev/vd*)
#      are rewritten to UUID=..., because on Nitro the same disk appears as /dev/nvme0n1.
#
# Dry run by default: it prints what it would change and changes nothing. `--apply` makes the
# changes (each file edited is first copied to FILE.rehost-backup). Running it again after
# `--apply` changes nothing. It never downloads anything.
#
# Usage: prepare-linux-for-ec2.sh [--apply] [--root DIR] [--dev DIR] [--skip-initramfs] [--skip-fstab]
#   --root DIR   the system to prepare (default /); the initramfs is rebuilt through chroot when
#                it is not /
#   --dev DIR    where the devices named in fstab are looked up for their UUID (default /dev)
# Exit codes: 0 done (or nothing to do), 1 a step failed, 2 usage.
set -eu

apply=0
root=/
dev_dir=/dev
do_initramfs=1
do_fstab=1
modules="nvme ena"

usage() {
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --apply) apply=1 ;;
    --root) [ $# -ge 2 ] || { usage >&2; exit 2; }; root=$2; shift ;;
    --dev) [ $# -ge 2 ] || { usage >&2; exit 2; }; dev_dir=$2; shift ;;
    --skip-initramfs) do_initramfs=0 ;;
    --skip-fstab) do_fstab=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "prepare: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
root=${root%/}
[ -n "$root" ] || root=/
[ -d "$root" ] || { echo "prepare: --root $root is not a directory" >&2; exit 2; }
if [ "$root" = / ]; then at=""; else at=$root; fi

say() { echo "prepare: $*"; }
warn() { echo "prepare: warning: $*" >&2; }
if [ "$apply" -eq 1 ]; then would=""; else would="would "; fi
changed_initramfs=0
problems=0

# Writes stdin to FILE when it differs from FILE's content, keeping a backup; prints what it did.
replace_file() {
  file=$1
  what=$2
  new=$(mktemp "${TMPDIR:-/tmp}/rehost-prepare.XXXXXX")
  cat > "$new"
  if [ -f "$file" ] && cmp -s "$new" "$file"; then
    rm -f "$new"
    return 1
  fi
  say "${would}update $file: $what"
  if [ "$apply" -eq 1 ]; then
    if [ -f "$file" ] && [ ! -f "$file.rehost-backup" ]; then
      cp -p "$file" "$file.rehost-backup"
    fi
    mkdir -p "$(dirname "$file")"
    if [ -f "$file" ]; then
      # Keep the original owner and mode: write in place.
      cat "$new" > "$file"
    else
      cp "$new" "$file"
      chmod 644 "$file"
    fi
  fi
  rm -f "$new"
  return 0
}

# Runs a command inside the prepared system.
in_root() {
  if [ "$root" = / ]; then "$@"; else chroot "$root" "$@"; fi
}

# --- which kernels, and do they have the drivers ---------------------------------------------
kernels=""
if [ -d "$at/lib/modules" ]; then
  for k in "$at"/lib/modules/*; do
    [ -d "$k" ] || continue
    kernels="$kernels ${k##*/}"
  done
fi
# Prints "builtin", "module" or "missing" for module $2 of kernel $1.
driver_state() {
  kdir="$at/lib/modules/$1"
  if [ -f "$kdir/modules.builtin" ] && grep -Eq "/$2\\.ko(\\.[a-z]+)?\$" "$kdir/modules.builtin"; then
    echo builtin
  elif [ -n "$(find "$kdir" -name "$2.ko" -o -name "$2.ko.*" 2>/dev/null | head -n 1)" ]; then
    echo module
  else
    echo missing
  fi
}
# Modules to put in the initramfs: those some kernel has as a loadable module.
wanted=""
for m in $modules; do
  loadable=0
  for k in $kernels; do
    case $(driver_state "$k" "$m") in
      module) loadable=1 ;;
      missing) warn "kernel $k has no $m driver: install a kernel that has it (or the vendor's $m package) before replicating; it will not boot on Nitro instance types without it" ; problems=$((problems + 1)) ;;
    esac
  done
  [ "$loadable" -eq 1 ] && wanted="$wanted $m"
done
wanted=${wanted# }
[ -n "$kernels" ] || warn "no kernels under $at/lib/modules: cannot check the nvme and ena drivers"

# --- initramfs -----------------------------------------------------------------------------
if [ "$do_initramfs" -eq 1 ] && [ -n "$wanted" ]; then
  if [ -d "$at/etc/dracut.conf.d" ] || [ -f "$at/etc/dracut.conf" ]; then
    tool=dracut
    conf="$at/etc/dracut.conf.d/90-rehost-ec2.conf"
    if printf '# Added by rehost: storage and network drivers of EC2 Nitro instances.\nadd_drivers+=" %s "\n' "$wanted" \
        | replace_file "$conf" "add_drivers $wanted"; then
      changed_initramfs=1
    fi
  elif [ -d "$at/etc/initramfs-tools" ]; then
    tool=initramfs-tools
    conf="$at/etc/initramfs-tools/modules"
    missing=""
    for m in $wanted; do
      grep -Eq "^[[:space:]]*$m([[:space:]]|\$)" "$conf" 2>/dev/null || missing="$missing $m"
    done
    if [ -n "$missing" ]; then
      { [ -f "$conf" ] && cat "$conf"; for m in $missing; do echo "$m"; done; } \
        | replace_file "$conf" "add$missing" && changed_initramfs=1
    fi
  elif [ -f "$at/etc/mkinitcpio.conf" ]; then
    tool=mkinitcpio
    conf="$at/etc/mkinitcpio.conf"
    current=$(sed -n 's/^MODULES=(\(.*\))[[:space:]]*$/\1/p' "$conf" | head -n 1)
    missing=""
    for m in $wanted; do
      case " $current " in *" $m "*) ;; *) missing="$missing $m" ;; esac
    done
    if [ -n "$missing" ]; then
      if grep -q '^MODULES=(' "$conf"; then
        new_list=$(echo "$current$missing" | sed 's/^ *//')
        sed "s/^MODULES=(.*)[[:space:]]*\$/MODULES=($new_list)/" "$conf" \
          | replace_file "$conf" "MODULES+=($missing )" && changed_initramfs=1
      else
        { cat "$conf"; echo "MODULES=(${missing# })"; } \
          | replace_file "$conf" "MODULES=(${missing# })" && changed_initramfs=1
      fi
    fi
  else
    tool=""
    warn "no dracut, initramfs-tools or mkinitcpio configuration under $at/etc: add $wanted to the initramfs by hand"
    problems=$((problems + 1))
  fi
  if [ "$changed_initramfs" -eq 1 ]; then
    case $tool in
      dracut) regen="dracut -f --regenerate-all" ;;
      initramfs-tools) regen="update-initramfs -u -k all" ;;
      mkinitcpio) regen="mkinitcpio -P" ;;
    esac
    if [ "$apply" -eq 1 ]; then
      say "rebuilding the initramfs: $regen"
      # shellcheck disable=SC2086
      in_root $regen || { echo "prepare: $regen failed" >&2; exit 1; }
    else
      say "would rebuild the initramfs: $regen"
    fi
  elif [ -n "${tool:-}" ]; then
    say "initramfs ($tool) already includes $wanted"
  fi
fi

# --- /etc/fstab ----------------------------------------------------------------------------
if [ "$do_fstab" -eq 1 ] && [ -f "$at/etc/fstab" ]; then
  fstab="$at/etc/fstab"
  map=$(mktemp "${TMPDIR:-/tmp}/rehost-prepare.XXXXXX")
  # Device names to replace, and their UUIDs where the device can be read.
  awk '$1 ~ /^\/dev\/(sd|hd|xvd|vd)[a-z]+[0-9]*$/ { print $1 }' "$fstab" | sort -u | while read -r device; do
    uuid=$(blkid -s UUID -o value "$dev_dir/${device#/dev/}" 2>/dev/null || true)
    if [ -n "$uuid" ]; then
      echo "$device $uuid" >> "$map"
    else
      warn "$device in /etc/fstab has no readable UUID under $dev_dir: mount it by UUID= or LABEL= by hand"
    fi
  done
  if [ -s "$map" ]; then
    awk -v map="$map" '
      BEGIN { while ((getline line < map) > 0) { split(line, f, " "); uuid[f[1]] = f[2] } }
      /^[[:space:]]*#/ || NF == 0 { print; next }
      ($1 in uuid) {
        i = index($0, $1)
        printf "%sUUID=%s%s\n", substr($0, 1, i - 1), uuid[$1], substr($0, i + length($1))
        next
      }
      { print }
    ' "$fstab" | replace_file "$fstab" "mount $(awk '{printf "%s%s", sep, $1; sep=", "}' "$map") by UUID" || true
  else
    say "/etc/fstab mounts nothing by a kernel device name that can be rewritten"
  fi
  rm -f "$map"
fi

# Boot loader command lines naming a kernel device break the same way as fstab.
for f in "$at/etc/default/grub" "$at/boot/grub/grub.cfg" "$at/boot/grub2/grub.cfg"; do
  if [ -f "$f" ] && grep -Eq 'root=/dev/(sd|hd|xvd|vd)[a-z]' "$f"; then
    warn "${f#"$at"} passes root=/dev/... to the kernel: use root=UUID=... (then regenerate the boot loader configuration)"
    problems=$((problems + 1))
  fi
done

if [ "$apply" -eq 0 ]; then
  say "dry run: nothing was changed; run again with --apply to make these changes"
fi
[ "$problems" -eq 0 ] || say "$problems problem(s) need attention (see the warnings above)"
exit 0
