//! The shared simulator object handed to every handler.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::Auth;
use crate::config::{Faults, SimConfig};
use crate::reqlog::RequestLog;
use crate::store::State;

pub struct Sim {
    pub cfg: SimConfig,
    pub auth: Auth,
    pub reqlog: RequestLog,
    /// SHA-256 fingerprint of the server certificate (`ssl_fingerprint`).
    pub fingerprint: String,
    pub boot_time: f64,
    state: Mutex<State>,
    faults: Mutex<Faults>,
}

pub type SharedSim = Arc<Sim>;

impl Sim {
    pub fn new(cfg: SimConfig, state: State, fingerprint: String) -> anyhow::Result<Sim> {
        Ok(Sim {
            auth: Auth::new(&cfg)?,
            reqlog: RequestLog::open(&cfg.data_dir.join("requests.log"))?,
            faults: Mutex::new(cfg.faults.clone()),
            fingerprint,
            boot_time: now(),
            state: Mutex::new(state),
            cfg,
        })
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not wedge the whole simulator.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read-only access.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock_state())
    }

    /// Mutating access; state.json is rewritten before the lock is released
    /// so a restart never loses an acknowledged change.
    pub fn mutate<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.lock_state();
        let r = f(&mut st);
        st.prune_tasks();
        if let Err(e) = st.save(&self.state_path()) {
            eprintln!("pve-sim: failed to save state: {e}");
        }
        r
    }

    pub fn state_path(&self) -> std::path::PathBuf {
        self.cfg.data_dir.join("state.json")
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    pub fn is_node(&self, node: &str) -> bool {
        self.cfg.nodes.iter().any(|n| n == node)
    }
}

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
