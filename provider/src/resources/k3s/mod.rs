//! What `strata_k3s_cluster` and `strata_k3s_agent` share: the pinned version, the
//! `airgap {}` install (files from the Terraform host checked by SHA-256), the
//! `registry {}` block (`/etc/rancher/k3s/registries.yaml`), `config.yaml` rendering
//! and its key checks, labels and taints, and the systemd units. The node-side paths
//! and commands are k3s's own (docs.k3s.io; see the k3s contract in the notes).

pub mod airgap;
pub mod config;
pub mod registry;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::framework::{AttributePath, Context, Diagnostic, Diagnostics, Value};
use crate::kube::{names, KubeClient};
use crate::node::Node;

pub const BINARY: &str = "/usr/local/bin/k3s";
pub const CONFIG_DIR: &str = "/etc/rancher/k3s";
pub const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
pub const IMAGES_DIR: &str = "/var/lib/rancher/k3s/agent/images";
pub const DATA_DIR: &str = "/var/lib/rancher/k3s";
pub const SERVER_UNIT: &str = "k3s.service";
pub const AGENT_UNIT: &str = "k3s-agent.service";
const POLL: Duration = Duration::from_secs(2);

/// `vX.Y.Z+k3sN`, as k3s releases are named.
pub const VERSION_RULE: (&str, &str) = (r"v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+", "a k3s release, e.g. v1.36.1+k3s1");

/// `airgap {}`: files on the Terraform host.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct AirgapModel {
    pub binary: String,
    pub sha256: BTreeMap<String, String>,
    pub images: Option<Vec<String>>,
}

/// `registry {}`.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct RegistryModel {
    pub mirrors: BTreeMap<String, Vec<String>>,
    pub ca_cert: Option<String>,
}

/// The systemd unit k3s's install script would write, without the script: `server`
/// (`k3s.service`) or `agent` (`k3s-agent.service`).
pub fn unit(role: &str) -> String {
    let env = if role == "server" { "k3s.service.env" } else { "k3s-agent.service.env" };
    format!(
        "# Written by terraform-provider-strata.\n\
         [Unit]\n\
         Description=Lightweight Kubernetes ({role})\n\
         Documentation=https://k3s.io\n\
         Wants=network-online.target\n\
         After=network-online.target\n\n\
         [Service]\n\
         Type=notify\n\
         EnvironmentFile=-/etc/systemd/system/{env}\n\
         KillMode=process\n\
         Delegate=yes\n\
         LimitNOFILE=1048576\n\
         LimitNPROC=infinity\n\
         LimitCORE=infinity\n\
         TasksMax=infinity\n\
         TimeoutStartSec=0\n\
         Restart=always\n\
         RestartSec=5s\n\
         ExecStart={BINARY} {role}\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The version the installed binary reports (`k3s --version`'s first line, third
/// word), `None` when there is no binary.
pub async fn installed_version(node: &Node) -> anyhow::Result<Option<String>> {
    let out = node.run("asking k3s its version", &format!("test -x {BINARY} && {BINARY} --version")).await?;
    if out.status != 0 {
        return Ok(None);
    }
    Ok(parse_version(&out.stdout))
}

pub fn parse_version(out: &str) -> Option<String> {
    out.lines().next()?.split_whitespace().nth(2).map(str::to_string)
}

/// Installs k3s at `version` on the node: from `airgap` (uploaded unless the node has the
/// same file), or checks the binary already there. Then the unit, `registries.yaml`
/// and `config.yaml`. Returns whether anything k3s reads at start changed.
pub async fn install(
    node: &Node,
    role: &str,
    version: &str,
    airgap: Option<&AirgapModel>,
    registry: Option<&RegistryModel>,
    config_yaml: &str,
) -> anyhow::Result<bool> {
    let mut changed = false;
    if let Some(a) = airgap {
        changed |= airgap::upload(node, a).await?;
    }
    match installed_version(node).await? {
        Some(v) if v == version => {}
        Some(v) => bail!(
            "{}: {BINARY} is k3s {v}, not {version}{}",
            node.label(),
            if airgap.is_some() { " (airgap.binary is another version)" } else { ": set airgap {} to install it" }
        ),
        None => bail!(
            "{}: {BINARY} is missing and no airgap {{}} block installs it (this provider never fetches the install \
             script): set airgap.binary, or put k3s {version} there",
            node.label()
        ),
    }
    let unit_name = if role == "server" { SERVER_UNIT } else { AGENT_UNIT };
    let unit_changed =
        node.write_validated(&format!("/etc/systemd/system/{unit_name}"), unit(role).as_bytes(), 0o644, None).await?;
    if unit_changed {
        node.run_ok("reloading systemd units", "systemctl daemon-reload").await?;
    }
    changed |= unit_changed;
    changed |= registry::write(node, registry).await?;
    changed |= node.write_validated(CONFIG, config_yaml.as_bytes(), 0o600, None).await?;
    Ok(changed)
}

/// Enables the unit and starts it without waiting for its READY (the caller waits for
/// what it needs, bounded by the operation's timeouts).
pub async fn start(node: &Node, unit: &str, restart: bool) -> anyhow::Result<()> {
    let verb = if restart { "restart" } else { "start" };
    node.run_ok(&format!("starting {unit}"), &format!("systemctl enable {unit} && systemctl {verb} --no-block {unit}"))
        .await
        .map(|_| ())
}

/// Stops and disables the unit (missing: nothing to do).
pub async fn stop(node: &Node, unit: &str) -> anyhow::Result<()> {
    node.run_ok(&format!("stopping {unit}"), &format!("systemctl disable --now {unit} 2>/dev/null || true"))
        .await
        .map(|_| ())
}

/// Waits until `check` says done (`Ok(Some(..))`); the last reason it gave is in the
/// error when the operation's time runs out.
pub async fn wait_for<T, F, Fut>(ctx: &Context, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<T, String>>>,
{
    loop {
        let last = match check().await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(why)) => why,
            Err(e) => format!("{e:#}"),
        };
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(anyhow!(
                "waiting for {what}: {last}; gave up ({}).{}", ctx.stop_reason().unwrap_or_default(), ctx.operation()
            )),
            _ = crate::wait::sleep("k3s", POLL) => {}
        }
    }
}

