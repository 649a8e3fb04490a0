//! The Kubernetes stand-ins on real lab nodes, driven directly (no Terraform): packages
//! from the lab's apt repository, a real etcd over TLS, kubeadm init / join (control
//! plane and worker) / upgrade / reset, the API server answering over TLS verified
//! against the cluster CA, and kubeadm's refusals naming the field.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
use strata_acceptance_tests::standins::standins_dir;
use strata_lab::{LabGuard, PveMode, StandinsMode, UpOptions};

fn lab(dir: &Path, nodes: usize) -> LabGuard {
    let mut opts = UpOptions::new(dir);
    opts.nodes = nodes;
    opts.pve = PveMode::Disabled;
    opts.standins = StandinsMode::Dir(standins_dir());
    LabGuard::up(&opts).expect("lab up (needs root; builds the node image on first use)")
}

fn sh(lab: &LabGuard, node: &str, script: &str) -> (i32, String, String) {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn sh_ok(lab: &LabGuard, node: &str, script: &str) -> String {
    let (code, out, err) = sh(lab, node, script);
    if code != 0 {
        let (_, journal, _) = sh(lab, node, "journalctl -n 40 --no-pager");
        panic!("{node}: {script} exited {code}: {out}{err}\n--- journal:\n{journal}");
    }
    out
}

fn put_file(lab: &LabGuard, node: &str, path: &str, content: &str) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    sh_ok(lab, node, &format!("mkdir -p \"$(dirname {path})\" && echo {b64} | base64 -d > {path} && chmod 600 {path}"));
}

#[derive(Clone)]
struct Pair {
    cert: String,
    key: String,
}

fn ca(cn: &str) -> (Pair, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    let cert = p.self_signed(&key).unwrap().pem();
    let pair = Pair { cert: cert.clone(), key: key.serialize_pem() };
    (pair, Issuer::from_ca_cert_pem(&cert, key).unwrap())
}

fn leaf(issuer: &Issuer<'static, KeyPair>, cn: &str, ips: &[&str], eku: &[ExtendedKeyUsagePurpose]) -> Pair {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = ips.iter().map(|i| SanType::IpAddress(i.parse().unwrap())).collect();
    p.extended_key_usages = eku.to_vec();
    Pair { cert: p.signed_by(&key, issuer).unwrap().pem(), key: key.serialize_pem() }
}

/// The cluster identity the provider would place on control-plane nodes.
#[derive(Clone)]
struct ClusterPki {
    ca: Pair,
    front_proxy: Pair,
    sa_key: String,
    sa_pub: String,
    etcd_ca: Pair,
    etcd_client: Pair,
}

fn place_pki(lab: &LabGuard, node: &str, p: &ClusterPki) {
    let d = "/etc/kubernetes/pki";
    for (f, c) in [
        ("ca.crt", &p.ca.cert),
        ("ca.key", &p.ca.key),
        ("front-proxy-ca.crt", &p.front_proxy.cert),
        ("front-proxy-ca.key", &p.front_proxy.key),
        ("sa.key", &p.sa_key),
        ("sa.pub", &p.sa_pub),
        ("etcd/ca.crt", &p.etcd_ca.cert),
        ("apiserver-etcd-client.crt", &p.etcd_client.cert),
        ("apiserver-etcd-client.key", &p.etcd_client.key),
    ] {
        put_file(lab, node, &format!("{d}/{f}"), c);
    }
}

fn cluster_config(endpoint: &str, etcd: &str, version: &str, pod: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n\
         controlPlaneEndpoint: {endpoint}\nnetworking:\n  podSubnet: {pod}\n  serviceSubnet: 10.96.0.0/12\n  dnsDomain: cluster.local\n\
         apiServer:\n  certSANs: [\"{host}\"]\n\
         etcd:\n  external:\n    endpoints: [\"{etcd}\"]\n    caFile: /etc/kubernetes/pki/etcd/ca.crt\n\
         \x20   certFile: /etc/kubernetes/pki/apiserver-etcd-client.crt\n    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key\n",
        host = endpoint.split(':').next().unwrap()
    )
}

