//! Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) for
//! Nodes, with kube-apiserver's node columns (pkg/printers/internalversion printNode):
//! NAME STATUS ROLES AGE VERSION, and with `-o wide` INTERNAL-IP EXTERNAL-IP OS-IMAGE
//! KERNEL-VERSION CONTAINER-RUNTIME. Other kinds are served as objects (kubectl then
//! prints NAME and AGE).

use serde_json::{json, Value};

/// Whether the client asked for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// `5s`, `3m`, `2h`, `4d` (HumanDuration, coarsely).
pub fn age(created: &str, now: time::OffsetDateTime) -> String {
    let Ok(t) = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339) else {
        return "<unknown>".into();
    };
    let s = (now - t).whole_seconds().max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn node_row(n: &Value, now: time::OffsetDateTime) -> Value {
    let conds = n.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut status = match conds.iter().find(|c| c["type"] == "Ready").map(|c| c["status"].as_str().unwrap_or("")) {
        Some("True") => "Ready".to_string(),
        _ => "NotReady".to_string(),
    };
    if n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = n["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string))
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
    let addr = |ty: &str| {
        n.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == ty))
            .and_then(|x| x["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = |k: &str| n["status"]["nodeInfo"][k].as_str().unwrap_or("<unknown>").to_string();
    json!({
        "cells": [n["metadata"]["name"], status, roles,
                  age(n["metadata"]["creationTimestamp"].as_str().unwrap_or(""), now),
                  info("kubeletVersion"), addr("InternalIP"), addr("ExternalIP"), info("osImage"),
                  info("kernelVersion"), info("containerRuntimeVersion")],
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": n["metadata"]}
    })
}

/// A Node or NodeList as a Table.
pub fn nodes(body: &Value, now: time::OffsetDateTime) -> Value {
    let items: Vec<Value> = match body["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![body.clone()],
    };
    let col = |name: &str, ty: &str, format: &str, priority: u8| json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority});
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
        "columnDefinitions": [col("Name", "string", "name", 0), col("Status", "string", "", 0),
            col("Roles", "string", "", 0), col("Age", "string", "", 0), col("Version", "string", "", 0),
            col("Internal-IP", "string", "", 1), col("External-IP", "string", "", 1),
            col("OS-Image", "string", "", 1), col("Kernel-Version", "string", "", 1),
            col("Container-Runtime", "string", "", 1)],
        "rows": items.iter().map(|n| node_row(n, now)).collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_rows_have_status_roles_and_version() {
        let now = time::OffsetDateTime::parse("2026-01-01T00:10:00Z", &time::format_description::well_known::Rfc3339)
            .unwrap();
        let list = json!({"kind": "NodeList", "metadata": {"resourceVersion": "7"}, "items": [{
            "metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/etcd": "true"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.36.1+k3s1"}}}]});
        let t = nodes(&list, now);
        assert_eq!(t["rows"][0]["cells"][1], "Ready");
        assert_eq!(t["rows"][0]["cells"][2], "control-plane,etcd");
        assert_eq!(t["rows"][0]["cells"][3], "10m");
        assert_eq!(t["rows"][0]["cells"][4], "v1.36.1+k3s1");
        assert_eq!(t["rows"][0]["cells"][5], "10.0.0.1");
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
    }
}
