//! Plan-time logic: cross-attribute validation and plan refinement (disk shrink
//! refusal, clone-source replacement, which computed values become unknown).

use crate::framework::{AttributePath, Diagnostic, Diagnostics, PlanChange, Value};

use super::schema::parse_interface;

/// An error at `path`; the detail names the path too, since Terraform's rendering only
/// points at the enclosing expression for attributes of object type.
fn err(diags: &mut Diagnostics, path: AttributePath, summary: &str, detail: String) {
    diags.push(Diagnostic::error(summary, format!("{path}: {detail}")).at(path));
}

/// Checks the `disks` list (an attribute of object type, so its elements are checked
/// here rather than by block validators) and the cloud-init address choice.
pub fn validate(config: &Value, diags: &mut Diagnostics) {
    if let Some(Value::List(items)) = config.attr("disks") {
        let mut seen: Vec<String> = vec![];
        for (i, d) in items.iter().enumerate() {
            let at = AttributePath::root("disks").index(i);
            if let Some(Value::String(iface)) = d.attr("interface") {
                if parse_interface(iface).is_none() {
                    err(
                        diags,
                        at.attr("interface"),
                        "Unknown disk interface",
                        format!("{iface:?} is not a Proxmox disk slot; use scsi0-scsi30, virtio0-virtio15, sata0-sata5 or ide0-ide3."),
                    );
                } else if seen.contains(iface) {
                    err(
                        diags,
                        at.attr("interface"),
                        "Duplicate disk interface",
                        format!("{iface:?} is used by more than one disk."),
                    );
                }
                seen.push(iface.clone());
            }
            if let Some(Value::String(s)) = d.attr("storage") {
                let ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    err(diags, at.attr("storage"), "Invalid storage ID", format!("{s:?} is not a Proxmox storage ID."));
                }
            }
            if let Some(v @ Value::Number(_)) = d.attr("size_gb") {
                match v.as_i64() {
                    Some(n) if (1..=65536).contains(&n) => {}
                    _ => err(
                        diags,
                        at.attr("size_gb"),
                        "Invalid disk size",
                        "size_gb must be a whole number of GiB between 1 and 65536.".into(),
                    ),
                }
            }
        }
    }
    if let Some(ip) = config.attr("cloud_init").and_then(|c| c.attr("ipv4")) {
        let at = AttributePath::root("cloud_init").attr("ipv4");
        let has = |k: &str| ip.attr(k).is_some_and(|v| !v.is_null());
        let dhcp = ip.attr("dhcp").and_then(Value::as_bool) == Some(true);
        if dhcp && has("address") {
            err(
                diags,
                at.attr("address"),
                "Conflicting IPv4 settings",
                "Set either a static address or dhcp = true, not both.".into(),
            );
        }
        if dhcp && has("gateway") {
            err(
                diags,
                at.attr("gateway"),
                "Conflicting IPv4 settings",
                "A gateway only applies to a static address.".into(),
            );
        }
        if !ip.is_null()
            && !ip.is_unknown()
            && !dhcp
            && !has("address")
            && ip.attr("address").is_some_and(|v| !v.is_unknown())
        {
            err(
                diags,
                at.attr("address"),
                "Missing IPv4 address",
                "Set a static address (CIDR) or dhcp = true.".into(),
            );
        }
    }
}

fn disks_of(v: &Value) -> Vec<(String, String, Option<i64>)> {
    match v.attr("disks") {
        Some(Value::List(items)) => items
            .iter()
            .map(|d| {
                (
                    d.attr("interface").and_then(Value::as_str).unwrap_or("").to_string(),
                    d.attr("storage").and_then(Value::as_str).unwrap_or("").to_string(),
                    d.attr("size_gb").and_then(Value::as_i64),
                )
            })
            .collect(),
        _ => vec![],
    }
}

pub fn modify_plan(plan: &mut PlanChange) {
    // The id is known as soon as node and vm_id are.
    if plan.is_create() {
        let node = plan.planned.attr("node").and_then(Value::as_str).map(str::to_string);
        let vmid = plan.planned.attr("vm_id").and_then(Value::as_i64);
        if let (Some(n), Some(id), Some(slot)) = (node, vmid, plan.planned.attr_mut("id")) {
            *slot = Value::string(format!("{n}/{id}"));
        }
        return;
    }

    // A migration changes the id with the node.
    let node = plan.planned.attr("node").and_then(Value::as_str).map(str::to_string);
    let vmid = plan.planned.attr("vm_id").and_then(Value::as_i64);
    if let (Some(n), Some(id), Some(slot)) = (node, vmid, plan.planned.attr_mut("id")) {
        *slot = Value::string(format!("{n}/{id}"));
    }

    // Disks can grow in place; shrinking and moving are refused before anything runs.
    let prior = disks_of(&plan.prior);
    for (i, (iface, storage, size)) in disks_of(&plan.planned).into_iter().enumerate() {
        let Some((_, old_storage, old_size)) = prior.iter().find(|(pi, _, _)| *pi == iface) else { continue };
        let at = AttributePath::root("disks").index(i);
        if let (Some(new), Some(old)) = (size, old_size) {
            if new < *old {
                err(
                    &mut plan.diagnostics,
                    at.attr("size_gb"),
                    "Disks cannot shrink",
                    format!("disk {iface} is {old} GiB; Proxmox can only grow disks, not shrink them to {new} GiB."),
                );
            }
        }
        if !storage.is_empty() && !old_storage.is_empty() && storage != *old_storage {
            err(
                &mut plan.diagnostics,
                at.attr("storage"),
                "Moving disks is not supported",
                format!("disk {iface} is on storage {old_storage:?}; moving it to {storage:?} is not supported by strata_vm."),
            );
        }
    }

    // A different clone source means a different VM. An imported VM has no recorded
    // source: adding the block then only records it.
    let prior_clone = plan.prior.attr("clone").cloned().unwrap_or(Value::Null);
    let planned_clone = plan.planned.attr("clone").cloned().unwrap_or(Value::Null);
    if !prior_clone.is_null() && !prior_clone.semantically_equal(&planned_clone) {
        plan.require_replace("clone");
    }

    let network_changed = ["cloud_init", "started", "agent_enabled", "network_devices"].iter().any(|a| plan.changed(a));
    if network_changed {
        plan.set_unknown("ipv4_addresses");
    }
}
