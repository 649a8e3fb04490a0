//! strata_worker on a live cluster, through real Terraform and REAL kubectl (Debian's,
//! run on a control-plane node with the admin kubeconfig) against the stand-in API
//! servers, which act like a cluster: the node lifecycle controller's taints (no CNI runs
//! in the lab, so every Node carries `node.kubernetes.io/not-ready`), cordon, the eviction
//! API with PodDisruptionBudgets. One platform, one sequence of changes:
//! a worker joined while NotReady; `kubectl cordon`; a declared taint changed by hand
//! beside a foreign one; an empty taint value; `ssh.host` changed to a DNS name; a
//! destroy held by a PodDisruptionBudget until `timeouts.delete`, then a destroy that
//! drains before `kubeadm reset`. A second worker shows that workers change one at a
//! time across resources: two created in one apply join in turn, a Lease held by someone
//! else holds a replacement until `timeouts.delete` (the error names the holder), and two
//! replaced in one apply (Terraform runs them in parallel) drain, reset and join in
//! series, as a watcher polling the Nodes and the Lease with kubectl and the kubeadm
//! calls' times on the nodes show.

mod k8s_common;

use std::io::Write;

use k8s_common::*;
use strata_lab::LabGuard;

const WORKER: &str = "node4";
const WORKER2: &str = "node5";
/// Where the timing wrapper (see `time_kubeadm`) logs each kubeadm reset and join.
const KUBEADM_LOG: &str = "/var/log/strata-test-kubeadm.log";

fn kubectl(lab: &LabGuard, args: &str) -> String {
    sh_ok(lab, "node1", &format!("kubectl --kubeconfig /etc/kubernetes/admin.conf {args}"))
}

fn node_json(lab: &LabGuard) -> serde_json::Value {
    node_json_of(lab, WORKER)
}

fn node_json_of(lab: &LabGuard, node: &str) -> serde_json::Value {
    serde_json::from_str(&kubectl(lab, &format!("get node {node} -o json"))).unwrap()
}

/// `key=value:effect` of each taint of the worker's Node.
fn taints(lab: &LabGuard) -> Vec<String> {
    let n = node_json(lab);
    n["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            format!(
                "{}={}:{}",
                t["key"].as_str().unwrap(),
                t["value"].as_str().unwrap_or(""),
                t["effect"].as_str().unwrap()
            )
        })
        .collect()
}

fn worker_tf(host: &str, address: &str, extra_taint: bool) -> String {
    worker_resource("w", WORKER, host, address, extra_taint)
}

fn worker_resource(resource: &str, node: &str, host: &str, address: &str, extra_taint: bool) -> String {
    let extra = if extra_taint {
        "  taint {\n    key    = \"empty\"\n    value  = \"\"\n    effect = \"PreferNoSchedule\"\n  }\n"
    } else {
        ""
    };
    format!(
        r#"resource "strata_worker" "{resource}" {{
  name               = "{node}"
  address            = "{address}"
  kubernetes_version = "v1.35.0"
  join               = strata_control_plane.k8s.join
  kubeconfig         = strata_control_plane.k8s.kubeconfig
  labels = {{
    "env" = "test"
  }}
  taint {{
    key    = "dedicated"
    value  = "db"
    effect = "NoSchedule"
  }}
{extra}  ssh {{ host = "{host}" }}
  timeouts {{ delete = "20s" }}
  depends_on = [strata_node_config.workers]
}}
"#
    )
}

/// Puts a wrapper in front of kubeadm on `node` (a dpkg diversion, so the package
/// installed later lands beside it) that logs the start and end of every `reset` and
/// `join` and makes each last 2 s longer: two that overlap cannot be missed.
fn time_kubeadm(lab: &LabGuard, node: &str) {
    sh_ok(
        lab,
        node,
        &format!(
            "dpkg-divert --quiet --local --rename --divert /usr/bin/kubeadm.real --add /usr/bin/kubeadm && \
             cat > /usr/bin/kubeadm <<'EOF'\n#!/bin/sh\n# strata workers test: times kubeadm reset and join.\n\
case \"$1\" in reset|join)\n  start=$(date +%s.%N); sleep 2; /usr/bin/kubeadm.real \"$@\"; rc=$?\n\
  echo \"$1 $start $(date +%s.%N) $rc\" >> {KUBEADM_LOG}; exit $rc;;\nesac\n\
exec /usr/bin/kubeadm.real \"$@\"\nEOF\nchmod 755 /usr/bin/kubeadm"
        ),
    );
}

/// A kubeadm `reset` or `join` on a worker, from the timing wrapper's log.
#[derive(Debug, Clone)]
struct Span {
    node: &'static str,
    command: String,
    start: f64,
    end: f64,
}

