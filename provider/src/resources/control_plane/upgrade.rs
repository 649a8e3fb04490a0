//! An in-place upgrade to the next patch or minor version, the kubeadm way: first an
//! etcd snapshot on the first node, then on the first node the new kubeadm, `kubeadm
//! upgrade apply`, then the new kubelet and kubectl; on each other node in turn the new
//! kubeadm, `kubeadm upgrade node`, the new kubelet and kubectl, `/readyz` before the
//! next. The plan has already refused skips and downgrades.
//!
//! A roll that stopped part-way (a node failed) resumes where it stopped: what each node
//! still needs is worked out from what it runs (its API server manifest's image tag,
//! its kubelet package) and from the cluster's version in kubeadm-config, so `upgrade
//! apply` never runs twice and nodes already done are left alone.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use super::cluster::{self, run_redacted, Member};
use super::kubeadm::PKI_DIR;
use super::model::ControlPlaneModel;
use super::probe;
use super::validate::KubeVersion;
use crate::etcd::{self, snapshot};
use crate::kube::packages;
use crate::node::quote;

const READY_WAIT: Duration = Duration::from_secs(120);
/// Where the snapshot taken before an upgrade is kept, on the first control-plane node.
pub const SNAPSHOT_DIR: &str = "/var/lib/strata/etcd-snapshots";

/// What one node still needs to reach the target version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `kubeadm upgrade apply`: the cluster (kubeadm-config) is not at the target yet.
    Apply,
    /// `kubeadm upgrade node`: the cluster is (or will be, after `Apply`), this node not.
    Node,
    /// Only the kubelet and kubectl packages (the node's control plane already runs it).
    Kubelet,
    Done,
}

/// A node as found before the roll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeVersion {
    /// The version its control plane runs (API server manifest), if any.
    pub control_plane: Option<KubeVersion>,
    /// Its kubelet package is at the target (always true when packages are not managed).
    pub kubelet_current: bool,
}

/// The step of each node (in configuration order) to bring the cluster to `to`, given
/// the cluster's version in kubeadm-config. `upgrade apply` runs on the first node only
/// while the cluster is not at `to` (it is what moves kubeadm-config), so a roll that
/// stopped after it resumes with `upgrade node` on the nodes that are left.
pub fn steps(cluster: Option<KubeVersion>, nodes: &[NodeVersion], to: KubeVersion) -> Result<Vec<Step>, String> {
    if let Some(c) = cluster.filter(|c| *c > to) {
        return Err(format!(
            "the cluster already runs {c} (kubeadm-config), newer than kubernetes_version {to}: set \
             kubernetes_version = \"{c}\""
        ));
    }
    let applied = cluster == Some(to);
    Ok(nodes
        .iter()
        .enumerate()
        .map(|(i, n)| match () {
            _ if i == 0 && !applied => Step::Apply,
            _ if n.control_plane != Some(to) => Step::Node,
            _ if !n.kubelet_current => Step::Kubelet,
            _ => Step::Done,
        })
        .collect())
}

/// The file the snapshot before the upgrade from `from` to `to` goes to, named with the
/// time (UTC) it is taken.
pub fn snapshot_path(from: KubeVersion, to: KubeVersion, at: time::OffsetDateTime) -> String {
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    format!("{SNAPSHOT_DIR}/pre-upgrade-{from}-to-{to}-{stamp}.db")
}

/// etcdctl on the first node, installed (Debian's `etcd-client`) when packages are
/// managed and it is missing: a control-plane node on external etcd may not have it.
async fn ensure_etcdctl(x: &Member<'_>, m: &ControlPlaneModel) -> anyhow::Result<()> {
    if !m.install_packages() || x.node.run("looking for etcdctl", "command -v etcdctl").await?.status == 0 {
        return Ok(());
    }
    packages::install_unpinned(&x.node, &["etcd-client"]).await
}

/// A snapshot of the cluster's etcd, saved and checked on the first node (through the
/// `etcd` endpoints, with the API servers' etcd client certificate kubeadm uses there).
async fn take_snapshot(
    x: &Member<'_>,
    m: &ControlPlaneModel,
    from: KubeVersion,
    to: KubeVersion,
) -> anyhow::Result<snapshot::Saved> {
    ensure_etcdctl(x, m).await?;
    let (ca, cert, key) = (
        format!("{PKI_DIR}/etcd/ca.crt"),
        format!("{PKI_DIR}/apiserver-etcd-client.crt"),
        format!("{PKI_DIR}/apiserver-etcd-client.key"),
    );
    let files = etcd::ClientFiles { ca: &ca, cert: &cert, key: &key };
    let path = snapshot_path(from, to, time::OffsetDateTime::now_utc());
    snapshot::save(&x.node, &files, &m.etcd.endpoints, &path).await
}

async fn kubelet(x: &Member<'_>, m: &ControlPlaneModel, to: KubeVersion) -> anyhow::Result<()> {
    if m.install_packages() {
        packages::install_held(&x.node, &["kubelet", "kubectl"], &to.package_version()).await?;
    }
    x.node.run_ok("restarting the kubelet", "systemctl daemon-reload && systemctl restart kubelet").await.map(|_| ())
}

async fn upgrade_one(x: &Member<'_>, m: &ControlPlaneModel, to: KubeVersion, step: Step) -> anyhow::Result<()> {
    if step == Step::Done {
        return Ok(());
    }
    if step != Step::Kubelet {
        if m.install_packages() {
            packages::install_held(&x.node, &["kubeadm"], &to.package_version()).await?;
        }
        let cmd = match step {
            Step::Apply => format!("kubeadm upgrade apply {} --yes", quote(&to.to_string())),
            _ => "kubeadm upgrade node".to_string(),
        };
        run_redacted(&x.node, &cmd, &cmd, &[]).await?;
    }
    kubelet(x, m, to).await?;
    probe::wait_ready(&m.endpoint, &m.ca_cert, READY_WAIT).await
}

