//! `kubelet { ... }`: a KubeletConfiguration drop-in in the kubelet's
//! `--config-dir` (`/etc/kubernetes/kubelet.conf.d/`, GA in Kubernetes 1.35),
//! merged over kubeadm's `/var/lib/kubelet/config.yaml`, which stays kubeadm's;
//! and `KUBELET_EXTRA_ARGS` in `/etc/default/kubelet` (read by the kubeadm
//! systemd drop-in as an EnvironmentFile), which passes `--config-dir`.
//! Changes restart kubelet.
//!
//! Earlier agents wrote `/var/lib/kubelet/config.yaml` itself; that file is in
//! [`crate::managed::RELEASED`]: no longer managed, never deleted.

use crate::fsutil::FileState;
use crate::spec::KubeletSpec;
use crate::task::{Change, Context, Task, TaskError};
use serde::Serialize;
use std::collections::BTreeMap;

pub const CONFIG_DIR: &str = "/etc/kubernetes/kubelet.conf.d";
/// Drop-ins are merged in file name order; later ones win.
pub const DROP_IN: &str = "/etc/kubernetes/kubelet.conf.d/50-strata.conf";
/// kubeadm's file, written by earlier agents.
pub const LEGACY_CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const DEFAULTS: &str = "/etc/default/kubelet";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    authentication: Authentication<'a>,
    authorization: Authorization,
    cgroup_driver: &'static str,
    #[serde(rename = "clusterDNS", skip_serializing_if = "<[_]>::is_empty")]
    cluster_dns: &'a [String],
    cluster_domain: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    eviction_hard: &'a BTreeMap<String, String>,
    rotate_certificates: bool,
    static_pod_path: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Authentication<'a> {
    anonymous: Enabled,
    webhook: Enabled,
    x509: X509<'a>,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct X509<'a> {
    client_c_a_file: &'a str,
}

#[derive(Serialize)]
struct Authorization {
    mode: &'static str,
}

pub fn render_config(spec: &KubeletSpec) -> String {
    let cfg = KubeletConfiguration {
        api_version: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        authentication: Authentication {
            anonymous: Enabled { enabled: false },
            webhook: Enabled { enabled: true },
            x509: X509 { client_c_a_file: spec.client_ca_file.as_str() },
        },
        authorization: Authorization { mode: "Webhook" },
        cgroup_driver: spec.cgroup_driver.as_str(),
        cluster_dns: &spec.cluster_dns,
        cluster_domain: &spec.cluster_domain,
        eviction_hard: &spec.eviction_hard,
        rotate_certificates: spec.rotate_certificates,
        static_pod_path: spec.static_pod_path.as_str(),
    };
    let yaml = serde_yaml_ng::to_string(&cfg).expect("plain structs always serialize");
    format!("# Managed by strata-agent. Local changes will be overwritten.\n{yaml}")
}

/// `KUBELET_EXTRA_ARGS="--k=v ..."`. systemd expands the variable unquoted into
/// ExecStart, splitting on whitespace, so values with whitespace or quotes
/// cannot be passed safely and are rejected.
pub fn render_defaults(spec: &KubeletSpec) -> Result<String, TaskError> {
    let mut args = vec![];
    // Without it the kubelet ignores the drop-in; a spec's own config-dir wins.
    if !spec.extra_args.contains_key("config-dir") {
        args.push(format!("--config-dir={CONFIG_DIR}"));
    }
    for (k, v) in &spec.extra_args {
        if k.is_empty() || k.starts_with('-') || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(TaskError::new(format!("kubelet.extra_args {k:?}: invalid flag name (use e.g. \"node-ip\")")));
        }
        if v.chars().any(|c| c.is_whitespace() || "\"'\\$`".contains(c)) {
            return Err(TaskError::new(format!(
                "kubelet.extra_args {k:?}: value {v:?} must not contain whitespace, quotes, '\\', '$' or '`'"
            )));
        }
        args.push(format!("--{k}={v}"));
    }
    Ok(format!("# Managed by strata-agent.\nKUBELET_EXTRA_ARGS=\"{}\"\n", args.join(" ")))
}

pub struct KubeletTask {
    pub spec: KubeletSpec,
}

impl KubeletTask {
    fn files(&self) -> Result<[FileState; 2], TaskError> {
        Ok([
            FileState::new(DROP_IN, render_config(&self.spec)).with_mode(0o644),
            FileState::new(DEFAULTS, render_defaults(&self.spec)?).with_mode(0o644),
        ])
    }
}

