#!/usr/bin/env bash
# `make bench`: regenerates docs/benchmarks.md from the benchmark scripts. Release
# builds: the figures are what users run. BENCH_SECTIONS (default "provider vm agent lab etcd lb")
# picks sections; a section not re-run keeps its text from the current file, so each
# comparison in the file always comes from one run of its script.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --workspace --bins
terraform="$(bash scripts/install-terraform.sh)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/release"
out="$root/docs/benchmarks.md"
sections="${BENCH_SECTIONS:-provider vm agent lab etcd lb rebuild day2 bundles k3s}"
tmp="$(mktemp)"
# The current text of a section (from its "## " heading to the next), to keep it.
keep() { [ -f "$out" ] && awk -v h="$1" 'index($0, "## ")==1 {on = index($0, h) > 0} on' "$out"; }
run() { case " $sections " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`make bench\` (scripts/benchmarks.sh) on $(date -u +%Y-%m-%d): $(nproc) cores,"
  echo "$(free -g | awk '/Mem:/{print $2}') GiB, release builds. Re-run it to refresh; do not edit by hand."
  echo
  echo "What each section measures, how, and against what it is compared: the provider's cost"
  echo "over Terraform's own, plans and applies of many Proxmox VMs against pve-sim, the agent"
  echo "against Ansible doing the same node configuration, lab machines coming up, etcd and"
  echo "load balancer operations on lab nodes, the rebuild of the whole platform, day-2 changes under a live prober, what loading a local image registry uploads, and k3s in HA (formation, upgrade, rebuild). All run on one machine, so absolute times are"
  echo "those of this machine; ratios measured in the same run are the comparable figures."
  echo
  if run provider; then python3 scripts/bench_provider.py "$bin/terraform-provider-strata" "$terraform"; else keep "## The provider's own cost"; fi
  if run vm; then python3 scripts/bench_vm.py "$bin" "$terraform" "$bin/pve-sim"; else keep "## Proxmox VMs"; fi
  if run agent; then CARGO_TARGET_DIR="$target" STRATA_BIN_DIR="$bin" bash scripts/bench_agent.sh; else keep "## strata-agent vs Ansible"; fi
  if run lab; then STRATA_BIN_DIR="$bin" bash scripts/bench_lab.sh; else keep "## Lab"; fi
  if run etcd; then python3 scripts/bench_etcd.py "$bin" "$terraform"; else keep "## etcd"; fi
  if run lb; then bash scripts/bench_load_balancer.sh; else keep "## Load balancer failover"; fi
  if run rebuild; then bash scripts/bench_rebuild.sh; else keep "## Rebuild after every VM is gone"; fi
  if run day2; then bash scripts/bench_day2.sh; else keep "## Changes under load"; fi
  if run bundles; then bash scripts/bench_bundles.sh; else keep "## Image bundles"; fi
  if run k3s; then bash scripts/bench_k3s.sh; else keep "## k3s in HA"; fi
} > "$tmp"
mkdir -p docs
mv "$tmp" "$out"
cat "$out"
