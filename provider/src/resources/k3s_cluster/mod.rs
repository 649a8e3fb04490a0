//! `strata_k3s_cluster`: k3s servers (embedded etcd or an external datastore),
//! installed without the install script, formed, rolled and removed one at a time.

pub mod install;
pub mod model;
pub mod roll;
pub mod schema;

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::framework::{
    ApplyResult, AttributePath, Context, Diagnostic, Diagnostics, PlanChange, Resource, Schema, Value,
};
use crate::node::Node;
use crate::resources::cluster_node;
use crate::resources::k3s::{self, config::Role};
use crate::resources::worker::drain;
use model::K3sClusterModel;

pub struct K3sCluster;

fn servers_of(config: &Value) -> Option<&Vec<Value>> {
    match config.attr("server") {
        Some(Value::List(items)) => Some(items),
        _ => None,
    }
}

fn is_set(config: &Value, name: &str) -> bool {
    config.attr(name).is_some_and(|v| !v.is_null())
}

/// Plan-time checks across attributes.
fn validate_config(config: &Value, diags: &mut Diagnostics) {
    let external = is_set(config, "datastore");
    if let Some(items) = servers_of(config) {
        cluster_node::validate(items, |i| AttributePath::root("server").index(i), diags);
        for (i, s) in items.iter().enumerate() {
            k3s::validate_labels_and_taints(s, &AttributePath::root("server").index(i), diags);
        }
        if !external && items.len() % 2 == 0 {
            diags.push(
                Diagnostic::error(
                    "Even number of servers",
                    format!(
                        "embedded etcd needs an odd number of servers (quorum), got {}. Add or remove a server, or \
                         use an external datastore.",
                        items.len()
                    ),
                )
                .at(AttributePath::root("server")),
            );
        }
    }
    if external {
        for name in ["etcd_snapshot", "restore_from_snapshot"] {
            if is_set(config, name) {
                diags.push(
                    Diagnostic::error(
                        "Snapshots need embedded etcd",
                        format!(
                            "{name} works on k3s's embedded etcd; with datastore the data is in the external \
                             datastore: back it up and restore it there. Remove {name} or datastore."
                        ),
                    )
                    .at(AttributePath::root(name)),
                );
            }
        }
    }

    k3s::config::validate(Role::Server, config, diags);
    k3s::airgap::validate(config, &AttributePath::root("airgap"), diags);
    k3s::registry::validate(config, &AttributePath::root("registry"), diags);
}

/// `server_url` from the configuration, when it is known.
fn planned_server_url(v: &Value) -> Option<String> {
    let sans: Option<Vec<String>> = match v.attr("tls_san") {
        Some(Value::List(l)) => Some(l.iter().map(|s| s.as_str().map(str::to_string)).collect::<Option<_>>()?),
        Some(Value::Null) | None => None,
        _ => return None,
    };
    let first = servers_of(v)?.first()?;
    let address = match first.attr("address") {
        Some(Value::String(a)) => a.clone(),
        Some(Value::Null) | None => first.attr("ssh")?.attr("host")?.as_str()?.to_string(),
        _ => return None,
    };
    Some(model::server_url(sans.as_deref(), Some(&address)))
}

/// `restore_from_snapshot` is read when the cluster is formed: then it must be a file
/// on this machine (checked at plan, only when it will be used).
fn check_restore_file(plan: &mut PlanChange) {
    if let Some(Value::String(p)) = plan.planned.attr("restore_from_snapshot") {
        if !std::path::Path::new(p).is_file() {
            let p = p.clone();
            plan.diagnostics.push(
                Diagnostic::error(
                    "restore_from_snapshot not found",
                    format!("{p} is not a file on the machine that runs Terraform: the cluster is formed from it."),
                )
                .at(AttributePath::root("restore_from_snapshot")),
            );
        }
    }
}

