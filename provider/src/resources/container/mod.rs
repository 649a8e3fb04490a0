//! `strata_container`: an LXC container on Proxmox VE. Split like `strata_vm`:
//! `schema` (attributes, validators), `model` (state <-> Proxmox config), `plan`
//! (plan-time checks) and this file (CRUD). Proxmox access, retries, task waiting and
//! VMID allocation are the client's, shared with `strata_vm`.

pub mod model;
pub mod plan;
pub mod schema;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use strata_pve_client::ct::{CtCloneSpec, CtCreateSpec};
use strata_pve_client::{Client, Error as PveError, GuestKind};

use crate::framework::timeouts::parse_go_duration;
use crate::framework::{
    ApplyResult, AttributePath, Context, Diagnostic, Diagnostics, Failure, PlanChange, Resource, Schema, Timeouts,
    Value,
};
use crate::proxmox::{client, client_if_known};
use model::{
    config_change, create_params, from_pve, mount_point_changes, unused_holding, volume_of, CtModel, ReadMode,
};

pub struct Container;

/// How long one `/cluster/resources` listing serves the reads of a refresh.
const READ_CACHE: Duration = Duration::from_secs(5);
/// Rounds of "that VMID was taken meanwhile, pick another".
const VMID_ROUNDS: usize = 20;
/// How long a create waits for a started container's DHCP address.
const ADDRESS_WAIT: Duration = Duration::from_secs(30);

fn param_path(param: &str) -> Option<AttributePath> {
    let p = match param {
        "hostname" => "hostname",
        "memory" => "memory_mb",
        "swap" => "swap_mb",
        "cores" => "cores",
        "tags" => "tags",
        "description" => "description",
        "onboot" => "onboot",
        "startup" => "startup",
        "features" => "features",
        "ostemplate" => "ostemplate",
        "rootfs" => "rootfs",
        "unprivileged" => "unprivileged",
        "ssh-public-keys" => "ssh_public_keys",
        "pool" => "pool",
        "vmid" | "newid" => "vm_id",
        p if p.starts_with("net") => {
            return p[3..].parse::<usize>().ok().map(|i| AttributePath::root("network").index(i))
        }
        // A set: its elements have no index to name.
        p if p.starts_with("mp") && p[2..].parse::<usize>().is_ok() => "mount_point",
        _ => return None,
    };
    Some(AttributePath::parse(p))
}

/// A Proxmox failure as diagnostics. A permission refusal names the settings of
/// `want` only root@pam may set, and why; a parameter error names the attribute.
fn pve_diags(what: &str, e: &PveError, want: &CtModel) -> Diagnostics {
    let mut d = Diagnostics::new();
    if let PveError::Params { errors, .. } = e {
        for (param, msg) in errors {
            let diag = Diagnostic::error(format!("Proxmox rejected {param} while trying to {what}"), msg.clone());
            d.push(match param_path(param) {
                Some(p) => diag.at(p),
                None => diag,
            });
        }
        return d;
    }
    if let Some(reason) = e.permission_reason() {
        let settings = model::root_only_settings(want);
        if settings.is_empty() {
            d.push(Diagnostic::error(format!("Proxmox refused to {what}: permission denied"), e.to_string()));
        }
        for (path, why) in settings {
            let attr = path.split(' ').next().unwrap_or(&path).to_string();
            d.push(
                Diagnostic::error(
                    format!("Proxmox refused {path}: only root@pam may set it"),
                    format!(
                        "{path}: {why}. Proxmox answered \"{reason}\" while trying to {what}; it refuses this for API \
                         tokens (even root@pam's) and for every user but root@pam. Use the provider's username = \
                         \"root@pam\" and password, or drop the setting. Nothing was left behind."
                    ),
                )
                .at(AttributePath::parse(&attr)),
            );
        }
        return d;
    }
    d.push(Diagnostic::error(format!("Failed to {what}"), e.to_string()));
    d
}

fn duration_or(t: Option<&String>, default: &str) -> Duration {
    t.and_then(|s| parse_go_duration(s).ok())
        .or_else(|| parse_go_duration(default).ok())
        .unwrap_or(Duration::from_secs(180))
}

fn vmid_of(m: &CtModel) -> Result<u32, Diagnostics> {
    m.vm_id.and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
        Diagnostic::error("State without vm_id", "The stored state of this strata_container lacks its VMID.").into()
    })
}