/// The last lines k3s logged on the node: why it does not come up (a CA hash
/// mismatch, a bad token, an unknown flag), for the error of a wait.
pub async fn journal_tail(node: &Node, unit: &str) -> String {
    match node.run("reading the k3s log", &format!("journalctl -u {unit} -n 5 --no-pager -o cat 2>/dev/null")).await {
        Ok(out) if !out.stdout.trim().is_empty() => {
            format!("; last log lines: {}", out.stdout.trim().replace('\n', " | "))
        }
        _ => String::new(),
    }
}

/// The CA hash a full token (`K10<sha256 hex of the CA bundle>::...`) pins, if it is one.
pub fn token_ca_hash(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("K10")?;
    let (hash, _) = rest.split_once("::")?;
    (hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit())).then_some(hash)
}

/// Before an agent or a joining server is started: `server_url/cacerts` (no auth)
/// must hash to what the token pins, as k3s checks it; said here instead of in the
/// node's journal. `Ok(None)`: the Terraform host cannot reach `server_url` (then k3s
/// checks it on the node).
pub async fn check_cacerts(server_url: &str, token: &str) -> anyhow::Result<Option<()>> {
    let Some(want) = token_ca_hash(token) else { return Ok(Some(())) };
    // The CA is what is checked here, by hash: the TLS certificate cannot be verified
    // before it is known (k3s does the same).
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let Ok(r) = http.get(format!("{}/cacerts", server_url.trim_end_matches('/'))).send().await else {
        return Ok(None);
    };
    let body = r.bytes().await?;
    let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    if !got.eq_ignore_ascii_case(want) {
        bail!(
            "{server_url}/cacerts serves a CA whose SHA-256 is {got}, but the token pins {want}: this token is not \
             for the cluster at server_url (nothing was changed on the node)"
        );
    }
    Ok(Some(()))
}

