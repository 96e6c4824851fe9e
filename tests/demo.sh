#!/usr/bin/env bash
# The main job on a fresh machine: migrate the SharePoint example end to end against a local AWS
# API emulator. Sets up the tools, starts the moto server on a free loopback port, creates the
# network the farm launches into, generates small sample disk images (VMDK, VHDX, qcow2) for its
# six servers, and runs `rehost migrate`: replicate every disk block by block to EBS snapshots and
# AMIs, then launch the farm tier by tier. Ends with the launched farm in launch order.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$("$root/tests/setup.sh")
out="$root/demo-out"
rm -rf "$out"
mkdir -p "$out"

echo "== building rehost"
cargo build --quiet -p rehost --locked
rehost="$root/target/debug/rehost"

port=$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/moto_server" -H 127.0.0.1 -p "$port" >"$out/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
for _ in $(seq 1 100); do
  curl -fs "$AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "== local AWS emulator on $AWS_ENDPOINT_URL"

# The target network, key pair, instance profile and KMS key the example names; the emulator
# picks its own ids, so the example is copied with them put in.
"$bin/python" - "$root/apps/sharepoint-farm.yaml" "$out/sharepoint-farm.yaml" <<'PY'
import sys
import boto3
kw = dict(region_name="us-east-1")
ec2, iam, kms = boto3.client("ec2", **kw), boto3.client("iam", **kw), boto3.client("kms", **kw)
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
test_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.9.0/24")["Subnet"]["SubnetId"]
sg = ec2.create_security_group(GroupName="sharepoint", Description="SharePoint farm", VpcId=vpc)["GroupId"]
test_sg = ec2.create_security_group(GroupName="sharepoint-test", Description="SharePoint test", VpcId=vpc)["GroupId"]
ec2.create_key_pair(KeyName="farm-admin")
iam.create_instance_profile(InstanceProfileName="rehost-ssm")
kms.create_alias(AliasName="alias/migration", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
text = open(sys.argv[1]).read()
for old, new in [("vpc-0a1b2c3d4e5f60718", vpc), ("subnet-0a1b2c3d4e5f60718", subnet),
                 ("subnet-0f0e0d0c0b0a09080", test_subnet), ("sg-0a1b2c3d4e5f60718", sg),
                 ("sg-0f0e0d0c0b0a09080", test_sg)]:
    text = text.replace(old, new)
open(sys.argv[2], "w").write(text)
print(f"created {vpc}: cutover {subnet}/{sg}, test {test_subnet}/{test_sg}")
PY

echo "== sample disk images"
grep -o 'source: vmstore/[^ ]*' "$out/sharepoint-farm.yaml" | cut -d' ' -f2 | while read -r disk; do
  mkdir -p "$out/$(dirname "$disk")"
  raw="$out/$disk.raw"
  truncate -s 64M "$raw"
  # A few MiB of "data" at the start and in the middle; the rest stays unallocated.
  head -c 4M /dev/urandom | dd of="$raw" conv=notrunc status=none
  head -c 2M /dev/urandom | dd of="$raw" bs=1M seek=32 conv=notrunc status=none
  case "$disk" in
    *.vmdk) fmt=vmdk ;; *.vhdx) fmt=vhdx ;; *.vhd) fmt=vpc ;; *.qcow2) fmt=qcow2 ;; *) fmt=raw ;;
  esac
  qemu-img convert -q -f raw -O "$fmt" "$raw" "$out/$disk"
  rm -f "$raw"
  echo "$disk ($fmt, 64 MiB, 6 MiB of data)"
done

echo
echo "== rehost validate"
"$rehost" validate "$out/sharepoint-farm.yaml"
echo
echo "== rehost graph"
"$rehost" graph "$out/sharepoint-farm.yaml"
echo
# The emulator treats launch gates (WaitConditions) as no-ops; the gated template is deployed
# as on AWS, where each tier would wait for the previous one's configure scripts. Production
# (cutover) is never the default, and it is guarded: it is refused until a test launch of the
# same definition succeeded and while any replica is older than maxLagMinutes. So the farm is
# migrated to its test stack first, then cut over from the same fresh AMIs. Creating the cutover
# stack replaces nothing, so it needs no --yes.
echo "== rehost migrate (replicate every server, then launch the test farm)"
"$rehost" migrate "$out/sharepoint-farm.yaml"
echo
echo "== rehost launch --mode cutover (guardrails: tested, replicas fresh)"
"$rehost" launch "$out/sharepoint-farm.yaml" --mode cutover
echo
echo "== rehost history"
"$rehost" history "$out/sharepoint-farm.yaml"
echo
echo "(The emulator ignores instances' network interfaces, so the private IPs above are its own;"
echo " the deployed template asks for 10.0.1.10 for dc01 and 10.0.1.20 for sql01 in the farm's subnet.)"
