//! STAND-IN kubectl: `apply -f FILE` (multi-document YAML, each object needs apiVersion,
//! kind and metadata.name, as kubectl's validation requires), `get nodes [-o json]`,
//! `version`, `delete node NAME`. Talks to the (stand-in) API server with the kubeconfig's
//! client certificate; every call is recorded.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::apiclient::ApiClient;
use crate::kubeconfig::Kubeconfig;

struct Args {
    kubeconfig: Option<String>,
    output: Option<String>,
    files: Vec<String>,
    namespace: Option<String>,
    client_only: bool,
    rest: Vec<String>,
}

fn parse(argv: &[String]) -> Result<Args> {
    let mut a =
        Args { kubeconfig: None, output: None, files: vec![], namespace: None, client_only: false, rest: vec![] };
    let mut it = argv.iter();
    while let Some(x) = it.next() {
        let (name, inline) = match x.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n.to_string(), Some(v.to_string())),
            _ => (x.clone(), None),
        };
        let mut val = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .with_context(|| format!("error: flag needs an argument: {name}"))
        };
        match name.as_str() {
            "--kubeconfig" => a.kubeconfig = Some(val()?),
            "-o" | "--output" => a.output = Some(val()?),
            "-f" | "--filename" => a.files.push(val()?),
            "-n" | "--namespace" => a.namespace = Some(val()?),
            "--client" => a.client_only = true,
            n if n.starts_with('-') => {} // other kubectl flags (e.g. --validate, --server-side) change nothing here
            _ => a.rest.push(x.clone()),
        }
    }
    Ok(a)
}

pub fn main(argv: Vec<String>) -> i32 {
    let code = match parse(&argv[1..]).and_then(|a| crate::block_on(run(a))) {
        Ok(()) => 0,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("{}", if msg.starts_with("error") { msg } else { format!("error: {msg}") });
            1
        }
    };
    crate::record::record("kubectl", &argv, &["-f", "--filename"], code);
    code
}

fn client(a: &Args) -> Result<ApiClient> {
    let path = a
        .kubeconfig
        .clone()
        .or_else(|| std::env::var("KUBECONFIG").ok())
        .unwrap_or_else(|| format!("{}/.kube/config", std::env::var("HOME").unwrap_or("/root".into())));
    ApiClient::from_kubeconfig(&Kubeconfig::load(&path)?)
}

/// Kinds that are not namespaced (what kubectl learns from discovery).
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "APIService",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "CSIDriver",
    "IngressClass",
    "RuntimeClass",
    "PodSecurityPolicy",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "IPPool",
    "FelixConfiguration",
    "BGPConfiguration",
    "ClusterInformation",
    "GlobalNetworkPolicy",
    "GlobalNetworkSet",
    "HostEndpoint",
    "IPAMBlock",
    "IPAMConfig",
    "IPAMHandle",
    "BlockAffinity",
    "KubeControllersConfiguration",
    "BGPPeer",
    "CalicoNodeStatus",
    "IPReservation",
    "BGPFilter",
    "Tier",
    "StagedGlobalNetworkPolicy",
];

/// The REST resource of a kind: lowercase plural, as discovery reports for built-ins.
pub fn resource_of(kind: &str) -> String {
    let k = kind.to_lowercase();
    if k.ends_with('s') || k.ends_with("ch") || k.ends_with('x') {
        format!("{k}es")
    } else if k.ends_with('y') && !k.ends_with("ay") && !k.ends_with("ey") {
        format!("{}ies", &k[..k.len() - 1])
    } else {
        format!("{k}s")
    }
}

/// The objects of a manifest, checked as kubectl's client-side validation does.
pub fn objects(text: &str, file: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(de).with_context(|| format!("error parsing {file}"))?;
        if v.is_null() {
            continue;
        }
        let mut missing = Vec::new();
        if v["apiVersion"].as_str().unwrap_or("").is_empty() {
            missing.push("apiVersion not set");
        }
        if v["kind"].as_str().unwrap_or("").is_empty() {
            missing.push("kind not set");
        }
        if !missing.is_empty() {
            bail!("error validating \"{file}\": error validating data: [{}]; if you choose to ignore these errors, turn validation off with --validate=false", missing.join(", "));
        }
        if v["kind"] == "List" {
            out.extend(v["items"].as_array().cloned().unwrap_or_default());
            continue;
        }
        if v["metadata"]["name"].as_str().unwrap_or("").is_empty() {
            bail!("error when retrieving current configuration of:\nResource: \"{}\", Name: \"\"\nfrom server for: \"{file}\": resource name may not be empty", v["kind"].as_str().unwrap_or_default());
        }
        out.push(v);
    }
    Ok(out)
}

fn collection(obj: &Value, default_ns: &str) -> (String, String) {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let base = if api_version.contains('/') { format!("/apis/{api_version}") } else { format!("/api/{api_version}") };
    let res = resource_of(kind);
    let group = api_version.split_once('/').map(|(g, _)| format!(".{g}")).unwrap_or_default();
    let shown = format!("{}{group}", kind.to_lowercase());
    if CLUSTER_SCOPED.contains(&kind) {
        (format!("{base}/{res}"), shown)
    } else {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or(default_ns);
        (format!("{base}/namespaces/{ns}/{res}"), shown)
    }
}

