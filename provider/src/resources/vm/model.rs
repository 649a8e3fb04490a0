//! The `strata_vm` model and its mapping to and from a Proxmox VM config. Reading maps
//! what Proxmox did not write to null (never an invented default), so a plan right
//! after apply or import is empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_pve_client::{ClusterVm, VmConfig};

use super::schema::{parse_interface, DISK_BUSES};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct VmModel {
    pub id: Option<String>,
    pub node: String,
    pub vm_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub pool: Option<String>,
    pub memory_mb: Option<i64>,
    pub disks: Option<Vec<Disk>>,
    pub on_boot: Option<bool>,
    pub started: Option<bool>,
    pub shutdown_timeout: Option<String>,
    pub agent_enabled: Option<bool>,
    pub reboot_after_update: Option<bool>,
    pub ipv4_addresses: Option<Vec<String>>,
    pub ssh_host_public_keys: Option<Vec<String>>,
    pub ssh_host_key_fingerprints: Option<Vec<String>>,
    pub clone: Option<CloneFrom>,
    pub cpu: Option<Cpu>,
    #[serde(default)]
    pub network_devices: Vec<Nic>,
    pub cloud_init: Option<CloudInit>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Disk {
    pub interface: String,
    pub storage: String,
    pub size_gb: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CloneFrom {
    pub source_vm_id: i64,
    pub full: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Cpu {
    pub cores: Option<i64>,
    pub sockets: Option<i64>,
    #[serde(rename = "type")]
    pub cpu_type: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Nic {
    pub bridge: String,
    pub model: Option<String>,
    pub vlan_tag: Option<i64>,
    pub firewall: Option<bool>,
    pub mac_address: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CloudInit {
    pub user: Option<String>,
    pub ssh_public_keys: Option<Vec<String>>,
    pub dns_servers: Option<Vec<String>>,
    pub search_domain: Option<String>,
    pub ipv4: Option<Ipv4>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Ipv4 {
    pub address: Option<String>,
    pub dhcp: Option<bool>,
    pub gateway: Option<String>,
}

/// Config keys cloud-init settings live in.
pub const CI_KEYS: &[&str] = &["ciuser", "sshkeys", "ipconfig0", "nameserver", "searchdomain"];

/// Keys whose change needs a reboot of a running VM to take effect (not hot-pluggable
/// with Proxmox's default `hotplug` setting, or read by the guest at boot).
pub fn needs_reboot(key: &str) -> bool {
    matches!(key, "cores" | "sockets" | "cpu" | "memory" | "agent") || CI_KEYS.contains(&key)
}

// ---- parsing Proxmox values -------------------------------------------------------

fn pve_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// `a=1,b=2` with an optional leading bare value for `default_key`.
pub fn prop_list(v: &str, default_key: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, part) in v.split(',').filter(|p| !p.is_empty()).enumerate() {
        match part.split_once('=') {
            Some((k, val)) => {
                out.insert(k.to_string(), val.to_string());
            }
            None if i == 0 => {
                out.insert(default_key.to_string(), part.to_string());
            }
            None => {}
        }
    }
    out
}

pub use strata_pve_client::vm::split_tags;

pub fn join_tags(tags: &[String]) -> String {
    let mut t: Vec<String> = tags.iter().map(|s| s.to_ascii_lowercase()).collect();
    t.sort();
    t.dedup();
    t.join(";")
}

fn memory_mb(v: &str) -> Option<i64> {
    prop_list(v, "current").get("current").and_then(|m| m.parse().ok())
}

/// A parsed `netN`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetValue {
    pub model: String,
    pub mac: Option<String>,
    /// Everything else, e.g. `bridge`, `tag`, `firewall`, `mtu`.
    pub opts: BTreeMap<String, String>,
}

pub fn parse_net(v: &str) -> Option<NetValue> {
    let mut model = None;
    let mut mac = None;
    let mut opts = BTreeMap::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let (k, val) = part.split_once('=').unwrap_or((part, ""));
        if super::schema::NIC_MODELS.contains(&k) {
            model = Some(k.to_string());
            if !val.is_empty() {
                mac = Some(val.to_string());
            }
        } else if k == "model" {
            model = Some(val.to_string());
        } else if k == "macaddr" {
            mac = Some(val.to_string());
        } else {
            opts.insert(k.to_string(), val.to_string());
        }
    }
    Some(NetValue { model: model?, mac, opts })
}

impl NetValue {
    pub fn print(&self) -> String {
        let mut s = self.model.clone();
        if let Some(m) = &self.mac {
            s.push('=');
            s.push_str(m);
        }
        for (k, v) in &self.opts {
            s.push_str(&format!(",{k}={v}"));
        }
        s
    }

    /// Equal as far as Proxmox is concerned (MAC case-insensitive).
    pub fn same(&self, other: &NetValue) -> bool {
        self.model == other.model
            && self.mac.as_deref().map(str::to_ascii_uppercase) == other.mac.as_deref().map(str::to_ascii_uppercase)
            && self.opts == other.opts
    }
}

/// A disk slot's value: volume id (`storage:name`) and options.
#[derive(Debug, Clone)]
pub struct DriveValue {
    pub volume: String,
    pub opts: BTreeMap<String, String>,
}

pub fn parse_drive(v: &str) -> DriveValue {
    let mut opts = prop_list(v, "file");
    let volume = opts.remove("file").or_else(|| opts.remove("volume")).unwrap_or_default();
    DriveValue { volume, opts }
}

impl DriveValue {
    /// CD-ROMs and cloud-init drives are not `disks`.
    pub fn is_disk(&self) -> bool {
        self.opts.get("media").map(String::as_str) != Some("cdrom")
            && !self.volume.contains("cloudinit")
            && self.volume != "none"
    }
    pub fn storage(&self) -> &str {
        self.volume.split(':').next().unwrap_or("")
    }
    /// Size in whole GiB, rounded up (Proxmox sizes are `32G`, `512M`, bytes...).
    pub fn size_gb(&self) -> Option<i64> {
        let s = self.opts.get("size")?;
        let (num, unit) = match s.chars().last()? {
            c if c.is_ascii_alphabetic() => (&s[..s.len() - 1], c.to_ascii_uppercase()),
            _ => (s.as_str(), 'B'),
        };
        let n: f64 = num.parse().ok()?;
        let bytes = n * match unit {
            'T' => 1024f64.powi(4),
            'G' => 1024f64.powi(3),
            'M' => 1024f64.powi(2),
            'K' => 1024.0,
            _ => 1.0,
        };
        Some((bytes / 1024f64.powi(3)).ceil() as i64)
    }
}

/// Disk slots of a config that hold real disks, in bus order (scsi, virtio, sata, ide).
pub fn config_disks(cfg: &VmConfig) -> Vec<(String, DriveValue)> {
    let mut out = vec![];
    for (bus, max) in DISK_BUSES {
        for n in 0..=*max {
            let key = format!("{bus}{n}");
            if let Some(v) = cfg.get(&key) {
                let d = parse_drive(v);
                if d.is_disk() {
                    out.push((key, d));
                }
            }
        }
    }
    out
}

/// The slot of the cloud-init drive, if there is one.
pub fn cloudinit_slot(cfg: &VmConfig) -> Option<String> {
    cfg.0.iter().find(|(k, v)| parse_interface(k).is_some() && v.contains("cloudinit")).map(|(k, _)| k.clone())
}

pub fn nets(cfg: &VmConfig) -> Vec<(u32, NetValue)> {
    let mut v: Vec<(u32, NetValue)> = cfg
        .0
        .iter()
        .filter_map(|(k, val)| {
            let n: u32 = k.strip_prefix("net")?.parse().ok()?;
            Some((n, parse_net(val)?))
        })
        .collect();
    v.sort_by_key(|(n, _)| *n);
    v
}

/// PVE stores `sshkeys` URL-encoded.
pub fn encode_ssh_keys(keys: &[String]) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let joined = keys.iter().map(|k| k.trim()).collect::<Vec<_>>().join("\n");
    percent_encoding::utf8_percent_encode(&joined, KEEP).to_string()
}

pub fn decode_ssh_keys(v: &str) -> Vec<String> {
    percent_encoding::percent_decode_str(v)
        .decode_utf8_lossy()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn ipconfig_value(ip: &Ipv4) -> Option<String> {
    if ip.dhcp == Some(true) {
        return Some("ip=dhcp".into());
    }
    let addr = ip.address.as_ref()?;
    Some(match &ip.gateway {
        Some(gw) => format!("ip={addr},gw={gw}"),
        None => format!("ip={addr}"),
    })
}

/// The static address of `ipconfig0` (without prefix), if any.
pub fn static_ipv4(cfg: &VmConfig) -> Option<String> {
    let ip = prop_list(cfg.get("ipconfig0")?, "ip").get("ip").cloned()?;
    let (addr, _) = ip.split_once('/')?;
    Some(addr.to_string())
}

pub fn agent_on(cfg: &VmConfig) -> Option<bool> {
    cfg.get("agent").and_then(|a| prop_list(a, "enabled").get("enabled").and_then(|e| pve_bool(e)))
}

// ---- Proxmox -> model -------------------------------------------------------------

/// How to fill optional blocks the state does not say anything about.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Refresh: blocks the state lacks stay absent (they are not managed).
    Refresh,
    /// Import: blocks appear when Proxmox has any of their settings, as a create with
    /// that configuration would have produced.
    Import,
}

pub fn from_pve(cfg: &VmConfig, vm: &ClusterVm, prior: Option<&VmModel>, mode: ReadMode) -> VmModel {
    let import = mode == ReadMode::Import;
    let s = |k: &str| cfg.get(k).map(str::to_string);
    let int = |k: &str| cfg.get(k).and_then(|v| v.parse::<i64>().ok());

    let tags = match cfg.get("tags").map(split_tags).filter(|t| !t.is_empty()) {
        Some(t) => Some(t),
        // `tags = []` in the configuration reads back as the empty set, not null.
        None => prior.and_then(|p| p.tags.clone()).filter(|t| t.is_empty()),
    };

    // An import shows a `cpu` block only when the VM differs from Proxmox's defaults
    // (1 core, 1 socket, no model): a clone inherits `cores: 1` from its template, and
    // the configuration that created it has no cpu block.
    let non_default = |k: &str| cfg.get(k).is_some_and(|v| v != "1");
    let cpu_keys = non_default("cores") || non_default("sockets") || cfg.get("cpu").is_some();
    let cpu = if prior.is_some_and(|p| p.cpu.is_some()) || (import && cpu_keys) {
        Some(Cpu {
            cores: int("cores"),
            sockets: int("sockets"),
            cpu_type: cfg.get("cpu").and_then(|c| prop_list(c, "cputype").get("cputype").cloned()),
        })
    } else {
        None
    };

    // Disks in the state's order first (so list positions stay put), then the rest.
    let mut found = config_disks(cfg);
    let mut disks = vec![];
    for want in prior.and_then(|p| p.disks.as_ref()).into_iter().flatten() {
        if let Some(i) = found.iter().position(|(k, _)| *k == want.interface) {
            let (k, d) = found.remove(i);
            disks.push(Disk { interface: k, storage: d.storage().to_string(), size_gb: d.size_gb().unwrap_or(0) });
        }
    }
    for (k, d) in found {
        disks.push(Disk { interface: k, storage: d.storage().to_string(), size_gb: d.size_gb().unwrap_or(0) });
    }

    // NICs are unmanaged while the state has none (the configuration omits them):
    // report none rather than a template's, which the configuration cannot match.
    let unmanaged_nics = !import && prior.is_some_and(|p| p.network_devices.is_empty());
    let network_devices = if unmanaged_nics { vec![] } else { nets(cfg) }
        .into_iter()
        .map(|(_, n)| Nic {
            bridge: n.opts.get("bridge").cloned().unwrap_or_default(),
            model: Some(n.model.clone()),
            vlan_tag: n.opts.get("tag").and_then(|t| t.parse().ok()),
            firewall: n.opts.get("firewall").and_then(|f| pve_bool(f)),
            mac_address: n.mac.clone(),
        })
        .collect();

    let ci_keys = CI_KEYS.iter().any(|k| cfg.get(k).is_some());
    let prior_ci = prior.and_then(|p| p.cloud_init.as_ref());
    let cloud_init = if prior_ci.is_some() || (import && ci_keys) {
        let ipcfg = cfg.get("ipconfig0").map(|v| prop_list(v, "ip"));
        let prior_ip = prior_ci.and_then(|c| c.ipv4.as_ref());
        let ipv4 = match &ipcfg {
            Some(kv) if kv.get("ip").map(String::as_str) == Some("dhcp") => {
                Some(Ipv4 { address: None, dhcp: Some(true), gateway: kv.get("gw").cloned() })
            }
            Some(kv) if kv.contains_key("ip") || kv.contains_key("gw") => Some(Ipv4 {
                address: kv.get("ip").cloned(),
                // `dhcp = false` next to a static address is kept as written.
                dhcp: prior_ip.and_then(|p| p.dhcp).filter(|d| !d),
                gateway: kv.get("gw").cloned(),
            }),
            _ => None,
        };
        let list_or_prior_empty =
            |v: Option<Vec<String>>, prior: Option<&Vec<String>>| match v.filter(|l| !l.is_empty()) {
                Some(l) => Some(l),
                None => prior.filter(|l| l.is_empty()).cloned(),
            };
        Some(CloudInit {
            user: s("ciuser"),
            ssh_public_keys: list_or_prior_empty(
                cfg.get("sshkeys").map(decode_ssh_keys),
                prior_ci.and_then(|c| c.ssh_public_keys.as_ref()),
            ),
            dns_servers: list_or_prior_empty(
                cfg.get("nameserver").map(|n| {
                    n.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect()
                }),
                prior_ci.and_then(|c| c.dns_servers.as_ref()),
            ),
            search_domain: s("searchdomain"),
            ipv4,
        })
    } else {
        None
    };

    VmModel {
        id: Some(format!("{}/{}", vm.node, vm.vmid)),
        node: vm.node.clone(),
        vm_id: Some(vm.vmid as i64),
        name: s("name").unwrap_or_default(),
        description: s("description"),
        tags,
        pool: vm.pool.clone(),
        memory_mb: cfg.get("memory").and_then(memory_mb),
        disks: Some(disks),
        on_boot: cfg.get("onboot").and_then(pve_bool),
        started: Some(vm.running()),
        shutdown_timeout: prior
            .and_then(|p| p.shutdown_timeout.clone())
            .or_else(|| Some(super::schema::DEFAULT_SHUTDOWN_TIMEOUT.to_string())),
        agent_enabled: agent_on(cfg),
        reboot_after_update: prior.and_then(|p| p.reboot_after_update).or(Some(true)),
        ipv4_addresses: static_ipv4(cfg).map(|a| vec![a]).or_else(|| prior.and_then(|p| p.ipv4_addresses.clone())),
        // Read through the guest agent at create only (see vm::host_keys).
        ssh_host_public_keys: prior.and_then(|p| p.ssh_host_public_keys.clone()),
        ssh_host_key_fingerprints: prior.and_then(|p| p.ssh_host_key_fingerprints.clone()),
        clone: match prior {
            Some(p) => p.clone.clone(),
            None if import => linked_clone_source(cfg),
            None => None,
        },
        cpu,
        network_devices,
        cloud_init,
    }
}

/// The template a linked clone was made from: its disks are `base-N-disk-M/vm-...`
/// volumes. (Proxmox keeps no record of a full clone's source.)
fn linked_clone_source(cfg: &VmConfig) -> Option<CloneFrom> {
    config_disks(cfg).iter().find_map(|(_, d)| {
        let name = d.volume.split_once(':')?.1;
        let (base, _) = name.split_once('/')?;
        let vmid: i64 = base.strip_prefix("base-")?.split('-').next()?.parse().ok()?;
        Some(CloneFrom { source_vm_id: vmid, full: Some(false) })
    })
}

// ---- model -> Proxmox ------------------------------------------------------------

/// What a model asks of the VM's config: keys to set and keys to remove. Disks are
/// handled separately (allocation and resize are their own API calls).
#[derive(Debug, Default, PartialEq)]
pub struct ConfigChange {
    pub set: Vec<(String, String)>,
    pub delete: Vec<String>,
}

impl ConfigChange {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.set.iter().map(|(k, _)| k.as_str()).chain(self.delete.iter().map(String::as_str))
    }
}

/// Compares the wanted model with the current config and returns only the
/// differences. `prior` tells which unmanaged-now blocks used to be managed (their
/// settings are removed).
pub fn config_change(want: &VmModel, cfg: &VmConfig, prior: Option<&VmModel>) -> ConfigChange {
    let mut ch = ConfigChange::default();
    let put = |ch: &mut ConfigChange, key: &str, value: Option<String>| match value {
        Some(v) if cfg.get(key) != Some(v.as_str()) => ch.set.push((key.to_string(), v)),
        None if cfg.get(key).is_some() => ch.delete.push(key.to_string()),
        _ => {}
    };
    put(&mut ch, "name", Some(want.name.clone()));
    put(&mut ch, "description", want.description.clone());
    let tags_now = cfg.get("tags").map(split_tags).unwrap_or_default();
    let tags_want = want.tags.as_deref().map(join_tags).filter(|t| !t.is_empty());
    if tags_now != tags_want.as_deref().map(split_tags).unwrap_or_default() {
        put(&mut ch, "tags", tags_want);
    }
    if let Some(m) = want.memory_mb {
        if cfg.get("memory").and_then(memory_mb) != Some(m) {
            ch.set.push(("memory".into(), m.to_string()));
        }
    }
    if let Some(b) = want.on_boot {
        if cfg.get("onboot").and_then(pve_bool) != Some(b) {
            ch.set.push(("onboot".into(), if b { "1" } else { "0" }.into()));
        }
    }
    if let Some(b) = want.agent_enabled {
        if agent_on(cfg) != Some(b) {
            ch.set.push(("agent".into(), if b { "1" } else { "0" }.into()));
        }
    }
    if let Some(cpu) = &want.cpu {
        if let Some(c) = cpu.cores {
            put(&mut ch, "cores", Some(c.to_string()));
        }
        if let Some(s) = cpu.sockets {
            put(&mut ch, "sockets", Some(s.to_string()));
        }
        if let Some(t) = &cpu.cpu_type {
            let now = cfg.get("cpu").and_then(|c| prop_list(c, "cputype").get("cputype").cloned());
            if now.as_deref() != Some(t.as_str()) {
                ch.set.push(("cpu".into(), t.clone()));
            }
        }
    }

    // Network devices: a non-empty list is authoritative; unmanaged options (mtu,
    // queues...) and the MAC Proxmox assigned are kept. No list at all leaves the
    // VM's NICs (e.g. a template's) alone, as unset `disks` do.
    let current = if want.network_devices.is_empty() { vec![] } else { nets(cfg) };
    for (i, nic) in want.network_devices.iter().enumerate() {
        let key = format!("net{i}");
        let now = current.iter().find(|(n, _)| *n == i as u32).map(|(_, v)| v.clone());
        let mut opts = now.as_ref().map(|n| n.opts.clone()).unwrap_or_default();
        opts.insert("bridge".into(), nic.bridge.clone());
        match nic.vlan_tag {
            Some(t) => opts.insert("tag".into(), t.to_string()),
            None => opts.remove("tag"),
        };
        match nic.firewall {
            Some(f) => opts.insert("firewall".into(), if f { "1" } else { "0" }.into()),
            None => opts.remove("firewall"),
        };
        let next = NetValue {
            model: nic.model.clone().unwrap_or_else(|| "virtio".into()),
            mac: nic.mac_address.clone().or_else(|| now.as_ref().and_then(|n| n.mac.clone())),
            opts,
        };
        if !now.as_ref().is_some_and(|n| n.same(&next)) {
            ch.set.push((key, next.print()));
        }
    }
    for (n, _) in current.iter().filter(|(n, _)| *n as usize >= want.network_devices.len()) {
        ch.delete.push(format!("net{n}"));
    }

    // Cloud-init: managed when the block is present; removed when it was dropped.
    match &want.cloud_init {
        Some(ci) => {
            put(&mut ch, "ciuser", ci.user.clone());
            let keys_now = cfg.get("sshkeys").map(decode_ssh_keys).unwrap_or_default();
            let keys_want = ci.ssh_public_keys.clone().unwrap_or_default();
            let trimmed: Vec<String> = keys_want.iter().map(|k| k.trim().to_string()).collect();
            if keys_now != trimmed {
                put(&mut ch, "sshkeys", (!trimmed.is_empty()).then(|| encode_ssh_keys(&trimmed)));
            }
            put(&mut ch, "ipconfig0", ci.ipv4.as_ref().and_then(ipconfig_value));
            let dns_now: Vec<String> =
                cfg.get("nameserver").map(|n| n.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
            let dns_want = ci.dns_servers.clone().unwrap_or_default();
            if dns_now != dns_want {
                put(&mut ch, "nameserver", (!dns_want.is_empty()).then(|| dns_want.join(" ")));
            }
            put(&mut ch, "searchdomain", ci.search_domain.clone());
        }
        None if prior.is_some_and(|p| p.cloud_init.is_some()) => {
            for k in CI_KEYS {
                put(&mut ch, k, None);
            }
        }
        None => {}
    }
    ch
}

/// The full parameter list for creating a new (not cloned) VM in one request.
pub fn create_params(want: &VmModel) -> Vec<(String, String)> {
    let empty = VmConfig::default();
    let mut p = config_change(want, &empty, None).set;
    for d in want.disks.iter().flatten() {
        p.push((d.interface.clone(), format!("{}:{}", d.storage, d.size_gb)));
    }
    if want.cloud_init.is_some() {
        let storage =
            want.disks.iter().flatten().next().map(|d| d.storage.clone()).unwrap_or_else(|| "local-lvm".into());
        if let Some(slot) = free_cloudinit_slot(&VmConfig(p.iter().cloned().collect())) {
            p.push((slot, format!("{storage}:cloudinit")));
        }
    }
    if let Some(pool) = &want.pool {
        p.push(("pool".into(), pool.clone()));
    }
    p
}

/// Where to put a cloud-init drive: ide2 like the Proxmox UI, else another free slot.
pub fn free_cloudinit_slot(cfg: &VmConfig) -> Option<String> {
    ["ide2", "ide0", "ide1", "ide3", "sata0", "sata1", "sata2", "sata3", "sata4", "sata5"]
        .into_iter()
        .find(|k| cfg.get(k).is_none())
        .map(str::to_string)
}
