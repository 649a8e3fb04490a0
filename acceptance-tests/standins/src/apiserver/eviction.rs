//! The eviction API (`POST .../pods/{name}/eviction`, policy/v1): the pod is deleted
//! unless a PodDisruptionBudget that selects it has no disruption left, in which case the
//! answer is 429 as the real API server gives it (kubectl drain and the provider retry).

use serde_json::Value;

use super::select::selector_matches;

fn healthy(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod.pointer("/metadata/deletionTimestamp").is_none()
}

/// An int or a percentage of `total` (rounded up, as the disruption controller does).
fn scaled(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let p: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some((p * total + 99) / 100)
        }
        _ => None,
    }
}

/// Why evicting `pod` would violate a budget among `pdbs` (with the pods of its
/// namespace `pods`), `None` when it may go.
pub fn violation(pod: &Value, pods: &[Value], pdbs: &[Value]) -> Option<String> {
    for pdb in pdbs {
        let selector = pdb.pointer("/spec/selector").cloned().unwrap_or(Value::Null);
        if selector.is_null() || !selector_matches(&selector, pod) {
            continue;
        }
        let selected: Vec<&Value> = pods.iter().filter(|p| selector_matches(&selector, p)).collect();
        let expected = selected.len() as i64;
        let current = selected.iter().filter(|p| healthy(p)).count() as i64;
        let desired = if let Some(min) = pdb.pointer("/spec/minAvailable") {
            scaled(min, expected).unwrap_or(0)
        } else if let Some(max) = pdb.pointer("/spec/maxUnavailable") {
            expected - scaled(max, expected).unwrap_or(0)
        } else {
            continue;
        };
        if current - desired <= 0 || !healthy(pod) && current - desired < 0 {
            let name = pdb.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            return Some(format!(
                "The disruption budget {name} needs {desired} healthy pods and has {current} currently"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": "web"}}, "status": {"phase": "Running"}})
    }

    #[test]
    fn a_budget_with_no_disruption_left_refuses() {
        let pods = vec![pod("a"), pod("b")];
        let min2 = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}});
        assert!(violation(&pods[0], &pods, &[min2]).unwrap().contains("needs 2 healthy pods and has 2"));
        let min1 = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(violation(&pods[0], &pods, &[min1]), None);
        let max0 = json!({"metadata": {"name": "web"}, "spec": {"maxUnavailable": "0%", "selector": {"matchLabels": {"app": "web"}}}});
        assert!(violation(&pods[0], &pods, &[max0]).is_some());
        let other = json!({"metadata": {"name": "db"}, "spec": {"minAvailable": 5, "selector": {"matchLabels": {"app": "db"}}}});
        assert_eq!(violation(&pods[0], &pods, &[other]), None);
    }
}
