//! The `strata_container` model and its mapping to and from a container's Proxmox
//! config. Property strings Proxmox rewrites (`features`, `net[n]`, mount points) are
//! parsed and compared key by key, never as text, so its normalisation causes no
//! diff; what Proxmox did not write reads as null.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_pve_client::{ClusterVm, VmConfig};

use crate::resources::vm::model::{join_tags, parse_drive, prop_list, split_tags};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CtModel {
    pub id: Option<String>,
    pub node: String,
    pub vm_id: Option<i64>,
    pub hostname: String,
    pub ostemplate: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub pool: Option<String>,
    pub cores: Option<i64>,
    pub memory_mb: Option<i64>,
    pub swap_mb: Option<i64>,
    pub unprivileged: Option<bool>,
    pub kubernetes_node: Option<bool>,
    pub ssh_public_keys: Option<Vec<String>>,
    pub password: Option<String>,
    pub onboot: Option<bool>,
    pub started: Option<bool>,
    pub shutdown_timeout: Option<String>,
    pub ipv4_addresses: Option<Vec<String>>,
    pub clone: Option<CloneFrom>,
    pub rootfs: Option<RootFs>,
    #[serde(default)]
    pub mount_point: Vec<MountPoint>,
    #[serde(default)]
    pub network: Vec<Net>,
    pub features: Option<Features>,
    pub startup: Option<Startup>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CloneFrom {
    pub source_id: i64,
    pub full: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RootFs {
    pub storage: String,
    pub size_gb: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MountPoint {
    pub storage: String,
    pub size_gb: i64,
    pub path: String,
    pub backup: Option<bool>,
    pub read_only: Option<bool>,
    /// Destroy the volume when the block is removed (Proxmox keeps no such flag:
    /// it lives in the state, carried over by path).
    #[serde(default)]
    pub delete_on_remove: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Net {
    pub name: String,
    pub bridge: String,
    pub ip: Option<String>,
    pub gateway: Option<String>,
    pub tag: Option<i64>,
    pub firewall: Option<bool>,
    pub mac_address: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Features {
    pub nesting: Option<bool>,
    pub keyctl: Option<bool>,
    pub fuse: Option<bool>,
    pub mknod: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Startup {
    pub order: Option<i64>,
    pub up: Option<i64>,
    pub down: Option<i64>,
}

/// Feature flags this resource manages; others (`mount=`, `force_rw_sys`) are kept.
pub const FLAGS: &[&str] = &["nesting", "keyctl", "fuse", "mknod"];
/// What `kubernetes_node = true` turns on.
pub const KUBERNETES_FLAGS: &[&str] = &["nesting", "keyctl"];

fn pve_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

fn b01(b: bool) -> String {
    if b { "1" } else { "0" }.into()
}

impl Features {
    pub fn get(&self, flag: &str) -> Option<bool> {
        match flag {
            "nesting" => self.nesting,
            "keyctl" => self.keyctl,
            "fuse" => self.fuse,
            "mknod" => self.mknod,
            _ => None,
        }
    }
    fn set(&mut self, flag: &str, v: Option<bool>) {
        match flag {
            "nesting" => self.nesting = v,
            "keyctl" => self.keyctl = v,
            "fuse" => self.fuse = v,
            "mknod" => self.mknod = v,
            _ => {}
        }
    }
}

/// The flags the model asks for: the `features` block plus the Kubernetes preset.
/// `None` leaves a flag as Proxmox has it.
pub fn wanted_flags(m: &CtModel) -> BTreeMap<&'static str, Option<bool>> {
    let k8s = m.kubernetes_node == Some(true);
    FLAGS
        .iter()
        .map(|f| {
            let explicit = m.features.as_ref().and_then(|x| x.get(f));
            let v = if k8s && KUBERNETES_FLAGS.contains(f) { Some(true) } else { explicit };
            (*f, v)
        })
        .collect()
}

/// `features` parsed (flags as booleans, absent = off, like Proxmox).
pub fn current_flags(cfg: &VmConfig) -> BTreeMap<String, String> {
    cfg.get("features").map(|f| prop_list(f, "")).unwrap_or_default()
}

fn flag_on(cur: &BTreeMap<String, String>, f: &str) -> bool {
    cur.get(f).and_then(|v| pve_bool(v)).unwrap_or(false)
}

/// The `features` value to write, or `None` when Proxmox's already means the same.
/// `Some("")` means delete the key.
pub fn features_change(m: &CtModel, cfg: &VmConfig) -> Option<String> {
    let cur = current_flags(cfg);
    let mut next = cur.clone();
    let mut differs = false;
    for (f, want) in wanted_flags(m) {
        let Some(want) = want else { continue };
        if flag_on(&cur, f) != want {
            differs = true;
        }
        if want {
            next.insert(f.to_string(), "1".into());
        } else {
            next.remove(f);
        }
    }
    if !differs {
        return None;
    }
    Some(next.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
}

/// `net[n]` options as a map (keys as Proxmox writes them).
pub fn parse_net(v: &str) -> BTreeMap<String, String> {
    prop_list(v, "name")
}

/// `net[n]` printed like Proxmox: `name` first, then the other keys sorted.
pub fn print_net(kv: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<String> = kv.get("name").map(|n| vec![format!("name={n}")]).unwrap_or_default();
    parts.extend(kv.iter().filter(|(k, _)| *k != "name").map(|(k, v)| format!("{k}={v}")));
    parts.join(",")
}

fn same_net(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    let norm = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| {
                let v = match k.as_str() {
                    "hwaddr" => v.to_ascii_uppercase(),
                    "firewall" | "link_down" | "host-managed" => pve_bool(v).map(b01).unwrap_or(v.clone()),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    };
    norm(a) == norm(b)
}

pub fn nets(cfg: &VmConfig) -> Vec<(u32, BTreeMap<String, String>)> {
    let mut v: Vec<(u32, BTreeMap<String, String>)> =
        cfg.0.iter().filter_map(|(k, val)| Some((k.strip_prefix("net")?.parse().ok()?, parse_net(val)))).collect();
    v.sort_by_key(|(n, _)| *n);
    v
}

/// `net[n]` for a wanted interface, on top of what Proxmox has (unmanaged options
/// such as `type=veth` or `mtu` and the MAC it assigned are kept).
fn net_value(n: &Net, now: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut kv = now.cloned().unwrap_or_default();
    kv.insert("name".into(), n.name.clone());
    kv.insert("bridge".into(), n.bridge.clone());
    let mut opt = |k: &str, v: Option<String>| match v {
        Some(v) => {
            kv.insert(k.into(), v);
        }
        None => {
            kv.remove(k);
        }
    };
    opt("ip", n.ip.clone());
    opt("gw", n.gateway.clone());
    opt("tag", n.tag.map(|t| t.to_string()));
    opt("firewall", n.firewall.map(b01));
    if let Some(mac) = &n.mac_address {
        kv.insert("hwaddr".into(), mac.clone());
    }
    kv
}

/// A mount point value (`rootfs`, `mp[n]`): storage and size in whole GiB.
pub fn volume_of(v: &str) -> (String, i64, BTreeMap<String, String>) {
    let d = parse_drive(v);
    (d.storage().to_string(), d.size_gb().unwrap_or(0), d.opts.clone())
}

pub fn mount_points(cfg: &VmConfig) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> =
        cfg.0.iter().filter_map(|(k, val)| Some((k.strip_prefix("mp")?.parse().ok()?, val.clone()))).collect();
    v.sort_by_key(|(n, _)| *n);
    v
}

/// Options of `mp[n]` other than the volume: `mp=PATH`, backup, ro.
fn mp_opts(m: &MountPoint, now: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut kv = now.cloned().unwrap_or_default();
    kv.insert("mp".into(), m.path.clone());
    match m.backup {
        Some(b) => kv.insert("backup".into(), b01(b)),
        None => kv.remove("backup"),
    };
    match m.read_only {
        Some(b) => kv.insert("ro".into(), b01(b)),
        None => kv.remove("ro"),
    };
    kv
}

/// `mp[n]` for a new volume: `STORAGE:SIZE_GB,mp=PATH,...`.
pub fn mp_create_value(m: &MountPoint) -> String {
    let opts = mp_opts(m, None);
    let mut s = format!("{}:{},mp={}", m.storage, m.size_gb, m.path);
    for (k, v) in opts.iter().filter(|(k, _)| *k != "mp") {
        s.push_str(&format!(",{k}={v}"));
    }
    s
}

/// `mp[n]` changing only options of an existing volume, or `None` when equal.
pub fn mp_option_change(m: &MountPoint, current: &str) -> Option<String> {
    let d = parse_drive(current);
    let want = mp_opts(m, Some(&d.opts));
    let norm = |o: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        o.iter().map(|(k, v)| (k.clone(), pve_bool(v).filter(|_| k != "mp").map(b01).unwrap_or(v.clone()))).collect()
    };
    if norm(&want) == norm(&d.opts) {
        return None;
    }
    let mut s = d.volume.clone();
    s.push_str(&format!(",mp={}", m.path));
    for (k, v) in want.iter().filter(|(k, _)| *k != "mp") {
        s.push_str(&format!(",{k}={v}"));
    }
    Some(s)
}

/// What bringing the mount points to `want` takes. Mount points are matched by
/// their path, never by `mpN` number or list position.
#[derive(Debug, Default, PartialEq)]
pub struct MountPointChanges {
    /// `mpN` values: new volumes (lowest number never in use) and option changes.
    pub set: Vec<(String, String)>,
    /// `mpN` to detach; Proxmox keeps each volume as `unusedN`.
    pub detach: Vec<String>,
    /// Volume IDs among the detached ones whose removal `delete_on_remove` asked for.
    pub destroy: Vec<String>,
    /// (key, current GiB, wanted GiB, path) of volumes to grow.
    pub grow: Vec<(String, i64, i64, String)>,
    /// (key, current GiB, wanted GiB, path) of volumes asked to shrink.
    pub shrink: Vec<(String, i64, i64, String)>,
}

/// The mount point changes from `cfg` to `want`. `prior` (the state) says which
/// removed mount points asked for their volume to be destroyed; a mount point the
/// state does not know (made outside Terraform) is only ever detached.
pub fn mount_point_changes(want: &[MountPoint], prior: &[MountPoint], cfg: &VmConfig) -> MountPointChanges {
    let mut ch = MountPointChanges::default();
    let current: Vec<(u32, String, String)> = mount_points(cfg)
        .into_iter()
        .map(|(n, v)| {
            let path = parse_drive(&v).opts.get("mp").cloned().unwrap_or_default();
            (n, path, v)
        })
        .collect();
    // A number Proxmox still has (even one being detached) is not reused: it may not
    // be set and deleted in one request.
    let mut taken: Vec<u32> = current.iter().map(|(n, _, _)| *n).collect();
    for m in want {
        match current.iter().find(|(_, path, _)| *path == m.path) {
            Some((n, _, v)) => {
                let key = format!("mp{n}");
                if let Some(next) = mp_option_change(m, v) {
                    ch.set.push((key.clone(), next));
                }
                let (_, have, _) = volume_of(v);
                if have < m.size_gb {
                    ch.grow.push((key, have, m.size_gb, m.path.clone()));
                } else if have > m.size_gb {
                    ch.shrink.push((key, have, m.size_gb, m.path.clone()));
                }
            }
            None => {
                let n = (0..).find(|n| !taken.contains(n)).unwrap_or(0);
                taken.push(n);
                ch.set.push((format!("mp{n}"), mp_create_value(m)));
            }
        }
    }
    for (n, path, v) in &current {
        if want.iter().any(|m| m.path == *path) {
            continue;
        }
        ch.detach.push(format!("mp{n}"));
        let asked = prior.iter().any(|m| m.path == *path && m.delete_on_remove == Some(true));
        if asked {
            ch.destroy.push(parse_drive(v).volume.clone());
        }
    }
    ch
}

/// The `unusedN` keys of `cfg` that hold one of `volumes`.
pub fn unused_holding(cfg: &VmConfig, volumes: &[String]) -> Vec<String> {
    cfg.0
        .iter()
        .filter(|(k, v)| {
            k.strip_prefix("unused").is_some_and(|n| n.parse::<u32>().is_ok())
                && volumes.contains(&parse_drive(v).volume)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn startup_value(s: &Startup) -> Option<String> {
    let mut parts = vec![];
    if let Some(o) = s.order {
        parts.push(format!("order={o}"));
    }
    if let Some(u) = s.up {
        parts.push(format!("up={u}"));
    }
    if let Some(d) = s.down {
        parts.push(format!("down={d}"));
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

fn parse_startup(v: &str) -> Startup {
    let kv = prop_list(v, "order");
    let n = |k: &str| kv.get(k).and_then(|x| x.parse().ok());
    Startup { order: n("order"), up: n("up"), down: n("down") }
}

/// The static IPv4 addresses of the config's interfaces (without prefix).
pub fn static_ipv4(cfg: &VmConfig) -> Vec<String> {
    nets(cfg)
        .iter()
        .filter_map(|(_, kv)| kv.get("ip")?.parse::<ipnet::Ipv4Net>().ok().map(|n| n.addr().to_string()))
        .collect()
}

/// Whether any interface gets its address from DHCP (then only the running
/// container can tell it).
pub fn has_dhcp(cfg: &VmConfig) -> bool {
    nets(cfg).iter().any(|(_, kv)| kv.get("ip").map(String::as_str) == Some("dhcp"))
}

// ---- Proxmox -> model -------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Refresh,
    Import,
}

pub fn from_pve(cfg: &VmConfig, ct: &ClusterVm, prior: Option<&CtModel>, mode: ReadMode) -> CtModel {
    let import = mode == ReadMode::Import;
    let s = |k: &str| cfg.get(k).map(str::to_string);
    let int = |k: &str| cfg.get(k).and_then(|v| v.parse::<i64>().ok());

    let tags = match cfg.get("tags").map(split_tags).filter(|t| !t.is_empty()) {
        Some(t) => Some(t),
        None => prior.and_then(|p| p.tags.clone()).filter(|t| t.is_empty()),
    };

    let cur = current_flags(cfg);
    // The preset holds only while its flags are on: otherwise the plan shows it.
    let k8s_holds = KUBERNETES_FLAGS.iter().all(|f| flag_on(&cur, f));
    let kubernetes_node = Some(prior.and_then(|p| p.kubernetes_node).unwrap_or(false) && k8s_holds);
    let preset_covers = |f: &str| kubernetes_node == Some(true) && KUBERNETES_FLAGS.contains(&f);
    let prior_features = prior.and_then(|p| p.features.as_ref());
    let features = if prior_features.is_some() || import {
        let mut out = Features::default();
        for f in FLAGS {
            let on = flag_on(&cur, f);
            let v = match prior_features.and_then(|p| p.get(f)) {
                // A flag the configuration sets reads back as Proxmox has it.
                Some(_) => Some(on),
                // One it leaves out shows up only when Proxmox has it on (drift).
                None if on && !preset_covers(f) => Some(true),
                None => None,
            };
            out.set(f, v);
        }
        // An import shows the block only when Proxmox has a flag on.
        if prior_features.is_none() && out == Features::default() {
            None
        } else {
            Some(out)
        }
    } else {
        None
    };

    let rootfs = if prior.is_some_and(|p| p.rootfs.is_some()) || import {
        cfg.get("rootfs").map(|v| {
            let (storage, size_gb, _) = volume_of(v);
            RootFs { storage, size_gb }
        })
    } else {
        None
    };

    // Every `mpN`, whatever its number (gaps included); the state's flags by path.
    let mount_point = mount_points(cfg)
        .into_iter()
        .map(|(_, v)| {
            let (storage, size_gb, opts) = volume_of(&v);
            let path = opts.get("mp").cloned().unwrap_or_default();
            let delete_on_remove =
                prior.and_then(|p| p.mount_point.iter().find(|m| m.path == path)).and_then(|m| m.delete_on_remove);
            MountPoint {
                storage,
                size_gb,
                path,
                backup: opts.get("backup").and_then(|b| pve_bool(b)),
                read_only: opts.get("ro").and_then(|b| pve_bool(b)),
                delete_on_remove,
            }
        })
        .collect();

    // Interfaces are unmanaged while the state has none (e.g. a clone keeping its
    // template's): report none rather than ones the configuration cannot match.
    let unmanaged_nets = !import && prior.is_some_and(|p| p.network.is_empty());
    let network = if unmanaged_nets { vec![] } else { nets(cfg) }
        .into_iter()
        .map(|(_, kv)| Net {
            name: kv.get("name").cloned().unwrap_or_default(),
            bridge: kv.get("bridge").cloned().unwrap_or_default(),
            ip: kv.get("ip").cloned(),
            gateway: kv.get("gw").cloned(),
            tag: kv.get("tag").and_then(|t| t.parse().ok()),
            firewall: kv.get("firewall").and_then(|f| pve_bool(f)),
            mac_address: kv.get("hwaddr").cloned(),
        })
        .collect();

    let statics = static_ipv4(cfg);
    CtModel {
        id: Some(format!("{}/{}", ct.node, ct.vmid)),
        node: ct.node.clone(),
        vm_id: Some(ct.vmid as i64),
        hostname: s("hostname").unwrap_or_default(),
        // Proxmox keeps no record of the template a container was made from.
        ostemplate: prior.and_then(|p| p.ostemplate.clone()),
        description: s("description"),
        tags,
        pool: ct.pool.clone(),
        cores: int("cores"),
        memory_mb: int("memory"),
        swap_mb: int("swap"),
        // Proxmox writes `unprivileged: 1`; a privileged container has no such key.
        unprivileged: Some(cfg.get("unprivileged").and_then(pve_bool).unwrap_or(false)),
        kubernetes_node,
        ssh_public_keys: prior.and_then(|p| p.ssh_public_keys.clone()),
        password: None,
        onboot: cfg.get("onboot").and_then(pve_bool),
        started: Some(ct.running()),
        shutdown_timeout: prior
            .and_then(|p| p.shutdown_timeout.clone())
            .or_else(|| Some(super::schema::DEFAULT_SHUTDOWN_TIMEOUT.to_string())),
        ipv4_addresses: if statics.is_empty() { prior.and_then(|p| p.ipv4_addresses.clone()) } else { Some(statics) },
        clone: prior.and_then(|p| p.clone.clone()),
        rootfs,
        mount_point,
        network,
        features,
        startup: cfg.get("startup").map(parse_startup),
    }
}

// ---- model -> Proxmox ------------------------------------------------------------

/// Config keys to set and delete (volumes are handled by their own calls).
#[derive(Debug, Default, PartialEq)]
pub struct ConfigChange {
    pub set: Vec<(String, String)>,
    pub delete: Vec<String>,
}

impl ConfigChange {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

pub fn config_change(want: &CtModel, cfg: &VmConfig) -> ConfigChange {
    let mut ch = ConfigChange::default();
    let put = |ch: &mut ConfigChange, key: &str, value: Option<String>| match value {
        Some(v) if cfg.get(key) != Some(v.as_str()) => ch.set.push((key.to_string(), v)),
        None if cfg.get(key).is_some() => ch.delete.push(key.to_string()),
        _ => {}
    };
    put(&mut ch, "hostname", Some(want.hostname.clone()));
    put(&mut ch, "description", want.description.clone());
    let tags_now = cfg.get("tags").map(split_tags).unwrap_or_default();
    let tags_want = want.tags.as_deref().map(join_tags).filter(|t| !t.is_empty());
    if tags_now != tags_want.as_deref().map(split_tags).unwrap_or_default() {
        put(&mut ch, "tags", tags_want);
    }
    for (key, v) in [("cores", want.cores), ("memory", want.memory_mb), ("swap", want.swap_mb)] {
        if let Some(v) = v {
            put(&mut ch, key, Some(v.to_string()));
        }
    }
    if let Some(b) = want.onboot {
        if cfg.get("onboot").and_then(pve_bool) != Some(b) {
            ch.set.push(("onboot".into(), b01(b)));
        }
    }
    let startup_want = want.startup.as_ref().and_then(startup_value);
    if cfg.get("startup").map(parse_startup) != startup_want.as_deref().map(parse_startup) {
        put(&mut ch, "startup", startup_want);
    }
    match features_change(want, cfg) {
        Some(v) if v.is_empty() => ch.delete.push("features".into()),
        Some(v) => ch.set.push(("features".into(), v)),
        None => {}
    }
    // A non-empty `network` list is authoritative; none at all leaves a clone's
    // interfaces alone.
    let current = if want.network.is_empty() { vec![] } else { nets(cfg) };
    for (i, n) in want.network.iter().enumerate() {
        let now = current.iter().find(|(k, _)| *k == i as u32).map(|(_, v)| v);
        let next = net_value(n, now);
        if !now.is_some_and(|c| same_net(c, &next)) {
            ch.set.push((format!("net{i}"), print_net(&next)));
        }
    }
    for (k, _) in current.iter().filter(|(k, _)| *k as usize >= want.network.len()) {
        ch.delete.push(format!("net{k}"));
    }
    ch
}

/// Every parameter of a create from `ostemplate`, in one request (no later
/// config change is needed, so a refused setting leaves nothing behind).
pub fn create_params(want: &CtModel) -> Vec<(String, String)> {
    let mut p = config_change(want, &VmConfig::default()).set;
    if let Some(t) = &want.ostemplate {
        p.push(("ostemplate".into(), t.clone()));
    }
    p.push(("unprivileged".into(), b01(want.unprivileged != Some(false))));
    if let Some(r) = &want.rootfs {
        p.push(("rootfs".into(), format!("{}:{}", r.storage, r.size_gb)));
    }
    for (i, m) in want.mount_point.iter().enumerate() {
        p.push((format!("mp{i}"), mp_create_value(m)));
    }
    if let Some(keys) = want.ssh_public_keys.as_ref().filter(|k| !k.is_empty()) {
        p.push(("ssh-public-keys".into(), keys.iter().map(|k| k.trim()).collect::<Vec<_>>().join("\n")));
    }
    if let Some(pw) = &want.password {
        p.push(("password".into(), pw.clone()));
    }
    if let Some(pool) = &want.pool {
        p.push(("pool".into(), pool.clone()));
    }
    p
}

/// Settings in `want` only `root@pam` may set, as (attribute path, why), for naming
/// them when Proxmox refuses a request.
pub fn root_only_settings(want: &CtModel) -> Vec<(String, String)> {
    let mut out = vec![];
    let flags = wanted_flags(want);
    let k8s = want.kubernetes_node == Some(true);
    for (f, v) in &flags {
        if *v != Some(true) {
            continue;
        }
        let path = if k8s && KUBERNETES_FLAGS.contains(f) && want.features.as_ref().and_then(|x| x.get(f)).is_none() {
            format!("kubernetes_node (features.{f})")
        } else {
            format!("features.{f}")
        };
        if want.unprivileged == Some(false) {
            out.push((path, "a privileged container's feature flags may only be changed by root@pam".into()));
        } else if *f != "nesting" {
            out.push((path, format!("only root@pam may change the feature flag {f} (nesting is the only exception)")));
        }
    }
    out
}
