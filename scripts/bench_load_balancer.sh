#!/usr/bin/env bash
# strata_load_balancer failover: median time from killing the VIP holder (power loss,
# and haproxy alone) to the first new connection through the VIP, at advert_interval
# 1 s and 0.1 s, next to VRRP's master-down floor.
#
#   bash scripts/bench_load_balancer.sh      (BENCH_RUNS=N for N >= 5 runs per case; default 5)
#
# Runs the ignored acceptance test `failover_benchmark` (acceptance-tests/tests/
# load_balancer.rs): six systemd lab nodes (three load balancers, three backends), real
# Terraform, haproxy and keepalived. The provider is not on the timed path (keepalived
# and haproxy are), so the test's own debug build of it is used. Needs root (the lab).
# Prints a markdown section for docs/benchmarks.md on stdout; progress goes to stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
STRATA_BENCH_OUT="$out" cargo test -q -p strata-acceptance-tests --test load_balancer -- \
  --ignored --exact failover_benchmark --nocapture >&2
cat "$out"
