//! Embedded etcd, k3s-style (pkg/etcd): REAL etcd (Debian's `/usr/bin/etcd`, 3.5) run as
//! a child with TLS client and peer certificates under `server/tls/etcd`, data in
//! `server/db/etcd`, listening on node-ip:2379/2380 and 127.0.0.1:2379. A joining server
//! adds itself as a member through the existing members (Cluster/MemberAdd over gRPC)
//! and starts with `--initial-cluster-state=existing`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::etcd::Etcd;
use crate::pki::{self, Usage};

pub struct EtcdPaths {
    pub tls: PathBuf,
    pub data: PathBuf,
}

impl EtcdPaths {
    pub fn new(server_dir: &Path) -> EtcdPaths {
        EtcdPaths { tls: server_dir.join("tls/etcd"), data: server_dir.join("db/etcd") }
    }
    fn f(&self, n: &str) -> String {
        self.tls.join(n).to_string_lossy().into_owned()
    }
    pub fn server_ca(&self) -> String {
        self.f("server-ca.crt")
    }
    pub fn client_cert(&self) -> String {
        self.f("client.crt")
    }
    pub fn client_key(&self) -> String {
        self.f("client.key")
    }
    pub fn has_member(&self) -> bool {
        self.data.join("member").is_dir()
    }
}

/// The etcd CAs (first server; joining servers get them with the bootstrap data).
pub fn ensure_cas(p: &EtcdPaths) -> Result<()> {
    pki::ensure_ca(&p.f("server-ca.crt"), &p.f("server-ca.key"), "etcd-server-ca")?;
    pki::ensure_ca(&p.f("peer-ca.crt"), &p.f("peer-ca.key"), "etcd-peer-ca")
}

/// This node's etcd certificates (issued at every start, as k3s renews them).
pub fn issue_certs(p: &EtcdPaths, node_name: &str, node_ip: &str) -> Result<()> {
    let server_ca = pki::load_ca(&p.f("server-ca.crt"), &p.f("server-ca.key"))?;
    let peer_ca = pki::load_ca(&p.f("peer-ca.crt"), &p.f("peer-ca.key"))?;
    let sans = vec![node_name.to_string(), "localhost".into(), "127.0.0.1".into(), "::1".into(), node_ip.to_string()];
    let write = |name: &str, leaf: pki::Leaf| -> Result<()> {
        pki::write_file(p.tls.join(format!("{name}.crt")), &leaf.cert_pem, 0o644)?;
        pki::write_file(p.tls.join(format!("{name}.key")), &leaf.key_pem, 0o600)
    };
    write("server-client", pki::issue(&server_ca, "etcd-server", &[], &sans, Usage::ServerClient)?)?;
    write("peer-server-client", pki::issue(&peer_ca, "etcd-peer", &[], &sans, Usage::ServerClient)?)?;
    write("client", pki::issue(&server_ca, "etcd-client", &[], &[], Usage::Client)?)?;
    Ok(())
}

/// A client of the etcd at `endpoints` with this node's client certificate.
pub fn client(p: &EtcdPaths, endpoints: &[String]) -> Result<Etcd> {
    Etcd::new(endpoints, &p.server_ca(), &p.client_cert(), &p.client_key())
}

pub fn member_name(node_name: &str, data: &Path) -> Result<String> {
    let f = data.parent().unwrap_or(data).join("etcd-name");
    if let Ok(n) = std::fs::read_to_string(&f) {
        return Ok(n.trim().to_string());
    }
    let n = format!("{node_name}-{}", &super::token::random_secret()[..8]);
    pki::write_file(&f, &n, 0o600)?;
    Ok(n)
}

pub struct Start<'a> {
    pub name: &'a str,
    pub node_ip: &'a str,
    /// `NAME=URL,...`; None: a one-member new cluster of this node.
    pub initial_cluster: Option<String>,
    pub extra_args: Vec<String>,
    pub force_new_cluster: bool,
}

pub fn peer_url(ip: &str) -> String {
    format!("https://{}:2380", bracket(ip))
}

pub fn client_url(ip: &str) -> String {
    format!("https://{}:2379", bracket(ip))
}

fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// Runs etcd as a child (killed with the stand-in) and waits until it answers.
pub async fn start(p: &EtcdPaths, s: &Start<'_>) -> Result<tokio::process::Child> {
    super::kill_stale("etcd", &format!("--data-dir={}", p.data.display()));
    if std::net::TcpStream::connect_timeout(&"127.0.0.1:2379".parse().unwrap(), Duration::from_millis(500)).is_ok() {
        bail!(
            "127.0.0.1:2379 is already in use, so the embedded etcd cannot listen (Debian's etcd-server package \
             starts its own etcd.service: `systemctl disable --now etcd`)"
        );
    }
    std::fs::create_dir_all(&p.data)?;
    std::fs::set_permissions(&p.data, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let state = if s.initial_cluster.is_some() { "existing" } else { "new" };
    let initial = s.initial_cluster.clone().unwrap_or_else(|| format!("{}={}", s.name, peer_url(s.node_ip)));
    let mut cmd = tokio::process::Command::new("etcd");
    cmd.arg(format!("--name={}", s.name))
        .arg(format!("--data-dir={}", p.data.display()))
        .arg(format!("--listen-client-urls={},https://127.0.0.1:2379", client_url(s.node_ip)))
        .arg(format!("--advertise-client-urls={}", client_url(s.node_ip)))
        .arg(format!("--listen-peer-urls={}", peer_url(s.node_ip)))
        .arg(format!("--initial-advertise-peer-urls={}", peer_url(s.node_ip)))
        .arg(format!("--initial-cluster={initial}"))
        .arg(format!("--initial-cluster-state={state}"))
        .arg("--client-cert-auth=true")
        .arg(format!("--trusted-ca-file={}", p.server_ca()))
        .arg(format!("--cert-file={}", p.f("server-client.crt")))
        .arg(format!("--key-file={}", p.f("server-client.key")))
        .arg("--peer-client-cert-auth=true")
        .arg(format!("--peer-trusted-ca-file={}", p.f("peer-ca.crt")))
        .arg(format!("--peer-cert-file={}", p.f("peer-server-client.crt")))
        .arg(format!("--peer-key-file={}", p.f("peer-server-client.key")))
        .arg("--heartbeat-interval=500")
        .arg("--election-timeout=5000")
        .arg("--snapshot-count=10000")
        .arg("--log-level=warn");
    if s.force_new_cluster {
        cmd.arg("--force-new-cluster");
    }
    for a in &s.extra_args {
        cmd.arg(if a.starts_with("--") { a.clone() } else { format!("--{a}") });
    }
    let log_path = p.data.parent().unwrap_or(&p.data).join("etcd.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let mut child =
        cmd.stdout(log.try_clone()?).stderr(log).env_remove("NOTIFY_SOCKET").kill_on_drop(true).spawn().context(
            "running etcd (install Debian's `etcd-server`: the stand-in runs the real etcd where k3s embeds it)",
        )?;
    let c = client(p, &["https://127.0.0.1:2379".to_string()])?;
    for _ in 0..120 {
        if c.healthy().await {
            return Ok(child);
        }
        if let Ok(Some(st)) = child.try_wait() {
            bail!("etcd exited {st} (log: {})", log_path.display());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("etcd did not become ready within 60s (log: {})", log_path.display())
}

/// Adds this node as a member through `existing` (client URLs of the cluster); returns
/// the `--initial-cluster` value for the new member.
pub async fn join(p: &EtcdPaths, existing: &[String], name: &str, node_ip: &str) -> Result<String> {
    let c = client(p, existing)?;
    let me = peer_url(node_ip);
    let members = c.members().await.context("listing the etcd members")?;
    let members = if members.iter().any(|m| m.peer_urls.contains(&me)) {
        members
    } else {
        c.member_add(&me).await.context("adding this node as an etcd member")?
    };
    let mut parts = Vec::new();
    for m in members {
        let n = if m.peer_urls.contains(&me) { name.to_string() } else { m.name.clone() };
        if n.is_empty() {
            continue;
        }
        for u in &m.peer_urls {
            parts.push(format!("{n}={u}"));
        }
    }
    Ok(parts.join(","))
}

/// The members as JSON for the supervisor's `/db/info`.
pub async fn members_json(c: &Etcd) -> Result<serde_json::Value> {
    let ms = c.members().await?;
    Ok(serde_json::json!({"members": ms.iter().map(|m| serde_json::json!({
        "ID": m.id, "name": m.name, "peerURLs": m.peer_urls, "clientURLs": m.client_urls, "isLearner": m.is_learner
    })).collect::<Vec<_>>()}))
}
