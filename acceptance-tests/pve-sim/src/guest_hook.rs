//! The optional guest hook (`--guest-hook PROGRAM`): what makes a VM's power state real.
//! When set, the workers of start, stop, shutdown, reboot and destroy run
//! `PROGRAM ACTION VMID GUEST_DIR` before they finish, and the task fails if it fails.
//! `GUEST_DIR` (`DATA/guests/VMID`) holds `guest.json` (name and NICs, what the
//! hypervisor knows of the machine) and, for a VM with a cloud-init drive, `nocloud/`
//! with the files PVE puts on that drive (regenerated at every start, as PVE does).
//! For a container (`"kind": "lxc"`) guest.json also carries what PVE's container setup
//! writes into the root file system before every start (hostname, `netN` addresses, DNS
//! with the host's as fallback), and `ssh-public-keys` holds the keys given at create
//! (PVE writes them into the rootfs once, at create; a clone copies the rootfs).
//! The lab implements the hook by booting a systemd node; without a hook nothing runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::cloudinit::{self, HostDns};
use crate::params;
use crate::sim::Sim;
use crate::store::GuestKind;

/// `GUEST_DIR/ssh-public-keys`: a container's create-time `ssh-public-keys`.
const CT_SSH_KEYS: &str = "ssh-public-keys";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Shutdown,
    Reboot,
    Destroy,
}

impl Action {
    pub fn from_api(action: &str) -> Option<Action> {
        Some(match action {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "shutdown" => Action::Shutdown,
            "reboot" => Action::Reboot,
            _ => return None,
        })
    }

    fn word(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Shutdown => "shutdown",
            Action::Reboot => "reboot",
            Action::Destroy => "destroy",
        }
    }
}

pub fn guest_dir(sim: &Sim, vmid: u32) -> PathBuf {
    sim.cfg.data_dir.join("guests").join(vmid.to_string())
}

/// Whether the action would change the machine; the task's own checks (already running,
/// template, ...) then fail it as before, without calling the hook.
fn applies(action: Action, running: bool, template: bool, kind: GuestKind) -> bool {
    match action {
        Action::Start => !running && !template,
        Action::Stop | Action::Shutdown | Action::Reboot => running,
        // A container may be destroyed running (`force`): its machine goes too.
        Action::Destroy => !running || kind == GuestKind::Lxc,
    }
}

