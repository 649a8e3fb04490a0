//! A version upgrade of a running cluster, as kubeadm users do it, through real Terraform
//! on the lab platform of k8s_common (node1-3: etcd, load balancer, control plane;
//! node4-5: strata_worker), with the Kubernetes stand-ins (their call log gives the
//! order) and a watcher polling the Nodes through the VIP every 150 ms:
//! - v1.35.0 to v1.36.1 for the control plane and both workers in one apply: an etcd
//!   snapshot first (it holds the cluster as it was before), control-plane nodes one at
//!   a time, then the workers one at a time, each cordoned before its `kubeadm upgrade
//!   node` and uncordoned after, never two unschedulable at once; `/version` reports
//!   v1.36.1 and the next plan is empty;
//! - v1.36.1 to v1.36.2 with node2's kubeadm made to fail (the stand-ins' test hook): the
//!   apply stops at node2, node3 and the workers stay at v1.36.1; with the cause removed
//!   the plan shows the upgrade again and the apply resumes at node2 without a second
//!   `kubeadm upgrade apply`.

mod k8s_common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_common::*;
use strata_lab::LabGuard;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const WORKERS: [&str; 2] = ["node4", "node5"];
const FAIL_HOOK: &str = "/etc/strata-standins/fail-upgrade-node";

/// The platform with the control plane at `cp` and both workers at `workers`.
fn config(lab: &LabGuard, cp: &str, workers: &str) -> String {
    let tf = main_tf(lab, &Opts { version: cp, workers: &WORKERS, import_from: None, etcd_restore: None });
    // Only the workers' line has one space before `=` (the control plane's is aligned).
    assert_eq!(tf.matches("kubernetes_version = \"v1.35.0\"").count(), WORKERS.len(), "{tf}");
    tf.replace("kubernetes_version = \"v1.35.0\"", &format!("kubernetes_version = \"{workers}\""))
}

fn at(c: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(c["time"].as_str().unwrap(), &Rfc3339).unwrap()
}

/// Every kubeadm call on `node` whose argv after `kubeadm` starts with `words`, failed
/// ones included.
fn all_kubeadm_calls(lab: &LabGuard, node: &str, words: &[&str]) -> Vec<serde_json::Value> {
    calls(lab, node)
        .into_iter()
        .filter(|c| c["tool"] == "kubeadm" && words.iter().enumerate().all(|(i, w)| c["argv"][i + 1] == *w))
        .collect()
}

/// Which workers were unschedulable, sampled through the VIP with the admin kubeconfig.
struct Watcher {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Samples>,
}

#[derive(Default)]
struct Samples {
    /// (when, the workers with `spec.unschedulable`) of each answered poll.
    seen: Vec<(OffsetDateTime, BTreeSet<String>)>,
    failed: usize,
}

impl Samples {
    fn max_unschedulable(&self) -> usize {
        self.seen.iter().map(|(_, s)| s.len()).max().unwrap_or(0)
    }

    /// First and last time `worker` was seen unschedulable.
    fn cordoned(&self, worker: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
        let times: Vec<OffsetDateTime> =
            self.seen.iter().filter(|(_, s)| s.contains(worker)).map(|(t, _)| *t).collect();
        Some((*times.first()?, *times.last()?))
    }

    /// The first poll after `t` that saw `worker` schedulable again.
    fn uncordoned_after(&self, worker: &str, t: OffsetDateTime) -> Option<OffsetDateTime> {
        self.seen.iter().find(|(when, s)| *when > t && !s.contains(worker)).map(|(t, _)| *t)
    }
}

