//! Plan-time logic: cross-attribute validation (template source, addresses, the
//! Kubernetes preset) and plan refinement (volume shrink refusal, source changes
//! that replace, computed values that become unknown).

use crate::framework::{AttributePath, Diagnostic, Diagnostics, PlanChange, Value};

use super::model::KUBERNETES_FLAGS;

/// An error at `path`, naming it in the detail too (Terraform's rendering points at
/// the enclosing block for nested attributes).
fn err(diags: &mut Diagnostics, path: AttributePath, summary: &str, detail: String) {
    diags.push(Diagnostic::error(summary, format!("{path}: {detail}")).at(path));
}

fn set(v: &Value, name: &str) -> bool {
    v.attr(name).is_some_and(|x| !x.is_null())
}

fn known(v: &Value, name: &str) -> bool {
    v.attr(name).is_some_and(|x| !x.is_unknown())
}

pub fn validate(config: &Value, diags: &mut Diagnostics) {
    // Exactly one source; unknown values (from other resources) are checked at apply.
    if known(config, "ostemplate") && known(config, "clone") {
        // Both missing is refused at plan time for a new container only (see
        // modify_plan): an imported one has no recorded source to name.
        if set(config, "ostemplate") && set(config, "clone") {
            err(
                diags,
                AttributePath::root("ostemplate"),
                "Conflicting container sources",
                "set either ostemplate (an OS template volume) or a clone block, not both.".into(),
            );
        }
    }
    if let Some(Value::List(nets)) = config.attr("network") {
        let mut names: Vec<&str> = vec![];
        for (i, n) in nets.iter().enumerate() {
            let at = AttributePath::root("network").index(i);
            let ip = n.attr("ip").and_then(Value::as_str);
            let static_ip = ip.is_some_and(|ip| ip.contains('/'));
            if set(n, "gateway") && !static_ip && known(n, "ip") {
                err(
                    diags,
                    at.attr("gateway"),
                    "Gateway without a static address",
                    "a gateway only applies to a static ip (CIDR).".into(),
                );
            }
            if let Some(name) = n.attr("name").and_then(Value::as_str) {
                if names.contains(&name) {
                    err(
                        diags,
                        at.attr("name"),
                        "Duplicate interface name",
                        format!("{name:?} is used by more than one network block."),
                    );
                }
                names.push(name);
            }
        }
    }
    if let Some(Value::List(mps) | Value::Set(mps)) = config.attr("mount_point") {
        // The path identifies a mount point, so it must be unique.
        let mut paths: Vec<&str> = vec![];
        for m in mps {
            if let Some(p) = m.attr("path").and_then(Value::as_str) {
                if paths.contains(&p) {
                    err(
                        diags,
                        AttributePath::root("mount_point"),
                        "Duplicate mount path",
                        format!(
                            "{p:?} is mounted by more than one mount_point block; the path identifies a mount point."
                        ),
                    );
                }
                paths.push(p);
            }
        }
    }
    if config.attr("kubernetes_node").and_then(Value::as_bool) == Some(true) {
        let features = config.attr("features").cloned().unwrap_or(Value::Null);
        for f in KUBERNETES_FLAGS {
            if features.attr(f).and_then(Value::as_bool) == Some(false) {
                err(
                    diags,
                    AttributePath::root("features").attr(f),
                    "Conflicts with kubernetes_node",
                    format!("kubernetes_node = true turns {f} on; remove `{f} = false` or the preset."),
                );
            }
        }
        if config.attr("swap_mb").and_then(Value::as_i64).is_some_and(|s| s > 0) {
            err(
                diags,
                AttributePath::root("swap_mb"),
                "Conflicts with kubernetes_node",
                "the kubelet refuses to run with swap by default; kubernetes_node = true needs swap_mb = 0 (or unset)."
                    .into(),
            );
        }
    }
}

fn size_of(v: &Value) -> Option<i64> {
    v.attr("size_gb").and_then(Value::as_i64)
}

fn storage_of(v: &Value) -> Option<String> {
    v.attr("storage").and_then(Value::as_str).map(str::to_string)
}

