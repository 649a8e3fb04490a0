//! `/nodes/{node}/qemu/...`: VM lifecycle.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::cluster::vm_uptime;
use super::{check_node, flag, vmid_of};
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::http::{ok, Args};
use crate::locks::{self, check_config_lock};
use crate::params::{self, verify, Endpoint, Params, Ty};
use crate::sim::{now, SharedSim, Sim};
use crate::store::{config_digest, random_mac, summarize, GuestKind, State as St, Vm};
use crate::tasks::{self, Finish, TaskSpec};
use crate::{faults, guest_hook};

fn internal(e: String) -> ApiError {
    ApiError::internal(e)
}

fn vm_exists(sim: &Sim, node: &str, vmid: u32) -> ApiResult<Vm> {
    sim.read(|st| st.vm_on(node, vmid).cloned()).map_err(internal)
}

fn is_template(vm: &Vm) -> bool {
    vm.config.get("template").map(|t| t == "1").unwrap_or(false)
}

fn uuid4() -> String {
    let b: Vec<u8> = (0..16).map(|_| fastrand::u8(..)).collect();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][fastrand::usize(..4)],
        &h[17..20],
        &h[20..32]
    )
}

/// Registers a VM task inside the current mutation and returns its UPID.
fn task(st: &mut St, node: &str, kind: &'static str, vmid: u32, ident: &Identity, log: Vec<String>) -> String {
    tasks::register(
        st,
        &TaskSpec { node: node.into(), kind, id: vmid.to_string(), user: ident.upid_user().into(), log },
    )
}

pub async fn list(State(sim): State<SharedSim>, Path(node): Path<String>, args: Args) -> ApiResult<Response> {
    verify(Endpoint::VmList, &args.with_path(&[("node", &node)]))?;
    check_node(&sim, &node)?;
    let list: Vec<Value> = sim.read(|st| {
        st.vms
            .values()
            .filter(|vm| vm.node == node && vm.kind == GuestKind::Qemu)
            .map(|vm| vm_status_json(vm, st))
            .collect()
    });
    Ok(ok(Value::Array(list)))
}

fn vm_status_json(vm: &Vm, st: &St) -> Value {
    let s = summarize(vm, &st.volumes);
    let mut v = json!({
        "vmid": vm.vmid,
        "status": if vm.running { "running" } else { "stopped" },
        "qmpstatus": if vm.running { "running" } else { "stopped" },
        "cpus": s.cpus, "maxmem": s.maxmem, "maxdisk": s.maxdisk,
        "mem": if vm.running { s.maxmem / 2 } else { 0 }, "cpu": 0, "disk": 0,
        "uptime": vm_uptime(vm), "diskread": 0, "diskwrite": 0, "netin": 0, "netout": 0,
    });
    for key in ["name", "tags", "lock"] {
        if let Some(x) = vm.config.get(key) {
            v[key] = json!(x);
        }
    }
    if is_template(vm) {
        v["template"] = json!(1);
    }
    if vm.running {
        v["pid"] = json!(100_000 + vm.vmid);
    }
    v
}

/// `GET .../config`: only what is in the config file, plus `digest`.
/// Integer/boolean/number keys are emitted as JSON numbers like PVE does.
pub async fn get_config(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::VmConfigGet, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vm = vm_exists(&sim, &node, vmid_of(&p, "vmid"))?;
    if let Some(s) = p.get("snapshot") {
        return Err(internal(format!("snapshot '{s}' does not exist")));
    }
    let mut out = serde_json::Map::new();
    for (k, v) in &vm.config {
        let typed = match params::config_key_type(k) {
            Some(Ty::Bool) | Some(Ty::Int(..)) => v.parse::<i64>().ok().map(|n| json!(n)),
            Some(Ty::Num(..)) => v.parse::<f64>().ok().map(|n| json!(n)),
            _ => None,
        };
        out.insert(k.clone(), typed.unwrap_or_else(|| json!(v)));
    }
    out.insert("digest".into(), json!(config_digest(&vm.config)));
    Ok(ok(Value::Object(out)))
}

