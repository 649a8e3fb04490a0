//! `/etc/rancher/k3s/config.yaml`: keys are k3s's flag names without `--`. The
//! resource owns some keys (its attributes write them); `config` adds the others, each
//! checked at plan against the flags of the pinned version (k3s itself exits with
//! `flag provided but not defined` on an unknown key, after the apply started).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::framework::{AttributePath, Diagnostic, Diagnostics, Value};

/// Flags common to `k3s server` and `k3s agent` (k3s v1.35 and v1.36).
const AGENT_FLAGS: &[&str] = &[
    "config",
    "debug",
    "v",
    "vmodule",
    "log",
    "alsologtostderr",
    "token",
    "token-file",
    "server",
    "data-dir",
    "node-name",
    "with-node-id",
    "node-label",
    "node-taint",
    "image-credential-provider-bin-dir",
    "image-credential-provider-config",
    "docker",
    "container-runtime-endpoint",
    "default-runtime",
    "image-service-endpoint",
    "disable-default-registry-endpoint",
    "nonroot-devices",
    "pause-image",
    "snapshotter",
    "private-registry",
    "system-default-registry",
    "node-ip",
    "node-external-ip",
    "node-internal-dns",
    "node-external-dns",
    "resolv-conf",
    "flannel-iface",
    "flannel-conf",
    "flannel-cni-conf-file",
    "kubelet-arg",
    "kube-proxy-arg",
    "protect-kernel-defaults",
    "rootless",
    "prefer-bundled-bin",
    "selinux",
    "lb-server-port",
    "vpn-auth",
    "vpn-auth-file",
    "disable-apiserver-lb",
    "airgap-extra-registry",
];

/// Flags only `k3s server` has (k3s v1.35 and v1.36).
const SERVER_ONLY_FLAGS: &[&str] = &[
    "bind-address",
    "https-listen-port",
    "supervisor-port",
    "apiserver-port",
    "apiserver-bind-address",
    "advertise-address",
    "advertise-port",
    "tls-san",
    "tls-san-security",
    "cluster-cidr",
    "service-cidr",
    "service-node-port-range",
    "cluster-dns",
    "cluster-domain",
    "flannel-backend",
    "flannel-ipv6-masq",
    "flannel-external-ip",
    "egress-selector-mode",
    "servicelb-namespace",
    "write-kubeconfig",
    "write-kubeconfig-mode",
    "write-kubeconfig-group",
    "helm-job-image",
    "agent-token",
    "agent-token-file",
    "cluster-init",
    "cluster-reset",
    "cluster-reset-restore-path",
    "kube-apiserver-arg",
    "etcd-arg",
    "kube-controller-manager-arg",
    "kube-scheduler-arg",
    "kube-cloud-controller-manager-arg",
    "datastore-endpoint",
    "datastore-cafile",
    "datastore-certfile",
    "datastore-keyfile",
    "etcd-expose-metrics",
    "etcd-disable-snapshots",
    "etcd-snapshot-name",
    "etcd-snapshot-schedule-cron",
    "etcd-snapshot-retention",
    "etcd-snapshot-dir",
    "etcd-snapshot-compress",
    "etcd-s3",
    "etcd-s3-endpoint",
    "etcd-s3-endpoint-ca",
    "etcd-s3-skip-ssl-verify",
    "etcd-s3-access-key",
    "etcd-s3-secret-key",
    "etcd-s3-bucket",
    "etcd-s3-region",
    "etcd-s3-folder",
    "etcd-s3-proxy",
    "etcd-s3-config-secret",
    "etcd-s3-insecure",
    "etcd-s3-timeout",
    "default-local-storage-path",
    "disable",
    "disable-scheduler",
    "disable-cloud-controller",
    "disable-kube-proxy",
    "disable-network-policy",
    "disable-helm-controller",
    "disable-apiserver",
    "disable-controller-manager",
    "disable-etcd",
    "embedded-registry",
    "supervisor-metrics",
    "secrets-encryption",
    "secrets-encryption-provider",
    "enable-pprof",
    "kine-tls",
];

/// The minor releases the flag tables above were taken from.
const TABLE_MINORS: &[&str] = &["v1.35.", "v1.36."];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Server,
    Agent,
}

