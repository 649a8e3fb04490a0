//! k3s in HA: `examples/k3s-ha` (three HAProxy/keepalived VMs with the VIP, three k3s
//! servers on embedded etcd, two agents, an NFS VM with the snapshot export) applied
//! against pve-sim, whose VMs are real systemd machines booted with cloud-init. k3s is
//! the lab's STAND-IN (acceptance-tests/standins/README.md): its embedded etcd is Debian's
//! real etcd, its containerd Debian's real containerd, kubectl is Debian's real kubectl;
//! everything else in the example (haproxy, keepalived, NFS, sshd, cloud-init) is real.
//! Installed from the release files (`airgap {}`), with no way off the lab network.
//!
//! One platform, then a sequence on it: the application's manifests, an upgrade to the
//! next pinned version under the VIP prober (token kept, one node at a time), and the
//! rebuild after every k3s VM is deleted (one plain apply with `k3s_restore_snapshot`).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_acceptance_tests::k3s_platform::{
    configure, etcd_members, example_dir, kubectl, kubectl_ok, nodes, parse_nodes, AGENTS, SERVERS,
};
use strata_acceptance_tests::platform::{self, machine, network_prefix, sh, vms};
use strata_acceptance_tests::prober::{ProbeTargets, Prober};
use strata_acceptance_tests::provider::{provider_dir, target_dir};
use strata_acceptance_tests::standins::standins_dir;
use strata_acceptance_tests::terraform::{json_diagnostics, Workdir, REQUIRED_PROVIDERS};
use strata_lab::{LabGuard, PveMode, StandinsMode, UpOptions};

const FROM: &str = "v1.36.1+k3s1";
const TO: &str = "v1.36.2+k3s1";

fn apply(wd: &Workdir, what: &str) -> (Duration, String) {
    let t = Instant::now();
    let run = wd.run(&["apply", "-auto-approve", "-input=false", "-json"]).unwrap();
    assert_eq!(run.code, 0, "{what} failed:\n{}\n{}", json_diagnostics(&run.stdout), run.stderr);
    (t.elapsed(), run.stdout)
}

fn assert_empty_plan(wd: &Workdir, after: &str) {
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "the plan after {after} is not empty:\n{}\n{}", plan.stdout, plan.stderr);
}

fn output(wd: &Workdir, name: &str) -> String {
    let run = wd.run(&["output", "-raw", name]).unwrap();
    assert_eq!(run.code, 0, "terraform output {name}: {}", run.stderr);
    run.stdout
}

