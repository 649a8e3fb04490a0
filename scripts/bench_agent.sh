#!/usr/bin/env bash
# strata-agent vs ansible-playbook: no-op run time for the same desired state.
#
#   bash scripts/bench_agent.sh        (BENCH_RUNS=N for N timed runs per side, N >= 5; default 5)
#
# Binaries: strata-agent and strata-lab from $STRATA_BIN_DIR if set, else from
# ${CARGO_TARGET_DIR:-target}/debug (`make bench` passes the release build).
#
# Prints a markdown section for docs/benchmarks.md on stdout; progress goes to stderr.
#
# Desired state: scripts/bench_agent/node.json (the agent's spec). Ansible gets the
# same data as variables (scripts/bench_agent/playbook.yml + templates/, builtin modules
# only) and writes the same bytes and modes under the same root. Every root starts as
# scripts/bench_agent/seed.sh makes it. Before anything is timed the script checks the
# two sides agree: a root converged by one tool is a no-op for the other one (and, locally,
# the two converged trees are identical), so both really manage the same state.
#
# 1. Local: `strata-agent apply node.json --root R --simulate` vs `ansible-playbook -c local`
#    on the same temp root R, each timed BENCH_RUNS times after converging.
# 2. Over SSH to 9 strata-lab nodes (Debian machines booted with systemd, air-gapped;
#    the lab is created here and removed on exit, also on failure), the real host path:
#    spec scripts/bench_agent/systemd-node.json (containerd installed from the lab's
#    local repository and running under systemd, its configuration, kubelet drop-in,
#    crictl, live net.* sysctls). The agent binary is copied to
#    /var/lib/strata/strata-agent on each node and run as one `ssh` per node, all 9 in
#    parallel, spec on stdin, no --root, no --simulate; vs ansible-playbook (same
#    playbook, real mode) against the same 9 nodes (forks=9, pipelining=True, Ansible's
#    default ControlPersist=60s). Also timed: the agent with the connection reuse
#    Ansible gets. Both directions are checked first: nodes converged by one tool are a
#    no-op for the other (blank nodes for each direction: `strata-lab node recreate`).
# Every timed run is verified to be a no-op (agent exit 0 on every node; Ansible
# recap changed=0 failed=0 unreachable=0 for every host), else the script fails.
#
# Needs: root (the lab), python3 with venv, the binaries (above), and PyPI once: ansible-core is installed
# into $STRATA_CACHE/ansible-venv (default ~/.cache/strata), reused on later runs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$REPO/scripts/bench_agent"
SPEC="$DATA/node.json"
NODE_SPEC="$DATA/systemd-node.json"
PLAYBOOK="$DATA/playbook.yml"
# Binaries: STRATA_BIN_DIR if set (scripts/benchmarks.sh passes target/release), else the debug build.
BIN_DIR="$(realpath -m "${STRATA_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/debug}")"
AGENT="$BIN_DIR/strata-agent"
LAB="$BIN_DIR/strata-lab"
case "${BIN_DIR##*/}" in
  debug | release) BUILD="${BIN_DIR##*/} build" ;;
  *) BUILD="build from $BIN_DIR" ;;
esac
RUNS="${BENCH_RUNS:-5}"
CACHE="${STRATA_CACHE:-$HOME/.cache/strata}"
VENV="$CACHE/ansible-venv"
ANSIBLE_CORE_VERSION="${BENCH_ANSIBLE_CORE_VERSION:-2.19.14}"
NODES="${BENCH_NODES:-9}"
REMOTE_AGENT=/var/lib/strata/strata-agent
NODE_PYTHON=/usr/bin/python3  # installed on each node from the lab's local repository
ANSIBLE_TIMEOUT=1800 # seconds, per ansible-playbook run (a no-op over SSH takes ~1.5 min on 2 cores)

load() { cut -d' ' -f1 /proc/loadavg; }
log() { echo "bench_agent: $*" >&2; }
die() { echo "bench_agent: FAILED: $*" >&2; exit 1; }
show() { # FILE...: print files (run output) to stderr for diagnosis
  local f
  for f in "$@"; do [ -f "$f" ] && { echo "----- $f" >&2; tail -n 60 "$f" >&2; }; done
  return 0
}

