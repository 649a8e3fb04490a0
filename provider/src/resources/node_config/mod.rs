//! `strata_node_config`: a node's system configuration, applied by `strata-agent`.

mod model;
mod schema;

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use strata_agent::report::Status;
use strata_agent::Report;

use crate::agent_binary;
use crate::framework::model::to_model;
use crate::framework::{
    ApplyResult, AttributePath, Block, Context, Diagnostic, Diagnostics, Failure, Mode, Nesting, PlanChange, Resource,
    Schema, Value,
};
use crate::node::{quote, Node};
use crate::resources::connection;
pub use model::NodeConfigModel;

pub struct NodeConfig;

/// Where the agent lives on a node: per-node state, not the distribution's /usr.
const AGENT_PATH: &str = "/var/lib/strata/strata-agent";

fn agent_error(e: String) -> Diagnostics {
    Diagnostic::error("strata-agent binary not found", e).into()
}

impl NodeConfig {
    async fn remote_sha(node: &Node) -> anyhow::Result<Option<String>> {
        let out = node
            .run("checking the installed strata-agent", &format!("sha256sum {AGENT_PATH} 2>/dev/null || true"))
            .await?;
        Ok(out.stdout.split_whitespace().next().map(str::to_string))
    }

    async fn root_exists(node: &Node, m: &NodeConfigModel) -> anyhow::Result<bool> {
        match &m.root {
            Some(root) => {
                Ok(node.run("checking the root directory", &format!("test -d {}", quote(root))).await?.status == 0)
            }
            None => Ok(true),
        }
    }

    /// Uploads the agent unless the node already has this exact build; a node of
    /// another architecture is refused before anything is uploaded.
    async fn ensure_agent(node: &Node, m: &NodeConfigModel) -> anyhow::Result<String> {
        let local = agent_binary::for_resource(m.agent_binary.as_deref()).map_err(|e| anyhow!(e))?;
        let arch = node.run_ok("checking the node's architecture", "uname -m").await?;
        local.check_node(node.label(), &arch).map_err(|e| anyhow!(e))?;
        if Self::remote_sha(node).await?.as_deref() != Some(local.sha256.as_str()) {
            node.write_file(AGENT_PATH, &local.bytes, 0o755).await?;
        }
        Ok(local.sha256.clone())
    }

