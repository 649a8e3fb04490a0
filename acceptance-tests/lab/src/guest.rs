//! Guest nodes: VMs started through pve-sim become systemd nodes of the lab. pve-sim
//! runs its guest hook (`DIR/guest-hook`, which execs `strata-lab guest --dir DIR`) on
//! every power change; this module implements it with the node machinery of
//! `machine`/`network`, configured the way Proxmox configures a guest: the node's eth0
//! has the VM's MAC and no address, and real cloud-init in the node reads the NoCloud
//! data pve-sim generated (user, SSH keys, static address, DNS, host keys).
//!
//! A started container becomes a node `ctVMID` configured as PVE configures one, without
//! cloud-init: before every start the lab writes what `PVE::LXC::Setup` writes into the
//! rootfs (hostname, /etc/hosts, /etc/resolv.conf, the `netN` addresses), and on the
//! first start root's authorized keys (the create-time `ssh-public-keys`) and fresh SSH
//! host keys (PVE's `rewrite_ssh_host_keys`), whose fingerprint lab.json records.
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
    /// `lxc` for a container; absent for a VM.
    #[serde(default)]
    kind: Option<String>,
    /// A container's setup (absent for a VM).
    #[serde(default)]
    ct: Option<CtSetup>,
}

#[derive(Debug, Deserialize)]
struct Nic {
    index: u32,
    macaddr: Option<String>,
    /// A container's interface name (`net0`'s `name`); a VM's NIC is eth0.
    #[serde(default)]
    name: Option<String>,
}

