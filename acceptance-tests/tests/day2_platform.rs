//! Day-2 changes on one live platform, in the order a team makes them, each applied
//! while the live prober watches: `/readyz` through the VIP (verified against the
//! cluster CA) and an etcd key, every 100 ms. The platform: a 3-member etcd over TLS, a
//! keepalived + haproxy VIP and the control plane (Kubernetes STAND-INS) on node1-3, a
//! worker on node4, an NFS export (real nfs-ganesha) on node5, which is also the
//! control plane's bastion. The changes:
//! 1. every node's `ssh.host` from its address to a DNS name of the same machine,
//! 2. a bastion added for the control plane,
//! 3. an etcd member renamed,
//! 4. keepalived's `virtual_router_id` changed,
//! 5. the worker replaced (`-replace`).
//!
//! Each plan shows only in-place updates (but the replacement), each apply succeeds,
//! the prober records zero failed probes (at most five, half a second, for the keepalived
//! change: the issue's bound of one is not met reliably yet), and
//! the etcd key and the NFS file written first are intact at the end.

mod k8s_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_common::*;
use strata_acceptance_tests::names::{known_hosts_with_names, HostsEntries};
use strata_acceptance_tests::prober::{etcd_key_check, ProbeReport, ProbeTargets, Prober};
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir};
use strata_lab::LabGuard;

const WORKER: &str = "node4";
/// The NFS server, and the control plane's bastion.
const EDGE: &str = "node5";
const ETCD_KEY: &str = "/strata/day2";
const NFS_FILE: &str = "/srv/nfs/k8s-prod/day2.txt";

/// What the changes vary.
#[derive(Clone)]
struct Day2 {
    /// `ssh.host` of each lab node.
    host: BTreeMap<String, String>,
    /// The control plane's nodes are reached through the bastion on EDGE.
    cp_bastion: bool,
    etcd_names: [String; 3],
    vrid: u8,
}

fn ssh_block(host: &str, bastion: Option<(&str, &Path)>, indent: &str) -> String {
    let bastion = bastion
        .map(|(b, key)| {
            format!("{indent}  bastion {{\n{indent}    host             = \"{b}\"\n{indent}    private_key_file = \"{}\"\n{indent}  }}\n", key.display())
        })
        .unwrap_or_default();
    format!("{indent}ssh {{\n{indent}  host = \"{host}\"\n{bastion}{indent}}}\n")
}

fn config(lab: &LabGuard, known_hosts: &Path, d: &Day2) -> String {
    let key = lab.info().ssh.private_key_file.clone();
    let edge = address(lab, EDGE);
    let host = |n: &str| d.host[n].clone();
    let members: String = CP
        .iter()
        .zip(&d.etcd_names)
        .map(|(n, name)| {
            format!(
                "  member {{\n    name    = \"{name}\"\n    address = \"{}\"\n{}  }}\n",
                address(lab, n),
                ssh_block(&host(n), None, "    ")
            )
        })
        .collect();
    let lb_nodes: String = CP
        .iter()
        .map(|n| {
            format!(
                "  node {{\n    name    = \"lb-{n}\"\n    address = \"{}\"\n{}  }}\n",
                address(lab, n),
                ssh_block(&host(n), None, "    ")
            )
        })
        .collect();
    let bastion = d.cp_bastion.then_some((edge.as_str(), key.as_path()));
    let cp_nodes: String = CP
        .iter()
        .map(|n| {
            format!(
                "  node {{\n    name    = \"{n}\"\n    address = \"{}\"\n{}  }}\n",
                address(lab, n),
                ssh_block(&host(n), bastion, "    ")
            )
        })
        .collect();
    format!(
        r#"{provider}resource "strata_cluster_secrets" "this" {{
  cluster_name = "kubernetes"
}}

resource "strata_etcd_cluster" "main" {{
  ca_cert = strata_cluster_secrets.this.etcd_ca_cert
  ca_key  = strata_cluster_secrets.this.etcd_ca_key
{members}}}

{node_config}
{load_balancer}
{control_plane}
resource "strata_worker" "{WORKER}" {{
  name               = "{WORKER}"
  address            = "{worker}"
  kubernetes_version = "v1.35.0"
  join               = strata_control_plane.k8s.join
  kubeconfig         = strata_control_plane.k8s.kubeconfig
  labels = {{
    "node-role.kubernetes.io/worker" = ""
  }}
{worker_ssh}  depends_on = [strata_node_config.kube]
}}

resource "strata_nfs_export" "prod" {{
{nfs_ssh}  name    = "k8s-prod"
  path    = "/srv/nfs/k8s-prod"
  backend = "ganesha"
  create_directory {{
    mode = "0777"
  }}
  clients {{
    client  = "10.77.0.0/16"
    options = ["rw", "no_root_squash"]
  }}
}}

