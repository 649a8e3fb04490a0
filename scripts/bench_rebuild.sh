#!/usr/bin/env bash
# The rebuild of the reference platform (examples/ha-cluster, 10 VMs) after every VM was
# deleted, next to the critical path of the same apply's dependency graph. Runs the
# `rehearsal` acceptance test (debug build, as the tests run) and prints its figures as
# a section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
report="$(mktemp)"
STRATA_REHEARSAL_REPORT="$report" cargo nextest run --no-fail-fast -p strata-acceptance-tests --test rehearsal >&2
python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
# What each wait record's kind polls for (provider/src/wait.rs, strata_pve_client::Client::sleep).
KINDS = {
    "proxmox_task": "a Proxmox task to finish (clone, resize, start: pve-sim's task time)",
    "proxmox_unlock": "a guest's Proxmox lock to go (a clone's worker)",
    "proxmox_migration": "a migration to finish",
    "proxmox_retry": "before retrying a Proxmox request",
    "guest_agent_address": "the guest agent to report an address",
    "guest_agent_host_keys": "cloud-init's first boot, then the SSH host keys through the guest agent",
    "container_address": "a container's DHCP address",
    "ssh_answer": "a new machine to answer SSH",
    "vip_election": "keepalived to elect one VIP holder",
    "load_balancer_node_healthy": "a changed load-balancer node: keepalived up, VIP held",
    "vip_back_from_keepalived": "keepalived to take the bridged VIP back",
    "vip_settle": "the VIP to settle on one holder",
    "apiserver_ready": "an API server's /readyz",
    "apiserver_new_certificate": "an API server serving its renewed certificate",
    "node_object": "the kubelet's Node object",
    "worker_lease": "the workers' roll Lease (one worker at a time)",
    "drain": "evicted pods to be gone",
}
rebuild, apply, cp = r['rebuild_s'], r['apply_phase_s'], r['critical_path_s']
print("## Rebuild after every VM is gone: wall time against the critical path")
print()
print("The `rehearsal` acceptance test: `examples/ha-cluster` (3 load-balancer, 3 control-plane,")
print("3 worker and 1 NFS VM) applied against pve-sim, backups taken, every VM deleted through")
print("the Proxmox API, then one plain `terraform apply` rebuilds it all. The critical path is")
print("the longest chain of that apply's dependency graph (the resources' `depends_on` in")
print("state), each resource weighted by its slowest instance: the instances' times from")
print("Terraform's `apply_start`/`apply_complete` events, which contain pve-sim's task")
print("durations and the measured per-node steps (package installs, kubeadm, etcd restore).")
print("Debug build of the provider, as the tests run it.")
print()
print("| | seconds |")
print("|---|---:|")
print(f"| first apply of the platform (whole command) | {r['first_apply_s']:.1f} |")
print(f"| rebuild: the whole `terraform apply` (refresh, plan, apply) | {rebuild:.1f} |")
print(f"| rebuild: refresh and plan before the apply phase (gone VMs and unreachable nodes found) | {rebuild - apply:.1f} |")
print(f"| rebuild: apply phase (first resource started to last done) | {apply:.1f} |")
print(f"| critical path of the same graph | {cp:.1f} |")
print(f"| **whole command / critical path** | **{rebuild / cp:.2f}x** |")
print(f"| apply phase / critical path (1 or more by construction, see below) | {apply / cp:.2f}x |")
print()
print(f"**The whole command takes {rebuild / cp:.2f}x its critical path.** That is the figure to")
print("compare: it holds everything the user waits for. The apply-phase ratio beside it is")
print("1.0 or more by construction, not evidence of speed by itself: the critical path weighs")
print("each resource by its own slowest instance in the same apply, so the apply phase can")
print("only be longer than it by the gaps between one resource finishing and the next")
print("starting. It shows that Terraform started each resource as soon as what it depends on")
print("was done, and nothing about how long each resource took. How long the resources")
print("themselves wait is the provider's waiting time further down.")
print()
print(f"The refresh and plan row ({rebuild - apply:.1f} s) is the time spent before the first resource")
print("starts: the provider is started, the deleted VMs are read as gone, every node")
print("resource tries its nodes over SSH and finds they do not answer, and the plan is made.")
print("It is outside the critical path and the apply phase. Terraform's refresh events put the")
print(f"refresh at {r['refresh_s']:.1f} s, first refresh started to last done. Resources are refreshed")
print("in dependency order (a node resource after what it depends on), and each node resource")
print("finds its nodes gone. When each resource's first instance started and its last one")
print("finished (seconds into the refresh), and its slowest instance:")
print()
print("| resource (refresh) | started | done | slowest instance |")
print("|---|---:|---:|---:|")
for s in r['refresh']:
    print(f"| `{s['resource']}` | {s['start']:.1f} | {s['end']:.1f} | {s['slowest']:.1f} |")
print()
print("The critical path: " + " → ".join(f"`{c['resource']}` {c['seconds']:.1f} s" for c in r['chain']) + ".")
print()
print("Each resource of the rebuild: when its first instance started and its last one finished")
print("(seconds into the apply phase), and its slowest instance. A start well after what it")
print("depends on finished, or a span much longer than the slowest instance, is waiting.")
print()
print("| resource | started | done | slowest instance |")
print("|---|---:|---:|---:|")
for s in r['spans']:
    print(f"| `{s['resource']}` | {s['start']:.1f} | {s['end']:.1f} | {s['slowest']:.1f} |")
print()
w, p = r['waits_apply'], r['waits_refresh_and_plan']
print("### Where the provider waited during the rebuild")
print()
print("Measured by the provider itself: every pause between two polls or retries (for a")
print("Proxmox task, an address, SSH, a VIP holder, `/readyz`, a Node object) goes through")
print("one helper (`provider/src/wait.rs`; the Proxmox client's `Client::sleep`) that logs")
print("its kind and real length on the target `strata::wait`. The test runs the rebuild with")
print("`TF_LOG_PROVIDER=INFO` and `TF_LOG_PATH`, and adds the records up. *Summed* adds every")
print("pause of every operation, also those running at the same time (ten VMs created at once")
print("wait ten times), so it can exceed the wall time; *wall* is the time during which at")
print("least one pause of that kind was in progress. Waits that are not pauses are not in")
print("these figures: a remote command that polls on the node (etcd's member health loop),")
print("SSH connect timeouts, the node lock.")
print()
print(f"In the apply phase ({apply:.1f} s) the provider paused {w['count']} times, {w['seconds']:.1f} s summed,")
print(f"with at least one operation pausing during {w['wall']:.1f} s of wall time. During the refresh")
print(f"and plan: {p['count']} pauses, {p['seconds']:.1f} s summed. Outside those {w['wall']:.1f} s, no operation")
print("of the apply phase was pausing: the resources' time goes to Proxmox requests, to")
print("commands on the nodes (with the polls such commands run on the node themselves) and to")
print("the provider's own work.")
print()
print("| waiting for | pauses | summed s | wall s |")
print("|---|---:|---:|---:|")
for k in r['waits_apply_by_kind']:
    print(f"| {KINDS.get(k['what'], k['what'])} (`{k['what']}`) | {k['count']} | {k['seconds']:.1f} | {k['wall']:.1f} |")
print(f"| all | {w['count']} | {w['seconds']:.1f} | {w['wall']:.1f} |")
print()
PY
rm -f "$report"
