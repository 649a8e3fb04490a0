//! `strata_worker`: a Kubernetes worker node joined with kubeadm, with the labels and
//! taints it owns kept on its Node object.

pub(crate) mod drain;
mod join;
mod model;
mod schema;

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::framework::{
    ApplyResult, AttributePath, Context, Diagnostic, Diagnostics, PlanChange, Resource, Schema, Value,
};
use crate::kube::{names, packages, KubeClient, Taint};
use crate::node::Node;
use crate::resources::cluster_node;
use crate::resources::control_plane::validate::{version_step, KubeVersion};
use model::WorkerModel;

pub struct Worker;

const PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];

/// Labels and taints Kubernetes would reject, named by attribute.
fn validate_config(config: &Value, diags: &mut Diagnostics) {
    if let Some(Value::Map(labels)) = config.attr("labels") {
        for (k, v) in labels {
            let at = AttributePath::root("labels").key(k);
            if let Err(e) = names::qualified_name(k) {
                diags.push(Diagnostic::error("Invalid label key", e).at(at.clone()));
            }
            if let Some(v) = v.as_str() {
                if let Err(e) = names::label_value(v) {
                    diags.push(Diagnostic::error("Invalid label value", e).at(at));
                }
            }
        }
    }
    if let Some(Value::List(taints)) = config.attr("taint") {
        let mut seen = BTreeSet::new();
        for (i, t) in taints.iter().enumerate() {
            let at = AttributePath::root("taint").index(i);
            let key = t.attr("key").and_then(Value::as_str);
            let effect = t.attr("effect").and_then(Value::as_str);
            if let Some(k) = key {
                if let Err(e) = names::qualified_name(k) {
                    diags.push(Diagnostic::error("Invalid taint key", e).at(at.attr("key")));
                }
                if model::KUBERNETES_TAINTS.contains(&k) {
                    diags.push(
                        Diagnostic::error(
                            "Taint managed by Kubernetes",
                            format!(
                                "{k} is set and removed by Kubernetes itself (the node lifecycle controller, the \
                                 kubelet or `kubectl cordon`); a taint block for it would fight them. Remove the block."
                            ),
                        )
                        .at(at.attr("key")),
                    );
                }
            }
            if let Some(v) = t.attr("value").and_then(Value::as_str) {
                if let Err(e) = names::label_value(v) {
                    diags.push(Diagnostic::error("Invalid taint value", e).at(at.attr("value")));
                }
            }
            if let Some(e) = effect {
                if let Err(e) = names::taint_effect(e) {
                    diags.push(Diagnostic::error("Invalid taint effect", e).at(at.attr("effect")));
                }
            }
            if let (Some(k), Some(e)) = (key, effect) {
                if !seen.insert((k.to_string(), e.to_string())) {
                    diags.push(
                        Diagnostic::error("Duplicate taint", format!("Another taint has key {k:?} and effect {e}."))
                            .at(at),
                    );
                }
            }
        }
    }
    cluster_node::validate_single(config, diags);
}

/// Sets the labels and taints the worker declares, deletes those it no longer declares
/// (`removed_*`), and leaves everything else on the Node alone.
async fn label_and_taint(m: &WorkerModel, removed_labels: &[String], removed_taints: &[Taint]) -> anyhow::Result<()> {
    let client = join::client(m)?;
    client.patch_node(&m.node.name, &m.labels(), removed_labels, &m.taints(), removed_taints).await?;
    Ok(())
}

/// The packages (unless `install_packages = false`), then `kubeadm join` with a token
/// that is still valid. The packages install while other workers change (many new
/// workers download at once); the join starts the kubelet, so it and the Node's
/// registration run in turn. A Node object of the same name left by the previous
/// machine (e.g. in an etcd restored from a snapshot, still marked Ready) is deleted
/// first, as kubeadm refuses to join over a Ready one; the labels and taints are set
/// again afterwards.
async fn install_and_join(ctx: &Context, node: &Node, m: &WorkerModel) -> anyhow::Result<()> {
    if m.install_packages != Some(false) {
        let v = KubeVersion::parse(&m.kubernetes_version).map_err(|e| anyhow::anyhow!("kubernetes_version: {e}"))?;
        packages::install_held(node, &PACKAGES, &v.package_version()).await?;
    }
    let client = join::client(m)?;
    drain::in_turn(ctx, &client, &m.node.name, async {
        let token = join::token(m).await?;
        client.clear_stale_node(&m.node.name, m.node.address()).await?;
        join::kubeadm_join(node, m, &token).await?;
        join::wait_for_node(&client, &m.node.name).await
    })
    .await
}

