//! strata_control_plane and strata_worker through real Terraform against systemd lab
//! nodes, with the Kubernetes STAND-INS (acceptance-tests/standins: kubeadm, kubelet,
//! kube-apiserver, kubectl as Debian packages from the lab's apt repository) on a real
//! 3-member strata_etcd_cluster over TLS, behind a real strata_load_balancer VIP
//! (haproxy + keepalived). etcd, haproxy, keepalived, containerd and systemd are real.
//!
//! Five nodes: node1-3 are etcd members, load balancers and control-plane nodes at once
//! (haproxy's frontend is VIP:8443, so it never takes the API servers' 6443), node4-5
//! are workers.

mod k8s_common;

use std::time::Instant;

use k8s_common::*;
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::Workdir;

const WORKERS: [&str; 2] = ["node4", "node5"];

#[test]
fn ha_control_plane_behind_the_vip_with_workers_upgrade_and_adoption_after_state_loss() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 5);
    install_containerd(&lab, &[&CP[..], &WORKERS[..]].concat());
    let booted = started.elapsed();

    let wd = workdir(&lab, &Opts { version: "v1.35.0", workers: &WORKERS, import_from: None, etcd_restore: None });
    wd.apply().unwrap();
    let applied = started.elapsed();
    let ca = output(&wd, "ca");
    wait_ready_through_vip(&lab, &ca);

    // One init on node1, one control-plane join on each of the others, with valid
    // v1beta4 configurations whose endpoint is the VIP.
    let inits = kubeadm_calls(&lab, "node1", &["init"]);
    assert_eq!(inits.len(), 1, "{inits:?}");
    let init_config = inits[0]["config"].as_str().unwrap();
    assert!(init_config.contains("apiVersion: kubeadm.k8s.io/v1beta4"), "{init_config}");
    assert!(init_config.contains(&format!("controlPlaneEndpoint: {}", endpoint(&lab))), "{init_config}");
    assert!(init_config.contains("podSubnet: 10.44.0.0/16"), "{init_config}");
    for n in ["node2", "node3"] {
        let joins = kubeadm_calls(&lab, n, &["join"]);
        assert_eq!(joins.len(), 1, "{n}: {joins:?}");
        let c = joins[0]["config"].as_str().unwrap();
        assert!(c.contains(&format!("apiServerEndpoint: {}", endpoint(&lab))), "{c}");
        assert!(c.contains("controlPlane:") && !c.contains("certificateKey"), "{c}");
        assert!(kubeadm_calls(&lab, n, &["init"]).is_empty(), "{n} must not init");
        assert_eq!(kubeadm_calls(&lab, n, &["config", "validate"]).len(), 1, "{n}: validated before the join");
    }
    let etcd_state = wd.resource_values("strata_etcd_cluster.main").unwrap();
    for n in CP {
        // The etcd client certificate kubeadm's configuration names verifies against the etcd CA.
        let client = sh_ok(&lab, n, "cat /etc/kubernetes/pki/apiserver-etcd-client.crt");
        let (ok, why) = openssl_verify(tmp.path(), etcd_state["ca_certificate"].as_str().unwrap(), &client);
        assert!(ok, "{n}: {why}");
    }

    // The kubeconfig: verifies against the cluster CA with openssl, loads with the
    // official Python client, points at the VIP, and works.
    let kubeconfig = output(&wd, "kubeconfig");
    let (server, kc_ca, cert, key) = kubeconfig_parts(&kubeconfig);
    assert_eq!(server, format!("https://{}", endpoint(&lab)));
    assert_eq!(kc_ca.trim(), ca.trim());
    let (ok, why) = openssl_verify(tmp.path(), &ca, &cert);
    assert!(ok, "{why}");
    let other_ca = rcgen::CertificateParams::default().self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem();
    assert!(!openssl_verify(tmp.path(), &other_ca, &cert).0, "verification must be able to fail");
    let kc_path = tmp.path().join("admin.kubeconfig");
    std::fs::write(&kc_path, &kubeconfig).unwrap();
    assert_eq!(python_client_host(&kc_path), format!("https://{}", endpoint(&lab)));
    let api = https(&ca, Some((&cert, &key)));
    // The CNI manifest was applied (by the real kubectl: its last-applied annotation), with
    // the pod CIDR given to kubeadm.
    let cm: serde_json::Value = api
        .get(format!("https://{}/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg", endpoint(&lab)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let cni = cm["data"]["net-conf.json"].as_str().unwrap_or_default();
    assert!(cni.contains("\"Network\": \"10.44.0.0/16\"") && cni.contains("\"Type\": \"host-gw\""), "{cm}");
    assert!(cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string(), "{cm}");
    let node = |name: &str| -> Option<serde_json::Value> {
        let r = api.get(format!("https://{}/api/v1/nodes/{name}", endpoint(&lab))).send().unwrap();
        (r.status() != 404).then(|| r.json().unwrap())
    };
    // Workers joined with their labels and taints.
    for (i, w) in WORKERS.iter().enumerate() {
        let n = node(w).unwrap_or_else(|| panic!("Node {w} missing"));
        assert_eq!(n["metadata"]["labels"]["env"], "test", "{n}");
        assert_eq!(n["metadata"]["labels"]["example.com/slot"], i.to_string(), "{n}");
        // Beside Kubernetes' own (not-ready: no CNI runs in the lab).
        let taints: Vec<_> = n["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| !t["key"].as_str().unwrap().starts_with("node.kubernetes.io/"))
            .cloned()
            .collect();
        assert_eq!(taints, vec![serde_json::json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})]);
        assert_eq!(kubeadm_calls(&lab, w, &["join"]).len(), 1);
    }
    assert_empty_plan(&wd, "the first apply");

    // Drift: a label changed outside Terraform shows in the plan; apply puts it back.
    let patch = api
        .patch(format!("https://{}/api/v1/nodes/node4", endpoint(&lab)))
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"env":"drifted"}}}"#)
        .send()
        .unwrap();
    assert!(patch.status().is_success());
    assert_eq!(wd.plan_exit_code().unwrap().code, 2, "a drifted label must show in the plan");
    wd.apply().unwrap();
    assert_eq!(node("node4").unwrap()["metadata"]["labels"]["env"], "test");

    // Destroying a worker resets it and deletes its Node.
    let one_worker =
        main_tf(&lab, &Opts { version: "v1.35.0", workers: &["node4"], import_from: None, etcd_restore: None });
    wd.write("main.tf", &one_worker).unwrap();
    wd.apply().unwrap();
    assert_eq!(kubeadm_calls(&lab, "node5", &["reset"]).len(), 1);
    assert!(node("node5").is_none(), "the Node object of a destroyed worker is deleted");
    assert_ne!(sh(&lab, "node5", "test -f /etc/kubernetes/kubelet.conf").0, 0, "reset removed kubelet.conf");
    assert_empty_plan(&wd, "removing a worker");

    // Upgrades: a two-minor jump is refused at plan time; one minor goes through,
    // `upgrade apply` on node1 once, then `upgrade node` on node2 and node3 in turn.
    wd.write(
        "main.tf",
        &main_tf(&lab, &Opts { version: "v1.37.0", workers: &["node4"], import_from: None, etcd_restore: None }),
    )
    .unwrap();
    let refused = wd.plan_exit_code().unwrap();
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("kubernetes_version") && refused.stderr.contains("skips 1 minor"),
        "{}",
        refused.stderr
    );
    wd.write(
        "main.tf",
        &main_tf(&lab, &Opts { version: "v1.36.1", workers: &["node4"], import_from: None, etcd_restore: None }),
    )
    .unwrap();
    wd.apply().unwrap();
    let up_apply = kubeadm_calls(&lab, "node1", &["upgrade", "apply"]);
    assert_eq!(up_apply.len(), 1, "{up_apply:?}");
    assert_eq!(up_apply[0]["argv"][3], "v1.36.1");
    let mut in_order = vec![("node1", up_apply[0].clone())];
    for n in ["node2", "node3"] {
        let up = kubeadm_calls(&lab, n, &["upgrade", "node"]);
        assert_eq!(up.len(), 1, "{n}: {up:?}");
        in_order.push((n, up[0].clone()));
    }
    // Each began after the one before it ended: one node at a time.
    assert_one_after_another(&in_order.iter().map(|(n, c)| (*n, c)).collect::<Vec<_>>());
    assert!(kubeadm_calls(&lab, "node2", &["upgrade", "apply"]).is_empty());
    let version: serde_json::Value =
        https(&ca, None).get(format!("https://{}/version", endpoint(&lab))).send().unwrap().json().unwrap();
    assert_eq!(version["gitVersion"], "v1.36.1");
    assert_empty_plan(&wd, "the upgrade");
    let upgraded = started.elapsed();

    // Lost state without the identity: a new CA is generated and the running control
    // plane is refused, saying why and how to import. (etcd and the load balancer are
    // left out: their own refusal of a foreign etcd CA would come first.)
    let etcd_files: Vec<String> = ["etcd/ca.crt", "apiserver-etcd-client.crt", "apiserver-etcd-client.key"]
        .iter()
        .map(|f| sh_ok(&lab, "node1", &format!("cat /etc/kubernetes/pki/{f}")))
        .collect();
    let stranger = Workdir::new(&provider_dir(), "").unwrap();
    for (f, c) in ["etcd-ca.crt", "etcd-client.crt", "etcd-client.key"].iter().zip(&etcd_files) {
        stranger.write(f, c).unwrap();
    }
    let full = main_tf(&lab, &Opts { version: "v1.36.1", workers: &[], import_from: None, etcd_restore: None });
    let cp_only = full[..full.find("resource \"strata_cluster_secrets\"").unwrap()].to_string()
        + "resource \"strata_cluster_secrets\" \"this\" {\n  cluster_name = \"kubernetes\"\n}\n"
        + &full[full.find("resource \"strata_control_plane\"").unwrap()..full.find("output \"kubeconfig\"").unwrap()]
            .replace(
                "strata_etcd_cluster.main.endpoints",
                &format!("{:?}", CP.iter().map(|n| format!("https://{}:2379", address(&lab, n))).collect::<Vec<_>>()),
            )
            .replace("strata_etcd_cluster.main.ca_certificate", "file(\"etcd-ca.crt\")")
            .replace("strata_etcd_cluster.main.client_certificate", "file(\"etcd-client.crt\")")
            .replace("strata_etcd_cluster.main.client_private_key", "file(\"etcd-client.key\")")
            .replace(CP_DEPENDS_ON, "");
    stranger.write("main.tf", &cp_only).unwrap();
    stranger.write("flannel.yaml", FLANNEL).unwrap();
    let refused = stranger.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    let err = refused.stderr.replace('\n', " ");
    assert!(err.contains("is not ca_cert"), "{}", refused.stderr);
    assert!(
        err.contains("import") && err.contains(&format!("ssh://root@{}", address(&lab, "node1"))),
        "{}",
        refused.stderr
    );
    assert_eq!(kubeadm_calls(&lab, "node1", &["init"]).len(), 1, "the refusal ran no init");

    // Lost state with the identity imported from a control-plane node: everything is
    // adopted, no second init, the kubeconfig's CA is the cluster's.
    std::fs::remove_file(wd.path().join("terraform.tfstate")).unwrap();
    let node1_id = format!("ssh://root@{}", address(&lab, "node1"));
    wd.write(
        "main.tf",
        &main_tf(
            &lab,
            &Opts { version: "v1.36.1", workers: &["node4"], import_from: Some(&node1_id), etcd_restore: None },
        ),
    )
    .unwrap();
    wd.apply().unwrap();
    assert_eq!(kubeadm_calls(&lab, "node1", &["init"]).len(), 1, "adopted: no second init");
    for n in ["node2", "node3", "node4"] {
        assert_eq!(kubeadm_calls(&lab, n, &["join"]).len(), 1, "{n} adopted: no second join");
    }
    assert_eq!(output(&wd, "ca").trim(), ca.trim(), "the imported identity is the cluster's");
    let (_, kc_ca, cert, _) = kubeconfig_parts(&output(&wd, "kubeconfig"));
    assert_eq!(kc_ca.trim(), ca.trim());
    assert!(openssl_verify(tmp.path(), &ca, &cert).0);
    wait_ready_through_vip(&lab, &ca);
    assert_empty_plan(&wd, "the adoption");

    wd.destroy().unwrap();
    for n in CP {
        assert!(!kubeadm_calls(&lab, n, &["reset"]).is_empty(), "{n} reset on destroy");
    }
    eprintln!(
        "timings: lab+containerd {:?}, first apply {:?}, through upgrade {:?}, total {:?}",
        booted,
        applied - booted,
        upgraded,
        started.elapsed()
    );
}
