//! `strata_load_balancer`: a keepalived (VRRP) virtual IP on two or more nodes running
//! haproxy, in front of the API servers and the ingress. Each node gets its own
//! haproxy.cfg and keepalived.conf, validated there before anything live changes.

mod check;
mod deploy;
mod regroup;
mod render;
mod schema;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::framework::model::to_model;
use crate::framework::{
    ApplyResult, Context, Diagnostic, Diagnostics, Failure, PlanChange, Resource, Schema, Timeouts, Value,
};
use crate::node::Node;
use crate::resources::cluster_node::{self, ClusterNodeModel};
use deploy::{Keepalived, NodeFiles};

pub struct LoadBalancer;

/// A node: the shared identity (`name`, `address`, `ssh`) plus its VRRP priority.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct LbNodeModel {
    #[serde(flatten)]
    pub node: ClusterNodeModel,
    pub priority: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct BackendModel {
    pub name: String,
    pub address: String,
    pub port: i64,
    pub weight: Option<i64>,
    pub backup: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct HealthCheckModel {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
    pub expect_status: Option<i64>,
    pub interval: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct FrontendModel {
    pub name: String,
    pub bind_port: i64,
    pub mode: Option<String>,
    pub balance: Option<String>,
    pub tls_certificate: Option<String>,
    pub backend: Vec<BackendModel>,
    pub health_check: Option<HealthCheckModel>,
}

/// Field names equal schema names. No `Debug`: holds the VRRP password.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct LoadBalancerModel {
    pub id: Option<String>,
    pub name: String,
    pub vip: String,
    pub interface: String,
    pub virtual_router_id: i64,
    pub auth_pass: Option<String>,
    pub advert_interval: Option<f64>,
    pub unicast: Option<bool>,
    pub nopreempt: Option<bool>,
    pub stats_port: Option<i64>,
    pub connect_timeout: Option<String>,
    pub client_timeout: Option<String>,
    pub server_timeout: Option<String>,
    pub tunnel_timeout: Option<String>,
    pub master_node: Option<String>,
    pub haproxy_config_sha256: Option<BTreeMap<String, String>>,
    pub keepalived_config_sha256: Option<BTreeMap<String, String>>,
    pub haproxy_state: Option<BTreeMap<String, String>>,
    pub keepalived_state: Option<BTreeMap<String, String>>,
    pub node: Vec<LbNodeModel>,
    pub frontend: Vec<FrontendModel>,
}

/// The computed attributes that describe the nodes as they are.
const OBSERVED: [&str; 5] =
    ["master_node", "haproxy_config_sha256", "keepalived_config_sha256", "haproxy_state", "keepalived_state"];

impl LoadBalancerModel {
    fn priority(&self, index: usize) -> i64 {
        self.node[index].priority.unwrap_or_else(|| render::default_priority(index))
    }

    fn files(&self, index: usize) -> NodeFiles {
        NodeFiles::render(self, index, self.priority(index))
    }

    /// The nodes' names: what every per-node map is keyed by.
    fn names(&self) -> Vec<String> {
        self.node.iter().map(|n| n.node.name.clone()).collect()
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.node.iter().position(|n| n.node.name == name)
    }

    /// What this node was last seen (or is planned) to be: its file digests and unit
    /// states. A node whose entry is the same in the prior state and in the plan needs
    /// nothing done (a changed `ssh` or name leaves it the same).
    fn observed_of(&self, name: &str) -> [Option<&String>; 4] {
        [&self.haproxy_config_sha256, &self.keepalived_config_sha256, &self.haproxy_state, &self.keepalived_state]
            .map(|m| m.as_ref().and_then(|m| m.get(name)))
    }

    /// Whether the node at `index` of this (planned, converged) model needs anything
    /// done: it is new, or its digests, unit states or password differ from the prior
    /// state's for the node of that name. Not when only `ssh` or other names changed.
    fn changes(&self, prior: Option<&LoadBalancerModel>, index: usize) -> bool {
        let name = &self.node[index].node.name;
        let Some(p) = prior else { return true };
        match p.same_machine(self, index) {
            Some(was) => p.observed_of(was) != self.observed_of(name) || p.auth_pass != self.auth_pass,
            None => true,
        }
    }

    /// The name in `self` (the prior state) of the node at `index` of `next`: the same
    /// name, else (a rename) a node of the same address whose name left the list.
    fn same_machine<'a>(&'a self, next: &LoadBalancerModel, index: usize) -> Option<&'a str> {
        let n = &next.node[index].node;
        let by_name = self.node.iter().find(|p| p.node.name == n.name);
        let renamed =
            || self.node.iter().find(|p| p.node.address() == n.address() && next.index_of(&p.node.name).is_none());
        by_name.or_else(renamed).map(|p| p.node.name.as_str())
    }

    /// Whether VRRP packets of `self` and `other` belong to one group: keepalived
    /// matches instances by VRID, interface and unicast, and drops packets of another
    /// VRID or password, so nodes on either side of such a change do not see each other.
    fn same_vrrp_group(&self, other: &LoadBalancerModel) -> bool {
        self.virtual_router_id == other.virtual_router_id
            && self.interface == other.interface
            && self.unicast == other.unicast
            && self.auth_pass == other.auth_pass
            && self.advert_interval == other.advert_interval
    }

    /// The digests and states a converged load balancer has: rendered files, both
    /// services active.
    fn set_expected(&mut self) {
        let mut ha = BTreeMap::new();
        let mut ka = BTreeMap::new();
        for (i, n) in self.node.iter().enumerate() {
            let f = self.files(i);
            ha.insert(n.node.name.clone(), render::sha256(&f.haproxy));
            ka.insert(n.node.name.clone(), render::keepalived_digest(&f.keepalived, self.auth_pass.as_deref()));
        }
        let active: BTreeMap<String, String> = self.names().into_iter().map(|h| (h, "active".to_string())).collect();
        self.haproxy_config_sha256 = Some(ha);
        self.keepalived_config_sha256 = Some(ka);
        self.haproxy_state = Some(active.clone());
        self.keepalived_state = Some(active);
    }

    /// The longest a VRRP election can take: a backup waits 3 advertisements plus its
    /// skew (under one interval) before it takes over; plus slack for a slow host.
    fn election_bound(&self) -> Duration {
        Duration::from_secs_f64(4.0 * self.advert_interval.unwrap_or(1.0)) + Duration::from_secs(10)
    }
}