fn kubeadm_spans(lab: &LabGuard, node: &'static str) -> Vec<Span> {
    let (_, out, _) = sh(lab, node, &format!("cat {KUBEADM_LOG} 2>/dev/null"));
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.get(3), Some(&"0"), "kubeadm failed on {node}: {l}");
            Span { node, command: f[0].to_string(), start: f[1].parse().unwrap(), end: f[2].parse().unwrap() }
        })
        .collect()
}

/// Asserts that no kubeadm reset or join on one worker overlapped one on the other.
fn assert_in_series(a: &[Span], b: &[Span]) {
    for x in a {
        for y in b {
            assert!(x.end <= y.start || y.end <= x.start, "overlapping: {x:?} and {y:?}\n{a:?}\n{b:?}");
        }
    }
}

/// What a watcher saw at one poll: the workers whose Node was unschedulable, and the
/// holder of the workers' Lease.
#[derive(Debug)]
struct Sample {
    unschedulable: Vec<String>,
    holder: Option<String>,
}

/// Polls the Nodes and the Lease with real kubectl (one call, ~every 150 ms) until
/// `stop` is set.
fn watch(lab: &LabGuard, stop: &std::sync::atomic::AtomicBool) -> Vec<Sample> {
    let mut samples = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let (code, out, _) =
            sh(lab, "node1", "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system get nodes,leases -o json");
        if code == 0 {
            let list: serde_json::Value = serde_json::from_str(&out).unwrap();
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let unschedulable = items
                .iter()
                .filter(|i| i["kind"] == "Node" && i["spec"]["unschedulable"] == true)
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
                .filter(|n| n == WORKER || n == WORKER2)
                .collect();
            let holder = items
                .iter()
                .find(|i| i["kind"] == "Lease" && i["metadata"]["name"] == "strata-worker-roll")
                .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string));
            samples.push(Sample { unschedulable, holder });
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    samples
}

/// A name for an address in the Terraform host's /etc/hosts (and the lab's known_hosts),
/// removed again on drop.
struct HostName {
    line: String,
}

impl HostName {
    fn add(lab: &LabGuard, name: &str, address: &str) -> HostName {
        let line = format!("{address} {name} # strata workers test {}", std::process::id());
        let mut f = std::fs::OpenOptions::new().append(true).open("/etc/hosts").unwrap();
        writeln!(f, "{line}").unwrap();
        let kh = &lab.info().ssh.known_hosts_file;
        let text = std::fs::read_to_string(kh).unwrap();
        let key = text.lines().find(|l| l.split_whitespace().next() == Some(address)).expect("the node's host key");
        let mut f = std::fs::OpenOptions::new().append(true).open(kh).unwrap();
        writeln!(f, "{}", key.replacen(address, name, 1)).unwrap();
        HostName { line }
    }
}

impl Drop for HostName {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string("/etc/hosts") {
            let kept: String = text.lines().filter(|l| *l != self.line).map(|l| format!("{l}\n")).collect();
            let _ = std::fs::write("/etc/hosts", kept);
        }
    }
}