fn modify(plan: &mut PlanChange) {
    if !plan.planned.is_null() {
        k3s::airgap::check_checksums(&plan.config, &AttributePath::root("airgap"), &mut plan.diagnostics);
    }
    let url = planned_server_url(&plan.planned);
    if let (Some(u), Some(v)) = (&url, plan.planned.attr_mut("server_url")) {
        *v = Value::string(u.clone());
    }
    if plan.is_create() {
        check_restore_file(plan);
        return;
    }
    // The token encrypts the bootstrap data: it never changes.
    if let (Some(Value::String(before)), Some(Value::String(after))) =
        (plan.prior.attr("token"), plan.planned.attr("token"))
    {
        if before != after {
            plan.diagnostics.push(
                Diagnostic::error(
                    "token cannot change",
                    "The cluster's bootstrap data is encrypted with its token: k3s would fail with `bootstrap data \
                     already found and encrypted with different token`. Set token back to the value in state (or \
                     remove it from the configuration to keep it).",
                )
                .at(AttributePath::root("token")),
            );
        }
    }
    let prior: Option<K3sClusterModel> = crate::framework::model::to_model(&plan.prior).ok();
    let Some(prior) = prior else { return };
    if let (Some(id), None) = (&prior.id, &prior.ca_cert) {
        let restore = is_set(&plan.planned, "restore_from_snapshot");
        let allow = plan.planned.attr("allow_empty_cluster").and_then(Value::as_bool) == Some(true);
        let then = match (restore, allow) {
            (true, _) => "The apply restores it from restore_from_snapshot.".to_string(),
            (false, true) => "The apply forms a new, empty cluster (allow_empty_cluster = true).".to_string(),
            (false, false) => format!("The apply will refuse it: {}", roll::refusal(id)),
        };
        plan.diagnostics.push(
            Diagnostic::warning(
                "k3s cluster data lost",
                format!("Every server of k3s cluster {id} is gone or without data. {then}"),
            )
            .at(AttributePath::root("restore_from_snapshot")),
        );
        for a in ["kubeconfig", "ca_cert", "join_token", "servers"] {
            plan.set_unknown(a);
        }
        check_restore_file(plan);
        return;
    }
    let version = plan.planned.attr("version").and_then(Value::as_str).unwrap_or_default().to_string();
    let drift = prior.servers.as_ref().is_none_or(|ss| {
        ss.len() != prior.server.len() || ss.iter().any(|s| !s.active || !s.configured || s.version != version)
    });
    let changed = [
        "server",
        "version",
        "tls_san",
        "disable",
        "flannel_backend",
        "config",
        "datastore",
        "etcd_snapshot",
        "airgap",
        "registry",
    ]
    .iter()
    .any(|a| plan.changed(a));
    if drift || changed {
        plan.set_unknown("servers");
    }
    if url.as_deref() != prior.server_url.as_deref() {
        plan.set_unknown("kubeconfig");
    }
}

#[async_trait]
impl Resource for K3sCluster {
    type Model = K3sClusterModel;