impl Watcher {
    fn start(lab: &LabGuard, ca: &str, kubeconfig: &str) -> Watcher {
        let (_, _, cert, key) = kubeconfig_parts(kubeconfig);
        let api = https(ca, Some((&cert, &key)));
        let url = format!("https://{}/api/v1/nodes", endpoint(lab));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Samples::default();
            while !flag.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let list: Option<serde_json::Value> =
                    api.get(&url).send().ok().filter(|r| r.status().is_success()).and_then(|r| r.json().ok());
                match list {
                    Some(l) => {
                        let cordoned = l["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|n| n["spec"]["unschedulable"] == true)
                            .map(|n| n["metadata"]["name"].as_str().unwrap_or_default().to_string())
                            .filter(|n| WORKERS.contains(&n.as_str()))
                            .collect();
                        out.seen.push((OffsetDateTime::now_utc(), cordoned));
                    }
                    None => out.failed += 1,
                }
                std::thread::sleep(Duration::from_millis(150).saturating_sub(asked.elapsed()));
            }
            out
        });
        Watcher { stop, handle }
    }

    fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// `kubernetes_version` of each control-plane node in the state's `nodes`.
fn node_versions(wd: &strata_acceptance_tests::terraform::Workdir) -> Vec<(String, String)> {
    let cp = wd.resource_values("strata_control_plane.k8s").unwrap();
    cp["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_string(), n["kubernetes_version"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn git_version(lab: &LabGuard, ca: &str) -> String {
    let v: serde_json::Value =
        https(ca, None).get(format!("https://{}/version", endpoint(lab))).send().unwrap().json().unwrap();
    v["gitVersion"].as_str().unwrap().to_string()
}

#[test]
fn upgrade_takes_a_snapshot_first_rolls_one_node_at_a_time_and_resumes_after_a_failure() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 5);
    install_containerd(&lab, &[&CP[..], &WORKERS[..]].concat());
    let wd = workdir(&lab, &Opts { version: "v1.35.0", workers: &WORKERS, import_from: None, etcd_restore: None });
    wd.write("main.tf", &config(&lab, "v1.35.0", "v1.35.0")).unwrap();
    wd.apply().unwrap();
    let created = started.elapsed();
    let ca = output(&wd, "ca");
    let kubeconfig = output(&wd, "kubeconfig");
    wait_ready_through_vip(&lab, &ca);
    assert_eq!(git_version(&lab, &ca), "v1.35.0");
    assert_empty_plan(&wd, "the first apply");

    // v1.35.0 -> v1.36.1, control plane and workers in one apply.
    wd.write("main.tf", &config(&lab, "v1.36.1", "v1.36.1")).unwrap();
    let plan = wd.run(&["plan", "-input=false"]).unwrap();
    assert!(plan.stdout.contains("\"v1.35.0\" -> \"v1.36.1\""), "{}", plan.stdout);
    assert!(plan.stdout.contains("last_upgrade_snapshot"), "the plan shows a snapshot to come: {}", plan.stdout);
    let watcher = Watcher::start(&lab, &ca, &kubeconfig);
    let t = Instant::now();
    wd.apply().unwrap();
    let upgrade_apply = t.elapsed();
    let samples = watcher.stop();
    eprintln!(
        "upgrade v1.35.0 -> v1.36.1 (3 control-plane nodes, 2 workers): apply {upgrade_apply:?}; watcher: {} polls \
         answered, {} not",
        samples.seen.len(),
        samples.failed
    );
    assert!(samples.seen.len() >= 50, "the watcher polled the Nodes all along: {} polls", samples.seen.len());

    // Control plane: `upgrade apply` on node1, then `upgrade node` on node2 and node3.
    let apply = kubeadm_calls(&lab, "node1", &["upgrade", "apply"]);
    assert_eq!(apply.len(), 1, "{apply:?}");
    assert_eq!(apply[0]["argv"][3], "v1.36.1");
    let mut in_order = vec![("node1", apply[0].clone())];
    for n in ["node2", "node3"] {
        let up = kubeadm_calls(&lab, n, &["upgrade", "node"]);
        assert_eq!(up.len(), 1, "{n}: {up:?}");
        in_order.push((n, up[0].clone()));
        assert!(kubeadm_calls(&lab, n, &["upgrade", "apply"]).is_empty(), "{n}: no second upgrade apply");
    }
    // Each began after the one before it ended: one node at a time.
    assert_one_after_another(&in_order.iter().map(|(n, c)| (*n, c)).collect::<Vec<_>>());
    let cp_done = at(&in_order[2].1);

    // The snapshot: reported, on node1, checked by etcdctl, taken before the first
    // kubeadm upgrade call, and holding the cluster as it was (kubeadm-config at v1.35.0,
    // never v1.36.1, which `upgrade apply` wrote after it).
    let state = wd.resource_values("strata_control_plane.k8s").unwrap();
    let reported = state["last_upgrade_snapshot"].as_str().unwrap_or_else(|| panic!("{state}")).to_string();
    let path = reported.strip_prefix("node1:").unwrap_or_else(|| panic!("on the first node: {reported}"));
    assert!(
        path.starts_with("/var/lib/strata/etcd-snapshots/pre-upgrade-v1.35.0-to-v1.36.1-") && path.ends_with(".db"),
        "{path}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&sh_ok(&lab, "node1", &format!("ETCDCTL_API=3 etcdctl snapshot status {path} -w json")))
            .unwrap();
    assert!(status["totalKey"].as_u64().unwrap() > 0 && status["totalSize"].as_u64().unwrap() > 0, "{status}");
    let taken = sh_ok(&lab, "node1", &format!("date -u -r {path} +%Y-%m-%dT%H:%M:%S.%NZ"));
    let taken = OffsetDateTime::parse(taken.trim(), &Rfc3339).unwrap();
    let first_upgrade = [&CP[..], &WORKERS[..]]
        .concat()
        .iter()
        .flat_map(|n| all_kubeadm_calls(&lab, n, &["upgrade"]))
        .map(|c| call_span(&c).0)
        .min()
        .unwrap();
    assert!(taken < first_upgrade, "snapshot written at {taken}, the first kubeadm upgrade call at {first_upgrade}");
    let count = |s: &str| sh_ok(&lab, "node1", &format!("grep -a -c -F {s:?} {path} || true")).trim().to_string();
    assert_ne!(count("kubernetesVersion: v1.35.0"), "0", "the snapshot holds kubeadm-config as it was");
    assert_eq!(count("kubernetesVersion: v1.36.1"), "0", "the snapshot was taken before upgrade apply");

    // Workers: after the control plane, one at a time, each cordoned before its `kubeadm
    // upgrade node` and uncordoned after it.
    assert!(samples.max_unschedulable() <= 1, "two workers unschedulable at once: {:?}", samples.seen);
    let mut windows = Vec::new();
    for w in WORKERS {
        let up = kubeadm_calls(&lab, w, &["upgrade", "node"]);
        assert_eq!(up.len(), 1, "{w}: {up:?}");
        let upgraded = at(&up[0]);
        assert!(call_span(&up[0]).0 >= cp_done, "{w}'s upgrade began after the control plane's last one ended");
        let (cordoned, last_seen) = samples.cordoned(w).unwrap_or_else(|| panic!("{w} was never seen cordoned"));
        let uncordoned = samples.uncordoned_after(w, last_seen).unwrap_or_else(|| panic!("{w} never uncordoned"));
        assert!(
            cordoned < upgraded && upgraded < uncordoned,
            "{w}: cordon {cordoned}, upgrade {upgraded}, uncordon {uncordoned}"
        );
        windows.push((cordoned, uncordoned, w));
    }
    windows.sort();
    assert!(
        windows[0].1 <= windows[1].0,
        "{} was cordoned before {} was uncordoned: {windows:?}",
        windows[1].2,
        windows[0].2
    );
    for w in WORKERS {
        let n: serde_json::Value = serde_json::from_str(&sh_ok(
            &lab,
            "node1",
            &format!("kubectl --kubeconfig /etc/kubernetes/admin.conf get node {w} -o json"),
        ))
        .unwrap();
        assert_ne!(n["spec"]["unschedulable"], true, "{w} is schedulable again");
        assert!(n["metadata"]["annotations"]["strata.dev/cordoned-for-upgrade"].is_null(), "{w}: {n}");
        assert_eq!(sh_ok(&lab, w, "kubeadm version -o short").trim(), "v1.36.1");
    }
    assert_eq!(git_version(&lab, &ca), "v1.36.1");
    assert!(node_versions(&wd).iter().all(|(_, v)| v == "v1.36.1"), "{:?}", node_versions(&wd));
    assert_empty_plan(&wd, "the upgrade");

    // v1.36.1 -> v1.36.2 with node2's kubeadm failing: the roll stops there.
    sh_ok(&lab, "node2", &format!("mkdir -p /etc/strata-standins && echo 'disk full (test)' > {FAIL_HOOK}"));
    let worker_calls: Vec<usize> = WORKERS.iter().map(|w| calls(&lab, w).len()).collect();
    let node3_calls = calls(&lab, "node3").len();
    wd.write("main.tf", &config(&lab, "v1.36.2", "v1.36.2")).unwrap();
    let failed = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    let err = failed.stderr.replace('\n', " ");
    assert!(err.contains("disk full (test)"), "the cause: {}", failed.stderr);
    assert!(
        err.contains("stopped at control-plane node node2") && err.contains("node3 not touched"),
        "{}",
        failed.stderr
    );
    let up = all_kubeadm_calls(&lab, "node1", &["upgrade", "apply"]);
    assert_eq!(up.last().unwrap()["argv"][3], "v1.36.2", "{up:?}");
    let failed_node2: Vec<_> =
        all_kubeadm_calls(&lab, "node2", &["upgrade", "node"]).into_iter().filter(|c| c["exit"] != 0).collect();
    assert_eq!(failed_node2.len(), 1, "{failed_node2:?}");
    assert_eq!(calls(&lab, "node3").len(), node3_calls, "nothing ran on node3");
    for (w, n) in WORKERS.iter().zip(&worker_calls) {
        assert_eq!(calls(&lab, w).len(), *n, "nothing ran on {w}");
        assert_eq!(sh_ok(&lab, w, "kubeadm version -o short").trim(), "v1.36.1", "{w} stays at v1.36.1");
    }
    let versions = node_versions(&wd);
    assert_eq!(
        versions,
        vec![
            ("node1".into(), "v1.36.2".into()),
            ("node2".into(), "v1.36.1".into()),
            ("node3".into(), "v1.36.1".into())
        ],
        "the state says which node runs which version"
    );
    let state = wd.resource_values("strata_control_plane.k8s").unwrap();
    assert_eq!(state["kubernetes_version"], "v1.36.1", "the state keeps the old version");
    let snapshot = state["last_upgrade_snapshot"].as_str().unwrap_or_default();
    assert!(snapshot.contains("pre-upgrade-v1.36.1-to-v1.36.2-"), "the failed roll's snapshot is recorded: {snapshot}");

    // The cause removed: the plan shows the upgrade again, the apply resumes at node2.
    sh_ok(&lab, "node2", &format!("rm {FAIL_HOOK}"));
    let plan = wd.run(&["plan", "-input=false"]).unwrap();
    assert!(plan.stdout.contains("\"v1.36.1\" -> \"v1.36.2\""), "{}", plan.stdout);
    let t = Instant::now();
    wd.apply().unwrap();
    let resume_apply = t.elapsed();
    assert_eq!(
        kubeadm_calls(&lab, "node1", &["upgrade", "apply"]).iter().filter(|c| c["argv"][3] == "v1.36.2").count(),
        1,
        "no second upgrade apply on node1"
    );
    for n in ["node2", "node3"] {
        assert_eq!(kubeadm_calls(&lab, n, &["upgrade", "node"]).len(), 2, "{n}: upgraded to v1.36.1, then v1.36.2");
    }
    for w in WORKERS {
        assert_eq!(kubeadm_calls(&lab, w, &["upgrade", "node"]).len(), 2, "{w}");
        assert_eq!(sh_ok(&lab, w, "kubeadm version -o short").trim(), "v1.36.2");
    }
    assert_eq!(git_version(&lab, &ca), "v1.36.2");
    assert!(node_versions(&wd).iter().all(|(_, v)| v == "v1.36.2"), "{:?}", node_versions(&wd));
    assert_empty_plan(&wd, "the resumed upgrade");
    eprintln!(
        "timings: lab + platform {created:?}, upgrade apply {upgrade_apply:?}, resumed apply {resume_apply:?}, total {:?}",
        started.elapsed()
    );
}
