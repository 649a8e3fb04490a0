//! Guest nodes: VMs started through pve-sim become systemd nodes of the lab. pve-sim
//! runs its guest hook (`DIR/guest-hook`, which execs `strata-lab guest --dir DIR`) on
//! every power change; this module implements it with the node machinery of
//! `machine`/`network`, configured the way Proxmox configures a guest: the node's eth0
//! has the VM's MAC and no address, and real cloud-init in the node reads the NoCloud
//! data pve-sim generated (user, SSH keys, static address, DNS, host keys).
//!
//! A guest's disk (`DIR/guests/vmVMID`) lives from its first start to its destroy: stop
//! and start keep it (same host key, same files), destroy removes it, and every clone
//! gets its own blank one on its first start.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use serde::Deserialize;

use crate::machine;
use crate::network;
use crate::process::run;
use crate::state::{self, LabInfo, LabState, NodeInfo, NodeState};

/// The hook pve-sim runs, written into the lab dir by `up`.
pub const HOOK_SCRIPT: &str = "guest-hook";

/// Where cloud-init's NoCloud datasource finds a seed without a CIDATA volume.
const SEED_DIR: &str = "var/lib/cloud/seed/nocloud";

/// Bound on nspawn starting the guest's init (the start task completes when the machine
/// is launched, as Proxmox's does, not when its sshd answers).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// `DIR/guest-hook`: a script pve-sim can exec with `ACTION VMID GUEST_DIR`.
pub fn write_hook_script(lab_dir: &Path, strata_lab: &Path) -> Result<PathBuf> {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let path = lab_dir.join(HOOK_SCRIPT);
    let script = format!("#!/bin/sh\nexec {} guest --dir {} \"$@\"\n", quote(strata_lab), quote(lab_dir));
    fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// The `strata-lab` executable for the hook: next to pve-sim (both are built into the
/// same target dir), the running executable if it is strata-lab, next to it or one dir
/// up (a test binary in target/debug/deps), else on PATH.
pub fn locate_lab_binary(pve_sim: &Path) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|n| n == "strata-lab") {
        return Ok(exe);
    }
    let mut dirs: Vec<PathBuf> = [pve_sim.parent(), exe.parent(), exe.parent().and_then(Path::parent)]
        .into_iter()
        .flatten()
        .map(Path::to_path_buf)
        .collect();
    dirs.extend(std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default());
    dirs.into_iter().map(|d| d.join("strata-lab")).find(|p| p.is_file()).with_context(|| {
        format!("strata-lab (pve-sim's guest hook) not found next to {} nor on PATH; build it (`cargo build -p strata-lab`)", pve_sim.display())
    })
}

