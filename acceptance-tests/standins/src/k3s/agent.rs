//! `k3s agent`: the server's CA checked against the token, a kubelet client certificate
//! from the supervisor (basic auth `node:<secret>`), containerd with the images, the Node.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::config::Config;
use super::token::Token;
use super::{containerd, node};
use crate::kubeconfig::Kubeconfig;

pub async fn run(cfg: Config, version: String) -> Result<i32> {
    let data = PathBuf::from(cfg.string_or("data-dir", super::DATA_DIR));
    let agent = data.join("agent");
    let Some(server) = cfg.str("server").map(str::to_string) else { bail!("--server is required") };
    let tok = match (cfg.str("token"), cfg.str("token-file")) {
        (Some(t), _) => t.to_string(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading token-file {f}"))?,
        _ => bail!("--token is required"),
    };
    let tok = Token::parse(&tok, "node")?;
    for t in cfg.list("node-taint") {
        node::parse_taint(&t)?;
    }
    let node_name = super::node_name(&cfg);
    let node_ip = super::node_ip(&cfg)?;
    let ca = super::fetch_cacerts(&server, &tok).await?;
    crate::pki::write_file(agent.join("server-ca.crt"), &String::from_utf8_lossy(&ca), 0o644)?;
    let r = super::http(Some(&ca))?
        .get(format!("{}/v1-k3s/client-kubelet.crt", server.trim_end_matches('/')))
        .basic_auth("node", Some(&tok.password))
        .header("k3s-Node-Name", &node_name)
        .send()
        .await
        .context("getting the kubelet client certificate")?;
    if !r.status().is_success() {
        bail!("failed to get the kubelet client certificate from {server}: {}", r.status());
    }
    let pem = r.text().await?;
    let split = pem
        .find("-----BEGIN PRIVATE KEY")
        .or_else(|| pem.find("-----BEGIN EC PRIVATE KEY"))
        .context("no key in the kubelet certificate answer")?;
    let (cert, key) = pem.split_at(split);
    crate::pki::write_file(agent.join("client-kubelet.crt"), cert, 0o644)?;
    crate::pki::write_file(agent.join("client-kubelet.key"), key, 0o600)?;
    let mut kc =
        Kubeconfig::new("local", &server, &String::from_utf8_lossy(&ca), "user", Kubeconfig::cert_user(cert, key));
    kc.contexts[0].name = "local".into();
    kc.current_context = "local".into();
    crate::pki::write_file(agent.join("kubelet.kubeconfig"), &kc.to_yaml(), 0o600)?;

    let cpaths = containerd::Paths { agent_dir: agent.clone() };
    let mut ctr =
        containerd::start(&cpaths, &cfg.string_or("pause-image", containerd::DEFAULT_PAUSE), cfg.str("snapshotter"))
            .await?;
    containerd::write_hosts(
        &cpaths,
        Path::new(&cfg.string_or("private-registry", super::REGISTRIES)),
        cfg.bool("disable-default-registry-endpoint"),
    )?;
    containerd::import_images(&cpaths).await?;
    let client = crate::apiclient::ApiClient::from_kubeconfig(&kc)?;
    let spec = node::NodeSpec {
        name: node_name,
        ip: node_ip,
        version,
        server: false,
        etcd: false,
        labels: cfg.list("node-label"),
        taints: cfg.list("node-taint"),
    };
    tokio::spawn(node::run(client, spec, super::sd_notify_ready));
    super::terminated().await;
    super::stop_child("containerd", &mut ctr).await;
    Ok(0)
}
