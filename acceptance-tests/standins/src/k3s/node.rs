//! The Node a k3s server or agent registers (its embedded kubelet's job): name, k3s's
//! labels (roles on servers), the `node-label`s and `node-taint`s, addresses,
//! `nodeInfo.kubeletVersion` = the k3s version, Ready, heart-beaten with status and Lease.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::apiclient::ApiClient;

pub struct NodeSpec {
    pub name: String,
    pub ip: String,
    pub version: String,
    pub server: bool,
    pub etcd: bool,
    pub labels: Vec<String>,
    pub taints: Vec<String>,
}

/// `key=value:Effect` or `key:Effect` (the kubelet's --register-with-taints syntax).
pub fn parse_taint(t: &str) -> Result<Value> {
    let (kv, effect) = t.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("invalid taint spec: {t}"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        bail!("invalid taint effect: {effect}, unsupported taint effect");
    }
    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
    if k.is_empty() {
        bail!("invalid taint spec: {t}");
    }
    Ok(if v.is_empty() { json!({"key": k, "effect": effect}) } else { json!({"key": k, "value": v, "effect": effect}) })
}

pub fn labels(s: &NodeSpec) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for (k, v) in [
        ("kubernetes.io/hostname", s.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/instance-type", "k3s"),
        ("node.kubernetes.io/instance-type", "k3s"),
    ] {
        m.insert(k.into(), json!(v));
    }
    if s.server {
        m.insert("node-role.kubernetes.io/control-plane".into(), json!("true"));
        m.insert("node-role.kubernetes.io/master".into(), json!("true"));
    }
    if s.etcd {
        m.insert("node-role.kubernetes.io/etcd".into(), json!("true"));
    }
    for l in &s.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid node-label {l:?}");
        }
        m.insert(k.into(), json!(v));
    }
    Ok(m)
}

fn status(s: &NodeSpec) -> Value {
    let now = crate::apiserver::format_time(time::OffsetDateTime::now_utc());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    json!({
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status (k3s stand-in)", "lastHeartbeatTime": now,
                        "lastTransitionTime": now}],
        "addresses": [{"type": "InternalIP", "address": s.ip}, {"type": "Hostname", "address": s.name}],
        "nodeInfo": {"kubeletVersion": s.version, "kubeProxyVersion": s.version,
                     "containerRuntimeVersion": "containerd://1.6.20", "operatingSystem": "linux",
                     "architecture": "amd64", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": kernel}
    })
}

/// Creates the Node or brings its labels and taints in line; then posts its status.
pub async fn register(api: &ApiClient, s: &NodeSpec) -> Result<()> {
    let taints: Vec<Value> = s.taints.iter().map(|t| parse_taint(t)).collect::<Result<_>>()?;
    let path = format!("/api/v1/nodes/{}", s.name);
    let cur = api.get(&path).await?;
    if cur.status.is_success() {
        let mut node = cur.body;
        let ls = node["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        let mut merged = ls;
        merged.extend(labels(s)?);
        node["metadata"]["labels"] = Value::Object(merged);
        node["spec"]["taints"] = json!(taints);
        let r = api.put(&path, &node).await?;
        if !r.status.is_success() {
            bail!("updating Node {}: {} {}", s.name, r.status, r.message());
        }
    } else {
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": s.name, "labels": labels(s)?,
                          "annotations": {"k3s.io/node-args": "[]", "k3s.io/internal-ip": s.ip}},
            "spec": {"taints": taints}, "status": status(s)});
        let r = api.post("/api/v1/nodes", &node).await?;
        if !r.status.is_success() && r.status != reqwest::StatusCode::CONFLICT {
            bail!("registering Node {}: {} {}", s.name, r.status, r.message());
        }
    }
    heartbeat(api, s).await
}

pub async fn heartbeat(api: &ApiClient, s: &NodeSpec) -> Result<()> {
    let r = api.merge_patch(&format!("/api/v1/nodes/{}/status", s.name), &json!({"status": status(s)})).await?;
    if !r.status.is_success() {
        bail!("node status: {} {}", r.status, r.message());
    }
    let lease_path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{}", s.name);
    let now = time::OffsetDateTime::now_utc();
    let renew = format!("{}.{:06}Z", crate::apiserver::format_time(now).trim_end_matches('Z'), now.microsecond());
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": s.name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": s.name, "leaseDurationSeconds": 40, "renewTime": renew}});
    api.create_or_update("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", &s.name, &lease).await?;
    let _ = lease_path;
    Ok(())
}

/// Registers (retrying until it works), calls `on_registered` once, then heart-beats
/// every 10 s for ever.
pub async fn run(api: ApiClient, s: NodeSpec, on_registered: impl FnOnce()) {
    loop {
        match register(&api, &s).await {
            Ok(()) => break,
            Err(e) => eprintln!("E registering node {}: {e:#}", s.name),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!("I Node {} registered ({})", s.name, s.version);
    on_registered();
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if let Err(e) = heartbeat(&api, &s).await {
            eprintln!("E node heartbeat: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_and_role_labels() {
        assert_eq!(parse_taint("a=b:NoSchedule").unwrap(), json!({"key": "a", "value": "b", "effect": "NoSchedule"}));
        assert_eq!(parse_taint("a:NoExecute").unwrap(), json!({"key": "a", "effect": "NoExecute"}));
        assert!(parse_taint("a=b:Never").is_err());
        assert!(parse_taint("a=b").is_err());
        let s = NodeSpec {
            name: "n1".into(),
            ip: "10.0.0.1".into(),
            version: "v1.36.1+k3s1".into(),
            server: true,
            etcd: true,
            labels: vec!["tier=gold".into()],
            taints: vec![],
        };
        let l = labels(&s).unwrap();
        assert_eq!(l["node-role.kubernetes.io/control-plane"], "true");
        assert_eq!(l["node-role.kubernetes.io/etcd"], "true");
        assert_eq!(l["tier"], "gold");
        let agent = NodeSpec { server: false, etcd: false, ..s };
        assert!(!labels(&agent).unwrap().contains_key("node-role.kubernetes.io/master"));
    }
}
