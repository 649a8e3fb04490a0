//! The disaster-recovery rebuild of the Kubernetes platform: every machine is lost, and
//! one plain `terraform apply` (no -replace, no -refresh=false) with the etcd snapshot
//! configured brings back etcd with its data, the control plane with the same identity
//! and admin kubeconfig, the load balancer's VIP and the worker.
//!
//! Four nodes: node1-3 are etcd members, load balancers and control-plane nodes at once
//! (as in control_plane.rs, with the Kubernetes STAND-INS), node4 is the worker.

mod k8s_common;

use std::time::{Duration, Instant};

use k8s_common::*;
use strata_lab::LabGuard;

const WORKER: &str = "node4";
const NODES: [&str; 4] = ["node1", "node2", "node3", WORKER];

/// etcdctl on `node` with its member's health-check client certificate.
fn etcdctl(lab: &LabGuard, node: &str, args: &str) -> (i32, String, String) {
    sh(
        lab,
        node,
        &format!(
            "ETCDCTL_API=3 etcdctl --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt \
             --key=/etc/etcd/pki/healthcheck-client.key --endpoints=https://{}:2379 --dial-timeout=3s \
             --command-timeout=10s {args}",
            address(lab, node)
        ),
    )
}

/// The SHA-256 of the kubelet's current client certificate and key on `node` (compared,
/// never printed).
fn kubelet_cert(lab: &LabGuard, node: &str) -> String {
    sh_ok(lab, node, "sha256sum < /var/lib/kubelet/pki/kubelet-client-current.pem").trim().to_string()
}

