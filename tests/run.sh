#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs every test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$("$root/tests/setup.sh")
export REHOST_TOOLS_BIN="$bin"
cargo fmt --all -- --check
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads=2 "$@"
