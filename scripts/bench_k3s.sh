#!/usr/bin/env bash
# k3s in HA (examples/k3s-ha: 3 load-balancer VMs, 3 k3s servers on embedded etcd, 2
# agents, 1 NFS VM) against pve-sim: the first apply (HA formation), the upgrade to the
# next pinned version (one node at a time, under the VIP prober) and the rebuild after
# every k3s VM was deleted, next to the critical path of the rebuild's dependency graph.
# Runs the `k3s` acceptance test (debug build, as the tests run) and prints a section for
# docs/benchmarks.md. k3s is the lab's stand-in (real etcd, containerd, kubectl).
#
#   bash scripts/bench_k3s.sh
#   K3S_REPORT=FILE bash scripts/bench_k3s.sh   (only formats FILE)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${K3S_REPORT:-}" ]; then
  report="$K3S_REPORT"
else
  report="$(mktemp)"
  trap 'rm -f "$report"' EXIT
  STRATA_K3S_REPORT="$report" cargo nextest run --no-fail-fast -p strata-acceptance-tests --test k3s >&2
fi
python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("## k3s in HA: formation, upgrade and rebuild")
print()
print("The `k3s` acceptance test on `examples/k3s-ha` (3 HAProxy/keepalived VMs, 3 k3s servers")
print("on embedded etcd, 2 agents, 1 NFS VM; 9 VMs cloned in pve-sim, booted as real Debian")
print("machines). k3s is installed from the release files (`airgap {}`). The k3s binary is the")
print("lab's stand-in; its etcd and containerd are Debian's real ones. Debug build of the")
print("provider, as the tests run it. The rebuild deletes the five k3s VMs through the Proxmox")
print("API and runs one plain `terraform apply` with `k3s_restore_snapshot`.")
print()
print("| | seconds |")
print("|---|---:|")
print(f"| first apply: 9 VMs, load balancer, NFS, HA formation of 3 servers, 2 agents | {r['first_apply_s']:.1f} |")
print(f"| upgrade to the next pinned version, 5 nodes one at a time (whole command) | {r['upgrade_s']:.1f} |")
print(f"| rebuild: the whole `terraform apply` | {r['rebuild_s']:.1f} |")
print(f"| rebuild: apply phase (first resource started to last done) | {r['rebuild_apply_phase_s']:.1f} |")
print(f"| rebuild: critical path of the same graph | {r['rebuild_critical_path_s']:.1f} |")
print(f"| **rebuild: whole command / critical path** | **{r['rebuild_s'] / r['rebuild_critical_path_s']:.2f}x** |")
print()
print("The rebuild's critical path: " + " → ".join(f"`{c['resource']}` {c['seconds']:.1f} s" for c in r['chain']) + ".")
print()
PY
