//! Systemd nodes: each is `systemd-nspawn --boot` of its own overlay root (the cached
//! image as lowerdir, a per-node upper dir), running in the node's network namespace
//! (made by `network::create_node_network`, so `eth0` carries the node's address as on a
//! VM, and there is no route off the lab bridge). `/srv` is a plain bind mount: nfs-ganesha
//! needs file handles, which overlayfs does not give.
//!
//! Handles are pids (nspawn and the container's PID 1), never machine names: the host
//! has no systemd-machined (`--register=no`).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::network::netns_pids;
use crate::process::{log_tail, run, spawn_daemon, wait_until, ProcessRef};
use crate::state::NodeInfo;

/// What a systemd node keeps private (besides its network namespace).
pub const PRIVATE_MOUNTS: &[&str] = &["/", "/srv"];

/// Bound on a clean shutdown (SIGTERM to nspawn) before everything gets SIGKILL.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub fn root_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("root")
}
fn upper(data_dir: &Path) -> PathBuf {
    data_dir.join("upper")
}
fn work(data_dir: &Path) -> PathBuf {
    data_dir.join("work")
}
pub fn srv_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("srv")
}
pub fn console_log(data_dir: &Path) -> PathBuf {
    data_dir.join("console.log")
}
pub fn hosts_file_of(data_dir: &Path) -> PathBuf {
    upper(data_dir).join("etc/hosts")
}
/// The node's ed25519 host public key, as written into its root before boot.
pub fn host_public_key_file(data_dir: &Path) -> PathBuf {
    upper(data_dir).join("etc/ssh/ssh_host_ed25519_key.pub")
}

pub struct MachineFiles<'a> {
    pub hostname: &'a str,
    pub hosts: &'a str,
    pub root_authorized_keys: &'a str,
    /// Add the lab's local apt repository as the node's only apt source.
    pub with_repo: bool,
    /// Add the Kubernetes stand-ins' repository as a second apt source.
    pub with_standins: bool,
}

/// Our settings on top of Debian's sshd_config (which includes sshd_config.d first).
const SSHD_DROP_IN: &str = "# Written by strata-lab.\n\
HostKey /etc/ssh/ssh_host_ed25519_key\n\
PermitRootLogin prohibit-password\n\
PasswordAuthentication no\n\
KbdInteractiveAuthentication no\n\
UseDNS no\n";

/// A blank machine: fresh upper/work dirs (the disk) and an empty /srv, with hostname,
/// hosts, machine id, ssh host key and root's authorized_keys written into the upper dir.
pub fn prepare_disk(data_dir: &Path, files: &MachineFiles) -> Result<()> {
    if data_dir.exists() {
        fs::remove_dir_all(data_dir).with_context(|| format!("removing old node data {}", data_dir.display()))?;
    }
    for d in [upper(data_dir), work(data_dir), root_dir(data_dir), srv_dir(data_dir)] {
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
    }
    let up = upper(data_dir);
    // Directories created here become the merged view's: give them the image's modes.
    for (d, mode) in [("etc", 0o755), ("etc/ssh", 0o755), ("etc/ssh/sshd_config.d", 0o755), ("root", 0o700)] {
        fs::create_dir_all(up.join(d))?;
        fs::set_permissions(up.join(d), fs::Permissions::from_mode(mode))?;
    }
    write(&up.join("etc/hostname"), &format!("{}\n", files.hostname), 0o644)?;
    write(&up.join("etc/hosts"), files.hosts, 0o644)?;
    write(&up.join("etc/machine-id"), &format!("{}\n", random_hex(16)?), 0o444)?;
    write(&up.join("etc/ssh/sshd_config.d/strata-lab.conf"), SSHD_DROP_IN, 0o644)?;
    // The image has cloud-init (for guest nodes); a plain lab node is configured by the
    // lab above, so cloud-init stays off, as on a machine installed without a datasource.
    fs::create_dir_all(up.join("etc/cloud"))?;
    fs::set_permissions(up.join("etc/cloud"), fs::Permissions::from_mode(0o755))?;
    write(&up.join("etc/cloud/cloud-init.disabled"), "", 0o644)?;
    let key = up.join("etc/ssh/ssh_host_ed25519_key");
    let comment = format!("root@{}", files.hostname);
    run(
        "ssh-keygen",
        [OsStr::new("-q"), "-t".as_ref(), "ed25519".as_ref(), "-N".as_ref(), "".as_ref()].into_iter().chain([
            OsStr::new("-C"),
            comment.as_ref(),
            "-f".as_ref(),
            key.as_os_str(),
        ]),
    )?;
    if files.with_repo {
        for d in ["etc/apt", "etc/apt/sources.list.d"] {
            fs::create_dir_all(up.join(d))?;
            fs::set_permissions(up.join(d), fs::Permissions::from_mode(0o755))?;
        }
        write(&up.join(crate::repo::SOURCE_FILE), &crate::repo::source_line(), 0o644)?;
    }
    if files.with_standins {
        for d in ["etc/apt", "etc/apt/sources.list.d"] {
            fs::create_dir_all(up.join(d))?;
            fs::set_permissions(up.join(d), fs::Permissions::from_mode(0o755))?;
        }
        write(&up.join(crate::standins::SOURCE_FILE), &crate::standins::source_line(), 0o644)?;
    }
    fs::create_dir_all(up.join("root/.ssh"))?;
    fs::set_permissions(up.join("root/.ssh"), fs::Permissions::from_mode(0o700))?;
    write(&up.join("root/.ssh/authorized_keys"), files.root_authorized_keys, 0o600)?;
    Ok(())
}