#[test]
fn after_every_machine_is_lost_one_apply_rebuilds_etcd_the_control_plane_the_vip_and_the_worker() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = lab(&tmp.path().join("lab"), NODES.len());
    install_containerd(&lab, &NODES);
    let booted = started.elapsed();

    let opts = Opts { version: "v1.35.0", workers: &[WORKER], import_from: None, etcd_restore: None };
    let wd = workdir(&lab, &opts);
    wd.apply().unwrap();
    let ca = output(&wd, "ca");
    let kubeconfig = output(&wd, "kubeconfig");
    let join = wd.resource_values("strata_control_plane.k8s").unwrap()["join"].clone();
    assert!(join["token"].is_string(), "{join}");
    let applied = started.elapsed();
    // The Nodes as the first machines registered them: after the rebuild, each must be a
    // new registration (a new uid), which only a real rejoin produces.
    let (_, _, cert, key) = kubeconfig_parts(&kubeconfig);
    let api = https(&ca, Some((&cert, &key)));
    let get_node = |lab: &LabGuard, n: &str| -> serde_json::Value {
        api.get(format!("https://{}/api/v1/nodes/{n}", endpoint(lab)))
            .send()
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .unwrap()
    };
    // node1 is where init runs; the others join.
    let joining = &NODES[1..];
    // Flannel's configuration on every node, so every Node is Ready, as in a running
    // cluster; the snapshot below keeps them so.
    write_cni_config(&lab, &NODES);
    let t = Instant::now();
    while !NODES.iter().all(|n| {
        get_node(&lab, n)["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    }) {
        assert!(t.elapsed() < Duration::from_secs(30), "the Nodes did not turn Ready with a CNI configuration");
        std::thread::sleep(Duration::from_millis(500));
    }
    let first_uids: Vec<String> =
        joining.iter().map(|n| get_node(&lab, n)["metadata"]["uid"].as_str().unwrap().to_string()).collect();
    let first_certs: Vec<String> = joining.iter().map(|n| kubelet_cert(&lab, n)).collect();

    // The backups: a key written to etcd, then a snapshot copied off the lab (standing
    // for off-site storage).
    let (code, out, err) = etcdctl(&lab, "node1", "put rebuild/key survived");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = etcdctl(&lab, "node1", "snapshot save /root/snap.db");
    assert_eq!(code, 0, "{out}{err}");
    let offsite = tmp.path().join("offsite");
    std::fs::create_dir_all(&offsite).unwrap();
    let snapshot = offsite.join("etcd.db");
    std::fs::write(&snapshot, lab.exec("node1", &["cat", "/root/snap.db"]).unwrap().stdout).unwrap();

    // The disaster: every machine gone. The refresh does not fail: the load balancer
    // and the worker are planned again; etcd (a cluster the state knows, whose data is
    // lost) and the control plane keep their identity and are planned as updates.
    for n in NODES {
        lab.kill_node(n).unwrap();
    }
    let plan = wd.run(&["plan", "-detailed-exitcode", "-input=false", "-no-color"]).unwrap();
    assert_eq!(plan.code, 2, "changes planned, no error:\n{}{}", plan.stdout, plan.stderr);
    let worker = format!("strata_worker.{WORKER} will be created");
    let expected = [
        "strata_etcd_cluster.main will be updated in-place",
        "strata_load_balancer.api will be created",
        &worker,
        // Kept, with its identity: rebuilt in place.
        "strata_control_plane.k8s will be updated in-place",
    ];
    let missing: Vec<&str> = expected.into_iter().filter(|e| !plan.stdout.contains(e)).collect();
    assert!(missing.is_empty(), "not planned: {missing:?}\n{}", plan.stdout);
    assert!(plan.stdout.contains("Node does not answer"), "the warning says why:\n{}", plan.stdout);
    let lost = started.elapsed();

    // Blank machines at the same addresses (new disks, new host keys). containerd is
    // what strata_node_config installs in a full configuration (examples/ha-cluster).
    for n in NODES {
        lab.recreate_node(n, Duration::from_secs(120)).unwrap();
    }
    let recreated_wall = time::OffsetDateTime::now_utc();
    install_containerd(&lab, &NODES);
    let recreated = started.elapsed();

    // One plain apply with the snapshot as the restore source.
    let snapshot_path = snapshot.display().to_string();
    let restore = Opts { etcd_restore: Some(&snapshot_path), ..opts };
    wd.write("main.tf", &main_tf(&lab, &restore)).unwrap();
    wd.apply().unwrap();
    let rebuilt = started.elapsed();

    let (code, out, err) = etcdctl(&lab, "node2", "get rebuild/key --print-value-only");
    assert_eq!((code, out.trim()), (0, "survived"), "the key is back from the snapshot: {err}");
    wait_ready_through_vip(&lab, &ca);
    // Compared without printing: it holds the admin client key.
    assert!(output(&wd, "kubeconfig") == kubeconfig, "the admin kubeconfig is not byte-identical");
    assert_eq!(output(&wd, "ca"), ca);
    let cp = wd.resource_values("strata_control_plane.k8s").unwrap();
    assert_eq!(cp["join"], join, "the join token restored with etcd is kept");
    // kubeadm init ran again on node1's new disk (and joins on the others).
    assert_eq!(kubeadm_calls(&lab, "node1", &["init"]).len(), 1);
    for n in ["node2", "node3", WORKER] {
        assert_eq!(kubeadm_calls(&lab, n, &["join"]).len(), 1, "{n} joined again");
    }
    // The worker's Node is there, read with the kept kubeconfig through the VIP.
    let node = get_node(&lab, WORKER);
    assert_eq!(node["metadata"]["labels"]["env"], "test", "{node}");
    // The restored etcd brought the old Nodes back marked Ready, and kubeadm refuses to
    // join over a Ready Node of the name: the joined nodes' Nodes are new registrations
    // (the provider deleted the stale ones; nothing here deletes a Node), created after
    // the machines were, by kubelets with new client certificates (TLS bootstrap).
    let recreated_at = recreated_wall.replace_nanosecond(0).unwrap();
    for (i, n) in joining.iter().enumerate() {
        let now = get_node(&lab, n);
        assert_ne!(
            now["metadata"]["uid"].as_str().unwrap(),
            first_uids[i],
            "{n}: the Node from before the loss is still there"
        );
        let created = time::OffsetDateTime::parse(
            now["metadata"]["creationTimestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(
            created >= recreated_at,
            "{n}: Node created {created}, before the machines were re-created ({recreated_at})"
        );
        assert_ne!(
            kubelet_cert(&lab, n),
            first_certs[i],
            "{n}: the kubelet's client certificate is the one from before"
        );
    }
    assert_eq!(wd.resource_values(&format!("strata_worker.{WORKER}")).unwrap()["joined"], true);
    assert_empty_plan(&wd, "the rebuild");

    eprintln!(
        "timings: lab+containerd {:?}, first apply {:?}, loss and plan {:?}, re-creating the machines {:?}, \
         rebuild apply {:?}, total {:?}",
        booted,
        applied - booted,
        lost - applied,
        recreated - lost,
        rebuilt - recreated,
        started.elapsed()
    );
}