    /// Runs `strata-agent MODE - --json` with the spec on stdin.
    async fn run_agent(node: &Node, mode: &str, m: &NodeConfigModel) -> anyhow::Result<Report> {
        let spec = serde_json::to_vec(&m.spec_json())?;
        let mut root = m.root.as_deref().map(|r| format!(" --root {}", quote(r))).unwrap_or_default();
        if m.simulate == Some(true) {
            root.push_str(" --simulate");
        }
        let out = node
            .run_input(
                &format!("running strata-agent {mode}"),
                &format!("{AGENT_PATH} {mode} - --json{root}"),
                Some(&spec),
            )
            .await?;
        let report: Report = match serde_json::from_str(&out.stdout) {
            Ok(r) => r,
            Err(_) => {
                // A spec or usage error is `{"error": ...}`; anything else is shown raw.
                let parsed: Option<serde_json::Value> = serde_json::from_str(&out.stdout).ok();
                let msg = parsed
                    .as_ref()
                    .and_then(|j| j["error"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{}{}", out.stdout.trim(), out.stderr.trim()));
                bail!("strata-agent {mode} failed (exit {}): {msg}", out.status);
            }
        };
        if report.failed {
            let failures: Vec<String> = report
                .tasks
                .iter()
                .filter(|t| t.status == Status::Failed)
                .map(|t| format!("{}: {}", t.name, t.error.as_deref().unwrap_or("failed")))
                .collect();
            bail!("strata-agent {mode} failed on the node: {}", failures.join("; "));
        }
        Ok(report)
    }

    fn changes(report: &Report) -> Vec<String> {
        report
            .tasks
            .iter()
            .filter(|t| t.status == Status::Changed)
            .flat_map(|t| {
                if t.changes.is_empty() {
                    vec![t.name.clone()]
                } else {
                    t.changes.iter().map(|c| format!("{}: {}", t.name, c.what)).collect()
                }
            })
            .collect()
    }

    async fn converge(ctx: &Context, planned: NodeConfigModel) -> ApplyResult<NodeConfigModel> {
        let node = Node::connect(ctx, &planned.ssh).await?;
        // A machine created in the same apply may still be booting.
        node.wait_until_answers(BOOT_WAIT).await?;
        // One agent run at a time on a node, whichever process or workspace starts it.
        let _exclusive = node.exclusive("/run/lock/strata-node-config.lock").await?;
        let sha = Self::ensure_agent(&node, &planned).await?;
        if let Some(root) = &planned.root {
            node.run_ok("creating the root directory", &format!("mkdir -p -- {}", quote(root))).await?;
        }
        let mut m = planned;
        m.id = Some(m.ssh.host.clone());
        m.agent_sha256 = Some(sha);
        match Self::run_agent(&node, "apply", &m).await {
            Ok(report) => {
                m.changed_tasks =
                    Some(report.tasks.iter().filter(|t| t.status == Status::Changed).map(|t| t.name.clone()).collect());
                m.drift = Some(Vec::new());
                Ok(m)
            }
            Err(e) => {
                // Some tasks may have run: record the object so Terraform keeps track of
                // it (tainted); the agent finishes the job, handlers included, next time.
                m.changed_tasks = Some(Vec::new());
                m.drift = Some(vec!["the last apply failed".into()]);
                Err(Failure::with_state(m, Diagnostics::from(e)))
            }
        }
    }
}

/// How long create and update wait for a node that does not answer SSH yet.
const BOOT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

#[async_trait]
impl Resource for NodeConfig {
    type Model = NodeConfigModel;

    fn name(&self) -> &'static str {
        "node_config"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        connection::validate(config.attr("ssh"), &AttributePath::root("ssh"), diags);
        // A simulation lives in a tree of its own; without `root` it would be the node itself.
        if config.attr("simulate") == Some(&Value::Bool(true)) && config.attr("root").is_some_and(|r| *r == Value::Null)
        {
            diags.push(
                Diagnostic::error(
                    "`simulate` needs `root`",
                    "simulate = true keeps kernel, systemd and apt state as files inside `root`; set `root` to a directory that is not the node's own `/`.",
                )
                .at(AttributePath::root("simulate")),
            );
        }
        // The agent's own parser checks the spec: one definition of what is valid. Only
        // the known parts are checked, so a spec error shows at plan even while other
        // values (typically ssh.host, from a VM) are unknown.
        let Some(mut known) = known_parts(&schema::schema().block, config) else { return };
        // The connection is not part of the spec.
        if let Some(ssh) = known.attr_mut("ssh") {
            *ssh = Value::Object([("host".to_string(), Value::string("-"))].into());
        }
        let Ok(m) = to_model::<NodeConfigModel>(&known) else { return };
        let spec = m.spec_json().to_string();
        if let Err(e) = strata_agent::parse_spec(&spec, strata_agent::Format::Json) {
            let key = e.key.clone().unwrap_or_default();
            let top = key.split('.').next().unwrap_or_default();
            let mut d = Diagnostic::error("Invalid node configuration", format!("{key}: {}", e.message));
            if !top.is_empty() {
                d = d.at(AttributePath::root(top));
            }
            diags.push(d);
        }
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        // The id is the host at create; later `ssh` changes are how Terraform reaches
        // the same node, and keep it.
        if plan.is_create() || plan.prior.attr("id").is_none_or(Value::is_null) {
            if let Some(host) = plan.planned.attr("ssh").and_then(|s| s.attr("host")).cloned() {
                *plan.planned.attr_mut("id").expect("id attribute") = host;
            }
        }
        // A new agent build is a change to roll out.
        let chosen = plan.planned.attr("agent_binary").and_then(Value::as_str).map(str::to_string);
        let unknown = plan.planned.attr("agent_binary").is_some_and(Value::is_unknown);
        if unknown {
            plan.set_unknown("agent_sha256");
        } else {
            match agent_binary::for_resource(chosen.as_deref()) {
                Ok(local) => {
                    *plan.planned.attr_mut("agent_sha256").expect("agent_sha256 attribute") =
                        Value::string(local.sha256.clone())
                }
                // A build the configuration names must exist and be an executable now.
                Err(e) if chosen.is_some() => plan
                    .diagnostics
                    .push(Diagnostic::error("Invalid agent_binary", e).at(AttributePath::root("agent_binary"))),
                // The shipped one is checked where it is used (a plan of other resources must not fail).
                Err(_) => {}
            }
        }
        // Apply converges: whatever drift the refresh found is planned away.
        *plan.planned.attr_mut("drift").expect("drift attribute") = Value::List(Vec::new());
        if plan.is_create() || !same_apart_from_ssh(&plan.prior, &plan.planned) {
            plan.set_unknown("changed_tasks");
        }
    }

    async fn create(&self, ctx: &Context, planned: NodeConfigModel) -> ApplyResult<NodeConfigModel> {
        Self::converge(ctx, planned).await
    }

    async fn read(&self, ctx: &Context, state: NodeConfigModel) -> Result<Option<NodeConfigModel>, Diagnostics> {
        let local = agent_binary::for_resource(state.agent_binary.as_deref()).map_err(agent_error)?;
        let node = Node::connect(ctx, &state.ssh).await?;
        if !node.answers().await? {
            ctx.warn(crate::node::gone_warning(&node, "its configuration is planned again"));
            return Ok(None);
        }
        let mut m = state;
        let remote = NodeConfig::remote_sha(&node).await?;
        m.agent_sha256 = remote.clone();
        // Only this provider's own build is trusted to read the spec it writes.
        m.drift = Some(match remote {
            None => vec!["strata-agent is not installed on the node".into()],
            Some(sha) if sha != local.sha256 => vec!["the node has another strata-agent build".into()],
            Some(_) if !NodeConfig::root_exists(&node, &m).await? => vec!["the root directory is missing".into()],
            Some(_) => NodeConfig::changes(&NodeConfig::run_agent(&node, "check", &m).await?),
        });
        Ok(Some(m))
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: NodeConfigModel,
        planned: NodeConfigModel,
    ) -> ApplyResult<NodeConfigModel> {
        let apart_from_ssh = |m: &NodeConfigModel| {
            let mut j = serde_json::to_value(m).ok();
            if let Some(serde_json::Value::Object(o)) = &mut j {
                o.remove("ssh");
            }
            j
        };
        if apart_from_ssh(&prior) == apart_from_ssh(&planned) {
            // Only how Terraform reaches the node changed: no agent run, just a check
            // that the node answers there.
            let node = Node::connect(ctx, &planned.ssh).await?;
            if !node.answers().await? {
                return Err(anyhow!("{} does not answer SSH: check the ssh block", node.label()).into());
            }
            return Ok(planned);
        }
        Self::converge(ctx, planned).await
    }

    async fn delete(&self, _ctx: &Context, _state: NodeConfigModel) -> Result<(), Diagnostics> {
        // Unconfiguring a live node (its kubelet, its runtime) would break it; destroying
        // this resource only stops managing it.
        Ok(())
    }
}

/// Whether two values of the resource differ at most in `ssh`.
fn same_apart_from_ssh(a: &Value, b: &Value) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    for v in [&mut a, &mut b] {
        if let Some(ssh) = v.attr_mut("ssh") {
            *ssh = Value::Null;
        }
    }
    a.semantically_equal(&b)
}

