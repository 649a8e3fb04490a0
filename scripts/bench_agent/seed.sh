#!/bin/sh
# Creates (or resets) ROOT as a fresh, unconfigured Kubernetes node for the
# benchmark: what the OS and the containerd/kubelet packages would have left
# (accounts, directories, an fstab with an active swap file) plus the live
# state strata-agent's `--root` simulation reads (ROOT/proc/sys/..., proc/modules,
# proc/swaps; see agent/src/system.rs). Both strata-agent and ansible-playbook
# start from this tree. Usage: sh seed.sh ROOT   (POSIX sh: runs on the lab nodes)
set -eu
root="${1:?usage: seed.sh ROOT}"
case "$root" in /?*) ;; *) echo "seed.sh: ROOT must be an absolute path other than /" >&2; exit 1 ;; esac
rm -rf "$root"
umask 022
mkdir -p "$root/etc/containerd" "$root/etc/default" "$root/etc/sysctl.d" "$root/etc/modules-load.d" \
  "$root/etc/systemd/system" "$root/var/lib/kubelet" "$root/proc/sys/net/ipv4" "$root/proc/sys/net/bridge"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
printf 'UUID=0a1b2c3d / ext4 errors=remount-ro 0 1\n/swap.img\tnone\tswap\tsw\t0\t0\n' >"$root/etc/fstab"
echo 0 >"$root/proc/sys/net/ipv4/ip_forward"
echo 0 >"$root/proc/sys/net/bridge/bridge-nf-call-iptables"
echo 0 >"$root/proc/sys/net/bridge/bridge-nf-call-ip6tables"
echo 'loop 16384 0 - Live 0x0000000000000000' >"$root/proc/modules"
printf 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap.img                               file\t\t4194300\t\t0\t\t-2\n' >"$root/proc/swaps"
