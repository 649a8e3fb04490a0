//! A server's files: the airgap install, `registries.yaml`, the datastore's TLS files,
//! `config.yaml` and the unit (shared code in `resources::k3s`).

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::model::{K3sClusterModel, ServerModel, DEFAULT_FLANNEL_BACKEND, DEFAULT_RETENTION, DEFAULT_SCHEDULE};
use crate::node::Node;
use crate::resources::k3s::{self, config};

pub const DATASTORE_DIR: &str = "/etc/rancher/k3s/datastore";

/// The datastore files: (key, path, content, mode).
fn datastore_files(m: &K3sClusterModel) -> Vec<(&'static str, String, String, u32)> {
    let Some(d) = &m.datastore else { return Vec::new() };
    [
        ("datastore-cafile", "ca.crt", &d.ca_cert, 0o644),
        ("datastore-certfile", "client.crt", &d.cert, 0o644),
        ("datastore-keyfile", "client.key", &d.key, 0o600),
    ]
    .into_iter()
    .filter_map(|(k, f, c, mode)| c.as_ref().map(|c| (k, format!("{DATASTORE_DIR}/{f}"), c.clone(), mode)))
    .collect()
}

/// config.yaml of server `i` (0 is the first: `cluster-init`; the others join
/// `server_url`). `token` is the secret the cluster was created with.
pub fn render(m: &K3sClusterModel, i: usize, token: &str) -> String {
    let s = &m.server[i];
    let mut keys: BTreeMap<String, Json> = BTreeMap::new();
    keys.insert("token".into(), json!(token));
    if i == 0 {
        if m.datastore.is_none() {
            keys.insert("cluster-init".into(), json!(true));
        }
    } else {
        keys.insert("server".into(), json!(m.server_url()));
    }
    keys.insert("node-name".into(), json!(s.node.name));
    if let Some(a) = &s.node.address {
        keys.insert("node-ip".into(), json!(a));
    }
    keys.insert("write-kubeconfig-mode".into(), json!("0600"));
    if let Some(sans) = m.tls_san.as_ref().filter(|s| !s.is_empty()) {
        keys.insert("tls-san".into(), json!(sans));
    }
    if let Some(d) = m.disable.as_ref().filter(|d| !d.is_empty()) {
        // A set: written sorted, so that config.yaml does not change with its order.
        let mut d = d.clone();
        d.sort();
        keys.insert("disable".into(), json!(d));
    }
    keys.insert("flannel-backend".into(), json!(m.flannel_backend.as_deref().unwrap_or(DEFAULT_FLANNEL_BACKEND)));
    let labels = k3s::node_labels(s.labels.as_ref());
    if !labels.is_empty() {
        keys.insert("node-label".into(), json!(labels));
    }
    if let Some(t) = s.taints.as_ref().filter(|t| !t.is_empty()) {
        keys.insert("node-taint".into(), json!(t));
    }
    if let Some(e) = &m.etcd_snapshot {
        keys.insert("etcd-snapshot-schedule-cron".into(), json!(e.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE)));
        keys.insert("etcd-snapshot-retention".into(), json!(e.retention.unwrap_or(DEFAULT_RETENTION)));
        if let Some(d) = &e.dir {
            keys.insert("etcd-snapshot-dir".into(), json!(d));
        }
    }
    if m.registry.is_some() {
        keys.insert("disable-default-registry-endpoint".into(), json!(true));
    }
    if let Some(d) = &m.datastore {
        keys.insert("datastore-endpoint".into(), json!(d.endpoint));
        for (k, path, _, _) in datastore_files(m) {
            keys.insert(k.into(), json!(path));
        }
    }
    config::add_extra(&mut keys, m.config.as_ref());
    config::render(&keys)
}

/// Installs server `i` at `m.version` (nothing started or restarted); returns whether
/// anything k3s reads at start changed.
pub async fn install(node: &Node, m: &K3sClusterModel, i: usize, token: &str) -> anyhow::Result<bool> {
    let mut changed = false;
    for (_, path, content, mode) in datastore_files(m) {
        changed |= node.write_validated(&path, content.as_bytes(), mode, None).await?;
    }
    changed |=
        k3s::install(node, "server", &m.version, m.airgap.as_ref(), m.registry.as_ref(), &render(m, i, token)).await?;
    Ok(changed)
}

/// Whether config.yaml on the node is what `render` writes.
pub async fn configured(node: &Node, m: &K3sClusterModel, i: usize, token: &str) -> anyhow::Result<bool> {
    Ok(node.read_file(k3s::CONFIG).await?.as_deref() == Some(render(m, i, token).as_bytes()))
}

/// Which server is `s` in `m` (by name).
pub fn index_of(m: &K3sClusterModel, s: &ServerModel) -> Option<usize> {
    m.server.iter().position(|x| x.node.name == s.node.name)
}
