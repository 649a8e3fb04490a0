//! `/nodes/{node}/lxc/...`: container lifecycle with PVE's semantics (tasks named
//! `vzcreate`, `vzclone`, ...; `lock: create` while a create or clone runs; the
//! config written back normalised; settings only `root@pam` may change refused with
//! PVE's words), and `/nodes/{node}/storage/{storage}/content` for OS templates.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::cluster::vm_uptime;
use super::{check_node, flag, vmid_of};
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::faults;
use crate::guest_hook::{self, Action};
use crate::http::{ok, Args};
use crate::locks::{self, check_config_lock};
use crate::lxc::{self, Ep};
use crate::params::{self, Params, Ty};
use crate::sim::{now, SharedSim, Sim};
use crate::store::{config_digest, random_mac, summarize, GuestKind, State as St, Vm};
use crate::tasks::{self, Finish, TaskSpec};

const CT: GuestKind = GuestKind::Lxc;

fn internal(e: String) -> ApiError {
    ApiError::internal(e)
}

fn ct_exists(sim: &Sim, node: &str, vmid: u32) -> ApiResult<Vm> {
    sim.read(|st| st.guest_on(CT, node, vmid).cloned()).map_err(internal)
}

fn is_template(vm: &Vm) -> bool {
    vm.config.get("template").is_some_and(|t| t == "1")
}

fn unprivileged(vm: &Vm) -> bool {
    vm.config.get("unprivileged").is_some_and(|u| u == "1")
}

/// Only a `root@pam` login ticket is root for PVE's checks; an API token is not,
/// even one of root@pam (its user is `root@pam!tokenid`).
fn is_root(ident: &Identity) -> bool {
    matches!(ident, Identity::Ticket(u) if u == "root@pam")
}

fn task(st: &mut St, node: &str, kind: &'static str, vmid: u32, ident: &Identity, log: Vec<String>) -> String {
    tasks::register(
        st,
        &TaskSpec { node: node.into(), kind, id: vmid.to_string(), user: ident.upid_user().into(), log },
    )
}

fn status_json(vm: &Vm, st: &St) -> Value {
    let s = summarize(vm, &st.volumes);
    let swap = vm.config.get("swap").and_then(|v| v.parse::<u64>().ok()).unwrap_or(512);
    let mut v = json!({
        "vmid": vm.vmid, "type": "lxc",
        "status": if vm.running { "running" } else { "stopped" },
        "cpus": vm.config.get("cores").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
        "maxmem": s.maxmem, "maxswap": swap << 20, "maxdisk": s.maxdisk,
        "mem": if vm.running { s.maxmem / 4 } else { 0 }, "cpu": 0, "disk": 0,
        "uptime": vm_uptime(vm), "diskread": 0, "diskwrite": 0, "netin": 0, "netout": 0,
    });
    if let Some(h) = vm.config.get("hostname") {
        v["name"] = json!(h);
    }
    for key in ["tags", "lock"] {
        if let Some(x) = vm.config.get(key) {
            v[key] = json!(x);
        }
    }
    if is_template(vm) {
        v["template"] = json!(1);
    }
    v
}

pub async fn list(State(sim): State<SharedSim>, Path(node): Path<String>, args: Args) -> ApiResult<Response> {
    lxc::verify(Ep::List, &args.with_path(&[("node", &node)]))?;
    check_node(&sim, &node)?;
    let list: Vec<Value> =
        sim.read(|st| st.vms.values().filter(|v| v.node == node && v.kind == CT).map(|v| status_json(v, st)).collect());
    Ok(ok(Value::Array(list)))
}

/// `GET .../config`: what the config file holds, integers and booleans as numbers.
pub async fn get_config(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::ConfigGet, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vm = ct_exists(&sim, &node, vmid_of(&p, "vmid"))?;
    if let Some(s) = p.get("snapshot") {
        return Err(internal(format!("snapshot '{s}' does not exist")));
    }
    let mut out = serde_json::Map::new();
    for (k, v) in &vm.config {
        let typed = match lxc::config_key_type(k) {
            Some(Ty::Bool) | Some(Ty::Int(..)) => v.parse::<i64>().ok().map(|n| json!(n)),
            Some(Ty::Num(..)) => v.parse::<f64>().ok().map(|n| json!(n)),
            _ => None,
        };
        out.insert(k.clone(), typed.unwrap_or_else(|| json!(v)));
    }
    out.insert("digest".into(), json!(config_digest(&vm.config)));
    Ok(ok(Value::Object(out)))
}

