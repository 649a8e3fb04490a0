//! STAND-IN kubelet, run by systemd from the package's unit. It reads its flags and
//! configuration like the real kubelet (exiting non-zero without a config file, so
//! systemd restarts it until kubeadm wrote one), TLS-bootstraps with a bootstrap
//! kubeconfig, registers its Node, and "runs" the static pods: the kube-apiserver
//! manifest becomes a transient systemd unit running the stand-in API server with the
//! manifest's command line (restarted when the manifest changes); other manifests are
//! only recorded as running.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::apiclient::ApiClient;
use crate::kubeconfig::{Kubeconfig, User};

pub const APISERVER_UNIT: &str = "strata-standin-kube-apiserver.service";
const APISERVER_BIN: &str = "/usr/lib/strata-standins/kube-apiserver";
const STATE_DIR: &str = "/run/strata-standins";
const PODS_FILE: &str = "/var/lib/kubelet/standin-pods.json";

#[derive(Debug, Default)]
struct Flags {
    config: Option<String>,
    config_dir: Option<String>,
    kubeconfig: Option<String>,
    bootstrap_kubeconfig: Option<String>,
    hostname_override: Option<String>,
    register_with_taints: Option<String>,
    node_labels: Option<String>,
    node_ip: Option<String>,
    container_runtime_endpoint: Option<String>,
}

fn parse_flags(args: &[String]) -> Result<Flags> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(body) = a.strip_prefix("--") else { bail!("unknown command {a:?} for \"kubelet\"") };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (body.to_string(), it.next().cloned().unwrap_or_default()),
        };
        let v = Some(value);
        match name.as_str() {
            "config" => f.config = v,
            "config-dir" => f.config_dir = v,
            "kubeconfig" => f.kubeconfig = v,
            "bootstrap-kubeconfig" => f.bootstrap_kubeconfig = v,
            "hostname-override" => f.hostname_override = v,
            "register-with-taints" => f.register_with_taints = v,
            "node-labels" => f.node_labels = v,
            "node-ip" => f.node_ip = v,
            "container-runtime-endpoint" => f.container_runtime_endpoint = v,
            // Flags the real kubelet takes that change nothing here (runtime endpoint,
            // pause image, verbosity, ...).
            _ => {}
        }
    }
    Ok(f)
}

/// The kubelet configuration: --config, then each `*.conf` drop-in of --config-dir in
/// lexical order merged on top (the real kubelet's drop-in semantics for maps/scalars).
fn load_config(f: &Flags) -> Result<Value> {
    let path = f.config.as_deref().context("no --config given")?;
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "failed to load kubelet config file, path: {path}, error: failed to read kubelet config file \"{path}\""
        )
    })?;
    let mut cfg: Value =
        serde_yaml_ng::from_str(&text).with_context(|| format!("failed to decode kubelet config file {path}"))?;
    check_kind(&cfg, path)?;
    if let Some(dir) = &f.config_dir {
        let mut drop_ins: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "conf")).collect())
            .unwrap_or_default();
        drop_ins.sort();
        for p in drop_ins {
            let t = std::fs::read_to_string(&p)?;
            let d: Value =
                serde_yaml_ng::from_str(&t).with_context(|| format!("failed to decode drop-in {}", p.display()))?;
            check_kind(&d, &p.to_string_lossy())?;
            merge(&mut cfg, &d);
        }
    }
    Ok(cfg)
}

fn check_kind(v: &Value, path: &str) -> Result<()> {
    if v["kind"] != "KubeletConfiguration" || v["apiVersion"] != "kubelet.config.k8s.io/v1beta1" {
        bail!("{path}: expected apiVersion kubelet.config.k8s.io/v1beta1, kind KubeletConfiguration");
    }
    Ok(())
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The kubelet's default `containerRuntimeEndpoint`.
const DEFAULT_CRI_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

pub fn main(argv: Vec<String>) -> i32 {
    // `kubelet --version` prints `Kubernetes vX.Y.Z` (what kubeadm's GetKubeletVersion parses).
    if argv[1..].iter().any(|a| a == "--version" || a == "--version=true") {
        match crate::version::installed("kubelet") {
            Ok(v) => {
                println!("Kubernetes {v}");
                return 0;
            }
            Err(e) => {
                eprintln!("Error: {e:#}");
                return 1;
            }
        }
    }
    let flags = match parse_flags(&argv[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return 1;
        }
    };
    let cfg = match load_config(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("E command failed: {e:#}");
            return 1;
        }
    };
    // ValidateKubeletConfiguration (pkg/kubelet/apis/config/validation), then the container
    // runtime through the CRI API: the real kubelet exits 1 on either.
    let errs = crate::kubelet_config::validate(&cfg);
    if !errs.is_empty() {
        eprintln!("E command failed: {}", crate::kubelet_config::error_message(&errs));
        return 1;
    }
    let endpoint = flags
        .container_runtime_endpoint
        .clone()
        .filter(|e| !e.is_empty())
        .or_else(|| cfg["containerRuntimeEndpoint"].as_str().filter(|e| !e.is_empty()).map(str::to_string))
        .unwrap_or_else(|| DEFAULT_CRI_ENDPOINT.to_string());
    if let Err(e) = crate::block_on(crate::cri::Runtime::connect(&endpoint)) {
        eprintln!("E command failed: failed to run Kubelet: {e:#}");
        return 1;
    }
    crate::block_on(run(flags, cfg))
}