/// Checks PVE performs on update parameters before touching the config.
fn check_update(p: &Params) -> ApiResult<()> {
    let deletes: Vec<&str> = p.get("delete").map(|d| params::split_list(d)).unwrap_or_default();
    for d in &deletes {
        if p.contains_key(*d) {
            return Err(ApiError::param("delete", format!("you can't use '-{d}' and '-delete {d}' at the same time")));
        }
    }
    if p.contains_key("revert") {
        return Err(internal("pve-sim: pending changes (revert) are not supported".into()));
    }
    let changes = p.keys().any(|k| params::config_key_type(k).is_some()) || !deletes.is_empty();
    if !changes {
        return Err(internal("no options specified".into()));
    }
    Ok(())
}

/// The update itself (shared by sync PUT and the async POST's task).
fn do_update(sim: &Sim, st: &mut St, node: &str, vmid: u32, p: &Params) -> Result<Vec<String>, String> {
    let vm = st.vm_on(node, vmid)?;
    if let Some(d) = p.get("digest") {
        if *d != config_digest(&vm.config) {
            return Err("detected modified configuration - file changed by other user? Try again.".into());
        }
    }
    check_config_lock(vm, flag(p, "skiplock").unwrap_or(false))?;
    let was_template = is_template(vm);
    match p.get("template").map(String::as_str) {
        Some("0") if was_template => return Err("you can't convert a template to a VM".into()),
        Some("1") if vm.running => return Err("you can't convert a running VM to a template".into()),
        _ => {}
    }
    let log = st.apply_config(&sim.cfg.storages, node, vmid, p, flag(p, "force").unwrap_or(false))?;
    if !was_template && p.get("template").map(|t| t == "1").unwrap_or(false) {
        st.make_template(vmid);
    }
    Ok(log)
}

pub async fn put_config(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::ConfigPut, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    check_update(&p)?;
    let vmid = vmid_of(&p, "vmid");
    vm_exists(&sim, &node, vmid)?;
    locks::exclusive(&sim, vmid, |st| do_update(&sim, st, &node, vmid, &p).map_err(internal)).await?;
    Ok(ok(Value::Null))
}

pub async fn post_config(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::ConfigPost, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    check_update(&p)?;
    let vmid = vmid_of(&p, "vmid");
    vm_exists(&sim, &node, vmid)?;
    let upid = sim.mutate(|st| task(st, &node, "qmconfig", vmid, &ident, vec![]));
    let finish: Finish = Box::new(move |sim, st| do_update(sim, st, &node, vmid, &p));
    tasks::run(&sim, upid.clone(), Some(vmid), finish);
    Ok(ok(json!(upid)))
}

pub async fn create(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path(node): Path<String>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::Create, &args.with_path(&[("node", &node)]))?;
    check_node(&sim, &node)?;
    if p.contains_key("archive") {
        return Err(internal("pve-sim: restore from archive is not supported".into()));
    }
    let vmid = vmid_of(&p, "vmid");
    let start = flag(&p, "start").unwrap_or(false);
    let template = flag(&p, "template").unwrap_or(false);
    if start && template {
        return Err(internal("you can't start a vm if it's a template".into()));
    }
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
            Vm {
                kind: GuestKind::Qemu,
                vmid,
                node: node.clone(),
                config: BTreeMap::new(),
                running: false,
                started_at: None,
            },
        );
        let log = match st.apply_config(&sim.cfg.storages, &node, vmid, &p, false) {
            Ok(log) => log,
            Err(e) => {
                st.destroy_vm(vmid, true);
                return Err(internal(e));
            }
        };
        // PVE writes these identity keys into every new config.
        let vm = st.vms.get_mut(&vmid).expect("inserted above");
        vm.config.entry("smbios1".into()).or_insert_with(|| format!("uuid={}", uuid4()));
        vm.config.entry("vmgenid".into()).or_insert_with(uuid4);
        vm.config.entry("meta".into()).or_insert_with(|| format!("creation-qemu=9.2.0,ctime={}", now() as u64));
        if template {
            st.make_template(vmid);
        }
        if let Some(pool) = p.get("pool") {
            st.pools.get_mut(pool).expect("checked above").members.insert(vmid);
        }
        Ok(task(st, &node, "qmcreate", vmid, &ident, log))
    })?;
    let finish: Finish = Box::new(move |_sim, st| {
        if start {
            let vm = st.vms.get_mut(&vmid).ok_or_else(|| format!("VM {vmid} vanished"))?;
            vm.running = true;
            vm.started_at = Some(now());
            return Ok(vec![format!("VM {vmid} started")]);
        }
        Ok(vec![])
    });
    let guest = start.then_some((guest_hook::Action::Start, vmid));
    tasks::run_guest(&sim, upid.clone(), None, std::time::Duration::ZERO, guest, finish);
    Ok(ok(json!(upid)))
}

