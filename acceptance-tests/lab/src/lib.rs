//! The lab: nodes that are real Debian machines booted with systemd (systemd-nspawn of
//! a cached image, each with its own overlay root, address on a private bridge, hostname
//! and host key), air-gapped with a local apt repository, plus the Proxmox VE API
//! simulator. See README.md for the model and lab.json format.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let mut opts = strata_lab::UpOptions::new("/tmp/lab");
//! opts.nodes = 2;
//! let lab = strata_lab::LabGuard::up(&opts)?; // downs the lab when dropped
//! let out = lab.exec("node1", &["hostname"])?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "node1");
//! # Ok(()) }
//! ```

pub mod bundles;
pub mod etcd;
pub mod guest;
pub mod image;
pub mod k3s;
pub mod kubectl;
pub mod machine;
pub mod network;
pub mod node;
pub mod packages;
pub mod process;
pub mod pve;
pub mod repo;
pub mod sshd;
pub mod standins;
pub mod state;

use std::fs;
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use serde::Serialize;

pub use process::ProcessRef;
pub use standins::StandinsMode;
pub use state::{LabInfo, LabState, NetworkInfo, NodeInfo, NodeState, PveInfo, SshInfo};

/// How `up` gets the Proxmox simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PveMode {
    /// No simulator; lab.json has `"pve": null`.
    Disabled,
    /// `pve-sim` next to the running executable, else on PATH.
    Auto,
    Binary(PathBuf),
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub nodes: usize,
    /// Prefix of namespace and interface names; derived from `dir` when None.
    pub name: Option<String>,
    pub pve: PveMode,
    /// Where the Kubernetes stand-ins come from (packaged into a second apt repository).
    pub standins: StandinsMode,
    /// Run apt-get for missing packages (else fail naming them).
    pub install_packages: bool,
    /// Bound on each wait (sshd listening, pve-sim ready).
    pub ready_timeout: Duration,
}

