#!/usr/bin/env bash
# The rebuild of the reference platform (examples/ha-cluster, 10 VMs) after every VM was
# deleted, next to the critical path of the same apply's dependency graph. Runs the
# `rehearsal` acceptance test (debug build, as the tests run) and prints its figures as
# a section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
report="$(mktemp)"
STRATA_REHEARSAL_REPORT="$report" cargo nextest run --no-fail-fast -p strata-acceptance-tests --test rehearsal >&2
python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("## Rebuild after every VM is gone: wall time against the critical path")
print()
print("The `rehearsal` acceptance test: `examples/ha-cluster` (3 load-balancer, 3 control-plane,")
print("3 worker and 1 NFS VM) applied against pve-sim, backups taken, every VM deleted through")
print("the Proxmox API, then one plain `terraform apply` rebuilds it all. The critical path is")
print("the longest chain of that apply's dependency graph (the resources' `depends_on` in")
print("state), each resource weighted by its slowest instance: the instances' times from")
print("Terraform's `apply_start`/`apply_complete` events, which contain pve-sim's task")
print("durations and the measured per-node steps (package installs, kubeadm, etcd restore).")
print("A rebuild close to the critical path means nothing waits that need not. Debug build of")
print("the provider, as the tests run it.")
print()
print("| | seconds |")
print("|---|---:|")
print(f"| first apply of the platform (whole command) | {r['first_apply_s']:.1f} |")
print(f"| rebuild: the whole `terraform apply` (refresh, plan, apply) | {r['rebuild_s']:.1f} |")
print(f"| rebuild: refresh and plan before it (gone VMs and unreachable nodes found) | {r['rebuild_s'] - r['apply_phase_s']:.1f} |")
print(f"| rebuild: apply phase (first resource started to last done) | {r['apply_phase_s']:.1f} |")
print(f"| critical path of the same graph | {r['critical_path_s']:.1f} |")
ratio = r['apply_phase_s'] / r['critical_path_s']
print(f"| apply phase / critical path | {ratio:.2f}x (target at most 1.2x: {'met' if ratio <= 1.2 else 'missed'}) |")
print()
print("The critical path: " + " → ".join(f"`{c['resource']}` {c['seconds']:.1f} s" for c in r['chain']) + ".")
print()
print("Each resource of the rebuild: when its first instance started and its last one finished")
print("(seconds into the apply phase), and its slowest instance. A start well after what it")
print("depends on finished, or a span much longer than the slowest instance, is waiting.")
print()
print("| resource | started | done | slowest instance |")
print("|---|---:|---:|---:|")
for s in r['spans']:
    print(f"| `{s['resource']}` | {s['start']:.1f} | {s['end']:.1f} | {s['slowest']:.1f} |")
print()
PY
rm -f "$report"
