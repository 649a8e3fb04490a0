//! `DIR/lab.json`: the interface other tools script against, and the record `down` uses
//! to undo exactly what `up` did. It is rewritten atomically after every step of `up`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::process::ProcessRef;

pub const STATE_FILE: &str = "lab.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabState {
    /// `up` is running or died half-way: `down` undoes whatever is recorded.
    Starting,
    Up,
    /// `up` failed; the error is in `error`.
    Failed,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Creating,
    Running,
    /// Lost on purpose by `node kill`.
    Killed,
    /// Shut down cleanly by `node stop`; `node start` boots it with the same disk.
    Stopped,
}

/// Contents of lab.json. `pve`, `nodes` and `ssh` are the stable scripting interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabInfo {
    /// Null when the lab runs without the Proxmox simulator (or it is not ready yet).
    pub pve: Option<PveInfo>,
    pub nodes: Vec<NodeInfo>,
    pub ssh: SshInfo,
    /// Short per-lab prefix of every namespace and interface name.
    pub name: String,
    pub dir: PathBuf,
    pub state: LabState,
    #[serde(default)]
    pub error: Option<String>,
    pub bridge: String,
    /// e.g. "10.77.5.0/24"; null until a free slot has been claimed.
    pub subnet: Option<String>,
    /// The bridge's (host's) address in the subnet.
    pub gateway: Option<String>,
    /// Processes of the simulator (the one we spawned, plus the pid it reports if different).
    #[serde(default)]
    pub pve_processes: Vec<ProcessRef>,
    /// The lab network; null until the bridge exists.
    #[serde(default)]
    pub network: Option<NetworkInfo>,
    /// The cached root image every node's overlay uses as lowerdir.
    #[serde(default)]
    pub image: Option<PathBuf>,
    /// The local apt repository bound read-only into every node.
    #[serde(default)]
    pub repo: Option<PathBuf>,
    /// The Kubernetes stand-ins' apt repository, bound read-only into every node.
    #[serde(default)]
    pub standins_repo: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// e.g. "10.77.5.0/24".
    pub cidr: String,
    /// The host's address on the lab bridge (the nodes' only peer off the lab).
    pub host_address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PveInfo {
    pub endpoint: String,
    pub api_token: String,
    pub ca_cert_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub address: String,
    /// "SHA256:..." of the node's sshd ed25519 host key; null until the node is up.
    pub host_key_fingerprint: Option<String>,
    pub hostname: String,
    pub namespace: String,
    /// Host end of the node's veth (the node end is `eth0`).
    pub veth: String,
    pub state: NodeState,
    /// Host public key line ("ssh-ed25519 AAAA... root@node1").
    pub host_public_key: Option<String>,
    /// Per-node data: the overlay root (upper/work), /srv, console.log.
    pub data_dir: PathBuf,
    /// Paths that are private to the node (its own root and /srv).
    pub private_mounts: Vec<String>,
    /// The systemd-nspawn process (SIGTERM to it = clean shutdown).
    pub nspawn: Option<ProcessRef>,
    /// The machine's PID 1 (systemd), whose namespaces `node exec` enters.
    pub init: Option<ProcessRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SshInfo {
    pub user: String,
    pub private_key_file: PathBuf,
    pub known_hosts_file: PathBuf,
    pub public_key_file: PathBuf,
    /// Non-root user with the same key and passwordless sudo.
    pub sudo_user: String,
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Serialises `up`, `down` and `node kill` on one lab dir (e.g. two `up`s started at once).
pub fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    let path = dir.join(".lab.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {}", path.display()))
}

impl LabInfo {
    /// Writes lab.json atomically (temp file + rename) so readers never see half a file.
    pub fn save(&self) -> Result<()> {
        let path = state_path(&self.dir);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .with_context(|| format!("creating temp file in {}", self.dir.display()))?;
        serde_json::to_writer_pretty(&mut tmp, self)?;
        tmp.write_all(b"\n")?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Loads lab.json; Ok(None) when the directory holds no lab.
    pub fn load(dir: &Path) -> Result<Option<LabInfo>> {
        let path = state_path(dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let info = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Some(info))
    }

    pub fn node(&self, name: &str) -> Result<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name).with_context(|| {
            let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
            format!("no node named {name:?} in this lab (nodes: {})", names.join(", "))
        })
    }

    pub fn node_mut(&mut self, name: &str) -> Result<&mut NodeInfo> {
        self.nodes.iter_mut().find(|n| n.name == name).with_context(|| format!("no node named {name:?} in this lab"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip_and_keep_interface_keys() {
        let dir = tempfile::tempdir().unwrap();
        let info = LabInfo {
            pve: Some(PveInfo {
                endpoint: "https://127.0.0.1:8006".into(),
                api_token: "root@pam!strata=abc".into(),
                ca_cert_file: "/x/ca.pem".into(),
            }),
            nodes: vec![NodeInfo {
                name: "node1".into(),
                address: "10.77.3.11".into(),
                host_key_fingerprint: Some("SHA256:xyz".into()),
                hostname: "node1".into(),
                namespace: "ab-node1".into(),
                veth: "ab-n1".into(),
                state: NodeState::Running,
                host_public_key: None,
                data_dir: "/x/nodes/node1".into(),
                private_mounts: vec!["/etc".into()],
                nspawn: Some(ProcessRef { pid: 41, start_time: 6 }),
                init: Some(ProcessRef { pid: 42, start_time: 7 }),
            }],
            ssh: SshInfo {
                user: "root".into(),
                private_key_file: "/x/ssh/id_ed25519".into(),
                known_hosts_file: "/x/ssh/known_hosts".into(),
                public_key_file: "/x/ssh/id_ed25519.pub".into(),
                sudo_user: "strata".into(),
            },
            name: "ab".into(),
            dir: dir.path().to_path_buf(),
            state: LabState::Up,
            error: None,
            bridge: "slb-ab".into(),
            subnet: Some("10.77.3.0/24".into()),
            gateway: Some("10.77.3.1".into()),
            pve_processes: vec![],
            network: Some(NetworkInfo { cidr: "10.77.3.0/24".into(), host_address: "10.77.3.1".into() }),
            image: None,
            repo: None,
            standins_repo: None,
        };
        info.save().unwrap();
        assert_eq!(LabInfo::load(dir.path()).unwrap().unwrap(), info);

        let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(state_path(dir.path())).unwrap()).unwrap();
        assert_eq!(v["pve"]["endpoint"], "https://127.0.0.1:8006");
        assert_eq!(v["pve"]["api_token"], "root@pam!strata=abc");
        assert_eq!(v["pve"]["ca_cert_file"], "/x/ca.pem");
        assert_eq!(v["nodes"][0]["name"], "node1");
        assert_eq!(v["nodes"][0]["address"], "10.77.3.11");
        assert_eq!(v["nodes"][0]["host_key_fingerprint"], "SHA256:xyz");
        assert_eq!(v["ssh"]["user"], "root");
        assert_eq!(v["ssh"]["private_key_file"], "/x/ssh/id_ed25519");
        assert_eq!(v["ssh"]["known_hosts_file"], "/x/ssh/known_hosts");
        assert_eq!(v["network"]["cidr"], "10.77.3.0/24");
        assert_eq!(v["network"]["host_address"], "10.77.3.1");
        assert_eq!(v["nodes"][0]["init"]["pid"], 42);
    }

    #[test]
    fn load_of_empty_dir_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LabInfo::load(dir.path()).unwrap().is_none());
    }
}
