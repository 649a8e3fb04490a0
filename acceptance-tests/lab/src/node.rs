//! One node: a network namespace plus a private mount and UTS namespace whose first
//! process is the node's sshd. Private directories are overlays of the host's (writes
//! land in `DATA/upper/...`), /run and /tmp are fresh tmpfs.

use std::ffi::OsStr;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::network::netns_pids;
use crate::process::{describe, log_tail, spawn_daemon, wait_until, ProcessRef};
use crate::state::{NodeInfo, NodeKind};

/// Host directories each node gets a private copy-on-write view of.
pub const OVERLAY_DIRS: &[&str] = &["/etc", "/home", "/var/lib", "/var/log"];
/// Plain, initially empty per-node directories bound over the host's. /srv: nfs-ganesha's
/// VFS backend needs file handles, which overlayfs does not give (`name_to_handle_at`
/// fails with EOPNOTSUPP). /root: a new machine has no root dotfiles; the host's (pyenv
/// hooks in .bashrc, say) would run in every SSH session sshd starts through bash.
pub const DATA_DIRS: &[&str] = &["/srv", "/root"];
/// Directories each node gets empty.
pub const TMPFS_DIRS: &[&str] = &["/run", "/tmp"];

pub const SUDO_USER: &str = "strata";

fn layer_name(dir: &str) -> String {
    dir.trim_start_matches('/').replace('/', "-")
}

pub fn upper_dir(data_dir: &Path, dir: &str) -> PathBuf {
    data_dir.join("upper").join(layer_name(dir))
}

pub fn sshd_log(data_dir: &Path) -> PathBuf {
    data_dir.join("sshd.log")
}

/// The lab dir must not lie inside a directory the nodes overlay: overlayfs refuses
/// layers nested in each other, and a node would see its own upper dir.
pub fn check_lab_dir(dir: &Path) -> Result<()> {
    for d in OVERLAY_DIRS.iter().chain(DATA_DIRS) {
        if dir.starts_with(d) {
            bail!("lab dir {} is inside {d}, which every node overlays; use a dir elsewhere (e.g. under /tmp or /var/tmp)", dir.display());
        }
    }
    let s = dir.to_string_lossy();
    if s.contains([',', ':', '\\']) || s.chars().any(char::is_whitespace) {
        bail!("lab dir {s:?} must not contain ',', ':', '\\' or whitespace (they break overlayfs mount options)");
    }
    Ok(())
}

pub struct NodeFiles<'a> {
    pub sshd_config: &'a str,
    pub hosts: &'a str,
    pub root_authorized_keys: &'a str,
}

/// Fresh upper/work dirs (a node starts as a new machine each `up`), with the node's own
/// sshd_config, hostname, hosts and root's authorized_keys placed in the upper layers.
pub fn prepare_files(data_dir: &Path, node: &str, files: &NodeFiles) -> Result<()> {
    if data_dir.exists() {
        fs::remove_dir_all(data_dir).with_context(|| format!("removing old node data {}", data_dir.display()))?;
    }
    for d in OVERLAY_DIRS {
        let lower = fs::metadata(d).with_context(|| format!("host dir {d} is missing"))?;
        let upper = upper_dir(data_dir, d);
        let work = data_dir.join("work").join(layer_name(d));
        fs::create_dir_all(&upper)?;
        fs::create_dir_all(&work)?;
        // The overlay's root takes the upper dir's mode and owner (sshd checks /root's).
        fs::set_permissions(&upper, fs::Permissions::from_mode(lower.mode() & 0o7777))?;
        chown(&upper, Some(lower.uid()), Some(lower.gid()))?;
    }
    for d in DATA_DIRS {
        let dir = data_dir.join("data").join(layer_name(d));
        fs::create_dir_all(&dir)?;
        // sshd refuses keys under a home that others can write to.
        let mode = if *d == "/root" { 0o700 } else { 0o755 };
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
    }
    let etc = upper_dir(data_dir, "/etc");
    write_file(&etc.join("ssh/sshd_config"), files.sshd_config, 0o644)?;
    write_file(&etc.join("hostname"), &format!("{node}\n"), 0o644)?;
    write_file(&etc.join("hosts"), files.hosts, 0o644)?;
    let root_ssh = data_dir.join("data").join(layer_name("/root")).join(".ssh");
    fs::create_dir_all(&root_ssh)?;
    fs::set_permissions(&root_ssh, fs::Permissions::from_mode(0o700))?;
    write_file(&root_ssh.join("authorized_keys"), files.root_authorized_keys, 0o600)?;
    Ok(())
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Shell run as the node's first process: private mounts, hostname, own host key, then
/// exec sshd, so the sshd pid is the handle on all of the node's namespaces.
fn boot_script() -> String {
    let mut s = String::from("set -eu\nhostname \"$STRATA_NODE\"\n");
    // Overlays first: the data dir may live under /tmp, which is replaced below.
    for d in OVERLAY_DIRS {
        let l = layer_name(d);
        s.push_str(&format!(
            "mount -t overlay \"strata-$STRATA_NODE\" -o \"lowerdir={d},upperdir=$STRATA_NODE_DATA/upper/{l},workdir=$STRATA_NODE_DATA/work/{l}\" {d}\n"
        ));
    }
    for d in DATA_DIRS {
        s.push_str(&format!("mount --bind \"$STRATA_NODE_DATA/data/{}\" {d}\n", layer_name(d)));
    }
    s.push_str("mount -t tmpfs -o mode=0755 \"strata-$STRATA_NODE\" /run\n");
    s.push_str("mount -t tmpfs -o mode=1777 \"strata-$STRATA_NODE\" /tmp\n");
    s.push_str(
        "mkdir -p /run/sshd\n\
         rm -f /etc/ssh/ssh_host_*\n\
         ssh-keygen -q -t ed25519 -N '' -C \"root@$STRATA_NODE\" -f /etc/ssh/ssh_host_ed25519_key\n\
         exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config\n",
    );
    s
}

/// Starts the node's sshd (daemonised) inside its namespaces.
pub fn boot(node: &NodeInfo) -> Result<ProcessRef> {
    let script = boot_script();
    let words = [
        "netns",
        "exec",
        &node.namespace,
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ];
    let args: Vec<&OsStr> = words.iter().map(OsStr::new).collect();
    let envs = [("STRATA_NODE", OsStr::new(&node.hostname)), ("STRATA_NODE_DATA", node.data_dir.as_os_str())];
    spawn_daemon(Path::new("ip"), &args, &envs, &sshd_log(&node.data_dir))
}

/// Waits (bounded) until sshd accepts TCP connections on the node address.
pub fn wait_sshd(node: &NodeInfo, sshd: &ProcessRef, timeout: Duration) -> Result<()> {
    let addr: SocketAddr = format!("{}:22", node.address).parse()?;
    let ok = wait_until(timeout, || {
        !sshd.is_alive() || TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
    });
    if !sshd.is_alive() {
        bail!("sshd of {} exited during start; {}", node.name, log_tail(&sshd_log(&node.data_dir), 15));
    }
    if !ok {
        bail!(
            "sshd of {} does not accept connections on {addr} after {timeout:?}; {}",
            node.name,
            log_tail(&sshd_log(&node.data_dir), 15)
        );
    }
    Ok(())
}

/// The command line that runs `argv` inside the node (mount, network and UTS namespaces
/// of its sshd; every namespace of a systemd node's PID 1), so it sees the node's /etc,
/// address and hostname.
pub fn exec_command(node: &NodeInfo, argv: &[&str]) -> Result<Command> {
    if argv.is_empty() {
        bail!("no command given to run in node {}", node.name);
    }
    if node.kind == NodeKind::Systemd {
        let init = node
            .init
            .filter(|p| p.is_alive())
            .with_context(|| format!("node {} is not running (its systemd is gone)", node.name))?;
        return Ok(crate::machine::exec_command(&init, argv));
    }
    let sshd = node
        .sshd
        .filter(|p| p.is_alive())
        .with_context(|| format!("node {} is not running (its sshd is gone)", node.name))?;
    let pid = sshd.pid.to_string();
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid, "-m", "-n", "-u", "--"]).args(argv);
    Ok(cmd)
}

