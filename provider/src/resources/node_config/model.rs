//! The resource's data, and the agent spec (JSON) it becomes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::resources::connection::ConnectionModel;

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct RegistryMirrorModel {
    pub registry: String,
    pub endpoints: Vec<String>,
    pub server: Option<String>,
    pub capabilities: Option<Vec<String>>,
    pub ca_cert: Option<String>,
    pub fallback: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ContainerdModel {
    pub version: Option<i64>,
    pub systemd_cgroup: Option<bool>,
    pub sandbox_image: Option<String>,
    pub config_path: Option<String>,
    pub registry_mirror: Option<Vec<RegistryMirrorModel>>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct KubeletModel {
    pub cgroup_driver: Option<String>,
    pub cluster_dns: Option<Vec<String>>,
    pub cluster_domain: Option<String>,
    pub rotate_certificates: Option<bool>,
    pub eviction_hard: Option<BTreeMap<String, String>>,
    pub extra_args: Option<BTreeMap<String, String>>,
    pub client_ca_file: Option<String>,
    pub static_pod_path: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct CrictlModel {
    pub runtime_endpoint: String,
    pub image_endpoint: Option<String>,
    pub timeout: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct PackageModel {
    pub name: String,
    pub version: Option<String>,
    pub hold: Option<bool>,
    pub allow_downgrade: Option<bool>,
    pub allow_change_held: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct AptModel {
    pub lists_max_age: Option<i64>,
    pub lock_timeout: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct AptRepositoryModel {
    pub name: String,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Option<Vec<String>>,
    pub architectures: Option<Vec<String>>,
    pub key: Option<String>,
    pub trusted: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ServiceModel {
    pub name: String,
    pub enabled: Option<bool>,
    pub running: Option<bool>,
    pub masked: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct FileModel {
    pub path: String,
    pub content: String,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub notify: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct DirectoryModel {
    pub path: String,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct NodeConfigModel {
    pub id: Option<String>,
    pub ssh: ConnectionModel,
    pub root: Option<String>,
    pub simulate: Option<bool>,
    pub agent_binary: Option<String>,
    pub containerd: Option<ContainerdModel>,
    pub kubelet: Option<KubeletModel>,
    pub crictl: Option<CrictlModel>,
    pub sysctl: Option<BTreeMap<String, String>>,
    pub kernel_modules: Option<Vec<String>>,
    pub swap_off: Option<bool>,
    pub apt: Option<AptModel>,
    pub apt_repository: Option<Vec<AptRepositoryModel>>,
    pub package: Option<Vec<PackageModel>>,
    pub service: Option<Vec<ServiceModel>>,
    pub file: Option<Vec<FileModel>>,
    pub directory: Option<Vec<DirectoryModel>>,
    pub agent_sha256: Option<String>,
    pub drift: Option<Vec<String>>,
    pub changed_tasks: Option<Vec<String>>,
}

/// Drops nulls so the agent applies its own defaults.
fn compact(v: Json) -> Json {
    match v {
        Json::Object(m) => {
            Json::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, compact(v))).collect())
        }
        Json::Array(a) => Json::Array(a.into_iter().map(compact).collect()),
        other => other,
    }
}

/// Labelled Terraform blocks (lists) become the agent's maps keyed by label.
fn keyed<T: Serialize>(items: &Option<Vec<T>>, label: &str) -> Option<Json> {
    let items = items.as_ref()?;
    let mut map = Map::new();
    for item in items {
        let mut obj = serde_json::to_value(item).ok()?;
        let key = obj.as_object_mut()?.remove(label)?;
        map.insert(key.as_str()?.to_string(), obj);
    }
    Some(Json::Object(map))
}

impl NodeConfigModel {
    /// The agent's JSON spec for this desired state.
    pub fn spec_json(&self) -> Json {
        let containerd = self.containerd.as_ref().map(|c| {
            json!({
                "version": c.version,
                "systemd_cgroup": c.systemd_cgroup,
                "sandbox_image": c.sandbox_image,
                "config_path": c.config_path,
                "registry_mirror": keyed(&c.registry_mirror, "registry"),
            })
        });
        compact(json!({
            "containerd": containerd,
            "kubelet": self.kubelet,
            "crictl": self.crictl,
            "sysctl": self.sysctl,
            "kernel_modules": self.kernel_modules,
            "swap_off": self.swap_off,
            "apt": self.apt,
            "apt_repository": keyed(&self.apt_repository, "name"),
            "package": keyed(&self.package, "name"),
            "service": keyed(&self.service, "name"),
            "file": keyed(&self.file, "path"),
            "directory": keyed(&self.directory, "path"),
        }))
    }
}
