#!/usr/bin/env python3
"""Benchmark of strata_etcd_cluster on lab systemd nodes; prints a markdown section for
docs/benchmarks.md on stdout (progress on stderr).

Usage: bench_etcd.py BIN_DIR TERRAFORM     (BENCH_RUNS=N timed runs each, default 5)

BIN_DIR holds terraform-provider-strata and strata-lab (`make bench` passes the release
build). A lab of 3 systemd nodes is created here and removed on exit, also on failure.

- form: `terraform apply` creating a 3-member cluster on blank nodes (each run starts
  from nodes recreated blank: etcd is installed from the lab's local repository, the
  certificates issued, the members started, and the apply returns once all three
  answer healthy over TLS);
- replace: one member's node killed and recreated blank (not timed), then the timed
  `terraform apply` that removes the stale member, installs etcd there, adds it anew
  and waits until it answers healthy.
Every timed apply is checked: three members healthy over TLS afterwards, else the
script fails.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    bin_dir, terraform = sys.argv[1], sys.argv[2]
    lab_bin = os.path.join(bin_dir, "strata-lab")
    tmp = tempfile.mkdtemp(prefix="bench-etcd-")
    lab_dir = os.path.join(tmp, "lab")
    wd = os.path.join(tmp, "wd")
    os.makedirs(wd)
    run([lab_bin, "up", "--dir", lab_dir, "--nodes", "3", "--no-pve"])
    try:
        bench(lab_bin, lab_dir, terraform, bin_dir, wd)
    finally:
        subprocess.run([lab_bin, "down", "--dir", lab_dir], capture_output=True)


def bench(lab_bin, lab_dir, terraform, bin_dir, wd):
    lab = json.load(open(os.path.join(lab_dir, "lab.json")))
    nodes = lab["nodes"]
    with open(os.path.join(wd, "cli.tfrc"), "w") as f:
        f.write('provider_installation {\n  dev_overrides {\n    "strata-iac/strata" = "%s"\n  }\n  direct {}\n}\n' % bin_dir)
    members = "".join(
        '  member {\n    name    = "etcd%d"\n    address = "%s"\n    ssh {\n      host = "%s"\n    }\n  }\n'
        % (i + 1, n["address"], n["address"]) for i, n in enumerate(nodes))
    with open(os.path.join(wd, "main.tf"), "w") as f:
        f.write(
            'terraform {\n  required_providers {\n    strata = { source = "strata-iac/strata" }\n  }\n}\n'
            'provider "strata" {\n  ssh {\n    private_key_file = "%s"\n    known_hosts_file = "%s"\n  }\n}\n'
            'resource "strata_cluster_secrets" "this" {\n  cluster_name = "bench"\n}\n'
            'resource "strata_etcd_cluster" "main" {\n  ca_cert = strata_cluster_secrets.this.etcd_ca_cert\n'
            '  ca_key  = strata_cluster_secrets.this.etcd_ca_key\n%s}\n'
            % (lab["ssh"]["private_key_file"], lab["ssh"]["known_hosts_file"], members))
    env = dict(os.environ, TF_CLI_CONFIG_FILE=os.path.join(wd, "cli.tfrc"), TF_IN_AUTOMATION="1",
               CHECKPOINT_DISABLE="1", TF_INPUT="0")
    env.pop("TF_LOG", None)

    def tf(*args, target=None):
        cmd = [terraform, *args, "-no-color"]
        if target:
            cmd.append(f"-target={target}")
        return run(cmd, cwd=wd, env=env)

    def timed_apply():
        t = time.monotonic()
        tf("apply", "-auto-approve", "-input=false")
        return time.monotonic() - t

    def healthy():
        eps = ",".join(f"https://{n['address']}:2379" for n in nodes)
        out = run([lab_bin, "node", "exec", "--dir", lab_dir, "node1", "--", "sh", "-c",
                   "ETCDCTL_API=3 etcdctl --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt "
                   f"--key=/etc/etcd/pki/healthcheck-client.key --endpoints={eps} endpoint health 2>&1"])
        if out.count("is healthy") != 3:
            raise SystemExit(f"not three healthy members:\n{out}")

    def recreate(name):
        run([lab_bin, "node", "recreate", "--dir", lab_dir, name])

    # The CA is made once and kept; only the etcd cluster leaves the state between runs.
    tf("apply", "-auto-approve", "-input=false", target="strata_cluster_secrets.this")
    form = []
    for i in range(RUNS):
        for n in nodes:
            recreate(n["name"])
        if i:
            tf("state", "rm", "strata_etcd_cluster.main")
        form.append(timed_apply())
        healthy()
        log(f"form {i + 1}/{RUNS}: {form[-1]:.1f} s")
    replace = []
    for i in range(RUNS):
        victim = nodes[i % 3]["name"]
        run([lab_bin, "node", "kill", "--dir", lab_dir, victim])
        recreate(victim)
        replace.append(timed_apply())
        healthy()
        log(f"replace {victim} {i + 1}/{RUNS}: {replace[-1]:.1f} s")

    print("## etcd: create, replace a member, restore\n")
    print(f"`strata_etcd_cluster` with 3 members on lab systemd nodes (etcd 3.4 from Debian, run as "
          f"`etcd.service`, TLS with client certificates), release build, median of {RUNS} runs, "
          f"{os.cpu_count()} cores. Each run is one `terraform apply` (refresh included).\n")
    print("| measure | median | min | max |\n| --- | --- | --- | --- |")
    for label, xs in [
        ("form a 3-member cluster on blank nodes (etcd installed from the local repository)", form),
        ("replace a member whose node came back blank (remove, install, add, healthy)", replace),
    ]:
        print(f"| {label} | {statistics.median(xs):.1f} s | {min(xs):.1f} s | {max(xs):.1f} s |")
    print()


if __name__ == "__main__":
    main()