/// Reads one container. `fresh` skips the shared listing (after this process changed it).
async fn read_one(
    c: &Client,
    vmid: u32,
    prior: Option<&CtModel>,
    mode: ReadMode,
    fresh: bool,
) -> Result<Option<CtModel>, PveError> {
    let all = if fresh { Arc::new(c.cluster_guests().await?) } else { c.cluster_guests_cached(READ_CACHE).await? };
    let Some(ct) = all.iter().find(|v| v.vmid == vmid && v.kind == GuestKind::Lxc) else { return Ok(None) };
    let Some(cfg) = c.ct_config(&ct.node, vmid).await? else { return Ok(None) };
    let mut m = from_pve(&cfg, ct, prior, mode);
    if model::has_dhcp(&cfg) || m.ipv4_addresses.is_none() {
        let mut ips = model::static_ipv4(&cfg);
        if ct.running() && model::has_dhcp(&cfg) {
            for ip in c.ct_ipv4(&ct.node, vmid).await?.unwrap_or_default() {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        m.ipv4_addresses = Some(ips);
    }
    Ok(Some(m))
}

/// Brings config and volumes to what `want` says. `prior` is the state before (empty
/// at create): only a mount point it records with `delete_on_remove` has its volume
/// destroyed when removed; every other removed one is detached and kept (`unusedN`).
async fn converge(
    c: &Client,
    node: &str,
    vmid: u32,
    want: &CtModel,
    prior: &[model::MountPoint],
) -> Result<(), Diagnostics> {
    let cfg = c
        .wait_guest_unlocked(GuestKind::Lxc, node, vmid)
        .await
        .map_err(|e| pve_diags("read the container config", &e, want))?;
    let mut change = config_change(want, &cfg);
    let mps = mount_point_changes(&want.mount_point, prior, &cfg);
    if let Some((key, have, want_gb, path)) = mps.shrink.first() {
        return Err(Diagnostic::error(
            "Volumes cannot shrink",
            format!("the mount point at {path} ({key}) is {have} GiB, larger than the requested {want_gb} GiB."),
        )
        .at(AttributePath::root("mount_point"))
        .into());
    }
    change.set.extend(mps.set.iter().cloned());
    change.delete.extend(mps.detach.iter().cloned());
    c.update_ct_config(node, vmid, &change.set, &change.delete)
        .await
        .map_err(|e| pve_diags("update the container config", &e, want))?;
    if !mps.destroy.is_empty() {
        // Only the volumes detached just now, found by volume ID in their `unusedN`.
        let cfg = c.ct_config(node, vmid).await.map_err(|e| pve_diags("read the container config", &e, want))?;
        let unused = cfg.map(|cfg| unused_holding(&cfg, &mps.destroy)).unwrap_or_default();
        c.update_ct_config(node, vmid, &[], &unused)
            .await
            .map_err(|e| pve_diags("destroy a removed mount point's volume", &e, want))?;
    }

    // Growing volumes.
    let mut grow: Vec<(String, i64, i64, AttributePath)> = vec![];
    if let Some((r, current)) = want.rootfs.as_ref().zip(cfg.get("rootfs")) {
        let (_, have, _) = volume_of(current);
        if have > r.size_gb {
            return Err(Diagnostic::error(
                "Volumes cannot shrink",
                format!("rootfs is {have} GiB, larger than the requested {} GiB.", r.size_gb),
            )
            .at(AttributePath::root("rootfs").attr("size_gb"))
            .into());
        }
        grow.push(("rootfs".into(), have, r.size_gb, AttributePath::root("rootfs")));
    }
    for (key, have, want_gb, _) in &mps.grow {
        grow.push((key.clone(), *have, *want_gb, AttributePath::root("mount_point")));
    }
    for (key, have, want_gb, _) in grow {
        if have < want_gb {
            c.resize_ct_volume(node, vmid, &key, u64::try_from(want_gb).unwrap_or(0))
                .await
                .map_err(|e| pve_diags(&format!("grow {key}"), &e, want))?;
        }
    }
    Ok(())
}

/// Makes the container (create or clone) with a collision-free VMID. `candidate`
/// always holds the VMID being tried, so a later failure can be traced to it.
async fn make_ct(c: &Client, planned: &CtModel, candidate: &Mutex<Option<u32>>) -> Result<u32, Diagnostics> {
    let wanted = planned.vm_id.map(|v| u32::try_from(v).unwrap_or(0));
    for _ in 0..VMID_ROUNDS {
        let lease = match wanted {
            Some(id) => c.reserve_vmid(id),
            None => c.allocate_vmid().await.map_err(|e| pve_diags("allocate a VMID", &e, planned))?,
        };
        let id = lease.id;
        *candidate.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        let result = match &planned.clone {
            Some(src) => {
                let spec = CtCloneSpec {
                    node: planned.node.clone(),
                    source_vmid: u32::try_from(src.source_id).unwrap_or(0),
                    newid: id,
                    hostname: planned.hostname.clone(),
                    full: src.full.unwrap_or(true),
                    storage: planned.rootfs.as_ref().map(|r| r.storage.clone()),
                    pool: planned.pool.clone(),
                    description: planned.description.clone(),
                };
                c.clone_ct(&spec).await
            }
            None => {
                c.create_ct(&CtCreateSpec { node: planned.node.clone(), vmid: id, params: create_params(planned) })
                    .await
            }
        };
        match result {
            Ok(()) => {
                lease.keep();
                return Ok(id);
            }
            Err(e) if e.is_already_exists() && wanted.is_none() => {
                tracing::debug!(vmid = id, "VMID taken meanwhile; allocating another");
                lease.keep();
            }
            Err(e) if e.is_already_exists() => {
                return Err(Diagnostic::error(
                    "VMID already in use",
                    format!("VMID {id} is taken; choose another vm_id or leave it unset."),
                )
                .at(AttributePath::root("vm_id"))
                .into())
            }
            Err(e) => {
                return Err(pve_diags(
                    if planned.clone.is_some() { "clone the container" } else { "create the container" },
                    &e,
                    planned,
                ))
            }
        }
    }
    Err(Diagnostic::error("No free VMID", "Every VMID tried was taken by someone else meanwhile.").into())
}

async fn create_inner(c: &Client, planned: &CtModel, candidate: &Mutex<Option<u32>>) -> Result<CtModel, Diagnostics> {
    let vmid = make_ct(c, planned, candidate).await?;
    let node = planned.node.as_str();
    converge(c, node, vmid, planned, &[]).await?;
    if planned.started != Some(false) {
        c.start_ct(node, vmid).await.map_err(|e| pve_diags("start the container", &e, planned))?;
    }
    let mut prior = planned.clone();
    prior.vm_id = Some(vmid as i64);
    let mut m = read_one(c, vmid, Some(&prior), ReadMode::Refresh, true)
        .await
        .map_err(|e| pve_diags("read the new container", &e, planned))?
        .ok_or_else(|| {
            Diagnostics::from(Diagnostic::error(
                "Container vanished",
                format!("CT {vmid} disappeared right after it was created."),
            ))
        })?;
    // A DHCP lease comes a moment after the start: wait (bounded) for it.
    let dhcp = planned.network.iter().any(|n| n.ip.as_deref() == Some("dhcp"));
    if dhcp && m.started == Some(true) && m.ipv4_addresses.as_ref().is_none_or(|v| v.is_empty()) {
        let deadline = tokio::time::Instant::now() + ADDRESS_WAIT;
        while tokio::time::Instant::now() < deadline {
            let ips =
                c.ct_ipv4(node, vmid).await.map_err(|e| pve_diags("read the container's addresses", &e, planned))?;
            if let Some(ips) = ips.filter(|v| !v.is_empty()) {
                m.ipv4_addresses = Some(ips);
                break;
            }
            c.sleep("container_address", Duration::from_secs(1))
                .await
                .map_err(|e| pve_diags("wait for an address", &e, planned))?;
        }
    }
    m.password = planned.password.clone();
    Ok(m)
}

fn partial(planned: &CtModel, vmid: u32) -> CtModel {
    let mut m = planned.clone();
    m.vm_id = Some(vmid as i64);
    m.id = Some(format!("{}/{vmid}", planned.node));
    m.ipv4_addresses = Some(vec![]);
    m
}

#[async_trait]
impl Resource for Container {
    type Model = CtModel;

    fn name(&self) -> &'static str {
        "container"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        plan::validate(config, diags);
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        crate::proxmox::require_at_plan(plan);
        plan::modify_plan(plan);
    }

    fn timeouts(&self) -> Timeouts {
        schema::timeouts()
    }

    fn import_id(&self) -> Option<&'static str> {
        Some("`node/vm_id`, e.g. `pve1/101`")
    }

    async fn create(&self, ctx: &Context, planned: CtModel) -> ApplyResult<CtModel> {
        let c = client(ctx)?;
        let candidate = Mutex::new(None);
        let d = match create_inner(&c, &planned, &candidate).await {
            Ok(m) => return Ok(m),
            Err(d) => d,
        };
        let Some(vmid) = *candidate.lock().unwrap_or_else(|p| p.into_inner()) else { return Err(d.into()) };
        // Did our container come into existence before the failure? Checked even after
        // a cancellation, briefly, with a client of its own.
        let probe = c.with_cancel(tokio_util::sync::CancellationToken::new());
        let ours = tokio::time::timeout(Duration::from_secs(15), probe.ct_config(&planned.node, vmid))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .is_some_and(|cfg| cfg.get("hostname") == Some(planned.hostname.as_str()));
        if !ours {
            return Err(d.into());
        }
        // A refusal for lack of root@pam will not go away: remove what was made
        // (a clone whose features were then refused) instead of leaving it tainted.
        let refused = d.iter().any(|x| x.summary.contains("only root@pam may set it"));
        if refused {
            match tokio::time::timeout(Duration::from_secs(60), probe.destroy_ct(&planned.node, vmid)).await {
                Ok(Ok(())) => return Err(d.into()),
                _ => tracing::warn!(vmid, "could not remove the refused container; recording it"),
            }
        }
        Err(Failure::with_state(partial(&planned, vmid), d))
    }

    async fn read(&self, ctx: &Context, state: CtModel) -> Result<Option<CtModel>, Diagnostics> {
        let Some(c) = client_if_known(ctx)? else {
            tracing::warn!(vm_id = ?state.vm_id, "Proxmox access known only after apply; keeping the prior state");
            return Ok(Some(state));
        };
        let vmid = vmid_of(&state)?;
        read_one(&c, vmid, Some(&state), ReadMode::Refresh, false)
            .await
            .map_err(|e| pve_diags("read the container", &e, &state))
    }

    async fn update(&self, ctx: &Context, prior: CtModel, planned: CtModel) -> ApplyResult<CtModel> {
        let c = client(ctx)?;
        let vmid = vmid_of(&prior)?;
        let work = async {
            let here = c
                .cluster_guests()
                .await
                .map_err(|e| pve_diags("find the container", &e, &planned))?
                .into_iter()
                .find(|v| v.vmid == vmid && v.kind == GuestKind::Lxc)
                .ok_or_else(|| {
                    Diagnostics::from(Diagnostic::error(
                        "Container vanished",
                        format!("CT {vmid} is not in the cluster."),
                    ))
                })?;
            let node = here.node.clone();
            if here.pool != planned.pool {
                c.set_pool(vmid, here.pool.as_deref(), planned.pool.as_deref())
                    .await
                    .map_err(|e| pve_diags("change the container's pool", &e, &planned))?;
            }
            converge(&c, &node, vmid, &planned, &prior.mount_point).await?;
            match (planned.started, here.running()) {
                (Some(true), false) => {
                    c.start_ct(&node, vmid).await.map_err(|e| pve_diags("start the container", &e, &planned))?
                }
                (Some(false), true) => {
                    let grace = duration_or(planned.shutdown_timeout.as_ref(), schema::DEFAULT_SHUTDOWN_TIMEOUT);
                    c.shutdown_ct(&node, vmid, grace)
                        .await
                        .map_err(|e| pve_diags("shut the container down", &e, &planned))?
                }
                _ => {}
            }
            let mut m = read_one(&c, vmid, Some(&planned), ReadMode::Refresh, true)
                .await
                .map_err(|e| pve_diags("read the container", &e, &planned))?
                .ok_or_else(|| {
                    Diagnostics::from(Diagnostic::error(
                        "Container vanished",
                        format!("CT {vmid} disappeared during the update."),
                    ))
                })?;
            if planned.ipv4_addresses.is_some() {
                m.ipv4_addresses = planned.ipv4_addresses.clone();
            }
            m.password = planned.password.clone();
            Ok::<CtModel, Diagnostics>(m)
        };
        work.await.map_err(|d| Failure::with_state(prior, d))
    }

    async fn delete(&self, ctx: &Context, state: CtModel) -> Result<(), Diagnostics> {
        let c = client(ctx)?;
        let vmid = vmid_of(&state)?;
        let node = match c.cluster_guests().await {
            Ok(all) => all
                .into_iter()
                .find(|v| v.vmid == vmid && v.kind == GuestKind::Lxc)
                .map(|v| v.node)
                .unwrap_or(state.node.clone()),
            Err(e) => return Err(pve_diags("find the container", &e, &state)),
        };
        c.destroy_ct(&node, vmid).await.map_err(|e| pve_diags("destroy the container", &e, &state))
    }

    async fn import(&self, ctx: &Context, id: &str) -> Result<CtModel, Diagnostics> {
        let bad = || {
            Diagnostics::from(Diagnostic::error(
                "Invalid import ID",
                format!("Expected NODE/VMID, e.g. pve1/123; got {id:?}."),
            ))
        };
        let (node, vmid) = id.split_once('/').ok_or_else(bad)?;
        let vmid: u32 = vmid.parse().map_err(|_| bad())?;
        let c = client(ctx)?;
        let empty = CtModel::default();
        let m = read_one(&c, vmid, None, ReadMode::Import, true)
            .await
            .map_err(|e| pve_diags("read the container", &e, &empty))?;
        match m {
            Some(m) if m.node == node => Ok(m),
            Some(m) => Err(Diagnostic::error(
                "Container is on another node",
                format!("CT {vmid} is on node {:?}, not {node:?}.", m.node),
            )
            .into()),
            None => {
                Err(Diagnostic::error("No such container", format!("There is no container {vmid} in the cluster."))
                    .into())
            }
        }
    }
}

#[cfg(test)]
mod tests;