impl Task for KubeletTask {
    fn name(&self) -> String {
        "kubelet config".into()
    }
    fn module(&self) -> &'static str {
        "kubelet"
    }
    fn notify(&self) -> Vec<String> {
        vec!["kubelet.service".into()]
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        crate::fsutil::check_files(&self.files()?, &ctx.root)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        crate::fsutil::apply_files(&self.files()?, &ctx.root)
    }
    fn managed(&self) -> Vec<crate::managed::Managed> {
        vec![crate::managed::Managed::File(DROP_IN.into())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use crate::spec::CgroupDriver;
    use proptest::prelude::*;
    use serde_yaml_ng::Value;

    fn spec() -> KubeletSpec {
        KubeletSpec {
            cluster_dns: vec!["10.96.0.10".into()],
            eviction_hard: [("memory.available".to_string(), "200Mi".to_string())].into(),
            extra_args: [("node-ip".to_string(), "10.0.0.5".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn kubelet_configuration_fields() {
        let v: Value = serde_yaml_ng::from_str(&render_config(&spec())).unwrap();
        assert_eq!(v["apiVersion"].as_str(), Some("kubelet.config.k8s.io/v1beta1"));
        assert_eq!(v["kind"].as_str(), Some("KubeletConfiguration"));
        assert_eq!(v["cgroupDriver"].as_str(), Some("systemd"));
        assert_eq!(v["clusterDNS"][0].as_str(), Some("10.96.0.10"));
        assert_eq!(v["clusterDomain"].as_str(), Some("cluster.local"));
        assert_eq!(v["authentication"]["anonymous"]["enabled"].as_bool(), Some(false));
        assert_eq!(v["authentication"]["webhook"]["enabled"].as_bool(), Some(true));
        assert_eq!(v["authentication"]["x509"]["clientCAFile"].as_str(), Some("/etc/kubernetes/pki/ca.crt"));
        assert_eq!(v["authorization"]["mode"].as_str(), Some("Webhook"));
        assert_eq!(v["rotateCertificates"].as_bool(), Some(true));
        assert_eq!(v["evictionHard"]["memory.available"].as_str(), Some("200Mi"));
    }

    #[test]
    fn extra_args_rendered_and_validated() {
        assert_eq!(
            render_defaults(&spec()).unwrap(),
            "# Managed by strata-agent.\nKUBELET_EXTRA_ARGS=\"--config-dir=/etc/kubernetes/kubelet.conf.d --node-ip=10.0.0.5\"\n"
        );
        let mut s = spec();
        s.extra_args.insert("node-labels".into(), "a=b c=d".into());
        let e = render_defaults(&s).unwrap_err().to_string();
        assert!(e.contains("node-labels"), "{e}");
    }

    #[test]
    fn writes_both_files_and_notifies_kubelet() {
        let (d, ctx) = testutil::root();
        let t = KubeletTask { spec: KubeletSpec { cgroup_driver: CgroupDriver::Cgroupfs, ..spec() } };
        assert_eq!(t.notify(), vec!["kubelet.service"]);
        assert_eq!(t.check(&ctx).unwrap().len(), 2);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        assert!(std::fs::read_to_string(d.path().join("etc/kubernetes/kubelet.conf.d/50-strata.conf"))
            .unwrap()
            .contains("cgroupDriver: cgroupfs"));
        assert!(!d.path().join("var/lib/kubelet/config.yaml").exists(), "kubeadm's file is left to kubeadm");
        // A config-dir of the spec's own replaces ours.
        let mut s = spec();
        s.extra_args.insert("config-dir".into(), "/etc/kubelet.d".into());
        let d = render_defaults(&s).unwrap();
        assert!(d.contains("--config-dir=/etc/kubelet.d") && !d.contains("kubelet.conf.d"), "{d}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        // Arbitrary strings in the spec cannot break the YAML structure.
        #[test]
        fn yaml_roundtrips(domain in ".{0,20}", dns in proptest::collection::vec(".{0,15}", 0..3), ev in proptest::collection::btree_map("[a-z.]{1,12}", ".{0,8}", 0..3)) {
            let s = KubeletSpec { cluster_domain: domain.clone(), cluster_dns: dns.clone(), eviction_hard: ev.clone(), ..Default::default() };
            let v: Value = serde_yaml_ng::from_str(&render_config(&s)).unwrap();
            prop_assert_eq!(v["clusterDomain"].as_str(), Some(domain.as_str()));
            let got: Vec<String> = v.get("clusterDNS").and_then(Value::as_sequence).map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect()).unwrap_or_default();
            prop_assert_eq!(got, dns);
            for (k, val) in &ev {
                prop_assert_eq!(v["evictionHard"][k.as_str()].as_str(), Some(val.as_str()));
            }
        }
    }
}
