//! What more than one resource does with an etcd cluster: `etcdctl` over TLS with a
//! given client certificate, and snapshots (recognised, saved on a node, checked).
//! `strata_etcd_cluster` uses it with its members' health-check certificate,
//! `strata_control_plane` with the API servers' etcd client certificate.

pub mod snapshot;

use crate::node::quote;

/// The files of an etcd client identity on a node.
pub struct ClientFiles<'a> {
    pub ca: &'a str,
    pub cert: &'a str,
    pub key: &'a str,
}

/// `etcdctl` (API v3) over TLS to `endpoints` (comma-separated) with `files`, each
/// command bounded by `command_timeout_secs`.
pub fn etcdctl(files: &ClientFiles<'_>, endpoints: &str, command_timeout_secs: u32) -> String {
    format!(
        "ETCDCTL_API=3 etcdctl --cacert={} --cert={} --key={} --endpoints={} --dial-timeout=5s \
         --command-timeout={command_timeout_secs}s",
        files.ca,
        files.cert,
        files.key,
        quote(endpoints)
    )
}