impl UpOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        UpOptions {
            dir: dir.into(),
            nodes: 3,
            name: None,
            pve: PveMode::Auto,
            standins: StandinsMode::Auto,
            install_packages: true,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// A running (or recorded) lab, backed by `DIR/lab.json`.
#[derive(Debug, Clone)]
pub struct Lab {
    info: LabInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub dir: PathBuf,
    pub state: LabState,
    pub bridge: String,
    pub subnet: Option<String>,
    pub nodes: Vec<NodeStatus>,
    pub pve: Option<PveStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub address: String,
    pub state: NodeState,
    /// Its systemd (PID 1 of the machine) runs.
    pub alive: bool,
    /// It runs and port 22 answers.
    pub sshd_alive: bool,
    /// Its sshd port accepts TCP connections from the host.
    pub reachable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PveStatus {
    pub endpoint: Option<String>,
    pub pids: Vec<i32>,
    pub alive: bool,
    pub reachable: bool,
}

impl Lab {
    /// Brings a lab up in `opts.dir`, returning once every node accepts SSH and pve-sim
    /// (if enabled) is ready; the processes are daemons that outlive the caller.
    /// If the lab is already up and healthy with the same node count this is a no-op.
    /// On failure everything started so far stays recorded in lab.json for `down`
    /// (use [`LabGuard::up`] to have it undone at once).
    pub fn up(opts: &UpOptions) -> Result<Lab> {
        process::require_root()?;
        if opts.nodes == 0 || opts.nodes > network::MAX_NODES {
            bail!("--nodes must be between 1 and {}", network::MAX_NODES);
        }
        fs::create_dir_all(&opts.dir).with_context(|| format!("creating {}", opts.dir.display()))?;
        let dir = fs::canonicalize(&opts.dir)?;
        node::check_lab_dir(&dir)?;
        let _lock = state::lock_dir(&dir)?;
        let shown = dir.display();
        if let Some(existing) = LabInfo::load(&dir)? {
            match existing.state {
                LabState::Down => {}
                LabState::Up => {
                    let lab = Lab { info: existing };
                    if lab.is_healthy() && lab.info.nodes.len() == opts.nodes {
                        return Ok(lab);
                    }
                    bail!(
                        "a lab with {} nodes is already up in {shown} (healthy: {}); run `strata-lab down --dir {shown}` first",
                        lab.info.nodes.len(),
                        lab.is_healthy()
                    );
                }
                s => bail!("the lab in {shown} is {s:?} (an `up` failed or was interrupted); run `strata-lab down --dir {shown}` first"),
            }
        }

        // Resolve the simulator before creating or building anything: a missing binary is a
        // usage error.
        let pve_bin = match &opts.pve {
            PveMode::Disabled => None,
            PveMode::Auto => Some(pve::locate(None)?),
            PveMode::Binary(p) => Some(pve::locate(Some(p))?),
        };
        packages::ensure(packages::HOST_PACKAGES, opts.install_packages, &dir.join("apt.log"))?;
        // Built (or found in the cache) before anything is created: it takes a while.
        let image = image::ensure_image(&dir.join("image.log"))?;
        let repo = repo::ensure_repo(&image, &dir.join("repo.log"))?;
        let standins_repo = match standins::locate(&opts.standins)? {
            Some(bins) => Some(standins::ensure_repo(&bins, &dir.join("standins.log"))?),
            None => None,
        };
        let short = network::short_name(&dir, opts.name.as_deref())?;
        let bridge = network::bridge_name(&short);
        // Names already taken but unknown to this dir's lab.json belong to another lab.
        if network::link_exists(&bridge) {
            bail!("interface {bridge} already exists: another lab uses the name {short:?}; pass --name");
        }
        for i in 1..=opts.nodes {
            let ns = network::namespace_name(&short, &format!("node{i}"));
            if network::netns_exists(&ns) {
                bail!("network namespace {ns} already exists: another lab uses the name {short:?}; pass --name");
            }
        }
        let key = sshd::ensure_client_key(&dir.join("ssh"))?;
        let mut info = LabInfo {
            pve: None,
            nodes: Vec::new(),
            ssh: SshInfo {
                user: "root".into(),
                private_key_file: key.private.clone(),
                known_hosts_file: dir.join("ssh/known_hosts"),
                public_key_file: key.public.clone(),
                sudo_user: node::SUDO_USER.into(),
            },
            name: short,
            dir: dir.clone(),
            state: LabState::Starting,
            error: None,
            bridge,
            subnet: None,
            gateway: None,
            pve_processes: Vec::new(),
            network: None,
            image: Some(image.clone()),
            repo: Some(repo),
            standins_repo,
            guests: Vec::new(),
        };
        info.save()?;
        match bring_up(&mut info, opts, pve_bin.as_deref(), &image) {
            Ok(()) => {
                info.state = LabState::Up;
                info.save()?;
                Ok(Lab { info })
            }
            Err(e) => {
                info.state = LabState::Failed;
                info.error = Some(format!("{e:#}"));
                let _ = info.save();
                Err(e.context(format!("lab up failed; undo it with `strata-lab down --dir {shown}`")))
            }
        }
    }

    /// The lab recorded in `dir` (error if there is none).
    pub fn load(dir: impl AsRef<Path>) -> Result<Lab> {
        let dir = dir.as_ref();
        let info =
            LabInfo::load(dir)?.with_context(|| format!("no lab in {} (no {})", dir.display(), state::STATE_FILE))?;
        Ok(Lab { info })
    }

    pub fn info(&self) -> &LabInfo {
        &self.info
    }

    pub fn dir(&self) -> &Path {
        &self.info.dir
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.info.nodes
    }

    pub fn node(&self, name: &str) -> Result<&NodeInfo> {
        self.info.node(name)
    }

    /// Runs `argv` inside the node's mount, network and UTS namespaces. Guest nodes
    /// (VMs started through pve-sim) come and go behind this handle's back: they are
    /// looked up in lab.json afresh.
    pub fn exec(&self, node: &str, argv: &[&str]) -> Result<Output> {
        if let Some(n) = self.info.nodes.iter().find(|n| n.name == node) {
            return node::exec(n, argv);
        }
        let fresh = Lab::load(&self.info.dir)?;
        node::exec(fresh.node(node)?, argv)
    }

