//! `strata_k3s_agent`: one k3s agent node joined to a cluster's `server_url` with its
//! token, installed as `strata_k3s_cluster` installs servers (shared `resources::k3s`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::framework::{
    ApplyResult, Attribute, AttributePath, Block, Context, Diagnostic, Diagnostics, PlanChange, Resource, Schema, Type,
    Validator, Value,
};
use crate::kube::KubeClient;
use crate::node::Node;
use crate::resources::cluster_node::{self, ClusterNodeModel};
use crate::resources::k3s::{self, config, AirgapModel, RegistryModel, AGENT_UNIT};
use crate::resources::k3s_cluster::{roll, schema::node_labels_and_taints};
use crate::resources::worker::drain;

pub struct K3sAgent;

/// No `Debug`: holds the token and a kubeconfig.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct K3sAgentModel {
    pub id: Option<String>,
    #[serde(flatten)]
    pub node: ClusterNodeModel,
    pub server_url: String,
    pub token: String,
    pub version: String,
    pub kubeconfig: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub taints: Option<Vec<String>>,
    pub config: Option<BTreeMap<String, String>>,
    pub airgap: Option<AirgapModel>,
    pub registry: Option<RegistryModel>,
    pub active: Option<bool>,
    pub installed_version: Option<String>,
}

/// The agent's config.yaml.
pub fn render(m: &K3sAgentModel) -> String {
    let mut keys: BTreeMap<String, Json> = BTreeMap::new();
    keys.insert("server".into(), json!(m.server_url));
    keys.insert("token".into(), json!(m.token));
    keys.insert("node-name".into(), json!(m.node.name));
    if let Some(a) = &m.node.address {
        keys.insert("node-ip".into(), json!(a));
    }
    let labels = k3s::node_labels(m.labels.as_ref());
    if !labels.is_empty() {
        keys.insert("node-label".into(), json!(labels));
    }
    if let Some(t) = m.taints.as_ref().filter(|t| !t.is_empty()) {
        keys.insert("node-taint".into(), json!(t));
    }
    if m.registry.is_some() {
        keys.insert("disable-default-registry-endpoint".into(), json!(true));
    }
    config::add_extra(&mut keys, m.config.as_ref());
    config::render(&keys)
}

pub fn schema() -> Schema {
    let block = Block::new(
        "One k3s agent joined to a cluster (`server_url` and the cluster's `join_token`), installed without the \
         install script like `strata_k3s_cluster`'s servers (`airgap`, `registry`, `config.yaml`, a \
         `k3s-agent.service` unit). Before the node is touched, the CA `server_url/cacerts` serves is checked \
         against the hash a full token pins (when the Terraform host reaches `server_url`; k3s checks it again on \
         the node). Create installs, starts the agent and waits until its unit is active (a \
         `Type=notify` unit: k3s reports ready once its Node is registered) and, with `kubeconfig`, until its \
         Node is Ready at `version`. A change of `version`, `config`, labels, taints, `airgap` or `registry` \
         restarts it; with `kubeconfig` this runs under the cluster-wide Lease `kube-system/strata-worker-roll` \
         (cordon, drain, replace, restart, Ready, uncordon), so `for_each` agents, workers and k3s servers roll \
         one at a time. Destroy drains the Node and deletes it (with `kubeconfig`), then stops and disables the \
         agent; its data under `/var/lib/rancher/k3s` is kept.",
    )
    .attribute(Attribute::computed("id", Type::String).description("The Node name."));
    let block = cluster_node::add_to(
        block,
        &cluster_node::Identity {
            name_rule: cluster_node::DNS_SUBDOMAIN,
            name_description: "The Node name (`node-name`). Changing it replaces the agent.",
            address_required: false,
            address_for: "",
            address_description: "The node IP (`node-ip`); default: k3s's choice.".into(),
            replace_on_change: true,
        },
    );
    let block = node_labels_and_taints(block)
        .attribute(
            Attribute::required("server_url", Type::String)
                .validate(Validator::Matches(r"https://\S+", "an https:// URL"))
                .description("The cluster's `server_url`."),
        )
        .attribute(Attribute::required("token", Type::String).sensitive().description(
            "The cluster's `join_token` (`K10<CA hash>::server:<secret>`: k3s checks the CA it is served against \
             the hash), or its secret.",
        ))
        .attribute(
            Attribute::required("version", Type::String)
                .validate(Validator::Matches(k3s::VERSION_RULE.0, k3s::VERSION_RULE.1))
                .description("The pinned k3s release, usually the cluster's."),
        )
        .attribute(Attribute::optional("kubeconfig", Type::String).sensitive().description(
            "The cluster's admin `kubeconfig`: with it the agent waits for its Node Ready, drains it before a \
             restart or destroy under the cluster-wide Lease, and deletes its Node on destroy. Without it, only \
             the unit is watched and nothing is drained.",
        ))
        .attribute(Attribute::optional("config", Type::map(Type::String)).description(
            "Extra `config.yaml` keys, checked at plan against the agent flags of `version`; keys the resource \
             writes itself are refused, naming the attribute to use.",
        ))
        .attribute(Attribute::computed("active", Type::Bool).description("k3s-agent.service is active."))
        .attribute(Attribute::computed("installed_version", Type::String).description("What `k3s --version` reports."))
        .block(k3s::airgap::block())
        .block(k3s::registry::block());
    Schema::new(0, block)
}