[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 5 ] || die "BENCH_RUNS must be an integer >= 5 (got '$RUNS')"
[ "$(id -u)" -eq 0 ] || die "needs root (strata-lab creates namespaces)"
for b in "$AGENT" "$LAB"; do
  [ -x "$b" ] || die "$b not found: run 'cargo build --workspace --bins' (--release for target/release) first"
done
for f in "$SPEC" "$NODE_SPEC" "$PLAYBOOK" "$DATA/seed.sh"; do [ -f "$f" ] || die "missing $f"; done
for c in python3 ssh flock realpath timeout; do command -v "$c" >/dev/null || die "'$c' not found"; done

# ---------------------------------------------------------------- ansible-core
ansible_version() { "$VENV/bin/python" -c 'from ansible.release import __version__; print(__version__)' 2>/dev/null; }
mkdir -p "$CACHE"
(
  flock -w 600 9 || die "timed out waiting for $CACHE/ansible-venv.lock"
  if [ "$(ansible_version)" != "$ANSIBLE_CORE_VERSION" ] || [ ! -x "$VENV/bin/ansible-playbook" ]; then
    log "installing ansible-core $ANSIBLE_CORE_VERSION into $VENV"
    python3 -m venv --clear "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "ansible-core==$ANSIBLE_CORE_VERSION" >&2
  fi
) 9>"$CACHE/ansible-venv.lock"
[ "$(ansible_version)" = "$ANSIBLE_CORE_VERSION" ] || die "ansible-core $ANSIBLE_CORE_VERSION not usable in $VENV"

