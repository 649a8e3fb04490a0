//! Cluster state (VMs, volumes, pools, tasks), its persistence, and the VM
//! operations that change it. Everything here is synchronous and runs under
//! the state mutex; HTTP and task plumbing live elsewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::StorageDef;
use crate::params::{self, DriveSpec, Params};

/// QEMU VM or LXC container: both share the VMID space, the cluster listing and pools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    #[default]
    Qemu,
    Lxc,
}

impl GuestKind {
    /// How PVE names the guest in messages ("VM 100 ...", "CT 100 ...").
    pub fn label(self) -> &'static str {
        match self {
            GuestKind::Qemu => "VM",
            GuestKind::Lxc => "CT",
        }
    }

    /// The `type` of `/cluster/resources` and the path segment under `/nodes/{node}`.
    pub fn api_name(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vm {
    /// State files written before containers existed hold only VMs.
    #[serde(default)]
    pub kind: GuestKind,
    pub vmid: u32,
    pub node: String,
    /// Exactly the keys written to the VM's config file (no defaults).
    pub config: BTreeMap<String, String>,
    pub running: bool,
    /// Unix seconds of the last start (uptime, guest agent readiness).
    pub started_at: Option<f64>,
}

/// A disk image on a storage, tracked separately from configs so leaked or
/// orphaned volumes stay visible (as they would on a real storage).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub node: String,
    pub vmid: u32,
    pub size: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pool {
    pub comment: Option<String>,
    pub members: BTreeSet<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u32,
    pub starttime: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub user: String,
    pub status: String,
    pub exitstatus: Option<String>,
    pub endtime: Option<u64>,
    pub log: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub vms: BTreeMap<u32, Vm>,
    /// volid (`storage:name`) -> volume.
    pub volumes: BTreeMap<String, Volume>,
    pub pools: BTreeMap<String, Pool>,
    pub tasks: BTreeMap<String, Task>,
    /// Source of fake worker PIDs for UPIDs.
    pub next_pid: u32,
    /// Shared (clone source) locks held right now; not persisted because the
    /// tasks holding them do not survive a restart.
    #[serde(skip)]
    pub shared_locks: HashMap<u32, u32>,
}

/// How many finished tasks to keep (PVE's task index is bounded too).
const MAX_TASKS: usize = 2000;

impl State {
    pub fn load(path: &Path) -> anyhow::Result<State> {
        if !path.exists() {
            return Ok(State::default());
        }
        let text = std::fs::read_to_string(path)?;
        let mut st: State = serde_json::from_str(&text)?;
        // Workers do not survive a restart; PVE reports such tasks like this.
        for t in st.tasks.values_mut().filter(|t| t.status == "running") {
            t.status = "stopped".into();
            t.exitstatus = Some("unexpected status".into());
        }
        Ok(st)
    }

    /// Writes state.json atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, path)
    }

    pub fn prune_tasks(&mut self) {
        if self.tasks.len() <= MAX_TASKS {
            return;
        }
        let mut done: Vec<(u64, String)> =
            self.tasks.values().filter(|t| t.status == "stopped").map(|t| (t.starttime, t.upid.clone())).collect();
        done.sort();
        let excess = self.tasks.len() - MAX_TASKS;
        for (_, upid) in done.into_iter().take(excess) {
            self.tasks.remove(&upid);
        }
    }

    /// A QEMU VM on `node` (a container with that VMID has no `qemu-server` config).
    pub fn vm_on(&self, node: &str, vmid: u32) -> Result<&Vm, String> {
        self.guest_on(GuestKind::Qemu, node, vmid)
    }

    pub fn vm_on_mut(&mut self, node: &str, vmid: u32) -> Result<&mut Vm, String> {
        self.guest_on_mut(GuestKind::Qemu, node, vmid)
    }

    pub fn guest_on(&self, kind: GuestKind, node: &str, vmid: u32) -> Result<&Vm, String> {
        match self.vms.get(&vmid) {
            Some(vm) if vm.node == node && vm.kind == kind => Ok(vm),
            _ => Err(no_config_of(kind, node, vmid)),
        }
    }

    pub fn guest_on_mut(&mut self, kind: GuestKind, node: &str, vmid: u32) -> Result<&mut Vm, String> {
        match self.vms.get_mut(&vmid) {
            Some(vm) if vm.node == node && vm.kind == kind => Ok(vm),
            _ => Err(no_config_of(kind, node, vmid)),
        }
    }

    pub fn pool_of(&self, vmid: u32) -> Option<&str> {
        self.pools.iter().find(|(_, p)| p.members.contains(&vmid)).map(|(id, _)| id.as_str())
    }

    pub fn shared_locked(&self, vmid: u32) -> bool {
        self.shared_locks.get(&vmid).copied().unwrap_or(0) > 0
    }

    /// Lowest free VMID from 100, like the default `next-id` range.
    pub fn next_free_vmid(&self) -> u32 {
        (100..).find(|id| !self.vms.contains_key(id)).expect("vmid space exhausted")
    }

    fn next_disk_index(&self, storage: &str, vmid: u32) -> u32 {
        (0..)
            .find(|n| {
                !self.volumes.contains_key(&format!("{storage}:vm-{vmid}-disk-{n}"))
                    && !self.volumes.contains_key(&format!("{storage}:base-{vmid}-disk-{n}"))
            })
            .expect("disk index space exhausted")
    }

    /// Allocates `vm-ID-disk-N` on `storage` and returns its volid.
    pub fn alloc_volume(
        &mut self,
        storages: &[StorageDef],
        node: &str,
        storage: &str,
        vmid: u32,
        size: u64,
    ) -> Result<String, String> {
        self.alloc_volume_for("images", storages, node, storage, vmid, size)
    }

    /// [`State::alloc_volume`] for a content type: `images` (VM disks) or `rootdir`
    /// (container volumes), which the storage must allow.
    pub fn alloc_volume_for(
        &mut self,
        content: &str,
        storages: &[StorageDef],
        node: &str,
        storage: &str,
        vmid: u32,
        size: u64,
    ) -> Result<String, String> {
        let def =
            storages.iter().find(|s| s.id == storage).ok_or_else(|| format!("storage '{storage}' does not exist"))?;
        if !def.content.split(',').any(|c| c == content) {
            let what = if content == "images" { "vm images" } else { "container directories" };
            return Err(format!("storage '{storage}' does not support {what}"));
        }
        let n = self.next_disk_index(storage, vmid);
        let volid = format!("{storage}:vm-{vmid}-disk-{n}");
        self.volumes.insert(volid.clone(), Volume { node: node.into(), vmid, size });
        Ok(volid)
    }

    /// Turns verified API parameters into config entries and writes them.
    /// Disk allocation syntax (`local-lvm:32`) allocates a volume, NICs
    /// without a MAC get one, tags are normalised. Returns log lines.
    pub fn apply_config(
        &mut self,
        storages: &[StorageDef],
        node: &str,
        vmid: u32,
        params: &Params,
        force: bool,
    ) -> Result<Vec<String>, String> {
        let mut log = Vec::new();
        let deletes: Vec<String> = params
            .get("delete")
            .map(|d| params::split_list(d).into_iter().map(String::from).collect())
            .unwrap_or_default();
        let mut sets: Vec<(String, String)> = Vec::new();
        for (k, v) in params {
            if params::config_key_type(k).is_none() {
                continue; // node, vmid, digest, delete, pool, start, ...
            }
            let (key, value) =
                if k == "cdrom" { ("ide2".to_string(), add_cdrom_media(v)) } else { (k.clone(), v.clone()) };
            let value = if params::is_disk_key(&key) {
                self.prepare_disk(storages, node, vmid, &key, &value, &mut log)?
            } else if key.starts_with("net") && params::split_indexed(&key).is_some() {
                let mut net = params::parse_net(&value)?;
                if net.macaddr.is_none() {
                    net.macaddr = Some(random_mac());
                }
                net.print()
            } else if key == "tags" {
                params::normalize_tags(&value)
            } else {
                value
            };
            sets.push((key, value));
        }
        for d in &deletes {
            self.delete_key(vmid, d, force, &mut log);
        }
        if !self.vms.contains_key(&vmid) {
            return Err(no_config(node, vmid));
        }
        for (k, v) in sets {
            let vm = self.vms.get_mut(&vmid).expect("checked above");
            // Replacing a disk detaches the old volume (unusedN) like PVE.
            if params::is_disk_key(&k) {
                if let Some(old) = vm.config.get(&k) {
                    let old_vol = params::parse_drive(old).map(|d| d.file).unwrap_or_default();
                    let new_vol = params::parse_drive(&v).map(|d| d.file).unwrap_or_default();
                    if old_vol != new_vol && self.volumes.contains_key(&old_vol) {
                        let slot = next_unused_slot(&vm.config);
                        vm.config.insert(slot, old_vol);
                    }
                }
            }
            vm.config.insert(k, v);
        }
        Ok(log)
    }

    fn prepare_disk(
        &mut self,
        storages: &[StorageDef],
        node: &str,
        vmid: u32,
        key: &str,
        value: &str,
        log: &mut Vec<String>,
    ) -> Result<String, String> {
        let mut d: DriveSpec = params::parse_drive(value)?;
        if let Some((storage, spec)) = d.file.split_once(':') {
            if spec == "cloudinit" {
                let def = storages
                    .iter()
                    .find(|s| s.id == storage)
                    .ok_or_else(|| format!("storage '{storage}' does not exist"))?;
                let volid = format!("{}:vm-{vmid}-cloudinit", def.id);
                self.volumes.insert(volid.clone(), Volume { node: node.into(), vmid, size: 4 << 20 });
                d.file = volid;
                d.opts.insert("media".into(), "cdrom".into());
                return Ok(d.print());
            }
            let is_alloc = !d.is_cdrom() && !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if is_alloc {
                let gib: f64 = spec.parse().map_err(|_| format!("unable to parse size '{spec}'"))?;
                if gib <= 0.0 {
                    return Err(format!("{key}: importing or empty disks are not supported by pve-sim"));
                }
                let bytes = (gib * (1u64 << 30) as f64).round() as u64;
                let volid = self.alloc_volume(storages, node, storage, vmid, bytes)?;
                log.push(format!("  {key}: successfully created disk '{volid},size={}'", params::format_size(bytes)));
                d.file = volid;
                d.opts.insert("size".into(), params::format_size(bytes));
                return Ok(d.print());
            }
        }
        if let Some(vol) = self.volumes.get(&d.file) {
            d.opts.entry("size".into()).or_insert_with(|| params::format_size(vol.size));
        }
        Ok(d.print())
    }

    /// Removes a config key; disks become `unusedN` unless forced, and
    /// deleting an `unusedN` entry destroys the volume.
    fn delete_key(&mut self, vmid: u32, key: &str, force: bool, log: &mut Vec<String>) {
        let Some(vm) = self.vms.get_mut(&vmid) else { return };
        let Some(old) = vm.config.remove(key) else {
            log.push(format!("cannot delete '{key}' - not set in current configuration!"));
            return;
        };
        let is_unused = key.starts_with("unused");
        if !(params::is_disk_key(key) || is_unused) {
            return;
        }
        let Ok(d) = params::parse_drive(&old) else { return };
        if !self.volumes.contains_key(&d.file) {
            return;
        }
        if is_unused || force || d.is_cdrom() {
            self.volumes.remove(&d.file);
            log.push(format!("removed volume '{}'", d.file));
        } else {
            let slot = next_unused_slot(&vm.config);
            vm.config.insert(slot, d.file);
        }
    }

    /// Removes a VM, its referenced volumes, optionally unreferenced ones,
    /// and its pool membership.
    pub fn destroy_vm(&mut self, vmid: u32, unreferenced: bool) -> Vec<String> {
        let mut log = Vec::new();
        let Some(vm) = self.vms.remove(&vmid) else { return log };
        for (k, v) in &vm.config {
            if params::is_disk_key(k) || k.starts_with("unused") {
                if let Ok(d) = params::parse_drive(v) {
                    if self.volumes.remove(&d.file).is_some() {
                        log.push(format!("Removing image: {}", d.file));
                    }
                }
            }
        }
        if unreferenced {
            let orphans: Vec<String> = self
                .volumes
                .iter()
                .filter(|(id, v)| v.vmid == vmid && !id.contains(&format!("base-{vmid}-")))
                .map(|(id, _)| id.clone())
                .collect();
            for id in orphans {
                self.volumes.remove(&id);
                log.push(format!("Removing unreferenced image: {id}"));
            }
        }
        for p in self.pools.values_mut() {
            p.members.remove(&vmid);
        }
        log
    }

    /// Converts a VM's disks to `base-` volumes, as `qm template` does.
    pub fn make_template(&mut self, vmid: u32) {
        let Some(vm) = self.vms.get(&vmid) else { return };
        let mut changes = Vec::new();
        for (k, v) in &vm.config {
            if !params::is_disk_key(k) {
                continue;
            }
            let Ok(mut d) = params::parse_drive(v) else { continue };
            if d.is_cdrom() || !self.volumes.contains_key(&d.file) {
                continue;
            }
            let new = d.file.replacen(&format!(":vm-{vmid}-disk-"), &format!(":base-{vmid}-disk-"), 1);
            if new == d.file {
                continue;
            }
            let old = std::mem::replace(&mut d.file, new.clone());
            changes.push((k.clone(), old, new, d.print()));
        }
        for (key, old, new, printed) in changes {
            if let Some(vol) = self.volumes.remove(&old) {
                self.volumes.insert(new, vol);
            }
            if let Some(vm) = self.vms.get_mut(&vmid) {
                vm.config.insert(key, printed);
            }
        }
    }

    /// Copies the source disks for a clone. Linked clones reference the
    /// template's base volume (`base-100-disk-0/vm-101-disk-0`).
    #[allow(clippy::too_many_arguments)] // mirrors PVE's clone options 1:1
    pub fn clone_disks(
        &mut self,
        storages: &[StorageDef],
        src: &Vm,
        newid: u32,
        node: &str,
        full: bool,
        target_storage: Option<&str>,
        log: &mut Vec<String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in &src.config {
            if !params::is_disk_key(k) {
                continue;
            }
            let mut d = params::parse_drive(v)?;
            let Some(vol) = self.volumes.get(&d.file).cloned() else {
                out.insert(k.clone(), v.clone()); // iso/none: copied verbatim
                continue;
            };
            let (storage, name) =
                d.file.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or_default();
            if d.is_cdrom() {
                // Cloud-init drives are regenerated for the new VM.
                let volid = format!("{storage}:vm-{newid}-cloudinit");
                self.volumes.insert(volid.clone(), Volume { node: node.into(), vmid: newid, size: vol.size });
                d.file = volid;
            } else if full {
                let storage = target_storage.unwrap_or(&storage).to_string();
                let volid = self.alloc_volume(storages, node, &storage, newid, vol.size)?;
                log.push(format!("create full clone of drive {k} ({})", d.file));
                d.file = volid;
            } else {
                let base = name.split('/').next().unwrap_or(&name).to_string();
                let n = self.next_disk_index(&storage, newid);
                let volid = format!("{storage}:{base}/vm-{newid}-disk-{n}");
                self.volumes.insert(volid.clone(), Volume { node: node.into(), vmid: newid, size: vol.size });
                log.push(format!("create linked clone of drive {k} ({})", d.file));
                d.file = volid;
            }
            out.insert(k.clone(), d.print());
        }
        Ok(out)
    }
}

