//! kubeadm's `kubeadm.k8s.io/v1beta4` types (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go
//! and bootstraptoken/v1), field for field, decoded strictly: an unknown field is an error,
//! as kubeadm's strict decoding makes it.

use serde::{Deserialize, Deserializer, Serialize};

/// metav1.Duration fields: the text must parse as a Go duration (`time.ParseDuration`),
/// else decoding fails naming the field, as kubeadm's decoder does; the text is kept.
fn go_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    if let Some(s) = &v {
        crate::duration::parse_go_duration(s).map_err(serde::de::Error::custom)?;
    }
    Ok(v)
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPathMount {
    pub name: String,
    pub host_path: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub path_type: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlPlaneComponent {
    #[serde(default)]
    pub extra_args: Vec<Arg>,
    #[serde(default)]
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(default)]
    pub extra_envs: Vec<EnvVar>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiServer {
    #[serde(default)]
    pub extra_args: Vec<Arg>,
    #[serde(default)]
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(default)]
    pub extra_envs: Vec<EnvVar>,
    #[serde(default, rename = "certSANs")]
    pub cert_sans: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dns {
    #[serde(default)]
    pub image_repository: String,
    #[serde(default)]
    pub image_tag: String,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Proxy {
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Networking {
    #[serde(default)]
    pub service_subnet: String,
    #[serde(default)]
    pub pod_subnet: String,
    #[serde(default)]
    pub dns_domain: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalEtcd {
    #[serde(default)]
    pub image_repository: String,
    #[serde(default)]
    pub image_tag: String,
    #[serde(default)]
    pub data_dir: String,
    #[serde(default)]
    pub extra_args: Vec<Arg>,
    #[serde(default)]
    pub extra_envs: Vec<EnvVar>,
    #[serde(default, rename = "serverCertSANs")]
    pub server_cert_sans: Vec<String>,
    #[serde(default, rename = "peerCertSANs")]
    pub peer_cert_sans: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalEtcd {
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default, rename = "caFile")]
    pub ca_file: String,
    #[serde(default)]
    pub cert_file: String,
    #[serde(default)]
    pub key_file: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Etcd {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalEtcd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalEtcd>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterConfiguration {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub etcd: Etcd,
    #[serde(default)]
    pub networking: Networking,
    #[serde(default)]
    pub kubernetes_version: String,
    #[serde(default)]
    pub control_plane_endpoint: String,
    #[serde(default, rename = "apiServer")]
    pub api_server: ApiServer,
    #[serde(default)]
    pub controller_manager: ControlPlaneComponent,
    #[serde(default)]
    pub scheduler: ControlPlaneComponent,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub proxy: Proxy,
    #[serde(default)]
    pub certificates_dir: String,
    #[serde(default)]
    pub image_repository: String,
    #[serde(default)]
    pub feature_gates: std::collections::BTreeMap<String, bool>,
    #[serde(default)]
    pub cluster_name: String,
    #[serde(default)]
    pub encryption_algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "go_duration")]
    pub certificate_validity_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "go_duration")]
    pub ca_certificate_validity_period: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeRegistrationOptions {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "criSocket")]
    pub cri_socket: String,
    /// None = unset (kubeadm then taints control-plane nodes); Some([]) = no taints.
    #[serde(default)]
    pub taints: Option<Vec<Taint>>,
    #[serde(default)]
    pub kubelet_extra_args: Vec<Arg>,
    #[serde(default)]
    pub ignore_preflight_errors: Vec<String>,
    #[serde(default)]
    pub image_pull_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_serial: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiEndpoint {
    #[serde(default)]
    pub advertise_address: String,
    #[serde(default)]
    pub bind_port: i32,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BootstrapToken {
    pub token: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, deserialize_with = "go_duration")]
    pub ttl: Option<String>,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub usages: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Patches {
    #[serde(default)]
    pub directory: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timeouts {
    #[serde(default, deserialize_with = "go_duration")]
    pub control_plane_component_health_check: Option<String>,
    #[serde(default, deserialize_with = "go_duration")]
    pub kubelet_health_check: Option<String>,
    #[serde(default, rename = "kubernetesAPICall", deserialize_with = "go_duration")]
    pub kubernetes_api_call: Option<String>,
    #[serde(default, rename = "etcdAPICall", deserialize_with = "go_duration")]
    pub etcd_api_call: Option<String>,
    #[serde(default, deserialize_with = "go_duration")]
    pub tls_bootstrap: Option<String>,
    #[serde(default, deserialize_with = "go_duration")]
    pub discovery: Option<String>,
    #[serde(default, deserialize_with = "go_duration")]
    pub upgrade_manifests: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InitConfiguration {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub bootstrap_tokens: Vec<BootstrapToken>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub node_registration: NodeRegistrationOptions,
    #[serde(default, rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    #[serde(default)]
    pub certificate_key: String,
    #[serde(default)]
    pub skip_phases: Vec<String>,
    #[serde(default)]
    pub patches: Option<Patches>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BootstrapTokenDiscovery {
    pub token: String,
    #[serde(default, rename = "apiServerEndpoint")]
    pub api_server_endpoint: String,
    #[serde(default)]
    pub ca_cert_hashes: Vec<String>,
    #[serde(default, rename = "unsafeSkipCAVerification")]
    pub unsafe_skip_ca_verification: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileDiscovery {
    pub kube_config_path: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Discovery {
    #[serde(default)]
    pub bootstrap_token: Option<BootstrapTokenDiscovery>,
    #[serde(default)]
    pub file: Option<FileDiscovery>,
    #[serde(default, rename = "tlsBootstrapToken")]
    pub tls_bootstrap_token: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JoinControlPlane {
    #[serde(default, rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    #[serde(default)]
    pub certificate_key: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JoinConfiguration {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub node_registration: NodeRegistrationOptions,
    #[serde(default, rename = "caCertPath")]
    pub ca_cert_path: String,
    #[serde(default)]
    pub discovery: Discovery,
    #[serde(default)]
    pub control_plane: Option<JoinControlPlane>,
    #[serde(default)]
    pub skip_phases: Vec<String>,
    #[serde(default)]
    pub patches: Option<Patches>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}
