//! What a control-plane node has on disk (kubeadm's files, the CA), and whether the
//! API answers `/readyz` through the endpoint with a certificate that chains to the
//! cluster CA.

use std::time::Duration;

use anyhow::bail;

use super::kubeadm::PKI_DIR;
use crate::kube::KubeClient;
use crate::node::Node;

/// A node as found.
#[derive(Debug, Default, Clone)]
pub struct Found {
    /// kubeadm init/join ran: kubelet.conf and the kube-apiserver static pod manifest.
    pub joined: bool,
    /// /etc/kubernetes/pki/ca.crt, when present.
    pub ca_cert: Option<String>,
}

pub async fn inspect(node: &Node) -> anyhow::Result<Found> {
    let out = node
        .run(
            "looking for kubeadm's files",
            "test -f /etc/kubernetes/kubelet.conf && test -f /etc/kubernetes/manifests/kube-apiserver.yaml && echo joined",
        )
        .await?;
    let ca = node.read_file(&format!("{PKI_DIR}/ca.crt")).await?;
    Ok(Found { joined: out.stdout.trim() == "joined", ca_cert: ca.map(|b| String::from_utf8_lossy(&b).into_owned()) })
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
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}
