//! An in-place upgrade to the next patch or minor version, the kubeadm way: on the
//! first node the new kubeadm, `kubeadm upgrade apply`, then the new kubelet and
//! kubectl; on each other node in turn the new kubeadm, `kubeadm upgrade node`, the
//! new kubelet and kubectl. The plan has already refused skips and downgrades.

use std::time::Duration;

use super::cluster::{run_redacted, Member};
use super::model::ControlPlaneModel;
use super::probe;
use super::validate::KubeVersion;
use crate::kube::packages;
use crate::node::quote;

const READY_WAIT: Duration = Duration::from_secs(120);

async fn kubelet(x: &Member<'_>, m: &ControlPlaneModel, to: KubeVersion) -> anyhow::Result<()> {
    if m.install_packages() {
        packages::install_held(&x.node, &["kubelet", "kubectl"], &to.package_version()).await?;
    }
    x.node.run_ok("restarting the kubelet", "systemctl daemon-reload && systemctl restart kubelet").await.map(|_| ())
}

/// Upgrades `members` (all joined) to `to`, first node first, one at a time.
pub async fn upgrade(members: &[Member<'_>], m: &ControlPlaneModel, to: KubeVersion) -> anyhow::Result<()> {
    for (i, x) in members.iter().enumerate() {
        if m.install_packages() {
            packages::install_held(&x.node, &["kubeadm"], &to.package_version()).await?;
        }
        let cmd = match i {
            0 => format!("kubeadm upgrade apply {} --yes", quote(&to.to_string())),
            _ => "kubeadm upgrade node".to_string(),
        };
        run_redacted(&x.node, &cmd, &cmd, &[]).await?;
        kubelet(x, m, to).await?;
        probe::wait_ready(&m.endpoint, &m.ca_cert, READY_WAIT).await?;
    }
    Ok(())
}