fn node_name(f: &Flags) -> String {
    f.hostname_override.clone().unwrap_or_else(crate::kubeadm::config::default_node_name)
}

async fn run(flags: Flags, cfg: Value) -> i32 {
    let version = crate::version::installed("kubelet").map(|v| v.to_string()).unwrap_or_default();
    eprintln!("I kubelet (stand-in) {version} starting; staticPodPath={}", cfg["staticPodPath"]);
    let mut registered = false;
    let mut reported: Option<(bool, std::time::Instant)> = None;
    let mut renewed: Option<std::time::Instant> = None;
    loop {
        if let Err(e) = sync_static_pods(&cfg) {
            eprintln!("E static pods: {e:#}");
        }
        if let Err(e) = tls_bootstrap(&flags).await {
            eprintln!("E TLS bootstrap: {e:#}");
        }
        if let Err(e) = rotate_client_certificate(&flags, &cfg).await {
            eprintln!("E client certificate rotation: {e:#}");
        }
        if !registered {
            match register_node(&flags, &version).await {
                Ok(done) => registered = done,
                Err(e) => eprintln!("E registering the node: {e:#}"),
            }
        } else {
            // The node status heartbeat: every 10 s (nodeStatusUpdateFrequency), or at once
            // when readiness changed.
            let ready = network_ready();
            if reported.is_none_or(|(r, at)| r != ready || at.elapsed() >= STATUS_EVERY) {
                match post_status(&flags, ready).await {
                    Ok(()) => reported = Some((ready, std::time::Instant::now())),
                    Err(e) => eprintln!("E posting the node status: {e:#}"),
                }
            }
            if renewed.is_none_or(|at| at.elapsed() >= LEASE_RENEW_EVERY) {
                match renew_lease(&flags).await {
                    Ok(()) => renewed = Some(std::time::Instant::now()),
                    Err(e) => eprintln!("E renewing the node lease: {e:#}"),
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

const STATUS_EVERY: Duration = Duration::from_secs(10);
/// The kubelet's node lease: 40 s (nodeLeaseDurationSeconds), renewed every quarter of it.
const LEASE_SECONDS: u64 = 40;
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(LEASE_SECONDS / 4);
const CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// The runtime's network is ready once a CNI configuration exists (what containerd's CRI
/// reports as NetworkReady; until then the kubelet says NotReady).
fn network_ready() -> bool {
    std::fs::read_dir(CNI_CONF_DIR).is_ok_and(|d| {
        d.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".conf") || n.ends_with(".conflist") || n.ends_with(".json")
        })
    })
}

fn ready_condition(ready: bool) -> Value {
    let now = crate::apiserver::format_time(time::OffsetDateTime::now_utc());
    if ready {
        json!({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status (stand-in)", "lastHeartbeatTime": now})
    } else {
        json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
               "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
               "lastHeartbeatTime": now})
    }
}

async fn post_status(f: &Flags, ready: bool) -> Result<()> {
    let Some(kc) = &f.kubeconfig else { return Ok(()) };
    let api = ApiClient::from_kubeconfig(&Kubeconfig::load(kc)?)?;
    let body = json!({"status": {"conditions": [ready_condition(ready)]}});
    let r = api.merge_patch(&format!("/api/v1/nodes/{}/status", node_name(f)), &body).await?;
    if !r.status.is_success() {
        bail!("{} {}", r.status, r.message());
    }
    Ok(())
}

/// A MicroTime as the API writes it (`2026-12-04T10:00:10.123456Z`).
fn micro_time(t: time::OffsetDateTime) -> String {
    let secs = crate::apiserver::format_time(t);
    format!("{}.{:06}Z", secs.trim_end_matches('Z'), t.microsecond())
}

/// The node's heartbeat Lease `kube-node-lease/<node>` (coordination.k8s.io/v1), owned by
/// its Node, created or renewed as the kubelet's node lease controller does.
async fn renew_lease(f: &Flags) -> Result<()> {
    let Some(kc) = &f.kubeconfig else { return Ok(()) };
    let api = ApiClient::from_kubeconfig(&Kubeconfig::load(kc)?)?;
    let name = node_name(f);
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}");
    let now = micro_time(time::OffsetDateTime::now_utc());
    let current = api.get(&path).await?;
    let r = if current.status.is_success() {
        let mut lease = current.body;
        lease["spec"]["holderIdentity"] = json!(name);
        lease["spec"]["leaseDurationSeconds"] = json!(LEASE_SECONDS);
        lease["spec"]["renewTime"] = json!(now);
        api.put(&path, &lease).await?
    } else {
        let node = api.get(&format!("/api/v1/nodes/{name}")).await?;
        let owner = node.body["metadata"]["uid"]
            .as_str()
            .map(|uid| json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]));
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now}
        });
        if let Some(owner) = owner {
            lease["metadata"]["ownerReferences"] = owner;
        }
        api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", &lease).await?
    };
    if !r.status.is_success() {
        bail!("{} {}", r.status, r.message());
    }
    Ok(())
}