pub async fn clone(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::Clone, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let newid = vmid_of(&p, "newid");
    let target = p.get("target").cloned().unwrap_or_else(|| node.clone());
    check_node(&sim, &target)?;
    if let Some(s) = p.get("storage") {
        if !sim.cfg.storages.iter().any(|d| d.id == *s) {
            return Err(internal(format!("storage '{s}' does not exist")));
        }
    }
    // Clone takes the source's config lock (shared) synchronously.
    if faults::roll(sim.faults().lock_contention_pct) {
        return Err(internal(faults::lock_timeout_msg(vmid)));
    }
    let (upid, log) = sim.mutate(|st| -> ApiResult<(String, Vec<String>)> {
        let src = st.vm_on(&node, vmid).map_err(internal)?.clone();
        check_config_lock(&src, false).map_err(internal)?;
        if let Some(s) = p.get("snapname") {
            return Err(internal(format!("snapshot '{s}' does not exist")));
        }
        if let Some(existing) = st.vms.get(&newid) {
            return Err(internal(format!(
                "{} {newid} already exists on node '{}'",
                existing.kind.label(),
                existing.node
            )));
        }
        let template = is_template(&src);
        // Normal VMs are always fully cloned; templates default to linked.
        let full = !template || flag(&p, "full").unwrap_or(false);
        if !full && p.contains_key("storage") {
            return Err(ApiError::param("storage", "parameter 'storage' not allowed for linked clones"));
        }
        if !full && p.contains_key("format") {
            return Err(ApiError::param("format", "parameter 'format' not allowed for linked clones"));
        }
        if target != node {
            let local = src.config.iter().filter(|(k, _)| params::is_disk_key(k)).any(|(_, v)| {
                let Ok(d) = params::parse_drive(v) else { return false };
                let storage = d.file.split(':').next().unwrap_or("");
                st.volumes.contains_key(&d.file) && sim.cfg.storages.iter().any(|s| s.id == storage && !s.shared)
            });
            if local {
                return Err(internal(format!("can't clone VM to node '{target}' (VM uses local storage)")));
            }
        }
        if let Some(pool) = p.get("pool") {
            if !st.pools.contains_key(pool) {
                return Err(internal(format!("pool '{pool}' does not exist")));
            }
        }
        let mut log = vec![];
        let disks = st
            .clone_disks(&sim.cfg.storages, &src, newid, &target, full, p.get("storage").map(String::as_str), &mut log)
            .map_err(internal)?;
        let mut conf: BTreeMap<String, String> = src
            .config
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "template" | "lock" | "name" | "description") && !k.starts_with("unused")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        conf.extend(disks);
        // New identity: fresh MACs, vmgenid and SMBIOS uuid, like PVE.
        for (k, v) in conf.iter_mut() {
            if k.starts_with("net") && params::split_indexed(k).is_some() {
                if let Ok(mut n) = params::parse_net(v) {
                    n.macaddr = Some(random_mac());
                    *v = n.print();
                }
            }
        }
        conf.insert("vmgenid".into(), uuid4());
        conf.insert("smbios1".into(), format!("uuid={}", uuid4()));
        let name = p.get("name").cloned().unwrap_or_else(|| {
            format!("Copy-of-VM-{}", src.config.get("name").cloned().unwrap_or_else(|| vmid.to_string()))
        });
        conf.insert("name".into(), name);
        if let Some(d) = p.get("description").or(src.config.get("description")) {
            conf.insert("description".into(), d.clone());
        }
        conf.insert("lock".into(), "clone".into());
        st.vms.insert(
            newid,
            Vm {
                kind: GuestKind::Qemu,
                vmid: newid,
                node: target.clone(),
                config: conf,
                running: false,
                started_at: None,
            },
        );
        if let Some(pool) = p.get("pool") {
            st.pools.get_mut(pool).expect("checked above").members.insert(newid);
        }
        *st.shared_locks.entry(vmid).or_insert(0) += 1;
        let upid = tasks::register(
            st,
            &TaskSpec {
                node: node.clone(),
                kind: "qmclone",
                id: vmid.to_string(),
                user: ident.upid_user().into(),
                log: vec![],
            },
        );
        Ok((upid, log))
    })?;
    let finish: Finish = Box::new(move |_sim, st| {
        if let Some(n) = st.shared_locks.get_mut(&vmid) {
            *n = n.saturating_sub(1);
        }
        st.shared_locks.retain(|_, n| *n > 0);
        if let Some(vm) = st.vms.get_mut(&newid) {
            vm.config.remove("lock");
        }
        Ok(log)
    });
    tasks::run(&sim, upid.clone(), None, finish);
    Ok(ok(json!(upid)))
}