output "ca" {{
  value = strata_cluster_secrets.this.kubernetes_ca_cert
}}
"#,
        provider = ssh_provider(&key, known_hosts),
        // ip_forward on the kubeadm nodes, reached as the other resources reach them.
        node_config = node_config_resource(
            "kube",
            &[&CP[..], &[WORKER]].concat().iter().map(|n| (n.to_string(), host(n))).collect::<Vec<_>>()
        ),
        load_balancer = load_balancer_resource(lab, d.vrid, &lb_nodes),
        control_plane = control_plane_resource(lab, "v1.35.0", &cp_nodes),
        worker = address(lab, WORKER),
        worker_ssh = ssh_block(&host(WORKER), None, "  "),
        nfs_ssh = ssh_block(&host(EDGE), None, "  "),
    )
}

/// The actions of every resource change in a saved plan, by address.
fn planned_actions(wd: &Workdir) -> BTreeMap<String, Vec<String>> {
    let plan = wd.run(&["show", "-json", "tfplan"]).unwrap().ok().unwrap();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    plan["resource_changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let actions = c["change"]["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string());
            (c["address"].as_str().unwrap().to_string(), actions.collect())
        })
        .filter(|(_, a): &(String, Vec<String>)| a != &["no-op"])
        .collect()
}

/// Plans `d` (with `extra` plan arguments) into a saved plan and checks its actions
/// with `expect`, then applies that plan under the prober; the apply time and report.
fn step(
    wd: &Workdir,
    lab: &LabGuard,
    targets: impl Fn() -> ProbeTargets,
    known_hosts: &Path,
    change: &str,
    d: &Day2,
    extra: &[&str],
    expect: impl Fn(&BTreeMap<String, Vec<String>>) -> bool,
) -> (Duration, ProbeReport) {
    wd.write("main.tf", &config(lab, known_hosts, d)).unwrap();
    let mut args = vec!["plan", "-input=false", "-out=tfplan"];
    args.extend_from_slice(extra);
    let plan = wd.run(&args).unwrap();
    assert_eq!(plan.code, 0, "{change}: plan: {}{}", plan.stdout, plan.stderr);
    let actions = planned_actions(wd);
    assert!(!actions.is_empty(), "{change}: the plan changes nothing:\n{}", plan.stdout);
    assert!(expect(&actions), "{change}: planned {actions:?}:\n{}", plan.stdout);
    let prober = Prober::start(targets());
    let started = Instant::now();
    let applied = wd.run(&["apply", "-input=false", "tfplan"]).unwrap();
    let took = started.elapsed();
    let report = prober.stop();
    assert_eq!(applied.code, 0, "{change}: apply: {}{}", applied.stdout, applied.stderr);
    report.record(change, took);
    eprintln!("day-2 {change}: apply {:.1} s, {}", took.as_secs_f64(), report.summary());
    assert_empty_plan(wd, change);
    (took, report)
}

fn only_updates(actions: &BTreeMap<String, Vec<String>>) -> bool {
    actions.values().all(|a| a == &["update"])
}

