//! Day-2 changes of a running strata_control_plane, on one platform (node1-3: etcd,
//! load balancer and control plane, as tests/control_plane.rs builds it, with the
//! Kubernetes stand-ins), with the shared prober on the VIP's `/readyz` verified against
//! the cluster CA:
//! - settings fixed at init (cluster_name, pod_cidr) are refused at plan and nothing is
//!   replaced; renaming strata_cluster_secrets keeps the identity;
//! - certificates with a short `certificate_validity`: a wider renewal window plans a
//!   renewal, the apply renews node after node with zero failed probes, and `kubeadm certs
//!   check-expiration` on every node shows the new dates; the kubelet client certificate
//!   kubeadm leaves alone is re-issued when due, and rotation turned off is a warning;
//! - a new SAN and another etcd endpoint list reach every node, one at a time;
//! - a dead control-plane node removed from the configuration does not block the apply.

mod k8s_common;

use std::time::Instant;

use k8s_common::*;
use strata_acceptance_tests::prober::{ProbeTargets, Prober};
use strata_lab::LabGuard;

const POD_CIDR_LINE: &str = "  pod_cidr            = \"10.44.0.0/16\"\n";

/// The platform of k8s_common with extra control-plane settings and the secrets' name.
fn config(lab: &LabGuard, cp_extra: &str, secrets_name: &str) -> String {
    let tf = main_tf(lab, &Opts { version: "v1.35.0", workers: &[], import_from: None, etcd_restore: None });
    assert!(tf.contains(POD_CIDR_LINE));
    tf.replace(POD_CIDR_LINE, &format!("{POD_CIDR_LINE}{cp_extra}"))
        .replace("  cluster_name = \"kubernetes\"\n", &format!("  cluster_name = \"{secrets_name}\"\n"))
}

fn certs(validity: &str, renew_days: u32) -> String {
    format!("  certificate_validity = \"{validity}\"\n  certificates_renew_before_days = {renew_days}\n")
}

/// Seconds from now until an RFC 3339 time.
fn seconds_until(rfc3339: &str) -> i64 {
    let out = std::process::Command::new("date").args(["-u", "-d", rfc3339, "+%s"]).output().unwrap();
    let then: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{rfc3339}"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    then - now
}

/// `kubeadm certs check-expiration -o json` on `node`: (name, days left) of each
/// certificate, every one present.
fn check_expiration(lab: &LabGuard, node: &str) -> Vec<(String, i64)> {
    let out = sh_ok(lab, node, "kubeadm certs check-expiration -o json");
    let v: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !(c["name"] == "super-admin.conf" && c["missing"] == true))
        .map(|c| {
            assert_eq!(c["missing"], false, "{node}: {c}");
            (c["name"].as_str().unwrap().to_string(), c["residualTime"].as_i64().unwrap() / 1_000_000_000 / 86_400)
        })
        .collect()
}

const KUBELET_CLIENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// Days left on the kubelet's client certificate on `node` (from its store).
fn kubelet_client_days(lab: &LabGuard, node: &str) -> i64 {
    use std::io::Write;
    let pem = sh_ok(lab, node, &format!("cat {KUBELET_CLIENT}"));
    let mut openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-enddate"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    openssl.stdin.take().unwrap().write_all(pem.as_bytes()).unwrap();
    let out = openssl.wait_with_output().unwrap();
    let end = String::from_utf8_lossy(&out.stdout).into_owned();
    let end = end.trim().trim_start_matches("notAfter=");
    let out = std::process::Command::new("date").args(["-u", "-d", end, "+%s"]).output().unwrap();
    let then: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{end}"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    (then - now) / 86_400
}