#[test]
fn workers_own_only_what_they_declare_change_ssh_in_place_and_drain_before_destroy() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 5);
    install_containerd(&lab, &[&CP[..], &[WORKER, WORKER2]].concat());
    time_kubeadm(&lab, WORKER);
    time_kubeadm(&lab, WORKER2);
    let a = address(&lab, WORKER);
    let a2 = address(&lab, WORKER2);
    let wd = workdir(&lab, &Opts { version: "v1.35.0", workers: &[], import_from: None, etcd_restore: None });
    // The workers' ip_forward (kubeadm join's preflight), as the nodes' configuration of
    // a real installation, applied before either joins.
    wd.write("worker_nodes.tf", &node_config_at_addresses(&lab, "workers", &[WORKER, WORKER2])).unwrap();
    wd.write("worker.tf", &worker_tf(&a, &a, false)).unwrap();
    wd.write("worker2.tf", &worker_resource("w2", WORKER2, &a2, &a2, false)).unwrap();

    // Joined while NotReady: Kubernetes' not-ready taint is there, and the apply is
    // consistent (it declares only `dedicated`). The two workers, created in the same
    // apply, joined one after the other.
    let t0 = std::time::Instant::now();
    wd.apply().unwrap();
    eprintln!("platform + 2 workers applied in {:?}", t0.elapsed());
    let (joins, joins2) = (kubeadm_spans(&lab, WORKER), kubeadm_spans(&lab, WORKER2));
    assert_eq!((joins.len(), joins2.len()), (1, 1), "one join each: {joins:?} {joins2:?}");
    assert_in_series(&joins, &joins2);

    // A Lease held by someone else (a maintenance by hand, another tool) holds a
    // worker's replacement until timeouts.delete; the error names the holder and
    // nothing ran on the worker.
    sh_ok(
        &lab,
        "node1",
        "cat <<EOF | kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f -\n\
apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: strata-worker-roll\n  namespace: kube-system\n\
spec:\n  holderIdentity: maintenance-by-hand\n  leaseDurationSeconds: 3600\n\
  renewTime: $(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)\nEOF",
    );
    let started = std::time::Instant::now();
    let r = wd.run(&["apply", "-auto-approve", "-input=false", "-replace=strata_worker.w2"]).unwrap();
    let waited = started.elapsed();
    assert_ne!(r.code, 0, "the replacement must wait for the Lease:\n{}", r.stdout);
    assert!(r.stderr.contains("maintenance-by-hand") && r.stderr.contains("strata-worker-roll"), "{}", r.stderr);
    assert!(r.stderr.contains("timeouts.delete"), "{}", r.stderr);
    assert!(waited.as_secs() >= 15, "it waited for the Lease: {waited:?}");
    assert_eq!(kubeadm_spans(&lab, WORKER2).len(), 1, "nothing was reset on {WORKER2}");
    assert_eq!(node_json_of(&lab, WORKER2)["spec"]["unschedulable"], serde_json::Value::Null, "not cordoned");
    kubectl(&lab, "-n kube-system delete lease strata-worker-roll");
    eprintln!("replacement held by a foreign Lease for {waited:?}");

    // Both workers replaced in one apply: Terraform runs the two in parallel, the Lease
    // puts them in series. A watcher polls the Nodes and the Lease meanwhile.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = std::time::Instant::now();
    let (r, samples) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch(&lab, &stop));
        let r = wd.run(&[
            "apply",
            "-auto-approve",
            "-input=false",
            "-replace=strata_worker.w",
            "-replace=strata_worker.w2",
        ]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (r.unwrap(), watcher.join().unwrap())
    });
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("2 added, 0 changed, 2 destroyed"), "{}", r.stdout);
    let both: Vec<&Sample> = samples.iter().filter(|s| s.unschedulable.len() > 1).collect();
    assert!(both.is_empty(), "two workers drained at once: {both:?}");
    for w in [WORKER, WORKER2] {
        // Evidence, not absence: the watcher saw each drain and each holder.
        assert!(samples.iter().any(|s| s.unschedulable.iter().any(|n| n == w)), "{w} never seen cordoned: {samples:?}");
        let holder = format!("strata-worker/{w}/");
        assert!(
            samples.iter().any(|s| s.holder.as_deref().is_some_and(|h| h.starts_with(&holder))),
            "{w} never seen holding the Lease: {samples:?}"
        );
    }
    let (spans, spans2) = (kubeadm_spans(&lab, WORKER), kubeadm_spans(&lab, WORKER2));
    let (new, new2) = (&spans[1..], &spans2[1..]);
    let commands = |s: &[Span]| s.iter().map(|x| x.command.clone()).collect::<Vec<_>>();
    assert_eq!(commands(new), vec!["reset", "join"], "{new:?}");
    assert_eq!(commands(new2), vec!["reset", "join"], "{new2:?}");
    assert_in_series(new, new2);
    eprintln!(
        "2 workers replaced in {took:?}: {} polls, kubeadm spans {:?}",
        samples.len(),
        new.iter()
            .chain(new2)
            .map(|s| format!("{} {} {:.2}-{:.2}", s.node, s.command, s.start, s.end))
            .collect::<Vec<_>>()
    );
    assert_empty_plan(&wd, "both workers replaced");
    let t = taints(&lab);
    assert!(t.contains(&"node.kubernetes.io/not-ready=:NoSchedule".to_string()), "{t:?}");
    assert!(t.contains(&"dedicated=db:NoSchedule".to_string()), "{t:?}");
    assert_empty_plan(&wd, "a worker joined while NotReady");

    // kubectl cordon: not drift.
    kubectl(&lab, &format!("cordon {WORKER}"));
    assert!(taints(&lab).contains(&"node.kubernetes.io/unschedulable=:NoSchedule".to_string()));
    assert_empty_plan(&wd, "kubectl cordon");

    // A declared taint changed by hand is planned back; a foreign taint is left alone.
    kubectl(&lab, &format!("taint node {WORKER} dedicated=other:NoSchedule --overwrite"));
    kubectl(&lab, &format!("taint node {WORKER} foreign=x:NoExecute"));
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("\"other\" -> \"db\""), "{}", plan.stdout);
    assert!(!plan.stdout.contains("foreign"), "{}", plan.stdout);
    wd.apply().unwrap();
    let t = taints(&lab);
    for want in ["dedicated=db:NoSchedule", "foreign=x:NoExecute", "node.kubernetes.io/unschedulable=:NoSchedule"] {
        assert!(t.contains(&want.to_string()), "{want} missing: {t:?}");
    }
    assert!(!t.iter().any(|x| x.starts_with("dedicated=other")), "{t:?}");
    assert_eq!(node_json(&lab)["spec"]["unschedulable"], true, "still cordoned");
    assert_empty_plan(&wd, "setting the declared taint back");

    // An empty taint value round-trips.
    wd.write("worker.tf", &worker_tf(&a, &a, true)).unwrap();
    wd.apply().unwrap();
    assert!(taints(&lab).contains(&"empty=:PreferNoSchedule".to_string()));
    assert_empty_plan(&wd, "a taint with value \"\"");

    // ssh.host from the address to a DNS name of the same machine: in place, nothing
    // run on the node (no kubeadm call).
    let name = format!("{WORKER}-{}.strata-test", std::process::id());
    let _hosts = HostName::add(&lab, &name, &a);
    let calls_before = calls(&lab, WORKER).len();
    wd.write("worker.tf", &worker_tf(&name, &a, true)).unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("1 to change, 0 to destroy"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    wd.apply().unwrap();
    assert_eq!(calls(&lab, WORKER).len(), calls_before, "nothing ran on the node: {:?}", calls(&lab, WORKER));
    assert_empty_plan(&wd, "ssh.host changed to a DNS name");

    // A pod on the worker and a PodDisruptionBudget that forbids its eviction: the destroy
    // waits, then fails at timeouts.delete naming the budget; nothing was reset.
    sh_ok(
        &lab,
        "node1",
        &format!(
            "cat > /tmp/app.yaml <<'EOF'\n\
apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n---\n\
apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: apps\n  labels: {{app: web}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web, uid: 0b5e6c58-0000-4000-8000-000000000001}}]\n\
spec:\n  nodeName: {WORKER}\n  containers: [{{name: c, image: nginx}}]\n---\n\
apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {{app: web}}\nEOF"
        ),
    );
    kubectl(&lab, "apply --server-side -f /tmp/app.yaml");
    let resets_before = kubeadm_calls(&lab, WORKER, &["reset"]).len();
    std::fs::remove_file(wd.path().join("worker.tf")).unwrap();
    let started = std::time::Instant::now();
    let r = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    let waited = started.elapsed();
    assert_ne!(r.code, 0, "the destroy must fail while the budget forbids the eviction:\n{}", r.stdout);
    assert!(r.stderr.contains("disruption budget") && r.stderr.contains("apps/web-1"), "{}", r.stderr);
    assert!(r.stderr.contains("timeouts.delete"), "{}", r.stderr);
    assert!(waited.as_secs() >= 15, "it waited for the budget: {waited:?}");
    assert_eq!(kubeadm_calls(&lab, WORKER, &["reset"]).len(), resets_before, "nothing was reset");
    assert_eq!(node_json(&lab)["spec"]["unschedulable"], true, "left cordoned");
    eprintln!("destroy held by the budget for {waited:?}");

    // The budget lifted: the worker is drained (the eviction recorded by the API server
    // before kubeadm reset ran on the worker), reset and its Node deleted.
    kubectl(&lab, "-n apps delete pdb web");
    let started = std::time::Instant::now();
    wd.apply().unwrap();
    eprintln!("drain + reset + Node deletion in {:?}", started.elapsed());
    let evictions: Vec<_> = CP
        .iter()
        .flat_map(|n| calls(&lab, n))
        .filter(|c| c["tool"] == "eviction" && c["exit"] == 0 && c["argv"][3] == "web-1")
        .collect();
    assert_eq!(evictions.len(), 1, "{evictions:?}");
    let resets = kubeadm_calls(&lab, WORKER, &["reset"])[resets_before..].to_vec();
    assert_eq!(resets.len(), 1, "{resets:?}");
    let at = |c: &serde_json::Value| {
        time::OffsetDateTime::parse(c["time"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    assert!(at(&evictions[0]) < at(&resets[0]), "evicted {} before the reset {}", evictions[0], resets[0]);
    let (code, _, err) =
        sh(&lab, "node1", &format!("kubectl --kubeconfig /etc/kubernetes/admin.conf get node {WORKER}"));
    assert_ne!(code, 0, "the Node is deleted");
    assert!(err.contains("not found"), "{err}");
    assert_empty_plan(&wd, "the worker's destroy");
}