/// A volume's growth is fine; shrinking or moving it is refused before anything runs.
fn check_volume(plan: &mut PlanChange, prior: &Value, planned: &Value, at: AttributePath, what: &str) {
    if let (Some(new), Some(old)) = (size_of(planned), size_of(prior)) {
        if new < old {
            err(
                &mut plan.diagnostics,
                at.attr("size_gb"),
                "Volumes cannot shrink",
                format!("{what} is {old} GiB; Proxmox can only grow container volumes, not shrink them to {new} GiB."),
            );
        }
    }
    if let (Some(new), Some(old)) = (storage_of(planned), storage_of(prior)) {
        if new != old {
            err(
                &mut plan.diagnostics,
                at.attr("storage"),
                "Moving volumes is not supported",
                format!("{what} is on storage {old:?}; moving it to {new:?} is not supported by strata_container."),
            );
        }
    }
}

fn mount_points_of(v: &Value) -> Vec<Value> {
    match v.attr("mount_point") {
        Some(Value::List(items) | Value::Set(items)) => items.clone(),
        _ => vec![],
    }
}

fn path_of(v: &Value) -> Option<&str> {
    v.attr("path").and_then(Value::as_str)
}

pub fn modify_plan(plan: &mut PlanChange) {
    let node = plan.planned.attr("node").and_then(Value::as_str).map(str::to_string);
    let vmid = plan.planned.attr("vm_id").and_then(Value::as_i64);
    if let (Some(n), Some(id), Some(slot)) = (node, vmid, plan.planned.attr_mut("id")) {
        *slot = Value::string(format!("{n}/{id}"));
    }
    // The preset's swap of 0 shows in the plan when swap_mb is left unset.
    let k8s = plan.planned.attr("kubernetes_node").and_then(Value::as_bool) == Some(true);
    let swap_unset = plan.config.attr("swap_mb").is_none_or(|v| v.is_null());
    if k8s && swap_unset {
        if let Some(slot) = plan.planned.attr_mut("swap_mb") {
            *slot = Value::from(0i64);
        }
    }
    if plan.is_create() {
        let missing = |a: &str| plan.config.attr(a).is_none_or(|v| v.is_null());
        if missing("ostemplate") && missing("clone") {
            err(
                &mut plan.diagnostics,
                AttributePath::root("ostemplate"),
                "Missing container source",
                "a new container needs ostemplate (e.g. \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\") or a clone block.".into(),
            );
        }
        return;
    }

    let prior_root = plan.prior.attr("rootfs").cloned().unwrap_or(Value::Null);
    let planned_root = plan.planned.attr("rootfs").cloned().unwrap_or(Value::Null);
    if !prior_root.is_null() && !planned_root.is_null() {
        check_volume(plan, &prior_root, &planned_root, AttributePath::root("rootfs"), "rootfs");
    }
    // Mount points are matched by path, as apply matches them.
    let old = mount_points_of(&plan.prior);
    let new = mount_points_of(&plan.planned);
    for n in &new {
        let Some(path) = path_of(n) else { continue };
        if let Some(o) = old.iter().find(|o| path_of(o) == Some(path)) {
            check_volume(plan, o, n, AttributePath::root("mount_point"), &format!("the mount point at {path}"));
        }
    }
    // (Not knowable while the whole set is unknown, e.g. a dynamic block over unknowns.)
    let new_known = plan.planned.attr("mount_point").is_none_or(|v| !v.is_unknown());
    for o in old.iter().filter(|_| new_known) {
        let Some(path) = path_of(o) else { continue };
        if new.iter().any(|n| path_of(n) == Some(path) || n.attr("path").is_some_and(Value::is_unknown)) {
            continue;
        }
        let volume = if o.attr("delete_on_remove").and_then(Value::as_bool) == Some(true) {
            "will be DESTROYED with its data (delete_on_remove = true)"
        } else {
            "is detached and kept as unused<n> in the container's config"
        };
        plan.diagnostics.push(
            Diagnostic::warning(
                format!("Mount point {path} is removed"),
                format!("The volume mounted at {path} {volume}."),
            )
            .at(AttributePath::root("mount_point")),
        );
    }

    // A different source means a different container. An imported container has no
    // recorded source (Proxmox keeps none): adding it then only records it. The same
    // holds for the keys Proxmox only takes at creation.
    for a in ["ostemplate", "clone", "ssh_public_keys"] {
        let prior = plan.prior.attr(a).cloned().unwrap_or(Value::Null);
        let planned = plan.planned.attr(a).cloned().unwrap_or(Value::Null);
        if !prior.is_null() && !prior.semantically_equal(&planned) {
            plan.require_replace(a);
        }
    }

    if ["network", "started"].iter().any(|a| plan.changed(a)) {
        plan.set_unknown("ipv4_addresses");
    }
}