/// Waits until Node `name` is Ready and its kubelet reports `version`.
pub async fn wait_node_ready(ctx: &Context, client: &KubeClient, name: &str, version: &str) -> anyhow::Result<()> {
    wait_for(ctx, &format!("Node {name} Ready at {version}"), || async {
        Ok(match client.get_node(name).await? {
            None => Err(format!("Node {name} is not registered")),
            Some(n) if n.ready.as_deref() != Some("True") => {
                Err(format!("Node {name} is not Ready ({})", n.ready.as_deref().unwrap_or("no condition")))
            }
            Some(n) if n.kubelet_version.as_deref() != Some(version) => {
                Err(format!("Node {name} reports kubelet {}", n.kubelet_version.as_deref().unwrap_or("(none)")))
            }
            Some(_) => Ok(()),
        })
    })
    .await
}

/// `labels` as `node-label` entries (`k=v`).
pub fn node_labels(labels: Option<&BTreeMap<String, String>>) -> Vec<String> {
    labels.into_iter().flatten().map(|(k, v)| format!("{k}={v}")).collect()
}

/// A taint as k3s's `node-taint` takes it: `key[=value]:Effect`.
pub fn check_taint(t: &str) -> Result<(), String> {
    let Some((kv, effect)) = t.rsplit_once(':') else {
        return Err(format!("{t:?} is not key[=value]:Effect (e.g. dedicated=db:NoSchedule)"));
    };
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    names::qualified_name(key).map_err(|e| format!("{t:?}: key: {e}"))?;
    if let Some(v) = value {
        names::label_value(v).map_err(|e| format!("{t:?}: value: {e}"))?;
    }
    names::taint_effect(effect).map_err(|e| format!("{t:?}: {e}"))
}

/// Labels and taints Kubernetes would refuse, under `at` (the resource, or a server block).
pub fn validate_labels_and_taints(node: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    if let Some(Value::Map(labels)) = node.attr("labels") {
        for (k, v) in labels {
            if let Err(e) = names::qualified_name(k) {
                diags.push(Diagnostic::error("Invalid label key", e).at(at.attr("labels").key(k)));
            }
            if let Some(Err(e)) = v.as_str().map(names::label_value) {
                diags.push(Diagnostic::error("Invalid label value", e).at(at.attr("labels").key(k)));
            }
        }
    }
    if let Some(Value::List(taints)) = node.attr("taints") {
        for (i, t) in taints.iter().enumerate() {
            if let Some(Err(e)) = t.as_str().map(check_taint) {
                diags.push(Diagnostic::error("Invalid taint", e).at(at.attr("taints").index(i)));
            }
        }
    }
}

/// A `node-taint` string as a Kubernetes taint (checked at plan by [`check_taint`]).
pub fn parse_taint(t: &str) -> Option<crate::kube::Taint> {
    let (kv, effect) = t.rsplit_once(':')?;
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string()).filter(|v| !v.is_empty())),
        None => (kv, None),
    };
    Some(crate::kube::Taint { key: key.to_string(), value, effect: effect.to_string() })
}

/// k3s applies `node-label` and `node-taint` only when a Node registers: on a Node that
/// exists, the labels and taints the resource declares are set through the API, and
/// those it declared before (`prior_*`) and no longer does are removed. Others are
/// left alone.
pub async fn reconcile_node(
    client: &KubeClient,
    name: &str,
    labels: Option<&BTreeMap<String, String>>,
    taints: Option<&Vec<String>>,
    prior_labels: Option<&BTreeMap<String, String>>,
    prior_taints: Option<&Vec<String>>,
) -> anyhow::Result<()> {
    let labels = labels.cloned().unwrap_or_default();
    let removed_labels: Vec<String> =
        prior_labels.into_iter().flatten().map(|(k, _)| k).filter(|k| !labels.contains_key(*k)).cloned().collect();
    let taints: Vec<crate::kube::Taint> = taints.into_iter().flatten().filter_map(|t| parse_taint(t)).collect();
    let removed_taints: Vec<crate::kube::Taint> = prior_taints
        .into_iter()
        .flatten()
        .filter_map(|t| parse_taint(t))
        .filter(|p| !taints.iter().any(|t| t.same_as(&p.key, &p.effect)))
        .collect();
    if labels.is_empty() && removed_labels.is_empty() && taints.is_empty() && removed_taints.is_empty() {
        return Ok(());
    }
    client.patch_node(name, &labels, &removed_labels, &taints, &removed_taints).await
}
