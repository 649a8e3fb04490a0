//! `strata_vm`: a QEMU VM on Proxmox VE. Split: `schema` (attributes, validators),
//! `model` (state <-> Proxmox config), `plan` (plan-time checks) and this file (CRUD).
//! Proxmox access comes from the shared `crate::proxmox` module.

pub mod model;
pub mod plan;
pub mod schema;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use strata_pve_client::vm::{CloneSpec, CreateSpec};
use strata_pve_client::{Client, Error as PveError};

use crate::framework::timeouts::parse_go_duration;
use crate::framework::{
    ApplyResult, AttributePath, Context, Diagnostic, Diagnostics, Failure, PlanChange, Resource, Schema, Timeouts,
    Value,
};

use crate::proxmox::{client, client_if_known};
use model::{
    cloudinit_slot, config_change, config_disks, create_params, free_cloudinit_slot, from_pve, needs_reboot, ReadMode,
    VmModel,
};

pub struct Vm;

/// How long one `/cluster/resources` listing serves the reads of a refresh.
const READ_CACHE: Duration = Duration::from_secs(5);
/// How long a create waits for the guest agent to report addresses.
const AGENT_WAIT: Duration = Duration::from_secs(120);
/// Rounds of "that VMID was taken meanwhile, pick another".
const VMID_ROUNDS: usize = 20;

/// Where a Proxmox parameter lives in this resource, for diagnostics.
fn param_path(param: &str) -> Option<AttributePath> {
    let p = match param {
        "memory" => "memory_mb",
        "name" => "name",
        "tags" => "tags",
        "description" => "description",
        "onboot" => "on_boot",
        "agent" => "agent_enabled",
        "cores" => "cpu.cores",
        "sockets" => "cpu.sockets",
        "cpu" => "cpu.type",
        "ciuser" => "cloud_init.user",
        "sshkeys" => "cloud_init.ssh_public_keys",
        "ipconfig0" => "cloud_init.ipv4",
        "nameserver" => "cloud_init.dns_servers",
        "searchdomain" => "cloud_init.search_domain",
        "pool" => "pool",
        "vmid" | "newid" => "vm_id",
        p if p.starts_with("net") => {
            return p[3..].parse::<usize>().ok().map(|i| AttributePath::root("network_devices").index(i))
        }
        p if schema::parse_interface(p).is_some() => "disks",
        _ => return None,
    };
    Some(AttributePath::parse(p))
}

pub fn pve_diags(what: &str, e: &PveError) -> Diagnostics {
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
    d.push(Diagnostic::error(format!("Failed to {what}"), e.to_string()));
    d
}

/// Points diagnostics without a path at `attr`.
fn with_path(d: Diagnostics, attr: &str) -> Diagnostics {
    let mut out = Diagnostics::new();
    for diag in d.iter() {
        let mut diag = diag.clone();
        if diag.attribute.is_none() {
            diag = diag.at(AttributePath::root(attr));
        }
        out.push(diag);
    }
    out
}

fn duration_or(t: Option<&String>, default: &str) -> Duration {
    t.and_then(|s| parse_go_duration(s).ok())
        .or_else(|| parse_go_duration(default).ok())
        .unwrap_or(Duration::from_secs(180))
}

fn vmid_of(m: &VmModel) -> Result<u32, Diagnostics> {
    m.vm_id.and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
        Diagnostic::error("State without vm_id", "The stored state of this strata_vm lacks its VMID.").into()
    })
}

/// Reads one VM. `fresh` skips the shared listing (after this process changed the VM).
async fn read_one(
    c: &Client,
    vmid: u32,
    prior: Option<&VmModel>,
    mode: ReadMode,
    fresh: bool,
) -> Result<Option<VmModel>, PveError> {
    let vms = if fresh { Arc::new(c.cluster_vms().await?) } else { c.cluster_vms_cached(READ_CACHE).await? };
    let Some(vm) = vms.iter().find(|v| v.vmid == vmid) else { return Ok(None) };
    let Some(cfg) = c.vm_config(&vm.node, vmid).await? else { return Ok(None) };
    let mut m = from_pve(&cfg, vm, prior, mode);
    if model::static_ipv4(&cfg).is_none() {
        // Only DHCP guests with an agent cost a second request.
        if model::agent_on(&cfg) == Some(true) && vm.running() {
            if let Some(ips) = c.agent_ipv4(&vm.node, vmid).await? {
                m.ipv4_addresses = Some(ips);
            }
        } else {
            m.ipv4_addresses = None;
        }
        if m.ipv4_addresses.is_none() {
            m.ipv4_addresses = Some(vec![]);
        }
    }
    Ok(Some(m))
}