pub fn exec(node: &NodeInfo, argv: &[&str]) -> Result<Output> {
    let mut cmd = exec_command(node, argv)?;
    let shown = describe(&cmd);
    cmd.stdin(Stdio::null()).output().with_context(|| format!("running `{shown}`"))
}

/// Creates the non-root user with the lab key and passwordless sudo, inside the node.
pub fn setup_sudo_user(node: &NodeInfo, public_key: &str) -> Result<()> {
    let script = format!(
        "set -eu\n\
         u={SUDO_USER}\n\
         id -u $u >/dev/null 2>&1 || useradd -m -s /bin/bash $u\n\
         usermod -p '*' $u  # no password, but not locked: sshd refuses locked accounts\n\
         install -d -m 700 -o $u -g $u /home/$u/.ssh\n\
         printf '%s\\n' \"$STRATA_KEY\" > /home/$u/.ssh/authorized_keys\n\
         chown $u:$u /home/$u/.ssh/authorized_keys\n\
         chmod 600 /home/$u/.ssh/authorized_keys\n\
         printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\\n' $u > /etc/sudoers.d/$u\n\
         chmod 440 /etc/sudoers.d/$u\n\
         visudo -cqf /etc/sudoers.d/$u\n"
    );
    let mut cmd = exec_command(node, &["sh", "-c", &script])?;
    cmd.env("STRATA_KEY", public_key.trim());
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        bail!(
            "creating user {SUDO_USER} on {} failed ({}): {}",
            node.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Kills every process of the node: all pids in its network namespace plus its sshd.
/// `first` is SIGTERM for an orderly stop, SIGKILL for a simulated node loss.
/// Returns once each of them has fully exited: a process leaves the namespace early in
/// its exit, so an empty namespace alone does not prove it is gone.
pub fn kill_processes(node: &NodeInfo, first: Signal) -> Result<()> {
    let mut targets: Vec<ProcessRef> = Vec::new();
    let mut sig = first;
    for _round in 0..4 {
        for pid in live_pids(node)? {
            if let Ok(p) = ProcessRef::of(pid) {
                if !targets.contains(&p) {
                    targets.push(p);
                }
            }
        }
        for p in &targets {
            p.signal(sig);
        }
        let done = || targets.iter().all(|p| !p.is_alive()) && live_pids(node).map(|p| p.is_empty()).unwrap_or(false);
        if wait_until(Duration::from_secs(3), done) {
            return Ok(());
        }
        sig = Signal::SIGKILL;
    }
    let left: Vec<i32> = targets.iter().filter(|p| p.is_alive()).map(|p| p.pid).collect();
    bail!("processes of node {} survive SIGKILL: {left:?} {:?}", node.name, live_pids(node)?)
}

/// Pids still running in the node (namespace members plus the recorded sshd).
pub fn live_pids(node: &NodeInfo) -> Result<Vec<i32>> {
    if node.kind == NodeKind::Systemd {
        return crate::machine::live_pids(node);
    }
    let mut pids = netns_pids(&node.namespace)?;
    if let Some(sshd) = node.sshd {
        if sshd.is_alive() && !pids.contains(&sshd.pid) {
            pids.push(sshd.pid);
        }
    }
    Ok(pids)
}