/// Writes verified config parameters into the container's config the way PVE
/// stores them: volumes allocated for `STORAGE:SIZE`, property strings normalised,
/// tags sorted. Returns log lines.
fn write_config(sim: &Sim, st: &mut St, node: &str, vmid: u32, p: &Params) -> Result<Vec<String>, String> {
    let mut log = vec![];
    let mut sets = vec![];
    for (k, v) in p {
        if lxc::config_key_type(k).is_none() {
            continue; // node, vmid, ostemplate, password, pool, start, ...
        }
        let value = if lxc::is_mount_key(k) {
            let mut m = lxc::parse_mount(k, v)?;
            let volume = m.get("volume").cloned().unwrap_or_default();
            if let Some((storage, gib)) = lxc::alloc_request(&volume) {
                let bytes = (gib * (1u64 << 30) as f64).round() as u64;
                let volid = st.alloc_volume_for("rootdir", &sim.cfg.storages, node, storage, vmid, bytes)?;
                log.push(format!("  {k}: successfully created volume '{volid}'"));
                m.insert("volume".into(), volid);
                m.insert("size".into(), params::format_size(bytes));
            } else if !volume.starts_with('/') {
                let vol = st.volumes.get(&volume).ok_or_else(|| format!("volume '{volume}' does not exist"))?;
                m.entry("size".into()).or_insert_with(|| params::format_size(vol.size));
            }
            lxc::print_mount(&m)
        } else if k.starts_with("net") && params::split_indexed(k).is_some() {
            lxc::print_net(lxc::parse_net(v)?, random_mac)
        } else if k == "features" {
            lxc::print_features(&lxc::parse_features(v)?)
        } else if k == "tags" {
            params::normalize_tags(v)
        } else {
            v.clone()
        };
        sets.push((k.clone(), value));
    }
    let deletes: Vec<String> =
        p.get("delete").map(|d| params::split_list(d).into_iter().map(String::from).collect()).unwrap_or_default();
    let vm = st.guest_on_mut(CT, node, vmid)?;
    let mut dropped = vec![];
    let mut destroyed = vec![];
    for d in &deletes {
        match vm.config.remove(d) {
            Some(old) if lxc::is_mount_key(d) => dropped.push((d.clone(), old)),
            Some(old) if d.starts_with("unused") => destroyed.push(old),
            Some(_) => {}
            None => log.push(format!("cannot delete '{d}' - not set in current configuration!")),
        }
    }
    for (k, v) in sets {
        vm.config.insert(k, v);
    }
    // As PVE's vmconfig_apply_pending: a removed mount point's volume becomes
    // `unusedN` (kept); deleting an `unusedN` entry destroys its volume unless the
    // config still uses it.
    for (key, old) in dropped {
        // Parsed as its own key: `mp=` is not a `rootfs` option.
        let volume = lxc::parse_mount(&key, &old).ok().and_then(|m| m.get("volume").cloned()).unwrap_or(old);
        let vm = st.guest_on_mut(CT, node, vmid)?;
        if uses_volume(vm, &volume) {
            continue;
        }
        let slot = (0..256).map(|n| format!("unused{n}")).find(|k| !vm.config.contains_key(k)).unwrap_or_default();
        vm.config.insert(slot, volume);
    }
    for volume in destroyed {
        let vm = st.guest_on(CT, node, vmid)?;
        if !uses_volume(vm, &volume) && st.volumes.remove(&volume).is_some() {
            log.push(format!("  removed volume '{volume}'"));
        }
    }
    Ok(log)
}

/// Whether a mount point or `unusedN` entry of the config refers to `volume`.
fn uses_volume(vm: &Vm, volume: &str) -> bool {
    vm.config.iter().filter(|(k, _)| lxc::is_mount_key(k) || k.starts_with("unused")).any(|(k, v)| {
        let vol = if k.starts_with("unused") {
            v.clone()
        } else {
            lxc::parse_mount(k, v).ok().and_then(|m| m.get("volume").cloned()).unwrap_or_default()
        };
        vol == volume
    })
}

fn deletes_of(p: &Params) -> Vec<&str> {
    p.get("delete").map(|d| params::split_list(d)).unwrap_or_default()
}

