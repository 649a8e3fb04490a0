//! `make demo` / `make demo-down`: the reference platform (examples/ha-cluster, or
//! examples/k3s-ha with `make demo EXAMPLE=k3s-ha`) on the lab. `strata-demo up` brings the lab up (pve-sim, a lab machine, the Kubernetes
//! stand-ins), prepares the cloud-init template in pve-sim, installs the provider with
//! `terraform init` from the release mirror scripts/demo.sh made (DIR/dist, as `make
//! release` makes dist/; no dev_overrides) with a lock file seeded from the signed
//! SHA256SUMS, and checks the lock file it writes (h1, and zh matching SHA256SUMS), applies the example, proves the result and prints the phase timings;
//! `strata-demo down` removes everything.
//! Every phase reports progress at least every few seconds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use strata_acceptance_tests::release::{filesystem_mirror_config, host_platform, Release};
use strata_acceptance_tests::terraform::{terraform_bin, Workdir};
use strata_acceptance_tests::{k3s_platform, platform};
use strata_lab::{Lab, PveMode, StandinsMode, UpOptions};

/// The k3s version `make demo EXAMPLE=k3s-ha` installs.
const K3S_VERSION: &str = "v1.36.1+k3s1";

/// Which example: `ha-cluster` (default) or `k3s-ha` (STRATA_DEMO_EXAMPLE, `make demo
/// EXAMPLE=k3s-ha`).
fn example() -> String {
    std::env::var("STRATA_DEMO_EXAMPLE").unwrap_or_else(|_| "ha-cluster".into())
}

/// How long a phase may stay silent before a progress line.
const TICK: Duration = Duration::from_secs(5);

fn demo_dir() -> PathBuf {
    std::env::var_os("STRATA_DEMO_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/tmp/strata-demo"))
}

/// Where this binary and its siblings (pve-sim, strata-lab, the provider, the stand-ins) are.
fn bin_dir() -> Result<PathBuf> {
    Ok(std::env::current_exe()?.parent().context("executable has no directory")?.to_path_buf())
}

/// Runs `f` on a thread, printing `label ... N s` every TICK until it ends.
fn phase<T: Send>(label: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<(T, Duration)> {
    println!("==> {label}");
    let start = Instant::now();
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<()>();
        let ticker = s.spawn(move || {
            while rx.recv_timeout(TICK) == Err(mpsc::RecvTimeoutError::Timeout) {
                println!("    ... {label}: {} s", start.elapsed().as_secs());
            }
        });
        let out = f();
        drop(tx);
        let _ = ticker.join();
        out.map(|v| (v, start.elapsed()))
    })
}