#[test]
fn running_control_plane_refuses_init_settings_and_renews_certificates_node_by_node() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = lab(&tmp.path().join("lab"), 3);
    install_containerd(&lab, &CP);
    let wd = workdir(&lab, &Opts { version: "v1.35.0", workers: &[], import_from: None, etcd_restore: None });
    // Leaf certificates for 30 days, renewed 20 days ahead.
    wd.write("main.tf", &config(&lab, &certs("720h", 20), "kubernetes")).unwrap();
    wd.apply().unwrap();
    let created = started.elapsed();
    let ca = output(&wd, "ca");
    wait_ready_through_vip(&lab, &ca);
    assert_empty_plan(&wd, "the first apply");
    let cp = wd.resource_values("strata_control_plane.k8s").unwrap();
    let left = seconds_until(cp["certificates_expire_at"].as_str().unwrap());
    assert!(
        (29 * 86_400..=30 * 86_400).contains(&left),
        "certificates_expire_at {} is not in 30 days",
        cp["certificates_expire_at"]
    );
    for n in CP {
        let list = check_expiration(&lab, n);
        assert!(list.len() >= 6, "{n}: {list:?}");
        assert!(list.iter().all(|(_, d)| *d == 29), "{n}: certificateValidityPeriod 720h: {list:?}");
        let kubelet = sh_ok(&lab, n, "cat /var/lib/kubelet/config.yaml");
        assert!(kubelet.contains("rotateCertificates: true"), "{n}: kubelet client certificate rotation: {kubelet}");
    }
    // node1's kubelet client certificate is kubeadm init's (kubelet.conf, 30 days, moved
    // into the kubelet's store); node2's and node3's came from their TLS bootstrap (a CSR
    // the cluster signs for a year): only node1's is due in the renewal below.
    assert_eq!(kubelet_client_days(&lab, "node1"), 29);
    let node2_kubelet_client = sh_ok(&lab, "node2", &format!("cat {KUBELET_CLIENT}"));
    assert!(kubelet_client_days(&lab, "node2") > 300);

    // Settings fixed at init: refused at plan, saying why and what to do; nothing replaced.
    for (extra, attr) in [("  cluster_name = \"prod\"\n", "cluster_name"), ("", "pod_cidr")] {
        let mut tf = config(&lab, &format!("{}{extra}", certs("720h", 20)), "kubernetes");
        if attr == "pod_cidr" {
            tf = tf.replace(POD_CIDR_LINE, "  pod_cidr            = \"10.45.0.0/16\"\n");
        }
        wd.write("main.tf", &tf).unwrap();
        let refused = wd.plan_exit_code().unwrap();
        assert_eq!(refused.code, 1, "{attr}: {}{}", refused.stdout, refused.stderr);
        let err = refused.stderr.replace('\n', " ");
        assert!(err.contains(&format!("{attr} cannot change on a running cluster")), "{}", refused.stderr);
        assert!(err.contains("kubeadm reset -f") && err.contains("Keep"), "{}", refused.stderr);
        let apply = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
        assert_eq!(apply.code, 1, "{attr}: the apply is refused too: {}", apply.stdout);
    }
    // A flag Strata sets from another attribute: refused at plan, naming both.
    let tf = config(
        &lab,
        &format!("{}  api_server_extra_args = {{ \"etcd-servers\" = \"https://10.9.9.9:2379\" }}\n", certs("720h", 20)),
        "kubernetes",
    );
    wd.write("main.tf", &tf).unwrap();
    let refused = wd.plan_exit_code().unwrap();
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    let err = refused.stderr.replace('\n', " ");
    assert!(err.contains("api_server_extra_args") && err.contains("etcd.endpoints"), "{}", refused.stderr);
    // Renaming the identity: an in-place update that keeps every key.
    wd.write("main.tf", &config(&lab, &certs("720h", 20), "prod")).unwrap();
    let plan = wd.run(&["plan", "-input=false"]).unwrap();
    assert!(plan.stdout.contains("strata_cluster_secrets.this will be updated in-place"), "{}", plan.stdout);
    assert!(
        !plan.stdout.contains("must be replaced") && plan.stdout.contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    wd.apply().unwrap();
    assert_eq!(output(&wd, "ca"), ca, "the cluster CA is kept");
    for n in CP {
        assert!(kubeadm_calls(&lab, n, &["reset"]).is_empty(), "{n}: nothing was reset");
    }
    assert_eq!(kubeadm_calls(&lab, "node1", &["init"]).len(), 1, "no second init");
    assert_empty_plan(&wd, "the rename");

    // Renewal: 90-day certificates from now on, renewed 45 days ahead: the 30-day ones
    // are due. The plan shows it; the apply renews node after node, the VIP answering.
    // node3's kubelet with client certificate rotation turned off: a warning naming it.
    let kubeconfig = output(&wd, "kubeconfig");
    sh_ok(
        &lab,
        "node3",
        "sed -i 's/^rotateCertificates: true/rotateCertificates: false/' /var/lib/kubelet/config.yaml && \
         systemctl restart kubelet",
    );
    wd.write("main.tf", &config(&lab, &certs("2160h", 45), "prod")).unwrap();
    let plan = wd.run(&["plan", "-input=false"]).unwrap();
    assert!(
        plan.stdout.contains("certificates_expire_at") && plan.stdout.contains("(known after apply)"),
        "{}",
        plan.stdout
    );
    let said = format!("{}{}", plan.stdout, plan.stderr).replace('\n', " ");
    assert!(said.contains("Kubelet client certificate rotation is off on control-plane node node3"), "{said}");
    assert!(!said.contains("rotation is off on control-plane node node1"), "{said}");
    let prober = Prober::start(ProbeTargets { port: LB_PORT, ..ProbeTargets::readyz(&vip(&lab), &ca) });
    let t = Instant::now();
    wd.apply().unwrap();
    let renew_apply = t.elapsed();
    let report = prober.stop();
    report.record("certificate renewal (3 control-plane nodes)", renew_apply);
    eprintln!("renewal: apply {renew_apply:?}, {}", report.summary());
    // Zero: one node at a time, haproxy retries a refused connect on another server
    // (retries + redispatch), and a stopping API server finishes the requests under way.
    assert_eq!(report.failed(), 0, "{}", report.summary());
    let time = |c: &serde_json::Value| c["time"].as_str().unwrap().to_string();
    let mut last = String::new();
    for n in CP {
        let renewed = kubeadm_calls(&lab, n, &["certs", "renew"]);
        assert_eq!(renewed.len(), 1, "{n}: {renewed:?}");
        assert_eq!(renewed[0]["argv"][3], "all");
        assert!(time(&renewed[0]) > last, "{n} renewed after the node before it");
        last = time(&renewed[0]);
        let list = check_expiration(&lab, n);
        assert!(list.iter().all(|(_, d)| *d == 89), "{n}: renewed for 2160h: {list:?}");
    }
    assert_eq!(output(&wd, "kubeconfig"), kubeconfig, "the admin kubeconfig output is not touched");
    // node1's kubelet client certificate, which `kubeadm certs renew` leaves alone, was
    // re-issued for 90 days into the kubelet's store, and the kubelet authenticates with it.
    assert_eq!(kubelet_client_days(&lab, "node1"), 89);
    let link = sh_ok(&lab, "node1", &format!("readlink {KUBELET_CLIENT}"));
    assert!(link.trim().starts_with("/var/lib/kubelet/pki/kubelet-client-2"), "{link}");
    let kubelet_conf = sh_ok(&lab, "node1", "cat /etc/kubernetes/kubelet.conf");
    assert!(
        !kubelet_conf.contains("client-certificate-data") && kubelet_conf.contains(KUBELET_CLIENT),
        "{kubelet_conf}"
    );
    let me = sh_ok(
        &lab,
        "node1",
        "kubectl --kubeconfig /etc/kubernetes/kubelet.conf get node node1 -o jsonpath='{.metadata.name}'",
    );
    assert_eq!(me.trim(), "node1");
    assert_eq!(sh_ok(&lab, "node2", &format!("cat {KUBELET_CLIENT}")), node2_kubelet_client, "node2's was not due");
    let cp = wd.resource_values("strata_control_plane.k8s").unwrap();
    let left = seconds_until(cp["certificates_expire_at"].as_str().unwrap());
    assert!((89 * 86_400..=90 * 86_400).contains(&left), "{}", cp["certificates_expire_at"]);
    wait_ready_through_vip(&lab, &ca);
    assert_empty_plan(&wd, "the renewal");

    // Reconfiguration: a new SAN, the API servers moved to another etcd endpoint list
    // (node3 and node2 only) and an extra API server flag reach every node, one at a time.
    let etcd: Vec<String> = ["node3", "node2"].iter().map(|n| format!("https://{}:2379", address(&lab, n))).collect();
    let extra = "  cert_sans = [\"api.example.org\"]\n  api_server_extra_args = { \"audit-log-maxage\" = \"7\" }\n";
    let tf = config(&lab, &format!("{}{extra}", certs("2160h", 45)), "prod")
        .replace("    endpoints   = strata_etcd_cluster.main.endpoints\n", &format!("    endpoints   = {etcd:?}\n"));
    wd.write("main.tf", &tf).unwrap();
    let prober = Prober::start(ProbeTargets { port: LB_PORT, ..ProbeTargets::readyz(&vip(&lab), &ca) });
    let t = Instant::now();
    wd.apply().unwrap();
    let reconfig_apply = t.elapsed();
    let report = prober.stop();
    report.record("new SAN + etcd endpoints (3 control-plane nodes)", reconfig_apply);
    eprintln!("reconfiguration: apply {reconfig_apply:?}, {}", report.summary());
    assert_eq!(report.failed(), 0, "{}", report.summary());
    let mut last = String::new();
    for n in CP {
        let phase = kubeadm_calls(&lab, n, &["init", "phase", "certs", "apiserver"]);
        assert_eq!(phase.len(), 1, "{n}: {phase:?}");
        assert!(time(&phase[0]) > last, "{n} reconfigured after the node before it");
        last = time(&phase[0]);
        let crt = sh_ok(&lab, n, "cat /etc/kubernetes/pki/apiserver.crt");
        std::fs::write(tmp.path().join("apiserver.crt"), &crt).unwrap();
        let sans = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(tmp.path().join("apiserver.crt"))
            .output()
            .unwrap();
        let sans = String::from_utf8_lossy(&sans.stdout);
        assert!(sans.contains("DNS:api.example.org"), "{n}: the new SAN in apiserver.crt: {sans}");
        assert!(sans.contains(&vip(&lab)), "{n}: the endpoint stays a SAN: {sans}");
        let manifest = sh_ok(&lab, n, "cat /etc/kubernetes/manifests/kube-apiserver.yaml");
        assert!(manifest.contains(&format!("--etcd-servers={}", etcd.join(","))), "{n}: {manifest}");
        assert!(manifest.contains("--audit-log-maxage=7"), "{n}: the extra flag in the manifest: {manifest}");
    }
    let (_, _, cert, key) = kubeconfig_parts(&output(&wd, "kubeconfig"));
    let cm: serde_json::Value = https(&ca, Some((&cert, &key)))
        .get(format!("https://{}/api/v1/namespaces/kube-system/configmaps/kubeadm-config", endpoint(&lab)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let stored = cm["data"]["ClusterConfiguration"].as_str().unwrap();
    assert!(stored.contains("api.example.org") && stored.contains(&etcd[0]), "kubeadm-config: {stored}");
    assert!(stored.contains("audit-log-maxage"), "kubeadm-config: {stored}");
    wait_ready_through_vip(&lab, &ca);
    assert_empty_plan(&wd, "the reconfiguration");

    // Repair: node3 dies and is taken out of the control plane (its etcd member and load
    // balancer node stay: that is those resources' repair). Unreachable, it does not
    // block the apply; its Node object is deleted.
    let node3 = address(&lab, "node3");
    // The control plane on its own: the etcd cluster (a dependency) would otherwise be
    // applied first and stop at its dead member.
    for (f, src) in [
        ("etcd-ca.crt", "etcd/ca.crt"),
        ("etcd-client.crt", "apiserver-etcd-client.crt"),
        ("etcd-client.key", "apiserver-etcd-client.key"),
    ] {
        wd.write(f, &sh_ok(&lab, "node1", &format!("cat /etc/kubernetes/pki/{src}"))).unwrap();
    }
    lab.kill_node("node3").unwrap();
    let extra = "  cert_sans = [\"api.example.org\"]\n  api_server_extra_args = { \"audit-log-maxage\" = \"7\" }\n";
    let tf = config(&lab, &format!("{}{extra}", certs("2160h", 45)), "prod")
        .replace(
            &format!("  node {{\n    name    = \"node3\"\n    address = \"{node3}\"\n    ssh {{ host = \"{node3}\" }}\n  }}\n"),
            "",
        )
        .replace(
            "    endpoints   = strata_etcd_cluster.main.endpoints\n",
            &format!("    endpoints   = {:?}\n", [&etcd[1]]),
        )
        .replace("strata_etcd_cluster.main.ca_certificate", "file(\"etcd-ca.crt\")")
        .replace("strata_etcd_cluster.main.client_certificate", "file(\"etcd-client.crt\")")
        .replace("strata_etcd_cluster.main.client_private_key", "file(\"etcd-client.key\")")
        .replace(CP_DEPENDS_ON, "");
    assert!(!tf[tf.find("resource \"strata_control_plane\"").unwrap()..].contains("\"node3\""), "{tf}");
    wd.write("main.tf", &tf).unwrap();
    let t = Instant::now();
    let repaired = wd.run(&["apply", "-auto-approve", "-input=false", "-target=strata_control_plane.k8s"]).unwrap();
    let repair_apply = t.elapsed();
    assert_eq!(repaired.code, 0, "{}{}", repaired.stdout, repaired.stderr);
    assert!(
        repaired.stdout.contains("does not answer") || repaired.stderr.contains("does not answer"),
        "{}",
        repaired.stdout
    );
    let (_, _, cert, key) = kubeconfig_parts(&output(&wd, "kubeconfig"));
    let gone =
        https(&ca, Some((&cert, &key))).get(format!("https://{}/api/v1/nodes/node3", endpoint(&lab))).send().unwrap();
    assert_eq!(gone.status(), 404, "the removed node's Node object is deleted");
    let cp = wd.resource_values("strata_control_plane.k8s").unwrap();
    assert_eq!(cp["nodes"].as_array().unwrap().len(), 2, "{}", cp["nodes"]);
    wait_ready_through_vip(&lab, &ca);
    let plan = wd.run(&["plan", "-detailed-exitcode", "-input=false", "-target=strata_control_plane.k8s"]).unwrap();
    assert_eq!(plan.code, 0, "the control plane's plan after the repair: {}{}", plan.stdout, plan.stderr);
    eprintln!(
        "timings: lab+create {created:?}, renewal apply {renew_apply:?}, reconfiguration apply {reconfig_apply:?}, \
         repair apply {repair_apply:?}, total {:?}",
        started.elapsed()
    );
}