fn hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn systemctl(args: &[&str]) -> bool {
    std::process::Command::new("systemctl").args(args).status().map(|s| s.success()).unwrap_or(false)
}

fn sync_static_pods(cfg: &Value) -> Result<()> {
    let Some(dir) = cfg["staticPodPath"].as_str() else { return Ok(()) };
    let mut pods = BTreeMap::new();
    let mut apiserver: Option<(String, Value)> = None;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if !p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json") {
            continue;
        }
        let text = std::fs::read_to_string(&p)?;
        let pod: Value = match serde_yaml_ng::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                pods.insert(p.display().to_string(), json!({"phase": "Failed", "reason": e.to_string()}));
                continue;
            }
        };
        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if name == "kube-apiserver" {
            apiserver = Some((text, pod.clone()));
        }
        pods.insert(name, json!({"phase": "Running", "image": pod["spec"]["containers"][0]["image"], "manifest": p}));
    }
    let _ = crate::pki::write_file(PODS_FILE, &serde_json::to_string_pretty(&pods)?, 0o644);
    let hash_file = format!("{STATE_DIR}/kube-apiserver.hash");
    let running = systemctl(&["--quiet", "is-active", APISERVER_UNIT]);
    match apiserver {
        Some((text, pod)) => {
            let h = hash(&text);
            let current = std::fs::read_to_string(&hash_file).unwrap_or_default();
            if running && current == h {
                return Ok(());
            }
            if running {
                eprintln!("I the kube-apiserver manifest changed; restarting its pod");
                systemctl(&["stop", APISERVER_UNIT]);
            }
            let _ = std::process::Command::new("systemctl").args(["reset-failed", APISERVER_UNIT]).status();
            start_apiserver(&pod)?;
            crate::pki::write_file(&hash_file, &h, 0o644)?;
        }
        None if running => {
            eprintln!("I the kube-apiserver manifest is gone; stopping its pod");
            systemctl(&["stop", APISERVER_UNIT]);
            let _ = std::fs::remove_file(&hash_file);
        }
        None => {}
    }
    Ok(())
}

fn start_apiserver(pod: &Value) -> Result<()> {
    let c = &pod["spec"]["containers"][0];
    let image = c["image"].as_str().unwrap_or_default();
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
    let mut cmd: Vec<String> =
        c["command"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_string)).collect();
    cmd.extend(c["args"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_string)));
    if cmd.first().map(String::as_str) == Some("kube-apiserver") {
        cmd.remove(0);
    }
    let bin = std::env::var("STRATA_STANDINS_APISERVER").unwrap_or(APISERVER_BIN.into());
    let status = std::process::Command::new("systemd-run")
        .args([
            "--unit",
            APISERVER_UNIT,
            "--collect",
            "--quiet",
            "--description",
            "kube-apiserver static pod (Strata stand-in)",
        ])
        .args(["-p", "Restart=on-failure", "-p", "RestartSec=2"])
        .arg(format!("--setenv=STRATA_STANDIN_VERSION={tag}"))
        .arg(bin)
        .args(&cmd)
        .status()
        .context("running systemd-run")?;
    if !status.success() {
        bail!("systemd-run for the kube-apiserver pod exited {status}");
    }
    Ok(())
}

