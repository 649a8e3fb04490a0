//! The disaster-recovery rehearsal: `examples/ha-cluster` (3 HAProxy/keepalived VMs with
//! the VIP, 3 control-plane VMs on external etcd, 3 workers, an NFS VM) applied against
//! pve-sim whose VMs become real systemd machines booted with cloud-init; data written
//! to etcd and to the prod export; the backups taken off the lab; every VM deleted
//! through the Proxmox API; then ONE plain `terraform apply` with the backups as restore
//! sources brings the platform back with its data and identity, and the next plan is
//! empty. kubeadm, kubelet, kube-apiserver and kubectl are the documented stand-ins;
//! everything else (etcd, haproxy, keepalived, containerd, NFS, cloud-init, sshd) is real.

use std::time::{Duration, Instant};

use strata_acceptance_tests::platform::{self, critical_path};
use strata_acceptance_tests::provider::{provider_dir, target_dir};
use strata_acceptance_tests::standins::standins_dir;
use strata_acceptance_tests::terraform::{json_diagnostics, Workdir};
use strata_acceptance_tests::waits::{self, WaitTotal};
use strata_lab::{LabGuard, PveMode, StandinsMode, UpOptions};

const WORKERS: u32 = 3;

fn apply_json(wd: &Workdir, what: &str) -> String {
    let run = wd.run(&["apply", "-auto-approve", "-input=false", "-json"]).unwrap();
    assert_eq!(run.code, 0, "{what} failed:\n{}\n{}", json_diagnostics(&run.stdout), run.stderr);
    run.stdout
}

fn output(wd: &Workdir, name: &str) -> String {
    let run = wd.run(&["output", "-raw", name]).unwrap();
    assert_eq!(run.code, 0, "terraform output {name}: {}", run.stderr);
    run.stdout
}

