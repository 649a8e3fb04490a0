//! The data of `strata_worker`; field names equal schema names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kube::Taint;
use crate::resources::cluster_node::ClusterNodeModel;
use crate::resources::control_plane::JoinModel;

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct TaintModel {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

impl From<&TaintModel> for Taint {
    fn from(t: &TaintModel) -> Taint {
        Taint { key: t.key.clone(), value: t.value.clone().filter(|v| !v.is_empty()), effect: t.effect.clone() }
    }
}

/// Taints Kubernetes sets and removes itself (the node lifecycle controller, the kubelet,
/// `kubectl cordon`): never declared, never removed by this resource.
pub const KUBERNETES_TAINTS: [&str; 8] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
    "node.cloudprovider.kubernetes.io/uninitialized",
];

/// The taints this resource owns (`owned`, from its state) as the Node has them: each
/// matched by key and effect; one the Node lacks is dropped (drift: planned back).
/// Kubernetes drops an empty value (`omitempty`), so an empty or missing value reads
/// back as the state wrote it (`""` stays `""`, null stays null).
pub fn owned_taints(owned: &[TaintModel], observed: &[Taint]) -> Vec<TaintModel> {
    owned
        .iter()
        .filter_map(|t| {
            let o = observed.iter().find(|o| o.same_as(&t.key, &t.effect))?;
            let value = match o.value.as_deref() {
                None | Some("") => t.value.clone().filter(|v| v.is_empty()),
                Some(v) => Some(v.to_string()),
            };
            Some(TaintModel { key: t.key.clone(), value, effect: t.effect.clone() })
        })
        .collect()
}

/// The taints `prior` owned that `planned` no longer declares (by key and effect).
/// Kubernetes' own are never removed, even when an older state recorded them.
pub fn removed_taints(prior: &[TaintModel], planned: &[TaintModel]) -> Vec<Taint> {
    prior
        .iter()
        .filter(|p| !planned.iter().any(|t| t.key == p.key && t.effect == p.effect))
        .filter(|p| !KUBERNETES_TAINTS.contains(&p.key.as_str()))
        .map(Taint::from)
        .collect()
}

/// No `Debug`: holds a token and a kubeconfig.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct WorkerModel {
    pub id: Option<String>,
    /// `name` (the Node name), `address` (the kubelet's `--node-ip`, unset: the
    /// kubelet's choice, never `ssh.host`) and `ssh`.
    #[serde(flatten)]
    pub node: ClusterNodeModel,
    pub kubernetes_version: String,
    pub join: JoinModel,
    pub kubeconfig: String,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub taint: Vec<TaintModel>,
    pub install_packages: Option<bool>,
    pub joined: Option<bool>,
}

impl WorkerModel {
    pub fn taints(&self) -> Vec<Taint> {
        self.taint.iter().map(Taint::from).collect()
    }
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels.clone().unwrap_or_default()
    }
}

/// A nested block list with no blocks arrives as null in a configuration.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TaintModel>, D::Error> {
    Ok(Option::<Vec<TaintModel>>::deserialize(d)?.unwrap_or_default())
}
