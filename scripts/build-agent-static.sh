#!/usr/bin/env bash
# Builds strata-agent with no dynamic dependencies (static-pie glibc, gnu target: the
# only Rust target installed here) and installs it as `strata-agent-static` beside the
# provider binaries in DIR (default target/debug), where the provider looks for it.
# Usage: scripts/build-agent-static.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
dest="${1:-$target_dir/debug}"
# --target keeps crt-static away from build scripts and proc-macros (which must stay dynamic).
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release -p strata-agent \
  --target x86_64-unknown-linux-gnu
mkdir -p "$dest"
install -m 0755 "$target_dir/x86_64-unknown-linux-gnu/release/strata-agent" "$dest/strata-agent-static"
echo "$dest/strata-agent-static"
