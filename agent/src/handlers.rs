//! Handlers that are owed to the node, persisted on the node itself.
//!
//! A restart is recorded *before* the change that needs it is made and cleared
//! only after the restart succeeded. If the run dies in between (a later task
//! fails, the restart fails, the agent is killed), the next run still performs
//! the restart even though it finds the configuration already in place —
//! avoiding the lost-handler problem of ansible/ansible#4766.

use crate::fsutil::{atomic_write, node_path, read_optional};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

pub const PENDING_FILE: &str = "/var/lib/strata-agent/pending-handlers.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// A systemd unit file changed: `systemctl daemon-reload` is owed.
    #[serde(default)]
    pub daemon_reload: bool,
    /// Units owed a restart.
    #[serde(default)]
    pub restart: BTreeSet<String>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        !self.daemon_reload && self.restart.is_empty()
    }

    pub fn load(root: &Path) -> Result<Pending, String> {
        let p = node_path(root, PENDING_FILE);
        match read_optional(&p).map_err(|e| format!("{PENDING_FILE}: {e}"))? {
            None => Ok(Pending::default()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| format!("{PENDING_FILE}: {e}")),
        }
    }

    /// Durable once this returns (atomic write with fsync); an empty set
    /// removes the file so a converged node carries no state.
    pub fn save(&self, root: &Path) -> Result<(), String> {
        let p = node_path(root, PENDING_FILE);
        if self.is_empty() {
            return match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{PENDING_FILE}: {e}")),
                _ => Ok(()),
            };
        }
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        atomic_write(&p, &json, 0o600, None).map_err(|e| format!("{PENDING_FILE}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_set_leaves_no_file() {
        let d = tempfile::tempdir().unwrap();
        let mut p = Pending::default();
        p.restart.insert("containerd.service".into());
        p.save(d.path()).unwrap();
        assert_eq!(Pending::load(d.path()).unwrap(), p);
        p.restart.clear();
        p.save(d.path()).unwrap();
        assert!(!node_path(d.path(), PENDING_FILE).exists());
        assert_eq!(Pending::load(d.path()).unwrap(), Pending::default());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = node_path(d.path(), PENDING_FILE);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "{").unwrap();
        assert!(Pending::load(d.path()).unwrap_err().contains("pending-handlers.json"));
    }

    proptest! {
        #[test]
        fn save_load_roundtrip(units in proptest::collection::btree_set("[a-z]{1,8}\\.service", 0..4), dr: bool) {
            let d = tempfile::tempdir().unwrap();
            let p = Pending { daemon_reload: dr, restart: units };
            p.save(d.path()).unwrap();
            prop_assert_eq!(Pending::load(d.path()).unwrap(), p);
        }
    }
}