/// Whether the table knows `flag` for `role` at `version`; `None`: no table for it.
pub fn known_flag(role: Role, version: &str, flag: &str) -> Option<bool> {
    if !TABLE_MINORS.iter().any(|m| version.starts_with(m)) {
        return None;
    }
    Some(AGENT_FLAGS.contains(&flag) || (role == Role::Server && SERVER_ONLY_FLAGS.contains(&flag)))
}

/// The attribute that sets a key the resource writes itself.
pub fn owner(role: Role, key: &str) -> Option<&'static str> {
    let common = match key {
        "token" | "token-file" | "agent-token" | "agent-token-file" => Some("token"),
        "node-label" => Some("labels"),
        "node-taint" => Some("taints"),
        "disable-default-registry-endpoint" | "private-registry" => Some("registry"),
        "data-dir" => Some("(none: the data stays in /var/lib/rancher/k3s)"),
        "config" => Some("(none: this is config.yaml)"),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    match (role, key) {
        (Role::Server, "node-name") => Some("server[*].name"),
        (Role::Server, "node-ip") => Some("server[*].address"),
        (Role::Server, "server") => Some("tls_san (the first SAN is the registration address)"),
        (Role::Server, "cluster-init") => Some("(none: the first server block initialises the cluster)"),
        (Role::Server, "cluster-reset" | "cluster-reset-restore-path") => Some("restore_from_snapshot"),
        (Role::Server, "tls-san") => Some("tls_san"),
        (Role::Server, "disable") => Some("disable"),
        (Role::Server, "flannel-backend") => Some("flannel_backend"),
        (Role::Server, k) if k.starts_with("datastore-") => Some("datastore"),
        (Role::Server, "etcd-snapshot-schedule-cron" | "etcd-snapshot-retention" | "etcd-snapshot-dir") => {
            Some("etcd_snapshot")
        }
        (Role::Server, "write-kubeconfig" | "write-kubeconfig-mode") => {
            Some("(none: the provider reads /etc/rancher/k3s/k3s.yaml; use the kubeconfig output)")
        }
        (Role::Agent, "node-name") => Some("name"),
        (Role::Agent, "node-ip") => Some("address"),
        (Role::Agent, "server") => Some("server_url"),
        _ => None,
    }
}

/// Plan-time checks of `config`'s keys against the version's flags and the owned keys.
pub fn validate(role: Role, config: &Value, diags: &mut Diagnostics) {
    let Some(Value::Map(extra)) = config.attr("config") else { return };
    let version = config.attr("version").and_then(Value::as_str);
    let mut untabled = false;
    for k in extra.keys() {
        let at = AttributePath::root("config").key(k);
        if let Some(instead) = owner(role, k) {
            diags.push(
                Diagnostic::error(
                    "config key set by the resource",
                    format!("{k:?} is written by this resource; set it with {instead}, not in config."),
                )
                .at(at),
            );
            continue;
        }
        let Some(v) = version else { continue };
        match known_flag(role, v, k) {
            Some(true) => {}
            Some(false) => diags.push(
                Diagnostic::error(
                    "Unknown k3s flag",
                    format!(
                        "k3s {v} has no {} flag --{k}: k3s would exit with `flag provided but not defined: -{k}`.",
                        if role == Role::Server { "server" } else { "agent" }
                    ),
                )
                .at(at),
            ),
            None => untabled = true,
        }
    }
    if untabled {
        diags.push(
            Diagnostic::warning(
                "config keys not checked",
                format!(
                    "The provider has no flag table for k3s {}: config keys are written as given and k3s checks them \
                     when it starts.",
                    version.unwrap_or_default()
                ),
            )
            .at(AttributePath::root("config")),
        );
    }
}

/// The value of a user key: a list for `a,b` flags k3s takes as lists is not guessed;
/// the string is written as is (k3s parses YAML scalars into flag values).
pub fn render(keys: &BTreeMap<String, Json>) -> String {
    let mut out = String::from("# Written by terraform-provider-strata: changes here are overwritten.\n");
    out.push_str(&serde_yaml_ng::to_string(keys).expect("JSON values always serialise as YAML"));
    out
}

/// Adds the user's `config` keys (the resource's own win: they were refused at plan).
pub fn add_extra(keys: &mut BTreeMap<String, Json>, extra: Option<&BTreeMap<String, String>>) {
    for (k, v) in extra.into_iter().flatten() {
        keys.entry(k.clone()).or_insert_with(|| Json::String(v.clone()));
    }
}