fn write(path: &Path, content: &str, mode: u32) -> Result<()> {
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    let mut f = fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn is_mounted(path: &Path) -> bool {
    let p = path.to_string_lossy();
    fs::read_to_string("/proc/mounts").unwrap_or_default().lines().any(|l| l.split_whitespace().nth(1) == Some(&*p))
}

/// Mounts the node's root: overlay of the shared image and its own upper dir. Done on the
/// host (not inside nspawn) so the lab, not the container, owns and removes it.
pub fn mount_root(image: &Path, data_dir: &Path, node: &str) -> Result<()> {
    let root = root_dir(data_dir);
    if is_mounted(&root) {
        return Ok(());
    }
    for p in [image, data_dir] {
        let s = p.to_string_lossy();
        if s.contains([',', ':', '\\']) || s.chars().any(char::is_whitespace) {
            bail!("path {s:?} must not contain ',', ':', '\\' or whitespace (they break overlayfs mount options)");
        }
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        image.display(),
        upper(data_dir).display(),
        work(data_dir).display()
    );
    run(
        "mount",
        [
            OsStr::new("-t"),
            "overlay".as_ref(),
            format!("strata-{node}").as_ref(),
            "-o".as_ref(),
            opts.as_ref(),
            root.as_os_str(),
        ],
    )
    .map(|_| ())
}

/// Unmounts the root if mounted; a busy mount is detached lazily (it goes with its last
/// user) rather than left behind.
pub fn unmount_root(data_dir: &Path) -> Result<()> {
    let root = root_dir(data_dir);
    if !is_mounted(&root) {
        return Ok(());
    }
    if run("umount", [root.as_os_str()]).is_err() && is_mounted(&root) {
        run("umount", [OsStr::new("-l"), root.as_os_str()])?;
    }
    if is_mounted(&root) {
        bail!("{} is still mounted", root.display());
    }
    Ok(())
}

/// After the node's network is (re)made: give `eth0` a MAC derived from its address (as a
/// VM keeps its configured MAC across reboots) and drop the host's neighbour entry, so
/// the host does not keep sending to the previous boot's MAC after a stop or recreate.
pub fn settle_link(node: &NodeInfo, bridge: &str) -> Result<()> {
    let ip: std::net::Ipv4Addr = node.address.parse()?;
    let o = ip.octets();
    let mac = format!("02:5a:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]);
    run("ip", ["-n", &node.namespace, "link", "set", "dev", "eth0", "address", &mac])?;
    let _ = run("ip", ["neigh", "flush", "to", &node.address, "dev", bridge]);
    Ok(())
}

/// Boots the node: nspawn (daemonised) in the node's network namespace. Returns the
/// nspawn process; the container's PID 1 comes from [`find_init`].
pub fn boot(node: &NodeInfo, machine_name: &str, repo: Option<&Path>, standins: Option<&Path>) -> Result<ProcessRef> {
    let root = root_dir(&node.data_dir);
    let mut args: Vec<String> = vec![
        "--quiet".into(),
        format!("--directory={}", root.display()),
        "--boot".into(),
        // No systemd-machined on the host, and nspawn must stay in our process tree.
        "--register=no".into(),
        "--keep-unit".into(),
        format!("--network-namespace-path=/run/netns/{}", node.namespace),
        format!("--machine={machine_name}"),
        format!("--hostname={}", node.hostname),
        format!("--bind={}:/srv", srv_dir(&node.data_dir).display()),
        // nfs-ganesha's VFS FSAL opens files by handle; nspawn's default seccomp filter
        // refuses open_by_handle_at (EPERM), as a VM's kernel would not.
        "--system-call-filter=open_by_handle_at".into(),
        // The network namespace is the node's own, as a VM's is: root there may add
        // addresses (keepalived's VIP), links and routes and set forwarding. nspawn grants
        // CAP_NET_ADMIN only with --private-network, not with --network-namespace-path.
        "--capability=CAP_NET_ADMIN".into(),
        // Boot messages go to console.log; nothing reads a terminal.
        "--console=read-only".into(),
    ];
    if let Some(repo) = repo {
        args.push(format!("--bind-ro={}:{}", repo.display(), crate::repo::NODE_PATH));
    }
    if let Some(s) = standins {
        args.push(format!("--bind-ro={}:{}", s.display(), crate::standins::NODE_PATH));
    }
    raise_inotify_limits()?;
    // Enter the node's own cgroups first, then become nspawn: with --keep-unit nspawn
    // puts the machine under the caller's cgroup, so without this every node would share
    // one `payload` tree and one node's systemd would see the others' processes.
    let dirs = cgroup_dirs(node);
    for d in &dirs {
        fs::create_dir_all(d).with_context(|| format!("creating cgroup {}", d.display()))?;
    }
    let mut script = String::from("set -e\n");
    for d in &dirs {
        script.push_str(&format!("echo $$ > '{}/cgroup.procs'\n", d.display()));
    }
    // A VM's /proc/sys/net is its own to tune (ip_nonlocal_bind for a VIP, forwarding):
    // nspawn keeps /proc/sys read-only unless told to open the per-namespace net part.
    script.push_str("SYSTEMD_NSPAWN_API_VFS_WRITABLE=network exec systemd-nspawn \"$@\"\n");
    let mut words: Vec<&OsStr> = vec![OsStr::new("-c"), OsStr::new(&script), OsStr::new("strata-node")];
    words.extend(args.iter().map(OsStr::new));
    spawn_daemon(Path::new("sh"), &words, &[], &console_log(&node.data_dir))
}

/// Every booted node's systemd (and its journald, udev, logind) takes inotify instances
/// from the host's per-user limit, 128 by default: two labs side by side (nextest runs
/// tests in parallel) ran out, and a node's systemd died at boot with "Failed to allocate
/// manager object: Too many open files" (kind documents the same for its nodes). Raised
/// to what a host of many container nodes needs, never lowered.
fn raise_inotify_limits() -> Result<()> {
    for (key, want) in [("max_user_instances", 8192u64), ("max_user_watches", 524_288)] {
        let path = format!("/proc/sys/fs/inotify/{key}");
        let now: u64 =
            fs::read_to_string(&path).with_context(|| format!("reading {path}"))?.trim().parse().unwrap_or(0);
        if now < want {
            fs::write(&path, want.to_string()).with_context(|| format!("raising {path} to {want}"))?;
        }
    }
    Ok(())
}

/// Cgroup hierarchies nspawn and systemd use: the named v1 `systemd` one and the unified
/// one (hybrid hosts), or the single v2 tree.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    ["systemd", "unified"].iter().map(|h| base.join(h)).filter(|p| p.join("cgroup.procs").exists()).collect()
}

/// The node's own cgroup in each hierarchy.
pub fn cgroup_dirs(node: &NodeInfo) -> Vec<PathBuf> {
    cgroup_roots().into_iter().map(|r| r.join("strata-lab").join(&node.namespace)).collect()
}

/// Removes the node's (empty) cgroups, deepest first: rmdir is how cgroups go away.
pub fn remove_cgroups(node: &NodeInfo) -> Result<()> {
    fn rm_tree(dir: &Path) -> std::io::Result<()> {
        for e in fs::read_dir(dir)?.flatten() {
            if e.file_type()?.is_dir() {
                rm_tree(&e.path())?;
            }
        }
        fs::remove_dir(dir)
    }
    for d in cgroup_dirs(node) {
        if d.exists() {
            rm_tree(&d).with_context(|| format!("removing cgroup {}", d.display()))?;
        }
    }
    Ok(())
}

/// The container's PID 1 (systemd): the child of nspawn that is pid 1 in its own pid
/// namespace. Waits (bounded) for nspawn to start it.
pub fn find_init(nspawn: &ProcessRef, timeout: Duration, console: &Path) -> Result<ProcessRef> {
    let mut found = None;
    wait_until(timeout, || {
        if !nspawn.is_alive() {
            return true;
        }
        let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", nspawn.pid)).unwrap_or_default();
        found = children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()).find(|&c| {
            let status = fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
            status.lines().any(|l| l.starts_with("NSpid:") && l.split_whitespace().count() >= 3 && l.ends_with("\t1"))
        });
        found.is_some()
    });
    match found {
        Some(pid) => ProcessRef::of(pid),
        None if !nspawn.is_alive() => bail!("systemd-nspawn exited during boot; {}", log_tail(console, 20)),
        None => bail!("systemd-nspawn started no init within {timeout:?}; {}", log_tail(console, 20)),
    }
}

