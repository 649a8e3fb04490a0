//! Joining a worker: the JoinConfiguration, a token that is still valid (minted through
//! the API when the stored one expired), `kubeadm join`, and waiting for the Node.

use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::json;

use super::model::WorkerModel;
use crate::kube::{kubeconfig, ClientIdentity, KubeClient};
use crate::node::{quote, Node};
use crate::resources::control_plane::kubeadm::{API_VERSION, CONFIG_PATH, CRI_SOCKET};

/// A token this close to expiry is not used: the join itself takes a while.
const TOKEN_MARGIN: Duration = Duration::from_secs(10 * 60);
const FRESH_TOKEN_TTL: Duration = Duration::from_secs(3600);
const NODE_WAIT: Duration = Duration::from_secs(90);

pub fn join_config(m: &WorkerModel, token: &str) -> String {
    let mut registration = json!({
        "name": m.node.name,
        "criSocket": CRI_SOCKET,
        "taints": m.taints(),
    });
    if let Some(a) = &m.node.address {
        registration["kubeletExtraArgs"] = json!([{"name": "node-ip", "value": a}]);
    }
    let doc = json!({
        "apiVersion": API_VERSION,
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {
            "apiServerEndpoint": m.join.endpoint,
            "token": token,
            "caCertHashes": [m.join.ca_cert_hash],
        }},
        "nodeRegistration": registration,
    });
    serde_yaml_ng::to_string(&doc).expect("JSON values always serialise as YAML")
}

/// The API client of the admin kubeconfig, against `join.endpoint`.
pub fn client(m: &WorkerModel) -> anyhow::Result<KubeClient> {
    let k = kubeconfig::parse(&m.kubeconfig).map_err(|e| anyhow!("kubeconfig: {e}"))?;
    KubeClient::new(
        &m.join.endpoint,
        &k.ca_pem,
        Some(ClientIdentity { cert_pem: &k.client_cert_pem, key_pem: &k.client_key_pem }),
    )
}

/// Whether a token expiring at `expires_at` (RFC 3339) can still be used.
pub fn token_usable(expires_at: &str) -> bool {
    let Ok(t) = time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339) else {
        return false;
    };
    t - time::OffsetDateTime::now_utc() > TOKEN_MARGIN
}

/// The stored token while it is valid, else a fresh one minted through the API.
pub async fn token(m: &WorkerModel) -> anyhow::Result<String> {
    if token_usable(&m.join.token_expires_at) {
        return Ok(m.join.token.clone());
    }
    Ok(client(m)?.create_bootstrap_token(FRESH_TOKEN_TTL).await?.token)
}

pub async fn kubeadm_join(node: &Node, m: &WorkerModel, token: &str) -> anyhow::Result<()> {
    node.write_file(CONFIG_PATH, join_config(m, token).as_bytes(), 0o600).await?;
    let steps = [
        ("validating the kubeadm configuration", format!("kubeadm config validate --config {}", quote(CONFIG_PATH))),
        ("kubeadm join", format!("kubeadm join --config {}", quote(CONFIG_PATH))),
    ];
    for (step, cmd) in steps {
        let out = node.run(step, &cmd).await?;
        if out.status != 0 {
            let text = format!("{}\n{}", out.stdout.trim(), out.stderr.trim()).replace(token, "<redacted>");
            bail!("{step} failed on {} (exit {}): {}", node.label(), out.status, text.trim());
        }
    }
    Ok(())
}

/// Waits for the Node object the kubelet registers.
pub async fn wait_for_node(client: &KubeClient, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + NODE_WAIT;
    loop {
        match client.get_node(name).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) | Err(_) if tokio::time::Instant::now() < deadline => {
                crate::wait::sleep("node_object", Duration::from_secs(1)).await
            }
            Ok(None) => bail!("node {name} joined but no Node object {name} appeared within {}s", NODE_WAIT.as_secs()),
            Err(e) => return Err(e.context(format!("waiting for Node {name}"))),
        }
    }
}
