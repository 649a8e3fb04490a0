//! Cluster- and node-level endpoints.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::{check_node, vmid_of};
use crate::error::{ApiError, ApiResult};
use crate::http::{ok, Args};
use crate::params::{verify, Endpoint};
use crate::sim::{now, SharedSim};
use crate::store::{summarize, Pool};

const NODE_MAXCPU: u64 = 16;
const NODE_MAXMEM: u64 = 64 << 30;
const STORAGE_TOTAL: u64 = 1 << 40;

pub async fn version(args: Args) -> ApiResult<Response> {
    verify(Endpoint::NoParams, &args.0)?;
    Ok(ok(json!({ "version": "9.1.1", "release": "9.1", "repoid": "42db4a6cf33dac83" })))
}

pub async fn ticket(State(sim): State<SharedSim>, args: Args) -> ApiResult<Response> {
    let p = verify(Endpoint::Ticket, &args.0)?;
    let res = sim.auth.login(&p["username"], &p["password"], p.get("realm").map(String::as_str));
    let (user, ticket, csrf) = match res {
        Ok(v) => v,
        Err(e) => {
            if sim.cfg.auth_fail_delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(sim.cfg.auth_fail_delay_ms)).await;
            }
            return Err(e);
        }
    };
    Ok(ok(json!({ "username": user, "ticket": ticket, "CSRFPreventionToken": csrf })))
}

fn uptime(sim: &SharedSim) -> u64 {
    // Pretend the nodes booted an hour before the simulator did.
    (now() - sim.boot_time) as u64 + 3600
}

/// Memory used on a node: the configured memory of its running VMs.
fn node_mem(sim: &SharedSim, node: &str) -> u64 {
    sim.read(|st| {
        st.vms.values().filter(|v| v.node == node && v.running).map(|v| summarize(v, &st.volumes).maxmem).sum::<u64>()
    }) + (2 << 30)
}

fn node_entry(sim: &SharedSim, node: &str) -> Value {
    json!({
        "node": node, "status": "online", "type": "node", "id": format!("node/{node}"),
        "cpu": 0.02, "maxcpu": NODE_MAXCPU, "mem": node_mem(sim, node), "maxmem": NODE_MAXMEM,
        "uptime": uptime(sim), "level": "", "ssl_fingerprint": sim.fingerprint,
    })
}

pub async fn nodes(State(sim): State<SharedSim>, args: Args) -> ApiResult<Response> {
    verify(Endpoint::NoParams, &args.0)?;
    Ok(ok(Value::Array(sim.cfg.nodes.iter().map(|n| node_entry(&sim, n)).collect())))
}

pub async fn node_status(State(sim): State<SharedSim>, Path(node): Path<String>, args: Args) -> ApiResult<Response> {
    verify(Endpoint::NodeOnly, &args.with_path(&[("node", &node)]))?;
    check_node(&sim, &node)?;
    let used = node_mem(&sim, &node);
    Ok(ok(json!({
        "cpu": 0.02,
        "uptime": uptime(&sim),
        "loadavg": ["0.10", "0.08", "0.05"],
        "memory": { "total": NODE_MAXMEM, "used": used, "free": NODE_MAXMEM - used },
        "cpuinfo": { "cpus": NODE_MAXCPU, "cores": NODE_MAXCPU / 2, "sockets": 1, "model": "pve-sim virtual CPU" },
        "pveversion": "pve-manager/9.1.1/42db4a6cf33dac83",
        "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC",
        "rootfs": { "total": 100u64 << 30, "used": 10u64 << 30, "avail": 90u64 << 30, "free": 90u64 << 30 },
    })))
}

fn storage_used(sim: &SharedSim, node: &str, storage: &str) -> u64 {
    sim.read(|st| {
        st.volumes
            .iter()
            .filter(|(id, v)| v.node == node && id.starts_with(&format!("{storage}:")))
            .map(|(_, v)| v.size)
            .sum()
    })
}

