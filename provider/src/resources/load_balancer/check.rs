//! Plan-time checks across attributes: each error names the attribute it is about, and
//! only known values are checked (unknown ones are checked again once known).

use std::collections::HashMap;

use super::render::{default_priority, is_vrrp3};
use crate::framework::{AttributePath, Diagnostic, Diagnostics, Value};
use crate::resources::cluster_node;

fn list(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::List(items)) => items,
        _ => &[],
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v {
        Some(Value::Number(n)) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// Reports the second and later occurrences of a value, naming the first.
fn duplicates<K: std::hash::Hash + Eq + std::fmt::Display>(
    items: impl Iterator<Item = (usize, Option<K>)>,
    what: &str,
    at: impl Fn(usize) -> AttributePath,
    diags: &mut Diagnostics,
) {
    let mut seen: HashMap<K, usize> = HashMap::new();
    for (i, k) in items {
        let Some(k) = k else { continue };
        if let Some(first) = seen.get(&k) {
            diags.push(
                Diagnostic::error(format!("Duplicate {what}"), format!("{k} is already used by {}.", at(*first)))
                    .at(at(i)),
            );
        } else {
            seen.insert(k, i);
        }
    }
}

pub fn validate(config: &Value, diags: &mut Diagnostics) {
    let nodes = list(config.attr("node"));
    let node_at = |i: usize| AttributePath::root("node").index(i);
    cluster_node::validate(nodes, node_at, diags);
    for (i, n) in nodes.iter().enumerate() {
        let host = n.attr("ssh").and_then(|s| s.attr("host")).and_then(Value::as_str);
        let address_unset = n.attr("address").is_none_or(Value::is_null);
        if let (Some(h), true) = (host, address_unset) {
            if h.parse::<std::net::IpAddr>().is_err() {
                diags.push(
                    Diagnostic::error(
                        "Node address needed",
                        format!(
                            "ssh.host {h:?} is a name; VRRP peers need the node's IP address on the interface: set \
                             address."
                        ),
                    )
                    .at(node_at(i).attr("address")),
                );
            }
        }
    }
    duplicates(
        nodes.iter().enumerate().map(|(i, n)| {
            (i, n.attr("ssh").and_then(|s| s.attr("host")).and_then(Value::as_str).map(|h| format!("Host {h:?}")))
        }),
        "node host",
        |i| node_at(i).attr("ssh").attr("host"),
        diags,
    );
    // Derived priorities count too: an explicit 99 on the third node clashes with the
    // second's default.
    duplicates(
        nodes.iter().enumerate().map(|(i, n)| {
            let p = match n.attr("priority") {
                None | Some(Value::Null) => Some(default_priority(i)),
                Some(v) => v.as_i64(),
            };
            (i, p.map(|p| format!("Priority {p}")))
        }),
        "node priority",
        |i| node_at(i).attr("priority"),
        diags,
    );

    let frontends = list(config.attr("frontend"));
    let fe_at = |i: usize| AttributePath::root("frontend").index(i);
    duplicates(
        frontends
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f.attr("bind_port").and_then(Value::as_i64).map(|p| format!("Port {p}")))),
        "frontend port",
        |i| fe_at(i).attr("bind_port"),
        diags,
    );
    duplicates(
        frontends
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f.attr("name").and_then(Value::as_str).map(|n| format!("Name {n:?}")))),
        "frontend name",
        |i| fe_at(i).attr("name"),
        diags,
    );
    for (i, f) in frontends.iter().enumerate() {
        let backends = list(f.attr("backend"));
        duplicates(
            backends
                .iter()
                .enumerate()
                .map(|(j, b)| (j, b.attr("name").and_then(Value::as_str).map(|n| format!("Name {n:?}")))),
            "backend name",
            |j| fe_at(i).attr("backend").index(j).attr("name"),
            diags,
        );
        let mode = f.attr("mode").and_then(Value::as_str).unwrap_or("tcp");
        if mode == "tcp" && f.attr("tls_certificate").is_some_and(|v| !v.is_null() && !v.is_unknown()) {
            diags.push(
                Diagnostic::error(
                    "TLS needs mode = \"http\"",
                    "haproxy terminates TLS only for an http frontend; a tcp frontend passes TLS through as it is.",
                )
                .at(fe_at(i).attr("tls_certificate")),
            );
        }
        if let Some(hc @ Value::Object(_)) = f.attr("health_check") {
            let kind = hc.attr("type").and_then(Value::as_str).unwrap_or("tcp");
            for attr in ["path", "expect_status"] {
                if kind == "tcp" && hc.attr(attr).is_some_and(|v| !v.is_null()) {
                    diags.push(
                        Diagnostic::error(
                            "Attribute needs an http or https check",
                            format!("{attr} applies to type = \"http\" or \"https\" only."),
                        )
                        .at(fe_at(i).attr("health_check").attr(attr)),
                    );
                }
            }
        }
    }

    if let Some(advert) = number(config.attr("advert_interval")) {
        if is_vrrp3(advert) && config.attr("auth_pass").is_some_and(|v| !v.is_null()) {
            diags.push(
                Diagnostic::error(
                    "VRRPv3 has no authentication",
                    "A fractional advert_interval selects VRRPv3, which has no auth_pass (keepalived would ignore it): \
                     remove auth_pass or use whole seconds.",
                )
                .at(AttributePath::root("auth_pass")),
            );
        }
    }
}