    /// An OpenSSH client command for `user@node` using the lab's key and known_hosts
    /// (strict host key checking); append the remote command with `.arg(..)`.
    pub fn ssh_command(&self, node: &str, user: &str) -> Result<Command> {
        let n = self.node(node)?;
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg("/dev/null");
        cmd.arg("-i").arg(&self.info.ssh.private_key_file);
        cmd.arg("-o").arg(format!("UserKnownHostsFile={}", self.info.ssh.known_hosts_file.display()));
        cmd.args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]);
        cmd.args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]);
        cmd.arg(format!("{user}@{}", n.address));
        Ok(cmd)
    }

    /// Simulates losing a node: SIGKILL to every process of it and its link removed, so
    /// its address stops answering. `down` still cleans it up.
    pub fn kill_node(&mut self, name: &str) -> Result<()> {
        process::require_root()?;
        let _lock = state::lock_dir(&self.info.dir)?;
        if let Some(fresh) = LabInfo::load(&self.info.dir)? {
            self.info = fresh;
        }
        let node = self.node(name)?.clone();
        // Power loss: the machine drops off the network first, so nothing it does while
        // dying (a keepalived handing over with a priority-0 advert) reaches anyone;
        // then every process at once (the cgroup's kill), no shutdown. `node start`
        // makes the network again.
        network::delete_link(&node.veth)?;
        machine::stop(&node, Signal::SIGKILL)?;
        network::delete_netns(&node.namespace)?;
        self.info.node_mut(name)?.state = NodeState::Killed;
        self.info.save()
    }

    /// Reloads lab.json (the caller holds the lab lock) and returns the named node.
    fn fresh_node(&mut self, name: &str) -> Result<NodeInfo> {
        if let Some(fresh) = LabInfo::load(&self.info.dir)? {
            self.info = fresh;
        }
        Ok(self.node(name)?.clone())
    }

    /// Shuts a node down cleanly (as `poweroff` would) and unplugs it; its disk is
    /// kept for [`Lab::start_node`].
    pub fn stop_node(&mut self, name: &str) -> Result<()> {
        process::require_root()?;
        let _lock = state::lock_dir(&self.info.dir)?;
        let node = self.fresh_node(name)?;
        machine::stop(&node, Signal::SIGTERM)?;
        network::delete_link(&node.veth)?;
        network::delete_netns(&node.namespace)?;
        self.info.node_mut(name)?.state = NodeState::Stopped;
        self.info.save()
    }

    /// Boots a stopped or killed node again from the same disk (same host key,
    /// same files), waiting (bounded by `timeout`) until it runs and answers SSH.
    pub fn start_node(&mut self, name: &str, timeout: Duration) -> Result<()> {
        process::require_root()?;
        let _lock = state::lock_dir(&self.info.dir)?;
        let node = self.fresh_node(name)?;
        if node.state == NodeState::Running && node.init.is_some_and(|p| p.is_alive()) {
            return Ok(());
        }
        self.boot_machine(&node, timeout)
    }

    /// Replaces a node by a blank machine: its disk is wiped (fresh upper dir and
    /// /srv), then it boots with the same name and address but a new host key and machine
    /// id; known_hosts and lab.json get the new key.
    pub fn recreate_node(&mut self, name: &str, timeout: Duration) -> Result<()> {
        process::require_root()?;
        let _lock = state::lock_dir(&self.info.dir)?;
        let node = self.fresh_node(name)?;
        let hosts = fs::read_to_string(machine::hosts_file_of(&node.data_dir)).unwrap_or_default();
        machine::stop(&node, Signal::SIGKILL)?;
        network::delete_link(&node.veth)?;
        network::delete_netns(&node.namespace)?;
        {
            let n = self.info.node_mut(name)?;
            n.state = NodeState::Creating;
            n.host_key_fingerprint = None;
            n.host_public_key = None;
        }
        self.info.save()?;
        let client_pub = fs::read_to_string(&self.info.ssh.public_key_file)?;
        let files = machine::MachineFiles {
            hostname: &node.hostname,
            hosts: &hosts,
            root_authorized_keys: &client_pub,
            with_repo: self.info.repo.is_some(),
            with_standins: self.info.standins_repo.is_some(),
        };
        machine::prepare_disk(&node.data_dir, &files)?;
        self.boot_machine(&node, timeout)?;
        node::setup_sudo_user(self.node(name)?, &client_pub)?;
        let pub_file = machine::host_public_key_file(&node.data_dir);
        let pub_line = fs::read_to_string(&pub_file).with_context(|| format!("reading {}", pub_file.display()))?;
        let fingerprint = sshd::fingerprint(&pub_file)?;
        let n = self.info.node_mut(name)?;
        n.host_key_fingerprint = Some(fingerprint);
        n.host_public_key = Some(pub_line.trim().to_string());
        self.info.save()?;
        sshd::replace_known_host(&self.info.ssh.known_hosts_file, &node.address, &pub_line)
    }

    /// Network, root mount and nspawn for an existing disk; records the new pids.
    fn boot_machine(&mut self, node: &NodeInfo, timeout: Duration) -> Result<()> {
        let name = node.name.clone();
        let image = self.info.image.clone().context("lab.json records no node image")?;
        let address: std::net::Ipv4Addr = node.address.parse()?;
        // Leftovers of a kill or a failed start.
        machine::stop(node, Signal::SIGKILL)?;
        network::delete_link(&node.veth)?;
        network::delete_netns(&node.namespace)?;
        network::create_node_network(&node.namespace, &node.veth, &self.info.bridge, address)?;
        machine::settle_link(node, &self.info.bridge)?;
        machine::mount_root(&image, &node.data_dir, &node.namespace)?;
        let nspawn =
            machine::boot(node, &node.namespace, self.info.repo.as_deref(), self.info.standins_repo.as_deref())?;
        self.info.node_mut(&name)?.nspawn = Some(nspawn);
        self.info.node_mut(&name)?.init = None;
        self.info.save()?;
        let init = machine::find_init(&nspawn, timeout, &machine::console_log(&node.data_dir))?;
        self.info.node_mut(&name)?.init = Some(init);
        self.info.save()?;
        let node = self.node(&name)?.clone();
        machine::wait_running(&node, &init, timeout)?;
        machine::wait_sshd(&node, &init, timeout)?;
        self.info.node_mut(&name)?.state = NodeState::Running;
        self.info.save()
    }

    pub fn status(&self) -> Status {
        // Guest nodes (VMs started through pve-sim) are listed after the lab's own.
        let nodes = self
            .info
            .nodes
            .iter()
            .chain(&self.info.guests)
            .map(|n| {
                let alive = n.init.is_some_and(|p| p.is_alive());
                let reachable = tcp_reachable(&format!("{}:22", n.address));
                NodeStatus {
                    name: n.name.clone(),
                    address: n.address.clone(),
                    state: n.state,
                    alive,
                    sshd_alive: alive && reachable,
                    reachable,
                }
            })
            .collect();
        let pve = (!self.info.pve_processes.is_empty() || self.info.pve.is_some()).then(|| {
            let endpoint = self.info.pve.as_ref().map(|p| p.endpoint.clone());
            PveStatus {
                reachable: endpoint
                    .as_deref()
                    .and_then(|e| e.split("://").nth(1))
                    .map(|hostport| tcp_reachable(hostport.trim_end_matches('/')))
                    .unwrap_or(false),
                endpoint,
                pids: self.info.pve_processes.iter().map(|p| p.pid).collect(),
                alive: self.info.pve_processes.iter().any(|p| p.is_alive()),
            }
        });
        Status {
            name: self.info.name.clone(),
            dir: self.info.dir.clone(),
            state: self.info.state,
            bridge: self.info.bridge.clone(),
            subnet: self.info.subnet.clone(),
            nodes,
            pve,
        }
    }

    /// Every recorded node runs its systemd, and the simulator (if any) runs.
    pub fn is_healthy(&self) -> bool {
        self.info.nodes.iter().all(|n| n.state == NodeState::Running && n.init.is_some_and(|p| p.is_alive()))
            && self.info.pve_processes.iter().all(|p| p.is_alive())
    }

    /// Stops everything this lab started and removes its namespaces, links and mounts.
    pub fn down(&mut self) -> Result<()> {
        down_dir(&self.info.dir)?;
        if let Some(info) = LabInfo::load(&self.info.dir)? {
            self.info = info;
        }
        Ok(())
    }
}

