//! `strata_control_plane`: a kubeadm high-availability control plane behind a
//! load-balanced endpoint, on external etcd, with the cluster identity from
//! `strata_cluster_secrets`.

mod certs;
mod cluster;
mod cni;
pub(crate) mod kubeadm;
mod model;
mod pki_files;
pub(crate) mod probe;
mod reconfigure;
mod schema;
mod upgrade;
pub mod validate;

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::framework::{
    ApplyResult, AttributePath, Context, Diagnostic, Diagnostics, Failure, PlanChange, Resource, Schema, Timeouts,
    Value,
};
use crate::kube::kubeconfig;
use crate::resources::cluster_node;
pub use model::{ControlPlaneModel, JoinModel};
pub use schema::join_type;
use validate::{KubeVersion, VersionStep};

pub struct ControlPlane;

fn error_at(diags: &mut Diagnostics, path: AttributePath, summary: &str, detail: impl Into<String>) {
    diags.push(Diagnostic::error(summary, detail).at(path));
}

fn str_attr<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.attr(name).and_then(Value::as_str)
}

/// Checks across attributes: node count and uniqueness, networks, CNI settings.
fn validate_config(config: &Value, diags: &mut Diagnostics) {
    if let Some(Value::List(nodes)) = config.attr("node") {
        match nodes.len() {
            1 | 3 | 5 => {}
            n if n % 2 == 0 => diags.push(
                Diagnostic::warning(
                    "Even number of control-plane nodes",
                    format!("{n} control-plane nodes tolerate no more failures than {}; use 1, 3 or 5.", n - 1),
                )
                .at(AttributePath::root("node")),
            ),
            n => error_at(
                diags,
                AttributePath::root("node"),
                "Unsupported number of control-plane nodes",
                format!("{n} node blocks: a control plane has 1, 3 or 5 nodes."),
            ),
        }
        cluster_node::validate(nodes, |i| AttributePath::root("node").index(i), diags);
    }
    let net = |name: &str, default: &str| match config.attr(name) {
        Some(Value::String(s)) => validate::cidr(s).ok(),
        Some(Value::Null) | None => validate::cidr(default).ok(),
        _ => None,
    };
    if let (Some(pod), Some(service)) =
        (net("pod_cidr", schema::DEFAULT_POD_CIDR), net("service_cidr", schema::DEFAULT_SERVICE_CIDR))
    {
        if let Err(e) = validate::networks_apart(&pod, &service) {
            error_at(diags, AttributePath::root("service_cidr"), "Overlapping pod and service networks", e);
        }
    }
    if let Some(cni @ Value::Object(_)) = config.attr("cni") {
        validate_cni(cni, config, diags);
    }
    if let Some(Value::Map(args)) = config.attr("api_server_extra_args") {
        for (name, value) in args {
            let at = AttributePath::root("api_server_extra_args").key(name);
            if let Err(e) = validate::api_server_extra_arg(name, value.as_str()) {
                error_at(diags, at, "Invalid API server flag", e);
            }
        }
    }
    let validity = match config.attr("certificate_validity") {
        Some(Value::String(s)) => validate::certificate_validity(s).ok(),
        Some(Value::Null) | None => validate::certificate_validity(schema::DEFAULT_CERTIFICATE_VALIDITY).ok(),
        _ => None,
    };
    let renew = match config.attr("certificates_renew_before_days") {
        Some(v @ Value::Number(_)) => v.as_i64(),
        Some(Value::Null) | None => Some(schema::DEFAULT_CERTIFICATES_RENEW_BEFORE_DAYS),
        _ => None,
    };
    if let (Some(validity), Some(renew)) = (validity, renew) {
        if renew as u64 * 86_400 >= validity.as_secs() {
            error_at(
                diags,
                AttributePath::root("certificates_renew_before_days"),
                "Renewal window not shorter than the certificates' validity",
                format!(
                    "certificates_renew_before_days = {renew} is not shorter than certificate_validity ({}h): every \
                     plan would renew the certificates again. Use a window shorter than the validity.",
                    validity.as_secs() / 3600
                ),
            );
        }
    }
}

