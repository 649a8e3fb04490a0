//! The kubeadm configuration (`kubeadm.k8s.io/v1beta4`) for each node: Init +
//! Cluster configuration for the first, a control-plane JoinConfiguration for the
//! others; the same ClusterConfiguration is what `kubeadm upgrade` reads back.

use serde_json::{json, Value as Json};

use super::model::{ControlPlaneModel, NodeModel};

pub const API_VERSION: &str = "kubeadm.k8s.io/v1beta4";
pub const CONFIG_PATH: &str = "/etc/kubernetes/strata/kubeadm-config.yaml";
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
/// Lifetime of the token in InitConfiguration: long enough for the other control-plane
/// nodes to join in the same apply, short enough not to matter if it leaks.
pub const INIT_TOKEN_TTL: &str = "1h0m0s";

fn node_registration(n: &NodeModel) -> Json {
    json!({
        "name": n.name,
        "criSocket": CRI_SOCKET,
        "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        "kubeletExtraArgs": [{"name": "node-ip", "value": n.address()}],
    })
}

/// The ClusterConfiguration every node shares.
pub fn cluster_configuration(m: &ControlPlaneModel) -> Json {
    let mut sans = vec![m.endpoint_host()];
    for s in m.cert_sans.iter().flatten() {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    let mut api_server = json!({"certSANs": sans});
    if let Some(args) = m.api_server_extra_args.as_ref().filter(|a| !a.is_empty()) {
        // v1beta4: a list of name/value pairs (kubeadm sorts nothing; a map keeps them sorted).
        api_server["extraArgs"] = args.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
    }
    let mut config = json!({
        "apiVersion": API_VERSION,
        "kind": "ClusterConfiguration",
        "clusterName": m.cluster_name(),
        "kubernetesVersion": m.kubernetes_version,
        "controlPlaneEndpoint": m.endpoint,
        "certificatesDir": PKI_DIR,
        "etcd": {"external": {
            "endpoints": m.etcd.endpoints,
            "caFile": format!("{PKI_DIR}/etcd/ca.crt"),
            "certFile": format!("{PKI_DIR}/apiserver-etcd-client.crt"),
            "keyFile": format!("{PKI_DIR}/apiserver-etcd-client.key"),
        }},
        "apiServer": api_server,
        "certificateValidityPeriod": m.certificate_validity(),
        "networking": {
            "podSubnet": m.pod_cidr(),
            "serviceSubnet": m.service_cidr(),
            "dnsDomain": m.cluster_domain(),
        },
    });
    if let Some(repo) = &m.image_repository {
        config["imageRepository"] = json!(repo);
    }
    config
}

fn documents(docs: &[Json]) -> String {
    docs.iter()
        .map(|d| serde_yaml_ng::to_string(d).expect("JSON values always serialise as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The ClusterConfiguration alone, for `kubeadm certs renew --config`.
pub fn cluster_config_file(m: &ControlPlaneModel) -> String {
    documents(&[cluster_configuration(m)])
}

/// For `kubeadm init phase …` on a joined node `n`: its InitConfiguration (no bootstrap
/// token) and the ClusterConfiguration.
pub fn phase_config(m: &ControlPlaneModel, n: &NodeModel) -> String {
    let init = json!({
        "apiVersion": API_VERSION,
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": n.address(), "bindPort": 6443},
        "nodeRegistration": node_registration(n),
    });
    documents(&[init, cluster_configuration(m)])
}

/// For `kubeadm init` on `first`, with `token` for the bootstrap token the others join with.
pub fn init_config(m: &ControlPlaneModel, first: &NodeModel, token: &str) -> String {
    let init = json!({
        "apiVersion": API_VERSION,
        "kind": "InitConfiguration",
        "bootstrapTokens": [{
            "token": token,
            "ttl": INIT_TOKEN_TTL,
            "usages": ["signing", "authentication"],
            "groups": ["system:bootstrappers:kubeadm:default-node-token"],
        }],
        "localAPIEndpoint": {"advertiseAddress": first.address(), "bindPort": 6443},
        "nodeRegistration": node_registration(first),
    });
    documents(&[init, cluster_configuration(m)])
}

/// For `kubeadm join --config` of another control-plane node: discovery by token and
/// CA hash, no certificate key (the PKI was copied).
pub fn join_config(m: &ControlPlaneModel, n: &NodeModel, token: &str, ca_cert_hash: &str) -> String {
    let join = json!({
        "apiVersion": API_VERSION,
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {
            "apiServerEndpoint": m.endpoint,
            "token": token,
            "caCertHashes": [ca_cert_hash],
        }},
        "nodeRegistration": node_registration(n),
        "controlPlane": {"localAPIEndpoint": {"advertiseAddress": n.address(), "bindPort": 6443}},
    });
    // kubeadm reads the ClusterConfiguration from the cluster on join; it is kept in the
    // file too so `kubeadm upgrade` and operators see the same settings on every node.
    documents(&[join])
}