/// `terraform apply`, its output passed through; when Terraform is quiet for TICK a
/// line says how long it has run and how many resources are done.
fn apply(wd: &Workdir) -> Result<()> {
    let mut child = wd
        .command(&["apply", "-auto-approve", "-input=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", terraform_bin().display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut done = 0;
    loop {
        match rx.recv_timeout(TICK) {
            Ok(line) => {
                if line.contains("complete after") {
                    done += 1;
                }
                // Terraform's own "Still creating..." lines are the quiet ones we replace.
                if !line.contains("Still creating...") && !line.contains("Still modifying...") {
                    println!("    {line}");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                println!("    ... apply: {} s, {done} resources done", start.elapsed().as_secs())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("terraform apply failed ({status}); the lab stays up for a look: make demo-down removes it");
    }
    Ok(())
}

fn up() -> Result<()> {
    let dir = demo_dir();
    let bins = bin_dir()?;
    let total = Instant::now();
    let (lab, t_lab) = phase("lab: pve-sim, a lab machine and the Kubernetes stand-ins' apt repository", || {
        let mut opts = UpOptions::new(dir.join("lab"));
        opts.nodes = 1;
        opts.pve = PveMode::Binary(bins.join("pve-sim"));
        opts.standins = StandinsMode::Dir(bins.clone());
        opts.ready_timeout = Duration::from_secs(60);
        Lab::up(&opts)
    })?;
    let (created, t_template) =
        phase("template: the cloud-init VM template, as prepared on Proxmox", || platform::prepare_template(&lab))?;
    println!(
        "    {} VM {} \"{}\" (qm create {} --memory 1024 --scsi0 local-lvm:2 --ide2 local-lvm:cloudinit \
         --net0 virtio,bridge=vmbr0 --agent 1 --ciupgrade 0; qm template {})",
        if created { "created" } else { "kept" },
        platform::TEMPLATE_VMID,
        platform::TEMPLATE_NAME,
        platform::TEMPLATE_VMID,
        platform::TEMPLATE_VMID
    );
    let release = Release::open(&dir.join("dist"))?;
    let cli_config = filesystem_mirror_config(&release.mirror());
    let k3s = example() == "k3s-ha";
    let (example_dir, work) = if k3s {
        (k3s_platform::example_dir(), dir.join("k3s-ha"))
    } else {
        (platform::example_dir(), dir.join("ha-cluster"))
    };
    let mut wd = Workdir::keep_at_with_cli_config(&cli_config, &example_dir, &work)?;
    let cache = strata_lab::image::cache_root()?;
    if k3s {
        // The k3s release files of the pinned versions (the lab's stand-in k3s binary,
        // its airgap image archive, sha256sum-amd64.txt), as a site downloads them.
        let artifacts = strata_lab::k3s::airgap_artifacts(&cache)?;
        k3s_platform::configure(&mut wd, &lab, &artifacts.dir, K3S_VERSION, None)?;
    } else {
        // The air-gapped registry on the NFS VM, loaded from the lab's image bundles (built
        // here from Debian's busybox-static, named as the upstream images they stand for).
        let bundles = strata_lab::bundles::build_bundles(&cache)?;
        platform::configure(&mut wd, &lab, 3, None, Some(&bundles.dir))?;
    }
    let (hashes, t_init) = phase("terraform init: the provider from the release's filesystem mirror", || {
        // Every `make demo` packs a fresh build under the same version, so a lock file
        // (and the unpacked package) from an earlier run names other hashes: start from
        // the lock file a user starts from, seeded with the signed SHA256SUMS' zh: hashes
        // (from a mirror Terraform itself records only h1:; docs/guides/installing.md).
        let _ = std::fs::remove_dir_all(wd.path().join(".terraform/providers"));
        release.seed_lock_file(wd.path())?;
        let run = wd.run(&["init", "-input=false"])?;
        if run.code != 0 {
            bail!("terraform init failed:\n{}{}", run.stdout, run.stderr);
        }
        release.check_lock_file(wd.path(), &host_platform())
    })?;
    println!(
        "    .terraform.lock.hcl: {} (zh: is the zip's SHA-256 in the signed {})",
        hashes.join(", "),
        release.sums_name()
    );
    if k3s {
        println!(
            "==> apply examples/k3s-ha: 9 VMs, load balancer, NFS exports, 3 k3s servers (embedded etcd), 2 agents"
        );
    } else {
        println!("==> apply examples/ha-cluster: 10 VMs, load balancer, etcd, control plane, workers, NFS exports, image registry");
    }
    let t = Instant::now();
    apply(&wd)?;
    let t_apply = t.elapsed();
    let (proofs, t_prove) = phase("prove the platform runs", || {
        let state = wd.show()?;
        if k3s {
            let kubectl = strata_lab::kubectl::ensure(&dir.join("kubectl.log"))?;
            let run = wd.run(&["output", "-raw", "kubeconfig"])?;
            let kubeconfig = dir.join("k3s-kubeconfig");
            std::fs::write(&kubeconfig, run.stdout)?;
            return k3s_platform::prove(&lab, &state, &kubectl, &kubeconfig);
        }
        let mut proofs = platform::prove(&lab, &state)?;
        proofs.push(platform::prove_pull(&lab, &state, "docker.io/library/busybox:1.36")?);
        Ok(proofs)
    })?;
    for p in &proofs {
        println!("    ok  {p}");
    }
    let vip = format!("{}.100", platform::network_prefix(&lab)?);
    println!("\nThe platform runs (Kubernetes and k3s through the documented stand-ins; README \"Stand-ins\").");
    for (what, d) in [
        ("lab up", t_lab),
        ("template", t_template),
        ("terraform init", t_init),
        ("terraform apply", t_apply),
        ("proofs", t_prove),
        ("total", total.elapsed()),
    ] {
        println!("  {what:<16} {:>6.1} s", d.as_secs_f64());
    }
    let wd_path = wd.path().display();
    if k3s {
        println!("\n  VIP              {vip} (6443 to the k3s servers)");
    } else {
        println!("\n  VIP              {vip} (6443 API servers, 80/443 ingress)");
    }
    println!(
        "  kubeconfig       TF_CLI_CONFIG_FILE={wd_path}/cli.tfrc {} -chdir={wd_path} output -raw kubeconfig",
        terraform_bin().display()
    );
    println!("  machines         {} status --dir {}", bins.join("strata-lab").display(), dir.join("lab").display());
    println!("  rehearse         docs/guides/disaster-recovery.md (\"Rehearse it\")");
    println!("  tear down        make demo-down");
    Ok(())
}

fn down() -> Result<()> {
    let dir = demo_dir();
    let lab = dir.join("lab");
    if lab.join("lab.json").exists() {
        phase("lab down: machines, VMs' machines, namespaces, links, mounts", || strata_lab::down_dir(&lab))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    println!("nothing left of the demo in {}", dir.display());
    Ok(())
}

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("up") | None => up(),
        Some("down") => down(),
        Some(other) => bail!("usage: strata-demo [up|down] (got {other:?}); STRATA_DEMO_DIR overrides {}", {
            let d: &Path = &demo_dir();
            d.display().to_string()
        }),
    }
}