fn validate_cni(cni: &Value, config: &Value, diags: &mut Diagnostics) {
    let at = AttributePath::root("cni");
    let Some(kind) = str_attr(cni, "type").filter(|k| validate::CNI_TYPES.contains(k)) else { return };
    let set = |n: &str| cni.attr(n).is_some_and(|v| !v.is_null());
    if kind != "calico" && set("calico_encapsulation") {
        error_at(
            diags,
            at.attr("calico_encapsulation"),
            "Setting for another CNI",
            format!("calico_encapsulation applies to type = \"calico\", not {kind:?}."),
        );
    }
    if kind != "flannel" && set("flannel_backend") {
        error_at(
            diags,
            at.attr("flannel_backend"),
            "Setting for another CNI",
            format!("flannel_backend applies to type = \"flannel\", not {kind:?}."),
        );
    }
    if kind == "none" {
        return;
    }
    match cni.attr("manifest_file") {
        Some(Value::String(path)) => {
            // Only when every input is known: the rendered manifest is checked as apply would make it.
            let pod = match config.attr("pod_cidr") {
                Some(Value::String(p)) => p.clone(),
                Some(Value::Unknown) => return,
                _ => schema::DEFAULT_POD_CIDR.into(),
            };
            let m = model::CniModel {
                kind: kind.into(),
                manifest_file: Some(path.clone()),
                calico_encapsulation: str_attr(cni, "calico_encapsulation").map(str::to_string),
                flannel_backend: str_attr(cni, "flannel_backend").map(str::to_string),
            };
            if let Err(e) = cni::render(&m, &pod) {
                error_at(diags, at.attr("manifest_file"), "Unusable CNI manifest", format!("{e:#}"));
            }
        }
        Some(Value::Unknown) => {}
        _ => error_at(
            diags,
            at.attr("manifest_file"),
            "Missing CNI manifest",
            format!("type = {kind:?} needs manifest_file: the manifest on the machine that runs Terraform."),
        ),
    }
}

fn prior_model(plan: &PlanChange) -> Option<ControlPlaneModel> {
    crate::framework::model::to_model::<ControlPlaneModel>(&plan.prior).ok()
}

/// The version step of a plan, or the refusal (at `kubernetes_version`).
fn check_version_step(plan: &mut PlanChange) -> Option<VersionStep> {
    let from = KubeVersion::parse(str_attr(&plan.prior, "kubernetes_version")?).ok()?;
    let to = KubeVersion::parse(str_attr(&plan.planned, "kubernetes_version")?).ok()?;
    match validate::version_step(from, to) {
        Ok(step) => Some(step),
        Err(e) => {
            error_at(&mut plan.diagnostics, AttributePath::root("kubernetes_version"), "Unsupported version change", e);
            None
        }
    }
}

/// Settings fixed when kubeadm init made the cluster, with their defaults and why.
const FIXED_AT_INIT: [(&str, &str, &str); 4] = [
    (
        "cluster_name",
        schema::DEFAULT_CLUSTER_NAME,
        "kubeadm's clusterName is written into every kubeconfig, the kubeadm-config ConfigMap and what tools \
         (and workers) know the cluster by",
    ),
    (
        "pod_cidr",
        schema::DEFAULT_POD_CIDR,
        "every node's podCIDR is allocated from it by the controller manager and the CNI's pool holds addresses \
         of running pods",
    ),
    (
        "service_cidr",
        schema::DEFAULT_SERVICE_CIDR,
        "every Service's clusterIP (the kubernetes Service and cluster DNS among them) was allocated from it, and \
         the API server certificate names its first address",
    ),
    (
        "cluster_domain",
        schema::DEFAULT_CLUSTER_DOMAIN,
        "every kubelet resolves Services under it and the API server certificate names kubernetes.default.svc.DOMAIN",
    ),
];

