use super::*;
use crate::framework::json::{decode, Extra};
use crate::framework::AnyResource;
use serde_json::json;

fn config(j: serde_json::Value) -> Value {
    decode(&j, &Resource::schema(&Worker).value_type(), Extra::Ignore).unwrap()
}

fn base() -> serde_json::Value {
    json!({
        "name": "worker1",
        "kubernetes_version": "v1.35.0",
        "join": {"endpoint": "10.0.0.100:6443", "ca_cert_hash": "sha256:00", "token": "abcdef.0123456789abcdef", "token_expires_at": "2026-01-01T00:00:00Z"},
        "kubeconfig": "K",
        "ssh": {"host": "10.0.0.11"},
    })
}

fn errors(j: serde_json::Value) -> Vec<String> {
    let d = AnyResource::validate(&Worker, &config(j), true);
    let mut p: Vec<String> = d
        .iter()
        .filter(|d| d.severity == crate::framework::Severity::Error)
        .map(|d| d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default())
        .collect();
    p.sort();
    p
}

#[test]
fn labels_and_taints_kubernetes_would_reject_are_refused_naming_them() {
    let mut j = base();
    j["labels"] = json!({"env": "prod", "node-role.kubernetes.io/worker": "", "bad key": "x", "ok": "a".repeat(64)});
    j["taint"] = json!([
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        {"key": "-x", "effect": "NoExecute"},
        {"key": "y", "effect": "Sometimes"},
    ]);
    assert_eq!(
        errors(j),
        vec![r#"labels["bad key"]"#, r#"labels["ok"]"#, "taint[1]", "taint[2].key", "taint[3].effect"]
    );
    let mut j = base();
    j["labels"] = json!({"env": "prod"});
    j["taint"] = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    assert!(errors(j).is_empty());
}

fn model() -> WorkerModel {
    let v = config(base());
    crate::framework::model::to_model(&v).unwrap()
}

#[test]
fn the_join_configuration_has_the_taints_and_no_control_plane() {
    let mut m = model();
    m.node.address = Some("10.0.0.11".into());
    m.taint =
        vec![model::TaintModel { key: "dedicated".into(), value: Some("gpu".into()), effect: "NoSchedule".into() }];
    let doc: serde_json::Value = serde_yaml_ng::from_str(&join::join_config(&m, "abcdef.0123456789abcdef")).unwrap();
    assert_eq!(doc["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(doc["kind"], "JoinConfiguration");
    assert_eq!(doc["discovery"]["bootstrapToken"]["apiServerEndpoint"], "10.0.0.100:6443");
    assert_eq!(doc["discovery"]["bootstrapToken"]["caCertHashes"], json!(["sha256:00"]));
    assert_eq!(doc["nodeRegistration"]["name"], "worker1");
    assert_eq!(
        doc["nodeRegistration"]["taints"],
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    );
    assert_eq!(doc["nodeRegistration"]["kubeletExtraArgs"], json!([{"name": "node-ip", "value": "10.0.0.11"}]));
    assert!(doc.get("controlPlane").is_none());
}

#[test]
fn an_expired_or_nearly_expired_token_is_not_used() {
    let fmt = |d: time::Duration| {
        (time::OffsetDateTime::now_utc() + d).format(&time::format_description::well_known::Rfc3339).unwrap()
    };
    assert!(join::token_usable(&fmt(time::Duration::hours(23))));
    assert!(!join::token_usable(&fmt(time::Duration::minutes(5))));
    assert!(!join::token_usable(&fmt(-time::Duration::hours(1))));
    assert!(!join::token_usable("not a time"));
}

#[test]
fn a_skipped_minor_is_refused_at_plan_time() {
    let ctx = Context::detached();
    let prior = config(json!(base()));
    let mut prior = prior;
    *prior.attr_mut("id").unwrap() = Value::string("worker1");
    *prior.attr_mut("install_packages").unwrap() = Value::Bool(true);
    *prior.attr_mut("joined").unwrap() = Value::Bool(true);
    let mut next = base();
    next["kubernetes_version"] = "v1.37.0".into();
    let next = config(next);
    let p = AnyResource::plan(&Worker, &ctx, &prior, &next, &next);
    assert!(p.diagnostics.has_errors());
    let p = AnyResource::plan(&Worker, &ctx, &prior, &prior, &config(base()));
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
    assert_eq!(p.planned, prior, "no change: an empty plan");
}

fn tm(k: &str, v: Option<&str>, e: &str) -> model::TaintModel {
    model::TaintModel { key: k.into(), value: v.map(str::to_string), effect: e.into() }
}

#[test]
fn read_keeps_only_the_owned_taints_and_an_empty_value_round_trips() {
    let owned = vec![
        tm("dedicated", Some("gpu"), "NoSchedule"),
        tm("empty", Some(""), "NoSchedule"),
        tm("bare", None, "NoExecute"),
        tm("gone", None, "NoSchedule"),
    ];
    let observed = vec![
        Taint { key: "node.kubernetes.io/not-ready".into(), value: None, effect: "NoSchedule".into() },
        Taint { key: "node.kubernetes.io/unschedulable".into(), value: None, effect: "NoSchedule".into() },
        Taint { key: "dedicated".into(), value: Some("changed".into()), effect: "NoSchedule".into() },
        // The API omits an empty value.
        Taint { key: "empty".into(), value: None, effect: "NoSchedule".into() },
        Taint { key: "bare".into(), value: Some("".into()), effect: "NoExecute".into() },
        Taint { key: "other-tool".into(), value: Some("x".into()), effect: "NoSchedule".into() },
    ];
    assert_eq!(
        model::owned_taints(&owned, &observed),
        vec![
            tm("dedicated", Some("changed"), "NoSchedule"),
            tm("empty", Some(""), "NoSchedule"),
            tm("bare", None, "NoExecute")
        ],
        "not-ready, unschedulable and other-tool are not ours; gone is drift"
    );
}

#[test]
fn only_taints_no_longer_declared_are_removed_and_never_kubernetes_own() {
    let prior = vec![
        tm("a", None, "NoSchedule"),
        tm("a", None, "NoExecute"),
        tm("node.kubernetes.io/not-ready", None, "NoSchedule"),
    ];
    let planned = vec![tm("a", Some("v"), "NoSchedule")];
    assert_eq!(
        model::removed_taints(&prior, &planned),
        vec![Taint { key: "a".into(), value: None, effect: "NoExecute".into() }]
    );
}

#[test]
fn a_taint_kubernetes_manages_cannot_be_declared() {
    let mut j = base();
    j["taint"] = json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]);
    assert_eq!(errors(j), vec!["taint[0].key"]);
}

#[test]
fn a_changed_ssh_block_is_an_in_place_update() {
    let ctx = Context::detached();
    let mut prior = config(base());
    *prior.attr_mut("id").unwrap() = Value::string("worker1");
    *prior.attr_mut("install_packages").unwrap() = Value::Bool(true);
    *prior.attr_mut("joined").unwrap() = Value::Bool(true);
    let mut next = base();
    next["ssh"] = json!({"host": "worker1.lab.example", "user": "admin", "port": 2222});
    let next = config(next);
    let p = AnyResource::plan(&Worker, &ctx, &prior, &next, &next);
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
    assert!(p.requires_replace.is_empty(), "replaced for {:?}", p.requires_replace);
    assert_ne!(p.planned, prior, "an update is planned");
}

#[test]
fn a_node_our_failed_upgrade_cordoned_is_uncordoned_later_one_cordoned_by_hand_is_not() {
    let mut n = crate::kube::NodeObject { unschedulable: true, ..Default::default() };
    assert!(drain::cordoned_by_someone_else(&n), "kubectl cordon: left cordoned after the upgrade");
    n.annotations.insert(drain::CORDONED_FOR_UPGRADE.into(), "v1.36.1".into());
    assert!(!drain::cordoned_by_someone_else(&n), "cordoned by an upgrade that failed: uncordoned when it is done");
    n.unschedulable = false;
    assert!(!drain::cordoned_by_someone_else(&n));
}
