#!/usr/bin/env bash
# Changes under load: each day-2 change the acceptance tests apply to a live platform,
# with its apply time and the failed probes the live prober (acceptance-tests/src/
# prober.rs: TCP or /readyz through the VIP, and an etcd key, every 100 ms) recorded
# while it ran. Runs the day-2 acceptance tests (debug build, as the tests run) with
# STRATA_DAY2_REPORT set; each test records its changes there. Prints a markdown section
# for docs/benchmarks.md on stdout; progress goes to stderr. Needs root (the lab).
#
#   bash scripts/bench_day2.sh            (DAY2_TESTS overrides the nextest filter)
#   DAY2_REPORT=FILE bash scripts/bench_day2.sh   (only formats FILE, written by a test
#                                                  run with STRATA_DAY2_REPORT=FILE)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DAY2_REPORT:-}" ]; then
  report="$DAY2_REPORT"
else
  report="$(mktemp)"
  trap 'rm -f "$report"' EXIT
  # The platform sequence, and the load balancer's, etcd's and the control plane's own.
  filter="${DAY2_TESTS:-test(day2_changes_under_load) | test(load_balancer_day2) | test(grow_one_to_three) | test(running_control_plane_refuses)}"
  STRATA_DAY2_REPORT="$report" cargo nextest run --no-fail-fast -p strata-acceptance-tests -E "$filter" >&2
fi
python3 - "$report" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("## Changes under load: day-2 changes on a live platform")
print()
print("Each row is one `terraform apply` of a day-2 change to a running lab platform (real")
print("haproxy, keepalived and etcd; the Kubernetes stand-ins), made by the day-2 acceptance")
print("tests (`day2_platform`: the whole sequence on one platform; `load_balancer`, `etcd_cluster`")
print("and `control_plane_day2`: each resource's own), while the live prober watched: a TCP")
print("connection, or `GET /readyz` verified against the cluster CA where the test has a control")
print("plane, to the VIP (etcd's own tests: node1's client port) every 100 ms, and where the test")
print("has etcd, an etcd key read every 100 ms. A failed probe is one 100 ms slot without a good")
print("answer in time. Debug build of the provider, as the tests run it.")
print()
print("| change | apply (s) | probe slots | failed: VIP | failed: etcd key |")
print("|---|---:|---:|---:|---:|")
for r in rows:
    vip = r["failed_tcp"] + r["failed_readyz"]
    print(f"| {r['change']} | {r['apply_s']:.1f} | {r['rounds']} | {vip} | {r['failed_etcd']} |")
print()
PY