fn client(m: &K3sAgentModel) -> Option<anyhow::Result<KubeClient>> {
    m.kubeconfig.as_deref().map(roll::client)
}

async fn install_and_start(ctx: &Context, node: &Node, m: &K3sAgentModel, restart: bool) -> anyhow::Result<()> {
    if k3s::check_cacerts(&m.server_url, &m.token).await?.is_none() {
        tracing::info!(server_url = %m.server_url, "cacerts not reachable from the Terraform host; k3s checks the CA on the node");
    }
    k3s::install(node, "agent", &m.version, m.airgap.as_ref(), m.registry.as_ref(), &render(m)).await?;
    k3s::start(node, AGENT_UNIT, restart).await?;
    k3s::wait_for(ctx, &format!("{AGENT_UNIT} on {} active", m.node.name), || async {
        let st = node.unit_state(AGENT_UNIT).await?;
        Ok(match st.is_active() {
            true => Ok(()),
            false => Err(format!("{AGENT_UNIT} is {}{}", st.active, k3s::journal_tail(node, AGENT_UNIT).await)),
        })
    })
    .await?;
    if let Some(c) = client(m) {
        k3s::wait_node_ready(ctx, &c?, &m.node.name, &m.version).await?;
    }
    Ok(())
}

async fn observe(ctx: &Context, m: &mut K3sAgentModel) -> Result<bool, Diagnostics> {
    let node = Node::connect(ctx, &m.node.ssh).await?;
    if matches!(node.answers().await, Ok(false)) {
        ctx.warn(crate::node::gone_warning(&node, "the agent is planned to be installed again"));
        return Ok(false);
    }
    let r: anyhow::Result<()> = async {
        let st = node.unit_state(AGENT_UNIT).await?;
        m.installed_version = k3s::installed_version(&node).await?;
        let configured = node.read_file(k3s::CONFIG).await?.as_deref() == Some(render(m).as_bytes());
        // Drift (inactive, or config.yaml not as written) shows as a planned change.
        m.active = Some(st.is_active() && configured);
        Ok(())
    }
    .await;
    if let Err(e) = r {
        ctx.warn(
            Diagnostic::warning(format!("Agent {} not read", m.node.name), format!("{e:#}"))
                .at(AttributePath::root("ssh")),
        );
    }
    m.id = Some(m.node.name.clone());
    Ok(true)
}

#[async_trait]
impl Resource for K3sAgent {
    type Model = K3sAgentModel;