# ------------------------------------------------------------- work dir, cleanup
WORK="$(mktemp -d /tmp/strata-bench-agent.XXXXXX)"
LABDIR="$WORK/lab" # the lab dir must be under /tmp or /var/tmp
LAB_STARTED=0
cleanup() {
  local rc=$? sock keep=0
  set +e
  # SSH control masters (Ansible's and the multiplexed agent runs'): ask each to exit.
  for sock in "$WORK"/cp-ansible/* "$WORK"/cp-agent/*; do
    [ -S "$sock" ] && timeout 10 ssh -o ControlPath="$sock" -O exit bench-node >/dev/null 2>&1
  done
  if [ "$LAB_STARTED" = 1 ]; then
    log "removing the lab"
    if ! timeout 300 "$LAB" down --dir "$LABDIR" >"$WORK/lab-down.log" 2>&1; then
      show "$WORK/lab-down.log"
      echo "bench_agent: 'strata-lab down --dir $LABDIR' failed; kept $WORK for a manual retry" >&2
      keep=1
    fi
  fi
  if [ "$keep" = 1 ]; then
    :
  elif [ "$rc" != 0 ]; then
    rm -rf "$LABDIR"
    echo "bench_agent: run outputs kept in $WORK/runs (remove $WORK when done)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Ansible settings, all explicit (ANSIBLE_CONFIG wins over any ansible.cfg around).
# ssh_args is Ansible's default, written out: compression plus a control master per
# host that stays up for 60 s, so back-to-back runs reuse the SSH connections.
cat >"$WORK/ansible.cfg" <<EOF
[defaults]
forks = $NODES
host_key_checking = True
retry_files_enabled = False
nocolor = True
local_tmp = $WORK/ansible-local
timeout = 30

[ssh_connection]
pipelining = True
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s
control_path_dir = $WORK/cp-ansible
EOF
while read -r v; do unset "$v"; done < <(compgen -e | grep '^ANSIBLE_' || true) # only the file below counts
export ANSIBLE_CONFIG="$WORK/ansible.cfg"
mkdir -p "$WORK/cp-ansible" "$WORK/cp-agent" "$WORK/runs"

# ------------------------------------------------------------------ measuring
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
fmt_us() { awk -v u="$1" 'BEGIN { if (u < 1e6) printf "%.1f ms", u/1e3; else printf "%.2f s", u/1e6 }'; }
# now_us VAR: microseconds since the epoch into VAR, without forking (a $(...) would
# add a subshell to the timed interval, which matters for a run of a few ms).
now_us() { local t=${EPOCHREALTIME/./}; printf -v "$1" '%d' "$((10#$t))"; }

# ansible_recap FILE HOSTS MODE: MODE noop = changed=0 everywhere, changed = every host
# changed something; always failed=0 unreachable=0 and exactly HOSTS hosts in the recap.
ansible_recap() {
  awk -v hosts="$2" -v mode="$3" '
    /^PLAY RECAP/ { r = 1; next }
    r && / : ok=/ {
      n++; delete v
      for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["failed"] != 0 || v["unreachable"] != 0) bad = bad " " $1 ":failed/unreachable"
      if (mode == "noop" && v["changed"] != 0) bad = bad " " $1 ":changed=" v["changed"]
      if (mode == "changed" && v["changed"] == 0) bad = bad " " $1 ":changed=0"
    }
    END {
      if (n != hosts) bad = bad " (recap lists " n + 0 " hosts, expected " hosts ")"
      if (bad != "") { print "ansible recap:" bad; exit 1 }
    }' "$1"
}

# ================================================================ 1. local
LOAD_START=$(load)
log "local: strata-agent $("$AGENT" --version | awk '{print $2}') vs ansible-core $ANSIBLE_CORE_VERSION, $RUNS runs each"
L="$WORK/local"
mkdir -p "$L"
agent_local() { "$AGENT" apply "$SPEC" --root "$1" --simulate >"$2" 2>&1; }
ansible_local() {
  timeout -k 30 "$ANSIBLE_TIMEOUT" "$VENV/bin/ansible-playbook" -i localhost, -c local -e "bench_root=$1" -e spec_file=node.json \
    -e "ansible_python_interpreter=$VENV/bin/python" "$PLAYBOOK" >"$2" 2>&1
}
# The agent's own records (var/lib/strata/agent, var/lib/strata-agent) are not node state.
tree_listing() { (cd "$1" && find . \( -path ./var/lib/strata-agent -o -path ./var/lib/strata \) -prune -o -printf '%P %y %m %U:%G %l\n' | sort); }

# Both directions of "same desired state", from fresh seeds.
sh "$DATA/seed.sh" "$L/agent-first"
sh "$DATA/seed.sh" "$L/ansible-first"
rc=0; agent_local "$L/agent-first" "$L/agent-converge.out" || rc=$?
[ "$rc" = 2 ] || { show "$L/agent-converge.out"; die "local: converging strata-agent run exited $rc (expected 2 = changed)"; }
ansible_local "$L/ansible-first" "$L/ansible-converge.out" || { show "$L/ansible-converge.out"; die "local: converging ansible-playbook run failed"; }
ansible_recap "$L/ansible-converge.out" 1 changed >&2 || { show "$L/ansible-converge.out"; die "local: ansible did not converge the seed"; }
if ! diff -r -x strata-agent -x strata "$L/agent-first" "$L/ansible-first" >"$L/tree.diff" 2>&1 ||
  ! diff <(tree_listing "$L/agent-first") <(tree_listing "$L/ansible-first") >>"$L/tree.diff" 2>&1; then
  show "$L/tree.diff"
  die "local: the trees converged by strata-agent and by ansible differ (playbook/templates out of step with the agent?)"
fi
rc=0; agent_local "$L/ansible-first" "$L/agent-cross.out" || rc=$?
[ "$rc" = 0 ] || { show "$L/agent-cross.out"; die "local: strata-agent wants to change the ansible-converged root (exit $rc)"; }
ansible_local "$L/agent-first" "$L/ansible-cross.out" || { show "$L/ansible-cross.out"; die "local: ansible-playbook failed on the agent-converged root"; }
ansible_recap "$L/ansible-cross.out" 1 noop >&2 || { show "$L/ansible-cross.out"; die "local: ansible wants to change the agent-converged root"; }
log "local: both tools converge to identical trees, and each is a no-op on the other's"

# Timed no-op runs, both on the same root.
R="$L/agent-first"
LOCAL_AGENT=() LOCAL_ANSIBLE=()
for i in $(seq "$RUNS"); do
  out="$WORK/runs/local-agent-$i.out"
  now_us t0; rc=0; agent_local "$R" "$out" || rc=$?; now_us t1
  [ "$rc" = 0 ] || { show "$out"; die "local: strata-agent no-op run $i exited $rc"; }
  LOCAL_AGENT+=($((t1 - t0)))
done
for i in $(seq "$RUNS"); do
  out="$WORK/runs/local-ansible-$i.out"
  now_us t0; rc=0; ansible_local "$R" "$out" || rc=$?; now_us t1
  [ "$rc" = 0 ] && ansible_recap "$out" 1 noop >&2 || { show "$out"; die "local: ansible-playbook no-op run $i failed or changed something"; }
  LOCAL_ANSIBLE+=($((t1 - t0)))
done
log "local: strata-agent ${LOCAL_AGENT[*]} us; ansible-playbook ${LOCAL_ANSIBLE[*]} us"

# ================================================================ 2. over SSH
log "ssh: starting a $NODES-node lab in $LABDIR"
LAB_STARTED=1
timeout 600 "$LAB" up --dir "$LABDIR" --nodes "$NODES" --no-pve >"$WORK/lab-up.log" 2>&1 || { show "$WORK/lab-up.log"; die "strata-lab up failed"; }
# name address (one per line), then the key and known_hosts files.
mapfile -t LABINFO < <(python3 - "$LABDIR/lab.json" <<'PY'
import json, sys
lab = json.load(open(sys.argv[1]))
print(lab["ssh"]["private_key_file"])
print(lab["ssh"]["known_hosts_file"])
for n in lab["nodes"]:
    print(n["name"], n["address"])
PY
)
KEY="${LABINFO[0]}"
KNOWN_HOSTS="${LABINFO[1]}"
NAMES=() ADDRS=()
for line in "${LABINFO[@]:2}"; do NAMES+=("${line%% *}"); ADDRS+=("${line##* }"); done
[ "${#ADDRS[@]}" = "$NODES" ] || die "lab.json lists ${#ADDRS[@]} nodes, expected $NODES"

SSH_BASE=(-i "$KEY" -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes
  -o ConnectTimeout=20 -o ServerAliveInterval=10 -o ServerAliveCountMax=6)
SSH_FRESH=("${SSH_BASE[@]}" -o ControlMaster=no -o ControlPath=none) # a new connection every time
SSH_MUX=("${SSH_BASE[@]}" -o ControlMaster=auto -o ControlPersist=60s -o ControlPath="$WORK/cp-agent/%C")

# on_all_nodes TAG STDIN_FILE SSH_OPTS_ARRAY_NAME REMOTE_COMMAND: one ssh per node, all in
# parallel; output in $WORK/runs/TAG-NAME.out, exit code in $WORK/runs/TAG-NAME.rc.
on_all_nodes() {
  local tag=$1 input=$2 remote=$4 i rc pids=()
  local -n opts=$3
  for i in "${!ADDRS[@]}"; do
    ssh "${opts[@]}" "root@${ADDRS[i]}" "$remote" <"$input" >"$WORK/runs/$tag-${NAMES[i]}.out" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    rc=0; wait "${pids[i]}" || rc=$?
    echo "$rc" >"$WORK/runs/$tag-${NAMES[i]}.rc"
  done
}
# expect_rc TAG CODE WHAT: every node's exit code of run TAG is CODE, else fail.
expect_rc() {
  local i rc bad=""
  for i in "${!NAMES[@]}"; do
    rc=$(cat "$WORK/runs/$1-${NAMES[i]}.rc")
    [ "$rc" = "$2" ] || { bad="$bad ${NAMES[i]}=$rc"; show "$WORK/runs/$1-${NAMES[i]}.out"; }
  done
  [ -z "$bad" ] || die "ssh: $3: exit codes (expected $2 everywhere):$bad"
}

# prepare_nodes TAG: what every run needs on a (blank) node and is not timed: the agent
# binary at $REMOTE_AGENT (as the provider ships it) and Ansible's Python with its apt
# module, installed from the lab's local repository (the nodes have no other source).
prepare_nodes() {
  on_all_nodes "install$1" "$AGENT" SSH_FRESH \
    "mkdir -p ${REMOTE_AGENT%/*} && cat >$REMOTE_AGENT.tmp && chmod 0755 $REMOTE_AGENT.tmp && mv -f $REMOTE_AGENT.tmp $REMOTE_AGENT && $REMOTE_AGENT --version"
  expect_rc "install$1" 0 "installing the agent"
  local n
  for n in "${NAMES[@]}"; do
    [ "$(cat "$WORK/runs/install$1-$n.out")" = "$want_version" ] || { show "$WORK/runs/install$1-$n.out"; die "ssh: $n runs a different agent"; }
  done
  on_all_nodes "python$1" /dev/null SSH_FRESH \
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-apt >/dev/null"
  expect_rc "python$1" 0 "installing python3 for Ansible from the local repository"
}
# blank_nodes: every node replaced by a blank machine (same address, new host key).
blank_nodes() {
  local n
  for n in "${NAMES[@]}"; do
    timeout 120 "$LAB" node recreate --dir "$LABDIR" "$n" >>"$WORK/lab-recreate.log" 2>&1 ||
      { show "$WORK/lab-recreate.log"; die "strata-lab node recreate $n failed"; }
  done
}
want_version="$("$AGENT" --version)"
log "ssh: copying strata-agent to $REMOTE_AGENT and installing python3 on each node"
prepare_nodes 1

{
  echo "[lab]"
  for i in "${!NAMES[@]}"; do echo "${NAMES[i]} ansible_host=${ADDRS[i]}"; done
  echo
  echo "[lab:vars]"
  echo "ansible_user=root"
  echo "ansible_ssh_private_key_file=$KEY"
  echo "ansible_ssh_common_args='-o UserKnownHostsFile=$KNOWN_HOSTS -o StrictHostKeyChecking=yes'"
  echo "ansible_python_interpreter=$NODE_PYTHON"
  echo "bench_root=''"
  echo "spec_file=systemd-node.json"
} >"$WORK/inventory.ini"
ansible_ssh() { timeout -k 30 "$ANSIBLE_TIMEOUT" "$VENV/bin/ansible-playbook" -i "$WORK/inventory.ini" "$PLAYBOOK" >"$1" 2>&1; }
AGENT_CMD="$REMOTE_AGENT apply -"

# Same desired state over SSH, both directions, each from blank nodes.
ansible_ssh "$WORK/runs/ssh-ansible-converge.out" && ansible_recap "$WORK/runs/ssh-ansible-converge.out" "$NODES" changed >&2 ||
  { show "$WORK/runs/ssh-ansible-converge.out"; die "ssh: converging ansible-playbook run failed"; }
on_all_nodes agent-cross "$NODE_SPEC" SSH_FRESH "$AGENT_CMD"
expect_rc agent-cross 0 "strata-agent on the ansible-converged nodes (must be a no-op)"
log "ssh: blank nodes for the other direction"
blank_nodes
prepare_nodes 2
on_all_nodes agent-converge "$NODE_SPEC" SSH_FRESH "$AGENT_CMD"
expect_rc agent-converge 2 "converging strata-agent run"
ansible_ssh "$WORK/runs/ssh-ansible-cross.out" && ansible_recap "$WORK/runs/ssh-ansible-cross.out" "$NODES" noop >&2 ||
  { show "$WORK/runs/ssh-ansible-cross.out"; die "ssh: ansible-playbook on the agent-converged nodes (must be a no-op)"; }
# The state is real: containerd runs under systemd and the sysctls are live on every node.
on_all_nodes verify /dev/null SSH_FRESH \
  "systemctl is-active containerd && systemctl is-enabled containerd && sysctl -n net.ipv4.ip_nonlocal_bind"
expect_rc verify 0 "checking containerd and the sysctl on the nodes"
for n in "${NAMES[@]}"; do
  [ "$(tr '\n' ' ' <"$WORK/runs/verify-$n.out")" = "active enabled 1 " ] || { show "$WORK/runs/verify-$n.out"; die "ssh: $n is not in the desired state"; }
done
log "ssh: on all $NODES nodes each tool is a no-op on the state the other converged"

# Timed no-op runs. Ansible first, right after the run above, so that every timed run
# finds the control masters of the previous one (ControlPersist=60s) as it normally would.
SSH_AGENT=() SSH_AGENT_MUX=() SSH_ANSIBLE=()
for i in $(seq "$RUNS"); do
  out="$WORK/runs/ssh-ansible-$i.out"
  now_us t0; rc=0; ansible_ssh "$out" || rc=$?; now_us t1
  [ "$rc" = 0 ] && ansible_recap "$out" "$NODES" noop >&2 || { show "$out"; die "ssh: ansible-playbook no-op run $i failed or changed something"; }
  SSH_ANSIBLE+=($((t1 - t0)))
done
# The agent: new connections every run (the headline), then reused ones.
for i in $(seq "$RUNS"); do
  now_us t0; on_all_nodes "agent-$i" "$NODE_SPEC" SSH_FRESH "$AGENT_CMD"; now_us t1
  expect_rc "agent-$i" 0 "strata-agent no-op run $i"
  SSH_AGENT+=($((t1 - t0)))
done
on_all_nodes agent-mux-warmup "$NODE_SPEC" SSH_MUX "$AGENT_CMD" # opens the control masters
expect_rc agent-mux-warmup 0 "strata-agent no-op run opening the control masters"
for i in $(seq "$RUNS"); do
  now_us t0; on_all_nodes "agent-mux-$i" "$NODE_SPEC" SSH_MUX "$AGENT_CMD"; now_us t1
  expect_rc "agent-mux-$i" 0 "strata-agent no-op run $i (multiplexed)"
  SSH_AGENT_MUX+=($((t1 - t0)))
done
log "ssh: strata-agent ${SSH_AGENT[*]} us; multiplexed ${SSH_AGENT_MUX[*]} us; ansible-playbook ${SSH_ANSIBLE[*]} us"

# ================================================================ 3. report
med() { printf '%s\n' "$@" | median; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo, hi}'; }
ratio() { awk -v a="$1" -v s="$2" 'BEGIN { r = a / s; printf (r < 10 ? "%.1f" : "%.0f"), r }'; }
met() { awk -v a="$1" -v s="$2" -v t="$3" 'BEGIN { print (a / s >= t ? "yes" : "**no**") }'; } # ANSIBLE AGENT TARGET
rng() { local lo hi; read -r lo hi < <(range "$@"); echo "$(fmt_us "$lo") – $(fmt_us "$hi")"; }

la=$(med "${LOCAL_AGENT[@]}"); lb=$(med "${LOCAL_ANSIBLE[@]}")
sa=$(med "${SSH_AGENT[@]}"); sm=$(med "${SSH_AGENT_MUX[@]}"); sb=$(med "${SSH_ANSIBLE[@]}")
lr=$(ratio "$lb" "$la"); sr=$(ratio "$sb" "$sa"); mr=$(ratio "$sb" "$sm")
ansible_ver=$(ansible_version)
ctl_py=$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')
node_py=$(ssh "${SSH_FRESH[@]}" "root@${ADDRS[0]}" "$NODE_PYTHON -c 'import platform; print(platform.python_version())'")
node_os=$(ssh "${SSH_FRESH[@]}" "root@${ADDRS[0]}" ". /etc/os-release && echo \$PRETTY_NAME; systemctl --version | head -n1" | paste -sd, | sed 's/,/, /')
ssh_ver=$(ssh -V 2>&1 | awk '{print $1}' | tr -d ,)
# Task counts as each tool reports them on its last local no-op run.
agent_tasks=$(grep -o '^ok=[0-9]*' "$WORK/runs/local-agent-$RUNS.out" | cut -d= -f2)
ansible_tasks=$(grep -o ' : ok=[0-9]*' "$WORK/runs/local-ansible-$RUNS.out" | cut -d= -f2)

cat <<EOF
## strata-agent vs Ansible: configuring nodes

Produced by \`scripts/bench_agent.sh\`: wall time of a **no-op run** (desired state
already in place, after a first converging run), median of $RUNS runs per cell, on this
machine ($(nproc) cores, shared with other work; 1-minute load average $LOAD_START before the benchmark and
$(load) after it, its own Ansible runs included), strata-agent $(echo "$want_version" | awk '{print $2}') $BUILD, ansible-core $ansible_ver.

| scenario | strata-agent | ansible-playbook | ratio | target | met |
| --- | ---: | ---: | ---: | ---: | --- |
| local: \`strata-agent apply --root R --simulate\` vs \`ansible-playbook -c local\`, same temp root | $(fmt_us "$la") | $(fmt_us "$lb") | ${lr}x | ≥100x | $(met "$lb" "$la" 100) |
| over SSH, $NODES systemd lab nodes, real host (no \`--root\`): $NODES parallel \`ssh\`, new connection each | $(fmt_us "$sa") | $(fmt_us "$sb") | ${sr}x | ≥20x | $(met "$sb" "$sa" 20) |
| over SSH, $NODES systemd lab nodes, real host, agent reusing connections (ControlPersist, as Ansible does) | $(fmt_us "$sm") | $(fmt_us "$sb") | ${mr}x | – | – |

Ranges (min – max): local agent $(rng "${LOCAL_AGENT[@]}"), local Ansible $(rng "${LOCAL_ANSIBLE[@]}");
SSH agent $(rng "${SSH_AGENT[@]}"), reusing connections $(rng "${SSH_AGENT_MUX[@]}"), SSH Ansible $(rng "${SSH_ANSIBLE[@]}").

- **Local, desired state** (\`scripts/bench_agent/node.json\`, both sides): containerd
  \`config.toml\` (schema 2) and \`certs.d/docker.io/hosts.toml\`, the kubelet drop-in
  \`/etc/kubernetes/kubelet.conf.d/50-strata.conf\` and \`/etc/default/kubelet\`, \`/etc/crictl.yaml\`,
  \`/etc/sysctl.d/99-strata.conf\` with 3 keys, \`/etc/modules-load.d/strata.conf\` with 2
  modules, the swap line in \`/etc/fstab\` commented out. strata-agent ($agent_tasks tasks)
  writes those files and, through its simulated system (\`--simulate\`), checks and sets the
  live sysctl values (\`R/proc/sys/...\`), loaded modules (\`R/proc/modules\`), active swap
  (\`R/proc/swaps\`) and masks the swap unit. Ansible (\`scripts/bench_agent/playbook.yml\`,
  $ansible_tasks tasks reported, builtin modules only, \`gather_facts: false\`) does the same
  with \`template\`, \`copy\`, \`lineinfile\`, \`replace\` and \`file\` on the same files; one temp
  root R, \`-c local\`, pipelining on, the venv's Python ($ctl_py). The two converge fresh
  roots to identical trees (content, mode, owner, symlinks).
- **Over SSH, desired state** (\`scripts/bench_agent/systemd-node.json\`, both sides): the
  package containerd (from the lab's local apt repository, the nodes' only source),
  containerd's \`config.toml\` and \`hosts.toml\` (a change restarts containerd), the kubelet
  drop-in and \`/etc/default/kubelet\`, \`/etc/crictl.yaml\`, \`/etc/sysctl.d/99-strata.conf\`
  and the live values of \`net.ipv4.ip_forward\` and \`net.ipv4.ip_nonlocal_bind\`, and
  containerd enabled and running under systemd. No kernel modules or swap: a lab node
  shares the host's kernel. The agent runs its real host path (systemctl, dpkg, sysctl);
  Ansible uses \`apt\`, \`template\`, \`copy\`, \`file\`, \`command: sysctl\` and
  \`systemd_service\` (same playbook, real mode), with a containerd restart handler.
- **Same state, checked**: on every node each tool is a no-op on what the other converged
  from a blank machine (\`strata-lab node recreate\` between the two directions), and
  afterwards containerd is active and enabled and the sysctl is live on every node. Every
  timed run is checked to be a no-op: agent exit code 0 on every node, Ansible recap
  \`changed=0 failed=0 unreachable=0\` for every host.
- **Over SSH**: \`strata-lab\` nodes ($node_os, booted by systemd-nspawn on this
  machine, air-gapped; client $ssh_ver). Agent: binary copied to \`$REMOTE_AGENT\`,
  one \`ssh root@node $REMOTE_AGENT apply -\` per node with the spec
  on stdin, all $NODES at once, wall time until the last exits; the headline row opens a new
  SSH connection per node per run (\`ControlMaster=no\`). Ansible: inventory of the $NODES
  addresses, \`ansible_user=root\`, the lab key, \`UserKnownHostsFile\` = the lab known_hosts,
  \`StrictHostKeyChecking=yes\`, forks=$NODES, \`pipelining = True\`, Ansible's default
  \`ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s\` (so each timed run reuses the
  previous run's connections), \`interpreter_python\` = $NODE_PYTHON ($node_py, no discovery).
  The Ansible controller and all $NODES nodes share the same $(nproc) cores.
EOF
