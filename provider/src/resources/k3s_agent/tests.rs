use super::*;
use crate::framework::json::{decode, Extra};
use crate::framework::{AnyResource, Severity};
use serde_json::json;

fn value(j: serde_json::Value) -> Value {
    decode(&j, &Resource::schema(&K3sAgent).value_type(), Extra::Ignore).unwrap()
}

fn base() -> serde_json::Value {
    json!({
        "name": "agent1",
        "address": "10.0.0.21",
        "ssh": {"host": "10.0.0.21"},
        "server_url": "https://10.0.0.100:6443",
        "token": "K10abc::server:s3cr3t",
        "version": "v1.36.1+k3s1",
    })
}

fn paths(j: serde_json::Value) -> Vec<String> {
    let d = AnyResource::validate(&K3sAgent, &value(j), true);
    let mut p: Vec<String> = d
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default())
        .collect();
    p.sort();
    p
}

#[test]
fn plan_time_refusals_name_the_attribute() {
    assert!(paths(base()).is_empty(), "{:?}", paths(base()));
    let mut j = base();
    j["version"] = json!("1.36.1+k3s1");
    assert_eq!(paths(j), vec!["version"]);
    let mut j = base();
    j["taints"] = json!(["gpu=true:Never"]);
    j["labels"] = json!({"ok": "a".repeat(64)});
    // Agents have no server flags; `server` is server_url's.
    j["config"] = json!({"kubelet-arg": "max-pods=200", "cluster-cidr": "x", "server": "https://x:6443"});
    j["server_url"] = json!("10.0.0.100:6443");
    assert_eq!(
        paths(j),
        vec![r#"config["cluster-cidr"]"#, r#"config["server"]"#, r#"labels["ok"]"#, "server_url", "taints[0]",]
    );
}

#[test]
fn the_agent_config_joins_server_url_with_the_token() {
    let mut j = base();
    j["labels"] = json!({"role": "db"});
    j["taints"] = json!(["dedicated=db:NoSchedule"]);
    j["config"] = json!({"kubelet-arg": "max-pods=200"});
    j["registry"] = json!({"mirrors": {"docker.io": ["https://10.0.0.5:5000"]}});
    let m: K3sAgentModel = crate::framework::model::to_model(&value(j)).unwrap();
    let c: serde_json::Value = serde_yaml_ng::from_str(&render(&m)).unwrap();
    assert_eq!(c["server"], "https://10.0.0.100:6443");
    assert_eq!(c["token"], "K10abc::server:s3cr3t");
    assert_eq!(c["node-name"], "agent1");
    assert_eq!(c["node-ip"], "10.0.0.21");
    assert_eq!(c["node-label"], json!(["role=db"]));
    assert_eq!(c["node-taint"], json!(["dedicated=db:NoSchedule"]));
    assert_eq!(c["kubelet-arg"], "max-pods=200");
    assert_eq!(c["disable-default-registry-endpoint"], true);
    assert!(c.get("cluster-init").is_none());
}

#[test]
fn the_agent_has_the_shared_node_shape_and_hides_its_secrets() {
    let s = Resource::schema(&K3sAgent);
    assert_eq!(s.block.find_block("ssh").unwrap().value_type(), cluster_node::ssh_block().value_type());
    assert!(s.block.find_attribute("name").unwrap().requires_replace);
    assert!(s.block.find_attribute("token").unwrap().sensitive);
    assert!(s.block.find_attribute("kubeconfig").unwrap().sensitive);
}

#[test]
fn a_full_token_pins_the_ca_hash() {
    let h = "ab".repeat(32);
    assert_eq!(k3s::token_ca_hash(&format!("K10{h}::server:s3cr3t")), Some(h.as_str()));
    assert_eq!(k3s::token_ca_hash("s3cr3t"), None);
    assert_eq!(k3s::token_ca_hash("K10xyz::server:s"), None);
}

#[test]
fn node_taint_strings_become_kubernetes_taints() {
    let t = k3s::parse_taint("dedicated=db:NoSchedule").unwrap();
    assert_eq!((t.key.as_str(), t.value.as_deref(), t.effect.as_str()), ("dedicated", Some("db"), "NoSchedule"));
    let t = k3s::parse_taint("node-role.kubernetes.io/control-plane:NoExecute").unwrap();
    assert_eq!(
        (t.key.as_str(), t.value, t.effect.as_str()),
        ("node-role.kubernetes.io/control-plane", None, "NoExecute")
    );
    assert!(k3s::parse_taint("no-effect").is_none());
}