#[test]
fn the_platform_is_rebuilt_with_its_data_and_identity_by_one_plain_apply_after_every_vm_is_deleted() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "pve-sim", "-p", "strata-lab", "--bins"])
        .status()
        .expect("running cargo build for pve-sim and strata-lab");
    assert!(built.success(), "building pve-sim and strata-lab failed");
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 1;
    opts.pve = PveMode::Binary(target_dir().join("debug/pve-sim"));
    opts.standins = StandinsMode::Dir(standins_dir());
    opts.ready_timeout = Duration::from_secs(60);
    let lab = LabGuard::up(&opts).expect("lab up (needs root)");
    assert!(platform::prepare_template(&lab).unwrap(), "a fresh lab has no template yet");

    let provider = provider_dir();
    let mut wd = Workdir::from_config(&provider, &platform::example_dir()).unwrap();
    platform::configure(&mut wd, &lab, WORKERS, None, None).unwrap();
    let t = Instant::now();
    apply_json(&wd, "the first apply of examples/ha-cluster");
    let first_apply = t.elapsed();
    let state = wd.show().unwrap();
    assert_eq!(platform::vms(&state).len(), 7 + WORKERS as usize);
    let proofs = platform::prove(&lab, &state).unwrap();
    let kubeconfig = output(&wd, "kubeconfig");
    let ca = platform::attr(&state, "strata_cluster_secrets.this", "kubernetes_ca_cert").unwrap().clone();

    // The site's data, and its backups taken off the lab (off-site storage).
    let marker = format!("written-before-the-disaster-{}", std::process::id());
    platform::write_data(&lab, &state, &marker).unwrap();
    let offsite = tmp.path().join("offsite");
    let restore = platform::take_backups(&lab, &state, &offsite).unwrap();

    // The disaster: every VM deleted through the Proxmox API; its machine and disk go.
    let deleted = platform::delete_vms(&lab, &state).unwrap();
    assert_eq!(deleted, 7 + WORKERS as usize);
    for (vmid, address) in platform::vms(&state).values() {
        assert!(lab.exec(&platform::machine(*vmid), &["true"]).is_err(), "VM {vmid} ({address}) still runs");
    }

    // The rebuild: the backups configured as restore sources, one plain apply. The
    // provider's INFO lines go to a log file: its wait records (provider/src/wait.rs).
    platform::configure(&mut wd, &lab, WORKERS, Some(&restore), None).unwrap();
    let tf_log = tmp.path().join("rebuild-terraform.log");
    wd.set_env("TF_LOG_PROVIDER", "INFO");
    wd.set_env("TF_LOG_PATH", &tf_log.display().to_string());
    let t = Instant::now();
    let log = apply_json(&wd, "the rebuild");
    let rebuild = t.elapsed();
    wd.remove_env("TF_LOG_PROVIDER");
    wd.remove_env("TF_LOG_PATH");
    let provider_log = std::fs::read_to_string(&tf_log).unwrap();
    let after = wd.show().unwrap();
    let (value, file) = platform::read_data(&lab, &after).unwrap();
    assert_eq!(value, marker, "the etcd key is back from the snapshot");
    assert_eq!(file, marker, "the prod export's file is back from its archive");
    platform::prove(&lab, &after).unwrap();
    assert_eq!(output(&wd, "kubeconfig"), kubeconfig, "the kubeconfig output is unchanged");
    assert_eq!(platform::attr(&after, "strata_cluster_secrets.this", "kubernetes_ca_cert"), Some(&ca));
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "the plan after the rebuild is not empty:\n{}\n{}", plan.stdout, plan.stderr);

    let cp = critical_path(&log, &after).unwrap();
    let refresh = platform::refresh(&log);
    // The provider's pauses between polls: those that started before the apply phase were
    // part of the refresh and plan. Every rebuild waits for Proxmox tasks (clones, starts,
    // each running for pve-sim's task time): no such record means the records are lost.
    let all_waits = waits::parse(&provider_log);
    let (before, during): (Vec<_>, Vec<_>) = all_waits.into_iter().partition(|w| w.start() < cp.started_at);
    let (plan_waits, _) = waits::totals(&before);
    let (apply_waits, apply_kinds) = waits::totals(&during);
    assert!(
        apply_kinds.iter().any(|k| k.what == "proxmox_task" && k.seconds > 0.0),
        "no wait for a Proxmox task recorded in the rebuild's provider log: {apply_kinds:?}"
    );
    assert!(apply_waits.wall <= cp.wall + 1.0, "waits cover more than the apply phase: {apply_waits:?}");
    let total =
        |t: &WaitTotal| serde_json::json!({"what": t.what, "count": t.count, "seconds": t.seconds, "wall": t.wall});
    // scripts/bench_rebuild.sh asks for the figures (docs/benchmarks.md).
    if let Some(path) = std::env::var_os("STRATA_REHEARSAL_REPORT") {
        let report = serde_json::json!({
            "first_apply_s": first_apply.as_secs_f64(),
            "rebuild_s": rebuild.as_secs_f64(),
            "apply_phase_s": cp.wall,
            "critical_path_s": cp.length,
            "chain": cp.chain.iter().map(|(r, w)| serde_json::json!({"resource": r, "seconds": w})).collect::<Vec<_>>(),
            "spans": cp.spans.iter().map(|s| serde_json::json!({"resource": s.resource, "start": s.start, "end": s.end, "slowest": s.slowest})).collect::<Vec<_>>(),
            "refresh_s": refresh.wall,
            "refresh": refresh.resources.iter().map(|s| serde_json::json!({"resource": s.resource, "start": s.start, "end": s.end, "slowest": s.slowest})).collect::<Vec<_>>(),
            "waits_refresh_and_plan": total(&plan_waits),
            "waits_apply": total(&apply_waits),
            "waits_apply_by_kind": apply_kinds.iter().map(total).collect::<Vec<_>>(),
        });
        std::fs::write(path, report.to_string()).unwrap();
    }
    let chain: Vec<String> = cp.chain.iter().map(|(r, w)| format!("{r} {w:.1}s")).collect();
    eprintln!(
        "rehearsal: first apply {first_apply:.1?}; rebuild apply {rebuild:.1?} (apply phase {:.1}s, critical path \
         {:.1}s = {}; whole command / critical path {:.2}, apply phase / critical path {:.2}); provider waits in \
         the apply phase: {} pauses, {:.1}s summed, {:.1}s of wall time; proofs: {}",
        cp.wall,
        cp.length,
        chain.join(" -> "),
        rebuild.as_secs_f64() / cp.length,
        cp.wall / cp.length,
        apply_waits.count,
        apply_waits.seconds,
        apply_waits.wall,
        proofs.join("; ")
    );
}
