#!/usr/bin/env bash
# `make bench`: regenerates docs/benchmarks.md from the benchmark scripts, in one run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --workspace --bins
terraform="$(bash scripts/install-terraform.sh)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="$root/docs/benchmarks.md"
tmp="$(mktemp)"
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`make bench\` (scripts/benchmarks.sh) on $(date -u +%Y-%m-%d), $(nproc) cores,"
  echo "$(free -g | awk '/Mem:/{print $2}') GiB. Re-run it to refresh; do not edit by hand."
  echo
  python3 scripts/bench_provider.py "$target/debug/terraform-provider-strata" "$terraform"
} > "$tmp"
mkdir -p docs
mv "$tmp" "$out"
cat "$out"
