//! What a control-plane node has on disk (kubeadm's files, the CA), and whether the
//! API answers `/readyz` through the endpoint with a certificate that chains to the
//! cluster CA.

use std::time::Duration;

use anyhow::bail;

use super::kubeadm::PKI_DIR;
use super::validate::KubeVersion;
use crate::kube::KubeClient;
use crate::node::Node;

const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

/// A node as found.
#[derive(Debug, Default, Clone)]
pub struct Found {
    /// kubeadm init/join ran: kubelet.conf and the kube-apiserver static pod manifest.
    pub joined: bool,
    /// /etc/kubernetes/pki/ca.crt, when present.
    pub ca_cert: Option<String>,
    /// The version the node's control plane runs: the tag of the kube-apiserver image in
    /// its static pod manifest (kubeadm init, join and upgrade write it).
    pub version: Option<KubeVersion>,
}

/// The version in a kube-apiserver static pod manifest: its image's tag (e.g.
/// `registry.k8s.io/kube-apiserver:v1.35.0`).
pub fn manifest_version(manifest: &str) -> Option<KubeVersion> {
    let pod: serde_json::Value = serde_yaml_ng::from_str(manifest).ok()?;
    let containers = pod.pointer("/spec/containers")?.as_array()?;
    let image = containers
        .iter()
        .filter_map(|c| c.get("image").and_then(serde_json::Value::as_str))
        .find(|i| i.rsplit('/').next().is_some_and(|n| n.starts_with("kube-apiserver:")))?;
    let tag = image.rsplit_once(':')?.1;
    KubeVersion::parse(tag.split('@').next().unwrap_or(tag)).ok()
}

pub async fn inspect(node: &Node) -> anyhow::Result<Found> {
    let out = node
        .run(
            "looking for kubeadm's files",
            &format!("test -f /etc/kubernetes/kubelet.conf && test -f {MANIFEST} && echo joined"),
        )
        .await?;
    let ca = node.read_file(&format!("{PKI_DIR}/ca.crt")).await?;
    let manifest = node.read_file(MANIFEST).await?;
    Ok(Found {
        joined: out.stdout.trim() == "joined",
        ca_cert: ca.map(|b| String::from_utf8_lossy(&b).into_owned()),
        version: manifest.and_then(|b| manifest_version(&String::from_utf8_lossy(&b))),
    })
}

/// `/readyz` through `endpoint`, verified against `ca_pem` (anonymous, as real
/// clusters allow `system:public-info-viewer`).
pub async fn ready(endpoint: &str, ca_pem: &str) -> anyhow::Result<()> {
    let client = KubeClient::new(endpoint, ca_pem, None)?;
    if !client.readyz().await? {
        bail!("https://{endpoint}/readyz does not answer ok");
    }
    Ok(())
}

/// Waits up to `limit` for [`ready`], polling; the last error when it never is.
pub async fn wait_ready(endpoint: &str, ca_pem: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match ready(endpoint, ca_pem).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context(format!("the API did not become ready within {}s", limit.as_secs())))
            }
            Err(_) => crate::wait::sleep("apiserver_ready", Duration::from_secs(1)).await,
        }
    }
}