/// `nsenter` into every namespace of the node's PID 1: what `node exec` runs.
pub fn exec_command(init: &ProcessRef, argv: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &init.pid.to_string(), "-a", "--"]).args(argv);
    cmd
}

/// Waits (bounded) until systemd in the node reports `running`; a `degraded` boot is an
/// error naming the failed units.
pub fn wait_running(node: &NodeInfo, init: &ProcessRef, timeout: Duration) -> Result<()> {
    let mut last = String::new();
    let done = wait_until(timeout, || {
        if !init.is_alive() {
            return true;
        }
        let out = exec_command(init, &["systemctl", "is-system-running"]).stdin(Stdio::null()).output();
        last = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        matches!(last.as_str(), "running" | "degraded" | "maintenance" | "stopping")
    });
    let console = console_log(&node.data_dir);
    if !init.is_alive() {
        bail!("node {} stopped during boot; {}", node.name, log_tail(&console, 20));
    }
    if !done {
        bail!("node {} is not booted after {timeout:?} (systemd says {last:?}); {}", node.name, log_tail(&console, 20));
    }
    if last != "running" {
        let failed = exec_command(init, &["systemctl", "--failed", "--no-legend", "--plain"])
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        bail!("node {} booted {last}; failed units: {failed}", node.name);
    }
    Ok(())
}