pub async fn storage(State(sim): State<SharedSim>, Path(node): Path<String>, args: Args) -> ApiResult<Response> {
    let p = verify(Endpoint::Storage, &args.with_path(&[("node", &node)]))?;
    check_node(&sim, &node)?;
    let want: Vec<&str> = p.get("content").map(|c| c.split(',').collect()).unwrap_or_default();
    let list: Vec<Value> = sim
        .cfg
        .storages
        .iter()
        .filter(|s| p.get("storage").is_none_or(|id| *id == s.id))
        .filter(|s| want.is_empty() || s.content.split(',').any(|c| want.contains(&c)))
        .map(|s| {
            let used = storage_used(&sim, &node, &s.id);
            json!({
                "storage": s.id, "type": s.kind, "content": s.content, "active": 1, "enabled": 1,
                "shared": s.shared as u8, "total": STORAGE_TOTAL, "used": used,
                "avail": STORAGE_TOTAL.saturating_sub(used),
                "used_fraction": used as f64 / STORAGE_TOTAL as f64,
            })
        })
        .collect();
    Ok(ok(Value::Array(list)))
}

pub async fn resources(State(sim): State<SharedSim>, args: Args) -> ApiResult<Response> {
    let p = verify(Endpoint::Resources, &args.0)?;
    let ty = p.get("type").map(String::as_str);
    let mut out = Vec::new();
    if ty.is_none() || ty == Some("vm") {
        sim.read(|st| {
            for vm in st.vms.values() {
                let s = summarize(vm, &st.volumes);
                let mut e = json!({
                    "id": format!("{}/{}", vm.kind.api_name(), vm.vmid), "type": vm.kind.api_name(), "vmid": vm.vmid,
                    "node": vm.node, "status": if vm.running { "running" } else { "stopped" },
                    "template": if vm.config.get("template").map(|t| t == "1").unwrap_or(false) { 1 } else { 0 },
                    "maxmem": s.maxmem, "maxcpu": s.cpus, "maxdisk": s.maxdisk,
                    "mem": if vm.running { s.maxmem / 2 } else { 0 }, "cpu": 0, "disk": 0,
                    "uptime": vm_uptime(vm), "diskread": 0, "diskwrite": 0, "netin": 0, "netout": 0,
                });
                // A container's name is its hostname.
                if let Some(n) = vm.config.get("name").or(vm.config.get("hostname")) {
                    e["name"] = json!(n);
                }
                if let Some(t) = vm.config.get("tags") {
                    e["tags"] = json!(t);
                }
                if let Some(l) = vm.config.get("lock") {
                    e["lock"] = json!(l);
                }
                if let Some(pool) = st.pool_of(vm.vmid) {
                    e["pool"] = json!(pool);
                }
                out.push(e);
            }
        });
    }
    if ty.is_none() || ty == Some("node") {
        out.extend(sim.cfg.nodes.iter().map(|n| node_entry(&sim, n)));
    }
    if ty.is_none() || ty == Some("storage") {
        for node in &sim.cfg.nodes {
            for s in &sim.cfg.storages {
                out.push(json!({
                    "id": format!("storage/{node}/{}", s.id), "type": "storage", "storage": s.id,
                    "node": node, "status": "available", "content": s.content, "plugintype": s.kind,
                    "shared": s.shared as u8, "disk": storage_used(&sim, node, &s.id), "maxdisk": STORAGE_TOTAL,
                }));
            }
        }
    }
    Ok(ok(Value::Array(out)))
}

pub fn vm_uptime(vm: &crate::store::Vm) -> u64 {
    match (vm.running, vm.started_at) {
        (true, Some(t)) => (now() - t).max(0.0) as u64,
        _ => 0,
    }
}

/// Suggests a free VMID; reserves nothing (so parallel creates can race).
/// PVE returns the id as a JSON string.
pub async fn nextid(State(sim): State<SharedSim>, args: Args) -> ApiResult<Response> {
    let p = verify(Endpoint::NextId, &args.0)?;
    if p.contains_key("vmid") {
        let vmid = vmid_of(&p, "vmid");
        return if sim.read(|st| st.vms.contains_key(&vmid)) {
            Err(ApiError::param("vmid", format!("VM {vmid} already exists")))
        } else {
            Ok(ok(json!(vmid.to_string())))
        };
    }
    Ok(ok(json!(sim.read(|st| st.next_free_vmid()).to_string())))
}

