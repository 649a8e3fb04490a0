//! The node lifecycle controller's taints, as kube-controller-manager keeps them (the
//! stand-in has no controller manager, so the API server does it on every Node write and
//! once a second): `node.kubernetes.io/not-ready` while the kubelet reports Ready=False,
//! `unreachable` (and Ready=Unknown) when it has not reported for the grace period,
//! `unschedulable` while `spec.unschedulable` is set.
//!
//! "Has not reported" is judged as kube-controller-manager's `nodeHealthMap` does it: by
//! this controller's own clock, from when it last saw the Node's heartbeat (its Ready
//! condition's `lastHeartbeatTime` or its Lease's `renewTime` in `kube-node-lease`)
//! change, not by comparing those timestamps with the wall clock. A Node first seen
//! counts as just heard from, so Nodes restored with etcd's data come back Ready and stay
//! so for the grace period after the controller starts, as in a real cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// What the controller saw of each Node's heartbeat, and when (its `nodeHealthMap`).
#[derive(Default)]
pub struct Observed(Mutex<HashMap<String, (String, Instant)>>);

impl Observed {
    /// Records `heartbeat` (anything that changes when the kubelet reports) for `node` at
    /// `now`; whether the last change seen is more than GRACE ago.
    pub fn stale(&self, node: &str, heartbeat: String, now: Instant) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen.entry(node.to_string()).or_insert_with(|| (heartbeat.clone(), now));
        if entry.0 != heartbeat {
            *entry = (heartbeat, now);
        }
        now.duration_since(entry.1) > GRACE
    }

    /// Forgets Nodes no longer there (a Node created again is first seen again).
    pub fn keep_only(&self, nodes: &[String]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).retain(|n, _| nodes.contains(n));
    }
}

/// The Node's heartbeat as the controller compares it: its Ready condition's
/// lastHeartbeatTime and its Lease's renewTime.
pub fn heartbeat(node: &Value, lease: Option<&Value>) -> String {
    let beat = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .and_then(|r| r.get("lastHeartbeatTime"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let renew = lease.and_then(|l| l.pointer("/spec/renewTime")).and_then(Value::as_str).unwrap_or("");
    format!("{beat}|{renew}")
}

/// Brings `node`'s controller-owned taints (and, when `stale`, its Ready condition) in
/// line with its status; returns whether anything changed. Never sets Ready=True: only
/// the kubelet does.
pub fn reconcile(node: &mut Value, stale: bool, now: OffsetDateTime) -> bool {
    let before = node.clone();
    let ready = node
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
        .and_then(|c| c.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")));
    let mut state = "Unknown".to_string();
    if let Some(ready) = ready {
        // Without any heartbeat the kubelet never reported: unknown at once.
        let stale = stale || ready.get("lastHeartbeatTime").and_then(parse_time).is_none();
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

/// Where the kubelets' Leases are kept.
const LEASES: &str = "/registry/coordination.k8s.io/leases/kube-node-lease/";

/// The controller loop: notices kubelets that stopped reporting.
pub async fn run(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(nodes) = state.etcd.list("/registry/minions/").await else { continue };
        let leases: HashMap<String, Value> = state
            .etcd
            .list(LEASES)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, raw)| Some((k.strip_prefix(LEASES)?.to_string(), serde_json::from_slice(&raw).ok()?)))
            .collect();
        let now = Instant::now();
        let names: Vec<String> =
            nodes.iter().map(|(k, _)| k.strip_prefix("/registry/minions/").unwrap_or(k).to_string()).collect();
        state.observed.keep_only(&names);
        for (key, raw) in nodes {
            let Ok(mut node) = serde_json::from_slice::<Value>(&raw) else { continue };
            let name = key.strip_prefix("/registry/minions/").unwrap_or(&key).to_string();
            let stale = state.observed.stale(&name, heartbeat(&node, leases.get(&name)), now);
            if reconcile(&mut node, stale, OffsetDateTime::now_utc()) {
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
        assert!(reconcile(&mut n, false, at("2026-12-04T10:00:01Z")));
        assert_eq!(
            keys(&n),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/not-ready:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute"
            ]
        );
        assert!(!reconcile(&mut n, false, at("2026-12-04T10:00:02Z")), "nothing changes twice");
        n["status"]["conditions"][0]["status"] = json!("True");
        assert!(reconcile(&mut n, false, at("2026-12-04T10:00:03Z")));
        assert_eq!(keys(&n), ["dedicated:NoSchedule"]);
        assert!(reconcile(&mut n, true, at("2026-12-04T10:00:41Z")), "no heartbeat for the grace period");
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
        reconcile(&mut c, false, at("2026-12-04T10:00:01Z"));
        assert_eq!(keys(&c), ["node.kubernetes.io/unschedulable:NoSchedule"]);
        c["spec"]["unschedulable"] = json!(false);
        reconcile(&mut c, false, at("2026-12-04T10:00:01Z"));
        assert!(c["spec"].get("taints").is_none(), "{c}");
    }

    /// kube-controller-manager's nodeHealthMap: a Node first seen (restored from a
    /// snapshot, heartbeat hours old) is fresh for GRACE from then; a heartbeat or Lease
    /// renewal that changes restarts the grace period; one that stops does not.
    #[test]
    fn staleness_is_judged_from_when_the_controller_saw_a_heartbeat_change() {
        let o = Observed::default();
        let t0 = Instant::now();
        let old = node("True", "2020-01-01T00:00:00Z", json!(null));
        assert!(!o.stale("w", heartbeat(&old, None), t0), "first seen: fresh");
        assert!(!o.stale("w", heartbeat(&old, None), t0 + GRACE));
        assert!(o.stale("w", heartbeat(&old, None), t0 + GRACE + Duration::from_secs(1)), "no change for GRACE");
        let lease = json!({"spec": {"renewTime": "2026-12-04T10:00:10.000000Z"}});
        let t1 = t0 + GRACE + Duration::from_secs(2);
        assert!(!o.stale("w", heartbeat(&old, Some(&lease)), t1), "a Lease renewal is a heartbeat");
        assert!(o.stale("w", heartbeat(&old, Some(&lease)), t1 + GRACE + Duration::from_secs(1)));
        o.keep_only(&[]);
        assert!(!o.stale("w", heartbeat(&old, Some(&lease)), t1 + GRACE * 3), "a Node deleted and seen again is new");
        // A Ready condition without a heartbeat is unknown at once.
        let mut never = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(reconcile(&mut never, false, at("2026-12-04T10:00:00Z")));
        assert_eq!(never["status"]["conditions"][0]["status"], "Unknown");
    }
}
