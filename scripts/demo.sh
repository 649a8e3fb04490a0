#!/usr/bin/env bash
# `make demo`: builds everything (provider, static agent, lab, pve-sim, Kubernetes
# stand-ins), then `strata-demo up` brings the lab up, prepares the cloud-init template
# in pve-sim, applies examples/ha-cluster (10 VMs that boot as real Debian machines),
# proves the platform runs and prints each phase's time. `make demo-down` removes it all.
# Needs root (the lab creates network namespaces and boots machines with systemd).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

case "${1:-up}" in
  up)
    [ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, systemd machines)" >&2; exit 1; }
    echo "==> build (cargo build --workspace --bins; a few minutes on a fresh clone)"
    cargo build --workspace --bins
    bash scripts/build-agent-static.sh "$target/debug" >/dev/null
    STRATA_TERRAFORM="$(bash scripts/install-terraform.sh)"
    export STRATA_TERRAFORM
    exec "$target/debug/strata-demo" up
    ;;
  down)
    if [ -x "$target/debug/strata-demo" ]; then
      exec "$target/debug/strata-demo" down
    fi
    echo "nothing to tear down (no strata-demo built)"
    ;;
  *)
    echo "usage: $0 [up|down]" >&2
    exit 2
    ;;
esac
