//! Shared by the strata_control_plane acceptance tests: a lab with the Kubernetes
//! STAND-INS, the configuration of etcd + load balancer + control plane on node1-3
//! (haproxy's frontend is VIP:8443, so it never takes the API servers' 6443) and
//! workers, and checks through the VIP.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::standins::standins_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir};
use strata_lab::{LabGuard, PveMode, StandinsMode, UpOptions};

pub const CP: [&str; 3] = ["node1", "node2", "node3"];
pub const LB_PORT: u16 = 8443;

/// A lab of `nodes` nodes with the Kubernetes stand-ins, without pve-sim.
pub fn lab(dir: &Path, nodes: usize) -> LabGuard {
    let mut opts = UpOptions::new(dir);
    opts.nodes = nodes;
    opts.pve = PveMode::Disabled;
    opts.standins = StandinsMode::Dir(standins_dir());
    LabGuard::up(&opts).expect("lab up (needs root; builds the node image on first use)")
}

/// containerd (Debian's, real) on `nodes`, in parallel: what strata_node_config would
/// set up; kubeadm's preflight needs it answering on its socket.
pub fn install_containerd(lab: &LabGuard, nodes: &[&str]) {
    std::thread::scope(|s| {
        for n in nodes {
            s.spawn(move || {
                sh_ok(lab, n, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd >/dev/null && systemctl enable --now containerd");
            });
        }
    });
}

/// What the CNI's DaemonSet (flannel's `install-cni` container) writes on every node once
/// it runs there: a CNI configuration, which turns the kubelet's Node Ready. No pods run
/// with the stand-ins, so a test that needs Ready Nodes writes it as flannel would.
pub fn write_cni_config(lab: &LabGuard, nodes: &[&str]) {
    for n in nodes {
        sh_ok(
            lab,
            n,
            "mkdir -p /etc/cni/net.d && printf '%s' '{\"name\":\"cbr0\",\"cniVersion\":\"0.3.1\",\"plugins\":[{\"type\":\"flannel\",\"delegate\":{\"hairpinMode\":true,\"isDefaultGateway\":true}},{\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}}]}' > /etc/cni/net.d/10-flannel.conflist",
        );
    }
}

pub fn sh(lab: &LabGuard, node: &str, script: &str) -> (i32, String, String) {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn sh_ok(lab: &LabGuard, node: &str, script: &str) -> String {
    let (code, out, err) = sh(lab, node, script);
    assert_eq!(code, 0, "{node}: {script}: {out}{err}");
    out
}

pub fn address(lab: &LabGuard, node: &str) -> String {
    lab.node(node).unwrap().address.clone()
}

pub fn vip(lab: &LabGuard) -> String {
    let a = address(lab, "node1");
    format!("{}.200", a.rsplit_once('.').unwrap().0)
}

pub fn endpoint(lab: &LabGuard) -> String {
    format!("{}:{LB_PORT}", vip(lab))
}

/// The calls the stand-ins recorded on `node`: (tool, argv, config, exit).
pub fn calls(lab: &LabGuard, node: &str) -> Vec<serde_json::Value> {
    let (_, out, _) = sh(lab, node, "cat /var/log/strata-standins/calls.jsonl 2>/dev/null");
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Successful kubeadm calls on `node` whose argv after `kubeadm` starts with `words`.
pub fn kubeadm_calls(lab: &LabGuard, node: &str, words: &[&str]) -> Vec<serde_json::Value> {
    calls(lab, node)
        .into_iter()
        .filter(|c| {
            c["tool"] == "kubeadm"
                && c["exit"] == 0
                && words.iter().enumerate().all(|(i, w)| c["argv"][i + 1].as_str() == Some(w))
        })
        .collect()
}

/// When a recorded call began and ended (the stand-in's `start` and `time`).
pub fn call_span(c: &serde_json::Value) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let at = |k: &str| {
        let t = c[k].as_str().unwrap_or_else(|| panic!("no {k} in the call record {c}"));
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
    };
    (at("start"), at("time"))
}

/// Asserts that the `(node, call)` records ran in series in this order: each began no
/// earlier than the one before it ended (ends in order alone would let them overlap).
pub fn assert_one_after_another(calls: &[(&str, &serde_json::Value)]) {
    for pair in calls.windows(2) {
        let ((before, a), (after, b)) = (pair[0], pair[1]);
        let ((_, a_end), (b_start, _)) = (call_span(a), call_span(b));
        assert!(b_start >= a_end, "{after}'s call began at {b_start} before {before}'s ended at {a_end}: {a}\n{b}");
    }
}

pub const FLANNEL: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
---
kind: ConfigMap
apiVersion: v1
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "Backend": {
        "Type": "vxlan"
      }
    }
"#;

pub struct Opts<'a> {
    pub version: &'a str,
    pub workers: &'a [&'a str],
    /// An `import {}` block for the secrets.
    pub import_from: Option<&'a str>,
    /// The etcd cluster's `restore_from_snapshot`.
    pub etcd_restore: Option<&'a str>,
}