/// Brings the VM's config, disks and cloud-init drive to what `want` says. Returns
/// whether a changed setting only takes effect after a reboot.
async fn converge(
    c: &Client,
    node: &str,
    vmid: u32,
    want: &VmModel,
    prior: Option<&VmModel>,
) -> Result<bool, Diagnostics> {
    let cfg = c.wait_unlocked(node, vmid).await.map_err(|e| pve_diags("read the VM config", &e))?;
    let mut change = config_change(want, &cfg, prior);
    let current_disks = config_disks(&cfg);

    if want.cloud_init.is_some() && cloudinit_slot(&cfg).is_none() {
        let mut taken = cfg.clone();
        for d in want.disks.iter().flatten() {
            taken.0.insert(d.interface.clone(), "reserved".into());
        }
        let storage = want
            .disks
            .iter()
            .flatten()
            .next()
            .map(|d| d.storage.clone())
            .or_else(|| current_disks.first().map(|(_, d)| d.storage().to_string()))
            .unwrap_or_else(|| "local-lvm".into());
        if let Some(slot) = free_cloudinit_slot(&taken) {
            change.set.push((slot, format!("{storage}:cloudinit")));
        }
    }
    let reboot = change.keys().any(needs_reboot);
    c.update_config(node, vmid, &change.set, &change.delete)
        .await
        .map_err(|e| pve_diags("update the VM config", &e))?;

    if let Some(disks) = &want.disks {
        for (i, d) in disks.iter().enumerate() {
            let at = AttributePath::root("disks").index(i);
            let want_size = u64::try_from(d.size_gb).unwrap_or(0);
            match current_disks.iter().find(|(k, _)| *k == d.interface) {
                Some((_, cur)) => {
                    if cur.storage() != d.storage {
                        return Err(Diagnostic::error(
                            "Moving disks is not supported",
                            format!("Disk {} is on storage {:?}, not {:?}.", d.interface, cur.storage(), d.storage),
                        )
                        .at(at.attr("storage"))
                        .into());
                    }
                    let have = cur.size_gb().unwrap_or(0);
                    if have > d.size_gb {
                        return Err(Diagnostic::error(
                            "Disks cannot shrink",
                            format!("Disk {} is {have} GiB, larger than the requested {} GiB.", d.interface, d.size_gb),
                        )
                        .at(at.attr("size_gb"))
                        .into());
                    }
                    if have < d.size_gb {
                        c.resize_disk(node, vmid, &d.interface, want_size)
                            .await
                            .map_err(|e| pve_diags("grow a disk", &e))?;
                    }
                }
                None => c
                    .add_disk(node, vmid, &d.interface, &d.storage, want_size)
                    .await
                    .map_err(|e| pve_diags("add a disk", &e))?,
            }
        }
        let extra: Vec<String> =
            current_disks.iter().map(|(k, _)| k.clone()).filter(|k| !disks.iter().any(|d| d.interface == *k)).collect();
        c.remove_disks(node, vmid, &extra).await.map_err(|e| pve_diags("remove a disk", &e))?;
    }
    Ok(reboot)
}

