#!/usr/bin/env bash
# Image bundles: bytes the registry node received during the first apply of
# strata_image_registry with two bundles and during a second apply of the same
# configuration (which must upload nothing). Runs the image_registry acceptance test
# (debug build, as the tests run) with STRATA_BUNDLE_REPORT set; the test measures the
# node's interface counters around each apply. Prints a markdown section for
# docs/benchmarks.md on stdout; progress goes to stderr. Needs root (the lab).
#
#   bash scripts/bench_bundles.sh
#   BUNDLE_REPORT=FILE bash scripts/bench_bundles.sh   (only formats FILE)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${BUNDLE_REPORT:-}" ]; then
  report="$BUNDLE_REPORT"
else
  report="$(mktemp)"
  trap 'rm -f "$report"' EXIT
  STRATA_BUNDLE_REPORT="$report" cargo nextest run -p strata-acceptance-tests --test image_registry >&2
fi
python3 - "$report" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
kib = lambda b: f"{b / 1024:.0f} KiB"
print("## Image bundles: what an apply uploads")
print()
print("`strata_image_registry` with two image bundles (the lab's pause and busybox images,")
print("OCI archives) on a lab node, from `acceptance-tests/tests/image_registry.rs`: bytes the")
print("registry node received on its network interfaces during each `terraform apply` (SSH")
print("included). The second apply has the same bundles: the registry already serves every")
print("image with the archive's digest, so no bundle is sent; what remains is the provider's")
print("reads over SSH.")
print()
print("| measure | bytes |")
print("|---|---:|")
print(f"| the two bundles (archives) | {r['bundle_bytes']} ({kib(r['bundle_bytes'])}) |")
print(f"| received during the first apply | {r['first_apply_bytes']} ({kib(r['first_apply_bytes'])}) |")
print(f"| received during the second apply | {r['second_apply_bytes']} ({kib(r['second_apply_bytes'])}) |")
print()
PY