/// The load balancer of the API servers: the VIP, `node` blocks as given, a TCP
/// frontend on LB_PORT to 6443 on CP.
pub fn load_balancer_resource(lab: &LabGuard, vrid: u8, lb_nodes: &str) -> String {
    let backends: String = CP
        .iter()
        .map(|n| {
            format!(
                "    backend {{\n      name    = \"{n}\"\n      address = \"{}\"\n      port    = 6443\n    }}\n",
                address(lab, n)
            )
        })
        .collect();
    format!(
        r#"resource "strata_load_balancer" "api" {{
  name              = "k8s"
  vip               = "{vip}/24"
  interface         = "eth0"
  virtual_router_id = {vrid}
{lb_nodes}  frontend {{
    name      = "kube-apiserver"
    bind_port = {LB_PORT}
{backends}    health_check {{
      type     = "tcp"
      interval = "1s"
    }}
  }}
}}
"#,
        vip = vip(lab)
    )
}

/// What a user's `strata_node_config` sets before kubeadm runs (examples/ha-cluster):
/// `net.ipv4.ip_forward = 1`, which kubeadm's preflight requires on every node it inits
/// or joins (`[ERROR FileContent--proc-sys-net-ipv4-ip_forward]`); a lab node's own
/// network namespace starts with 0. One resource `name` over `nodes` (node name, ssh.host).
pub fn node_config_resource(name: &str, nodes: &[(String, String)]) -> String {
    let each: String = nodes.iter().map(|(n, host)| format!("    {n} = \"{host}\"\n")).collect();
    format!(
        r#"resource "strata_node_config" "{name}" {{
  for_each = {{
{each}  }}
  ssh {{ host = each.value }}
  sysctl = {{
    "net.ipv4.ip_forward" = "1"
  }}
}}
"#
    )
}

/// `node_config_resource` for `nodes` reached at their addresses.
pub fn node_config_at_addresses(lab: &LabGuard, name: &str, nodes: &[&str]) -> String {
    let nodes: Vec<(String, String)> = nodes.iter().map(|n| (n.to_string(), address(lab, n))).collect();
    node_config_resource(name, &nodes)
}

/// The control plane's `depends_on` in `control_plane_resource`: the load balancer and
/// the nodes' configuration (`strata_node_config.kube`). Tests that apply the control
/// plane on its own take this line out.
pub const CP_DEPENDS_ON: &str = "  depends_on = [strata_load_balancer.api, strata_node_config.kube]\n";

/// The control plane behind the VIP on the etcd cluster `strata_etcd_cluster.main`,
/// with `node` blocks as given (it depends on `strata_node_config.kube`, which the
/// configuration must declare for its nodes).
pub fn control_plane_resource(lab: &LabGuard, version: &str, cp_nodes: &str) -> String {
    format!(
        r#"resource "strata_control_plane" "k8s" {{
  endpoint            = "{endpoint}"
  kubernetes_version  = "{version}"
  ca_cert             = strata_cluster_secrets.this.kubernetes_ca_cert
  ca_key              = strata_cluster_secrets.this.kubernetes_ca_key
  front_proxy_ca_cert = strata_cluster_secrets.this.front_proxy_ca_cert
  front_proxy_ca_key  = strata_cluster_secrets.this.front_proxy_ca_key
  service_account_public_key  = strata_cluster_secrets.this.service_account_public_key
  service_account_private_key = strata_cluster_secrets.this.service_account_private_key
  pod_cidr            = "10.44.0.0/16"
{cp_nodes}  etcd {{
    endpoints   = strata_etcd_cluster.main.endpoints
    ca_cert     = strata_etcd_cluster.main.ca_certificate
    client_cert = strata_etcd_cluster.main.client_certificate
    client_key  = strata_etcd_cluster.main.client_private_key
    ca_key      = strata_cluster_secrets.this.etcd_ca_key
  }}
  cni {{
    type            = "flannel"
    manifest_file   = "flannel.yaml"
    flannel_backend = "host-gw"
  }}
{CP_DEPENDS_ON}}}
"#,
        endpoint = endpoint(lab)
    )
}