async fn connect_all(ctx: &Context, m: &LoadBalancerModel) -> Result<Vec<Node>, Diagnostics> {
    let mut nodes = Vec::new();
    for n in &m.node {
        nodes.push(Node::connect(ctx, &n.node.ssh).await?);
    }
    Ok(nodes)
}

/// An error from a node, naming it by `name` as well as by how it is reached.
fn on_node(name: &str, e: anyhow::Error) -> anyhow::Error {
    e.context(format!("load balancer node {name:?}"))
}

/// Each node's result; every failure is reported (each names its node).
fn gather<T>(results: Vec<anyhow::Result<T>>) -> Result<Vec<T>, Diagnostics> {
    let mut ok = Vec::new();
    let mut diags = Diagnostics::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => diags.extend(e.into()),
        }
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(ok)
    }
}

/// The VIP holders among `nodes` (indices).
async fn holders(nodes: &[Node], m: &LoadBalancerModel) -> Result<Vec<usize>, Diagnostics> {
    let held = gather(join_all(nodes.iter().map(|n| deploy::holds_vip(n, m))).await)?;
    Ok(held.into_iter().enumerate().filter(|(_, h)| *h).map(|(i, _)| i).collect())
}

/// What a node of a rolling change waits for before the next one starts.
struct Healthy<'a> {
    /// The nodes changed so far.
    rolled: &'a [usize],
    /// The VRRP group changes (VRID, password, ...): changed and unchanged nodes do not
    /// hear each other, so each side may have its master for a while.
    group_changes: bool,
    /// One of `rolled` must hold the VIP: the new group has its master before the
    /// old group's last node (the holder) leaves.
    need_rolled: bool,
    /// After the last node: the node that will hold the VIP for good, when it is
    /// known. A restarted holder of the highest priority takes the VIP back a few
    /// seconds after it rejoins (preemption); returning before that would leave the
    /// move, which resets every connection through the VIP, to happen after the apply.
    settled_on: Option<usize>,
}