fn tcp_reachable(hostport: &str) -> bool {
    let Some(addr) = hostport.to_socket_addrs().ok().and_then(|mut a| a.next()) else { return false };
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

fn hosts_file(slot: u8, count: usize) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    s.push_str(&format!("10.77.{slot}.1\tlab-host\n"));
    for i in 1..=count {
        s.push_str(&format!("{}\tnode{i}\n", network::node_address(slot, i)));
    }
    s
}

/// The steps of `up` after lab.json exists; each records what it creates before it can fail.
fn bring_up(info: &mut LabInfo, opts: &UpOptions, pve_bin: Option<&Path>, image: &Path) -> Result<()> {
    let slot = network::create_bridge(&info.bridge.clone(), |slot| {
        info.subnet = Some(format!("10.77.{slot}.0/24"));
        info.gateway = Some(format!("10.77.{slot}.1"));
        info.network =
            Some(NetworkInfo { cidr: format!("10.77.{slot}.0/24"), host_address: format!("10.77.{slot}.1") });
        info.save()
    })?;
    bring_up_machines(info, opts, image, slot)?;
    start_pve(info, opts, pve_bin)
}

/// Per node a network namespace (eth0 with its address, no route off the
/// bridge), a blank disk (overlay upper dir) with its identity written in, and an nspawn
/// boot; then wait for each to reach `running` with sshd answering.
fn bring_up_machines(info: &mut LabInfo, opts: &UpOptions, image: &Path, slot: u8) -> Result<()> {
    let client_pub = fs::read_to_string(&info.ssh.public_key_file)?;
    let hosts = hosts_file(slot, opts.nodes);
    for i in 1..=opts.nodes {
        let name = format!("node{i}");
        let address = network::node_address(slot, i);
        let node = NodeInfo {
            address: address.to_string(),
            host_key_fingerprint: None,
            hostname: name.clone(),
            namespace: network::namespace_name(&info.name, &name),
            veth: network::veth_name(&info.name, i),
            state: NodeState::Creating,
            host_public_key: None,
            data_dir: info.dir.join("nodes").join(&name),
            private_mounts: machine::PRIVATE_MOUNTS.iter().map(|s| s.to_string()).collect(),
            name,
            nspawn: None,
            init: None,
        };
        info.nodes.push(node.clone());
        info.save()?;
        network::create_node_network(&node.namespace, &node.veth, &info.bridge, address)?;
        machine::settle_link(&node, &info.bridge)?;
        let files = machine::MachineFiles {
            hostname: &node.hostname,
            hosts: &hosts,
            root_authorized_keys: &client_pub,
            with_repo: info.repo.is_some(),
            with_standins: info.standins_repo.is_some(),
        };
        machine::prepare_disk(&node.data_dir, &files)?;
        machine::mount_root(image, &node.data_dir, &node.namespace)?;
        let nspawn = machine::boot(&node, &node.namespace, info.repo.as_deref(), info.standins_repo.as_deref())?;
        info.nodes[i - 1].nspawn = Some(nspawn);
        info.save()?;
        let init = machine::find_init(&nspawn, opts.ready_timeout, &machine::console_log(&node.data_dir))?;
        info.nodes[i - 1].init = Some(init);
        info.save()?;
    }
    // Machines boot concurrently; now wait for each and finish its setup.
    let mut known_hosts = String::new();
    for i in 0..info.nodes.len() {
        let node = info.nodes[i].clone();
        let init = node.init.context("node has no init")?;
        machine::wait_running(&node, &init, opts.ready_timeout)?;
        machine::wait_sshd(&node, &init, opts.ready_timeout)?;
        node::setup_sudo_user(&node, &client_pub)?;
        let pub_file = machine::host_public_key_file(&node.data_dir);
        let pub_line = fs::read_to_string(&pub_file).with_context(|| format!("reading {}", pub_file.display()))?;
        known_hosts.push_str(&sshd::known_hosts_line(&node.address, &pub_line));
        let n = &mut info.nodes[i];
        n.host_key_fingerprint = Some(sshd::fingerprint(&pub_file)?);
        n.host_public_key = Some(pub_line.trim().to_string());
        n.state = NodeState::Running;
        info.save()?;
    }
    fs::write(&info.ssh.known_hosts_file, known_hosts)?;
    Ok(())
}