/// Upgrades `members` (all joined) from `from` to `to`, first node first, one at a
/// time, after an etcd snapshot (recorded in `snapshot` as `NODE:PATH` as soon as it is
/// checked). A failed snapshot stops everything before any node is touched; a failed
/// node stops the roll there, the nodes after it untouched.
pub async fn upgrade(
    members: &[Member<'_>],
    m: &ControlPlaneModel,
    from: KubeVersion,
    to: KubeVersion,
    snapshot: &mut Option<String>,
) -> anyhow::Result<()> {
    let Some(first) = members.first() else { return Ok(()) };
    let cluster = cluster::admin_client(m)?
        .kubeadm_cluster_version()
        .await
        .context("reading the cluster's version from kubeadm-config")?
        .map(|v| KubeVersion::parse(&v).map_err(|e| anyhow!("kubeadm-config kubernetesVersion: {e}")))
        .transpose()?;
    let mut found = Vec::new();
    for x in members {
        let kubelet_current = !m.install_packages()
            || packages::installed_version(&x.node, "kubelet").await?.as_deref() == Some(&to.package_version());
        found.push(NodeVersion { control_plane: probe::inspect(&x.node).await?.version, kubelet_current });
    }
    let steps = steps(cluster, &found, to).map_err(|e| anyhow!("kubernetes_version: {e}"))?;
    if steps.iter().any(|s| matches!(s, Step::Apply | Step::Node)) {
        let saved = take_snapshot(first, m, from, to).await.map_err(|e| {
            anyhow!(
                "{e:#}\n\nThe upgrade to {to} did not start: no node was changed. An etcd snapshot is taken before \
                 any control-plane node is upgraded; fix the cause above and apply again."
            )
        })?;
        *snapshot = Some(format!("{}:{}", first.m.name, saved.path));
    }
    for (i, (x, step)) in members.iter().zip(&steps).enumerate() {
        if let Err(e) = upgrade_one(x, m, to, *step).await {
            let left: Vec<&str> = members[i + 1..].iter().map(|x| x.m.name.as_str()).collect();
            let untouched = match left.is_empty() {
                true => String::new(),
                false => format!(" {} not touched (still {from});", left.join(", ")),
            };
            bail!(
                "{e:#}\n\nThe upgrade to {to} stopped at control-plane node {}:{untouched} the state keeps \
                 kubernetes_version {from}, so the next plan shows the upgrade again and its apply resumes at {} \
                 (nodes already at {to} are not upgraded again).",
                x.m.name,
                x.m.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    fn at(cp: &str, kubelet: bool) -> NodeVersion {
        NodeVersion { control_plane: Some(v(cp)), kubelet_current: kubelet }
    }

    #[test]
    fn a_fresh_upgrade_applies_on_the_first_node_and_upgrades_the_others() {
        let nodes = [at("v1.35.0", false), at("v1.35.0", false), at("v1.35.0", false)];
        assert_eq!(steps(Some(v("v1.35.0")), &nodes, v("v1.36.1")), Ok(vec![Step::Apply, Step::Node, Step::Node]));
    }

    #[test]
    fn a_roll_stopped_at_the_second_node_resumes_there_without_a_second_upgrade_apply() {
        // node1 done, node2 failed in `upgrade node`, node3 untouched.
        let nodes = [at("v1.36.1", true), at("v1.35.0", false), at("v1.35.0", false)];
        assert_eq!(steps(Some(v("v1.36.1")), &nodes, v("v1.36.1")), Ok(vec![Step::Done, Step::Node, Step::Node]));
        // node2's control plane upgraded, its kubelet package not yet.
        let nodes = [at("v1.36.1", true), at("v1.36.1", false), at("v1.35.0", false)];
        assert_eq!(steps(Some(v("v1.36.1")), &nodes, v("v1.36.1")), Ok(vec![Step::Done, Step::Kubelet, Step::Node]));
    }

    #[test]
    fn a_failed_upgrade_apply_runs_again_on_the_first_node() {
        // Its manifests were retagged, but kubeadm-config still says the old version.
        let nodes = [at("v1.36.1", false), at("v1.35.0", false)];
        assert_eq!(steps(Some(v("v1.35.0")), &nodes, v("v1.36.1")), Ok(vec![Step::Apply, Step::Node]));
        assert_eq!(steps(None, &nodes, v("v1.36.1")), Ok(vec![Step::Apply, Step::Node]));
    }

    #[test]
    fn everything_at_the_target_is_done_and_a_newer_cluster_is_refused() {
        let nodes = [at("v1.36.1", true), at("v1.36.1", true)];
        assert_eq!(steps(Some(v("v1.36.1")), &nodes, v("v1.36.1")), Ok(vec![Step::Done, Step::Done]));
        let e = steps(Some(v("v1.36.2")), &nodes, v("v1.36.1")).unwrap_err();
        assert!(e.contains("already runs v1.36.2"), "{e}");
    }

    #[test]
    fn the_snapshot_is_named_after_the_versions_and_the_time() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_796_411_109).unwrap();
        assert_eq!(
            snapshot_path(v("v1.35.0"), v("v1.36.1"), t),
            "/var/lib/strata/etcd-snapshots/pre-upgrade-v1.35.0-to-v1.36.1-20261204T190509Z.db"
        );
    }
}