impl LoadBalancer {
    /// Waits (bounded) until exactly one node holds the VIP and returns its name.
    async fn wait_for_master(ctx: &Context, m: &LoadBalancerModel) -> Result<String, Diagnostics> {
        let nodes = connect_all(ctx, m).await?;
        let deadline = Instant::now() + m.election_bound();
        loop {
            let held = holders(&nodes, m).await?;
            let names: Vec<String> = held.iter().map(|i| m.node[*i].node.name.clone()).collect();
            if names.len() == 1 {
                return Ok(names[0].clone());
            }
            if Instant::now() > deadline {
                let what = if names.is_empty() {
                    "no node holds it".to_string()
                } else {
                    format!("{} all hold it (split brain: the nodes do not hear each other's VRRP)", names.join(", "))
                };
                return Err(Diagnostic::error(
                    "The VIP has no single holder",
                    format!(
                        "{} seconds after the configuration was applied, {what}. Check that the nodes reach each \
                         other on {} and share virtual_router_id and auth_pass (journalctl -u keepalived).",
                        m.election_bound().as_secs(),
                        m.interface
                    ),
                )
                .into());
            }
            crate::wait::sleep("vip_election", Duration::from_millis(200)).await;
        }
    }

    /// After one node of a rolling change: its keepalived runs and the VIP is held.
    async fn wait_healthy(
        nodes: &[Node],
        m: &LoadBalancerModel,
        node: usize,
        h: Healthy<'_>,
    ) -> Result<(), Diagnostics> {
        let deadline = Instant::now() + m.election_bound();
        let name = &m.node[node].node.name;
        loop {
            let state = nodes[node].unit_state("keepalived.service").await.map_err(|e| on_node(name, e))?;
            let held = holders(nodes, m).await?;
            let vip_ok = match h.group_changes {
                true => !held.is_empty() && (!h.need_rolled || held.iter().any(|x| h.rolled.contains(x))),
                // One group throughout: exactly one master, as before the change.
                false => held.len() == 1,
            } && h.settled_on.is_none_or(|x| held == [x]);
            if state.is_active() && vip_ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Diagnostic::error(
                    "Load balancer node not healthy after its change",
                    format!(
                        "{}s after {name:?} ({}) was changed, keepalived there is {} and the VIP is held by {} \
                         node(s){}; the nodes not yet changed were left alone (journalctl -u keepalived).",
                        m.election_bound().as_secs(),
                        nodes[node].label(),
                        state.active,
                        held.len(),
                        if h.need_rolled { ", none of them one already changed" } else { "" },
                    ),
                )
                .into());
            }
            crate::wait::sleep("load_balancer_node_healthy", Duration::from_millis(200)).await;
        }
    }

    /// Brings every node that needs it to `m` (all nodes at create; at update those
    /// whose digests, unit states or password differ from the prior state) and only
    /// checks that the others answer. The new files are validated on each node before
    /// anything live changes anywhere. While the VIP is served, nodes change one at a
    /// time, each healthy before the next: backups first, the VIP holder last.
    async fn converge(
        ctx: &Context,
        prior: Option<&LoadBalancerModel>,
        m: &LoadBalancerModel,
    ) -> Result<(), Failure<LoadBalancerModel>> {
        let nodes = connect_all(ctx, m).await?;
        let (todo, untouched): (Vec<usize>, Vec<usize>) = (0..m.node.len()).partition(|i| m.changes(prior, *i));
        // Nothing to change there: only check that the (maybe newly described) way to
        // the node reaches it.
        let nodes = &nodes;
        let reach = join_all(untouched.iter().map(|i| async move {
            match nodes[*i].answers().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(anyhow::anyhow!("{} does not answer", nodes[*i].label())),
                Err(e) => Err(e),
            }
            .map_err(|e| on_node(&m.node[*i].node.name, e))
        }))
        .await;
        gather(reach)?;
        if todo.is_empty() {
            return Ok(());
        }
        let files: Vec<NodeFiles> = (0..m.node.len()).map(|i| m.files(i)).collect();
        let files = &files;
        let checked = join_all(todo.iter().map(|i| async move {
            deploy::prepare_and_check(&nodes[*i], &files[*i]).await.map_err(|e| on_node(&m.node[*i].node.name, e))
        }))
        .await;
        gather(checked)?;
        let partial = |d: Diagnostics| {
            // Some nodes may run the new configuration: record what is known to be true.
            let mut partial = m.clone();
            for attr in OBSERVED {
                partial.clear(attr);
            }
            Failure::with_state(partial, d)
        };
        let install = |i: usize, keepalived: Keepalived| async move {
            deploy::install(&nodes[i], m, &files[i], keepalived).await.map_err(|e| on_node(&m.node[i].node.name, e))
        };
        // Who serves the VIP now (judged by the prior VIP and interface).
        let held = holders(nodes, prior.unwrap_or(m)).await.map_err(partial)?;
        if held.is_empty() {
            // Nothing serves yet (a create, or every node down): nothing to keep up.
            gather(join_all(todo.iter().map(|i| install(*i, Keepalived::Reload))).await).map_err(partial)?;
            return Ok(());
        }
        let group_changes = prior.is_some_and(|p| !p.same_vrrp_group(m));
        if let ([holder], true) = (held.as_slice(), group_changes) {
            if todo.contains(holder) {
                return regroup::regroup(nodes, m, files, &todo, *holder).await.map_err(partial);
            }
        }
        // Backups first, lowest priority first; the holder last.
        let mut order = todo.clone();
        order.sort_by_key(|i| (held.contains(i), m.priority(*i)));
        let mut rolled = Vec::new();
        for (step, i) in order.iter().enumerate() {
            // Here only when the VIP had no single holder (see regroup for the usual case).
            // The holder leaving the old group is restarted, not reloaded: a reload keeps
            // an instance of the same VRID as master without announcing the VIP again
            // (no gratuitous ARP), while clients were last sent to the new group's
            // master, which now yields to it: the VIP would not answer until their ARP
            // caches expire. Restarted, it drops the VIP, the new group's master serves,
            // and it takes the VIP back with a gratuitous ARP once elected.
            let restart = group_changes && held.contains(i);
            install(*i, if restart { Keepalived::Restart } else { Keepalived::Reload })
                .await
                .map_err(|e| partial(e.into()))?;
            rolled.push(*i);
            let next_is_holder = order.get(step + 1).is_some_and(|n| held.contains(n));
            let last = step + 1 == order.len();
            let need_rolled = group_changes && (next_is_holder || last);
            // With preemption, the node of the highest priority ends up with the VIP.
            let settled_on = (last && restart && m.nopreempt != Some(true))
                .then(|| (0..m.node.len()).max_by_key(|x| m.priority(*x)))
                .flatten();
            let h = Healthy { rolled: &rolled, group_changes, need_rolled, settled_on };
            Self::wait_healthy(nodes, m, *i, h).await.map_err(partial)?;
        }
        Ok(())
    }

    async fn apply(
        ctx: &Context,
        prior: Option<&LoadBalancerModel>,
        planned: LoadBalancerModel,
    ) -> ApplyResult<LoadBalancerModel> {
        let mut m = planned;
        m.id = Some(m.name.clone());
        for (i, n) in m.node.iter_mut().enumerate() {
            n.priority = Some(n.priority.unwrap_or_else(|| render::default_priority(i)));
        }
        m.set_expected();
        Self::converge(ctx, prior, &m).await?;
        match Self::wait_for_master(ctx, &m).await {
            Ok(master) => {
                m.master_node = Some(master);
                Ok(m)
            }
            Err(d) => Err(Failure::with_state(m, d)),
        }
    }
}