/// Waits (bounded) until the node's sshd (started by its systemd) accepts TCP connections.
pub fn wait_sshd(node: &NodeInfo, init: &ProcessRef, timeout: Duration) -> Result<()> {
    let addr: std::net::SocketAddr = format!("{}:22", node.address).parse()?;
    let ok = wait_until(timeout, || {
        !init.is_alive() || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
    });
    if !init.is_alive() {
        bail!("node {} stopped while waiting for its sshd; {}", node.name, log_tail(&console_log(&node.data_dir), 20));
    }
    if !ok {
        let status = exec_command(init, &["systemctl", "status", "--no-pager", "ssh.service"])
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        // Host side of the path, to tell a network problem from an sshd one.
        let neigh = run("ip", ["neigh", "show", "to", &node.address]).unwrap_or_default();
        let link = run("ip", ["-o", "link", "show", "dev", &node.veth]).unwrap_or_default();
        bail!(
            "sshd of {} does not accept connections on {addr} after {timeout:?}:\n{status}\nhost neighbour: {}\nhost link: {}",
            node.name,
            neigh.trim(),
            link.trim()
        );
    }
    Ok(())
}

/// Stops the node: `first` = SIGTERM asks nspawn for a clean shutdown (bounded by
/// [`SHUTDOWN_GRACE`]), SIGKILL is a power loss. Either way, every process of the node
/// is gone afterwards (SIGKILL for stragglers) and its root is unmounted.
pub fn stop(node: &NodeInfo, first: Signal) -> Result<()> {
    let nspawn = node.nspawn.filter(|p| p.is_alive());
    let init = node.init.filter(|p| p.is_alive());
    if first == Signal::SIGTERM {
        if let Some(p) = nspawn {
            p.signal(Signal::SIGTERM);
            wait_until(SHUTDOWN_GRACE, || !p.is_alive());
        } else if let Some(p) = init {
            // nspawn gone but systemd still up: SIGRTMIN+3 is systemd's "halt".
            let _ = run("kill", ["-s", "RTMIN+3", &p.pid.to_string()]);
            wait_until(SHUTDOWN_GRACE, || !p.is_alive());
        }
    }
    if first == Signal::SIGKILL {
        // All of the machine in one step (cgroup v2's cgroup.kill), as a power loss: not
        // one process after another, which lets a daemon see its peers die and react.
        for d in cgroup_dirs(node) {
            let kill = d.join("cgroup.kill");
            if kill.exists() {
                fs::write(&kill, "1").with_context(|| format!("writing {}", kill.display()))?;
            }
        }
    }
    let mut left = Vec::new();
    for _round in 0..4 {
        let mut targets: Vec<ProcessRef> = nspawn.into_iter().chain(init).filter(|p| p.is_alive()).collect();
        for pid in netns_pids(&node.namespace)? {
            if let Ok(p) = ProcessRef::of(pid) {
                targets.push(p);
            }
        }
        for p in &targets {
            p.signal(Signal::SIGKILL);
        }
        let gone = || {
            targets.iter().all(|p| !p.is_alive()) && netns_pids(&node.namespace).map(|p| p.is_empty()).unwrap_or(false)
        };
        if wait_until(Duration::from_secs(3), gone) {
            left.clear();
            break;
        }
        left = targets.iter().filter(|p| p.is_alive()).map(|p| p.pid).collect();
    }
    if !left.is_empty() {
        bail!("processes of node {} survive SIGKILL: {left:?}", node.name);
    }
    remove_nspawn_lock(&node.data_dir);
    unmount_root(&node.data_dir)?;
    // A cgroup empties a moment after its last process exits.
    let mut last = Ok(());
    wait_until(Duration::from_secs(5), || {
        last = remove_cgroups(node);
        last.is_ok()
    });
    last
}

/// nspawn locks the root it boots with `/run/systemd/nspawn/locks/inode-DEV:INO` and
/// removes the file only on a clean exit; after a SIGKILL we remove it (it is unlocked
/// by then, and only ever names this node's overlay root).
fn remove_nspawn_lock(data_dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let root = root_dir(data_dir);
    if !is_mounted(&root) {
        return;
    }
    if let Ok(m) = fs::metadata(&root) {
        let _ = fs::remove_file(format!("/run/systemd/nspawn/locks/inode-{}:{}", m.dev(), m.ino()));
    }
}

/// Pids still running for the node: nspawn, its init and every process in its netns.
pub fn live_pids(node: &NodeInfo) -> Result<Vec<i32>> {
    let mut pids = netns_pids(&node.namespace)?;
    for p in node.nspawn.iter().chain(node.init.iter()) {
        if p.is_alive() && !pids.contains(&p.pid) {
            pids.push(p.pid);
        }
    }
    Ok(pids)
}
