#!/usr/bin/env bash
# No-op run time of `strata-agent apply --root` vs an equivalent
# `ansible-playbook` (connection=local) on the same kind of scratch root.
# Both tools first converge their own root, then each is timed RUNS times
# with nothing left to change; the median is reported as a markdown table.
#
# Installs ansible-core from PyPI into .venv-bench/ (repo root). Touches
# nothing outside a temp dir: both tools write only below their --root.
set -euo pipefail

RUNS="${RUNS:-5}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$REPO/.venv-bench"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ ! -x "$VENV/bin/ansible-playbook" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check ansible-core
fi

cargo build --quiet --release -p strata-agent --manifest-path "$REPO/Cargo.toml"
AGENT="$REPO/target/release/strata-agent"

seed() { # a fake node: accounts, fstab with a swap line
  mkdir -p "$1/etc"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
  echo 'root:x:0:' >"$1/etc/group"
  printf 'UUID=0a1b / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n' >"$1/etc/fstab"
}
seed "$WORK/strata-root"
seed "$WORK/ansible-root"

MOTD='Managed by Strata.'
cat >"$WORK/node.hcl" <<HCL
sysctl = {
  "net.ipv4.ip_forward"                = "1"
  "net.bridge.bridge-nf-call-iptables" = "1"
}
kernel_modules = ["overlay", "br_netfilter"]
swap_off = true
file "/etc/motd" {
  content = "$MOTD\n"
  mode    = "0644"
}
HCL

# The same files; Ansible cannot check live sysctl/module state under a root
# without extra collections, so strata does strictly more work here.
cat >"$WORK/playbook.yml" <<YAML
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    root: "$WORK/ansible-root"
  tasks:
    - name: sysctl drop-in
      ansible.builtin.copy:
        dest: "{{ root }}/etc/sysctl.d/99-strata.conf"
        mode: "0644"
        content: |
          net.bridge.bridge-nf-call-iptables = 1
          net.ipv4.ip_forward = 1
    - name: modules-load
      ansible.builtin.copy:
        dest: "{{ root }}/etc/modules-load.d/strata.conf"
        mode: "0644"
        content: |
          overlay
          br_netfilter
    - name: swap out of fstab
      ansible.builtin.replace:
        path: "{{ root }}/etc/fstab"
        regexp: '^([^#].*\sswap\s.*)$'
        replace: '#\1'
    - name: motd
      ansible.builtin.copy:
        dest: "{{ root }}/etc/motd"
        mode: "0644"
        content: "$MOTD\n"
YAML
mkdir -p "$WORK/ansible-root/etc/sysctl.d" "$WORK/ansible-root/etc/modules-load.d"

export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false ANSIBLE_NOCOLOR=1
strata() { "$AGENT" apply "$WORK/node.hcl" --root "$WORK/strata-root"; }
# The venv's own interpreter runs the modules: no discovery, no warning.
ansible() { "$VENV/bin/ansible-playbook" -i localhost, -e "ansible_python_interpreter=$VENV/bin/python" "$WORK/playbook.yml"; }

# Converge once; strata exits 2 when it changed something.
strata >/dev/null || [ $? -eq 2 ]
ansible >"$WORK/out" || { cat "$WORK/out" >&2; exit 1; }

median_ms() { # run "$@" RUNS times (each must be a no-op), print the median in ms
  local times=() i s e
  for i in $(seq "$RUNS"); do
    s=$(date +%s%N)
    "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; echo "no-op run failed: $*" >&2; exit 1; }
    e=$(date +%s%N)
    times+=($(( (e - s) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'
}

# Sanity: both runs really are no-ops.
# (Output goes to a file first: grep -q closing a pipe early would fail the run under pipefail.)
strata >"$WORK/out" && grep -q 'changed=0' "$WORK/out" || { cat "$WORK/out" >&2; echo "strata run was not a no-op" >&2; exit 1; }
ansible >"$WORK/out" && grep -q 'changed=0' "$WORK/out" || { cat "$WORK/out" >&2; echo "ansible run was not a no-op" >&2; exit 1; }

S=$(median_ms strata)
A=$(median_ms ansible)
echo "| tool | no-op run, median of $RUNS (ms) |"
echo "| --- | ---: |"
echo "| strata-agent apply --root | $S |"
echo "| ansible-playbook (connection=local) | $A |"
awk -v a="$A" -v s="$S" 'BEGIN { if (s > 0) printf "\nstrata-agent is %.0fx faster on a no-op run.\n", a / s }'