/// Keeps a new container's `ssh-public-keys` for its first start (PVE writes them into
/// the rootfs at create; the lab's disk is made at the first start). Replaces whatever
/// an earlier guest with this VMID left.
pub fn ct_created(sim: &Sim, vmid: u32, ssh_keys: Option<&str>) -> Result<(), String> {
    if sim.cfg.guest_hook.is_none() {
        return Ok(());
    }
    let dir = guest_dir(sim, vmid);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(keys) = ssh_keys {
        std::fs::create_dir_all(&dir).map_err(|e| format!("writing {}: {e}", dir.display()))?;
        let text: String = keys.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(CT_SSH_KEYS), text).map_err(|e| format!("writing {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// A container clone's rootfs is a copy of the source's: its root's authorized keys too.
pub fn ct_cloned(sim: &Sim, source: u32, newid: u32) -> Result<(), String> {
    ct_created(sim, newid, None)?;
    let from = guest_dir(sim, source).join(CT_SSH_KEYS);
    if sim.cfg.guest_hook.is_none() || !from.exists() {
        return Ok(());
    }
    let dir = guest_dir(sim, newid);
    std::fs::create_dir_all(&dir).map_err(|e| format!("writing {}: {e}", dir.display()))?;
    std::fs::copy(&from, dir.join(CT_SSH_KEYS)).map_err(|e| format!("copying {}: {e}", from.display()))?;
    Ok(())
}

/// Runs the hook for `vmid` if one is configured and the action applies; returns task
/// log lines, or the error that fails the task.
pub async fn call(sim: &Sim, action: Action, vmid: u32) -> Result<Vec<String>, String> {
    let Some(program) = sim.cfg.guest_hook.clone() else { return Ok(vec![]) };
    let Some((config, running, kind)) =
        sim.read(|st| st.vms.get(&vmid).map(|vm| (vm.config.clone(), vm.running, vm.kind)))
    else {
        return Ok(vec![]);
    };
    let template = config.get("template").map(|t| t == "1").unwrap_or(false);
    if !applies(action, running, template, kind) {
        return Ok(vec![]);
    }
    let dir = guest_dir(sim, vmid);
    let mut log = vec![];
    if matches!(action, Action::Start | Action::Reboot) {
        match kind {
            GuestKind::Qemu => write_guest_dir(&dir, vmid, &config, &mut log)?,
            GuestKind::Lxc => write_ct_guest_dir(&dir, vmid, &config, &HostDns::of_host())?,
        }
    }
    let dir2 = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&program).arg(action.word()).arg(vmid.to_string()).arg(&dir2).output()
    })
    .await
    .map_err(|e| format!("guest hook: {e}"))?
    .map_err(|e| format!("guest hook {} could not run: {e}", sim.cfg.guest_hook.as_ref().unwrap().display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("guest hook {} {vmid} failed ({}): {}", action.word(), out.status, err.trim()));
    }
    if action == Action::Destroy {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(log)
}

/// Reads a file of a running guest for the agent's `file-read`: `PROGRAM file-read VMID
/// GUEST_DIR PATH` prints it. Without a hook there is no guest to read from.
pub async fn file_read(sim: &Sim, vmid: u32, path: &str) -> Result<Vec<u8>, String> {
    if !path.starts_with('/') {
        return Err(format!("guest-file-open failed: {path}: not an absolute path"));
    }
    let Some(program) = sim.cfg.guest_hook.clone() else {
        let config = sim.read(|st| st.vms.get(&vmid).map(|vm| vm.config.clone())).unwrap_or_default();
        return simulated_file(vmid, &config, path);
    };
    let dir = guest_dir(sim, vmid);
    let path = path.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&program).arg("file-read").arg(vmid.to_string()).arg(&dir).arg(&path).output()
    })
    .await
    .map_err(|e| format!("guest hook: {e}"))?
    .map_err(|e| format!("guest hook could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!("guest-file-open failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

/// Without a hook there is no guest machine: the agent answers from a simulated one,
/// as `network-get-interfaces` does. A guest with a cloud-init drive has finished its
/// first boot, and it has one SSH host key, stable for this VM (derived from its
/// vmgenid, so a clone's differs).
fn simulated_file(vmid: u32, config: &BTreeMap<String, String>, path: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    match path {
        "/var/lib/cloud/instance/boot-finished" if cloudinit::has_cloudinit_drive(config) => {
            Ok(b"1.0 - simulated - v. 22.4.2\n".to_vec())
        }
        "/etc/ssh/ssh_host_ed25519_key.pub" => {
            let marker = config.get("vmgenid").cloned().unwrap_or_default();
            let seed = ring::digest::digest(&ring::digest::SHA256, format!("{vmid}/{marker}").as_bytes());
            let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
                .map_err(|_| "guest-file-open failed: key derivation".to_string())?;
            let mut blob = Vec::new();
            for part in [&b"ssh-ed25519"[..], ring::signature::KeyPair::public_key(&key).as_ref()] {
                blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
                blob.extend_from_slice(part);
            }
            let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
            Ok(format!("ssh-ed25519 {b64} root@vm{vmid}\n").into_bytes())
        }
        _ => Err(format!("guest-file-open failed: {path}: No such file or directory")),
    }
}

fn write_guest_dir(
    dir: &Path,
    vmid: u32,
    config: &BTreeMap<String, String>,
    log: &mut Vec<String>,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("writing {}: {e}", dir.display());
    let seed_dir = dir.join("nocloud");
    let _ = std::fs::remove_dir_all(&seed_dir);
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut nics = vec![];
    for (k, v) in config {
        if let (Some(("net", n)), Ok(net)) = (params::split_indexed(k), params::parse_net(v)) {
            nics.push(json!({ "index": n, "macaddr": net.macaddr.map(|m| m.to_ascii_lowercase()) }));
        }
    }
    let mut ci = false;
    if cloudinit::has_cloudinit_drive(config) {
        let seed = cloudinit::nocloud(config, vmid, &HostDns::of_host())?;
        std::fs::create_dir_all(&seed_dir).map_err(io)?;
        for (name, content) in [
            ("user-data", &seed.user_data),
            ("network-config", &seed.network_config),
            ("meta-data", &seed.meta_data),
            ("vendor-data", &seed.vendor_data),
        ] {
            std::fs::write(seed_dir.join(name), content).map_err(io)?;
        }
        log.push("generating cloud-init ISO".into());
        ci = true;
    }
    // The static address the guest is told to take (ipconfig0), for the caller's records.
    let ipv4 = config
        .get("ipconfig0")
        .and_then(|v| params::parse_prop(v, None, &["ip", "gw", "ip6", "gw6"]).ok())
        .and_then(|kv| kv.into_iter().find(|(k, _)| k == "ip").map(|(_, v)| v))
        .and_then(|ip| ip.split_once('/').map(|(a, _)| a.to_string()));
    let info = json!({
        "vmid": vmid,
        "name": config.get("name").cloned().unwrap_or_else(|| format!("VM{vmid}")),
        "nics": nics,
        "cloud_init": ci,
        "ipv4": ipv4,
    });
    std::fs::write(dir.join("guest.json"), serde_json::to_vec_pretty(&info).unwrap_or_default()).map_err(io)
}

/// guest.json of a container: what PVE's setup (`PVE::LXC::Setup`) takes from the
/// config before every start, for the lab to write into the rootfs as it does.
fn ct_spec(vmid: u32, config: &BTreeMap<String, String>, host: &HostDns) -> Result<serde_json::Value, String> {
    let mut nets = vec![];
    for (k, v) in config {
        if let Some(("net", n)) = params::split_indexed(k) {
            let net = crate::lxc::parse_net(v).map_err(|e| format!("{k}: {e}"))?;
            let get = |key: &str| net.get(key).cloned();
            nets.push(json!({
                "index": n, "name": get("name"), "macaddr": get("hwaddr").map(|m| m.to_ascii_lowercase()),
                "ip": get("ip"), "gw": get("gw"),
            }));
        }
    }
    nets.sort_by_key(|n| n["index"].as_u64());
    // Unset nameserver/searchdomain: PVE uses the host's settings.
    let nameservers: Vec<String> = match config.get("nameserver") {
        Some(v) => v.split([' ', ',', ';']).filter(|s| !s.is_empty()).map(String::from).collect(),
        None => host.nameservers.clone(),
    };
    let search: Vec<String> = match config.get("searchdomain") {
        Some(v) => v.split([' ', ',', ';']).filter(|s| !s.is_empty()).map(String::from).collect(),
        None => host.search.clone(),
    };
    let ipv4 = nets
        .iter()
        .find(|n| n["index"] == 0)
        .and_then(|n| n["ip"].as_str())
        .and_then(|ip| ip.split_once('/').map(|(a, _)| a.to_string()));
    let hostname = config.get("hostname").cloned().unwrap_or_else(|| format!("CT{vmid}"));
    Ok(json!({
        "vmid": vmid,
        "kind": "lxc",
        "name": hostname,
        "nics": nets.iter().map(|n| json!({ "index": n["index"], "macaddr": n["macaddr"], "name": n["name"] })).collect::<Vec<_>>(),
        "cloud_init": false,
        "ipv4": ipv4,
        "ct": {
            "hostname": hostname,
            "ostype": config.get("ostype"),
            "nets": nets,
            "nameservers": nameservers,
            "searchdomains": search,
        },
    }))
}

fn write_ct_guest_dir(dir: &Path, vmid: u32, config: &BTreeMap<String, String>, host: &HostDns) -> Result<(), String> {
    let io = |e: std::io::Error| format!("writing {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let info = ct_spec(vmid, config, host)?;
    std::fs::write(dir.join("guest.json"), serde_json::to_vec_pretty(&info).unwrap_or_default()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_hook_the_agent_reads_a_simulated_guest() {
        let mut a = BTreeMap::from([("vmgenid".to_string(), "g1".to_string())]);
        let key =
            |c: &BTreeMap<String, String>, id| simulated_file(id, c, "/etc/ssh/ssh_host_ed25519_key.pub").unwrap();
        assert_eq!(key(&a, 100), key(&a, 100), "stable for one VM");
        assert!(String::from_utf8(key(&a, 100)).unwrap().starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
        let b = BTreeMap::from([("vmgenid".to_string(), "g2".to_string())]);
        assert_ne!(key(&a, 101), key(&b, 101), "a clone (new vmgenid) has its own");
        let done = "/var/lib/cloud/instance/boot-finished";
        assert!(simulated_file(100, &a, done).is_err(), "no cloud-init drive, no cloud-init");
        a.insert("ide2".into(), "local-lvm:vm-100-cloudinit,media=cdrom".into());
        assert!(simulated_file(100, &a, done).is_ok());
        assert!(simulated_file(100, &a, "/etc/shadow").unwrap_err().contains("No such file"));
    }

    #[test]
    fn the_hook_runs_only_for_a_change_of_power_state() {
        let q = GuestKind::Qemu;
        assert!(applies(Action::Start, false, false, q));
        assert!(!applies(Action::Start, true, false, q));
        assert!(!applies(Action::Start, false, true, q));
        assert!(applies(Action::Shutdown, true, false, q));
        assert!(!applies(Action::Stop, false, false, q));
        assert!(applies(Action::Destroy, false, false, q));
        assert!(!applies(Action::Destroy, true, false, q));
        assert!(applies(Action::Destroy, true, false, GuestKind::Lxc));
    }

    #[test]
    fn a_container_spec_carries_its_setup_with_the_host_dns_as_fallback() {
        let conf: BTreeMap<String, String> = [
            ("hostname", "web1"),
            ("ostype", "debian"),
            ("net0", "name=eth0,bridge=vmbr0,gw=10.0.0.1,hwaddr=BC:24:11:AA:BB:CC,ip=10.0.0.160/24,type=veth"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let host = HostDns { search: vec!["lab".into()], nameservers: vec!["10.0.0.1".into()] };
        let s = ct_spec(160, &conf, &host).unwrap();
        assert_eq!(s["kind"], "lxc");
        assert_eq!(s["ipv4"], "10.0.0.160");
        assert_eq!(s["nics"][0]["macaddr"], "bc:24:11:aa:bb:cc");
        assert_eq!(s["ct"]["nets"][0]["gw"], "10.0.0.1");
        assert_eq!(s["ct"]["nameservers"][0], "10.0.0.1");
        let mut own = conf.clone();
        own.insert("nameserver".into(), "192.0.2.53 192.0.2.54".into());
        own.insert("searchdomain".into(), "example.org".into());
        let s = ct_spec(160, &own, &host).unwrap();
        assert_eq!(s["ct"]["nameservers"], json!(["192.0.2.53", "192.0.2.54"]));
        assert_eq!(s["ct"]["searchdomains"], json!(["example.org"]));
    }
}
