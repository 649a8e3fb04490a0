//! Loading a kubeadm configuration file the way kubeadm does: multi-document YAML, each
//! document's apiVersion/kind looked up, kubeadm's own kinds decoded strictly, then
//! defaulted (SetDefaults_*), ready for validation.

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;

use super::types::*;
use crate::version::KubeVersion;

pub const GROUP: &str = "kubeadm.k8s.io";
pub const API_VERSION: &str = "kubeadm.k8s.io/v1beta4";
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
pub const DEFAULT_BOOTSTRAP_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// What a `--config` file held.
#[derive(Debug, Default, Clone)]
pub struct ConfigFile {
    pub init: Option<InitConfiguration>,
    pub cluster: Option<ClusterConfiguration>,
    pub join: Option<JoinConfiguration>,
    /// Component configs kubeadm passes on (KubeletConfiguration, KubeProxyConfiguration),
    /// kept as decoded YAML.
    pub kubelet: Option<serde_json::Value>,
    pub kube_proxy: Option<serde_json::Value>,
}

pub fn load_file(path: &str) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("unable to read config from {path:?}"))?;
    parse(&text)
}

/// Decodes `T` strictly, naming the unknown field with its full path as kubeadm does
/// (`strict decoding error: unknown field "networking.podSubnett"`).
fn strict<T: DeserializeOwned>(doc: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize::<_, T>(doc).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        if let Some(rest) = inner.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or(rest);
            let full = if path == "." || path.is_empty() || path.ends_with(field) {
                if path == "." || path.is_empty() {
                    field.to_string()
                } else {
                    path.clone()
                }
            } else {
                format!("{path}.{field}")
            };
            anyhow!("strict decoding error: unknown field \"{full}\"")
        } else {
            anyhow!("error decoding field \"{path}\": {inner}")
        }
    })
}

pub fn parse(text: &str) -> Result<ConfigFile> {
    let mut out = ConfigFile::default();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let doc: serde_json::Value =
            serde::Deserialize::deserialize(de).map_err(|e| anyhow!("error converting YAML to JSON: {e}"))?;
        if doc.is_null() {
            continue;
        }
        let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let kind = doc.get("kind").and_then(|v| v.as_str()).unwrap_or("").to_string();
        if kind.is_empty() {
            bail!("Object 'Kind' is missing in '{}'", serde_json::to_string(&doc)?);
        }
        if api_version.is_empty() {
            bail!("Object 'apiVersion' is missing in '{}'", serde_json::to_string(&doc)?);
        }
        let group = api_version.split('/').next().unwrap_or("");
        if group == GROUP && api_version != API_VERSION {
            // v1beta3 and older: this stand-in implements v1beta4 only (what the provider writes).
            bail!("your configuration file uses an old or unsupported API spec: {api_version:?}; this stand-in kubeadm reads {API_VERSION} only (run 'kubeadm config migrate')");
        }
        match (api_version.as_str(), kind.as_str()) {
            (API_VERSION, "InitConfiguration") => set_once(&mut out.init, strict(doc)?, &kind)?,
            (API_VERSION, "ClusterConfiguration") => set_once(&mut out.cluster, strict(doc)?, &kind)?,
            (API_VERSION, "JoinConfiguration") => set_once(&mut out.join, strict(doc)?, &kind)?,
            (API_VERSION, "ResetConfiguration" | "UpgradeConfiguration") => {}
            ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration") => set_once(&mut out.kubelet, doc, &kind)?,
            ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration") => {
                set_once(&mut out.kube_proxy, doc, &kind)?
            }
            _ => bail!("no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\""),
        }
    }
    Ok(out)
}

fn set_once<T>(slot: &mut Option<T>, v: T, kind: &str) -> Result<()> {
    if slot.is_some() {
        bail!("duplicate {kind} in the configuration file");
    }
    *slot = Some(v);
    Ok(())
}

/// kubeadm's node-name default: the hostname, lowercased.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_lowercase()).unwrap_or_default()
}

pub fn default_cluster(api_version_kind: bool, kubeadm: KubeVersion) -> ClusterConfiguration {
    let mut c = ClusterConfiguration::default();
    if api_version_kind {
        c.api_version = API_VERSION.into();
        c.kind = "ClusterConfiguration".into();
    }
    set_cluster_defaults(&mut c, kubeadm);
    c
}