const RESIZABLE: &[(&str, u32)] = &[("ide", 3), ("scsi", 30), ("virtio", 15), ("sata", 5)];

pub async fn resize(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::Resize, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let disk = p["disk"].clone();
    let disk_ok = disk == "efidisk0"
        || disk == "tpmstate0"
        || matches!(params::split_indexed(&disk), Some((b, n)) if RESIZABLE.iter().any(|(rb, max)| *rb == b && n <= *max));
    if !disk_ok {
        return Err(ApiError::param("disk", format!("value '{disk}' does not have a value in the enumeration")));
    }
    let size = p["size"].clone();
    let (grow, amount) = match size.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, size.as_str()),
    };
    let bytes =
        params::parse_size(amount).ok_or_else(|| ApiError::param("size", "value does not match the regex pattern"))?;
    let vmid = vmid_of(&p, "vmid");
    vm_exists(&sim, &node, vmid)?;
    let upid = sim.mutate(|st| task(st, &node, "resize", vmid, &ident, vec![]));
    let finish: Finish = Box::new(move |_sim, st| {
        let vm = st.vm_on(&node, vmid)?;
        if let Some(d) = p.get("digest") {
            if *d != config_digest(&vm.config) {
                return Err("detected modified configuration - file changed by other user? Try again.".into());
            }
        }
        check_config_lock(vm, flag(&p, "skiplock").unwrap_or(false))?;
        let value = vm.config.get(&disk).ok_or_else(|| format!("disk '{disk}' does not exist"))?;
        let mut d = params::parse_drive(value)?;
        if d.is_cdrom() {
            return Err("you can't resize a cdrom".into());
        }
        let cur = st
            .volumes
            .get(&d.file)
            .map(|v| v.size)
            .or_else(|| d.opts.get("size").and_then(|s| params::parse_size(s)))
            .ok_or_else(|| format!("Could not determine current size of volume '{}'", d.file))?;
        let new = if grow { cur + bytes } else { bytes };
        if new < cur {
            return Err("shrinking disks is not supported".into());
        }
        if new == cur {
            return Ok(vec![]);
        }
        if let Some(v) = st.volumes.get_mut(&d.file) {
            v.size = new;
        }
        d.opts.insert("size".into(), params::format_size(new));
        let line = format!(
            "Size of volume '{}' changed from {} to {}.",
            d.file,
            params::format_size(cur),
            params::format_size(new)
        );
        st.vm_on_mut(&node, vmid)?.config.insert(disk.clone(), d.print());
        Ok(vec![line])
    });
    tasks::run(&sim, upid.clone(), Some(vmid), finish);
    Ok(ok(json!(upid)))
}

