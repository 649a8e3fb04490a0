//! The STAND-IN k3s on real lab nodes, driven directly (no Terraform), as the provider
//! would drive it (acceptance-tests/standins/k3s-interface.md):
//! the air-gap artifacts of the lab
//! (binary with its version trailer, image archive), Debian's etcd and containerd from the
//! lab repository, systemd units of Type=notify, a first server with cluster-init, a
//! second server joining through the first, an agent; real kubectl sees three Ready
//! Nodes, containerd holds the archive's images, etcd has two members; refusals (unknown
//! config key, CA hash mismatch, different token); snapshot save and cluster-reset restore.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use strata_acceptance_tests::standins::standins_dir;
use strata_lab::{LabGuard, PveMode, StandinsMode, UpOptions};

const VERSION: &str = "v1.36.1+k3s1";

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
        let (_, journal, _) = sh(lab, node, "journalctl -n 60 --no-pager");
        panic!("{node}: {script} exited {code}: {out}{err}\n--- journal:\n{journal}");
    }
    out
}

/// Writes `file` (from the host) to `path` on `node` through the command's stdin.
fn put(lab: &LabGuard, node: &str, file: &Path, path: &str, mode: &str) {
    let info = lab.node(node).unwrap();
    let script = format!(
        "mkdir -p \"$(dirname {path})\" && cat > {path}.tmp && chmod {mode} {path}.tmp && mv {path}.tmp {path}"
    );
    let status = strata_lab::node::exec_command(info, &["sh", "-c", &script])
        .unwrap()
        .stdin(Stdio::from(std::fs::File::open(file).unwrap()))
        .status()
        .unwrap();
    assert!(status.success(), "copying {} to {node}:{path}", file.display());
}

fn put_text(lab: &LabGuard, node: &str, path: &str, text: &str) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), text).unwrap();
    put(lab, node, tmp.path(), path, "644");
}

