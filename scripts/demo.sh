#!/usr/bin/env bash
# `make demo`: builds everything (lab, pve-sim, Kubernetes stand-ins), packs the provider
# as `make release` does (scripts/release.sh into DIR/dist, signed with a throwaway key
# made for the demo), then `strata-demo up` brings the lab up, prepares the cloud-init
# template in pve-sim, installs the provider with `terraform init` from the release's
# filesystem mirror (what users run; no dev_overrides), applies examples/ha-cluster (10
# VMs that boot as real Debian machines), proves the platform runs and prints each
# phase's time (`make demo EXAMPLE=k3s-ha`: examples/k3s-ha instead). `make demo-down` removes it all.
# Needs root (the lab creates network namespaces and boots machines with systemd).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
demo_dir="${STRATA_DEMO_DIR:-/var/tmp/strata-demo}"

case "${1:-up}" in
  up)
    [ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, systemd machines)" >&2; exit 1; }
    echo "==> build (cargo build --workspace --bins: the lab, pve-sim, the stand-ins; a few minutes on a fresh clone)"
    cargo build --workspace --bins
    echo "==> release (scripts/release.sh, as make release: a release build, the zip, SHA256SUMS signed, the mirror)"
    # A throwaway signing key, kept with the demo (make demo-down removes it): the demo
    # signs and checks like a release, without touching the user's keyring.
    export GNUPGHOME="$demo_dir/gnupg"
    mkdir -p "$GNUPGHOME" && chmod 700 "$GNUPGHOME"
    if ! gpg --batch --list-secret-keys demo@strata.invalid >/dev/null 2>&1; then
      gpg --batch --quiet --passphrase '' --quick-gen-key "Strata demo release <demo@strata.invalid>" ed25519 sign 30d
    fi
    STRATA_GPG_KEY_ID=demo@strata.invalid DIST_DIR="$demo_dir/dist" bash scripts/release.sh >/dev/null
    gpgconf --kill gpg-agent  # signing started it; nothing else here needs it
    version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
    sums="terraform-provider-strata_${version}_SHA256SUMS"
    (cd "$demo_dir/dist" && gpg --batch --quiet --verify "$sums.sig" "$sums" 2>/dev/null && sha256sum --quiet -c "$sums") ||
      { echo "the demo's release does not verify (gpg --verify, sha256sum -c in $demo_dir/dist)" >&2; exit 1; }
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
