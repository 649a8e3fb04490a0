#!/usr/bin/env bash
# strata-lab: time to boot N nodes (Debian machines booted with systemd) and to take
# them down, plus (optionally) building the node image and the local apt repository
# from nothing.
#
#   bash scripts/bench_lab.sh   (BENCH_RUNS=N timed runs per size, N >= 3, default 5;
#                                BENCH_LAB_SIZES="1 3 9" node counts;
#                                BENCH_LAB_COLD=0 skips the cold-cache build)
#
# strata-lab from $STRATA_BIN_DIR if set, else ${CARGO_TARGET_DIR:-target}/debug.
# Prints a markdown section for docs/benchmarks.md on stdout; progress goes to stderr.
#
# `up` returns when every node's systemd reports `running` (a degraded boot fails it)
# and its sshd answers; each timed `up` is also checked from outside: every node answers
# SSH with its own hostname and `systemctl is-system-running` = running. `down` returns
# after clean shutdowns and its own check that no process, mount, namespace or link is
# left. The cold build uses a fresh STRATA_CACHE (Debian's mirror, through this machine's
# package proxy), so it measures mmdebstrap + apt downloads as a first `up` pays them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$(realpath -m "${STRATA_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/debug}")"
LAB="$BIN_DIR/strata-lab"
RUNS="${BENCH_RUNS:-5}"
SIZES="${BENCH_LAB_SIZES:-1 3 9}"
COLD="${BENCH_LAB_COLD:-1}"

log() { echo "bench_lab: $*" >&2; }
die() { echo "bench_lab: FAILED: $*" >&2; exit 1; }
load() { cut -d' ' -f1 /proc/loadavg; }
[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 3 ] || die "BENCH_RUNS must be an integer >= 3 (got '$RUNS')"
[ "$(id -u)" -eq 0 ] || die "needs root (strata-lab boots machines)"
[ -x "$LAB" ] || die "$LAB not found: run 'cargo build -p strata-lab' (--release for target/release) first"

WORK="$(mktemp -d /tmp/strata-bench-lab.XXXXXX)"
cleanup() {
  local rc=$?
  set +e
  for d in "$WORK"/lab-*; do [ -d "$d" ] && "$LAB" down --dir "$d" >/dev/null 2>&1; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_us() { local t=${EPOCHREALTIME/./}; printf -v "$1" '%d' "$((10#$t))"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
fmt_us() { awk -v u="$1" 'BEGIN { if (u < 1e6) printf "%.0f ms", u/1e3; else printf "%.2f s", u/1e6 }'; }
med() { printf '%s\n' "$@" | median; }
rng() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo, hi}'; }

# check_lab DIR N: every node answers strict SSH with its hostname and is `running`.
check_lab() {
  mapfile -t info < <(python3 - "$1/lab.json" <<'PY'
import json, sys
lab = json.load(open(sys.argv[1]))
print(lab["ssh"]["private_key_file"]); print(lab["ssh"]["known_hosts_file"])
for n in lab["nodes"]: print(n["name"], n["address"])
PY
)
  [ "${#info[@]}" = $(($2 + 2)) ] || die "lab.json of $1 lists $((${#info[@]} - 2)) nodes, expected $2"
  local line name addr out
  for line in "${info[@]:2}"; do
    name="${line%% *}" addr="${line##* }"
    out=$(ssh -F /dev/null -i "${info[0]}" -o UserKnownHostsFile="${info[1]}" -o StrictHostKeyChecking=yes \
      -o BatchMode=yes -o ConnectTimeout=10 "root@$addr" 'hostname; systemctl is-system-running' 2>&1) ||
      die "ssh to $name ($addr) failed: $out"
    [ "$(echo "$out" | paste -sd' ')" = "$name running" ] || die "$name answered '$out'"
  done
}

LOAD_START=$(load)
cold_image="" cold_repo="" cold_up=""
if [ "$COLD" = 1 ]; then
  log "cold: building the node image and the local repository in an empty cache"
  d="$WORK/lab-cold"
  now_us t0
  STRATA_CACHE="$WORK/cache" "$LAB" up --dir "$d" --nodes 1 --no-pve >"$WORK/cold.log" 2>&1 ||
    { tail -n 30 "$WORK/cold.log" >&2; die "cold up failed"; }
  now_us t1
  check_lab "$d" 1
  cold_up=$((t1 - t0))
  # The builders log their own start; the image and repository directories their end.
  cold_image=$(du -sm "$WORK"/cache/lab/image-* | awk '{print $1}')
  cold_repo=$(du -sm "$WORK"/cache/lab/repo-* | awk '{print $1}')
  "$LAB" down --dir "$d" >/dev/null
  rm -rf "$WORK/cache"
fi

# Warm the real cache (untimed) so that every timed `up` boots from it.
"$LAB" up --dir "$WORK/lab-warm" --nodes 1 --no-pve >"$WORK/warm.log" 2>&1 || { tail -n 30 "$WORK/warm.log" >&2; die "warm-up failed"; }
"$LAB" down --dir "$WORK/lab-warm" >/dev/null

declare -A UP DOWN
for n in $SIZES; do
  ups=() downs=()
  for i in $(seq "$RUNS"); do
    d="$WORK/lab-$n-$i"
    now_us t0
    "$LAB" up --dir "$d" --nodes "$n" --no-pve >"$WORK/up.log" 2>&1 || { tail -n 30 "$WORK/up.log" >&2; die "up of $n nodes failed"; }
    now_us t1
    check_lab "$d" "$n"
    now_us t2
    "$LAB" down --dir "$d" >"$WORK/down.log" 2>&1 || { tail -n 30 "$WORK/down.log" >&2; die "down of $n nodes failed"; }
    now_us t3
    ups+=($((t1 - t0))) downs+=($((t3 - t2)))
  done
  UP[$n]="${ups[*]}" DOWN[$n]="${downs[*]}"
  log "$n nodes: up ${ups[*]} us; down ${downs[*]} us"
done

cat <<EOF
## Lab: how fast machines come up

Produced by \`scripts/bench_lab.sh\`: \`strata-lab up --nodes N --no-pve\` until every node's
systemd reports \`running\` and its sshd answers (then checked from outside: strict SSH to
each node answers its hostname and \`running\`), and \`strata-lab down\` (clean shutdowns, then
its own check that nothing is left). Median and range of $RUNS runs per size, warm cache, on
this machine ($(nproc) cores, shared with other work; 1-minute load average $LOAD_START before,
$(load) after), $(basename "$BIN_DIR") build of strata-lab.

| nodes | up (median) | up (min – max) | down (median) | down (min – max) |
| ---: | ---: | ---: | ---: | ---: |
EOF
for n in $SIZES; do
  read -r ulo uhi < <(rng ${UP[$n]})
  read -r dlo dhi < <(rng ${DOWN[$n]})
  echo "| $n | $(fmt_us "$(med ${UP[$n]})") | $(fmt_us "$ulo") – $(fmt_us "$uhi") | $(fmt_us "$(med ${DOWN[$n]})") | $(fmt_us "$dlo") – $(fmt_us "$dhi") |"
done
echo
if [ -n "$cold_up" ]; then
  echo "First \`up\` of 1 node with an empty \`STRATA_CACHE\` (one run): **$(fmt_us "$cold_up")**, almost all of"
  echo "it building the node image (mmdebstrap, ${cold_image} MB) and the local apt repository (${cold_repo} MB)"
  echo "from Debian's mirror; every later \`up\` reuses both."
else
  echo "Cold-cache build not measured in this run (BENCH_LAB_COLD=0)."
fi
