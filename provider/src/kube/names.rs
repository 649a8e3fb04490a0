//! Kubernetes' rules for label keys and values and taints, as the API server enforces
//! them (apimachinery's IsQualifiedName / IsValidLabelValue), so a plan refuses what
//! the API would reject at apply.

use regex::Regex;
use std::sync::LazyLock;

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("valid regex"));
static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("valid regex")
});

pub const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `[prefix/]name`: prefix a DNS subdomain of at most 253 characters, name at most 63
/// alphanumerics, '-', '_', '.', starting and ending alphanumeric.
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 || !DNS_SUBDOMAIN.is_match(p) {
            return Err(format!(
                "{key:?}: the prefix before '/' must be a DNS subdomain (lower-case, at most 253 characters)."
            ));
        }
    }
    if name.is_empty() || name.len() > 63 || !NAME.is_match(name) {
        return Err(format!(
            "{key:?}: the name must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending \
             with a letter or digit (optionally after a DNS subdomain prefix and '/')."
        ));
    }
    Ok(())
}

/// Empty, or at most 63 characters like a name.
pub fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 || !NAME.is_match(v) {
        return Err(format!(
            "{v:?}: a label value is at most 63 characters of letters, digits, '-', '_' or '.', starting and ending \
             with a letter or digit."
        ));
    }
    Ok(())
}

pub fn taint_effect(e: &str) -> Result<(), String> {
    if TAINT_EFFECTS.contains(&e) {
        Ok(())
    } else {
        Err(format!("{e:?} is not a taint effect: NoSchedule, PreferNoSchedule or NoExecute."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_follow_kubernetes() {
        for ok in ["env", "node-role.kubernetes.io/worker", "example.com/a_b.c", "a"] {
            assert!(qualified_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in ["", "-env", "env-", "Example.com/x", "/x", "a/b/c", "x/", long.as_str(), "sp ace"] {
            assert!(qualified_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values_are_at_most_63_characters() {
        assert!(label_value("").is_ok());
        assert!(label_value("prod_1.x-y").is_ok());
        assert!(label_value(&"a".repeat(63)).is_ok());
        assert!(label_value(&"a".repeat(64)).is_err());
        assert!(label_value("a/b").is_err());
        assert!(label_value("-a").is_err());
    }

    #[test]
    fn taint_effects_are_the_three_kubernetes_knows() {
        for e in TAINT_EFFECTS {
            assert!(taint_effect(e).is_ok());
        }
        assert!(taint_effect("noschedule").is_err());
    }
}
