//! The data of `strata_k3s_cluster`; field names equal schema names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resources::cluster_node::ClusterNodeModel;
use crate::resources::k3s::{AirgapModel, RegistryModel};

pub const DEFAULT_SCHEDULE: &str = "0 */12 * * *";
pub const DEFAULT_RETENTION: i64 = 5;
pub const DEFAULT_FLANNEL_BACKEND: &str = "vxlan";

/// A server: the shared node shape plus its Node labels and taints.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ServerModel {
    #[serde(flatten)]
    pub node: ClusterNodeModel,
    pub labels: Option<BTreeMap<String, String>>,
    pub taints: Option<Vec<String>>,
}

/// No `Debug`: holds a private key.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq)]
pub struct DatastoreModel {
    pub endpoint: String,
    pub ca_cert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct EtcdSnapshotModel {
    pub schedule: Option<String>,
    pub retention: Option<i64>,
    pub dir: Option<String>,
}

/// A server as last observed.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct ServerStatus {
    pub name: String,
    pub active: bool,
    pub version: String,
    /// config.yaml on the node is what the resource writes.
    pub configured: bool,
}

/// No `Debug`: holds the token and keys.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct K3sClusterModel {
    pub id: Option<String>,
    pub server: Vec<ServerModel>,
    pub version: String,
    pub token: Option<String>,
    pub tls_san: Option<Vec<String>>,
    pub disable: Option<Vec<String>>,
    pub flannel_backend: Option<String>,
    pub config: Option<BTreeMap<String, String>>,
    pub datastore: Option<DatastoreModel>,
    pub etcd_snapshot: Option<EtcdSnapshotModel>,
    pub restore_from_snapshot: Option<String>,
    pub allow_empty_cluster: Option<bool>,
    pub delete_data_on_destroy: Option<bool>,
    pub airgap: Option<AirgapModel>,
    pub registry: Option<RegistryModel>,
    pub server_url: Option<String>,
    pub kubeconfig: Option<String>,
    pub ca_cert: Option<String>,
    pub join_token: Option<String>,
    pub servers: Option<Vec<ServerStatus>>,
}

impl K3sClusterModel {
    /// The registration address: `tls_san[0]`, else the first server's address.
    pub fn server_url(&self) -> String {
        server_url(self.tls_san.as_deref(), self.server.first().map(|s| s.node.address()))
    }
}

pub fn server_url(tls_san: Option<&[String]>, first_address: Option<&str>) -> String {
    let host = tls_san.and_then(|s| s.first()).map(String::as_str).or(first_address).unwrap_or_default();
    if host.contains(':') {
        format!("https://[{host}]:6443")
    } else {
        format!("https://{host}:6443")
    }
}
