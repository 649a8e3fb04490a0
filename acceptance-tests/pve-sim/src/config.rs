//! Simulator configuration and the runtime-adjustable fault settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    /// Holds cert.pem/key.pem, state.json, requests.log and pve-sim.json.
    pub data_dir: PathBuf,
    /// Full API token `USER@REALM!TOKENID=SECRET`.
    pub token: String,
    pub nodes: Vec<String>,
    /// How long each task (UPID) stays `running`.
    pub task_ms: u64,
    pub faults: Faults,
    /// Optional password login for `POST /access/ticket`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Real PVE delays 401 answers by ~3 s to slow down guessing; the sim
    /// defaults to 0 so tests stay fast.
    pub auth_fail_delay_ms: u64,
    /// How long an exclusive operation waits for a shared (clone) lock on the
    /// same VM before failing with "got timeout" (PVE waits 10 s).
    pub lock_wait_ms: u64,
    /// Time after start before the guest agent answers (0 = immediately).
    pub agent_boot_ms: u64,
    /// How long a guest takes to power off after an ACPI shutdown request; longer
    /// than the request's timeout models a guest that ignores it.
    pub guest_shutdown_ms: u64,
    /// Storages every node has: (id, type, content).
    pub storages: Vec<StorageDef>,
    /// Program run on guest power changes (see `guest_hook`); None = nothing runs.
    pub guest_hook: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageDef {
    pub id: String,
    pub kind: String,
    pub content: String,
    pub shared: bool,
}

impl SimConfig {
    pub fn new(data_dir: impl Into<PathBuf>, token: impl Into<String>) -> Self {
        SimConfig {
            listen: "127.0.0.1:0".parse().expect("static address"),
            data_dir: data_dir.into(),
            token: token.into(),
            nodes: vec!["pve1".into()],
            task_ms: 200,
            faults: Faults::with_defaults(),
            user: None,
            password: None,
            auth_fail_delay_ms: 0,
            lock_wait_ms: 10_000,
            agent_boot_ms: 0,
            guest_shutdown_ms: 0,
            guest_hook: None,
            storages: vec![
                StorageDef {
                    id: "local".into(),
                    kind: "dir".into(),
                    content: "backup,iso,snippets,vztmpl".into(),
                    shared: false,
                },
                StorageDef {
                    id: "local-lvm".into(),
                    kind: "lvmthin".into(),
                    content: "images,rootdir".into(),
                    shared: false,
                },
            ],
        }
    }
}

/// Fault injection knobs; percentages are 0..=100.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Share of API requests answered with 500/503 before anything is done.
    pub fail_5xx_pct: u8,
    /// Share of API requests whose connection is dropped.
    pub reset_pct: u8,
    /// Of the resets on non-GET requests, the share that happens after the
    /// operation was performed (the client cannot tell whether it happened).
    pub reset_after_pct: u8,
    /// Added delay before every API request is handled.
    pub latency_ms: u64,
    /// Share of VM-modifying operations that fail with a lock timeout.
    pub lock_contention_pct: u8,
}

impl Faults {
    pub fn with_defaults() -> Self {
        Faults { reset_after_pct: 50, ..Faults::default() }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("fail_5xx_pct", self.fail_5xx_pct),
            ("reset_pct", self.reset_pct),
            ("reset_after_pct", self.reset_after_pct),
            ("lock_contention_pct", self.lock_contention_pct),
        ] {
            if v > 100 {
                return Err(format!("{name} must be between 0 and 100"));
            }
        }
        Ok(())
    }
}

/// Partial update for `PUT /_sim/faults`: absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    pub fail_5xx_pct: Option<u8>,
    pub reset_pct: Option<u8>,
    pub reset_after_pct: Option<u8>,
    pub latency_ms: Option<u64>,
    pub lock_contention_pct: Option<u8>,
}

impl FaultsPatch {
    pub fn apply(&self, f: &Faults) -> Faults {
        Faults {
            fail_5xx_pct: self.fail_5xx_pct.unwrap_or(f.fail_5xx_pct),
            reset_pct: self.reset_pct.unwrap_or(f.reset_pct),
            reset_after_pct: self.reset_after_pct.unwrap_or(f.reset_after_pct),
            latency_ms: self.latency_ms.unwrap_or(f.latency_ms),
            lock_contention_pct: self.lock_contention_pct.unwrap_or(f.lock_contention_pct),
        }
    }
}