#[test]
fn k3s_ha_behind_the_vip_is_applied_upgraded_one_node_at_a_time_and_rebuilt_from_a_snapshot() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "-p", "pve-sim", "-p", "strata-lab", "-p", "strata-standins", "--bins"])
        .status()
        .expect("running cargo build");
    assert!(built.success(), "building pve-sim, strata-lab and the stand-ins failed");
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 1;
    opts.pve = PveMode::Binary(target_dir().join("debug/pve-sim"));
    opts.standins = StandinsMode::Dir(standins_dir());
    opts.ready_timeout = Duration::from_secs(60);
    let lab = LabGuard::up(&opts).expect("lab up (needs root)");
    platform::prepare_template(&lab).unwrap();
    let cache = strata_lab::image::cache_root().unwrap();
    let release = strata_lab::k3s::airgap_artifacts(&cache).unwrap();
    let kubectl_bin = strata_lab::kubectl::ensure(&tmp.path().join("kubectl.log")).unwrap();

    let mut wd = Workdir::from_config(&provider_dir(), &example_dir()).unwrap();
    configure(&mut wd, &lab, &release.dir, FROM, None).unwrap();
    let (first, _) = apply(&wd, "the first apply of examples/k3s-ha");
    let state = wd.show().unwrap();
    let vms = vms(&state);
    let node = |name: &str| machine(vms.get(name).unwrap_or_else(|| panic!("no VM {name}")).0);

    // Installed from the release files, with no way off the lab network: a node's only
    // route out is the lab host's bridge address, and the host forwards nothing (no
    // packet is sent to find out: LAB.md's rule for tests).
    let gateway = lab.info().gateway.clone().unwrap();
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(forward.trim(), "0", "this host forwards packets: the lab's nodes could reach beyond it");
    for name in SERVERS.iter().chain(AGENTS.iter()) {
        let route = sh(&lab, &node(name), "ip -4 route get 192.0.2.1").unwrap();
        assert!(
            route.contains(&format!("via {gateway} ")),
            "{name}: a route off the lab not via the lab host: {route}"
        );
        let unit = sh(&lab, &node(name), "systemctl is-active k3s k3s-agent; true").unwrap();
        assert!(unit.lines().any(|l| l == "active"), "{name}: no k3s unit is active: {unit}");
    }

    // Three servers in one real embedded etcd, five Nodes through the VIP, the archive's
    // images in every containerd (k8s_platform::prove).
    let vip = format!("{}.100", network_prefix(&lab).unwrap());
    let kubeconfig_text = output(&wd, "kubeconfig");
    assert!(kubeconfig_text.contains(&format!("server: https://{vip}:6443")), "the kubeconfig is not for the VIP");
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::write(&kubeconfig, &kubeconfig_text).unwrap();
    let proofs = strata_acceptance_tests::k3s_platform::prove(&lab, &state, &kubectl_bin, &kubeconfig).unwrap();
    let members = etcd_members(&lab, &node("server1")).unwrap();
    for s in SERVERS {
        assert!(members.iter().any(|m| m.contains(s)), "no etcd member named for {s}: {members:#?}");
    }
    for (name, n) in nodes(&kubectl_bin, &kubeconfig).unwrap() {
        assert_eq!(n.kubelet_version, FROM, "{name}");
        let label = |k: &str| n.labels.get(k).map(String::as_str);
        if name.starts_with("server") {
            assert_eq!(label("node-role.kubernetes.io/control-plane"), Some("true"), "{name}");
            assert_eq!(label("topology.kubernetes.io/zone"), Some(format!("rack-{name}").as_str()), "{name}");
        } else {
            assert_eq!(label("node-role.kubernetes.io/worker"), Some("true"), "{name}");
            assert_eq!(label("app-tier"), Some(if name == "agent1" { "web" } else { "data" }), "{name}");
        }
    }

    // The application's manifests are accepted.
    let manifests = example_dir().join("manifests");
    kubectl_ok(&kubectl_bin, &kubeconfig, &["apply", "-f", &manifests.display().to_string()]).unwrap();
    let sts = kubectl_ok(&kubectl_bin, &kubeconfig, &["-n", "shop", "get", "statefulset", "postgres", "-o", "json"]);
    let sts: Value = serde_json::from_str(&sts.unwrap()).unwrap();
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "nfs-prod");
    let svc = kubectl_ok(&kubectl_bin, &kubeconfig, &["-n", "shop", "get", "service", "web", "-o", "json"]).unwrap();
    let svc: Value = serde_json::from_str(&svc).unwrap();
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30080);
    assert_empty_plan(&wd, "the first apply");
    let token = output(&wd, "token");
    let ca = output(&wd, "ca_cert");

    // The upgrade under the VIP prober, with a watcher of the Nodes: never more than one
    // out of service (cordoned or not Ready) at a time, and every one taken out once.
    configure(&mut wd, &lab, &release.dir, TO, None).unwrap();
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (bin, kc, seen, stop) = (kubectl_bin.clone(), kubeconfig.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok((0, out, _)) = kubectl(&bin, &kc, &["get", "nodes", "-o", "json", "--request-timeout=2s"]) {
                    if let Ok(listed) = parse_nodes(&out) {
                        let down = listed.into_iter().filter(|(_, n)| n.unschedulable || !n.ready).map(|(k, _)| k);
                        seen.lock().unwrap().push(down.collect());
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let prober = Prober::start(ProbeTargets::readyz(&vip, &ca));
    let (upgrade, _) = apply(&wd, "the upgrade");
    let report = prober.stop();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    report.record("k3s upgrade (5 nodes)", upgrade);
    assert_eq!(report.failed(), 0, "the API through the VIP failed during the upgrade: {}", report.summary());
    {
        let seen = seen.lock().unwrap();
        assert!(seen.len() > 10, "the Node watcher saw too little: {} rounds", seen.len());
        if let Some(two) = seen.iter().find(|d| d.len() > 1) {
            panic!("more than one node out of service at once: {two:?}");
        }
        let rolled: std::collections::BTreeSet<&String> = seen.iter().flatten().collect();
        assert_eq!(rolled.len(), 5, "the watcher saw only {rolled:?} taken out of service");
    }
    for (name, n) in nodes(&kubectl_bin, &kubeconfig).unwrap() {
        assert_eq!(n.kubelet_version, TO, "{name} after the upgrade");
        assert!(n.ready && !n.unschedulable, "{name} is not back in service");
    }
    assert_eq!(output(&wd, "token"), token, "the upgrade changed the token");
    assert_empty_plan(&wd, "the upgrade");

    // The rebuild: an object written before, a snapshot taken off the lab, every k3s VM
    // deleted through the Proxmox API, then one plain apply with the snapshot.
    let marker = format!("before-the-disaster-{}", std::process::id());
    let marker_yaml = tmp.path().join("marker.yaml");
    let doc = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: marker\n  namespace: shop\ndata:\n  v: {marker}\n"
    );
    std::fs::write(&marker_yaml, doc).unwrap();
    kubectl_ok(&kubectl_bin, &kubeconfig, &["apply", "-f", &marker_yaml.display().to_string()]).unwrap();
    sh(&lab, &node("server1"), "k3s etcd-snapshot save --name offsite >/dev/null 2>&1").unwrap();
    let path =
        sh(&lab, &node("server1"), "ls -t /var/lib/rancher/k3s/server/db/snapshots/offsite-* | head -n1").unwrap();
    let bytes = lab.exec(&node("server1"), &["cat", path.trim()]).unwrap().stdout;
    assert!(bytes.len() > 1024, "no snapshot at {path}");
    let snapshot = tmp.path().join("k3s-snapshot.db");
    std::fs::write(&snapshot, bytes).unwrap();
    let client = platform::pve_client(&lab).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for name in SERVERS.iter().chain(AGENTS.iter()) {
        let vmid = vms[*name].0;
        rt.block_on(client.stop_vm(platform::PVE_NODE, vmid)).unwrap();
        rt.block_on(client.destroy_guest(strata_pve_client::GuestKind::Qemu, platform::PVE_NODE, vmid)).unwrap();
    }
    configure(&mut wd, &lab, &release.dir, TO, Some(&snapshot)).unwrap();
    let (rebuild, log) = apply(&wd, "the rebuild");
    let after = wd.show().unwrap();
    assert_eq!(output(&wd, "ca_cert"), ca, "the rebuilt cluster has another CA");
    assert_eq!(output(&wd, "kubeconfig"), kubeconfig_text, "the kubeconfig output changed");
    let jsonpath = ["-n", "shop", "get", "configmap", "marker", "-o", "jsonpath={.data.v}"];
    assert_eq!(kubectl_ok(&kubectl_bin, &kubeconfig, &jsonpath).unwrap(), marker, "the object is not back");
    let proofs_after = strata_acceptance_tests::k3s_platform::prove(&lab, &after, &kubectl_bin, &kubeconfig).unwrap();
    assert_empty_plan(&wd, "the rebuild");
    let cp = platform::critical_path(&log, &after).unwrap();
    let chain: Vec<String> = cp.chain.iter().map(|(r, w)| format!("{r} {w:.1}s")).collect();
    eprintln!(
        "k3s-ha: first apply (HA formation) {first:.1?}; upgrade {upgrade:.1?} (probes {}); rebuild {rebuild:.1?} \
         (apply phase {:.1}s, critical path {:.1}s = {}); proofs: {proofs:?} / {proofs_after:?}",
        report.summary(),
        cp.wall,
        cp.length,
        chain.join(" -> ")
    );
    // scripts/bench_k3s.sh asks for the figures (docs/benchmarks.md).
    if let Some(path) = std::env::var_os("STRATA_K3S_REPORT") {
        let report = serde_json::json!({
            "first_apply_s": first.as_secs_f64(), "upgrade_s": upgrade.as_secs_f64(),
            "rebuild_s": rebuild.as_secs_f64(), "rebuild_apply_phase_s": cp.wall,
            "rebuild_critical_path_s": cp.length,
            "chain": cp.chain.iter().map(|(r, w)| serde_json::json!({"resource": r, "seconds": w})).collect::<Vec<_>>(),
        });
        std::fs::write(path, report.to_string()).unwrap();
    }
}

/// A k3s cluster that is never created: each bad input must stop `terraform plan` with an
/// error naming the attribute, before anything reaches a node (the addresses are
/// TEST-NET, which nothing answers).
fn refused_config(dir: &Path, servers: usize, config: &str, sha256: &str) -> String {
    let server = |i: usize| {
        format!(
            "  server {{\n    name    = \"s{i}\"\n    address = \"192.0.2.{i}\"\n    ssh {{\n      host = \"192.0.2.{i}\"\n      \
             user = \"root\"\n      private_key = \"not-a-key\"\n    }}\n  }}\n"
        )
    };
    format!(
        "{REQUIRED_PROVIDERS}resource \"strata_k3s_cluster\" \"bad\" {{\n  version = \"{FROM}\"\n  config  = {config}\n{}  airgap {{\n    \
         binary = \"{}/k3s\"\n    images = []\n    sha256 = {{ k3s = \"{sha256}\" }}\n  }}\n}}\n",
        (1..=servers).map(server).collect::<String>(),
        dir.display()
    )
}

#[test]
fn bad_k3s_input_is_refused_at_plan_naming_the_attribute() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("k3s"), b"not really k3s\n").unwrap();
    let good = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"not really k3s\n"))
    };
    let bad = "0".repeat(64);
    let cases = [
        ("an even number of embedded-etcd servers", refused_config(tmp.path(), 2, "{}", &good), "odd number"),
        (
            "an unknown config key",
            refused_config(tmp.path(), 3, "{ \"not-a-k3s-flag\" = \"1\" }", &good),
            "not-a-k3s-flag",
        ),
        ("a checksum mismatch", refused_config(tmp.path(), 1, "{}", &bad), &bad),
    ];
    for (what, main_tf, needle) in &cases {
        let wd = Workdir::new(&provider_dir(), main_tf).unwrap();
        let run = wd.run(&["plan", "-input=false", "-no-color"]).unwrap();
        assert_ne!(run.code, 0, "{what}: the plan was accepted:\n{}", run.stdout);
        assert!(run.stderr.contains(needle), "{what}: the error does not name {needle:?}:\n{}", run.stderr);
    }
    // The same configuration with good input plans (so the refusals above are the input's).
    let wd = Workdir::new(&provider_dir(), &refused_config(tmp.path(), 3, "{}", &good)).unwrap();
    let run = wd.run(&["plan", "-input=false", "-no-color"]).unwrap();
    assert_eq!(run.code, 0, "a good configuration was refused:\n{}{}", run.stdout, run.stderr);
}