/// Refuses (at the attribute) a change of a setting fixed at init while a cluster runs:
/// replacing the resource would run `kubeadm reset -f` on every node and `kubeadm
/// init` again over the live etcd. Returns whether it refused.
fn refuse_identity_changes(plan: &mut PlanChange, prior: &ControlPlaneModel) -> bool {
    // Unknown statuses (never observed) count as running: the safe side.
    let running = prior.nodes.as_ref().is_none_or(|s| s.iter().any(|s| s.joined));
    if !running {
        return false;
    }
    let before = |name: &str| match name {
        "cluster_name" => prior.cluster_name(),
        "pod_cidr" => prior.pod_cidr(),
        "service_cidr" => prior.service_cidr(),
        _ => prior.cluster_domain(),
    };
    let mut refused = false;
    for (name, default, why) in FIXED_AT_INIT {
        let after = match plan.planned.attr(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => default.to_string(),
            // Unknown until apply: the plan would be a replacement that no later check
            // can stop (at apply the create half runs with no prior state).
            _ => {
                refused = true;
                error_at(
                    &mut plan.diagnostics,
                    AttributePath::root(name),
                    &format!("{name} unknown on a running cluster"),
                    format!(
                        "{name} is only known after apply, so this plan would replace the running control plane \
                         if it changed. Give {name} a value known at plan time (it is {:?} now).",
                        before(name)
                    ),
                );
                continue;
            }
        };
        let was = before(name);
        if after == was {
            continue;
        }
        refused = true;
        error_at(
            &mut plan.diagnostics,
            AttributePath::root(name),
            &format!("{name} cannot change on a running cluster"),
            format!(
                "{name} is {was:?} on the running control plane; it is fixed when kubeadm init makes the cluster: \
                 {why}. Changing it would replace the control plane: `kubeadm reset -f` on every node, then kubeadm \
                 init again over the live etcd, breaking every worker and workload. Nothing was changed. Keep \
                 {name} = {was:?}. To build a new cluster with {after:?} on purpose, create it as a new \
                 strata_control_plane (with its own strata_cluster_secrets and etcd) and move the workloads, or \
                 take this one down first (`terraform apply -destroy -target=<this resource>`) and apply again."
            ),
        );
    }
    refused
}

/// Refuses renaming a joined control-plane node (a node block whose address stays and
/// whose name changes): its name is its Kubernetes Node name, fixed when kubeadm joined
/// it, so the update would reset that machine and join it again under the new name.
fn refuse_renames(plan: &mut PlanChange, prior: &ControlPlaneModel) {
    let joined = |name: &str| prior.nodes.as_ref().is_none_or(|s| s.iter().any(|s| s.name == name && s.joined));
    let Some(Value::List(planned)) = plan.planned.attr("node").cloned() else { return };
    for (i, n) in planned.iter().enumerate() {
        let (Some(name), Some(address)) = (str_attr(n, "name"), str_attr(n, "address")) else { continue };
        let Some(was) = prior.node.iter().find(|p| p.address() == address && p.name != name) else { continue };
        if !joined(&was.name) || planned.iter().any(|o| str_attr(o, "name") == Some(was.name.as_str())) {
            continue;
        }
        error_at(
            &mut plan.diagnostics,
            AttributePath::root("node").index(i).attr("name"),
            "A joined control-plane node cannot be renamed in place",
            format!(
                "The node at {address} joined the cluster as {:?}: that is its Kubernetes Node name, fixed when \
                 kubeadm joined it. Renaming it to {name:?} would run kubeadm reset on it and join it again. \
                 Nothing was changed. Keep name = {:?}; to rename it on purpose, remove its block in one apply \
                 (it leaves the cluster cleanly) and add it with the new name in the next.",
                was.name, was.name
            ),
        );
    }
}

#[async_trait]
impl Resource for ControlPlane {
    type Model = ControlPlaneModel;

