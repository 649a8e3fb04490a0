#!/usr/bin/env bash
# `make demo`: builds everything, installs Terraform, brings the lab up (Debian nodes
# booted with systemd, air-gapped, plus pve-sim), applies examples/cluster-secrets and
# examples/nfs-exports, and prints the outputs. Safe to re-run; state lives in .demo/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cargo build --workspace --bins
terraform="$(bash scripts/install-terraform.sh)"
target="${CARGO_TARGET_DIR:-$root/target}"
lab_dir="${STRATA_DEMO_LAB:-/var/tmp/strata-demo-lab}"

demo="$root/.demo"
mkdir -p "$demo"
cat > "$demo/cli.tfrc" <<CFG
provider_installation {
  dev_overrides {
    "strata-iac/strata" = "$target/debug"
  }
  direct {}
}
CFG
export TF_CLI_CONFIG_FILE="$demo/cli.tfrc"

echo "== lab: $lab_dir"
"$target/debug/strata-lab" up --dir "$lab_dir" --nodes 2
"$target/debug/strata-lab" status --dir "$lab_dir"
node1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"][0]["address"])' "$lab_dir/lab.json")

echo "== cluster secrets"
mkdir -p "$demo/cluster-secrets"
cp examples/cluster-secrets/main.tf "$demo/cluster-secrets/main.tf"
(cd "$demo/cluster-secrets" && "$terraform" apply -auto-approve -input=false)

echo "== NFS exports on $node1"
mkdir -p "$demo/nfs-exports"
cp examples/nfs-exports/main.tf "$demo/nfs-exports/main.tf"
(cd "$demo/nfs-exports" && "$terraform" apply -auto-approve -input=false \
   -var "nfs_server=$node1" \
   -var "ssh_private_key_file=$lab_dir/ssh/id_ed25519" \
   -var "known_hosts_file=$lab_dir/ssh/known_hosts")

echo
echo "Terraform state: $demo/*/terraform.tfstate (cluster-secrets holds private keys: treat it as a secret)."
echo "Lab nodes keep running; stop them with: $target/debug/strata-lab down --dir $lab_dir"