    fn name(&self) -> &'static str {
        "k3s_agent"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        cluster_node::validate_single(config, diags);
        k3s::validate_labels_and_taints(config, &AttributePath::default(), diags);
        config::validate(config::Role::Agent, config, diags);
        k3s::airgap::validate(config, &AttributePath::root("airgap"), diags);
        k3s::registry::validate(config, &AttributePath::root("registry"), diags);
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        if !plan.planned.is_null() {
            k3s::airgap::check_checksums(&plan.config, &AttributePath::root("airgap"), &mut plan.diagnostics);
        }
        if let Some(name @ Value::String(_)) = plan.planned.attr("name").cloned() {
            if let Some(id) = plan.planned.attr_mut("id") {
                *id = name;
            }
        }
        if plan.is_create() {
            return;
        }
        let drift = plan.prior.attr("active").and_then(Value::as_bool) != Some(true)
            || plan.prior.attr("installed_version") != plan.planned.attr("version");
        let changed = ["version", "server_url", "token", "labels", "taints", "config", "airgap", "registry", "address"]
            .iter()
            .any(|a| plan.changed(a));
        if drift || changed {
            plan.set_unknown("active");
            plan.set_unknown("installed_version");
        }
    }

    async fn create(&self, ctx: &Context, planned: K3sAgentModel) -> ApplyResult<K3sAgentModel> {
        let mut m = planned;
        let node = Node::connect(ctx, &m.node.ssh).await?;
        node.require_systemd().await?;
        install_and_start(ctx, &node, &m, false).await?;
        observe(ctx, &mut m).await?;
        Ok(m)
    }

    async fn read(&self, ctx: &Context, state: K3sAgentModel) -> Result<Option<K3sAgentModel>, Diagnostics> {
        let mut m = state;
        Ok(observe(ctx, &mut m).await?.then_some(m))
    }

    async fn update(&self, ctx: &Context, prior: K3sAgentModel, planned: K3sAgentModel) -> ApplyResult<K3sAgentModel> {
        let mut m = planned;
        let node = Node::connect(ctx, &m.node.ssh).await?;
        node.require_systemd().await?;
        let needed = k3s::installed_version(&node).await?.as_deref() != Some(m.version.as_str())
            || node.read_file(k3s::CONFIG).await?.as_deref() != Some(render(&m).as_bytes())
            || !node.unit_state(AGENT_UNIT).await?.is_active()
            || prior.airgap != m.airgap
            || prior.registry != m.registry;
        if needed {
            match client(&m) {
                Some(c) => {
                    let c = c?;
                    let name = m.node.name.clone();
                    drain::in_turn(ctx, &c, &name, async {
                        let was = c.get_node(&name).await?.is_some_and(|n| drain::cordoned_by_someone_else(&n));
                        if !was {
                            c.set_unschedulable_noted(
                                &name,
                                true,
                                Some((drain::CORDONED_FOR_UPGRADE, Some(m.version.as_str()))),
                            )
                            .await?;
                        }
                        drain::cordon_and_drain(ctx, &c, &name).await?;
                        install_and_start(ctx, &node, &m, true).await?;
                        if !was {
                            c.set_unschedulable_noted(&name, false, Some((drain::CORDONED_FOR_UPGRADE, None))).await?;
                        }
                        Ok(())
                    })
                    .await?;
                }
                None => install_and_start(ctx, &node, &m, true).await?,
            }
        }
        // k3s sets labels and taints only when the Node registers.
        if let Some(c) = client(&m) {
            k3s::reconcile_node(
                &c?,
                &m.node.name,
                m.labels.as_ref(),
                m.taints.as_ref(),
                prior.labels.as_ref(),
                prior.taints.as_ref(),
            )
            .await?;
        }
        observe(ctx, &mut m).await?;
        Ok(m)
    }

    async fn delete(&self, ctx: &Context, state: K3sAgentModel) -> Result<(), Diagnostics> {
        let node = Node::connect(ctx, &state.node.ssh).await?;
        let gone = matches!(node.answers().await, Ok(false));
        let name = state.node.name.clone();
        match client(&state) {
            Some(c) => {
                let c = c.map_err(anyhow_to_diags)?;
                let registered = c.get_node(&name).await.ok().flatten().is_some();
                let work = async {
                    if registered {
                        drain::cordon_and_drain(ctx, &c, &name).await?;
                    }
                    if !gone {
                        k3s::stop(&node, AGENT_UNIT).await?;
                    }
                    if registered {
                        c.delete_node(&name).await?;
                    }
                    anyhow::Ok(())
                };
                if registered {
                    drain::in_turn(ctx, &c, &name, work).await.map_err(anyhow_to_diags)?;
                } else {
                    work.await.map_err(anyhow_to_diags)?;
                }
            }
            None if !gone => k3s::stop(&node, AGENT_UNIT).await.map_err(anyhow_to_diags)?,
            None => {}
        }
        Ok(())
    }
}

fn anyhow_to_diags(e: anyhow::Error) -> Diagnostics {
    e.into()
}

#[cfg(test)]
mod tests;
