//! The node lifecycle controller's taints, as kube-controller-manager keeps them (the
//! stand-in has no controller manager, so the API server does it on every Node write and
//! once a second): `node.kubernetes.io/not-ready` while the kubelet reports Ready=False,
//! `unreachable` (and Ready=Unknown) when it has not reported for the grace period,
//! `unschedulable` while `spec.unschedulable` is set.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::State;

/// kube-controller-manager's `--node-monitor-grace-period` default.
pub const GRACE: Duration = Duration::from_secs(40);

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339).ok()
}

pub fn format_time(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Brings `node`'s controller-owned taints (and a stale Ready condition) in line with its
/// status at `now`; returns whether anything changed.
pub fn reconcile(node: &mut Value, now: OffsetDateTime) -> bool {
    let before = node.clone();
    let ready = node
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
        .and_then(|c| c.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")));
    let mut state = "Unknown".to_string();
    if let Some(ready) = ready {
        let heartbeat = ready.get("lastHeartbeatTime").and_then(parse_time);
        let stale = heartbeat.is_none_or(|h| now - h > GRACE);
        if stale && ready["status"] != "Unknown" {
            ready["status"] = json!("Unknown");
            ready["reason"] = json!("NodeStatusUnknown");
            ready["message"] = json!("Kubelet stopped posting node status.");
            ready["lastTransitionTime"] = json!(format_time(now));
        }
        state = ready["status"].as_str().unwrap_or("Unknown").to_string();
    }
    let unschedulable = node.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false);
    let want: Vec<(&str, &str)> = [
        (state == "False").then_some((NOT_READY, "NoSchedule")),
        (state == "False").then_some((NOT_READY, "NoExecute")),
        (state == "Unknown").then_some((UNREACHABLE, "NoSchedule")),
        (state == "Unknown").then_some((UNREACHABLE, "NoExecute")),
        unschedulable.then_some((UNSCHEDULABLE, "NoSchedule")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let spec = node.as_object_mut().map(|o| o.entry("spec").or_insert_with(|| json!({})));
    let Some(spec) = spec.and_then(Value::as_object_mut) else { return false };
    let taints = spec.entry("taints").or_insert_with(|| json!([]));
    if !taints.is_array() {
        *taints = json!([]);
    }
    let list = taints.as_array_mut().expect("array");
    let ke = |t: &Value| (t["key"].as_str().unwrap_or("").to_string(), t["effect"].as_str().unwrap_or("").to_string());
    list.retain(|t| {
        let (k, e) = ke(t);
        ![NOT_READY, UNREACHABLE, UNSCHEDULABLE].contains(&k.as_str()) || want.contains(&(k.as_str(), e.as_str()))
    });
    for (k, e) in want {
        if !list.iter().any(|t| ke(t) == (k.to_string(), e.to_string())) {
            let mut t = json!({"key": k, "effect": e});
            if e == "NoExecute" {
                t["timeAdded"] = json!(format_time(now));
            }
            list.push(t);
        }
    }
    if list.is_empty() {
        spec.remove("taints");
    }
    *node != before
}

/// The controller loop: notices kubelets that stopped reporting.
pub async fn run(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(nodes) = state.etcd.list("/registry/minions/").await else { continue };
        for (key, raw) in nodes {
            let Ok(mut node) = serde_json::from_slice::<Value>(&raw) else { continue };
            if reconcile(&mut node, OffsetDateTime::now_utc()) {
                super::rest::bump_resource_version(&mut node);
                // Only over the Node as read, as the real controller's update carries its
                // resourceVersion: a Node changed in between (`kubectl taint`, a kubelet
                // status) is not overwritten, and is looked at again next round.
                let _ = state.etcd.put_if(&key, &serde_json::to_vec(&node).unwrap_or_default(), Some(&raw)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: &str, beat: &str, taints: Value) -> Value {
        json!({"spec": {"taints": taints}, "status": {"conditions": [{"type": "Ready", "status": status, "lastHeartbeatTime": beat}]}})
    }
    fn keys(n: &Value) -> Vec<String> {
        n["spec"]["taints"]
            .as_array()
            .map(|a| {
                a.iter().map(|t| format!("{}:{}", t["key"].as_str().unwrap(), t["effect"].as_str().unwrap())).collect()
            })
            .unwrap_or_default()
    }
    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn not_ready_then_ready_then_unreachable_and_cordoned() {
        let mine = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
        let mut n = node("False", "2026-12-04T10:00:00Z", mine.clone());
        assert!(reconcile(&mut n, at("2026-12-04T10:00:01Z")));
        assert_eq!(
            keys(&n),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/not-ready:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute"
            ]
        );
        assert!(!reconcile(&mut n, at("2026-12-04T10:00:02Z")), "nothing changes twice");
        n["status"]["conditions"][0]["status"] = json!("True");
        assert!(reconcile(&mut n, at("2026-12-04T10:00:03Z")));
        assert_eq!(keys(&n), ["dedicated:NoSchedule"]);
        assert!(reconcile(&mut n, at("2026-12-04T10:00:41Z")), "no heartbeat for 41s");
        assert_eq!(n["status"]["conditions"][0]["status"], "Unknown");
        assert_eq!(
            keys(&n),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        let mut c = node("True", "2026-12-04T10:00:00Z", json!(null));
        c["spec"]["unschedulable"] = json!(true);
        reconcile(&mut c, at("2026-12-04T10:00:01Z"));
        assert_eq!(keys(&c), ["node.kubernetes.io/unschedulable:NoSchedule"]);
        c["spec"]["unschedulable"] = json!(false);
        reconcile(&mut c, at("2026-12-04T10:00:01Z"));
        assert!(c["spec"].get("taints").is_none(), "{c}");
    }
}