#[test]
fn day2_changes_under_load_keep_the_platform_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 5);
    install_containerd(&lab, &[&CP[..], &[WORKER]].concat());
    let nodes: Vec<String> = [&CP[..], &[WORKER, EDGE]].concat().iter().map(|n| n.to_string()).collect();

    // DNS names of the same machines, for the Terraform host (and the bastion, which
    // resolves the names it forwards to), and known_hosts under those names too, as a
    // user's would be.
    let names: Vec<(String, String)> =
        nodes.iter().map(|n| (address(&lab, n), format!("{n}-{}.day2.strata.test", std::process::id()))).collect();
    let _hosts = HostsEntries::add("day2-platform", &names);
    let on_edge: String = names.iter().map(|(ip, name)| format!("{ip} {name}\n")).collect();
    sh_ok(&lab, EDGE, &format!("printf '%s' '{on_edge}' >> /etc/hosts"));
    let known_hosts = tmp.path().join("known_hosts");
    std::fs::write(&known_hosts, known_hosts_with_names(&lab.info().ssh.known_hosts_file, &names)).unwrap();

    let mut d = Day2 {
        host: nodes.iter().map(|n| (n.clone(), address(&lab, n))).collect(),
        cp_bastion: false,
        etcd_names: ["etcd1".into(), "etcd2".into(), "etcd3".into()],
        vrid: 52,
    };
    let wd = Workdir::new(&provider_dir(), &config(&lab, &known_hosts, &d)).unwrap();
    wd.write("flannel.yaml", FLANNEL).unwrap();
    wd.apply().unwrap();
    let ca = output(&wd, "ca");
    wait_ready_through_vip(&lab, &ca);

    // The data that must survive every change.
    let etcd = wd.resource_values("strata_etcd_cluster.main").unwrap();
    let marker = format!("day2-{}", std::process::id());
    let pki = "/etc/etcd/pki";
    sh_ok(
        &lab,
        "node1",
        &format!(
            "ETCDCTL_API=3 etcdctl --endpoints=https://{}:2379 --cacert={pki}/ca.crt --cert={pki}/healthcheck-client.crt \
             --key={pki}/healthcheck-client.key put {ETCD_KEY} {marker}",
            address(&lab, "node1")
        ),
    );
    sh_ok(&lab, EDGE, &format!("echo {marker} > {NFS_FILE}"));
    let endpoints: Vec<String> =
        etcd["endpoints"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
    let s = |k: &str| etcd[k].as_str().unwrap().to_string();
    let (etcd_ca, etcd_cert, etcd_key) = (s("ca_certificate"), s("client_certificate"), s("client_private_key"));
    let targets = || {
        let check = etcd_key_check(&endpoints, &etcd_ca, &etcd_cert, &etcd_key, ETCD_KEY, &marker).unwrap();
        ProbeTargets { port: LB_PORT, ..ProbeTargets::readyz(&vip(&lab), &ca) }.with_check(check)
    };
    // The prober itself sees a healthy platform before any change.
    let idle = Prober::start(targets());
    std::thread::sleep(Duration::from_secs(2));
    let idle = idle.stop();
    assert_eq!(idle.failed(), 0, "before any change: {}", idle.summary());
    assert!(idle.check_rounds > 0, "{}", idle.summary());

    // 1. Every node's ssh.host from its address to a DNS name of the same machine.
    for (n, (_, name)) in nodes.iter().zip(&names) {
        d.host.insert(n.clone(), name.clone());
    }
    let (_, r) = step(
        &wd,
        &lab,
        targets,
        &known_hosts,
        "platform: every ssh.host from address to DNS name",
        &d,
        &[],
        only_updates,
    );
    assert_eq!(r.failed(), 0, "{}", r.summary());

    // 2. A bastion for the control plane.
    d.cp_bastion = true;
    let (_, r) =
        step(&wd, &lab, targets, &known_hosts, "platform: a bastion added for the control plane", &d, &[], |a| {
            only_updates(a) && a.keys().collect::<Vec<_>>() == ["strata_control_plane.k8s"]
        });
    assert_eq!(r.failed(), 0, "{}", r.summary());

    // 3. An etcd member renamed: same member, same data.
    let ids_before = member_ids(&wd);
    d.etcd_names[1] = "etcd-b".into();
    let (_, r) = step(&wd, &lab, targets, &known_hosts, "platform: an etcd member renamed", &d, &[], only_updates);
    assert_eq!(r.failed(), 0, "{}", r.summary());
    let ids_after = member_ids(&wd);
    let ids = |m: &BTreeMap<String, String>| m.values().cloned().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(ids(&ids_after), ids(&ids_before), "the same members: {ids_before:?} -> {ids_after:?}");
    assert!(ids_after.contains_key("etcd-b"), "{ids_after:?}");

    // 4. keepalived's virtual_router_id.
    d.vrid = 53;
    let (_, r) =
        step(&wd, &lab, targets, &known_hosts, "platform: keepalived virtual_router_id changed", &d, &[], |a| {
            only_updates(a) && a.keys().collect::<Vec<_>>() == ["strata_load_balancer.api"]
        });
    // The holder carries the VIP into the new VRRP group (the others wait, stopped, then
    // join as backups): the VIP never moves, and the issue's bound of one failed probe
    // holds.
    assert!(r.failed() <= 1, "{}", r.summary());

    // 5. The worker replaced: the only replacement, and the API never stops answering.
    let address_of_worker = format!("strata_worker.{WORKER}");
    let replace = format!("-replace={address_of_worker}");
    let (_, r) = step(&wd, &lab, targets, &known_hosts, "platform: a worker replaced", &d, &[&replace], |a| {
        a.len() == 1
            && a.get(&address_of_worker)
                .is_some_and(|x| x.len() == 2 && x.contains(&"delete".to_string()) && x.contains(&"create".to_string()))
    });
    assert_eq!(r.failed(), 0, "{}", r.summary());

    // The data written first is intact.
    let file = sh_ok(&lab, EDGE, &format!("cat {NFS_FILE}"));
    assert_eq!(file.trim(), marker);
    let last = Prober::start(targets());
    std::thread::sleep(Duration::from_secs(1));
    let last = last.stop();
    assert_eq!(last.failed(), 0, "after every change: {}", last.summary());
}

/// Member name to member ID, as the etcd cluster's state last observed them.
fn member_ids(wd: &Workdir) -> BTreeMap<String, String> {
    let etcd = wd.resource_values("strata_etcd_cluster.main").unwrap();
    etcd["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["id"].as_str().unwrap().to_string()))
        .collect()
}