pub fn main_tf(lab: &LabGuard, o: &Opts) -> String {
    let ssh = &lab.info().ssh;
    let members: String = CP
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let a = address(lab, n);
            format!(
                "  member {{\n    name    = \"etcd{}\"\n    address = \"{a}\"\n    ssh {{ host = \"{a}\" }}\n  }}\n",
                i + 1
            )
        })
        .collect();
    let lb_nodes: String = CP
        .iter()
        .map(|n| format!("  node {{\n    name = \"{n}\"\n    ssh {{ host = \"{}\" }}\n  }}\n", address(lab, n)))
        .collect();
    let cp_nodes: String = CP
        .iter()
        .map(|n| {
            let a = address(lab, n);
            format!("  node {{\n    name    = \"{n}\"\n    address = \"{a}\"\n    ssh {{ host = \"{a}\" }}\n  }}\n")
        })
        .collect();
    let workers: String = o
        .workers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let a = address(lab, n);
            format!(
                r#"resource "strata_worker" "{n}" {{
  name               = "{n}"
  address            = "{a}"
  kubernetes_version = "v1.35.0"
  join               = strata_control_plane.k8s.join
  kubeconfig         = strata_control_plane.k8s.kubeconfig
  labels = {{
    "env"                            = "test"
    "node-role.kubernetes.io/worker" = ""
    "example.com/slot"               = "{i}"
  }}
  taint {{
    key    = "dedicated"
    value  = "db"
    effect = "NoSchedule"
  }}
  ssh {{ host = "{a}" }}
  depends_on = [strata_node_config.kube]
}}
"#
            )
        })
        .collect();
    let kube_nodes: Vec<&str> = CP.iter().chain(o.workers).copied().collect();
    let import = o
        .import_from
        .map(|id| format!("import {{\n  to = strata_cluster_secrets.this\n  id = \"{id}\"\n}}\n"))
        .unwrap_or_default();
    format!(
        r#"{provider}{import}resource "strata_cluster_secrets" "this" {{
  cluster_name = "kubernetes"
}}

resource "strata_etcd_cluster" "main" {{
  ca_cert = strata_cluster_secrets.this.etcd_ca_cert
  ca_key  = strata_cluster_secrets.this.etcd_ca_key
{restore}{members}}}

{node_config}
{load_balancer}
{control_plane}
{workers}
output "kubeconfig" {{
  value     = strata_control_plane.k8s.kubeconfig
  sensitive = true
}}
output "ca" {{
  value = strata_cluster_secrets.this.kubernetes_ca_cert
}}
"#,
        provider = ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file),
        node_config = node_config_at_addresses(lab, "kube", &kube_nodes),
        load_balancer = load_balancer_resource(lab, 52, &lb_nodes),
        control_plane = control_plane_resource(lab, o.version, &cp_nodes),
        restore = o.etcd_restore.map(|p| format!("  restore_from_snapshot = \"{p}\"\n")).unwrap_or_default(),
    )
}

pub fn workdir(lab: &LabGuard, o: &Opts) -> Workdir {
    let wd = Workdir::new(&provider_dir(), &main_tf(lab, o)).unwrap();
    wd.write("flannel.yaml", FLANNEL).unwrap();
    wd
}

pub fn assert_empty_plan(wd: &Workdir, after: &str) {
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "the plan after {after} must be empty:\n{}{}", plan.stdout, plan.stderr);
}

pub fn output(wd: &Workdir, name: &str) -> String {
    wd.run(&["output", "-raw", name]).unwrap().ok().unwrap().stdout
}

pub fn https(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// (server, CA, client cert, client key) of a kubeconfig.
pub fn kubeconfig_parts(text: &str) -> (String, String, String, String) {
    let k: serde_json::Value = serde_yaml_ng::from_str(text).unwrap();
    let d = |v: &serde_json::Value| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
    };
    (
        k["clusters"][0]["cluster"]["server"].as_str().unwrap().to_string(),
        d(&k["clusters"][0]["cluster"]["certificate-authority-data"]),
        d(&k["users"][0]["user"]["client-certificate-data"]),
        d(&k["users"][0]["user"]["client-key-data"]),
    )
}

pub fn openssl_verify(dir: &Path, ca_pem: &str, cert_pem: &str) -> (bool, String) {
    std::fs::write(dir.join("verify-ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.join("verify-cert.pem"), cert_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile", "verify-ca.pem", "verify-cert.pem"])
        .current_dir(dir)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The official Kubernetes Python client's kubeconfig loader on `path`: prints the host
/// the loaded configuration talks to.
pub fn python_client_host(path: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-kube-client.sh");
    let out = std::process::Command::new("bash").arg(script).output().unwrap();
    assert!(out.status.success(), "installing the kubernetes client: {}", String::from_utf8_lossy(&out.stderr));
    let python = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys\nfrom kubernetes import client, config\nconfig.load_kube_config(config_file=sys.argv[1])\n\
             c = client.Configuration.get_default_copy()\nassert c.cert_file and c.key_file and c.ssl_ca_cert\nprint(c.host)",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "load_kube_config: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn wait_ready_through_vip(lab: &LabGuard, ca: &str) {
    let client = https(ca, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.get(format!("https://{}/readyz", endpoint(lab))).send();
        if let Ok(r) = r {
            if r.status() == 200 {
                assert_eq!(r.text().unwrap(), "ok");
                return;
            }
        }
        assert!(Instant::now() < deadline, "/readyz through the VIP never answered ok");
        std::thread::sleep(Duration::from_millis(300));
    }
}
