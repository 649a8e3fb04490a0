//! `registry {}`: `/etc/rancher/k3s/registries.yaml` (mirrors and the CA of their
//! endpoints), which k3s renders into containerd's `hosts.toml` files. With it,
//! `disable-default-registry-endpoint: true` goes into config.yaml: the upstream
//! registries are never tried (an air-gapped site pulls only through its mirrors).

use std::collections::BTreeMap;

use serde_json::json;

use super::RegistryModel;
use crate::framework::{Attribute, AttributePath, Block, Diagnostic, Diagnostics, NestedBlock, Type, Value};
use crate::node::Node;

pub const REGISTRIES: &str = "/etc/rancher/k3s/registries.yaml";
pub const CA_FILE: &str = "/etc/rancher/k3s/registry-ca.crt";

pub fn block() -> NestedBlock {
    NestedBlock::single(
        "registry",
        Block::new(
            "Pull through mirrors only: writes `/etc/rancher/k3s/registries.yaml` and sets \
             `disable-default-registry-endpoint: true` (no fallback to the upstream registries). For a \
             `strata_image_registry`, use its `mirrors` (as lists) and `tls_cert` outputs.",
        )
        .attribute(Attribute::required("mirrors", Type::map(Type::list(Type::String))).description(
            "Endpoints per upstream registry, e.g. `{ \"docker.io\" = [\"https://10.0.0.5:5000/v2/docker.io\"] }`.",
        ))
        .attribute(Attribute::optional("ca_cert", Type::String).description(
            "CA certificate (PEM) of the mirror endpoints, written to `/etc/rancher/k3s/registry-ca.crt`.",
        )),
    )
}

/// Endpoints must be URLs k3s can use.
pub fn validate(config: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    let Some(Value::Map(mirrors)) = config.attr("registry").and_then(|r| r.attr("mirrors")) else { return };
    for (upstream, urls) in mirrors {
        let Value::List(urls) = urls else { continue };
        for (i, u) in urls.iter().enumerate() {
            let Some(u) = u.as_str() else { continue };
            if host_port(u).is_none() {
                diags.push(
                    Diagnostic::error("Invalid mirror endpoint", format!("{u:?} is not an http(s):// URL."))
                        .at(at.attr("mirrors").key(upstream).index(i)),
                );
            }
        }
    }
}

/// `host[:port]` of an `http(s)://` URL.
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let hp = rest.split('/').next()?;
    (!hp.is_empty()).then(|| hp.to_string())
}

/// The registries.yaml k3s reads.
pub fn render(r: &RegistryModel) -> String {
    let mirrors: BTreeMap<&String, serde_json::Value> =
        r.mirrors.iter().map(|(k, v)| (k, json!({ "endpoint": v }))).collect();
    let mut doc = json!({ "mirrors": mirrors });
    if r.ca_cert.is_some() {
        let hosts: BTreeMap<String, serde_json::Value> = r
            .mirrors
            .values()
            .flatten()
            .filter_map(|u| host_port(u))
            .map(|h| (h, json!({ "tls": { "ca_file": CA_FILE } })))
            .collect();
        doc["configs"] = json!(hosts);
    }
    serde_yaml_ng::to_string(&doc).expect("JSON values always serialise as YAML")
}

/// Writes (or removes) registries.yaml and the CA; returns whether anything changed.
pub async fn write(node: &Node, r: Option<&RegistryModel>) -> anyhow::Result<bool> {
    let Some(r) = r else {
        let out = node
            .run("removing registries.yaml", &format!("test -e {REGISTRIES} && rm -f {REGISTRIES} {CA_FILE}"))
            .await?;
        return Ok(out.status == 0);
    };
    let mut changed = false;
    if let Some(ca) = &r.ca_cert {
        changed |= node.write_validated(CA_FILE, ca.as_bytes(), 0o644, None).await?;
    }
    changed |= node.write_validated(REGISTRIES, render(r).as_bytes(), 0o600, None).await?;
    Ok(changed)
}