    fn name(&self) -> &'static str {
        "k3s_cluster"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_config(config, diags);
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        modify(plan);
    }

    async fn create(&self, ctx: &Context, planned: K3sClusterModel) -> ApplyResult<K3sClusterModel> {
        let mut m = planned;
        let nodes = roll::connect(ctx, &m.server).await?;
        let formed = async {
            roll::form(ctx, &mut m, &nodes).await?;
            roll::read_outputs(&mut m, &nodes[0]).await
        }
        .await;
        // Once anything ran, the state keeps the cluster (its token above all): the
        // next refresh reads what is there and the apply goes on from it.
        let url = m.server_url();
        m.id.get_or_insert(url);
        if let Err(e) = formed {
            return Err(crate::framework::Failure::with_state(m, e));
        }
        if let Err(d) = roll::observe(ctx, &mut m).await {
            return Err(crate::framework::Failure::with_state(m, d));
        }
        Ok(m)
    }

    async fn read(&self, ctx: &Context, state: K3sClusterModel) -> Result<Option<K3sClusterModel>, Diagnostics> {
        let mut m = state;
        roll::observe(ctx, &mut m).await?;
        Ok(Some(m))
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: K3sClusterModel,
        planned: K3sClusterModel,
    ) -> ApplyResult<K3sClusterModel> {
        let mut m = planned;
        // Never changed (refused at plan); unset in the configuration keeps it.
        m.token = prior.token.clone().or(m.token);
        m.id = prior.id.clone();
        let nodes = roll::connect(ctx, &m.server).await?;
        if let (Some(id), None) = (&prior.id, &prior.ca_cert) {
            if m.restore_from_snapshot.is_none() && m.allow_empty_cluster != Some(true) {
                return Err(anyhow::anyhow!(roll::refusal(id)).into());
            }
            m.kubeconfig = prior.kubeconfig.clone();
            roll::form(ctx, &mut m, &nodes).await?;
            roll::read_outputs(&mut m, &nodes[0]).await?;
            roll::observe(ctx, &mut m).await?;
            return Ok(m);
        }
        let kubeconfig = prior.kubeconfig.clone().ok_or_else(|| anyhow::anyhow!("no kubeconfig in state"))?;
        let client = roll::client(&kubeconfig)?;
        let before: BTreeSet<&str> = prior.server.iter().map(|s| s.node.name.as_str()).collect();
        let after: BTreeSet<&str> = m.server.iter().map(|s| s.node.name.as_str()).collect();
        let leaving: Vec<_> = prior.server.iter().filter(|s| !after.contains(s.node.name.as_str())).collect();
        let mut leaving_nodes = Vec::new();
        for s in &leaving {
            leaving_nodes.push(Node::connect(ctx, &s.node.ssh).await?);
        }
        let result: anyhow::Result<()> = async {
            // Servers that were in the cluster and stay, and which of them still hold
            // its data (a machine re-created blank does not).
            let mut blank = vec![false; m.server.len()];
            for (i, s) in m.server.iter().enumerate() {
                if before.contains(s.node.name.as_str()) {
                    blank[i] = roll::token_on(&nodes[i]).await?.is_none();
                }
            }
            let via_i = (0..m.server.len())
                .find(|&i| before.contains(m.server[i].node.name.as_str()) && !blank[i])
                .ok_or_else(|| anyhow::anyhow!("no server that stays in the cluster holds its data"))?;
            let via = &nodes[via_i];
            // Existing servers roll first, one at a time, then new ones join, then
            // removed ones leave: the quorum never loses two members at once.
            for (i, s) in m.server.iter().enumerate() {
                if !before.contains(s.node.name.as_str()) {
                    continue;
                }
                if blank[i] {
                    if i == 0 {
                        anyhow::bail!(
                            "server {} (the first block, which initialises the cluster with cluster-init) came back \
                             without data while other servers run the cluster: it would start a new cluster. Move \
                             its block after another server's so that it joins, and apply again. Nothing was changed \
                             on it.",
                            s.node.name
                        );
                    }
                    // Re-created blank: its old Node and etcd member go, then it joins.
                    drain::in_turn(ctx, &client, &s.node.name, async {
                        client.delete_node(&s.node.name).await?;
                        roll::ensure_member_removed(ctx, via, &m, s).await?;
                        roll::join(ctx, &client, &nodes[i], via, &m, i).await
                    })
                    .await?;
                } else if roll::needs_roll(&nodes[i], &prior, &m, i).await? {
                    drain::in_turn(ctx, &client, &s.node.name, roll::roll_one(ctx, &client, &nodes[i], &m, i)).await?;
                }
            }
            for (i, s) in m.server.iter().enumerate() {
                if !before.contains(s.node.name.as_str()) {
                    roll::join(ctx, &client, &nodes[i], via, &m, i).await?;
                }
            }
            // Labels and taints of servers whose Node exists (k3s sets them only at registration).
            for s in &m.server {
                let p = prior.server.iter().find(|p| p.node.name == s.node.name);
                k3s::reconcile_node(
                    &client,
                    &s.node.name,
                    s.labels.as_ref(),
                    s.taints.as_ref(),
                    p.and_then(|p| p.labels.as_ref()),
                    p.and_then(|p| p.taints.as_ref()),
                )
                .await?;
            }
            for (s, node) in leaving.iter().zip(&leaving_nodes) {
                drain::in_turn(ctx, &client, &s.node.name, roll::remove(ctx, &client, &m, s, node, via)).await?;
            }
            Ok(())
        }
        .await;
        let observed = roll::observe(ctx, &mut m).await;
        match (result, observed) {
            (Ok(()), Ok(())) => Ok(m),
            (Err(e), _) => Err(crate::framework::Failure::with_state(m, e)),
            (Ok(()), Err(d)) => Err(crate::framework::Failure::with_state(m, d)),
        }
    }

    async fn delete(&self, ctx: &Context, state: K3sClusterModel) -> Result<(), Diagnostics> {
        let nodes = roll::connect(ctx, &state.server).await?;
        let wipe = state.delete_data_on_destroy == Some(true);
        for (n, s) in nodes.iter().zip(&state.server) {
            if matches!(n.answers().await, Ok(false)) {
                ctx.warn(crate::node::gone_warning(n, &format!("server {} has nothing to stop", s.node.name)));
                continue;
            }
            roll::uninstall(n, wipe).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
