#!/usr/bin/env bash
# `make demo`: builds everything, installs Terraform, applies examples/cluster-secrets
# and prints the outputs. Re-running it is safe: the state lives in .demo/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cargo build --workspace --bins
terraform="$(bash scripts/install-terraform.sh)"
target="${CARGO_TARGET_DIR:-$root/target}"

demo="$root/.demo"
mkdir -p "$demo/cluster-secrets"
cat > "$demo/cli.tfrc" <<CFG
provider_installation {
  dev_overrides {
    "strata-iac/strata" = "$target/debug"
  }
  direct {}
}
CFG
export TF_CLI_CONFIG_FILE="$demo/cli.tfrc"
cp examples/cluster-secrets/main.tf "$demo/cluster-secrets/main.tf"
cd "$demo/cluster-secrets"
"$terraform" apply -auto-approve -input=false
"$terraform" output
echo
echo "State: $demo/cluster-secrets/terraform.tfstate (holds private keys: treat it as a secret)."