fn start_pve(info: &mut LabInfo, opts: &UpOptions, pve_bin: Option<&Path>) -> Result<()> {
    if let Some(bin) = pve_bin {
        let data = info.dir.join("pve");
        // VMs started through the API become guest nodes of this lab.
        let hook = guest::write_hook_script(&info.dir, &guest::locate_lab_binary(bin)?)?;
        let proc = pve::start(bin, &data, &pve::new_token()?, Some(&hook))?;
        info.pve_processes.push(proc);
        info.save()?;
        let (pve_info, reported) = pve::wait_ready(&data, &proc, opts.ready_timeout)?;
        if let Some(pid) = reported.filter(|p| *p != proc.pid) {
            if let Ok(p) = ProcessRef::of(pid) {
                info.pve_processes.push(p);
            }
        }
        info.pve = Some(pve_info);
        info.save()?;
    }
    Ok(())
}

/// `down` for a directory: stops the recorded processes (by pid), removes namespaces,
/// veths and the bridge, and checks nothing is left. Idempotent; works after a failed
/// or interrupted `up`; a directory without lab.json is a no-op.
pub fn down_dir(dir: impl AsRef<Path>) -> Result<()> {
    process::require_root()?;
    let dir = dir.as_ref();
    if !dir.exists() {
        return Ok(());
    }
    let dir = fs::canonicalize(dir)?;
    if !state::state_path(&dir).exists() {
        return Ok(());
    }
    let _lock = state::lock_dir(&dir)?;
    let Some(mut info) = LabInfo::load(&dir)? else { return Ok(()) };
    let mut errors: Vec<String> = Vec::new();
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            errors.push(format!("{e:#}"));
        }
    };
    for p in &info.pve_processes {
        note(p.stop(Duration::from_secs(5)));
    }
    // All machines shut down at once; each is then waited for (bounded) below. pve-sim
    // is stopped first, so no guest starts meanwhile.
    let machines: Vec<NodeInfo> = info.nodes.iter().chain(&info.guests).cloned().collect();
    for n in &machines {
        if let Some(p) = n.nspawn {
            p.signal(Signal::SIGTERM);
        }
    }
    for n in machines.iter().rev() {
        // Clean shutdown, SIGKILL after a bounded wait, then the root is unmounted.
        note(machine::stop(n, Signal::SIGTERM));
        // Private mounts live in the node's mount namespace and go with its last process.
        note(network::delete_netns(&n.namespace));
        note(network::delete_link(&n.veth));
    }
    note(network::delete_link(&info.bridge));

    // Verify rather than assume.
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    for n in &machines {
        if network::netns_exists(&n.namespace) {
            errors.push(format!("namespace {} still exists", n.namespace));
        }
        if network::link_exists(&n.veth) {
            errors.push(format!("link {} still exists", n.veth));
        }
        if let Ok(pids) = machine::live_pids(n) {
            if !pids.is_empty() {
                errors.push(format!("node {} still has processes {pids:?}", n.name));
            }
        }
        if let Some(cg) = machine::cgroup_dirs(n).into_iter().find(|d| d.exists()) {
            errors.push(format!("cgroup {} of node {} still exists", cg.display(), n.name));
        }
        let data = n.data_dir.to_string_lossy();
        if mounts.lines().any(|l| l.contains(&*data) || l.contains(&format!("/run/netns/{} ", n.namespace))) {
            errors.push(format!("mounts of node {} are still on the host", n.name));
        }
    }
    if network::link_exists(&info.bridge) {
        errors.push(format!("bridge {} still exists", info.bridge));
    }
    if let Some(p) = info.pve_processes.iter().find(|p| p.is_alive()) {
        errors.push(format!("pve-sim pid {} still runs", p.pid));
    }
    if !errors.is_empty() {
        bail!("down of {} incomplete:\n  {}", dir.display(), errors.join("\n  "));
    }
    info.state = LabState::Down;
    info.pve = None;
    info.save()
}

/// Owns a lab and brings it down when dropped (also when a test panics).
#[derive(Debug)]
pub struct LabGuard {
    lab: Lab,
}

impl LabGuard {
    /// [`Lab::up`], undoing a partial lab at once if `up` fails.
    pub fn up(opts: &UpOptions) -> Result<LabGuard> {
        match Lab::up(opts) {
            Ok(lab) => Ok(LabGuard { lab }),
            Err(e) => {
                if let Err(d) = down_dir(&opts.dir) {
                    eprintln!("strata-lab: cleaning up after the failed up also failed: {d:#}");
                }
                Err(e)
            }
        }
    }

    pub fn new(lab: Lab) -> LabGuard {
        LabGuard { lab }
    }
}

impl Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl DerefMut for LabGuard {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = self.lab.down() {
            eprintln!("strata-lab: down of {} on drop failed: {e:#}", self.lab.dir().display());
        }
    }
}