/// `PUT .../config` (synchronous for containers) under the config lock.
pub async fn put_config(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Update, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let deletes = deletes_of(&p);
    for d in &deletes {
        if p.contains_key(*d) {
            return Err(ApiError::param("delete", format!("you can't use '-{d}' and '-delete {d}' at the same time")));
        }
    }
    if p.contains_key("revert") {
        return Err(internal("pve-sim: pending changes (revert) are not supported".into()));
    }
    if !p.keys().any(|k| lxc::config_key_type(k).is_some()) && deletes.is_empty() {
        return Err(internal("no options specified".into()));
    }
    let vm = ct_exists(&sim, &node, vmid)?;
    if p.contains_key("unprivileged") || deletes.contains(&"unprivileged") {
        return Err(internal("unable to modify read-only option: 'unprivileged'".into()));
    }
    if !is_root(&ident) {
        if let Some(why) = lxc::root_only_refusal(Some(&vm.config), &p, &deletes, unprivileged(&vm)) {
            return Err(ApiError::permission(&why));
        }
    }
    if faults::roll(sim.faults().lock_contention_pct) {
        return Err(internal(faults::ct_lock_timeout_msg(vmid)));
    }
    locks::exclusive(&sim, vmid, |st| {
        let vm = st.guest_on(CT, &node, vmid).map_err(internal)?;
        if let Some(d) = p.get("digest") {
            if *d != config_digest(&vm.config) {
                return Err(internal(
                    "detected modified configuration - file changed by other user? Try again.".into(),
                ));
            }
        }
        check_ct_lock(vm).map_err(internal)?;
        for k in p.keys().filter(|k| lxc::is_mount_key(k)) {
            if vm.config.contains_key(k) && k == "rootfs" {
                return Err(internal("unable to modify read-only option: 'rootfs'".into()));
            }
        }
        write_config(&sim, st, &node, vmid, &p).map_err(internal)
    })
    .await?;
    Ok(ok(Value::Null))
}

fn check_ct_lock(vm: &Vm) -> Result<(), String> {
    match vm.config.get("lock") {
        Some(l) => Err(format!("CT is locked ({l})")),
        None => Ok(()),
    }
}

/// `POST /nodes/{node}/lxc`: a `vzcreate` task extracting `ostemplate`; the new
/// config carries `lock: create` until the task ends.
pub async fn create(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path(node): Path<String>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Create, &args.with_path(&[("node", &node)]))?;
    check_node(&sim, &node)?;
    if flag(&p, "restore").unwrap_or(false) {
        return Err(internal("pve-sim: restore from backup is not supported".into()));
    }
    let vmid = vmid_of(&p, "vmid");
    let ostemplate = p["ostemplate"].clone();
    if !lxc::OS_TEMPLATES.iter().any(|(v, _)| *v == ostemplate) {
        return Err(internal(format!("volume '{ostemplate}' does not exist")));
    }
    // For creation PVE defaults to unprivileged.
    let unpriv = flag(&p, "unprivileged").unwrap_or(true);
    if !is_root(&ident) {
        if let Some(why) = lxc::root_only_refusal(None, &p, &[], unpriv) {
            return Err(ApiError::permission(&why));
        }
    }
    if let Some(keys) = p.get("ssh-public-keys") {
        for line in keys.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let kind = line.split_whitespace().next().unwrap_or("");
            if !(kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-")) {
                return Err(internal(format!("unable to parse ssh key '{line}'")));
            }
        }
    }
    let start = flag(&p, "start").unwrap_or(false);
    let upid = sim.mutate(|st| -> ApiResult<String> {
        if let Some(existing) = st.vms.get(&vmid) {
            return Err(internal(format!(
                "{} {vmid} already exists on node '{}'",
                existing.kind.label(),
                existing.node
            )));
        }
        if let Some(pool) = p.get("pool") {
            if !st.pools.contains_key(pool) {
                return Err(internal(format!("pool '{pool}' does not exist")));
            }
        }
        st.vms.insert(
            vmid,
            Vm { kind: CT, vmid, node: node.clone(), config: BTreeMap::new(), running: false, started_at: None },
        );
        let mut p = p.clone();
        // Without rootfs PVE allocates 4 GiB on `storage` (default `local`).
        let storage = p.get("storage").cloned().unwrap_or_else(|| "local".into());
        p.entry("rootfs".into()).or_insert_with(|| format!("{storage}:4"));
        p.insert("unprivileged".into(), if unpriv { "1" } else { "0" }.into());
        let log = match write_config(&sim, st, &node, vmid, &p) {
            Ok(log) => log,
            Err(e) => {
                st.destroy_vm(vmid, true);
                return Err(internal(e));
            }
        };
        let vm = st.vms.get_mut(&vmid).expect("inserted above");
        vm.config.entry("hostname".into()).or_insert_with(|| format!("CT{vmid}"));
        vm.config.entry("arch".into()).or_insert_with(|| "amd64".into());
        vm.config.entry("ostype".into()).or_insert_with(|| lxc::ostype_of(&ostemplate).into());
        vm.config.insert("lock".into(), "create".into());
        if let Some(pool) = p.get("pool") {
            st.pools.get_mut(pool).expect("checked above").members.insert(vmid);
        }
        let mut log = log;
        log.push(format!("extracting archive '{ostemplate}'"));
        Ok(task(st, &node, "vzcreate", vmid, &ident, log))
    })?;
    guest_hook::ct_created(&sim, vmid, p.get("ssh-public-keys").map(String::as_str)).map_err(internal)?;
    let finish: Finish = Box::new(move |_sim, st| {
        let vm = st.guest_on_mut(CT, &node, vmid)?;
        vm.config.remove("lock");
        let mut log = vec!["Total bytes read: 524288000 (500MiB, 250MiB/s)".to_string()];
        if start {
            vm.running = true;
            vm.started_at = Some(now());
            log.push(format!("CT {vmid} started"));
        }
        Ok(log)
    });
    let guest = start.then_some((Action::Start, vmid));
    tasks::run_guest(&sim, upid.clone(), None, std::time::Duration::ZERO, guest, finish);
    Ok(ok(json!(upid)))
}