/// Observes the node and its Node object into `m`; `false` when it is gone: its node
/// does not answer SSH (the machine was deleted; a warning says so), or there is no
/// kubelet.conf on the node and no Node object.
async fn observe(ctx: &Context, m: &mut WorkerModel) -> Result<bool, Diagnostics> {
    let node = Node::connect(ctx, &m.node.ssh).await?;
    // The state's `joined` would otherwise survive the machine and nothing be planned.
    // Other errors (a host key that does not match) are not "gone": warned below.
    if matches!(node.answers().await, Ok(false)) {
        ctx.warn(crate::node::gone_warning(&node, "the worker is planned to join again"));
        return Ok(false);
    }
    let joined = match node.run("looking for kubeadm's files", "test -f /etc/kubernetes/kubelet.conf").await {
        Ok(out) => Some(out.status == 0),
        Err(e) => {
            ctx.warn(
                Diagnostic::warning(format!("Worker {} not reached", m.node.name), format!("{e:#}"))
                    .at(AttributePath::root("ssh")),
            );
            None
        }
    };
    let object = match join::client(m) {
        Ok(c) => c.get_node(&m.node.name).await,
        Err(e) => Err(e),
    };
    let object = match object {
        Ok(o) => o,
        Err(e) => {
            ctx.warn(
                Diagnostic::warning(format!("Node {} not read through the API", m.node.name), format!("{e:#}"))
                    .at(AttributePath::root("labels")),
            );
            m.joined = joined.or(m.joined);
            return Ok(true);
        }
    };
    if joined == Some(false) && object.is_none() {
        return Ok(false);
    }
    m.joined = Some(joined.unwrap_or(false) && object.is_some());
    if let Some(o) = object {
        // Only the labels this resource owns: others (the kubelet's) are not ours.
        if let Some(labels) = &mut m.labels {
            let observed: std::collections::BTreeMap<String, String> =
                labels.keys().filter_map(|k| o.labels.get(k).map(|v| (k.clone(), v.clone()))).collect();
            *labels = observed;
        }
        // Only the taints this resource owns (those in its state): the node lifecycle
        // controller's, `kubectl cordon`'s and other tools' are neither drift nor ours.
        m.taint = model::owned_taints(&m.taint, &o.taints);
    }
    m.id = Some(m.node.name.clone());
    Ok(true)
}

#[async_trait]
impl Resource for Worker {
    type Model = WorkerModel;