pub async fn destroy(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::Delete, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let skiplock = flag(&p, "skiplock").unwrap_or(false);
    let vm = vm_exists(&sim, &node, vmid)?;
    if vm.config.get("protection").map(|v| v == "1").unwrap_or(false) {
        return Err(internal(format!("can't remove VM {vmid} - protection mode enabled")));
    }
    check_config_lock(&vm, skiplock).map_err(internal)?;
    if vm.running {
        return Err(internal(format!("VM {vmid} is running - destroy failed")));
    }
    let purge = flag(&p, "purge").unwrap_or(false);
    let unreferenced = flag(&p, "destroy-unreferenced-disks").unwrap_or(false);
    let upid = sim.mutate(|st| task(st, &node, "qmdestroy", vmid, &ident, vec![]));
    let finish: Finish = Box::new(move |_sim, st| {
        let vm = st.vm_on(&node, vmid)?;
        check_config_lock(vm, skiplock)?;
        if vm.running {
            return Err(format!("VM {vmid} is running - destroy failed"));
        }
        // A template's base volumes cannot go while linked clones use them.
        if let Some(id) = st.volumes.keys().find(|id| id.contains(&format!(":base-{vmid}-disk-")) && id.contains('/')) {
            let base = id.split('/').next().unwrap_or(id);
            return Err(format!("base volume '{base}' is still in use by linked cloned"));
        }
        let mut log = st.destroy_vm(vmid, unreferenced);
        if purge {
            log.push(format!("purging VM {vmid} from related configurations.."));
        }
        Ok(log)
    });
    // The machine and its disk go before the task reports success. A template whose base
    // volumes are still used fails in the finish step; it never ran as a machine.
    let guest = (!is_template(&vm)).then_some((guest_hook::Action::Destroy, vmid));
    tasks::run_guest(&sim, upid.clone(), Some(vmid), std::time::Duration::ZERO, guest, finish);
    Ok(ok(json!(upid)))
}

pub async fn status_current(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::VmOnly, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let v = sim.read(|st| -> Result<Value, String> {
        let vm = st.vm_on(&node, vmid)?;
        let mut v = vm_status_json(vm, st);
        v["ha"] = json!({ "managed": 0 });
        if agent_enabled(vm) {
            v["agent"] = json!(1);
        }
        Ok(v)
    });
    Ok(ok(v.map_err(internal)?))
}