impl LoadBalancerModel {
    fn clear(&mut self, attr: &str) {
        match attr {
            "master_node" => self.master_node = None,
            "haproxy_config_sha256" => self.haproxy_config_sha256 = None,
            "keepalived_config_sha256" => self.keepalived_config_sha256 = None,
            "haproxy_state" => self.haproxy_state = None,
            "keepalived_state" => self.keepalived_state = None,
            _ => {}
        }
    }
}

#[async_trait]
impl Resource for LoadBalancer {
    type Model = LoadBalancerModel;

    fn name(&self) -> &'static str {
        "load_balancer"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        check::validate(config, diags);
    }

    /// Version 0 keyed nodes by `ssh.host`: each node gets that as its `name`, and the
    /// per-node maps and `master_node`, keyed by host, are then keyed by name as they are.
    fn upgrade_state(&self, from_version: i64, mut raw: serde_json::Value) -> Result<serde_json::Value, Diagnostics> {
        if from_version < 1 {
            cluster_node::name_from_host(raw.get_mut("node"));
        }
        Ok(raw)
    }

    fn timeouts(&self) -> Timeouts {
        // Installing two packages on every node, then an election.
        Timeouts { create: Duration::from_secs(10 * 60), ..Timeouts::default() }
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        if let Some(Value::String(name)) = plan.planned.attr("name").cloned() {
            if let Some(id) = plan.planned.attr_mut("id") {
                *id = Value::String(name);
            }
        }
        // Priorities left unset follow the nodes' order.
        let configured: Vec<bool> = match plan.config.attr("node") {
            Some(Value::List(ns)) => ns.iter().map(|n| n.attr("priority").is_some_and(|p| !p.is_null())).collect(),
            _ => Vec::new(),
        };
        if let Some(Value::List(nodes)) = plan.planned.attr_mut("node") {
            for (i, n) in nodes.iter_mut().enumerate() {
                if !configured.get(i).copied().unwrap_or(false) {
                    if let Some(p) = n.attr_mut("priority") {
                        *p = Value::int(render::default_priority(i));
                    }
                }
            }
        }
        // What the nodes will be once applied: the rendered files' digests, both
        // services active. Unknown while the configuration is not fully known.
        let mut inputs = plan.planned.clone();
        for attr in OBSERVED {
            if let Some(v) = inputs.attr_mut(attr) {
                *v = Value::Null;
            }
        }
        let expected = if inputs.is_fully_known() { to_model::<LoadBalancerModel>(&inputs).ok() } else { None };
        let mut values = BTreeMap::new();
        if let Some(mut m) = expected {
            m.set_expected();
            let map = |v: Option<BTreeMap<String, String>>| {
                Value::Map(v.unwrap_or_default().into_iter().map(|(k, v)| (k, Value::String(v))).collect())
            };
            values.insert("haproxy_config_sha256", map(m.haproxy_config_sha256));
            values.insert("keepalived_config_sha256", map(m.keepalived_config_sha256));
            values.insert("haproxy_state", map(m.haproxy_state));
            values.insert("keepalived_state", map(m.keepalived_state));
        }
        for attr in &OBSERVED[1..] {
            if let Some(v) = plan.planned.attr_mut(attr) {
                *v = values.remove(attr).unwrap_or(Value::Unknown);
            }
        }
        // Which node takes the VIP is only known once applied.
        if !plan.is_create() && !plan.planned.semantically_equal(&plan.prior) {
            plan.set_unknown("master_node");
        }
    }

    async fn create(&self, ctx: &Context, planned: LoadBalancerModel) -> ApplyResult<LoadBalancerModel> {
        Self::apply(ctx, None, planned).await
    }

    async fn read(&self, ctx: &Context, state: LoadBalancerModel) -> Result<Option<LoadBalancerModel>, Diagnostics> {
        let nodes = connect_all(ctx, &state).await?;
        // Every machine gone (the disaster): planned again, and the create deploys it
        // anew once they are back. While some answer, the last known state is kept. A
        // node that cannot be asked (bastion, DNS, login, host key) fails the refresh:
        // it may run the VIP, so it is never read as gone.
        let answers = join_all(nodes.iter().map(Node::answers)).await;
        let mut unknown = Diagnostics::new();
        for (a, name) in answers.iter().zip(state.names()) {
            if let Err(e) = a {
                unknown.push(Diagnostic::error(
                    "Load balancer node cannot be reached",
                    format!(
                        "Node {name:?}: {e:#}. The node is not known to be gone, so nothing is planned for it until \
                         it can be read."
                    ),
                ));
            }
        }
        if unknown.has_errors() {
            return Err(unknown);
        }
        if crate::node::all_gone(&answers) {
            for n in &nodes {
                ctx.warn(crate::node::gone_warning(n, "no load balancer node answers, so it is planned again"));
            }
            return Ok(None);
        }
        let observed = join_all(nodes.iter().map(|n| deploy::observe(n, &state))).await;
        let mut warnings = Diagnostics::new();
        for (r, name) in observed.iter().zip(state.names()) {
            if let Err(e) = r {
                warnings.push(Diagnostic::warning(
                    "Load balancer node not refreshed",
                    format!("{name:?} could not be read, so the last known state of the load balancer is kept: {e:#}"),
                ));
            }
        }
        if !warnings.is_empty() {
            return Err(warnings);
        }
        let observed: Vec<deploy::Observed> = observed.into_iter().map(|r| r.expect("errors returned above")).collect();
        if observed.iter().all(|o| o.haproxy_sha256 == render::ABSENT && o.keepalived_sha256 == render::ABSENT) {
            return Ok(None);
        }
        let mut m = state;
        let per_node = |f: fn(&deploy::Observed) -> String| -> BTreeMap<String, String> {
            m.names().into_iter().zip(observed.iter().map(f)).collect()
        };
        let ha = per_node(|o| o.haproxy_sha256.clone());
        let ka = per_node(|o| o.keepalived_sha256.clone());
        let hs = per_node(|o| o.haproxy_state.clone());
        let ks = per_node(|o| o.keepalived_state.clone());
        m.master_node = m.names().into_iter().zip(&observed).find(|(_, o)| o.holds_vip).map(|(h, _)| h);
        m.haproxy_config_sha256 = Some(ha);
        m.keepalived_config_sha256 = Some(ka);
        m.haproxy_state = Some(hs);
        m.keepalived_state = Some(ks);
        Ok(Some(m))
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: LoadBalancerModel,
        planned: LoadBalancerModel,
    ) -> ApplyResult<LoadBalancerModel> {
        let m = Self::apply(ctx, Some(&prior), planned).await?;
        // Nodes that left the list lose everything this resource put there, one at a
        // time; but a machine still in the list under another name (a rename) or
        // reached another way is the same machine, and is left alone.
        let kept: Vec<&str> = m.node.iter().map(|n| n.node.address()).collect();
        let mut gone = prior.clone();
        gone.node.retain(|n| m.index_of(&n.node.name).is_none() && !kept.contains(&n.node.address()));
        if !gone.node.is_empty() {
            let nodes = connect_all(ctx, &gone).await.map_err(|d| Failure::with_state(m.clone(), d))?;
            for (n, g) in nodes.iter().zip(&gone.node) {
                deploy::remove(n, &prior)
                    .await
                    .map_err(|e| Failure::with_state(m.clone(), Diagnostics::from(on_node(&g.node.name, e))))?;
            }
        }
        Ok(m)
    }

    async fn delete(&self, ctx: &Context, state: LoadBalancerModel) -> Result<(), Diagnostics> {
        let nodes = connect_all(ctx, &state).await?;
        gather(join_all(nodes.iter().map(|n| deploy::remove(n, &state))).await).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