/// The known parts of a configuration, for checking them before the rest is known:
/// an unknown optional attribute becomes null, an object whose required attribute is
/// unknown is left out (`None`; from a list, the element is dropped), an unknown block is
/// null. Collections count as unknown when any part of them is.
fn known_parts(block: &Block, v: &Value) -> Option<Value> {
    known_parts_at(block, v, true)
}

/// `top`: the resource itself, whose unknown optional attributes are checked as unset. In
/// a nested block an unknown value may be what a rule depends on (a mirror's `ca_cert`
/// from a registry not yet created), so such a block is left to the apply's check.
fn known_parts_at(block: &Block, v: &Value, top: bool) -> Option<Value> {
    let attrs = match v {
        Value::Object(attrs) => attrs,
        Value::Unknown => return None,
        other => return Some(other.clone()),
    };
    let mut out = BTreeMap::new();
    for a in &block.attributes {
        let x = attrs.get(&a.name).cloned().unwrap_or(Value::Null);
        if x.is_fully_known() {
            out.insert(a.name.clone(), x);
        } else if a.mode == Mode::Required || !top {
            return None;
        } else {
            out.insert(a.name.clone(), Value::Null);
        }
    }
    for b in &block.blocks {
        let x = attrs.get(&b.name).cloned().unwrap_or(Value::Null);
        let known = match (b.nesting, x) {
            (Nesting::Single, x) => known_parts_at(&b.block, &x, false).unwrap_or(Value::Null),
            (_, Value::List(items)) => {
                Value::List(items.iter().filter_map(|i| known_parts_at(&b.block, i, false)).collect())
            }
            (_, Value::Set(items)) => {
                Value::Set(items.iter().filter_map(|i| known_parts_at(&b.block, i, false)).collect())
            }
            (_, Value::Unknown) => Value::Null,
            (_, other) => other,
        };
        out.insert(b.name.clone(), known);
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests;
