//! `strata_load_balancer`: a keepalived (VRRP) virtual IP on two or more nodes running
//! haproxy, in front of the API servers and the ingress. Each node gets its own
//! haproxy.cfg and keepalived.conf, validated there before anything live changes.

mod check;
mod deploy;
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
use crate::resources::connection::ConnectionModel;
use deploy::NodeFiles;

pub struct LoadBalancer;

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct LbNodeModel {
    pub address: Option<String>,
    pub priority: Option<i64>,
    pub ssh: ConnectionModel,
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

    fn hosts(&self) -> Vec<String> {
        self.node.iter().map(|n| n.ssh.host.clone()).collect()
    }

    /// The digests and states a converged load balancer has: rendered files, both
    /// services active.
    fn set_expected(&mut self) {
        let mut ha = BTreeMap::new();
        let mut ka = BTreeMap::new();
        for (i, n) in self.node.iter().enumerate() {
            let f = self.files(i);
            ha.insert(n.ssh.host.clone(), render::sha256(&f.haproxy));
            ka.insert(n.ssh.host.clone(), render::keepalived_digest(&f.keepalived, self.auth_pass.as_deref()));
        }
        let active: BTreeMap<String, String> = self.hosts().into_iter().map(|h| (h, "active".to_string())).collect();
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
        nodes.push(Node::connect(ctx, &n.ssh).await?);
    }
    Ok(nodes)
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

impl LoadBalancer {
    /// Validates on every node, then installs on every node: a configuration one node
    /// refuses changes nothing live anywhere.
    async fn converge(ctx: &Context, m: &LoadBalancerModel) -> Result<(), Failure<LoadBalancerModel>> {
        let nodes = connect_all(ctx, m).await?;
        let files: Vec<NodeFiles> = (0..m.node.len()).map(|i| m.files(i)).collect();
        gather(join_all(nodes.iter().zip(&files).map(|(n, f)| deploy::prepare_and_check(n, f))).await)?;
        let installed = gather(join_all(nodes.iter().zip(&files).map(|(n, f)| deploy::install(n, m, f))).await);
        if let Err(d) = installed {
            // Some nodes may run the new configuration: record what is known to be true.
            let mut partial = m.clone();
            for attr in OBSERVED {
                partial.clear(attr);
            }
            return Err(Failure::with_state(partial, d));
        }
        Ok(())
    }

    /// Waits (bounded) until exactly one node holds the VIP and returns its host.
    async fn wait_for_master(ctx: &Context, m: &LoadBalancerModel) -> Result<String, Diagnostics> {
        let nodes = connect_all(ctx, m).await?;
        let deadline = Instant::now() + m.election_bound();
        loop {
            let held = gather(join_all(nodes.iter().map(|n| deploy::holds_vip(n, m))).await)?;
            let holders: Vec<String> = m.hosts().into_iter().zip(held).filter(|(_, h)| *h).map(|(h, _)| h).collect();
            if holders.len() == 1 {
                return Ok(holders[0].clone());
            }
            if Instant::now() > deadline {
                let what = if holders.is_empty() {
                    "no node holds it".to_string()
                } else {
                    format!("{} all hold it (split brain: the nodes do not hear each other's VRRP)", holders.join(", "))
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
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn apply(ctx: &Context, planned: LoadBalancerModel) -> ApplyResult<LoadBalancerModel> {
        Self::converge(ctx, &planned).await?;
        let mut m = planned;
        m.id = Some(m.name.clone());
        for (i, n) in m.node.iter_mut().enumerate() {
            n.priority = Some(n.priority.unwrap_or_else(|| render::default_priority(i)));
        }
        m.set_expected();
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
        Self::apply(ctx, planned).await
    }

    async fn read(&self, ctx: &Context, state: LoadBalancerModel) -> Result<Option<LoadBalancerModel>, Diagnostics> {
        let nodes = connect_all(ctx, &state).await?;
        // Every machine gone (the disaster): planned again, and the create deploys it
        // anew once they are back. While some answer, the last known state is kept. A
        // node that cannot be asked (bastion, DNS, login, host key) fails the refresh:
        // it may run the VIP, so it is never read as gone.
        let answers = join_all(nodes.iter().map(Node::answers)).await;
        let mut unknown = Diagnostics::new();
        for a in &answers {
            if let Err(e) = a {
                unknown.push(Diagnostic::error(
                    "Load balancer node cannot be reached",
                    format!(
                        "{e:#}. The node is not known to be gone, so nothing is planned for it until it can be read."
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
        for (r, host) in observed.iter().zip(state.hosts()) {
            if let Err(e) = r {
                warnings.push(Diagnostic::warning(
                    "Load balancer node not refreshed",
                    format!("{host} could not be read, so the last known state of the load balancer is kept: {e:#}"),
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
            m.hosts().into_iter().zip(observed.iter().map(f)).collect()
        };
        let ha = per_node(|o| o.haproxy_sha256.clone());
        let ka = per_node(|o| o.keepalived_sha256.clone());
        let hs = per_node(|o| o.haproxy_state.clone());
        let ks = per_node(|o| o.keepalived_state.clone());
        m.master_node = m.hosts().into_iter().zip(&observed).find(|(_, o)| o.holds_vip).map(|(h, _)| h);
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
        let m = Self::apply(ctx, planned).await?;
        // Nodes that left the list lose everything this resource put there.
        let kept = m.hosts();
        let mut gone = prior.clone();
        gone.node.retain(|n| !kept.contains(&n.ssh.host));
        if !gone.node.is_empty() {
            let nodes = connect_all(ctx, &gone).await.map_err(|d| Failure::with_state(m.clone(), d))?;
            gather(join_all(nodes.iter().map(|n| deploy::remove(n, &prior))).await)
                .map_err(|d| Failure::with_state(m.clone(), d))?;
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
