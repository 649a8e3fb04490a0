#!/usr/bin/env python3
"""Benchmark of strata_vm against pve-sim; prints a markdown section for docs/benchmarks.md.

Usage: bench_vm.py PROVIDER_BIN_DIR TERRAFORM PVE_SIM_BIN

- refresh: wall time of `terraform plan` (refresh included) over N strata_vm (cloned
  from a template, static cloud-init addresses) against N terraform_data, planned in
  turn, round after round (load from other work falls on both alike), with the floors of
  bench_provider.py (same-values terraform_data, the echo twin, the twin with little
  state, one-string resources of a plugin provider); medians;
- Proxmox API requests per VM per refresh, counted from pve-sim's request log
  (`/_sim/requests`) around one `terraform plan`, with pve-sim's own time per request;
- where the time goes: one more plan with TF_LOG_PROVIDER=debug, the provider's span
  lines added up per RPC (see bench_provider.py);
- the first apply (N clones at Terraform's default parallelism) for reference.
"""
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from bench_provider import (cli_config, cpu_split, echo_twin, minimal_plugin, rpc_breakdown, rpc_tables, tf_cpu,
                            trimmed_twin)

N = int(os.environ.get("BENCH_VMS", "200"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
TOKEN = "root@pam!bench=bench-secret"
TEMPLATE = 9000


class Sim:
    def __init__(self, binary, data_dir):
        self.proc = subprocess.Popen(
            [binary, "--data-dir", data_dir, "--token", TOKEN, "--task-ms", "10"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("PVE_SIM_READY "):
            raise SystemExit(f"pve-sim did not start: {line!r}")
        self.endpoint = line.split(" ", 1)[1]
        self.ca_file = os.path.join(data_dir, "cert.pem")
        self.ctx = ssl.create_default_context(cafile=self.ca_file)

    def call(self, method, path, form=None, body=None):
        data = None
        headers = {"Authorization": f"PVEAPIToken={TOKEN}"}
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.endpoint + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, context=self.ctx) as r:
            return json.load(r)["data"]

    def wait(self, upid):
        node = upid.split(":")[1]
        path = f"/api2/json/nodes/{node}/tasks/{urllib.parse.quote(upid, safe='')}/status"
        while True:
            st = self.call("GET", path)
            if st["status"] == "stopped":
                assert st["exitstatus"] == "OK", st
                return
            time.sleep(0.02)

    def cpu_seconds(self):
        """pve-sim's user and system CPU so far (/proc/PID/stat)."""
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def tf(terraform, workdir, env, *args):
    start = time.perf_counter()
    p = subprocess.run([terraform, *args, "-no-color"], cwd=workdir, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"terraform {' '.join(args)} failed:\n{p.stderr}")
    return time.perf_counter() - start


def main():
    provider_dir, terraform, sim_bin = sys.argv[1], sys.argv[2], sys.argv[3]
    tmp = tempfile.mkdtemp(prefix="strata-bench-vm-")
    sim = None
    try:
        sim = Sim(sim_bin, os.path.join(tmp, "sim"))
        upid = sim.call("POST", "/api2/json/nodes/pve1/qemu", form={
            "vmid": TEMPLATE, "name": "tmpl", "memory": 1024, "scsi0": "local-lvm:2",
            "ide2": "local-lvm:cloudinit", "net0": "virtio,bridge=vmbr0", "agent": 1, "template": 1})
        sim.wait(upid)

        cli = cli_config(tmp, os.path.abspath(provider_dir))
        env = dict(os.environ, TF_CLI_CONFIG_FILE=cli, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
        env.pop("TF_LOG", None)
        vm_tf = (
            'terraform {\n required_providers {\n strata = { source = "strata-iac/strata" }\n }\n}\n'
            f'provider "strata" {{\n proxmox {{\n endpoint = "{sim.endpoint}"\n api_token = "{TOKEN}"\n'
            f' ca_cert = "{sim.ca_file}"\n }}\n}}\n'
            f'resource "strata_vm" "w" {{\n count = {N}\n node = "pve1"\n name = "w${{count.index}}"\n'
            ' memory_mb = 2048\n tags = ["bench"]\n'
            f' clone {{\n source_vm_id = {TEMPLATE}\n }}\n'
            ' network_devices {\n bridge = "vmbr0"\n }\n'
            ' cloud_init {\n ipv4 {\n address = "10.${floor(count.index / 250)}.0.${count.index % 250 + 2}/16"\n'
            ' gateway = "10.0.0.1"\n }\n }\n}\n')
        data_tf = f'resource "terraform_data" "d" {{\n count = {N}\n input = "w${{count.index}}"\n}}\n'
        dirs = {}
        for name, body in {"strata_vm": vm_tf, "terraform_data": data_tf}.items():
            d = os.path.join(tmp, name)
            os.makedirs(d)
            with open(os.path.join(d, "main.tf"), "w") as f:
                f.write(body)
            if name == "terraform_data":
                tf(terraform, d, env, "init", "-input=false")
            dirs[name] = d
        applies = {n: tf(terraform, d, env, "apply", "-auto-approve", "-input=false") for n, d in dirs.items()}
        # The floor for this much state: terraform_data holding exactly the VMs' state values.
        same = os.path.join(tmp, "data_same_state")
        os.makedirs(same)
        state = json.load(open(os.path.join(dirs["strata_vm"], "terraform.tfstate")))
        instances = next(r for r in state["resources"] if r["type"] == "strata_vm")["instances"]
        with open(os.path.join(same, "vms.json"), "w") as f:
            json.dump([i["attributes"] for i in sorted(instances, key=lambda i: i["index_key"])], f)
        with open(os.path.join(same, "main.tf"), "w") as f:
            f.write('locals {\n vms = jsondecode(file("${path.module}/vms.json"))\n}\n'
                    f'resource "terraform_data" "d" {{\n count = {N}\n triggers_replace = local.vms[count.index]\n}}\n')
        tf(terraform, same, env, "init", "-input=false")
        tf(terraform, same, env, "apply", "-auto-approve", "-input=false")
        dirs["data_same_state"] = same
        dirs["echo_twin"] = os.path.join(tmp, "echo_twin")
        env = echo_twin(terraform, env, dirs["strata_vm"], dirs["echo_twin"])
        dirs["echo_twin_trimmed"] = trimmed_twin(dirs["echo_twin"], os.path.join(tmp, "echo_twin_trimmed"))
        dirs["minimal_plugin"] = minimal_plugin(terraform, env, os.path.join(tmp, "minimal_plugin"), N, "w")
        state_kib = {n: os.path.getsize(os.path.join(d, "terraform.tfstate")) / 1024 for n, d in dirs.items()}

        # Requests of one refresh, from the simulator's own log.
        sim.call("POST", "/_sim/requests/reset")
        tf(terraform, dirs["strata_vm"], env, "plan", "-input=false")
        log = sim.call("GET", "/_sim/requests")
        api = [r for r in log if r["path"].startswith("/api2/json/")]
        by_kind = {}
        for r in api:
            kind = "config" if r["path"].endswith("/config") else r["path"].replace("/api2/json", "")
            by_kind[kind] = by_kind.get(kind, 0) + 1
        sim_us = [r.get("duration_us", r["duration_ms"] * 1000) for r in api]

        load_before = os.getloadavg()[0]
        runs = {n: [] for n in dirs}
        for _ in range(RUNS):
            for n, d in dirs.items():
                runs[n].append(tf(terraform, d, env, "plan", "-input=false"))
        load_after = os.getloadavg()[0]
        plans = {n: statistics.median(v) for n, v in runs.items()}

        debug_log = os.path.join(tmp, "provider-debug.log")
        sim_cpu_before = sim.cpu_seconds()
        debug_wall, debug_cpu = tf_cpu(terraform, dirs["strata_vm"],
                                       dict(env, TF_LOG_PROVIDER="debug", TF_LOG_PATH=debug_log), "plan", "-input=false")
        sim_cpu = sim.cpu_seconds() - sim_cpu_before
        starts, rpcs = rpc_breakdown(debug_log)
        vms = [v for v in sim.call("GET", "/api2/json/cluster/resources?type=vm") if v["vmid"] != TEMPLATE]
        assert len(vms) == N and all(v["status"] == "running" for v in vms), "not every VM is running"
    finally:
        if sim:
            sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = plans["strata_vm"] / plans["terraform_data"]
    print("## Proxmox VMs: refresh and apply at scale\n")
    print(f"{N} `strata_vm` cloned from one template (static cloud-init addresses) against {N} `terraform_data`, "
          f"pve-sim with 10 ms tasks, {'release' if 'release' in sys.argv[1] else 'debug'} build, median of {RUNS} "
          f"plans each, planned in turn, {os.cpu_count()} cores shared with other work (1-minute load average "
          f"{load_before:.2f} before the plans, {load_after:.2f} after). pve-sim runs on the same cores.\n")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| `terraform plan` (refresh), {N} `strata_vm` | {plans['strata_vm']:.2f} s |")
    print(f"| `terraform plan`, {N} `terraform_data` | {plans['terraform_data']:.2f} s |")
    print(f"| **ratio strata_vm / terraform_data** | **{ratio:.2f}** |")
    print(f"| `terraform plan`, {N} `terraform_data` holding the same values as the VMs' state | "
          f"{plans['data_same_state']:.2f} s ({plans['data_same_state'] / plans['terraform_data']:.2f}x) |")
    print(f"| `terraform plan`, the same {N} VMs (configuration, state, schema) through an instant plugin provider "
          f"(echo twin, see the provider section) | {plans['echo_twin']:.2f} s "
          f"({plans['echo_twin'] / plans['terraform_data']:.2f}x) |")
    print(f"| ratio strata_vm / echo twin | {plans['strata_vm'] / plans['echo_twin']:.2f} |")
    print(f"| the echo twin with every state string cut to 8 characters (same schema, little state) | "
          f"{plans['echo_twin_trimmed']:.2f} s ({plans['echo_twin_trimmed'] / plans['terraform_data']:.2f}x) |")
    print(f"| `terraform plan`, {N} one-string `echo_value` of that instant plugin provider (the floor of any "
          f"plugin provider) | {plans['minimal_plugin']:.2f} s "
          f"({plans['minimal_plugin'] / plans['terraform_data']:.2f}x) |")
    print(f"| state file: strata_vm / terraform_data / same-values terraform_data | {state_kib['strata_vm']:.0f} / "
          f"{state_kib['terraform_data']:.0f} / {state_kib['data_same_state']:.0f} KiB (terraform_data stores "
          f"each value's type beside it) |")
    print(f"| Proxmox API requests in one refresh | {len(api)} "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(by_kind.items()))}) |")
    print(f"| requests per VM per refresh | {len(api) / N:.3f} |")
    print(f"| pve-sim's time per request (median / max), its own measure | "
          f"{statistics.median(sim_us):.0f} us / {max(sim_us)} us |")
    print(f"| first `terraform apply`, {N} clones started (parallelism 10) | {applies['strata_vm']:.2f} s |")
    print(f"| first `terraform apply`, {N} `terraform_data` | {applies['terraform_data']:.2f} s |")
    print()
    print("Every run, in order (s): " + "; ".join(
        f"{n} " + ", ".join(f"{x:.2f}" for x in v) for n, v in runs.items()) + ".\n")
    print(f"Where the time of one refresh of {N} `strata_vm` goes, from the provider's own spans "
          f"(`TF_LOG_PROVIDER=debug`; that plan took {debug_wall:.2f} s with the logging on). An RPC's time runs "
          f"from its request decoded to its response built; busy is the part spent running on a thread, the "
          f"rest is waiting (for Proxmox, in ReadResource).\n")
    rpc_tables(starts, rpcs)
    print(cpu_split(starts, debug_cpu) + f" pve-sim, a process of its own: {sim_cpu * 1000:.0f} ms.\n")
    busy = sum(b for v in rpcs.values() for _, _, b in v) / 1000
    print(f"Reading: {N} one-string resources of a plugin provider that answers at once plan in "
          f"{plans['minimal_plugin'] / plans['terraform_data']:.2f}x the small `terraform_data`, the floor of any "
          f"plugin provider; with this schema and little state, "
          f"{plans['echo_twin_trimmed'] / plans['terraform_data']:.2f}x. "
          f"The very same plan through that provider takes "
          f"{plans['echo_twin'] / plans['terraform_data']:.2f}x the small `terraform_data`, and Terraform's "
          f"built-in resource holding the same values {plans['data_same_state'] / plans['terraform_data']:.2f}x: "
          f"that much is Terraform's own work on this schema and state. The refresh through our provider takes {ratio:.2f}x, "
          f"{plans['strata_vm'] / plans['echo_twin']:.2f}x the time of its echo twin, with one Proxmox request per VM; our "
          f"RPCs ran on a thread for {busy:.0f} ms in all (the rest of their time is waiting for Proxmox, "
          f"ten at a time).\n")

if __name__ == "__main__":
    main()