fn init_config(node: &str, address: &str, token: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: {token}\n  ttl: 1h0m0s\n\
         nodeRegistration:\n  name: {node}\n  criSocket: unix:///run/containerd/containerd.sock\n  kubeletExtraArgs:\n  - name: node-ip\n    value: {address}\n\
         localAPIEndpoint:\n  advertiseAddress: {address}\n  bindPort: 6443\n---\n"
    )
}

fn join_config(node: &str, endpoint: &str, token: &str, hash: &str, control_plane: Option<&str>) -> String {
    let mut s = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: {node}\n  criSocket: unix:///run/containerd/containerd.sock\n\
         \x20 taints:\n  - key: dedicated\n    value: db\n    effect: NoSchedule\n\
         discovery:\n  bootstrapToken:\n    apiServerEndpoint: {endpoint}\n    token: {token}\n    caCertHashes: [\"{hash}\"]\n"
    );
    if let Some(addr) = control_plane {
        s.push_str(&format!("controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: {addr}\n    bindPort: 6443\n"));
    }
    s
}

fn https(ca_pem: &str, client: Option<&Pair>) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5));
    if let Some(c) = client {
        b = b.identity(reqwest::Identity::from_pem(format!("{}\n{}", c.cert, c.key).as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn git_version(client: &reqwest::blocking::Client, addr: &str) -> String {
    let v: serde_json::Value = client.get(format!("https://{addr}:6443/version")).send().unwrap().json().unwrap();
    v["gitVersion"].as_str().unwrap().to_string()
}

fn wait_version(client: &reqwest::blocking::Client, addr: &str, want: &str) {
    let start = Instant::now();
    loop {
        if client
            .get(format!("https://{addr}:6443/version"))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .is_some_and(|v| v["gitVersion"] == want)
        {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{addr} never reported {want}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn standins_init_join_upgrade_and_reset_on_lab_nodes() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 3);
    let addr: Vec<String> = lab.nodes().iter().map(|n| n.address.clone()).collect();
    let (n1, n2) = (addr[0].as_str(), addr[1].as_str());

    // Packages: containerd and etcd are Debian's; kubeadm/kubelet/kubectl the stand-ins.
    std::thread::scope(|s| {
        for (i, node) in ["node1", "node2", "node3"].iter().enumerate() {
            let lab = &lab;
            s.spawn(move || {
                let etcd = if i == 0 { " etcd-server" } else { "" };
                sh_ok(lab, node, &format!(
                    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd kubeadm=1.35.0-1.1 kubelet=1.35.0-1.1 kubectl=1.35.0-1.1{etcd} >/dev/null"
                ));
            });
        }
    });
    // What an installation sets before kubeadm (strata_node_config's sysctl in the
    // provider's examples): IPv4 forwarding, which kubeadm's preflight requires.
    // node1 starts without it (a fresh network namespace's 0, set here so the check
    // bites whatever the host has): kubeadm init must refuse it first.
    for node in ["node2", "node3"] {
        sh_ok(&lab, node, "sysctl -qw net.ipv4.ip_forward=1");
    }
    sh_ok(&lab, "node1", "sysctl -qw net.ipv4.ip_forward=0");
    assert_eq!(sh_ok(&lab, "node1", "kubeadm version -o short").trim(), "v1.35.0");
    // Before kubeadm ran, the kubelet crash-loops (no config), as the real one does.
    let (_, state, _) = sh(&lab, "node1", "systemctl is-active kubelet");
    assert_ne!(state.trim(), "active", "kubelet should not run without its config");

    // A real etcd on node1 with TLS and client-certificate authentication.
    let (etcd_ca, etcd_issuer) = ca("etcd-ca");
    // The server certificate has serverAuth only, as strata_etcd_cluster issues it.
    let server = leaf(&etcd_issuer, "etcd", &[n1, "127.0.0.1"], &[ExtendedKeyUsagePurpose::ServerAuth]);
    let etcd_client = leaf(&etcd_issuer, "kube-apiserver-etcd-client", &[], &[ExtendedKeyUsagePurpose::ClientAuth]);
    for (f, c) in [("ca.crt", &etcd_ca.cert), ("server.crt", &server.cert), ("server.key", &server.key)] {
        put_file(&lab, "node1", &format!("/etc/etcd-lab/{f}"), c);
    }
    sh_ok(&lab, "node1", &format!(
        "systemctl disable --now etcd >/dev/null 2>&1; systemd-run --unit etcd-lab --quiet etcd --name n1 --data-dir /var/lib/etcd-lab \
         --listen-client-urls https://{n1}:2379 --advertise-client-urls https://{n1}:2379 --listen-peer-urls http://127.0.0.1:12380 \
         --initial-advertise-peer-urls http://127.0.0.1:12380 --initial-cluster n1=http://127.0.0.1:12380 \
         --cert-file /etc/etcd-lab/server.crt --key-file /etc/etcd-lab/server.key --trusted-ca-file /etc/etcd-lab/ca.crt --client-cert-auth"
    ));
    let etcd = format!("https://{n1}:2379");

    let (k8s_ca, _) = ca("kubernetes");
    let (front_proxy, _) = ca("front-proxy-ca");
    let sa = KeyPair::generate().unwrap();
    let pki = ClusterPki {
        ca: k8s_ca,
        front_proxy,
        sa_key: sa.serialize_pem(),
        sa_pub: sa.public_key_pem(),
        etcd_ca,
        etcd_client,
    };
    let hash = {
        use sha2::Digest;
        let der = pem_der(&pki.ca.cert);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(cert.public_key().raw)))
    };
    place_pki(&lab, "node1", &pki);
    // node2 first gets another cluster's CA: its control-plane join must be refused.
    let (other_ca, _) = ca("kubernetes");
    place_pki(&lab, "node2", &ClusterPki { ca: other_ca, ..pki.clone() });
    let endpoint = format!("{n1}:6443");
    let token = "abcdef.0123456789abcdef";
    let cfg = "/etc/kubernetes/strata/kubeadm-config.yaml";

    // Bad input is refused naming the field, before anything is written.
    put_file(
        &lab,
        "node1",
        "/tmp/bad.yaml",
        &format!("{}{}", init_config("node1", n1, token), cluster_config(&endpoint, &etcd, "v1.34.3", "10.96.0.0/16")),
    );
    let (code, _, err) = sh(&lab, "node1", "kubeadm init --config /tmp/bad.yaml");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("networking.podSubnet: Invalid value: \"10.96.0.0/16\""), "{err}");
    let (code, _, err) = sh(
        &lab,
        "node1",
        "sed -i 's/podSubnet/podSubnett/' /tmp/bad.yaml && kubeadm config validate --config /tmp/bad.yaml",
    );
    assert_eq!(code, 1);
    assert!(err.contains("strict decoding error: unknown field \"networking.podSubnett\""), "{err}");
    assert!(sh_ok(&lab, "node1", "ls /etc/kubernetes")
        .trim()
        .lines()
        .all(|l| l == "pki" || l == "strata" || l == "manifests"));

    // init on node1 at v1.34.3 (kubeadm 1.35 deploys one minor older, like the real one).
    put_file(
        &lab,
        "node1",
        cfg,
        &format!("{}{}", init_config("node1", n1, token), cluster_config(&endpoint, &etcd, "v1.34.3", "10.244.0.0/16")),
    );
    // Without IPv4 forwarding, kubeadm's preflight refuses the init (an error, as
    // kubeadm's FileContentCheck on /proc/sys/net/ipv4/ip_forward), before anything is written.
    let (code, _, err) = sh(&lab, "node1", &format!("kubeadm init --config {cfg}"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"
        ),
        "{err}"
    );
    assert_ne!(sh(&lab, "node1", "test -e /etc/kubernetes/admin.conf").0, 0, "the refused init wrote admin.conf");
    sh_ok(&lab, "node1", "sysctl -qw net.ipv4.ip_forward=1");
    // The kubelet (1.35.0) is newer than the control plane to deploy (v1.34.3): kubeadm's
    // KubeletVersionCheck refuses the init; with the kubelet of the control plane's minor it
    // goes on.
    let (code, _, err) = sh(&lab, "node1", &format!("kubeadm init --config {cfg}"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[ERROR KubeletVersion]: the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"1.35.0\" Control plane version: \"1.34.3\""),
        "{err}"
    );
    // The binaries kubeadm wants on PATH came with the kubelet package's dependencies.
    assert!(!err.contains("FileExisting-"), "{err}");
    sh_ok(
        &lab,
        "node1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades kubelet=1.34.3-1.1 >/dev/null",
    );
    // A containerd with its CRI plugin disabled still answers `ctr version`, but not the CRI
    // API: kubeadm cannot create its runtime client and the init fails (RunPullImagesCheck),
    // after the warning of addCommonChecks; nothing is written.
    sh_ok(
        &lab,
        "node1",
        "mkdir -p /etc/containerd && if [ -e /etc/containerd/config.toml ]; then cp -a /etc/containerd/config.toml /tmp/containerd.toml.bak; fi; \
         printf 'version = 2\\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\\n' > /etc/containerd/config.toml && systemctl restart containerd && \
         for i in $(seq 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done; ctr version >/dev/null",
    );
    let (code, _, err) = sh(&lab, "node1", &format!("kubeadm init --config {cfg}"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[preflight] WARNING: Couldn't create the interface used for talking to the container runtime"),
        "{err}"
    );
    // The fatal error is the image pull check's, not only the warning (same text).
    assert!(
        err.contains("[preflight] Some fatal errors occurred:\nfailed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint \"unix:///run/containerd/containerd.sock\": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService"),
        "{err}"
    );
    assert_ne!(sh(&lab, "node1", "test -e /etc/kubernetes/admin.conf").0, 0, "the refused init wrote admin.conf");
    sh_ok(
        &lab,
        "node1",
        "rm -f /etc/containerd/config.toml; if [ -e /tmp/containerd.toml.bak ]; then mv /tmp/containerd.toml.bak /etc/containerd/config.toml; fi; \
         systemctl restart containerd",
    );
    sh_ok(&lab, "node1", &format!("kubeadm config validate --config {cfg} && kubeadm init --config {cfg}"));
    let anon = https(&pki.ca.cert, None);
    let r = anon.get(format!("https://{n1}:6443/readyz")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "ok");
    assert_eq!(git_version(&anon, n1), "v1.34.3");
    // The API needs credentials beyond the public endpoints.
    assert_eq!(anon.get(format!("https://{n1}:6443/api/v1/nodes")).send().unwrap().status(), 403);
    let calls = sh_ok(&lab, "node1", "cat /var/log/strata-standins/calls.jsonl");
    let init_call = calls
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|c| c["argv"][1] == "init" && c["exit"] == 0)
        .expect("init recorded");
    assert!(init_call["config"].as_str().unwrap().contains(&format!("controlPlaneEndpoint: {endpoint}")));

    // A second control plane node joins with the copied PKI (no certificate key); with a
    // CA that is not the cluster's it is refused.
    put_file(&lab, "node2", cfg, &join_config("node2", &endpoint, token, &hash, Some(n2)));
    let (code, _, err) = sh(&lab, "node2", &format!("kubeadm join --config {cfg}"));
    assert_eq!(code, 1);
    assert!(err.contains("is not the cluster's CA"), "{err}");
    place_pki(&lab, "node2", &pki);
    sh_ok(&lab, "node2", &format!("kubeadm join --config {cfg}"));
    assert_eq!(anon.get(format!("https://{n2}:6443/readyz")).send().unwrap().text().unwrap(), "ok");

    // A worker joins with a token minted by `kubeadm token create`: discovery pins the CA,
    // the kubelet TLS-bootstraps. An expired token is refused.
    let expired = "zzzzzz.0123456789abcdef";
    sh_ok(&lab, "node1", &format!("kubeadm token create {expired} --ttl 1s"));
    std::thread::sleep(Duration::from_millis(1500));
    put_file(&lab, "node3", "/tmp/expired.yaml", &join_config("node3", &endpoint, expired, &hash, None));
    let (code, _, err) = sh(&lab, "node3", "kubeadm join --config /tmp/expired.yaml");
    assert_eq!(code, 1);
    assert!(err.contains("invalid for this cluster or it has expired"), "{err}");
    let worker_token = sh_ok(&lab, "node1", "kubeadm token create --ttl 10m").trim().to_string();
    assert!(sh_ok(&lab, "node1", "kubeadm token list").contains(&worker_token));
    put_file(&lab, "node3", cfg, &join_config("node3", &endpoint, &worker_token, &hash, None));
    let (code, _, err) = sh(
        &lab,
        "node3",
        &format!(
            "sed 's/{}/{}/' {cfg} > /tmp/wrong.yaml; kubeadm join --config /tmp/wrong.yaml",
            &hash[7..],
            "0".repeat(64)
        ),
    );
    assert_eq!(code, 1);
    assert!(err.contains("none of the public keys"), "a wrong CA pin must be refused: {err}");
    sh_ok(&lab, "node3", &format!("kubeadm join --config {cfg}"));
    let admin = sh_ok(&lab, "node1", "cat /etc/kubernetes/admin.conf");
    let admin_pair = {
        let k: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&yaml_to_json(&admin)).unwrap()).unwrap();
        let d = |f: &str| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD.decode(k["users"][0]["user"][f].as_str().unwrap()).unwrap(),
            )
            .unwrap()
        };
        Pair { cert: d("client-certificate-data"), key: d("client-key-data") }
    };
    let api = https(&pki.ca.cert, Some(&admin_pair));
    let node3: serde_json::Value =
        api.get(format!("https://{n2}:6443/api/v1/nodes/node3")).send().unwrap().json().unwrap();
    assert_eq!(node3["spec"]["taints"][0]["key"], "dedicated", "{node3}");
    // Labels and taints by JSON merge patch, as the provider sets them.
    let patched = api
        .patch(format!("https://{n2}:6443/api/v1/nodes/node3"))
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"tier":"db"}}}"#)
        .send()
        .unwrap();
    assert_eq!(patched.status(), 200);
    let node3: serde_json::Value =
        api.get(format!("https://{n1}:6443/api/v1/nodes/node3")).send().unwrap().json().unwrap();
    assert_eq!(node3["metadata"]["labels"]["tier"], "db", "{node3}");
    assert_eq!(node3["spec"]["taints"][0]["key"], "dedicated", "a merge patch of labels keeps the taints: {node3}");
    let node1: serde_json::Value =
        api.get(format!("https://{n2}:6443/api/v1/nodes/node1")).send().unwrap().json().unwrap();
    assert!(node1["metadata"]["labels"].get("node-role.kubernetes.io/control-plane").is_some(), "{node1}");

    // kubectl applies a manifest (objects land in etcd, visible through node2's API server).
    put_file(&lab, "node1", "/etc/kubernetes/strata/cni.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-flannel-cfg\n  namespace: kube-flannel\ndata:\n  net-conf.json: '{\"Network\": \"10.244.0.0/16\"}'\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: kube-flannel-ds\n  namespace: kube-flannel\n");
    let out = sh_ok(
        &lab,
        "node1",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /etc/kubernetes/strata/cni.yaml",
    );
    assert!(out.contains("configmap/kube-flannel-cfg created"), "{out}");
    let cm: serde_json::Value = api
        .get(format!("https://{n2}:6443/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(cm["data"]["net-conf.json"].as_str().unwrap().contains("10.244.0.0/16"));

    // Upgrade: a two-minor jump is refused; one minor goes through and /version follows.
    sh_ok(
        &lab,
        "node1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades kubeadm=1.36.1-1.1 >/dev/null",
    );
    let (code, _, err) = sh(&lab, "node1", "kubeadm upgrade apply v1.36.1 --yes");
    assert_eq!(code, 1);
    assert!(err.contains("is too high; kubeadm can upgrade only 1 minor version at a time"), "{err}");
    assert_eq!(git_version(&anon, n1), "v1.34.3");
    // kubeadm 1.36 may take a v1.34 cluster to v1.35 only with --force (policy.go: "Kubeadm
    // version v1.36.1 can only be used to upgrade to Kubernetes version 1.36", skippable);
    // the upgrade is done with the target's kubeadm.
    let (code, _, err) = sh(&lab, "node1", "kubeadm upgrade apply v1.35.0 --yes");
    assert_eq!(code, 1);
    assert!(err.contains("Kubeadm version v1.36.1 can only be used to upgrade to Kubernetes version 1.36"), "{err}");
    assert!(err.contains("Can be bypassed if you pass the --force flag"), "{err}");
    sh_ok(
        &lab,
        "node1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades kubeadm=1.35.0-1.1 >/dev/null",
    );
    let cert_hash =
        |node: &str| sh_ok(&lab, node, "sha256sum /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/scheduler.conf");
    let before_upgrade = cert_hash("node1");
    sh_ok(&lab, "node1", "kubeadm upgrade apply v1.35.0 --yes");
    wait_version(&anon, n1, "v1.35.0");
    // The upgrade renewed the certificates of the upgraded components (--certificate-renewal
    // defaults to true), and the API server serves with the renewed one.
    let after_upgrade = cert_hash("node1");
    for (b, a) in before_upgrade.lines().zip(after_upgrade.lines()) {
        assert_ne!(b, a, "not renewed by the upgrade");
    }
    assert_eq!(git_version(&anon, n1), "v1.35.0");
    assert_eq!(git_version(&anon, n2), "v1.34.3", "the other control plane node waits for `upgrade node`");
    sh_ok(&lab, "node2", "kubeadm upgrade node");
    wait_version(&anon, n2, "v1.35.0");
    // Re-applying the version the cluster runs is accepted (kubeadm re-applies it), here
    // without renewing the certificates.
    sh_ok(&lab, "node1", "kubeadm upgrade apply v1.35.0 --yes --certificate-renewal=false");
    assert_eq!(cert_hash("node1"), after_upgrade, "--certificate-renewal=false renewed certificates");
    // One minor down is accepted by kubeadm's policy (with kubeadm 1.35, --force for its
    // skippable "can only be used to upgrade to 1.35"); two minors down are not.
    let (code, _, err) = sh(&lab, "node1", "kubeadm upgrade apply v1.33.0 --yes --force");
    assert_eq!(code, 1);
    assert!(err.contains("is too low; kubeadm can downgrade only 1 minor version at a time"), "{err}");
    sh_ok(&lab, "node1", "kubeadm upgrade apply v1.34.3 --yes --force");
    wait_version(&anon, n1, "v1.34.3");

    // The kubelet validates its KubeletConfiguration as the real one
    // (pkg/kubelet/apis/config/validation) and does not start with an invalid one.
    sh_ok(
        &lab,
        "node3",
        "cp /var/lib/kubelet/config.yaml /tmp/kubelet-config.bak && ! grep -q '^maxPods:' /var/lib/kubelet/config.yaml && \
         echo 'maxPods: -1' >> /var/lib/kubelet/config.yaml && systemctl restart kubelet",
    );
    let start = Instant::now();
    loop {
        let (_, log, _) = sh(&lab, "node3", "journalctl -u kubelet -n 30 --no-pager");
        if log.contains("failed to validate kubelet configuration, error: invalid configuration: maxPods (--max-pods) -1 must not be a negative number") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the kubelet did not refuse maxPods -1:\n{log}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_ne!(sh(&lab, "node3", "systemctl is-active kubelet").1.trim(), "active", "the kubelet runs with maxPods -1");
    sh_ok(&lab, "node3", "mv /tmp/kubelet-config.bak /var/lib/kubelet/config.yaml && systemctl restart kubelet");

    // The kubelet's heartbeat Lease (kube-node-lease/node3), read with real kubectl,
    // renewed every 10 s.
    let lease = |field: &str| {
        sh_ok(
            &lab,
            "node1",
            &format!(
                "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-node-lease get lease node3 -o jsonpath='{{.spec.{field}}}'"
            ),
        )
    };
    assert_eq!(lease("holderIdentity"), "node3");
    assert_eq!(lease("leaseDurationSeconds"), "40");
    let renewed = lease("renewTime");
    let t = Instant::now();
    while lease("renewTime") == renewed {
        assert!(t.elapsed() < Duration::from_secs(25), "the Lease was not renewed: {renewed}");
        std::thread::sleep(Duration::from_secs(1));
    }

    // A join over a Ready Node of the same name is refused, as kubeadm's kubelet-start
    // does: node3 Ready (a CNI configuration), then reset, and joined again at once
    // while its Node still counts as Ready (the node controller's 40 s grace).
    sh_ok(&lab, "node3", "mkdir -p /etc/cni/net.d && echo '{\"cniVersion\":\"0.4.0\",\"name\":\"lab\",\"plugins\":[]}' > /etc/cni/net.d/10-lab.conflist");
    let ready = || {
        let n: serde_json::Value =
            api.get(format!("https://{n1}:6443/api/v1/nodes/node3")).send().unwrap().json().unwrap();
        n["status"]["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed() < Duration::from_secs(20), "node3 did not turn Ready with a CNI configuration");
        std::thread::sleep(Duration::from_millis(500));
    }

    // reset cleans the worker and the second control plane node up.
    sh_ok(&lab, "node3", "kubeadm reset -f");
    let worker_token = sh_ok(&lab, "node1", "kubeadm token create --ttl 10m").trim().to_string();
    put_file(&lab, "node3", cfg, &join_config("node3", &endpoint, &worker_token, &hash, None));
    let (code, _, err) = sh(&lab, "node3", &format!("kubeadm join --config {cfg}"));
    assert_eq!(code, 1, "a join over the Ready Node node3 went through");
    assert!(
        err.contains("error execution phase kubelet-start: a Node with name \"node3\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node"),
        "{err}"
    );
    assert_ne!(
        sh(&lab, "node3", "test -e /etc/kubernetes/bootstrap-kubelet.conf").0,
        0,
        "the refused join configured the kubelet"
    );
    assert!(ready(), "node3's Node is still Ready: the refusal was for the reason tested");
    let left = sh_ok(
        &lab,
        "node3",
        "ls /etc/kubernetes /etc/kubernetes/pki /var/lib/kubelet; systemctl is-active kubelet || true",
    );
    assert!(!left.contains("kubelet.conf") && !left.contains("ca.crt") && !left.contains("config.yaml"), "{left}");
    assert!(left.trim().ends_with("inactive"), "{left}");
    assert_eq!(api.delete(format!("https://{n1}:6443/api/v1/nodes/node3")).send().unwrap().status(), 200);
    assert_eq!(api.get(format!("https://{n1}:6443/api/v1/nodes/node3")).send().unwrap().status(), 404);
    sh_ok(&lab, "node2", "kubeadm reset -f");
    let start = Instant::now();
    while anon.get(format!("https://{n2}:6443/livez")).send().is_ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "node2's API server still answers after reset");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("stand-ins lab test took {:?}", started.elapsed());
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

fn yaml_to_json(text: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(text).unwrap()
}