/// `POST .../clone`: `vzclone` task; the new container holds `lock: create`, the
/// source's config lock is held shared. Templates are linked-cloned unless `full`.
pub async fn clone(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Clone, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let newid = vmid_of(&p, "newid");
    if p.get("target").is_some_and(|t| *t != node) {
        return Err(internal("pve-sim: clone to another node is not supported for containers".into()));
    }
    if faults::roll(sim.faults().lock_contention_pct) {
        return Err(internal(faults::ct_lock_timeout_msg(vmid)));
    }
    let upid = sim.mutate(|st| -> ApiResult<String> {
        let src = st.guest_on(CT, &node, vmid).map_err(internal)?.clone();
        check_ct_lock(&src).map_err(internal)?;
        if let Some(existing) = st.vms.get(&newid) {
            return Err(internal(format!(
                "{} {newid} already exists on node '{}'",
                existing.kind.label(),
                existing.node
            )));
        }
        let full = !is_template(&src) || flag(&p, "full").unwrap_or(false);
        if !full && p.contains_key("storage") {
            return Err(ApiError::param("storage", "parameter 'storage' not allowed for linked clones"));
        }
        if let Some(pool) = p.get("pool") {
            if !st.pools.contains_key(pool) {
                return Err(internal(format!("pool '{pool}' does not exist")));
            }
        }
        let mut log = vec![];
        let mut conf: BTreeMap<String, String> = src
            .config
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "template" | "lock" | "description") && !k.starts_with("unused"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in conf.iter_mut() {
            if lxc::is_mount_key(k) {
                let Ok(mut m) = lxc::parse_mount(k, v) else { continue };
                let volume = m.get("volume").cloned().unwrap_or_default();
                let Some(vol) = st.volumes.get(&volume).cloned() else { continue };
                let (storage, name) = volume.split_once(':').unwrap_or_default();
                let target = p.get("storage").map_or(storage, |s| s.as_str()).to_string();
                let volid = if full {
                    let id = st
                        .alloc_volume_for("rootdir", &sim.cfg.storages, &node, &target, newid, vol.size)
                        .map_err(internal)?;
                    log.push(format!("create full clone of mountpoint {k} ({volume})"));
                    id
                } else {
                    let base = name.split('/').next().unwrap_or(name);
                    let n = (0..)
                        .find(|n| !st.volumes.keys().any(|v| v.ends_with(&format!("vm-{newid}-disk-{n}"))))
                        .unwrap_or(0);
                    let id = format!("{storage}:{base}/vm-{newid}-disk-{n}");
                    st.volumes
                        .insert(id.clone(), crate::store::Volume { node: node.clone(), vmid: newid, size: vol.size });
                    log.push(format!("create linked clone of mount point {k} ({volume})"));
                    id
                };
                m.insert("volume".into(), volid);
                *v = lxc::print_mount(&m);
            } else if k.starts_with("net") && params::split_indexed(k).is_some() {
                if let Ok(mut n) = lxc::parse_net(v) {
                    n.insert("hwaddr".into(), random_mac());
                    *v = lxc::print_net(n, random_mac);
                }
            }
        }
        if let Some(h) = p.get("hostname") {
            conf.insert("hostname".into(), h.clone());
        }
        if let Some(d) = p.get("description") {
            conf.insert("description".into(), d.clone());
        }
        conf.insert("lock".into(), "create".into());
        st.vms.insert(
            newid,
            Vm { kind: CT, vmid: newid, node: node.clone(), config: conf, running: false, started_at: None },
        );
        if let Some(pool) = p.get("pool") {
            st.pools.get_mut(pool).expect("checked above").members.insert(newid);
        }
        *st.shared_locks.entry(vmid).or_insert(0) += 1;
        Ok(task(st, &node, "vzclone", vmid, &ident, log))
    })?;
    guest_hook::ct_cloned(&sim, vmid, newid).map_err(internal)?;
    let finish: Finish = Box::new(move |_sim, st| {
        if let Some(n) = st.shared_locks.get_mut(&vmid) {
            *n = n.saturating_sub(1);
        }
        if let Some(vm) = st.vms.get_mut(&newid) {
            vm.config.remove("lock");
        }
        Ok(vec![])
    });
    tasks::run(&sim, upid.clone(), None, finish);
    Ok(ok(json!(upid)))
}