pub async fn pools(State(sim): State<SharedSim>, args: Args) -> ApiResult<Response> {
    verify(Endpoint::NoParams, &args.0)?;
    let list: Vec<Value> = sim.read(|st| {
        st.pools
            .iter()
            .map(|(id, p)| {
                let mut e = json!({ "poolid": id });
                if let Some(c) = &p.comment {
                    e["comment"] = json!(c);
                }
                e
            })
            .collect()
    });
    Ok(ok(Value::Array(list)))
}

pub async fn create_pool(State(sim): State<SharedSim>, args: Args) -> ApiResult<Response> {
    let p = verify(Endpoint::PoolCreate, &args.0)?;
    let id = p["poolid"].clone();
    sim.mutate(|st| {
        if st.pools.contains_key(&id) {
            return Err(ApiError::internal(format!("pool '{id}' already exists")));
        }
        st.pools.insert(id, Pool { comment: p.get("comment").cloned(), members: Default::default() });
        Ok(())
    })?;
    Ok(ok(Value::Null))
}

/// `PUT /pools/{poolid}` (and PVE 8.1's `PUT /pools` with `poolid`): adds the VMs in
/// `vms` to the pool, or removes them with `delete=1`. A VM in another pool moves only
/// with `allow-move`.
pub async fn update_pool_at(
    State(sim): State<SharedSim>,
    Path(poolid): Path<String>,
    args: Args,
) -> ApiResult<Response> {
    let p = verify(Endpoint::PoolUpdate, &args.with_path(&[("poolid", &poolid)]))?;
    pool_update(&sim, &p)
}

pub async fn update_pool(State(sim): State<SharedSim>, args: Args) -> ApiResult<Response> {
    let p = verify(Endpoint::PoolUpdate, &args.0)?;
    pool_update(&sim, &p)
}

fn pool_update(sim: &SharedSim, p: &crate::params::Params) -> ApiResult<Response> {
    let id = p["poolid"].clone();
    let delete = p.get("delete").is_some_and(|d| d == "1");
    let allow_move = p.get("allow-move").is_some_and(|d| d == "1");
    let mut vmids = vec![];
    for v in crate::params::split_list(p.get("vms").map(String::as_str).unwrap_or("")) {
        match v.parse::<u32>() {
            Ok(n) if (100..=999_999_999).contains(&n) => vmids.push(n),
            _ => {
                return Err(ApiError::param(
                    "vms",
                    format!("invalid format - value '{v}' does not look like a valid VM ID"),
                ))
            }
        }
    }
    sim.mutate(|st| -> ApiResult<()> {
        if !st.pools.contains_key(&id) {
            return Err(ApiError::internal(format!("pool '{id}' does not exist")));
        }
        // All or nothing, like PVE's locked user.cfg update.
        let mut next = st.pools.clone();
        for vmid in vmids {
            if delete {
                if !next[&id].members.contains(&vmid) {
                    return Err(ApiError::internal(format!("VM {vmid} is not a pool member")));
                }
                next.get_mut(&id).expect("checked").members.remove(&vmid);
                continue;
            }
            if next[&id].members.contains(&vmid) {
                return Err(ApiError::internal(format!("VM {vmid} is already a pool member")));
            }
            if let Some((other, _)) = next.iter().find(|(_, pool)| pool.members.contains(&vmid)) {
                if !allow_move {
                    return Err(ApiError::internal(format!(
                        "VM {vmid} belongs already to pool '{other}' and 'allow-move' is not set"
                    )));
                }
                let other = other.clone();
                next.get_mut(&other).expect("found").members.remove(&vmid);
            }
            if !st.vms.contains_key(&vmid) {
                return Err(ApiError::internal(format!("VM {vmid} does not exist")));
            }
            next.get_mut(&id).expect("checked").members.insert(vmid);
        }
        if let Some(c) = p.get("comment") {
            next.get_mut(&id).expect("checked").comment = Some(c.clone());
        }
        st.pools = next;
        Ok(())
    })?;
    Ok(ok(Value::Null))
}
