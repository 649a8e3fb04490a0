//! The data of `strata_control_plane`; field names equal schema names.

use serde::{Deserialize, Serialize};

use super::schema::{
    DEFAULT_CERTIFICATES_RENEW_BEFORE_DAYS, DEFAULT_CERTIFICATE_VALIDITY, DEFAULT_CLUSTER_DOMAIN, DEFAULT_CLUSTER_NAME,
    DEFAULT_JOIN_TOKEN_TTL_HOURS, DEFAULT_KUBECONFIG_RENEW_BEFORE_DAYS, DEFAULT_KUBECONFIG_VALIDITY_DAYS,
    DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR,
};
use super::validate::KubeVersion;
use crate::resources::cluster_node::ClusterNodeModel;

/// A control-plane node is a node of the shared shape; its `address` is required
/// (the API server's advertise address).
pub type NodeModel = ClusterNodeModel;

/// The external etcd the API servers use (from `strata_etcd_cluster`). No `Debug`: keys.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct EtcdModel {
    pub endpoints: Vec<String>,
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
    pub ca_key: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct CniModel {
    #[serde(rename = "type")]
    pub kind: String,
    pub manifest_file: Option<String>,
    pub calico_encapsulation: Option<String>,
    pub flannel_backend: Option<String>,
}

/// What a worker needs to join. No `Debug`: holds a token.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq)]
pub struct JoinModel {
    pub endpoint: String,
    pub ca_cert_hash: String,
    pub token: String,
    pub token_expires_at: String,
}

/// A control-plane node as last observed.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct NodeStatus {
    pub name: String,
    /// The node answered over SSH.
    pub reachable: bool,
    /// kubeadm's files are there: kubelet.conf and the kube-apiserver manifest.
    pub joined: bool,
    /// /etc/kubernetes/pki/ca.crt is the cluster CA.
    pub ca_matches: bool,
    /// The version its control plane runs (its API server manifest's image tag); null
    /// when it has none. During an upgrade that stopped part-way, the nodes differ.
    pub kubernetes_version: Option<String>,
}

impl NodeStatus {
    pub fn healthy(&self) -> bool {
        self.reachable && self.joined && self.ca_matches
    }
}

/// No `Debug`: holds private keys.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ControlPlaneModel {
    pub id: Option<String>,
    pub cluster_name: Option<String>,
    pub endpoint: String,
    pub kubernetes_version: String,
    pub pod_cidr: Option<String>,
    pub service_cidr: Option<String>,
    pub cluster_domain: Option<String>,
    pub cert_sans: Option<Vec<String>>,
    pub api_server_extra_args: Option<std::collections::BTreeMap<String, String>>,
    pub image_repository: Option<String>,
    pub ca_cert: String,
    pub ca_key: String,
    pub front_proxy_ca_cert: String,
    pub front_proxy_ca_key: String,
    pub service_account_public_key: String,
    pub service_account_private_key: String,
    pub install_packages: Option<bool>,
    pub kubeconfig_validity_days: Option<i64>,
    pub kubeconfig_renew_before_days: Option<i64>,
    pub join_token_ttl_hours: Option<i64>,
    pub certificate_validity: Option<String>,
    pub certificates_renew_before_days: Option<i64>,
    pub node: Vec<NodeModel>,
    pub etcd: EtcdModel,
    pub cni: Option<CniModel>,
    pub kubeconfig: Option<String>,
    pub kubeconfig_expires_at: Option<String>,
    pub join: Option<JoinModel>,
    pub ca_cert_hash: Option<String>,
    pub nodes: Option<Vec<NodeStatus>>,
    pub certificates_expire_at: Option<String>,
    pub last_upgrade_snapshot: Option<String>,
}

impl ControlPlaneModel {
    pub fn cluster_name(&self) -> String {
        self.cluster_name.clone().unwrap_or_else(|| DEFAULT_CLUSTER_NAME.into())
    }
    pub fn pod_cidr(&self) -> String {
        self.pod_cidr.clone().unwrap_or_else(|| DEFAULT_POD_CIDR.into())
    }
    pub fn service_cidr(&self) -> String {
        self.service_cidr.clone().unwrap_or_else(|| DEFAULT_SERVICE_CIDR.into())
    }
    pub fn cluster_domain(&self) -> String {
        self.cluster_domain.clone().unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.into())
    }
    pub fn install_packages(&self) -> bool {
        self.install_packages.unwrap_or(true)
    }
    pub fn kubeconfig_validity_days(&self) -> i64 {
        self.kubeconfig_validity_days.unwrap_or(DEFAULT_KUBECONFIG_VALIDITY_DAYS)
    }
    pub fn kubeconfig_renew_before_days(&self) -> i64 {
        self.kubeconfig_renew_before_days.unwrap_or(DEFAULT_KUBECONFIG_RENEW_BEFORE_DAYS)
    }
    pub fn certificate_validity(&self) -> String {
        self.certificate_validity.clone().unwrap_or_else(|| DEFAULT_CERTIFICATE_VALIDITY.into())
    }
    pub fn certificates_renew_before_days(&self) -> i64 {
        self.certificates_renew_before_days.unwrap_or(DEFAULT_CERTIFICATES_RENEW_BEFORE_DAYS)
    }
    pub fn join_token_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.join_token_ttl_hours.unwrap_or(DEFAULT_JOIN_TOKEN_TTL_HOURS) as u64 * 3600)
    }
    pub fn version(&self) -> anyhow::Result<KubeVersion> {
        KubeVersion::parse(&self.kubernetes_version).map_err(|e| anyhow::anyhow!("kubernetes_version: {e}"))
    }
    /// The endpoint's host (the VIP), a SAN of every API server certificate.
    pub fn endpoint_host(&self) -> String {
        super::validate::endpoint(&self.endpoint).map(|(h, _)| h).unwrap_or_default()
    }
}