    fn name(&self) -> &'static str {
        "control_plane"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts { read: std::time::Duration::from_secs(2 * 60), ..Timeouts::default() }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_config(config, diags);
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        let name = plan.planned.attr("cluster_name").cloned();
        if let (Some(name @ Value::String(_)), Some(id)) = (name, plan.planned.attr_mut("id")) {
            *id = name;
        }
        let hash = str_attr(&plan.planned, "ca_cert").and_then(|c| crate::pki::ca_cert_hash(c).ok());
        if let (Some(h), Some(v)) = (hash, plan.planned.attr_mut("ca_cert_hash")) {
            *v = Value::string(h);
        }
        if plan.is_create() {
            return;
        }
        let Some(prior) = prior_model(plan) else { return };
        if refuse_identity_changes(plan, &prior) {
            return;
        }
        refuse_renames(plan, &prior);
        if plan.diagnostics.has_errors() {
            return;
        }
        if check_version_step(plan).is_none() && plan.diagnostics.has_errors() {
            return;
        }
        let endpoint = str_attr(&plan.planned, "endpoint").map(str::to_string);
        let ca = str_attr(&plan.planned, "ca_cert").map(str::to_string);
        let renew = plan.planned.attr("kubeconfig_renew_before_days").and_then(Value::as_i64);
        // Re-issued at plan time only when it no longer fits or is due for renewal.
        let keep = match (&prior.kubeconfig, &endpoint, &ca, renew) {
            (Some(k), Some(e), Some(c), Some(r)) => kubeconfig::still_good(k, e, c, r),
            _ => false,
        } && !plan.changed("kubeconfig_validity_days")
            && !plan.changed("cluster_name");
        if !keep {
            plan.set_unknown("kubeconfig");
            plan.set_unknown("kubeconfig_expires_at");
        }
        // With no node joined the update runs kubeadm init again: the join token is
        // kept only if the API still has it (e.g. in an etcd restored from a snapshot).
        let none_joined = prior.nodes.as_ref().is_some_and(|s| s.iter().all(|s| !s.joined));
        if none_joined || plan.changed("endpoint") || plan.changed("ca_cert") || plan.changed("join_token_ttl_hours") {
            plan.set_unknown("join");
        }
        let drift = prior.nodes.as_ref().is_none_or(|s| s.len() != prior.node.len() || s.iter().any(|s| !s.healthy()));
        if plan.changed("kubernetes_version") {
            plan.set_unknown("last_upgrade_snapshot");
        }
        if drift || plan.changed("node") || plan.changed("kubernetes_version") || plan.changed("ca_cert") {
            plan.set_unknown("nodes");
            plan.set_unknown("certificates_expire_at");
        }
        // Within the renewal window: the apply renews every node's certificates.
        let renew_days = plan
            .planned
            .attr("certificates_renew_before_days")
            .and_then(Value::as_i64)
            .unwrap_or(schema::DEFAULT_CERTIFICATES_RENEW_BEFORE_DAYS);
        let expiry = prior.certificates_expire_at.as_deref().and_then(certs::parse_rfc3339);
        if expiry.is_some_and(|at| certs::due(at, renew_days, time::OffsetDateTime::now_utc())) {
            plan.set_unknown("certificates_expire_at");
        }
    }

    async fn create(&self, ctx: &Context, planned: ControlPlaneModel) -> ApplyResult<ControlPlaneModel> {
        let mut m = planned;
        m.version()?;
        cluster::create(ctx, &mut m).await?;
        if !cluster::observe(ctx, &mut m).await? {
            return Err(
                anyhow::anyhow!("the control plane was created but no node has kubeadm's files afterwards").into()
            );
        }
        Ok(m)
    }

    async fn read(&self, ctx: &Context, state: ControlPlaneModel) -> Result<Option<ControlPlaneModel>, Diagnostics> {
        let mut m = state;
        // Never reported gone: the cluster's identity is in state and its objects are
        // in the external etcd, so nodes that are blank or gone are drift of `nodes`,
        // and the update initialises them again with the same PKI. A create would
        // issue a new admin kubeconfig, breaking what depends on it.
        if !cluster::observe(ctx, &mut m).await? {
            ctx.warn(
                Diagnostic::warning(
                    "No control-plane node has joined",
                    "Every node answers but none has kubeadm's files (e.g. the machines were re-created blank): the \
                     next apply runs kubeadm init again with the cluster's PKI, and keeps the kubeconfig, and the join \
                     token while it is still valid.",
                )
                .at(AttributePath::root("nodes")),
            );
        }
        Ok(Some(m))
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: ControlPlaneModel,
        planned: ControlPlaneModel,
    ) -> ApplyResult<ControlPlaneModel> {
        let mut m = planned;
        // Known in the plan: no renewal planned, and the value must stay as planned.
        let planned_expiry = m.certificates_expire_at.clone();
        let from = prior.version()?;
        let to = m.version()?;
        validate::version_step(from, to).map_err(|e| anyhow::anyhow!("kubernetes_version: {e}"))?;
        cluster::ensure_kubeconfig(&mut m, prior.kubeconfig.as_deref())?;
        m.join = prior.join.clone();
        let upgraded = std::sync::atomic::AtomicBool::new(from == to);
        let mut snapshot_taken: Option<String> = None;
        let result = async {
            let names: BTreeSet<&str> = m.node.iter().map(|n| n.name.as_str()).collect();
            let leaving: Vec<_> = prior.node.iter().filter(|n| !names.contains(n.name.as_str())).cloned().collect();
            let config = m.node.clone();
            let members = cluster::connect(ctx, &config).await.map_err(|d| anyhow::anyhow!("{d}"))?;
            if from != to {
                // Nodes that have not joined yet join at the new version afterwards.
                let mut joined = Vec::new();
                for x in members {
                    if probe::inspect(&x.node).await?.joined {
                        joined.push(x);
                    }
                }
                upgrade::upgrade(&joined, &m, from, to, &mut snapshot_taken).await?;
                upgraded.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let members = cluster::connect(ctx, &config).await.map_err(|d| anyhow::anyhow!("{d}"))?;
            let initialised = cluster::converge(&m, &members).await?;
            for n in cluster::connect(ctx, &leaving).await.map_err(|d| anyhow::anyhow!("{d}"))? {
                // A removed node that no longer answers (a dead machine being repaired)
                // does not block the apply (kubespray#10649): its Node goes all the same.
                // Any other failure to reach it (host key, authentication) is an error.
                if n.node.answers().await? {
                    cluster::reset(&n.node).await?;
                } else {
                    ctx.warn(crate::node::gone_warning(
                        &n.node,
                        &format!("control-plane node {} was not reset; its Node object is deleted", n.m.name),
                    ));
                }
                cluster::admin_client(&m)?.delete_node(&n.m.name).await?;
            }
            if initialised || prior.cni != m.cni {
                cluster::apply_cni(&members[0], &m).await?;
            }
            let what = reconfigure::needed(&prior, &m);
            if what.any() && !initialised {
                reconfigure::roll(&members, &m, &what).await?;
            }
            let expiry = prior.certificates_expire_at.as_deref().and_then(certs::parse_rfc3339);
            let due = expiry
                .is_some_and(|at| certs::due(at, m.certificates_renew_before_days(), time::OffsetDateTime::now_utc()));
            if planned_expiry.is_none() && due && !initialised {
                certs::renew(&members, &m).await?;
            }
            let join_fits = m.join.as_ref().is_some_and(|j| {
                j.endpoint == m.endpoint && Some(&j.ca_cert_hash) == crate::pki::ca_cert_hash(&m.ca_cert).ok().as_ref()
            });
            // After init the token exists only if the etcd kept it (restored from a snapshot).
            let join_alive = match (&m.join, initialised) {
                (Some(j), true) => cluster::admin_client(&m)?.bootstrap_token_valid(&j.token).await?,
                _ => true,
            };
            if !join_fits || !join_alive || prior.join_token_ttl_hours != m.join_token_ttl_hours {
                cluster::mint_join(&mut m).await?;
            }
            anyhow::Ok(())
        }
        .await;
        m.last_upgrade_snapshot = snapshot_taken.or(prior.last_upgrade_snapshot.clone());
        let observed = cluster::observe(ctx, &mut m).await;
        if planned_expiry.is_some() {
            m.certificates_expire_at = planned_expiry;
        }
        match (result, observed) {
            (Ok(()), Ok(true)) => Ok(m),
            (Err(e), _) => {
                if !upgraded.load(std::sync::atomic::Ordering::Relaxed) {
                    // The roll stopped part-way: the state keeps the old version (and
                    // `nodes` which node runs which), so the next plan shows the upgrade
                    // again and its apply resumes where it stopped.
                    m.kubernetes_version = prior.kubernetes_version.clone();
                }
                Err(Failure::with_state(m, Diagnostics::from(e)))
            }
            (Ok(()), Ok(false)) => Err(anyhow::anyhow!("no control-plane node can be found after the change").into()),
            (Ok(()), Err(d)) => Err(Failure::with_state(m, d)),
        }
    }

    async fn delete(&self, ctx: &Context, state: ControlPlaneModel) -> Result<(), Diagnostics> {
        let members = cluster::connect(ctx, &state.node).await?;
        // The first node last: the others leave while the API still answers.
        for x in members.iter().rev() {
            cluster::reset(&x.node).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