/// What PVE's container setup takes from the config (see pve-sim's guest_hook).
#[derive(Debug, Deserialize)]
struct CtSetup {
    hostname: String,
    nets: Vec<CtNet>,
    #[serde(default)]
    nameservers: Vec<String>,
    #[serde(default)]
    searchdomains: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct CtNet {
    name: Option<String>,
    ip: Option<String>,
    gw: Option<String>,
}

pub fn node_name(vmid: u32) -> String {
    format!("vm{vmid}")
}

pub fn ct_node_name(vmid: u32) -> String {
    format!("ct{vmid}")
}

/// The machine of guest `vmid`, VM or container (a VMID is one guest's in PVE).
fn existing_guest(info: &LabInfo, vmid: u32) -> Option<String> {
    [node_name(vmid), ct_node_name(vmid)].into_iter().find(|n| info.guests.iter().any(|g| &g.name == n))
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
    let nic =
        spec.nics.iter().find(|n| n.index == 0).context("the guest has no net0: the lab gives a guest one NIC")?;
    let mac = nic.macaddr.clone().context("net0 has no MAC address")?;
    let ct = match spec.kind.as_deref() {
        Some("lxc") => Some(spec.ct.as_ref().context("guest.json: a container without its \"ct\" setup")?),
        _ => None,
    };
    let name = if ct.is_some() { ct_node_name(vmid) } else { node_name(vmid) };
    let ifname = nic.name.clone().unwrap_or_else(|| "eth0".into());
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
    if ct.is_some() {
        // A container's hostname follows its config at every start.
        info.node_mut(&name)?.hostname = spec.name.clone();
    }
    let node = info.node(&name)?.clone();
    if node.init.is_some_and(|p| p.is_alive()) {
        return Ok(());
    }
    let image = info.image.clone().context("lab.json records no node image")?;
    if !node.data_dir.join("upper").is_dir() {
        prepare_guest_disk(&node.data_dir, info.repo.is_some(), info.standins_repo.is_some())?;
        if let Some(ct) = ct {
            let fingerprint = ct_first_start(&node.data_dir, guest_dir, &ct.hostname)?;
            let pub_file = machine::host_public_key_file(&node.data_dir);
            let n = info.node_mut(&name)?;
            n.host_key_fingerprint = Some(fingerprint);
            n.host_public_key = Some(fs::read_to_string(&pub_file)?.trim().to_string());
            info.save()?;
        }
    }
    match ct {
        // PVE's pre-start setup, at every start.
        Some(ct) => ct_setup(&node.data_dir, &image, ct)?,
        // Proxmox regenerates the cloud-init drive at every start.
        None => write_seed(&node.data_dir, guest_dir, spec.cloud_init)?,
    }
    // Leftovers of a failed start.
    machine::stop(&node, Signal::SIGKILL)?;
    network::delete_link(&node.veth)?;
    network::delete_netns(&node.namespace)?;
    create_guest_network(&node.namespace, &node.veth, &info.bridge, &mac, &ifname)?;
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
    let Some(name) = existing_guest(info, vmid) else { return Ok(()) };
    let Ok(node) = info.node(&name).cloned() else { return Ok(()) };
    machine::stop(&node, signal)?;
    network::delete_link(&node.veth)?;
    network::delete_netns(&node.namespace)?;
    info.node_mut(&name)?.state = NodeState::Stopped;
    info.save()
}

/// The VM is gone: its machine, network and disk.
fn destroy(info: &mut LabInfo, vmid: u32) -> Result<()> {
    let Some(name) = existing_guest(info, vmid) else { return Ok(()) };
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

/// A file in the guest's upper dir (the disk), parents created with the image's mode
/// 0755; an existing file or symlink is replaced, not written through.
fn put(upper: &Path, rel: &str, content: &str, mode: u32) -> Result<()> {
    let path = upper.join(rel);
    let mut dir = upper.to_path_buf();
    for part in Path::new(rel).parent().into_iter().flat_map(|p| p.components()) {
        dir.push(part);
        if !dir.is_dir() {
            fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        }
    }
    let _ = fs::remove_file(&path);
    fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// What PVE does to a new container's rootfs once (`post_create_hook`): root's
/// authorized keys from `ssh-public-keys`, fresh SSH host keys (`rewrite_ssh_host_keys`:
/// rsa, ecdsa, ed25519). A container template has no cloud-init: it stays off. Returns
/// the ed25519 key's fingerprint.
fn ct_first_start(data_dir: &Path, guest_dir: &Path, hostname: &str) -> Result<String> {
    let upper = data_dir.join("upper");
    put(&upper, "etc/cloud/cloud-init.disabled", "", 0o644)?;
    fs::create_dir_all(upper.join("etc/ssh"))?;
    fs::set_permissions(upper.join("etc/ssh"), fs::Permissions::from_mode(0o755))?;
    let comment = format!("root@{hostname}");
    for kind in ["rsa", "ecdsa", "ed25519"] {
        let key = upper.join(format!("etc/ssh/ssh_host_{kind}_key"));
        let key = key.to_string_lossy();
        run("ssh-keygen", ["-q", "-t", kind, "-N", "", "-C", &comment, "-f", &key])?;
    }
    let keys = guest_dir.join("ssh-public-keys");
    if keys.exists() {
        let text = fs::read_to_string(&keys).with_context(|| format!("reading {}", keys.display()))?;
        fs::create_dir_all(upper.join("root/.ssh"))?;
        fs::set_permissions(upper.join("root"), fs::Permissions::from_mode(0o700))?;
        fs::set_permissions(upper.join("root/.ssh"), fs::Permissions::from_mode(0o700))?;
        put(&upper, "root/.ssh/authorized_keys", &text, 0o600)?;
    }
    crate::sshd::fingerprint(&machine::host_public_key_file(data_dir))
}

/// PVE's pre-start setup of a Debian container (`PVE::LXC::Setup::Debian`), into the
/// disk before every boot: /etc/hostname, the PVE block of /etc/hosts, /etc/resolv.conf
/// and /etc/network/interfaces as PVE writes them. The lab's image has no ifupdown
/// (PVE's Debian templates do), so the same addresses also go into the systemd-networkd
/// file PVE writes for networkd distributions (`setup_systemd_networkd`), which applies them.
fn ct_setup(data_dir: &Path, image: &Path, ct: &CtSetup) -> Result<()> {
    let upper = data_dir.join("upper");
    let namepart = ct.hostname.split('.').next().unwrap_or(&ct.hostname).to_string();
    put(&upper, "etc/hostname", &format!("{namepart}\n"), 0o644)?;

    let fqdn = if ct.hostname.contains('.') {
        ct.hostname.clone()
    } else if let Some(domain) = ct.searchdomains.first() {
        format!("{namepart}.{domain}")
    } else {
        namepart.clone()
    };
    let primary = ct
        .nets
        .iter()
        .filter_map(|n| n.ip.as_deref())
        .find_map(|ip| ip.split_once('/').map(|(a, _)| a.to_string()))
        .unwrap_or_else(|| "127.0.1.1".into());
    let names = if fqdn == namepart { namepart.clone() } else { format!("{fqdn} {namepart}") };
    let current = fs::read_to_string(upper.join("etc/hosts"))
        .or_else(|_| fs::read_to_string(image.join("etc/hosts")))
        .unwrap_or_default();
    let mut hosts = format!("# --- BEGIN PVE ---\n{primary} {names}\n# --- END PVE ---\n");
    let mut in_block = false;
    for line in current.lines() {
        match line {
            "# --- BEGIN PVE ---" => in_block = true,
            "# --- END PVE ---" => in_block = false,
            _ if !in_block => hosts.push_str(&format!("{line}\n")),
            _ => {}
        }
    }
    put(&upper, "etc/hosts", &hosts, 0o644)?;

    let mut resolv = String::new();
    if !ct.searchdomains.is_empty() {
        resolv.push_str(&format!("search {}\n", ct.searchdomains.join(" ")));
    }
    for ns in &ct.nameservers {
        resolv.push_str(&format!("nameserver {ns}\n"));
    }
    if !resolv.is_empty() {
        put(&upper, "etc/resolv.conf", &resolv, 0o644)?;
    }

    let mut interfaces = String::from("auto lo\niface lo inet loopback\n\n");
    for n in &ct.nets {
        let (Some(name), Some(ip)) = (n.name.as_deref(), n.ip.as_deref()) else { continue };
        let mut network =
            format!("[Match]\nName = {name}\n\n[Network]\nDescription = Interface {name} autoconfigured by PVE\n");
        interfaces.push_str(&format!("auto {name}\n"));
        match ip {
            "dhcp" | "manual" => {
                interfaces.push_str(&format!("iface {name} inet {ip}\n\n"));
                network.push_str(&format!("DHCP = {}\n", if ip == "dhcp" { "ipv4" } else { "no" }));
            }
            cidr => {
                interfaces.push_str(&format!("iface {name} inet static\n\taddress {cidr}\n"));
                network.push_str(&format!("Address = {cidr}\n"));
                if let Some(gw) = &n.gw {
                    interfaces.push_str(&format!("\tgateway {gw}\n"));
                    network.push_str(&format!("Gateway = {gw}\n"));
                }
                interfaces.push('\n');
                network.push_str("DHCP = no\n");
            }
        }
        network.push_str("IPv6AcceptRA = false\n");
        put(&upper, &format!("etc/systemd/network/{name}.network"), &network, 0o644)?;
    }
    put(&upper, "etc/network/interfaces", &interfaces, 0o644)
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
fn create_guest_network(ns: &str, veth: &str, bridge: &str, mac: &str, ifname: &str) -> Result<()> {
    run("ip", ["netns", "add", ns])?;
    run("ip", ["link", "add", veth, "type", "veth", "peer", "name", ifname, "netns", ns])?;
    run("ip", ["-n", ns, "link", "set", "dev", ifname, "address", mac])?;
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
    fn a_container_gets_pve_s_hostname_hosts_dns_and_network_files() {
        let d = tempfile::tempdir().unwrap();
        let image = d.path().join("image");
        fs::create_dir_all(image.join("etc")).unwrap();
        fs::write(image.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        let data = d.path().join("ct");
        fs::create_dir_all(data.join("upper")).unwrap();
        let ct = CtSetup {
            hostname: "web1".into(),
            nets: vec![CtNet {
                name: Some("eth0".into()),
                ip: Some("10.0.0.160/24".into()),
                gw: Some("10.0.0.1".into()),
            }],
            nameservers: vec!["10.0.0.1".into()],
            searchdomains: vec!["lab.example".into()],
        };
        ct_setup(&data, &image, &ct).unwrap();
        ct_setup(&data, &image, &ct).unwrap(); // a second start replaces the PVE block
        let up = data.join("upper/etc");
        assert_eq!(fs::read_to_string(up.join("hostname")).unwrap(), "web1\n");
        assert_eq!(
            fs::read_to_string(up.join("hosts")).unwrap(),
            "# --- BEGIN PVE ---\n10.0.0.160 web1.lab.example web1\n# --- END PVE ---\n127.0.0.1 localhost\n"
        );
        assert_eq!(fs::read_to_string(up.join("resolv.conf")).unwrap(), "search lab.example\nnameserver 10.0.0.1\n");
        let ifaces = fs::read_to_string(up.join("network/interfaces")).unwrap();
        assert!(
            ifaces.contains("auto eth0\niface eth0 inet static\n\taddress 10.0.0.160/24\n\tgateway 10.0.0.1\n"),
            "{ifaces}"
        );
        let networkd = fs::read_to_string(up.join("systemd/network/eth0.network")).unwrap();
        assert!(networkd.contains("Address = 10.0.0.160/24\nGateway = 10.0.0.1\n"), "{networkd}");
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
