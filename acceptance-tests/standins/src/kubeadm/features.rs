//! kubeadm's own feature gates (`ClusterConfiguration.featureGates`), per pinned minor, from
//! `cmd/kubeadm/app/features/features.go` of that release, checked as
//! `ValidateFeatureGates` (`cmd/kubeadm/app/apis/kubeadm/validation/validation.go`) does.
//!
//! The lists (name, pre-release stage, default, locked to the default):
//! - 1.34: ControlPlaneKubeletLocalMode (beta, true), NodeLocalCRISocket (beta, true),
//!   PublicKeysECDSA (deprecated), RootlessControlPlane (alpha, false),
//!   WaitForAllControlPlaneComponents (GA, true, locked).
//! - 1.35: ControlPlaneKubeletLocalMode (GA, true, locked), NodeLocalCRISocket (beta, true),
//!   PublicKeysECDSA (deprecated), RootlessControlPlane (alpha, false) — the list
//!   `kubeadm --help` prints for v1.35.
//! - 1.36: NodeLocalCRISocket GA (locked), the others as 1.35.

use super::validation::invalid_raw;
use crate::version::KubeVersion;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stage {
    Alpha,
    Beta,
    Ga,
    Deprecated,
}

#[derive(Debug, Clone, Copy)]
pub struct Feature {
    pub name: &'static str,
    pub stage: Stage,
    pub default: bool,
    pub lock_to_default: bool,
}

const fn f(name: &'static str, stage: Stage, default: bool, lock_to_default: bool) -> Feature {
    Feature { name, stage, default, lock_to_default }
}

/// InitFeatureGates of the kubeadm of that minor (the pinned ones: 1.34, 1.35, 1.36; a later
/// minor gets 1.36's list, an earlier one 1.34's).
pub fn init_feature_gates(kubeadm: KubeVersion) -> Vec<Feature> {
    use Stage::*;
    let mut v = vec![f("PublicKeysECDSA", Deprecated, false, false), f("RootlessControlPlane", Alpha, false, false)];
    match kubeadm.minor {
        ..=34 => v.extend([
            f("ControlPlaneKubeletLocalMode", Beta, true, false),
            f("NodeLocalCRISocket", Beta, true, false),
            f("WaitForAllControlPlaneComponents", Ga, true, true),
        ]),
        35 => v.extend([f("ControlPlaneKubeletLocalMode", Ga, true, true), f("NodeLocalCRISocket", Beta, true, false)]),
        _ => v.extend([f("ControlPlaneKubeletLocalMode", Ga, true, true), f("NodeLocalCRISocket", Ga, true, true)]),
    }
    v
}

/// A `map[string]bool` as Go's `%#v` prints it (keys sorted): `map[string]bool{"A":true, "B":false}`.
fn go_map(gates: &std::collections::BTreeMap<String, bool>) -> String {
    let items: Vec<String> = gates.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
    format!("map[string]bool{{{}}}", items.join(", "))
}

/// ValidateFeatureGates: a name kubeadm does not know, or a deprecated one (features.Supports
/// is false for those), is "not a valid feature name"; a gate locked to its default cannot
/// be set to the other value.
pub fn validate_feature_gates(gates: &std::collections::BTreeMap<String, bool>, kubeadm: KubeVersion) -> Vec<String> {
    let known = init_feature_gates(kubeadm);
    let mut errs = Vec::new();
    for (k, v) in gates {
        let spec = known.iter().find(|f| f.name == k);
        if !spec.is_some_and(|f| f.stage != Stage::Deprecated) {
            errs.push(invalid_raw("featureGates", &go_map(gates), &format!("{k} is not a valid feature name.")));
        }
        if let Some(f) = spec.filter(|f| f.lock_to_default && f.default != *v) {
            errs.push(invalid_raw(
                "featureGates",
                &go_map(gates),
                &format!("cannot set feature gate {k} to {v}, feature is locked to {}", f.default),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn gates(items: &[(&str, bool)]) -> BTreeMap<String, bool> {
        items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn v(minor: u32) -> KubeVersion {
        KubeVersion { major: 1, minor, patch: 0 }
    }

    /// validation.go ValidateFeatureGates + features.go (features.Supports, InitFeatureGates
    /// of each pinned minor).
    #[test]
    fn feature_gates_per_minor_as_upstream() {
        let e = validate_feature_gates(&gates(&[("Foo", true)]), v(35));
        assert_eq!(
            e,
            vec!["featureGates: Invalid value: map[string]bool{\"Foo\":true}: Foo is not a valid feature name."]
        );
        // Deprecated: not supported.
        let e = validate_feature_gates(&gates(&[("PublicKeysECDSA", true)]), v(36));
        assert!(e[0].ends_with("PublicKeysECDSA is not a valid feature name."), "{e:?}");
        // Known, per minor.
        assert!(validate_feature_gates(
            &gates(&[("RootlessControlPlane", true), ("NodeLocalCRISocket", false)]),
            v(35)
        )
        .is_empty());
        assert!(validate_feature_gates(&gates(&[("WaitForAllControlPlaneComponents", true)]), v(34)).is_empty());
        let e = validate_feature_gates(&gates(&[("WaitForAllControlPlaneComponents", true)]), v(35));
        assert!(e[0].contains("WaitForAllControlPlaneComponents is not a valid feature name."), "{e:?}");
        // GA gates are locked to their default.
        assert!(validate_feature_gates(&gates(&[("ControlPlaneKubeletLocalMode", false)]), v(34)).is_empty());
        let e = validate_feature_gates(&gates(&[("ControlPlaneKubeletLocalMode", false)]), v(35));
        assert_eq!(e, vec!["featureGates: Invalid value: map[string]bool{\"ControlPlaneKubeletLocalMode\":false}: cannot set feature gate ControlPlaneKubeletLocalMode to false, feature is locked to true"]);
        assert!(validate_feature_gates(&gates(&[("NodeLocalCRISocket", false)]), v(35)).is_empty());
        assert_eq!(validate_feature_gates(&gates(&[("NodeLocalCRISocket", false)]), v(36)).len(), 1);
        assert!(validate_feature_gates(&gates(&[("NodeLocalCRISocket", true)]), v(36)).is_empty());
    }
}
