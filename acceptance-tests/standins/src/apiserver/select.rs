//! List filters: `fieldSelector` (`a=b`, `a==b`, `a!=b` on a field path such as
//! `spec.nodeName`) and `labelSelector` (`=`, `==`, `!=`, `key`, `!key`, `in (...)`,
//! `notin (...)`), and a LabelSelector object's match (PodDisruptionBudgets).

use serde_json::Value;

fn field(obj: &Value, path: &str) -> String {
    let ptr = format!("/{}", path.replace('.', "/"));
    match obj.pointer(&ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub fn fields_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.trim().is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            field(obj, k.trim()) != v.trim()
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            field(obj, k.trim()) == v.trim()
        } else {
            false
        }
    })
}

/// Splits on commas outside parentheses.
fn terms(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

pub fn labels_match(obj: &Value, selector: &str) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    terms(selector).into_iter().all(|t| {
        let set = |rest: &str| -> Vec<String> {
            rest.trim().trim_start_matches('(').trim_end_matches(')').split(',').map(|v| v.trim().to_string()).collect()
        };
        if let Some((k, rest)) = t.split_once(" notin ") {
            !get(k.trim()).is_some_and(|v| set(rest).iter().any(|x| x == v))
        } else if let Some((k, rest)) = t.split_once(" in ") {
            get(k.trim()).is_some_and(|v| set(rest).iter().any(|x| x == v))
        } else if let Some((k, v)) = t.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else if let Some(k) = t.strip_prefix('!') {
            get(k.trim()).is_none()
        } else {
            get(t).is_some()
        }
    })
}

/// Whether a `metav1.LabelSelector` (`matchLabels`, `matchExpressions`) selects `obj`.
/// An empty selector selects everything (policy/v1 PodDisruptionBudget semantics).
pub fn selector_matches(selector: &Value, obj: &Value) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let ml = selector.get("matchLabels").and_then(Value::as_object);
    let by_labels = ml.is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    by_labels
        && exprs.is_none_or(|es| {
            es.iter().all(|e| {
                let k = e["key"].as_str().unwrap_or("");
                let vals: Vec<&str> =
                    e["values"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                match e["operator"].as_str().unwrap_or("") {
                    "In" => get(k).is_some_and(|v| vals.contains(&v)),
                    "NotIn" => !get(k).is_some_and(|v| vals.contains(&v)),
                    "Exists" => get(k).is_some(),
                    "DoesNotExist" => get(k).is_none(),
                    _ => false,
                }
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let pod =
            json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}}, "spec": {"nodeName": "w1"}});
        assert!(fields_match(&pod, "spec.nodeName=w1"));
        assert!(!fields_match(&pod, "spec.nodeName=w2"));
        assert!(fields_match(&pod, "spec.nodeName==w1,metadata.name!=q"));
        assert!(labels_match(&pod, "app=web,tier in (fe, be)"));
        assert!(!labels_match(&pod, "app=web,tier notin (fe)"));
        assert!(labels_match(&pod, "app,!gone"));
        assert!(!labels_match(&pod, "app!=web"));
        assert!(selector_matches(&json!({"matchLabels": {"app": "web"}}), &pod));
        assert!(!selector_matches(&json!({"matchLabels": {"app": "db"}}), &pod));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]}),
            &pod
        ));
        assert!(selector_matches(&json!({}), &pod));
    }
}