async fn run(a: Args) -> Result<()> {
    let verb = a.rest.first().map(String::as_str).unwrap_or("");
    match verb {
        "version" => {
            let v = crate::version::installed("kubectl")?;
            if a.output.as_deref() == Some("json") {
                let mut out = json!({"clientVersion": crate::version::info_json(v), "kustomizeVersion": "v5.7.1"});
                if !a.client_only {
                    out["serverVersion"] = client(&a)?.get("/version").await?.body;
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("Client Version: {v}\nKustomize Version: v5.7.1");
                if !a.client_only {
                    let s = client(&a)?.get("/version").await?.body;
                    println!("Server Version: {}", s["gitVersion"].as_str().unwrap_or("?"));
                }
            }
            Ok(())
        }
        "apply" => {
            if a.files.is_empty() {
                bail!("error: must specify one of -f and -k");
            }
            let mut objs = Vec::new();
            for f in &a.files {
                let text =
                    std::fs::read_to_string(f).with_context(|| format!("error: the path \"{f}\" does not exist"))?;
                objs.extend(objects(&text, f)?);
            }
            let api = client(&a)?;
            let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
            for obj in objs {
                let (coll, shown) = collection(&obj, &ns);
                let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let existing = api.get(&format!("{coll}/{name}")).await?;
                let (r, what) = if existing.status.is_success() {
                    (api.put(&format!("{coll}/{name}"), &obj).await?, "configured")
                } else {
                    (api.post(&coll, &obj).await?, "created")
                };
                if !r.status.is_success() {
                    bail!("error from server applying {shown}/{name}: {}", r.message());
                }
                println!("{shown}/{name} {what}");
            }
            Ok(())
        }
        "get" => {
            let what = a.rest.get(1).map(String::as_str).unwrap_or("");
            if !matches!(what, "nodes" | "node" | "no") {
                bail!("the stand-in kubectl gets nodes only (asked for {what:?})");
            }
            let api = client(&a)?;
            let r = match a.rest.get(2) {
                Some(n) => api.get(&format!("/api/v1/nodes/{n}")).await?,
                None => api.get("/api/v1/nodes").await?,
            };
            if !r.status.is_success() {
                bail!("Error from server ({}): {}", r.status.canonical_reason().unwrap_or(""), r.message());
            }
            let mut body = r.body;
            if body["kind"] == "List" {
                body["kind"] = json!("NodeList");
            }
            match a.output.as_deref() {
                Some("json") => println!("{}", serde_json::to_string_pretty(&body)?),
                Some("yaml") => print!("{}", serde_yaml_ng::to_string(&body)?),
                _ => {
                    println!("NAME      STATUS   ROLES           VERSION");
                    let items = if body["items"].is_array() {
                        body["items"].as_array().cloned().unwrap_or_default()
                    } else {
                        vec![body]
                    };
                    for n in items {
                        let roles: Vec<String> = n["metadata"]["labels"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string))
                            .collect();
                        println!(
                            "{:<9} Ready    {:<15} {}",
                            n["metadata"]["name"].as_str().unwrap_or(""),
                            if roles.is_empty() { "<none>".into() } else { roles.join(",") },
                            n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Ok(())
        }
        "delete" => {
            let (Some(kind), Some(name)) = (a.rest.get(1), a.rest.get(2)) else {
                bail!("error: resource(s) were provided, but no name was specified")
            };
            if !matches!(kind.as_str(), "node" | "nodes" | "no") {
                bail!("the stand-in kubectl deletes nodes only");
            }
            let r = client(&a)?.delete(&format!("/api/v1/nodes/{name}")).await?;
            if !r.status.is_success() {
                bail!("Error from server ({}): {}", r.status.canonical_reason().unwrap_or(""), r.message());
            }
            println!("node \"{name}\" deleted");
            Ok(())
        }
        v => bail!(
            "unknown command {v:?} for \"kubectl\" (the stand-in supports apply, get nodes, delete node, version)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_validation_like_kubectl() {
        let e = objects("kind: ConfigMap\nmetadata:\n  name: x\n", "cni.yaml").unwrap_err().to_string();
        assert!(e.contains("apiVersion not set"), "{e}");
        let e = objects("apiVersion: v1\nmetadata:\n  name: x\n", "cni.yaml").unwrap_err().to_string();
        assert!(e.contains("kind not set"), "{e}");
        let e = objects("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "cni.yaml").unwrap_err().to_string();
        assert!(e.contains("resource name may not be empty"), "{e}");
        let ok = objects("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: b\n", "f").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(collection(&ok[1], "default").0, "/apis/apps/v1/namespaces/default/daemonsets");
        assert_eq!(resource_of("NetworkPolicy"), "networkpolicies");
        assert_eq!(resource_of("IPPool"), "ippools");
    }
}