/// SetDefaults_ClusterConfiguration.
pub fn set_cluster_defaults(c: &mut ClusterConfiguration, kubeadm: KubeVersion) {
    if c.kubernetes_version.is_empty() {
        // Real kubeadm asks dl.k8s.io for stable-1 and falls back to its own version.
        c.kubernetes_version = kubeadm.to_string();
    }
    if c.networking.service_subnet.is_empty() {
        c.networking.service_subnet = "10.96.0.0/12".into();
    }
    if c.networking.dns_domain.is_empty() {
        c.networking.dns_domain = "cluster.local".into();
    }
    if c.certificates_dir.is_empty() {
        c.certificates_dir = "/etc/kubernetes/pki".into();
    }
    if c.image_repository.is_empty() {
        c.image_repository = "registry.k8s.io".into();
    }
    if c.cluster_name.is_empty() {
        c.cluster_name = "kubernetes".into();
    }
    if c.encryption_algorithm.is_empty() {
        c.encryption_algorithm = "RSA-2048".into();
    }
    if c.etcd.local.is_none() && c.etcd.external.is_none() {
        c.etcd.local = Some(LocalEtcd { data_dir: "/var/lib/etcd".into(), ..Default::default() });
    }
    // SetClusterDynamicDefaults (util/config/initconfiguration.go): "Downcase SANs. Some
    // domain names (like ELBs) have capitals in them." (LowercaseSANs, util/config/common.go)
    lowercase_sans(&mut c.api_server.cert_sans);
}

/// LowercaseSANs: forces every SAN lowercase so it passes IsDNS1123Subdomain.
pub fn lowercase_sans(sans: &mut [String]) {
    for s in sans.iter_mut() {
        if s.chars().any(|c| c.is_ascii_uppercase()) {
            *s = s.to_lowercase();
        }
    }
}

pub fn set_node_registration_defaults(n: &mut NodeRegistrationOptions) {
    if n.name.is_empty() {
        n.name = default_node_name();
    }
    if n.cri_socket.is_empty() {
        n.cri_socket = DEFAULT_CRI_SOCKET.into();
    }
    if n.image_pull_policy.is_empty() {
        n.image_pull_policy = "IfNotPresent".into();
    }
}

/// SetDefaults_InitConfiguration (+ bootstrap tokens and the API endpoint).
pub fn set_init_defaults(i: &mut InitConfiguration) {
    set_node_registration_defaults(&mut i.node_registration);
    if i.local_api_endpoint.bind_port == 0 {
        i.local_api_endpoint.bind_port = 6443;
    }
    for t in &mut i.bootstrap_tokens {
        if t.ttl.is_none() && t.expires.is_none() {
            t.ttl = Some("24h0m0s".into());
        }
        if t.usages.is_empty() {
            t.usages = vec!["signing".into(), "authentication".into()];
        }
        if t.groups.is_empty() {
            t.groups = vec![DEFAULT_BOOTSTRAP_GROUP.into()];
        }
    }
}

/// SetDefaults_JoinConfiguration.
pub fn set_join_defaults(j: &mut JoinConfiguration) {
    set_node_registration_defaults(&mut j.node_registration);
    if j.ca_cert_path.is_empty() {
        j.ca_cert_path = "/etc/kubernetes/pki/ca.crt".into();
    }
    if j.discovery.tls_bootstrap_token.is_empty() {
        if let Some(bt) = &j.discovery.bootstrap_token {
            j.discovery.tls_bootstrap_token = bt.token.clone();
        }
    }
    if let Some(cp) = &mut j.control_plane {
        if cp.local_api_endpoint.bind_port == 0 {
            cp.local_api_endpoint.bind_port = 6443;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let e = parse(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnett: 10.0.0.0/16\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "strict decoding error: unknown field \"networking.podSubnett\"", "{e}");
        let e = parse("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nfoo: 1\n").unwrap_err().to_string();
        assert_eq!(e, "strict decoding error: unknown field \"foo\"", "{e}");
    }

    #[test]
    fn kinds_and_versions() {
        let e = parse("apiVersion: kubeadm.k8s.io/v1beta4\nkind: Nonsense\n").unwrap_err().to_string();
        assert!(e.contains("no kind \"Nonsense\" is registered"), "{e}");
        let e = parse("kind: InitConfiguration\n").unwrap_err().to_string();
        assert!(e.contains("'apiVersion' is missing"), "{e}");
        let e = parse("apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n").unwrap_err().to_string();
        assert!(e.contains("old or unsupported API spec"), "{e}");
        let ok = parse(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n",
        )
        .unwrap();
        assert!(ok.init.is_some() && ok.cluster.is_some() && ok.kubelet.is_some());
    }
}