/// `POST .../template`: converts a stopped container (its volumes become `base-`).
pub async fn template(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Guest, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    locks::exclusive(&sim, vmid, |st| {
        let vm = st.guest_on(CT, &node, vmid).map_err(internal)?.clone();
        check_ct_lock(&vm).map_err(internal)?;
        if is_template(&vm) {
            return Err(internal("CT is already a template".into()));
        }
        if vm.running {
            return Err(internal("CT is running".into()));
        }
        let mut conf = vm.config.clone();
        for (k, v) in conf.iter_mut().filter(|(k, _)| lxc::is_mount_key(k)) {
            let Ok(mut m) = lxc::parse_mount(k, v) else { continue };
            let volume = m.get("volume").cloned().unwrap_or_default();
            let base = volume.replacen(&format!(":vm-{vmid}-disk-"), &format!(":base-{vmid}-disk-"), 1);
            if let Some(vol) = st.volumes.remove(&volume) {
                st.volumes.insert(base.clone(), vol);
            }
            m.insert("volume".into(), base);
            *v = lxc::print_mount(&m);
        }
        conf.insert("template".into(), "1".into());
        st.guest_on_mut(CT, &node, vmid).map_err(internal)?.config = conf;
        Ok(())
    })
    .await?;
    Ok(ok(Value::Null))
}

/// `PUT .../resize`: grows `rootfs` or `mpN` (`+N` or absolute); shrinking fails.
pub async fn resize(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Resize, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let disk = p["disk"].clone();
    if !lxc::is_mount_key(&disk) {
        return Err(ApiError::param(
            "disk",
            format!("value '{disk}' does not have a value in the enumeration 'rootfs, mp0, ...'"),
        ));
    }
    let size = p["size"].clone();
    let grow = size.starts_with('+');
    let bytes = params::parse_size(size.trim_start_matches('+'))
        .ok_or_else(|| ApiError::param("size", "value does not match the regex pattern"))?;
    let vmid = vmid_of(&p, "vmid");
    let vm = ct_exists(&sim, &node, vmid)?;
    check_ct_lock(&vm).map_err(internal)?;
    let upid = sim.mutate(|st| task(st, &node, "resize", vmid, &ident, vec![]));
    let finish: Finish = Box::new(move |_sim, st| {
        let vm = st.guest_on(CT, &node, vmid)?;
        check_ct_lock(vm)?;
        let value = vm.config.get(&disk).ok_or_else(|| format!("unable to resize '{disk}' - not set"))?;
        let mut m = lxc::parse_mount(&disk, value)?;
        let volume = m.get("volume").cloned().unwrap_or_default();
        let cur = st.volumes.get(&volume).map(|v| v.size).ok_or_else(|| format!("volume '{volume}' does not exist"))?;
        let new = if grow { cur + bytes } else { bytes };
        if new < cur {
            return Err("unable to shrink disk size".into());
        }
        if new == cur {
            return Ok(vec![]);
        }
        if let Some(v) = st.volumes.get_mut(&volume) {
            v.size = new;
        }
        m.insert("size".into(), params::format_size(new));
        st.guest_on_mut(CT, &node, vmid)?.config.insert(disk.clone(), lxc::print_mount(&m));
        Ok(vec![format!("  Size of logical volume changed to {}.", params::format_size(new))])
    });
    tasks::run(&sim, upid.clone(), Some(vmid), finish);
    Ok(ok(json!(upid)))
}

