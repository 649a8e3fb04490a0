//! The one interface every module implements.

use crate::fsutil::node_path;
use crate::system::System;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// What a task has to do (check) or did (apply) to reach the desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Human-readable, e.g. "update /etc/containerd/config.toml", "net.ipv4.ip_forward 0 -> 1".
    pub what: String,
    /// Node path concerned, if any (used to detect systemd unit file changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Unified diff of a file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Change {
    pub fn new(what: impl Into<String>) -> Self {
        Change { what: what.into(), path: None, diff: None }
    }
    pub fn at(path: &str, what: impl Into<String>) -> Self {
        Change { what: what.into(), path: Some(path.to_string()), diff: None }
    }
    pub fn file(path: &str, what: impl Into<String>, diff: String) -> Self {
        Change { what: what.into(), path: Some(path.to_string()), diff: Some(diff) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError(pub String);

impl TaskError {
    pub fn new(msg: impl Into<String>) -> Self {
        TaskError(msg.into())
    }
}
impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TaskError {}
impl From<String> for TaskError {
    fn from(s: String) -> Self {
        TaskError(s)
    }
}

/// What a task runs against: the filesystem root and the live system.
pub struct Context {
    pub root: PathBuf,
    pub sys: Box<dyn System>,
}

impl Context {
    /// Files under `root`, live state (sysctl, modules, swap, systemd, apt) of
    /// this host through the real commands.
    pub fn host(root: &Path) -> Self {
        Context { root: root.to_path_buf(), sys: Box::new(crate::system::HostSystem::default()) }
    }
    /// Files and live state both inside `root` (test beds without systemd, unit
    /// tests). Refuses a root that is, or shares its dpkg database with, the
    /// running system, so a simulation can never be mistaken for the host.
    pub fn simulated(root: &Path) -> Result<Self, String> {
        crate::system::check_simulation_root(root, Path::new("/"))?;
        Ok(Context {
            root: root.to_path_buf(),
            sys: Box::new(crate::system::SimulatedSystem { root: root.to_path_buf() }),
        })
    }
    /// [`Context::simulated`] when `simulate`, else [`Context::host`].
    pub fn new(root: &Path, simulate: bool) -> Result<Self, String> {
        if simulate {
            Self::simulated(root)
        } else {
            Ok(Self::host(root))
        }
    }
    pub fn path(&self, abs: &str) -> PathBuf {
        node_path(&self.root, abs)
    }
}

/// A unit of desired state. The runner calls `check` and, unless in check
/// mode and only when `check` returned changes, records the handlers from
/// `notify` and then calls `apply`.
pub trait Task {
    /// Shown in reports, e.g. "file /etc/motd".
    fn name(&self) -> String;
    /// Module kind, e.g. "file", "containerd".
    fn module(&self) -> &'static str;
    /// Services (unit names) to restart when this task changed something.
    fn notify(&self) -> Vec<String> {
        Vec::new()
    }
    /// Differences between desired and actual state. Must not modify anything.
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError>;
    /// Bring actual state to the desired state. Idempotent on its own.
    fn apply(&self, ctx: &Context) -> Result<(), TaskError>;
    /// What this task owns on the node and must be undone once it leaves the
    /// spec (recorded by the runner, see [`crate::managed`]).
    fn managed(&self) -> Vec<crate::managed::Managed> {
        Vec::new()
    }
}