pub fn no_config(node: &str, vmid: u32) -> String {
    no_config_of(GuestKind::Qemu, node, vmid)
}

/// PVE's answer for a guest that has no config of that kind on that node.
pub fn no_config_of(kind: GuestKind, node: &str, vmid: u32) -> String {
    let dir = match kind {
        GuestKind::Qemu => "qemu-server",
        GuestKind::Lxc => "lxc",
    };
    format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist")
}

fn add_cdrom_media(v: &str) -> String {
    if v.contains("media=") {
        v.to_string()
    } else {
        format!("{v},media=cdrom")
    }
}

fn next_unused_slot(config: &BTreeMap<String, String>) -> String {
    (0..256).map(|n| format!("unused{n}")).find(|k| !config.contains_key(k)).unwrap_or_else(|| "unused255".into())
}

/// Random MAC in Proxmox's OUI (BC:24:11), which PVE uses by default.
pub fn random_mac() -> String {
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", fastrand::u8(..), fastrand::u8(..), fastrand::u8(..))
}

/// SHA-1 over the config as PVE prints it, mirroring the `digest` field.
pub fn config_digest(config: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (k, v) in config {
        text.push_str(&format!("{k}: {v}\n"));
    }
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Facts derived from a config the way PVE reports them in status calls.
pub struct VmSummary {
    pub maxmem: u64,
    pub cpus: u64,
    pub maxdisk: u64,
}

pub fn summarize(vm: &Vm, volumes: &BTreeMap<String, Volume>) -> VmSummary {
    let c = &vm.config;
    let mem_mib = c
        .get("memory")
        .and_then(|m| m.trim_start_matches("current=").split(',').next().and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(512);
    let get = |k: &str, d: u64| c.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let cpus = c.get("vcpus").and_then(|v| v.parse().ok()).unwrap_or(get("sockets", 1) * get("cores", 1));
    let maxdisk = params::DISK_BUSES
        .iter()
        .flat_map(|bus| (0..31).map(move |n| format!("{bus}{n}")))
        .filter_map(|k| c.get(&k))
        .filter_map(|v| params::parse_drive(v).ok())
        .find(|d| !d.is_cdrom())
        // A container's disk is its rootfs (`local-lvm:vm-100-disk-0,size=8G`).
        .or_else(|| c.get("rootfs").and_then(|v| params::parse_drive(v).ok()))
        .and_then(|d| {
            d.opts.get("size").and_then(|s| params::parse_size(s)).or_else(|| volumes.get(&d.file).map(|v| v.size))
        })
        .unwrap_or(0);
    VmSummary { maxmem: mem_mib << 20, cpus, maxdisk }
}