/// `DELETE /nodes/{node}/lxc/{vmid}`: `vzdestroy`; running containers only with `force`.
pub async fn destroy(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Delete, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let vm = ct_exists(&sim, &node, vmid)?;
    if vm.config.get("protection").is_some_and(|v| v == "1") {
        return Err(internal(format!("can't remove CT {vmid} - protection mode enabled")));
    }
    check_ct_lock(&vm).map_err(internal)?;
    let force = flag(&p, "force").unwrap_or(false);
    if vm.running && !force {
        return Err(internal(format!("CT {vmid} is running - destroy failed")));
    }
    let unreferenced = flag(&p, "destroy-unreferenced-disks").unwrap_or(false);
    let upid = sim.mutate(|st| task(st, &node, "vzdestroy", vmid, &ident, vec![]));
    let finish: Finish = Box::new(move |_sim, st| {
        let vm = st.guest_on(CT, &node, vmid)?.clone();
        check_ct_lock(&vm)?;
        if vm.running && !force {
            return Err(format!("CT {vmid} is running - destroy failed"));
        }
        if let Some(id) = st.volumes.keys().find(|id| id.contains(&format!(":base-{vmid}-disk-")) && id.contains('/')) {
            let base = id.split('/').next().unwrap_or(id);
            return Err(format!("base volume '{base}' is still in use by linked cloned"));
        }
        let mut log = vec![];
        for (k, v) in vm.config.iter().filter(|(k, _)| lxc::is_mount_key(k) || k.starts_with("unused")) {
            let volume = lxc::parse_mount(k, v).ok().and_then(|m| m.get("volume").cloned()).unwrap_or(v.clone());
            if st.volumes.remove(&volume).is_some() {
                log.push(format!("Removing image: {volume}"));
            }
        }
        log.extend(st.destroy_vm(vmid, unreferenced));
        Ok(log)
    });
    // The machine and its disk go before the task reports success, as for VMs.
    tasks::run_guest(&sim, upid.clone(), Some(vmid), std::time::Duration::ZERO, Some((Action::Destroy, vmid)), finish);
    Ok(ok(json!(upid)))
}

pub async fn status_current(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Guest, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let v = sim.read(|st| -> Result<Value, String> {
        let vm = st.guest_on(CT, &node, vmid)?;
        let mut v = status_json(vm, st);
        v["ha"] = json!({ "managed": 0 });
        Ok(v)
    });
    Ok(ok(v.map_err(internal)?))
}