fn unit(cmd: &str, env: &str) -> String {
    format!(
        "[Unit]\nDescription=Lightweight Kubernetes\nWants=network-online.target\nAfter=network-online.target\n\n\
         [Service]\nType=notify\nEnvironmentFile=-/etc/systemd/system/{env}.env\nKillMode=process\nDelegate=yes\n\
         LimitNOFILE=1048576\nRestart=always\nRestartSec=5s\nTimeoutStartSec=0\nExecStart=/usr/local/bin/k3s {cmd}\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    )
}

const ETCDCTL: &str =
    "T=/var/lib/rancher/k3s/server/tls/etcd; ETCDCTL_API=3 etcdctl --endpoints https://127.0.0.1:2379 \
                       --cacert $T/server-ca.crt --cert $T/client.crt --key $T/client.key";
const KUBECTL: &str = "kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml";

fn ready_nodes(lab: &LabGuard) -> Vec<String> {
    let (_, out, _) = sh(
        lab,
        "node1",
        &format!("{KUBECTL} get nodes -o jsonpath='{{range .items[*]}}{{.metadata.name}}={{.status.conditions[0].status}}={{.status.nodeInfo.kubeletVersion}} {{end}}'"),
    );
    out.split_whitespace().filter(|n| n.ends_with(&format!("=True={VERSION}"))).map(str::to_string).collect()
}

#[test]
fn k3s_standin_cluster_on_lab_nodes() {
    let bins = standins_dir();
    let cache = strata_lab::image::cache_root().unwrap();
    let arts = strata_lab::k3s::airgap_artifacts_from(&cache, &bins.join("k3s")).expect("k3s artifacts");
    let a = arts.get(VERSION).unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(dir.path());
    opts.nodes = 3;
    opts.pve = PveMode::Disabled;
    opts.standins = StandinsMode::Dir(bins);
    let lab = LabGuard::up(&opts).expect("lab up (needs root)");
    let ip = |n: &str| lab.node(n).unwrap().address.clone();

    for n in ["node1", "node2", "node3"] {
        sh_ok(
            &lab,
            n,
            "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client \
             containerd kubectl >/dev/null && systemctl disable --now etcd",
        );
        put(&lab, n, &a.binary, "/usr/local/bin/k3s", "755");
        put(&lab, n, &a.images, "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar", "644");
        assert_eq!(sh_ok(&lab, n, "k3s --version"), format!("k3s version {VERSION} (standin)\ngo version go1.24.0\n"));
    }
    // A config key k3s does not know: exit 1 naming it.
    put_text(&lab, "node3", "/tmp/bad.yaml", "server: https://x:6443\ntoken: t\nnode-labels: [a=b]\n");
    let (code, _, err) = sh(&lab, "node3", "k3s agent -c /tmp/bad.yaml");
    assert_eq!(code, 1);
    assert!(err.contains("Incorrect Usage: flag provided but not defined: -node-labels"), "{err}");

    put_text(&lab, "node1", "/etc/systemd/system/k3s.service", &unit("server", "k3s.service"));
    put_text(
        &lab,
        "node1",
        "/etc/rancher/k3s/config.yaml",
        &format!(
            "cluster-init: true\ntoken: labsecret\nagent-token: agentsecret\nnode-ip: {}\ntls-san: [k3s.lab.example]\n\
             node-label: [tier=gold]\n\
             write-kubeconfig-mode: \"0644\"\ndisable: [traefik]\n",
            ip("node1")
        ),
    );
    sh_ok(&lab, "node1", "systemctl daemon-reload && systemctl start k3s && systemctl is-active k3s");
    let token = sh_ok(&lab, "node1", "cat /var/lib/rancher/k3s/server/token").trim().to_string();
    assert!(token.starts_with("K10") && token.ends_with("::server:labsecret"), "{token}");
    let agent_token = sh_ok(&lab, "node1", "cat /var/lib/rancher/k3s/server/agent-token").trim().to_string();
    assert!(agent_token.ends_with("::node:agentsecret"), "{agent_token}");
    let server = format!("https://{}:6443", ip("node1"));

    // A token whose CA hash is not the cluster's: refused, naming the mismatch.
    let bad = format!("K10{}::server:labsecret", "0".repeat(64));
    let (code, _, err) = sh(&lab, "node3", &format!("timeout 60 k3s agent --server {server} --token {bad}"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("token CA hash does not match the Cluster CA certificate hash"), "{err}");

    put_text(&lab, "node2", "/etc/systemd/system/k3s.service", &unit("server", "k3s.service"));
    put_text(
        &lab,
        "node2",
        "/etc/rancher/k3s/config.yaml",
        &format!("server: {server}\ntoken: {token}\nnode-ip: {}\n", ip("node2")),
    );
    sh_ok(&lab, "node2", "systemctl daemon-reload && systemctl start k3s");
    put_text(&lab, "node3", "/etc/systemd/system/k3s-agent.service", &unit("agent", "k3s-agent.service"));
    put_text(
        &lab,
        "node3",
        "/etc/rancher/k3s/config.yaml",
        &format!(
            "server: {server}\ntoken: {token}\nnode-ip: {}\nnode-taint: [\"edge=true:NoSchedule\"]\n",
            ip("node3")
        ),
    );
    sh_ok(&lab, "node3", "systemctl daemon-reload && systemctl start k3s-agent");

    let t = Instant::now();
    while ready_nodes(&lab).len() < 3 && t.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(ready_nodes(&lab).len(), 3, "{}", sh(&lab, "node1", &format!("{KUBECTL} get nodes -o wide")).1);
    let labels = sh_ok(&lab, "node1", &format!("{KUBECTL} get nodes -o wide --show-labels"));
    assert!(labels.contains("node-role.kubernetes.io/etcd=true") && labels.contains("tier=gold"), "{labels}");
    let images = sh_ok(&lab, "node3", "k3s crictl images");
    assert!(
        images.contains("docker.io/rancher/mirrored-pause") && images.contains("docker.io/library/busybox"),
        "{images}"
    );
    let members = sh_ok(&lab, "node1", &format!("{ETCDCTL} member list"));
    assert_eq!(members.lines().count(), 2, "{members}");

    // Snapshot, then a restore into a one-member etcd with the same token.
    sh_ok(&lab, "node1", "k3s etcd-snapshot save --name pre");
    let ls = sh_ok(&lab, "node1", "k3s etcd-snapshot ls");
    assert!(ls.starts_with("Name Location Size Created\n") && ls.contains("pre-node1-"), "{ls}");
    sh_ok(&lab, "node2", "systemctl stop k3s");
    sh_ok(&lab, "node1", "systemctl stop k3s");
    let out = sh_ok(
        &lab,
        "node1",
        "k3s server --cluster-reset --cluster-reset-restore-path=$(ls /var/lib/rancher/k3s/server/db/snapshots/pre-node1-*)",
    );
    assert!(out.contains("Managed etcd cluster membership has been reset, restart without --cluster-reset flag now."));
    // Another token cannot use this bootstrap data.
    let (code, _, err) = sh(&lab, "node1", "timeout 90 k3s server --token other");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bootstrap data already found and encrypted with different token"), "{err}");
    sh_ok(&lab, "node1", "systemctl start k3s");
    let members = sh_ok(&lab, "node1", &format!("{ETCDCTL} member list"));
    assert_eq!(members.lines().count(), 1, "{members}");
}