pub async fn status_action(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid, action)): Path<(String, String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let (ep, kind) = match action.as_str() {
        "start" => (Endpoint::Start, "qmstart"),
        "stop" => (Endpoint::Stop, "qmstop"),
        "shutdown" => (Endpoint::Shutdown, "qmshutdown"),
        "reboot" => (Endpoint::Reboot, "qmreboot"),
        _ => {
            return Err(ApiError::Status(
                axum::http::StatusCode::NOT_IMPLEMENTED,
                format!("Method 'POST /nodes/{node}/qemu/{vmid}/status/{action}' not implemented"),
            ))
        }
    };
    let p = verify(ep, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let skiplock = flag(&p, "skiplock").unwrap_or(false);
    let vm = vm_exists(&sim, &node, vmid)?;
    check_config_lock(&vm, skiplock).map_err(internal)?;
    // A shutdown waits for the guest to power off, at most `timeout` seconds (PVE's
    // default 60), then fails or, with forceStop, stops it hard with a warning.
    let timeout_ms = p.get("timeout").and_then(|t| t.parse::<u64>().ok()).unwrap_or(60).saturating_mul(1000);
    let force_stop = flag(&p, "forceStop").unwrap_or(false);
    let guest_ms = sim.cfg.guest_shutdown_ms;
    let extra = if action == "shutdown" && vm.running { guest_ms.min(timeout_ms) } else { 0 };
    let upid = sim.mutate(|st| task(st, &node, kind, vmid, &ident, vec![]));
    let action_name = action.clone();
    let finish: Finish = Box::new(move |_sim, st| {
        let vm = st.vm_on_mut(&node, vmid)?;
        check_config_lock(vm, skiplock)?;
        let mut log = vec![];
        match action.as_str() {
            "start" => {
                if is_template(vm) {
                    return Err("you can't start a vm if it's a template".into());
                }
                if vm.running {
                    return Err(format!("VM {vmid} already running"));
                }
                vm.running = true;
                vm.started_at = Some(now());
            }
            "stop" => {
                vm.running = false;
                vm.started_at = None;
            }
            "shutdown" => {
                if !vm.running {
                    return Err(format!("VM {vmid} not running"));
                }
                if guest_ms > timeout_ms {
                    if !force_stop {
                        return Err("VM quit/powerdown failed - got timeout".into());
                    }
                    log.push("WARN: VM still running - terminating now with SIGTERM".into());
                }
                vm.running = false;
                vm.started_at = None;
            }
            _ => {
                if !vm.running {
                    return Err(format!("VM {vmid} not running"));
                }
                vm.started_at = Some(now());
            }
        }
        Ok(log)
    });
    let guest = guest_hook::Action::from_api(&action_name).map(|a| (a, vmid));
    tasks::run_guest(&sim, upid.clone(), Some(vmid), std::time::Duration::from_millis(extra), guest, finish);
    Ok(ok(json!(upid)))
}

/// `POST .../migrate`: moves the VM (config and local volumes) to `target` in a
/// `qmigrate` task holding `lock: migrate`. Refused as PVE does: same node, running
/// without `online`, live migration of local disks without `with-local-disks`.
pub async fn migrate(
    State(sim): State<SharedSim>,
    Extension(ident): Extension<Identity>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::Migrate, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let target = p["target"].clone();
    if target == node {
        return Err(ApiError::param("target", "target is local node."));
    }
    check_node(&sim, &target)?;
    let vm = vm_exists(&sim, &node, vmid)?;
    check_config_lock(&vm, false).map_err(internal)?;
    let online = flag(&p, "online").unwrap_or(false);
    if vm.running && !online {
        return Err(internal("can't migrate running VM without --online".into()));
    }
    if faults::roll(sim.faults().lock_contention_pct) {
        return Err(internal(faults::lock_timeout_msg(vmid)));
    }
    let live = vm.running;
    let local_disks = flag(&p, "with-local-disks").unwrap_or(false);
    let upid = sim.mutate(|st| -> ApiResult<String> {
        let vm = st.vm_on_mut(&node, vmid).map_err(internal)?;
        check_config_lock(vm, false).map_err(internal)?;
        vm.config.insert("lock".into(), "migrate".into());
        let mut log = vec![format!("starting migration of VM {vmid} to node '{target}'")];
        if online && !live {
            log.push("VM isn't running. Doing offline migration instead.".into());
        }
        Ok(task(st, &node, "qmigrate", vmid, &ident, log))
    })?;
    let storages = sim.cfg.storages.clone();
    let finish: Finish = Box::new(move |_sim, st| {
        let vm = st.vm_on(&node, vmid)?.clone();
        let local: Vec<String> = vm
            .config
            .iter()
            .filter(|(k, _)| params::is_disk_key(k))
            .filter_map(|(_, v)| params::parse_drive(v).ok())
            .map(|d| d.file)
            .filter(|f| {
                let storage = f.split(':').next().unwrap_or("");
                st.volumes.contains_key(f) && storages.iter().any(|s| s.id == storage && !s.shared)
            })
            .collect();
        let unlock = |st: &mut St| {
            if let Ok(vm) = st.vm_on_mut(&node, vmid) {
                vm.config.remove("lock");
            }
        };
        if live && !local.is_empty() && !local_disks {
            unlock(st);
            return Err("can't live migrate attached local disks without with-local-disks option".into());
        }
        if live != st.vm_on(&node, vmid)?.running {
            unlock(st);
            return Err(format!("VM {vmid} changed its power state during migration"));
        }
        let mut log = vec![];
        for f in &local {
            if let Some(v) = st.volumes.get_mut(f) {
                v.node = target.clone();
                log.push(format!("copying local disk '{f}' to node '{target}'"));
            }
        }
        let vm = st.vms.get_mut(&vmid).expect("checked above");
        vm.node = target.clone();
        vm.config.remove("lock");
        log.push(format!("migration finished successfully (VM {vmid} now on '{target}')"));
        Ok(log)
    });
    tasks::run(&sim, upid.clone(), None, finish);
    Ok(ok(json!(upid)))
}

fn agent_enabled(vm: &Vm) -> bool {
    let Some(a) = vm.config.get("agent") else { return false };
    params::parse_prop(
        a,
        Some("enabled"),
        &["enabled", "freeze-fs", "freeze-fs-on-backup", "fstrim_cloned_disks", "guest-fsfreeze", "type"],
    )
    .ok()
    .and_then(|kv| kv.into_iter().find(|(k, _)| k == "enabled"))
    .and_then(|(_, v)| params::parse_bool(&v))
    .unwrap_or(false)
}

/// The checks every guest agent command makes first: an agent device, a running VM,
/// and an agent that has had time to start.
fn agent_ready(sim: &Sim, vm: &Vm, vmid: u32) -> ApiResult<()> {
    if !agent_enabled(vm) {
        return Err(internal("No QEMU guest agent configured".into()));
    }
    if !vm.running {
        return Err(internal(format!("VM {vmid} is not running")));
    }
    let up_ms = vm.started_at.map(|t| (now() - t) * 1000.0).unwrap_or(0.0);
    if up_ms < sim.cfg.agent_boot_ms as f64 {
        return Err(internal("QEMU guest agent is not running".into()));
    }
    Ok(())
}

/// Guest agent `file-read`: a file of the guest, read through the agent (PVE answers
/// `{content, truncated}`, at most `max-bytes`, 16 MiB by default). With a guest hook the
/// file comes from the guest machine; without one there is no guest file system.
pub async fn agent_file_read(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::AgentFileRead, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let vm = vm_exists(&sim, &node, vmid)?;
    agent_ready(&sim, &vm, vmid)?;
    let file = p.get("file").cloned().unwrap_or_default();
    let max = p.get("max-bytes").and_then(|v| v.parse::<usize>().ok()).unwrap_or(16 * 1024 * 1024);
    let bytes = guest_hook::file_read(&sim, vmid, &file).await.map_err(|e| internal(format!("Agent error: {e}")))?;
    let truncated = bytes.len() > max;
    let content = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    Ok(ok(json!({ "content": content, "truncated": truncated })))
}

/// Guest agent `network-get-interfaces`: loopback plus one interface per
/// `netN`, addressed from `ipconfigN` (static) or a deterministic
/// DHCP-like address derived from VMID and N.
pub async fn agent_interfaces(
    State(sim): State<SharedSim>,
    Path((node, vmid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::VmOnly, &args.with_path(&[("node", &node), ("vmid", &vmid)]))?;
    check_node(&sim, &node)?;
    let vmid = vmid_of(&p, "vmid");
    let vm = vm_exists(&sim, &node, vmid)?;
    agent_ready(&sim, &vm, vmid)?;
    let mut result = vec![json!({
        "name": "lo", "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [
            { "ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8 },
            { "ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128 },
        ],
        "statistics": stats(),
    })];
    let mut nets: Vec<(u32, params::NetDev)> = vm
        .config
        .iter()
        .filter_map(|(k, v)| match params::split_indexed(k) {
            Some(("net", n)) => params::parse_net(v).ok().map(|d| (n, d)),
            _ => None,
        })
        .collect();
    nets.sort_by_key(|(n, _)| *n);
    for (n, dev) in nets {
        let mut addrs = vec![];
        let ipcfg = vm.config.get(&format!("ipconfig{n}")).cloned().unwrap_or_default();
        let kv = params::parse_prop(&ipcfg, None, &["ip", "gw", "ip6", "gw6"]).unwrap_or_default();
        let get = |key: &str| kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        match get("ip").as_deref().and_then(params::parse_cidr) {
            Some((ip, prefix)) => {
                addrs.push(json!({ "ip-address": ip.to_string(), "ip-address-type": "ipv4", "prefix": prefix }))
            }
            None => addrs.push(json!({
                "ip-address": format!("10.{}.{}.{}", 100 + n, (vmid >> 8) & 0xff, vmid & 0xff),
                "ip-address-type": "ipv4", "prefix": 16,
            })),
        }
        if let Some((ip, prefix)) = get("ip6").as_deref().and_then(params::parse_cidr) {
            addrs.push(json!({ "ip-address": ip.to_string(), "ip-address-type": "ipv6", "prefix": prefix }));
        }
        let mac = dev.macaddr.clone().unwrap_or_default().to_ascii_lowercase();
        addrs.push(json!({ "ip-address": link_local(&mac), "ip-address-type": "ipv6", "prefix": 64 }));
        result.push(json!({
            "name": format!("ens{}", 18 + n),
            "hardware-address": mac,
            "ip-addresses": addrs,
            "statistics": stats(),
        }));
    }
    Ok(ok(json!({ "result": result })))
}

fn stats() -> Value {
    json!({ "rx-bytes": 0, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 0, "tx-bytes": 0, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 0 })
}

/// EUI-64 link-local address from a MAC, as a guest would configure.
fn link_local(mac: &str) -> String {
    let b: Vec<u8> = mac.split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
    if b.len() != 6 {
        return "fe80::1".into();
    }
    format!("fe80::{:02x}{:02x}:{:02x}ff:fe{:02x}:{:02x}{:02x}", b[0] ^ 0x02, b[1], b[2], b[3], b[4], b[5])
}