    fn name(&self) -> &'static str {
        "worker"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_config(config, diags);
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        if let Some(name @ Value::String(_)) = plan.planned.attr("name").cloned() {
            if let Some(id) = plan.planned.attr_mut("id") {
                *id = name;
            }
        }
        if plan.is_create() {
            return;
        }
        let version =
            |v: &Value| v.attr("kubernetes_version").and_then(Value::as_str).and_then(|s| KubeVersion::parse(s).ok());
        if let (Some(from), Some(to)) = (version(&plan.prior), version(&plan.planned)) {
            if let Err(e) = version_step(from, to) {
                plan.diagnostics.push(
                    Diagnostic::error("Unsupported version change", e).at(AttributePath::root("kubernetes_version")),
                );
            }
        }
        if plan.prior.attr("joined").and_then(Value::as_bool) == Some(false) {
            plan.set_unknown("joined");
        }
    }

    async fn create(&self, ctx: &Context, planned: WorkerModel) -> ApplyResult<WorkerModel> {
        let mut m = planned;
        let node = Node::connect(ctx, &m.node.ssh).await?;
        node.require_systemd().await?;
        let joined = node.run("looking for kubeadm's files", "test -f /etc/kubernetes/kubelet.conf").await?.status == 0;
        if joined {
            // Adopt a node that already joined this cluster; refuse one of another.
            let ca = node.read_file("/etc/kubernetes/pki/ca.crt").await?.unwrap_or_default();
            let hash = crate::pki::ca_cert_hash(&String::from_utf8_lossy(&ca)).unwrap_or_default();
            if hash != m.join.ca_cert_hash {
                return Err(anyhow::anyhow!(
                    "{} ({}) already joined a Kubernetes cluster whose CA is not the one in join.ca_cert_hash: \
                     refusing to touch it (nothing was changed). Run `kubeadm reset -f` there first if it should \
                     join this cluster.",
                    m.node.name,
                    node.label()
                )
                .into());
            }
            join::wait_for_node(&join::client(&m)?, &m.node.name).await?;
        } else {
            install_and_join(ctx, &node, &m).await?;
        }
        label_and_taint(&m, &[], &[]).await?;
        if !observe(ctx, &mut m).await? {
            return Err(
                anyhow::anyhow!("the worker joined but neither its node nor its Node object can be found").into()
            );
        }
        Ok(m)
    }

    async fn read(&self, ctx: &Context, state: WorkerModel) -> Result<Option<WorkerModel>, Diagnostics> {
        let mut m = state;
        Ok(observe(ctx, &mut m).await?.then_some(m))
    }

    async fn update(&self, ctx: &Context, prior: WorkerModel, planned: WorkerModel) -> ApplyResult<WorkerModel> {
        let mut m = planned;
        // A changed `ssh` block (host text, user, bastion...) is only how Terraform
        // reaches the node: connecting is the reachability check, nothing else runs.
        let node = Node::connect(ctx, &m.node.ssh).await?;
        node.require_systemd().await?;
        if prior.joined == Some(false) {
            // A blank machine at the worker's address (re-created) joins as at create,
            // at the planned version.
            install_and_join(ctx, &node, &m).await?;
        } else if prior.kubernetes_version != m.kubernetes_version {
            let client = join::client(&m)?;
            drain::in_turn(ctx, &client, &m.node.name, upgrade(ctx, &client, &node, &m)).await?;
        }
        let kept: BTreeSet<&String> = m.labels.iter().flatten().map(|(k, _)| k).collect();
        let removed: Vec<String> =
            prior.labels.iter().flatten().map(|(k, _)| k).filter(|k| !kept.contains(k)).cloned().collect();
        label_and_taint(&m, &removed, &model::removed_taints(&prior.taint, &m.taint)).await?;
        observe(ctx, &mut m).await?;
        Ok(m)
    }

    async fn delete(&self, ctx: &Context, state: WorkerModel) -> Result<(), Diagnostics> {
        let node = Node::connect(ctx, &state.node.ssh).await?;
        let client = join::client(&state);
        // Cordon and drain first, one worker at a time, so its pods move elsewhere before
        // kubeadm reset stops them (bounded by timeouts.delete). A Node the API does not
        // show (never registered, or the control plane is gone) has nothing to drain.
        let registered = match &client {
            Ok(c) => c.get_node(&state.node.name).await.ok().flatten().is_some(),
            Err(_) => false,
        };
        let work = async {
            if registered {
                if let Ok(c) = &client {
                    drain::cordon_and_drain(ctx, c, &state.node.name).await?;
                }
            }
            node.run_ok(
                "kubeadm reset",
                "if command -v kubeadm >/dev/null; then kubeadm reset -f; fi && rm -rf /etc/kubernetes/strata",
            )
            .await?;
            anyhow::Ok(match &client {
                Ok(c) => c.delete_node(&state.node.name).await,
                Err(e) => Err(anyhow::anyhow!("{e:#}")),
            })
        };
        // A node that never joined, or a cluster gone, has no turn to wait for.
        let result = match &client {
            Ok(c) if registered => drain::in_turn(ctx, c, &state.node.name, work).await,
            _ => work.await,
        };
        if let Err(e) = result? {
            ctx.warn(node_not_deleted(&state.node.name, e));
        }
        Ok(())
    }
}

fn node_not_deleted(name: &str, e: anyhow::Error) -> Diagnostic {
    Diagnostic::warning(
        format!("Node object {name} not deleted"),
        format!("The node was reset, but deleting its Node object through the API failed: {e:#}. Delete it with `kubectl delete node {name}`."),
    )
}

/// A version upgrade as `kubeadm upgrade` users run it: drained first, `kubeadm upgrade
/// node`, the kubelet restarted at the new version, uncordoned after (unless someone had
/// cordoned it before). Run in turn (see `drain::in_turn`).
async fn upgrade(ctx: &Context, client: &KubeClient, node: &Node, m: &WorkerModel) -> anyhow::Result<()> {
    // The cordon is noted on the Node, so an upgrade that failed after it and is applied
    // again still uncordons; one cordoned by hand before stays cordoned.
    let was_cordoned = client.get_node(&m.node.name).await?.is_some_and(|n| drain::cordoned_by_someone_else(&n));
    if !was_cordoned {
        let note = (drain::CORDONED_FOR_UPGRADE, Some(m.kubernetes_version.as_str()));
        client.set_unschedulable_noted(&m.node.name, true, Some(note)).await?;
    }
    drain::cordon_and_drain(ctx, client, &m.node.name).await?;
    let v = KubeVersion::parse(&m.kubernetes_version).map_err(|e| anyhow::anyhow!("kubernetes_version: {e}"))?;
    if m.install_packages != Some(false) {
        packages::install_held(node, &["kubeadm"], &v.package_version()).await?;
    }
    node.run_ok("kubeadm upgrade node", "kubeadm upgrade node").await?;
    if m.install_packages != Some(false) {
        packages::install_held(node, &["kubelet", "kubectl"], &v.package_version()).await?;
    }
    node.run_ok("restarting the kubelet", "systemctl daemon-reload && systemctl restart kubelet").await?;
    if !was_cordoned {
        client.set_unschedulable_noted(&m.node.name, false, Some((drain::CORDONED_FOR_UPGRADE, None))).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
