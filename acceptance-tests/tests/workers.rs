//! strata_worker on a live cluster, through real Terraform and REAL kubectl (Debian's,
//! run on a control-plane node with the admin kubeconfig) against the stand-in API
//! servers, which act like a cluster: the node lifecycle controller's taints (no CNI runs
//! in the lab, so every Node carries `node.kubernetes.io/not-ready`), cordon, the eviction
//! API with PodDisruptionBudgets. One platform, one sequence of changes:
//! a worker joined while NotReady; `kubectl cordon`; a declared taint changed by hand
//! beside a foreign one; an empty taint value; `ssh.host` changed to a DNS name; a
//! destroy held by a PodDisruptionBudget until `timeouts.delete`, then a destroy that
//! drains before `kubeadm reset`.

mod k8s_common;

use std::io::Write;

use k8s_common::*;
use strata_lab::LabGuard;

const WORKER: &str = "node4";

fn kubectl(lab: &LabGuard, args: &str) -> String {
    sh_ok(lab, "node1", &format!("kubectl --kubeconfig /etc/kubernetes/admin.conf {args}"))
}

fn node_json(lab: &LabGuard) -> serde_json::Value {
    serde_json::from_str(&kubectl(lab, &format!("get node {WORKER} -o json"))).unwrap()
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
    let extra = if extra_taint {
        "  taint {\n    key    = \"empty\"\n    value  = \"\"\n    effect = \"PreferNoSchedule\"\n  }\n"
    } else {
        ""
    };
    format!(
        r#"resource "strata_worker" "w" {{
  name               = "{WORKER}"
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
}}
"#
    )
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
    let lab = lab(&tmp.path().join("lab"), 4);
    install_containerd(&lab, &[&CP[..], &[WORKER]].concat());
    let a = address(&lab, WORKER);
    let wd = workdir(&lab, &Opts { version: "v1.35.0", workers: &[], import_from: None, etcd_restore: None });
    wd.write("worker.tf", &worker_tf(&a, &a, false)).unwrap();

    // Joined while NotReady: Kubernetes' not-ready taint is there, and the apply is
    // consistent (it declares only `dedicated`).
    let t0 = std::time::Instant::now();
    wd.apply().unwrap();
    eprintln!("platform + worker applied in {:?}", t0.elapsed());
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
    std::fs::remove_file(wd.path().join("worker.tf")).unwrap();
    let started = std::time::Instant::now();
    let r = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    let waited = started.elapsed();
    assert_ne!(r.code, 0, "the destroy must fail while the budget forbids the eviction:\n{}", r.stdout);
    assert!(r.stderr.contains("disruption budget") && r.stderr.contains("apps/web-1"), "{}", r.stderr);
    assert!(r.stderr.contains("timeouts.delete"), "{}", r.stderr);
    assert!(waited.as_secs() >= 15, "it waited for the budget: {waited:?}");
    assert!(kubeadm_calls(&lab, WORKER, &["reset"]).is_empty(), "nothing was reset");
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
    let resets = kubeadm_calls(&lab, WORKER, &["reset"]);
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