/// `GUEST_DIR/guest.json`, written by pve-sim.
#[derive(Debug, Deserialize)]
struct GuestSpec {
    name: String,
    nics: Vec<Nic>,
    cloud_init: bool,
    /// The static address of ipconfig0, if any: the lab records it, the guest sets it.
    #[serde(default)]
    ipv4: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Nic {
    index: u32,
    macaddr: Option<String>,
}

pub fn node_name(vmid: u32) -> String {
    format!("vm{vmid}")
}

/// Host end of the guest's veth: `<short>-g<vmid>`, within the 15 bytes of a link name.
fn veth_name(short: &str, vmid: u32) -> Result<String> {
    let name = format!("{short}-g{vmid}");
    if name.len() > 15 {
        bail!("VMID {vmid} is too long for a lab link name ({name:?}); use VMIDs below 100000 or a shorter --name");
    }
    Ok(name)
}

/// Runs one hook call: `action` on VM `vmid` whose data pve-sim wrote to `guest_dir`.
pub fn handle(lab_dir: &Path, action: &str, vmid: u32, guest_dir: &Path) -> Result<()> {
    crate::process::require_root()?;
    let dir = fs::canonicalize(lab_dir)?;
    let _lock = state::lock_dir(&dir)?;
    let mut info = LabInfo::load(&dir)?.with_context(|| format!("no lab in {}", dir.display()))?;
    match action {
        "start" => {
            if info.state != LabState::Up {
                bail!("the lab in {} is {:?}, not up: no guest starts", dir.display(), info.state);
            }
            start(&mut info, vmid, guest_dir)
        }
        "stop" => power_off(&mut info, vmid, Signal::SIGKILL),
        "shutdown" => power_off(&mut info, vmid, Signal::SIGTERM),
        "reboot" => {
            power_off(&mut info, vmid, Signal::SIGTERM)?;
            start(&mut info, vmid, guest_dir)
        }
        "destroy" => destroy(&mut info, vmid),
        other => bail!("unknown guest action {other:?} (start, stop, shutdown, reboot, destroy)"),
    }
}

/// The guest agent's `file-read`: a file as the running guest sees it, read inside its
/// mount namespace and root (its symlinks, e.g. cloud-init's `instance`, are the
/// guest's). No lab lock: a read must not wait for another guest's boot, and lab.json
/// is replaced atomically.
pub fn read_file(lab_dir: &Path, vmid: u32, path: &Path) -> Result<Vec<u8>> {
    let info = LabInfo::load(lab_dir)?.with_context(|| format!("no lab in {}", lab_dir.display()))?;
    let node = info.node(&node_name(vmid)).with_context(|| format!("VM {vmid} has no guest machine"))?;
    let init = node.init.filter(|p| p.is_alive()).with_context(|| format!("VM {vmid}'s guest is not running"))?;
    if !path.is_absolute() {
        bail!("{}: not an absolute path", path.display());
    }
    let out = std::process::Command::new("nsenter")
        .args(["--target", &init.pid.to_string(), "--mount", "--root", "cat", "--"])
        .arg(path)
        .output()
        .context("running nsenter")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

fn start(info: &mut LabInfo, vmid: u32, guest_dir: &Path) -> Result<()> {
    let spec_path = guest_dir.join("guest.json");
    let spec: GuestSpec =
        serde_json::from_slice(&fs::read(&spec_path).with_context(|| format!("reading {}", spec_path.display()))?)
            .with_context(|| format!("parsing {}", spec_path.display()))?;
    let nic = spec.nics.iter().find(|n| n.index == 0).context("the VM has no net0: the lab gives a guest one NIC")?;
    let mac = nic.macaddr.clone().context("net0 has no MAC address")?;
    let name = node_name(vmid);
    if info.guests.iter().all(|g| g.name != name) {
        info.guests.push(NodeInfo {
            address: String::new(),
            host_key_fingerprint: None,
            hostname: spec.name.clone(),
            namespace: network::namespace_name(&info.name, &name),
            veth: veth_name(&info.name, vmid)?,
            state: NodeState::Creating,
            host_public_key: None,
            data_dir: info.dir.join("guests").join(&name),
            private_mounts: machine::PRIVATE_MOUNTS.iter().map(|s| s.to_string()).collect(),
            name: name.clone(),
            nspawn: None,
            init: None,
        });
        info.save()?;
    }
    info.node_mut(&name)?.address = spec.ipv4.clone().unwrap_or_default();
    let node = info.node(&name)?.clone();
    if node.init.is_some_and(|p| p.is_alive()) {
        return Ok(());
    }
    let image = info.image.clone().context("lab.json records no node image")?;
    if !node.data_dir.join("upper").is_dir() {
        prepare_guest_disk(&node.data_dir, info.repo.is_some(), info.standins_repo.is_some())?;
    }
    // Proxmox regenerates the cloud-init drive at every start.
    write_seed(&node.data_dir, guest_dir, spec.cloud_init)?;
    // Leftovers of a failed start.
    machine::stop(&node, Signal::SIGKILL)?;
    network::delete_link(&node.veth)?;
    network::delete_netns(&node.namespace)?;
    create_guest_network(&node.namespace, &node.veth, &info.bridge, &mac)?;
    let _ = run("ip", ["neigh", "flush", "dev", &info.bridge]);
    machine::mount_root(&image, &node.data_dir, &node.namespace)?;
    let nspawn = machine::boot(&node, &node.namespace, info.repo.as_deref(), info.standins_repo.as_deref())?;
    info.node_mut(&name)?.nspawn = Some(nspawn);
    info.node_mut(&name)?.init = None;
    info.save()?;
    let init = machine::find_init(&nspawn, LAUNCH_TIMEOUT, &machine::console_log(&node.data_dir))?;
    let n = info.node_mut(&name)?;
    n.init = Some(init);
    n.state = NodeState::Running;
    info.save()
}

/// Shutdown (SIGTERM: systemd powers off cleanly) or stop (SIGKILL: power cut); the
/// disk stays.
fn power_off(info: &mut LabInfo, vmid: u32, signal: Signal) -> Result<()> {
    let name = node_name(vmid);
    let Ok(node) = info.node(&name).cloned() else { return Ok(()) };
    machine::stop(&node, signal)?;
    network::delete_link(&node.veth)?;
    network::delete_netns(&node.namespace)?;
    info.node_mut(&name)?.state = NodeState::Stopped;
    info.save()
}

/// The VM is gone: its machine, network and disk.
fn destroy(info: &mut LabInfo, vmid: u32) -> Result<()> {
    let name = node_name(vmid);
    let Ok(node) = info.node(&name).cloned() else { return Ok(()) };
    machine::stop(&node, Signal::SIGKILL)?;
    network::delete_link(&node.veth)?;
    network::delete_netns(&node.namespace)?;
    if node.data_dir.exists() {
        fs::remove_dir_all(&node.data_dir).with_context(|| format!("removing {}", node.data_dir.display()))?;
    }
    info.guests.retain(|g| g.name != name);
    info.save()
}

/// A guest's blank disk: as a cloud image boots for the first time. Nothing identifies
/// the machine yet (no hostname, no host keys: cloud-init makes them); the machine id is
/// the one systemd would write on first boot; systemd-networkd is enabled to apply the
/// network configuration cloud-init renders.
fn prepare_guest_disk(data_dir: &Path, with_repo: bool, with_standins: bool) -> Result<()> {
    if data_dir.exists() {
        fs::remove_dir_all(data_dir)?;
    }
    let upper = data_dir.join("upper");
    for d in [upper.clone(), data_dir.join("work"), machine::root_dir(data_dir), machine::srv_dir(data_dir)] {
        fs::create_dir_all(&d)?;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
    }
    for d in ["etc", "etc/systemd", "etc/systemd/system", "var", "var/lib", "var/lib/cloud", "var/lib/cloud/seed"] {
        fs::create_dir_all(upper.join(d))?;
        fs::set_permissions(upper.join(d), fs::Permissions::from_mode(0o755))?;
    }
    let mut id = [0u8; 16];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut id)?;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(upper.join("etc/machine-id"), format!("{hex}\n"))?;
    fs::set_permissions(upper.join("etc/machine-id"), fs::Permissions::from_mode(0o444))?;
    for (wants, unit) in
        [("multi-user.target.wants", "systemd-networkd.service"), ("sockets.target.wants", "systemd-networkd.socket")]
    {
        let d = upper.join("etc/systemd/system").join(wants);
        fs::create_dir_all(&d)?;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
        std::os::unix::fs::symlink(format!("/lib/systemd/system/{unit}"), d.join(unit))?;
    }
    // As on Debian's cloud images, the locale cloud-init sets (en_US.UTF-8) can be generated.
    fs::write(upper.join("etc/locale.gen"), "en_US.UTF-8 UTF-8\n")?;
    if with_repo {
        for d in ["etc/apt", "etc/apt/sources.list.d"] {
            fs::create_dir_all(upper.join(d))?;
            fs::set_permissions(upper.join(d), fs::Permissions::from_mode(0o755))?;
        }
        fs::write(upper.join(crate::repo::SOURCE_FILE), crate::repo::source_line())?;
    }
    // The site's Kubernetes package mirror, as on the lab's own nodes.
    if with_standins {
        fs::create_dir_all(upper.join("etc/apt/sources.list.d"))?;
        fs::write(upper.join(crate::standins::SOURCE_FILE), crate::standins::source_line())?;
    }
    Ok(())
}

/// Copies pve-sim's NoCloud files into the guest's seed directory (replacing the last
/// start's); a VM without a cloud-init drive gets none, and cloud-init then finds no
/// datasource, as on Proxmox.
fn write_seed(data_dir: &Path, guest_dir: &Path, cloud_init: bool) -> Result<()> {
    let seed = data_dir.join("upper").join(SEED_DIR);
    if seed.exists() {
        fs::remove_dir_all(&seed)?;
    }
    if !cloud_init {
        return Ok(());
    }
    fs::create_dir_all(&seed)?;
    fs::set_permissions(&seed, fs::Permissions::from_mode(0o755))?;
    for f in ["user-data", "meta-data", "network-config", "vendor-data"] {
        let from = guest_dir.join("nocloud").join(f);
        if from.exists() {
            fs::copy(&from, seed.join(f)).with_context(|| format!("copying {}", from.display()))?;
            // user-data may hold the password hash: root only, as on the ISO inside the VM.
            fs::set_permissions(seed.join(f), fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Namespace with `lo` up and a veth whose node end is `eth0` with the VM's MAC and no
/// address: the guest configures it (cloud-init), as a VM on a bridge does.
fn create_guest_network(ns: &str, veth: &str, bridge: &str, mac: &str) -> Result<()> {
    run("ip", ["netns", "add", ns])?;
    run("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
    run("ip", ["-n", ns, "link", "set", "dev", "eth0", "address", mac])?;
    run("ip", ["link", "set", veth, "master", bridge])?;
    run("ip", ["link", "set", veth, "up"])?;
    run("ip", ["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_fit_the_kernel_limit() {
        assert_eq!(veth_name("abcd1234", 101).unwrap(), "abcd1234-g101");
        assert!(veth_name("abcd1234", 99999).is_ok());
        assert!(veth_name("abcd1234", 100000).is_err());
    }

    #[test]
    fn the_hook_script_execs_strata_lab_guest() {
        let d = tempfile::tempdir().unwrap();
        let p = write_hook_script(d.path(), Path::new("/opt/it's/strata-lab")).unwrap();
        let text = fs::read_to_string(p).unwrap();
        assert!(text.contains(r"exec '/opt/it'\''s/strata-lab' guest --dir '"), "{text}");
        assert!(text.ends_with("\"$@\"\n"));
    }
}
