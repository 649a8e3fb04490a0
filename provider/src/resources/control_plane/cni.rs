//! The CNI manifest from a local file, with the pod CIDR given to kubeadm and the
//! encapsulation / backend written into it, applied with kubectl on the first node.

use anyhow::{anyhow, bail, Context as _};
use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;

use super::model::CniModel;

pub const MANIFEST_PATH: &str = "/etc/kubernetes/strata/cni.yaml";

/// The manifest to apply, `None` for `type = "none"`.
pub fn render(cni: &CniModel, pod_cidr: &str) -> anyhow::Result<Option<String>> {
    if cni.kind == "none" {
        return Ok(None);
    }
    let path = cni.manifest_file.as_deref().ok_or_else(|| anyhow!("cni.manifest_file is required for {}", cni.kind))?;
    let path = crate::node::expand(path);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cni.manifest_file: reading {path}"))?;
    let out = match cni.kind.as_str() {
        "calico" => calico(&text, pod_cidr, cni.calico_encapsulation.as_deref().unwrap_or("IPIP")),
        "flannel" => flannel(&text, pod_cidr, cni.flannel_backend.as_deref().unwrap_or("vxlan")),
        other => bail!("unknown cni type {other:?}"),
    }
    .with_context(|| format!("cni.manifest_file {path}"))?;
    Ok(Some(out))
}

fn documents(text: &str) -> anyhow::Result<Vec<Yaml>> {
    let mut out = Vec::new();
    for d in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Yaml::deserialize(d).map_err(|e| anyhow!("not YAML: {e}"))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn join(docs: &[Yaml]) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for d in docs {
        parts.push(serde_yaml_ng::to_string(d)?);
    }
    Ok(parts.join("---\n"))
}

fn is(doc: &Yaml, kind: &str, name: &str) -> bool {
    doc.get("kind").and_then(Yaml::as_str) == Some(kind)
        && doc.get("metadata").and_then(|m| m.get("name")).and_then(Yaml::as_str) == Some(name)
}

/// Sets `name` in a container's env list (added when missing).
fn set_env(container: &mut Yaml, name: &str, value: &str) {
    let env = match container.get_mut("env") {
        Some(e @ Yaml::Sequence(_)) => e,
        _ => {
            container
                .as_mapping_mut()
                .expect("containers are mappings")
                .insert("env".into(), Yaml::Sequence(Vec::new()));
            container.get_mut("env").expect("just inserted")
        }
    };
    let list = env.as_sequence_mut().expect("a sequence");
    let mut entry = serde_yaml_ng::Mapping::new();
    entry.insert("name".into(), name.into());
    entry.insert("value".into(), value.into());
    match list.iter_mut().find(|e| e.get("name").and_then(Yaml::as_str) == Some(name)) {
        Some(e) => *e = Yaml::Mapping(entry),
        None => list.push(Yaml::Mapping(entry)),
    }
}

/// Calico: `CALICO_IPV4POOL_CIDR` (commented out in the upstream manifest, so added),
/// `CALICO_IPV4POOL_IPIP` and `CALICO_IPV4POOL_VXLAN` of the calico-node container.
pub fn calico(text: &str, pod_cidr: &str, encapsulation: &str) -> anyhow::Result<String> {
    let mut docs = documents(text)?;
    let (ipip, vxlan) = match encapsulation {
        "IPIP" => ("Always", "Never"),
        "VXLAN" => ("Never", "Always"),
        _ => ("Never", "Never"),
    };
    let ds = docs
        .iter_mut()
        .find(|d| is(d, "DaemonSet", "calico-node"))
        .ok_or_else(|| anyhow!("no DaemonSet calico-node: is this Calico's manifest (calico.yaml)?"))?;
    let containers = ds
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(|s| s.get_mut("containers"))
        .and_then(Yaml::as_sequence_mut)
        .ok_or_else(|| anyhow!("DaemonSet calico-node has no containers"))?;
    let node = containers
        .iter_mut()
        .find(|c| c.get("name").and_then(Yaml::as_str) == Some("calico-node"))
        .ok_or_else(|| anyhow!("DaemonSet calico-node has no calico-node container"))?;
    set_env(node, "CALICO_IPV4POOL_CIDR", pod_cidr);
    set_env(node, "CALICO_IPV4POOL_IPIP", ipip);
    set_env(node, "CALICO_IPV4POOL_VXLAN", vxlan);
    join(&docs)
}

/// Flannel: `net-conf.json` of the kube-flannel-cfg ConfigMap gets `Network` and
/// `Backend.Type`; its other settings stay.
pub fn flannel(text: &str, pod_cidr: &str, backend: &str) -> anyhow::Result<String> {
    let mut docs = documents(text)?;
    let cm = docs
        .iter_mut()
        .find(|d| is(d, "ConfigMap", "kube-flannel-cfg"))
        .ok_or_else(|| anyhow!("no ConfigMap kube-flannel-cfg: is this Flannel's manifest (kube-flannel.yml)?"))?;
    let data = cm.get_mut("data").ok_or_else(|| anyhow!("ConfigMap kube-flannel-cfg has no data"))?;
    let net_conf = data
        .get("net-conf.json")
        .and_then(Yaml::as_str)
        .ok_or_else(|| anyhow!("ConfigMap kube-flannel-cfg has no net-conf.json"))?;
    let mut conf: serde_json::Value =
        serde_json::from_str(net_conf).map_err(|e| anyhow!("net-conf.json is not JSON: {e}"))?;
    conf["Network"] = pod_cidr.into();
    if !conf["Backend"].is_object() {
        conf["Backend"] = serde_json::json!({});
    }
    conf["Backend"]["Type"] = backend.into();
    let text = serde_json::to_string_pretty(&conf)? + "\n";
    data.as_mapping_mut().expect("data is a mapping").insert("net-conf.json".into(), text.into());
    join(&docs)
}