/// `POST .../status/{start,stop,shutdown,reboot}`. PVE checks the power state
/// before the worker starts (`CT N already running`, `CT N not running`).
pub async fn status_action(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid, action)): Path<(String, String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let (ep, kind) = match action.as_str() {
        "start" => (Ep::Start, "vzstart"),
        "stop" => (Ep::Stop, "vzstop"),
        "shutdown" => (Ep::Shutdown, "vzshutdown"),
        "reboot" => (Ep::Reboot, "vzreboot"),
        _ => {
            return Err(ApiError::Status(
                axum::http::StatusCode::NOT_IMPLEMENTED,
                format!("Method 'POST /nodes/{node}/lxc/{vmid}/status/{action}' not implemented"),
            ))
        }
    };
    let p = lxc::verify(ep, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let vm = ct_exists(&sim, &node, vmid)?;
    check_config_lock(&vm, flag(&p, "skiplock").unwrap_or(false))
        .map_err(|_| internal(check_ct_lock(&vm).unwrap_err()))?;
    match action.as_str() {
        "start" if is_template(&vm) => return Err(internal("cannot start a template".into())),
        "start" if vm.running => return Err(internal(format!("CT {vmid} already running"))),
        "stop" | "shutdown" | "reboot" if !vm.running => return Err(internal(format!("CT {vmid} not running"))),
        _ => {}
    }
    let upid = sim.mutate(|st| task(st, &node, kind, vmid, &ident, vec![]));
    let guest = Action::from_api(&action).map(|a| (a, vmid));
    let finish: Finish = Box::new(move |_sim, st| {
        let vm = st.guest_on_mut(CT, &node, vmid)?;
        match action.as_str() {
            "start" => {
                vm.running = true;
                vm.started_at = Some(now());
            }
            "stop" | "shutdown" => {
                vm.running = false;
                vm.started_at = None;
            }
            _ => vm.started_at = Some(now()),
        }
        Ok(vec![])
    });
    tasks::run_guest(&sim, upid.clone(), Some(vmid), std::time::Duration::ZERO, guest, finish);
    Ok(ok(json!(upid)))
}

/// `GET .../interfaces`: what a running container's network namespace shows: `lo`
/// and one interface per `netN` (static `ip`, or a deterministic DHCP-like lease).
pub async fn interfaces(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Guest, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let vm = ct_exists(&sim, &node, vmid)?;
    if !vm.running {
        return Err(internal(format!("CT {vmid} not running")));
    }
    let mut out =
        vec![json!({ "name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128" })];
    let mut nets: Vec<(u32, BTreeMap<String, String>)> = vm
        .config
        .iter()
        .filter_map(|(k, v)| match params::split_indexed(k) {
            Some(("net", n)) => lxc::parse_net(v).ok().map(|m| (n, m)),
            _ => None,
        })
        .collect();
    nets.sort_by_key(|(n, _)| *n);
    for (n, m) in nets {
        let inet = match m.get("ip").map(String::as_str) {
            Some("manual") | None => None,
            Some("dhcp") => Some(format!("10.{}.{}.{}/16", 100 + n, (vmid >> 8) & 0xff, vmid & 0xff)),
            Some(cidr) => Some(cidr.to_string()),
        };
        let mut e = json!({ "name": m.get("name"), "hwaddr": m.get("hwaddr").map(|h| h.to_ascii_lowercase()) });
        if let Some(i) = inet {
            e["inet"] = json!(i);
        }
        out.push(e);
    }
    Ok(ok(Value::Array(out)))
}

/// `GET /nodes/{node}/storage/{storage}/content`: the OS templates in `local`
/// (`vztmpl`) and the guest volumes of the storage (`images`, `rootdir`).
pub async fn storage_content(
    State(sim): State<SharedSim>,
    Path((node, storage)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = lxc::verify(Ep::Content, &args.with_path(&[("node", &node), ("storage", &storage)]))?;
    check_node(&sim, &node)?;
    let def = sim
        .cfg
        .storages
        .iter()
        .find(|s| s.id == storage)
        .ok_or_else(|| internal(format!("storage '{storage}' does not exist")))?;
    let content = p.get("content").cloned();
    let want = |c: &str| content.as_deref().is_none_or(|w| w == c) && def.content.split(',').any(|x| x == c);
    let mut out = vec![];
    if want("vztmpl") {
        for (volid, size) in lxc::OS_TEMPLATES.iter().filter(|(v, _)| v.starts_with(&format!("{storage}:"))) {
            out.push(json!({ "volid": volid, "content": "vztmpl", "format": if volid.ends_with(".zst") { "tzst" } else { "txz" }, "size": size, "ctime": 1_727_000_000 }));
        }
    }
    let vmid_filter = p.get("vmid").and_then(|v| v.parse::<u32>().ok());
    sim.read(|st| {
        for (volid, v) in st.volumes.iter().filter(|(id, v)| id.starts_with(&format!("{storage}:")) && v.node == node) {
            if vmid_filter.is_some_and(|f| f != v.vmid) {
                continue;
            }
            let kind = st.vms.get(&v.vmid).map(|g| g.kind).unwrap_or_default();
            let c = if kind == CT { "rootdir" } else { "images" };
            if want(c) {
                out.push(json!({ "volid": volid, "content": c, "format": "raw", "size": v.size, "vmid": v.vmid }));
            }
        }
    });
    Ok(ok(Value::Array(out)))
}
