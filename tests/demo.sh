#!/usr/bin/env bash
# The main job on a fresh machine: validate the SharePoint example, show its launch order and
# render its CloudFormation template (gated cutover, and portable test), linted by cfn-lint.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$("$root/tests/setup.sh")
out="$root/demo-out"
mkdir -p "$out"
cargo build --quiet -p rehost --locked
rehost="$root/target/debug/rehost"
app=apps/sharepoint-farm.yaml

echo "== rehost validate $app"
"$rehost" validate "$app"
echo
echo "== rehost graph $app"
"$rehost" graph "$app"
echo
echo "== rehost render $app -o demo-out/sharepoint-farm.cutover.json"
"$rehost" render "$app" -o "$out/sharepoint-farm.cutover.json"
"$rehost" render "$app" --mode test --portable -o "$out/sharepoint-farm.test-portable.json"
"$bin/cfn-lint" --regions us-east-1 -- "$out/sharepoint-farm.cutover.json" "$out/sharepoint-farm.test-portable.json"
echo "cfn-lint: 0 errors, 0 warnings"
python3 - "$out/sharepoint-farm.cutover.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
print(f"template: {len(t['Resources'])} resources, {len(t['Parameters'])} parameters, launch waves: {t['Outputs']['LaunchWaves']['Value']}")
PY
