//! pve-sim: a Proxmox VE API simulator — a named stand-in for Proxmox VE
//! used by Strata's acceptance tests and for rehearsing rebuilds without
//! touching a real cluster. See README.md for what is faithful and what is
//! simplified.

mod api;
mod auth;
pub mod cli;
pub mod cloudinit;
pub mod config;
mod error;
mod faults;
pub mod guest_hook;
mod http;
mod locks;
pub mod lxc;
pub mod params;
pub mod reqlog;
mod server;
mod sim;
mod store;
mod tasks;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{Faults, FaultsPatch, SimConfig, StorageDef};
pub use reqlog::RequestEntry;
pub use tasks::{format_upid, parse_upid};

/// A running simulator.
pub struct SimHandle {
    endpoint: String,
    ca_cert_pem: String,
    sim: Arc<sim::Sim>,
    shutdown_tx: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

/// Starts the simulator: certificate, state, HTTPS listener.
pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
    if cfg.nodes.is_empty() {
        anyhow::bail!("at least one node is required");
    }
    cfg.faults.validate().map_err(|e| anyhow::anyhow!(e))?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let pair = tls::load_or_create(&cfg.data_dir)?;
    let tls_cfg = tls::server_config(&pair)?;
    let fingerprint = tls::fingerprint(&pair)?;
    let state = store::State::load(&cfg.data_dir.join("state.json")).context("loading state.json")?;
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(sim::Sim::new(cfg, state, fingerprint)?);
    // Persist once so state.json exists from the first moment.
    sim.mutate(|_| ());
    let app = api::router(sim.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_cfg);
    let server = tokio::spawn(server::serve(listener, acceptor, app, shutdown_rx));
    Ok(SimHandle {
        endpoint: format!("https://{addr}"),
        ca_cert_pem: pair.cert_pem,
        sim,
        shutdown_tx,
        server: Some(server),
    })
}

impl SimHandle {
    /// `https://127.0.0.1:PORT` (no path; the API lives under /api2/json).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// PEM of the self-signed server certificate (trust it as a CA).
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    pub fn ca_cert_file(&self) -> PathBuf {
        self.sim.cfg.data_dir.join("cert.pem")
    }

    pub fn data_dir(&self) -> &Path {
        &self.sim.cfg.data_dir
    }

    pub fn api_token(&self) -> &str {
        &self.sim.cfg.token
    }

    pub fn request_log(&self) -> Vec<RequestEntry> {
        self.sim.reqlog.entries()
    }

    pub fn clear_request_log(&self) {
        self.sim.reqlog.clear()
    }

    pub fn faults(&self) -> Faults {
        self.sim.faults()
    }

    pub fn set_faults(&self, f: Faults) -> anyhow::Result<()> {
        f.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.sim.set_faults(f);
        Ok(())
    }

    /// Full state (VMs, volumes, pools, tasks) as JSON, as `GET /_sim/state`.
    pub fn state_json(&self) -> serde_json::Value {
        self.sim.read(|st| serde_json::to_value(st).unwrap_or_default())
    }

    /// The `pve-sim.json` discovery document.
    pub fn discovery_json(&self) -> serde_json::Value {
        serde_json::json!({
            "endpoint": self.endpoint,
            "api_token": self.sim.cfg.token,
            "ca_cert_file": self.ca_cert_file().to_string_lossy(),
            "pid": std::process::id(),
        })
    }

    /// Writes `DIR/pve-sim.json` atomically.
    pub fn write_discovery_file(&self) -> anyhow::Result<PathBuf> {
        let path = self.sim.cfg.data_dir.join("pve-sim.json");
        let data = serde_json::to_vec_pretty(&self.discovery_json())?;
        tls::write_atomic(&path, &data)?;
        Ok(path)
    }

    /// Stops accepting, lets running tasks finish (bounded), saves state.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.sim.cfg.task_ms.saturating_mul(4).max(2000));
        while self.sim.read(|st| st.tasks.values().any(|t| t.status == "running"))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.sim.read(|st| st.save(&self.sim.state_path()))?;
        Ok(())
    }
}
