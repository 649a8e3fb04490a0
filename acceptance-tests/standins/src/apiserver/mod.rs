//! STAND-IN kube-apiserver: real flags, TLS with the serving certificate kubeadm issued,
//! client-certificate and bootstrap-token authentication, `/readyz` `/livez` `/version`,
//! and a REST store for objects kept in etcd under `/registry/...` through etcd's gRPC
//! API, so every API server of a cluster sees the same objects, served so that real
//! kubectl works (discovery, selectors, every PATCH type, eviction). No controller
//! manager runs; the controller duties kubeadm and day-2 operations rely on (bootstrap
//! signer, kubelet CSR approval and signing, the node lifecycle controller's taints, the
//! disruption budget check of evictions) are done here, see README.md.

mod auth;
mod csr;
mod discovery;
mod eviction;
mod flags;
mod nodes;
pub use nodes::format_time;
mod rest;
mod select;
mod server;
mod table;

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::etcd::Etcd;
use crate::version::KubeVersion;
pub use flags::Flags;

pub struct State {
    pub flags: Flags,
    pub etcd: Etcd,
    pub version: KubeVersion,
    /// `gitVersion` of `/version` when it is not `version` (k3s: `v1.36.1+k3s1`).
    pub git_version: Option<String>,
    /// The cluster CA (cert + key beside --client-ca-file), for signing kubelet CSRs.
    pub ca: Option<crate::pki::Ca>,
    /// The node lifecycle controller's memory of heartbeats.
    pub observed: nodes::Observed,
}

pub fn main(argv: Vec<String>) -> i32 {
    let flags = match Flags::parse(&argv[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return 1;
        }
    };
    match crate::block_on(run(flags)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("E kube-apiserver (stand-in): {e:#}");
            1
        }
    }
}

/// Runs the API server of `state` (and its node lifecycle controller) with `extra`
/// routes beside the API, as k3s serves its supervisor paths on the API's port.
pub async fn run_with(
    state: Arc<State>,
    extra: axum::Router,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<()> {
    tokio::spawn(nodes::run(state.clone()));
    server::serve_with(state, extra, ready).await
}

async fn run(flags: Flags) -> Result<()> {
    let version = match std::env::var("STRATA_STANDIN_VERSION") {
        Ok(v) => KubeVersion::parse(&v)?,
        Err(_) => crate::version::installed("kubelet")?,
    };
    let etcd = Etcd::new(&flags.etcd_servers, &flags.etcd_cafile, &flags.etcd_certfile, &flags.etcd_keyfile)
        .context("etcd client")?;
    let ca_key = std::path::Path::new(&flags.client_ca_file).with_file_name("ca.key");
    let ca = crate::pki::load_ca(&flags.client_ca_file, &ca_key.to_string_lossy()).ok();
    let state = Arc::new(State { flags, etcd, version, git_version: None, ca, observed: Default::default() });
    tokio::spawn(nodes::run(state.clone()));
    server::serve(state).await
}