/// Where the kubelet keeps its client certificate and key (one PEM file), as the real
/// kubelet's certificate store: `kubelet-client-<time>.pem` files and this link to the
/// current one.
const CLIENT_PEM: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// A key and a CSR for `system:node:<name>`, signed through the API with `api`'s
/// credentials (the bootstrap token, or the current client certificate when rotating):
/// the new certificate and key, as one PEM text.
async fn request_client_certificate(api: &ApiClient, name: &str) -> Result<String> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("system:node:{name}"));
    let csr = params.serialize_request(&key)?.pem()?;
    use base64::Engine;
    let body = json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(csr), "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                 "usages": ["digital signature", "client auth"]}
    });
    let r = api.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", &body).await?;
    if !r.status.is_success() {
        bail!("creating the CSR: {} {}", r.status, r.message());
    }
    let cert = r.body["status"]["certificate"].as_str().context("the CSR was not signed")?;
    let cert = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(cert)?)?;
    Ok(format!("{cert}{}", key.serialize_pem()))
}

/// Saves a new client certificate as the real kubelet's store does: a timestamped file,
/// and `kubelet-client-current.pem` switched to it (a symlink replaced atomically).
fn store_client_pem(pem: &str) -> Result<()> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!("[year]-[month]-[day]-[hour]-[minute]-[second]"))?;
    let file = format!("/var/lib/kubelet/pki/kubelet-client-{stamp}.pem");
    crate::pki::write_file(&file, pem, 0o600)?;
    let tmp = format!("{CLIENT_PEM}.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&file, &tmp)?;
    std::fs::rename(&tmp, CLIENT_PEM)?;
    Ok(())
}

/// Client certificate rotation (`rotateCertificates: true`), as the real kubelet's
/// certificate manager: a kubeconfig with an embedded certificate (kubeadm init's
/// kubelet.conf) seeds the store; once the current certificate is past its rotation
/// deadline, a new one is requested with the current one's credentials. The real
/// deadline is a random point between 70% and 90% of the lifetime; the stand-in takes
/// 80%. Ok(true) when it rotated.
async fn rotate_client_certificate(f: &Flags, cfg: &Value) -> Result<bool> {
    if cfg["rotateCertificates"] != json!(true) {
        return Ok(false);
    }
    let Some(kc) = &f.kubeconfig else { return Ok(false) };
    if !Path::new(kc).exists() {
        return Ok(false);
    }
    let k = Kubeconfig::load(kc)?;
    let current = match std::fs::read_to_string(CLIENT_PEM) {
        Ok(t) => t,
        Err(_) => match k.credentials()? {
            crate::kubeconfig::Credentials::Cert { cert_pem, key_pem } => {
                store_client_pem(&format!("{cert_pem}{key_pem}"))?;
                eprintln!("I seeded the certificate store ({CLIENT_PEM}) from {kc}");
                return Ok(false);
            }
            _ => return Ok(false),
        },
    };
    let info = crate::pki::cert_info(&current, CLIENT_PEM)?;
    let deadline = info.not_before + (info.not_after - info.not_before) * 0.8;
    if time::OffsetDateTime::now_utc() < deadline {
        return Ok(false);
    }
    eprintln!("I rotating the client certificate (expires {}, deadline {deadline} passed)", info.not_after);
    let api = ApiClient::from_kubeconfig(&k)?;
    let pem = request_client_certificate(&api, &node_name(f)).await?;
    store_client_pem(&pem)?;
    Ok(true)
}

