//! The files a control-plane node needs in /etc/kubernetes/pki before kubeadm runs:
//! the cluster's CAs and service-account keys (kubeadm uses existing CA files instead
//! of generating new ones, so the cluster keeps its identity), and the external etcd
//! client files.

use super::kubeadm::PKI_DIR;
use super::model::ControlPlaneModel;
use crate::node::Node;

/// (path, content, mode) of every PKI file, keys 0600.
pub fn files(m: &ControlPlaneModel) -> Vec<(String, String, u32)> {
    let mut out = vec![
        (format!("{PKI_DIR}/ca.crt"), m.ca_cert.clone(), 0o644),
        (format!("{PKI_DIR}/ca.key"), m.ca_key.clone(), 0o600),
        (format!("{PKI_DIR}/front-proxy-ca.crt"), m.front_proxy_ca_cert.clone(), 0o644),
        (format!("{PKI_DIR}/front-proxy-ca.key"), m.front_proxy_ca_key.clone(), 0o600),
        (format!("{PKI_DIR}/sa.pub"), m.service_account_public_key.clone(), 0o644),
        (format!("{PKI_DIR}/sa.key"), m.service_account_private_key.clone(), 0o600),
        (format!("{PKI_DIR}/etcd/ca.crt"), m.etcd.ca_cert.clone(), 0o644),
        (format!("{PKI_DIR}/apiserver-etcd-client.crt"), m.etcd.client_cert.clone(), 0o644),
        (format!("{PKI_DIR}/apiserver-etcd-client.key"), m.etcd.client_key.clone(), 0o600),
    ];
    if let Some(k) = &m.etcd.ca_key {
        out.push((format!("{PKI_DIR}/etcd/ca.key"), k.clone(), 0o600));
    }
    out
}

/// Writes the files that differ from what the node has.
pub async fn place(node: &Node, m: &ControlPlaneModel) -> anyhow::Result<()> {
    for (path, content, mode) in files(m) {
        let content = ensure_newline(&content);
        if node.read_file(&path).await?.as_deref() != Some(content.as_bytes()) {
            node.write_file(&path, content.as_bytes(), mode).await?;
        }
    }
    Ok(())
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// Whether the CA certificate on a node is `ca_cert` (same certificate, whitespace aside).
pub fn same_ca(on_node: &str, ca_cert: &str) -> bool {
    on_node.trim() == ca_cert.trim()
}
