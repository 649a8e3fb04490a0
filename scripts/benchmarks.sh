#!/usr/bin/env bash
# `make bench`: regenerates docs/benchmarks.md from the benchmark scripts, in one run.
# Release builds: the figures are what users run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --workspace --bins
terraform="$(bash scripts/install-terraform.sh)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/release"
out="$root/docs/benchmarks.md"
tmp="$(mktemp)"
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`make bench\` (scripts/benchmarks.sh) on $(date -u +%Y-%m-%d): $(nproc) cores,"
  echo "$(free -g | awk '/Mem:/{print $2}') GiB, release builds. Re-run it to refresh; do not edit by hand."
  echo
  python3 scripts/bench_provider.py "$bin/terraform-provider-strata" "$terraform"
  if [ -f scripts/bench_vm.py ]; then
    python3 scripts/bench_vm.py "$bin" "$terraform" "$bin/pve-sim"
  fi
  if [ -f scripts/bench_agent.sh ]; then
    STRATA_BIN_DIR="$bin" bash scripts/bench_agent.sh
  fi
} > "$tmp"
mkdir -p docs
mv "$tmp" "$out"
cat "$out"