/// Without a kubeconfig but with a bootstrap kubeconfig: a CSR for
/// `system:node:<name>`, signed by the cluster, saved as kubelet-client-current.pem and
/// referenced from a new kubeconfig (the real kubelet's TLS bootstrap).
async fn tls_bootstrap(f: &Flags) -> Result<()> {
    let (Some(kc), Some(bkc)) = (&f.kubeconfig, &f.bootstrap_kubeconfig) else { return Ok(()) };
    if Path::new(kc).exists() || !Path::new(bkc).exists() {
        return Ok(());
    }
    let boot = Kubeconfig::load(bkc)?;
    let api = ApiClient::from_kubeconfig(&boot)?;
    let pem = request_client_certificate(&api, &node_name(f)).await?;
    store_client_pem(&pem)?;
    let pem_path = CLIENT_PEM;
    let user =
        User { client_certificate: Some(pem_path.into()), client_key: Some(pem_path.into()), ..Default::default() };
    let k = Kubeconfig::new("default-cluster", &boot.server()?, &boot.ca_pem()?, "default-auth", user);
    crate::pki::write_file(kc, &k.to_yaml(), 0o600)?;
    eprintln!("I TLS bootstrap done: {kc} written for system:node:{}", node_name(f));
    Ok(())
}

fn parse_taints(s: &str) -> Vec<Value> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .filter_map(|t| {
            let (kv, effect) = t.rsplit_once(':')?;
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some(json!({"key": k, "value": v, "effect": effect}))
        })
        .collect()
}

/// Registers the Node (once the kubeconfig exists and the API answers). Ok(true) when
/// the Node exists.
async fn register_node(f: &Flags, version: &str) -> Result<bool> {
    let Some(kc) = &f.kubeconfig else { return Ok(true) };
    if !Path::new(kc).exists() {
        return Ok(false);
    }
    let api = ApiClient::from_kubeconfig(&Kubeconfig::load(kc)?)?;
    let name = node_name(f);
    let r = api.get(&format!("/api/v1/nodes/{name}")).await?;
    if r.status.is_success() {
        return Ok(true);
    }
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    labels.insert("kubernetes.io/arch".into(), json!("amd64"));
    for l in f.node_labels.as_deref().unwrap_or("").split(',').filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.into(), json!(v));
    }
    let address = match &f.node_ip {
        Some(ip) => ip.clone(),
        None => crate::kubeadm::init::detect_address().unwrap_or_default(),
    };
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": parse_taints(f.register_with_taints.as_deref().unwrap_or(""))},
        "status": {"addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
                   "nodeInfo": {"kubeletVersion": version, "containerRuntimeVersion": "containerd://1.6.20", "operatingSystem": "linux", "architecture": "amd64"},
                   "conditions": [ready_condition(network_ready())]}
    });
    let r = api.post("/api/v1/nodes", &node).await?;
    if r.status.is_success() || r.status == reqwest::StatusCode::CONFLICT {
        eprintln!("I node {name} registered");
        return Ok(true);
    }
    bail!("{} {}", r.status, r.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_drop_ins_merge_like_the_kubelet() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: /etc/kubernetes/manifests\nclusterDomain: cluster.local\nevictionHard:\n  memory.available: 100Mi\n").unwrap();
        let d = dir.path().join("conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("20-b.conf"),
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDomain: b.local\n",
        )
        .unwrap();
        std::fs::write(d.join("10-a.conf"), "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDomain: a.local\nevictionHard:\n  nodefs.available: 10%\n").unwrap();
        std::fs::write(d.join("ignored.yaml"), "not: a drop-in").unwrap();
        let args: Vec<String> = [
            format!("--config={}", cfg.display()),
            "--config-dir".into(),
            d.display().to_string(),
            "--kubeconfig=/x".into(),
        ]
        .to_vec();
        let f = parse_flags(&args).unwrap();
        let c = load_config(&f).unwrap();
        assert_eq!(c["clusterDomain"], "b.local", "later drop-ins win");
        assert_eq!(c["evictionHard"]["memory.available"], "100Mi");
        assert_eq!(c["evictionHard"]["nodefs.available"], "10%");
        // No config file (before kubeadm ran): an error, so the kubelet exits non-zero.
        let missing = parse_flags(&["--config=/nonexistent/config.yaml".to_string()]).unwrap();
        assert!(load_config(&missing).unwrap_err().to_string().contains("failed to load kubelet config file"));
        // A drop-in of the wrong kind is refused.
        std::fs::write(d.join("30-c.conf"), "apiVersion: v1\nkind: ConfigMap\n").unwrap();
        assert!(load_config(&f).is_err());
    }

    #[test]
    fn taints_from_the_flag() {
        let t = parse_taints("dedicated=db:NoSchedule,node-role.kubernetes.io/control-plane:NoSchedule");
        assert_eq!(t[0], json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"}));
        assert_eq!(t[1]["key"], "node-role.kubernetes.io/control-plane");
    }
}