/// Makes the VM: clone or create, with a collision-free VMID. Returns the VMID.
/// `candidate` always holds the VMID being tried, so a failure (or timeout) after the
/// VM came into existence can still be traced to it.
async fn make_vm(c: &Client, planned: &VmModel, candidate: &Mutex<Option<u32>>) -> Result<u32, Diagnostics> {
    let wanted = match planned.vm_id {
        Some(v) => Some(
            u32::try_from(v)
                .map_err(|_| Diagnostic::error("Invalid vm_id", "out of range").at(AttributePath::root("vm_id")))?,
        ),
        None => None,
    };
    for _ in 0..VMID_ROUNDS {
        let lease = match wanted {
            Some(id) => c.reserve_vmid(id),
            None => c.allocate_vmid().await.map_err(|e| pve_diags("allocate a VMID", &e))?,
        };
        let id = lease.id;
        *candidate.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        let result = match &planned.clone {
            Some(src) => {
                // One target storage for a full clone when all configured disks agree.
                let storages: Vec<&str> = planned.disks.iter().flatten().map(|d| d.storage.as_str()).collect();
                let storage = storages.first().filter(|s| storages.iter().all(|x| x == *s)).map(|s| s.to_string());
                let spec = CloneSpec {
                    node: planned.node.clone(),
                    source_vmid: u32::try_from(src.source_vm_id).unwrap_or(0),
                    newid: id,
                    name: planned.name.clone(),
                    full: src.full.unwrap_or(true),
                    storage,
                    pool: planned.pool.clone(),
                    description: planned.description.clone(),
                };
                c.clone_vm(&spec).await
            }
            None => {
                c.create_vm(&CreateSpec { node: planned.node.clone(), vmid: id, params: create_params(planned) }).await
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
            Err(e) => {
                let mut d = pve_diags(if planned.clone.is_some() { "clone the VM" } else { "create the VM" }, &e);
                if e.is_already_exists() {
                    d = Diagnostic::error(
                        "VMID already in use",
                        format!("VM {id} already exists; choose another vm_id or leave it unset."),
                    )
                    .at(AttributePath::root("vm_id"))
                    .into();
                }
                return Err(d);
            }
        }
    }
    Err(Diagnostic::error("No free VMID", "Every VMID tried was taken by someone else meanwhile.").into())
}

async fn create_inner(
    c: &Client,
    planned: &VmModel,
    candidate: &Mutex<Option<u32>>,
    warnings: &mut Vec<Diagnostic>,
) -> Result<VmModel, Diagnostics> {
    let vmid = make_vm(c, planned, candidate).await?;
    let node = planned.node.as_str();
    converge(c, node, vmid, planned, None).await?;
    if planned.started != Some(false) {
        c.start_vm(node, vmid).await.map_err(|e| pve_diags("start the VM", &e))?;
    }
    let mut prior = planned.clone();
    prior.vm_id = Some(vmid as i64);
    let mut m = read_one(c, vmid, Some(&prior), ReadMode::Refresh, true)
        .await
        .map_err(|e| pve_diags("read the new VM", &e))?
        .ok_or_else(|| {
            Diagnostics::from(Diagnostic::error(
                "VM vanished",
                format!("VM {vmid} disappeared right after it was created."),
            ))
        })?;
    // A booting guest's agent answers late: wait (bounded) for its first address.
    let wants_agent_ip = m.ipv4_addresses.as_ref().is_some_and(|v| v.is_empty())
        && m.agent_enabled == Some(true)
        && m.started == Some(true);
    if wants_agent_ip {
        let deadline = tokio::time::Instant::now() + AGENT_WAIT;
        while tokio::time::Instant::now() < deadline {
            if let Some(ips) = c.agent_ipv4(node, vmid).await.map_err(|e| pve_diags("ask the guest agent", &e))? {
                if !ips.is_empty() {
                    m.ipv4_addresses = Some(ips);
                    break;
                }
            }
            c.sleep("guest_agent_address", Duration::from_secs(2))
                .await
                .map_err(|e| pve_diags("wait for the guest agent", &e))?;
        }
    }
    set_host_keys(&mut m, vec![]);
    if m.agent_enabled == Some(true) && m.started == Some(true) {
        match host_keys(c, node, vmid, m.cloud_init.is_some())
            .await
            .map_err(|e| pve_diags("ask the guest agent", &e))?
        {
            Some(keys) => set_host_keys(&mut m, keys),
            None => warnings.push(Diagnostic::warning(
                "No SSH host keys from the guest agent",
                format!(
                    "VM {vmid}'s guest agent did not report SSH host keys within {}s, so ssh_host_public_keys and \
                     ssh_host_key_fingerprints are empty (is qemu-guest-agent installed and enabled in the template?).",
                    AGENT_WAIT.as_secs()
                ),
            )),
        }
    }
    Ok(m)
}

/// Where cloud-init records that the first boot finished: host keys exist from then on.
const CLOUD_INIT_DONE: &str = "/var/lib/cloud/instance/boot-finished";
/// The host keys sshd offers, in the order it prefers them.
const HOST_KEY_FILES: [&str; 3] =
    ["/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_ecdsa_key.pub", "/etc/ssh/ssh_host_rsa_key.pub"];

/// The guest's SSH host keys through the guest agent: after cloud-init's first boot
/// when the VM has a cloud-init drive (before that the template's keys may still be
/// there, about to be replaced). `Ok(None)` when the agent did not answer in time.
async fn host_keys(c: &Client, node: &str, vmid: u32, cloud_init: bool) -> Result<Option<Vec<String>>, PveError> {
    let deadline = tokio::time::Instant::now() + AGENT_WAIT;
    let mut booted = !cloud_init;
    while tokio::time::Instant::now() < deadline {
        if !booted {
            booted = match c.agent_file_read(node, vmid, CLOUD_INIT_DONE).await {
                Ok(found) => found.is_some(),
                Err(e) if e.is_agent_error() => false,
                Err(e) => return Err(e),
            };
        }
        if booted {
            let mut keys = Vec::new();
            let mut agent = true;
            for f in HOST_KEY_FILES {
                match c.agent_file_read(node, vmid, f).await {
                    Ok(Some(k)) if strata_ssh::public_key_fingerprint(&k).is_some() => keys.push(k.trim().to_string()),
                    Ok(Some(_)) => {}
                    Ok(None) => agent = false,
                    Err(e) if e.is_agent_error() => {}
                    Err(e) => return Err(e),
                }
            }
            if agent && !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
        c.sleep("guest_agent_host_keys", Duration::from_secs(1)).await?;
    }
    Ok(None)
}

fn set_host_keys(m: &mut VmModel, keys: Vec<String>) {
    m.ssh_host_key_fingerprints = Some(keys.iter().filter_map(|k| strata_ssh::public_key_fingerprint(k)).collect());
    m.ssh_host_public_keys = Some(keys);
}

/// What state to record for a VM that exists although its create failed, so
/// Terraform taints it instead of forgetting it.
fn partial(planned: &VmModel, vmid: u32) -> VmModel {
    let mut m = planned.clone();
    m.vm_id = Some(vmid as i64);
    m.id = Some(format!("{}/{vmid}", planned.node));
    m
}

#[async_trait]
impl Resource for Vm {
    type Model = VmModel;

    fn name(&self) -> &'static str {
        "vm"
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
        Some("`node/vm_id`, e.g. `pve1/101` (the VM is found by VMID anywhere in the cluster; `node` must be where it runs now)")
    }

    async fn create(&self, ctx: &Context, planned: VmModel) -> ApplyResult<VmModel> {
        let c = client(ctx)?;
        // The framework's time limit (timeouts.create) cancels the client's requests.
        let candidate = Mutex::new(None);
        let mut warnings = Vec::new();
        let result = create_inner(&c, &planned, &candidate, &mut warnings).await;
        for w in warnings {
            ctx.warn(w);
        }
        let d = match result {
            Ok(m) => return Ok(m),
            Err(d) => d,
        };
        let Some(vmid) = *candidate.lock().unwrap_or_else(|p| p.into_inner()) else { return Err(d.into()) };
        // Did our VM come into existence before the failure? Then record it (Terraform
        // taints it) rather than orphan it. Checked even after a cancellation, briefly.
        let probe = c.with_cancel(tokio_util::sync::CancellationToken::new());
        let ours = tokio::time::timeout(Duration::from_secs(15), probe.vm_config(&planned.node, vmid))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .is_some_and(|cfg| cfg.get("name") == Some(planned.name.as_str()));
        if ours {
            Err(Failure::with_state(partial(&planned, vmid), d))
        } else {
            Err(d.into())
        }
    }

    async fn read(&self, ctx: &Context, state: VmModel) -> Result<Option<VmModel>, Diagnostics> {
        let Some(c) = client_if_known(ctx)? else {
            // Proxmox settings come from resources not applied yet: nothing to observe.
            tracing::warn!(vm_id = ?state.vm_id, "Proxmox access known only after apply; keeping the prior state");
            return Ok(Some(state));
        };
        let vmid = vmid_of(&state)?;
        read_one(&c, vmid, Some(&state), ReadMode::Refresh, false).await.map_err(|e| pve_diags("read the VM", &e))
    }

    async fn update(&self, ctx: &Context, prior: VmModel, planned: VmModel) -> ApplyResult<VmModel> {
        let c = client(ctx)?;
        let vmid = vmid_of(&prior)?;
        let work = async {
            // Where the VM is now (HA or a person may have moved it since the refresh).
            let here = c
                .cluster_vms()
                .await
                .map_err(|e| pve_diags("find the VM", &e))?
                .into_iter()
                .find(|v| v.vmid == vmid)
                .ok_or_else(|| {
                    Diagnostics::from(Diagnostic::error("VM vanished", format!("VM {vmid} is not in the cluster.")))
                })?;
            if here.node != planned.node {
                c.migrate_vm(&here.node, vmid, &planned.node, here.running())
                    .await
                    .map_err(|e| pve_diags(&format!("migrate the VM to node {}", planned.node), &e))?;
            }
            let node = planned.node.clone();
            if here.pool != planned.pool {
                c.set_pool(vmid, here.pool.as_deref(), planned.pool.as_deref())
                    .await
                    .map_err(|e| with_path(pve_diags("change the VM's pool", &e), "pool"))?;
            }
            let reboot = converge(&c, &node, vmid, &planned, Some(&prior)).await?;
            let running = here.running();
            match (planned.started, running) {
                // A start boots with the new settings already.
                (Some(true), false) => c.start_vm(&node, vmid).await.map_err(|e| pve_diags("start the VM", &e))?,
                (Some(false), true) => {
                    let grace = duration_or(planned.shutdown_timeout.as_ref(), schema::DEFAULT_SHUTDOWN_TIMEOUT);
                    c.shutdown_vm(&node, vmid, grace).await.map_err(|e| pve_diags("shut the VM down", &e))?
                }
                (_, true) if reboot && planned.reboot_after_update != Some(false) => {
                    c.reboot_vm(&node, vmid).await.map_err(|e| pve_diags("reboot the VM", &e))?
                }
                _ => {}
            }
            let mut m = read_one(&c, vmid, Some(&planned), ReadMode::Refresh, true)
                .await
                .map_err(|e| pve_diags("read the VM", &e))?
                .ok_or_else(|| {
                    Diagnostics::from(Diagnostic::error(
                        "VM vanished",
                        format!("VM {vmid} disappeared during the update."),
                    ))
                })?;
            // Addresses the plan promised stay as planned (an agent may answer late).
            if planned.ipv4_addresses.is_some() {
                m.ipv4_addresses = planned.ipv4_addresses.clone();
            }
            Ok::<VmModel, Diagnostics>(m)
        };
        work.await.map_err(|d| Failure::with_state(prior, d))
    }

    async fn delete(&self, ctx: &Context, state: VmModel) -> Result<(), Diagnostics> {
        let c = client(ctx)?;
        let vmid = vmid_of(&state)?;
        // The VM may have moved since the state was written (HA, a person, -refresh=false).
        let node = match c.cluster_vms().await {
            Ok(vms) => vms.into_iter().find(|v| v.vmid == vmid).map(|v| v.node).unwrap_or(state.node.clone()),
            Err(e) => return Err(pve_diags("find the VM", &e)),
        };
        c.destroy_vm(&node, vmid).await.map_err(|e| pve_diags("destroy the VM", &e))
    }

    async fn import(&self, ctx: &Context, id: &str) -> Result<VmModel, Diagnostics> {
        let bad = || {
            Diagnostics::from(Diagnostic::error(
                "Invalid import ID",
                format!("Expected NODE/VMID, e.g. pve1/123; got {id:?}."),
            ))
        };
        let (node, vmid) = id.split_once('/').ok_or_else(bad)?;
        let vmid: u32 = vmid.parse().map_err(|_| bad())?;
        let c = client(ctx)?;
        let m = read_one(&c, vmid, None, ReadMode::Import, true).await.map_err(|e| pve_diags("read the VM", &e))?;
        match m {
            Some(m) if m.node == node => Ok(m),
            Some(m) => Err(Diagnostic::error(
                "VM is on another node",
                format!("VM {vmid} is on node {:?}, not {node:?}.", m.node),
            )
            .into()),
            None => Err(Diagnostic::error("No such VM", format!("There is no VM {vmid} in the cluster.")).into()),
        }
    }
}

#[cfg(test)]
mod tests;
