//! The record, on the node, of what the agent manages
//! (`/var/lib/strata/agent/managed.json`, under `--root`), so that what leaves
//! the spec is undone on the next apply: a removed file (a `file`, a registry
//! mirror's hosts.toml, an apt source or keyring, a drop-in of a block that
//! is gone) is deleted; a removed sysctl gets back the value it had before the
//! agent first set it (its line leaves the sysctl.d drop-in with the rest of the spec).
//!
//! The record is written before the tasks run (what is about to be managed,
//! with the sysctl values seen before anything is set), and shrunk to the
//! spec only after the clean-up succeeded: a run that dies in between still
//! cleans up next time. `check` reads it and writes nothing.

use crate::fsutil::{atomic_write, node_path, read_optional};
use crate::modules::sysctl::normalize;
use crate::task::{Change, Context, Task, TaskError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const MANAGED_FILE: &str = "/var/lib/strata/agent/managed.json";

/// Files this agent once wrote but that now belong to someone else: dropped
/// from the record, never deleted. kubeadm owns the kubelet's config.yaml;
/// the agent's settings moved to a `--config-dir` drop-in.
pub const RELEASED: [&str; 1] = [crate::modules::kubelet::LEGACY_CONFIG];

/// One thing a task manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Managed {
    File(String),
    Sysctl(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Node paths of files the agent wrote.
    #[serde(default)]
    pub files: BTreeSet<String>,
    /// Sysctl key -> its value before the agent first set it (`None` = unknown/absent).
    #[serde(default)]
    pub sysctl: BTreeMap<String, Option<String>>,
}

impl Record {
    pub fn load(root: &Path) -> Result<Record, String> {
        let p = node_path(root, MANAGED_FILE);
        match read_optional(&p).map_err(|e| format!("{MANAGED_FILE}: {e}"))? {
            None => Ok(Record::default()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| format!("{MANAGED_FILE}: {e}")),
        }
    }

    pub fn save(&self, root: &Path) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        atomic_write(&node_path(root, MANAGED_FILE), &json, 0o600, None).map_err(|e| format!("{MANAGED_FILE}: {e}"))
    }

    /// What `items` manage, keeping the "before" values already known in
    /// `self` and reading the live value of sysctls managed for the first time.
    pub fn desired(&self, items: &[Managed], ctx: &Context) -> Record {
        let mut r = Record::default();
        for m in items {
            match m {
                Managed::File(p) => {
                    r.files.insert(p.clone());
                }
                Managed::Sysctl(k) => {
                    let before = match self.sysctl.get(k) {
                        Some(b) => b.clone(),
                        // An unreadable key fails its own task; nothing to restore then.
                        None => ctx.sys.sysctl_get(k).ok().flatten(),
                    };
                    r.sysctl.insert(k.clone(), before);
                }
            }
        }
        r
    }

    pub fn union(&self, other: &Record) -> Record {
        let mut r = self.clone();
        r.files.extend(other.files.iter().cloned());
        for (k, v) in &other.sysctl {
            r.sysctl.entry(k.clone()).or_insert_with(|| v.clone());
        }
        r
    }

    /// What is in `self` but not in `desired`: the clean-up, or `None`.
    pub fn removals(&self, desired: &Record) -> Option<CleanupTask> {
        // Released files are only forgotten (the record is saved without them).
        let files: Vec<String> =
            self.files.difference(&desired.files).filter(|f| !RELEASED.contains(&f.as_str())).cloned().collect();
        let sysctl: Vec<(String, Option<String>)> = self
            .sysctl
            .iter()
            .filter(|(k, _)| !desired.sysctl.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!files.is_empty() || !sysctl.is_empty()).then_some(CleanupTask { files, sysctl })
    }
}

/// What a clean-up would do: the changes to report, files to delete, sysctls to restore.
type Plan<'a> = (Vec<Change>, Vec<&'a str>, Vec<(&'a str, &'a str)>);

/// Undoes what left the spec; see the module docs.
pub struct CleanupTask {
    pub files: Vec<String>,
    pub sysctl: Vec<(String, Option<String>)>,
}

impl CleanupTask {
    fn changes(&self, ctx: &Context) -> Result<Plan<'_>, TaskError> {
        let (mut changes, mut delete, mut restore) = (vec![], vec![], vec![]);
        for f in &self.files {
            match std::fs::symlink_metadata(ctx.path(f)) {
                Ok(m) if m.is_dir() => {
                    return Err(TaskError::new(format!("{f}: left the spec but is a directory; not removed")))
                }
                Ok(_) => {
                    changes.push(Change::at(f, format!("remove {f} (no longer in the spec)")));
                    delete.push(f.as_str());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(TaskError::new(format!("{f}: {e}"))),
            }
        }
        for (k, before) in &self.sysctl {
            let Some(before) = before else { continue };
            let live = ctx.sys.sysctl_get(k).map_err(|e| TaskError::new(format!("sysctl {k}: {e}")))?;
            if live.as_deref().map(normalize) != Some(normalize(before)) {
                changes.push(Change::new(format!(
                    "restore {k}: {} -> {before} (its value before strata-agent; no longer in the spec)",
                    live.as_deref().unwrap_or("(unset)")
                )));
                restore.push((k.as_str(), before.as_str()));
            }
        }
        Ok((changes, delete, restore))
    }
}

impl Task for CleanupTask {
    fn name(&self) -> String {
        "remove what left the spec".into()
    }
    fn module(&self) -> &'static str {
        "cleanup"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        Ok(self.changes(ctx)?.0)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        let (_, delete, restore) = self.changes(ctx)?;
        for f in delete {
            let p = ctx.path(f);
            std::fs::remove_file(&p).map_err(|e| TaskError::new(format!("{f}: {e}")))?;
            // A registry mirror is a directory of its own under certs.d: gone with its hosts.toml.
            if p.file_name().is_some_and(|n| n == "hosts.toml") {
                if let Some(dir) = p.parent() {
                    let _ = std::fs::remove_dir(dir); // only when empty
                }
            }
        }
        for (k, v) in restore {
            ctx.sys.sysctl_set(k, v).map_err(|e| TaskError::new(format!("sysctl {k}: {e}")))?;
        }
        Ok(())
    }
}
