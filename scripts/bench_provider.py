#!/usr/bin/env python3
"""Benchmarks for the provider itself; prints a markdown section for docs/benchmarks.md.

- start-to-handshake: time from exec to the go-plugin handshake line on stdout, with
  AutoMTLS on (a P-521 client certificate, as Terraform sends), and peak RSS of that
  process; median of several runs.
- plan: wall time of `terraform plan` (refresh included) over 100 strata_cluster_secrets
  against 100 terraform_data (Terraform's built-in resource), both measured in this run.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"


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
    subprocess.run([terraform, *args, "-no-color"], cwd=workdir, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main():
    binary, terraform = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="strata-bench-")
    try:
        cert = client_cert(tmp)
        samples = [handshake_once(binary, cert) for _ in range(RUNS)]
        hs = statistics.median(s[0] for s in samples) * 1000
        rss = statistics.median(s[1] for s in samples) / 1024

        cli = os.path.join(tmp, "cli.tfrc")
        with open(cli, "w") as f:
            f.write('provider_installation {\n  dev_overrides { "strata-iac/strata" = "%s" }\n  direct {}\n}\n'
                    % os.path.dirname(os.path.abspath(binary)))
        env = dict(os.environ, TF_CLI_CONFIG_FILE=cli, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
        env.pop("TF_LOG", None)
        dirs = {}
        for name, body in {
            "strata": 'terraform {\n required_providers {\n strata = { source = "strata-iac/strata" }\n }\n}\n'
                      'resource "strata_cluster_secrets" "s" {\n count = 100\n cluster_name = "c${count.index}"\n}\n',
            "terraform_data": 'resource "terraform_data" "d" {\n count = 100\n input = "c${count.index}"\n}\n',
        }.items():
            d = os.path.join(tmp, name)
            os.makedirs(d)
            with open(os.path.join(d, "main.tf"), "w") as f:
                f.write(body)
            if name == "terraform_data":
                tf(terraform, d, env, "init", "-input=false")
            dirs[name] = d
        applies = {n: tf(terraform, d, env, "apply", "-auto-approve", "-input=false") for n, d in dirs.items()}
        plans = {n: statistics.median(tf(terraform, d, env, "plan", "-input=false") for _ in range(RUNS))
                 for n, d in dirs.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = plans["strata"] / plans["terraform_data"]
    print("## Provider (issue: foundation)\n")
    print(f"Median of {RUNS} runs each, on this machine ({os.cpu_count()} cores).\n")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| start to handshake line (AutoMTLS on) | {hs:.1f} ms |")
    print(f"| peak RSS of the provider at handshake | {rss:.1f} MiB |")
    print(f"| `terraform plan`, 100 `strata_cluster_secrets` | {plans['strata']:.2f} s |")
    print(f"| `terraform plan`, 100 `terraform_data` | {plans['terraform_data']:.2f} s |")
    print(f"| ratio strata / terraform_data | {ratio:.2f} |")
    print(f"| first `terraform apply`, 100 `strata_cluster_secrets` (ECDSA P-256) | {applies['strata']:.2f} s |")
    print(f"| first `terraform apply`, 100 `terraform_data` | {applies['terraform_data']:.2f} s |")
    print()


if __name__ == "__main__":
    main()
