//! Forming the cluster, observing it, and changing it one server at a time.

use anyhow::{anyhow, bail, Context as _};
use futures::future::{join_all, try_join_all};

use super::install;
use super::model::{K3sClusterModel, ServerModel, ServerStatus};
use crate::framework::{AttributePath, Context, Diagnostic, Diagnostics};
use crate::kube::{kubeconfig, parse_node, ClientIdentity, KubeClient};
use crate::node::{quote, Node};
use crate::resources::k3s::{self, BINARY, SERVER_UNIT};
use crate::resources::worker::drain;

pub const TOKEN_FILE: &str = "/var/lib/rancher/k3s/server/token";
pub const SERVER_CA: &str = "/var/lib/rancher/k3s/server/tls/server-ca.crt";
pub const ADMIN_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";
/// The server address in k3s's own k3s.yaml.
const LOCAL_SERVER: &str = "https://127.0.0.1:6443";

/// The message that refuses to form a new, empty cluster where the state knows one
/// (as `strata_etcd_cluster` says it).
pub fn refusal(known_id: &str) -> String {
    format!(
        "every server of k3s cluster {known_id} is gone or without data: refusing to form a new, empty cluster \
         (agents and clients that still run would reconnect to it and see no objects). Set restore_from_snapshot \
         to a snapshot of the cluster to restore it, or set allow_empty_cluster = true if a new, empty cluster is \
         intended. Nothing was changed."
    )
}

pub async fn connect(ctx: &Context, servers: &[ServerModel]) -> Result<Vec<Node>, Diagnostics> {
    let mut out = Vec::new();
    for s in servers {
        out.push(Node::connect(ctx, &s.node.ssh).await?);
    }
    Ok(out)
}

/// The secret of a full token (`K10<hash>::server:<secret>`), or the token itself.
pub fn secret_of(token: &str) -> &str {
    token.rsplit_once("::").map(|(_, s)| s.strip_prefix("server:").unwrap_or(s)).unwrap_or(token)
}

/// The full token a server keeps, if it has one (it ran as a server).
pub async fn token_on(node: &Node) -> anyhow::Result<Option<String>> {
    Ok(node.read_file(TOKEN_FILE).await?.map(|b| String::from_utf8_lossy(&b).trim().to_string()))
}

/// Node `name` as the API on `via` shows it (`k3s kubectl`, over SSH: the cluster need
/// not be reachable from the Terraform host while it forms).
async fn node_ready_via(node: &Node, name: &str, version: &str) -> anyhow::Result<Result<(), String>> {
    let ready = node.run("asking the API server /readyz", &format!("{BINARY} kubectl get --raw /readyz")).await?;
    if ready.status != 0 {
        return Ok(Err(format!("the API server on {} is not ready: {}", node.label(), ready.stderr.trim())));
    }
    let out = node
        .run(&format!("reading Node {name}"), &format!("{BINARY} kubectl get node {} -o json", quote(name)))
        .await?;
    if out.status != 0 {
        return Ok(Err(format!("Node {name} not found: {}", out.stderr.trim())));
    }
    let n = parse_node(&serde_json::from_str(&out.stdout).context("Node JSON")?)?;
    Ok(match (n.ready.as_deref(), n.kubelet_version.as_deref()) {
        (Some("True"), Some(v)) if v == version => Ok(()),
        (Some("True"), v) => Err(format!("Node {name} reports kubelet {}", v.unwrap_or("(none)"))),
        (r, _) => Err(format!("Node {name} is not Ready ({})", r.unwrap_or("no condition"))),
    })
}

/// Starts server `i` and waits until its Node is Ready, asking through `via`.
async fn start_and_wait(ctx: &Context, node: &Node, via: &Node, m: &K3sClusterModel, i: usize) -> anyhow::Result<()> {
    k3s::start(node, SERVER_UNIT, false).await?;
    let name = &m.server[i].node.name;
    k3s::wait_for(ctx, &format!("server {name} Ready"), || async {
        Ok(match node_ready_via(via, name, &m.version).await? {
            Ok(()) => Ok(()),
            Err(why) => Err(format!("{why}{}", k3s::journal_tail(node, SERVER_UNIT).await)),
        })
    })
    .await
}

/// Where a snapshot from the Terraform host is put on the first server to be restored.
const RESTORE_DIR: &str = "/var/lib/rancher/k3s/server/db/restore";

/// Forms the cluster: installs every server, restores the snapshot on the first one
/// (`restore_from_snapshot`), starts it, then each other server in turn.
pub async fn form(ctx: &Context, m: &mut K3sClusterModel, nodes: &[Node]) -> anyhow::Result<()> {
    for n in nodes {
        n.require_systemd().await?;
    }
    // A first server that already ran keeps its token and data: adopted, never
    // replaced, and never reset from a snapshot.
    let existing = token_on(&nodes[0]).await?;
    if m.token.is_none() {
        m.token = Some(match &existing {
            Some(t) => secret_of(t).to_string(),
            None => crate::pki::random_secret(),
        });
    }
    let restore = match (&m.restore_from_snapshot, &existing) {
        (Some(path), Some(_)) => {
            ctx.warn(
                Diagnostic::warning(
                    "restore_from_snapshot not used",
                    format!(
                        "{} already runs a k3s cluster ({TOKEN_FILE} is there): it is adopted as it is, and {path} \
                         is not restored over it.",
                        nodes[0].label()
                    ),
                )
                .at(AttributePath::root("restore_from_snapshot")),
            );
            None
        }
        (p, _) => p.clone(),
    };
    let token = m.token.clone().unwrap_or_default();
    let mm = &*m;
    try_join_all(nodes.iter().enumerate().map(|(i, n)| install::install(n, mm, i, &token))).await?;
    if let Some(path) = &restore {
        let first = &nodes[0];
        // The snapshot is on the Terraform host (off-site, like strata_etcd_cluster's): it
        // goes next to k3s's data on the first server, then k3s restores it.
        let content = tokio::fs::read(path)
            .await
            .with_context(|| format!("restore_from_snapshot: reading {path} on the machine that runs Terraform"))?;
        let on_node = format!("{RESTORE_DIR}/{}", k3s::airgap::file_name(path));
        first.run_ok("making the restore directory", &format!("mkdir -p -m 0700 {RESTORE_DIR}")).await?;
        first.write_file(&on_node, &content, 0o600).await?;
        k3s::stop(first, SERVER_UNIT).await?;
        let out = first
            .run_ok(
                "restoring the etcd snapshot (k3s server --cluster-reset)",
                &format!("{BINARY} server --cluster-reset --cluster-reset-restore-path={}", quote(&on_node)),
            )
            .await?;
        tracing::info!(output = %out.trim(), "k3s cluster reset");
    }
    start_and_wait(ctx, &nodes[0], &nodes[0], m, 0).await?;
    for i in 1..nodes.len() {
        start_and_wait(ctx, &nodes[i], &nodes[0], m, i).await?;
        wait_member(ctx, &nodes[0], m, &m.server[i]).await?;
    }
    Ok(())
}

/// A client of the cluster from its admin kubeconfig (whose server is `server_url`).
pub fn client(kubeconfig_text: &str) -> anyhow::Result<KubeClient> {
    let k = kubeconfig::parse(kubeconfig_text).map_err(|e| anyhow!("kubeconfig: {e}"))?;
    KubeClient::new(
        k.endpoint(),
        &k.ca_pem,
        Some(ClientIdentity { cert_pem: &k.client_cert_pem, key_pem: &k.client_key_pem }),
    )
}

/// Whether `kubeconfig` is for a cluster with CA `ca_pem` and the API accepts its client
/// certificate.
async fn still_works(kubeconfig: &str, ca_pem: &str) -> bool {
    let Ok(k) = kubeconfig::parse(kubeconfig) else { return false };
    if k.ca_pem.trim() != ca_pem.trim() {
        return false;
    }
    match client(kubeconfig) {
        Ok(c) => c.authenticated().await.unwrap_or(false),
        Err(_) => false,
    }
}

/// k3s.yaml with its server replaced by `server_url`.
pub fn point_at(k3s_yaml: &str, server_url: &str) -> String {
    k3s_yaml.replace(LOCAL_SERVER, server_url)
}

/// Reads the outputs from a server that has them, and checks that `server_url` serves a
/// certificate of the cluster CA (`/readyz` through the kubeconfig).
pub async fn read_outputs(m: &mut K3sClusterModel, node: &Node) -> anyhow::Result<()> {
    let url = m.server_url();
    let token = token_on(node).await?.ok_or_else(|| anyhow!("{}: no {TOKEN_FILE}", node.label()))?;
    let ca = node.read_file(SERVER_CA).await?.ok_or_else(|| anyhow!("{}: no {SERVER_CA}", node.label()))?;
    let yaml =
        node.read_file(ADMIN_KUBECONFIG).await?.ok_or_else(|| anyhow!("{}: no {ADMIN_KUBECONFIG}", node.label()))?;
    let kc = point_at(&String::from_utf8_lossy(&yaml), &url);
    let ok = client(&kc)?.readyz().await.with_context(|| {
        format!("checking that {url} serves the cluster's CA (server_url, from tls_san[0] or the first server)")
    })?;
    if !ok {
        bail!("{url}/readyz does not answer ok");
    }
    let ca = String::from_utf8_lossy(&ca).into_owned();
    // The kubeconfig in state stays while it still works against this cluster: after a
    // rebuild from a snapshot the restored client CA still signs its certificate, while
    // the new machine's k3s.yaml has an admin certificate of its own.
    let keep = match &m.kubeconfig {
        Some(old) if *old != kc => still_works(old, &ca).await,
        _ => false,
    };
    if !keep {
        m.kubeconfig = Some(kc);
    }
    m.server_url = Some(url.clone());
    m.join_token = Some(token);
    m.ca_cert = Some(ca);
    if m.id.is_none() {
        m.id = Some(url);
    }
    Ok(())
}

/// What each server runs, and whether the cluster is lost (every server gone or
/// without data): then `ca_cert`, `join_token` and `servers` are cleared and the
/// state keeps `id` (see `modify_plan`).
pub async fn observe(ctx: &Context, m: &mut K3sClusterModel) -> Result<(), Diagnostics> {
    let nodes = connect(ctx, &m.server).await?;
    let answers = join_all(nodes.iter().map(Node::answers)).await;
    let token = m.token.clone().unwrap_or_default();
    let mut statuses = Vec::new();
    let mut with_data = None;
    for (i, (n, a)) in nodes.iter().zip(&answers).enumerate() {
        let name = m.server[i].node.name.clone();
        let mut st = ServerStatus { name: name.clone(), ..Default::default() };
        match a {
            Ok(true) => {
                let r: anyhow::Result<()> = async {
                    st.active = n.unit_state(SERVER_UNIT).await?.is_active();
                    st.version = k3s::installed_version(n).await?.unwrap_or_default();
                    st.configured = install::configured(n, m, i, &token).await?;
                    if with_data.is_none() && token_on(n).await?.is_some() {
                        with_data = Some(i);
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = r {
                    ctx.warn(
                        Diagnostic::warning(format!("Server {name} not read"), format!("{e:#}"))
                            .at(AttributePath::root("server").index(i)),
                    );
                    // Unknown is not gone: counted as holding data.
                    with_data.get_or_insert(i);
                }
            }
            Ok(false) => ctx.warn(crate::node::gone_warning(n, "the server is planned to be installed again")),
            Err(e) => {
                ctx.warn(
                    Diagnostic::warning(format!("Server {name} not reached"), format!("{e:#}"))
                        .at(AttributePath::root("server").index(i).attr("ssh")),
                );
                with_data.get_or_insert(i);
            }
        }
        statuses.push(st);
    }
    let Some(i) = with_data else {
        // The kubeconfig stays: a rebuild from a snapshot brings back the client CA that
        // signed it, and it is kept then (read_outputs).
        m.ca_cert = None;
        m.join_token = None;
        m.servers = None;
        return Ok(());
    };
    m.servers = Some(statuses);
    if let Err(e) = read_outputs(m, &nodes[i]).await {
        ctx.warn(
            Diagnostic::warning("Cluster outputs not read", format!("{e:#}")).at(AttributePath::root("kubeconfig")),
        );
    }
    Ok(())
}

/// Whether server `i` needs a roll: another version, config.yaml, an inactive service,
/// or changed files k3s reads at start.
pub async fn needs_roll(node: &Node, prior: &K3sClusterModel, m: &K3sClusterModel, i: usize) -> anyhow::Result<bool> {
    let token = m.token.clone().unwrap_or_default();
    Ok(k3s::installed_version(node).await?.as_deref() != Some(m.version.as_str())
        || !install::configured(node, m, i, &token).await?
        || !node.unit_state(SERVER_UNIT).await?.is_active()
        || prior.airgap != m.airgap
        || prior.registry != m.registry
        || prior.datastore != m.datastore)
}

/// Rolls server `i`: cordon and drain, install, restart, Node Ready at the version,
/// uncordon (unless someone else had cordoned it). Run in turn (the Lease).
pub async fn roll_one(
    ctx: &Context,
    client: &KubeClient,
    node: &Node,
    m: &K3sClusterModel,
    i: usize,
) -> anyhow::Result<()> {
    let name = &m.server[i].node.name;
    let token = m.token.clone().unwrap_or_default();
    let was_cordoned = client.get_node(name).await?.is_some_and(|n| drain::cordoned_by_someone_else(&n));
    if !was_cordoned {
        client
            .set_unschedulable_noted(name, true, Some((drain::CORDONED_FOR_UPGRADE, Some(m.version.as_str()))))
            .await?;
    }
    drain::cordon_and_drain(ctx, client, name).await?;
    install::install(node, m, i, &token).await?;
    k3s::start(node, SERVER_UNIT, true).await?;
    k3s::wait_node_ready(ctx, client, name, &m.version).await?;
    if !was_cordoned {
        client.set_unschedulable_noted(name, false, Some((drain::CORDONED_FOR_UPGRADE, None))).await?;
    }
    Ok(())
}

/// Joins server `i` (added to the configuration); `via` is a server already in.
pub async fn join(
    ctx: &Context,
    client: &KubeClient,
    node: &Node,
    via: &Node,
    m: &K3sClusterModel,
    i: usize,
) -> anyhow::Result<()> {
    node.require_systemd().await?;
    install::install(node, m, i, &m.token.clone().unwrap_or_default()).await?;
    k3s::start(node, SERVER_UNIT, false).await?;
    k3s::wait_node_ready(ctx, client, &m.server[i].node.name, &m.version).await?;
    wait_member(ctx, via, m, &m.server[i]).await
}

/// Removes a server: drained, stopped and disabled, its Node deleted (k3s then
/// removes its etcd member; checked through `via`, a server that stays, and removed
/// through the etcd API if k3s did not). A node that does not answer only has its
/// Node deleted.
pub async fn remove(
    ctx: &Context,
    client: &KubeClient,
    m: &K3sClusterModel,
    s: &ServerModel,
    node: &Node,
    via: &Node,
) -> anyhow::Result<()> {
    let name = &s.node.name;
    if client.get_node(name).await?.is_some() {
        drain::cordon_and_drain(ctx, client, name).await?;
    }
    if matches!(node.answers().await, Ok(true)) {
        k3s::stop(node, SERVER_UNIT).await?;
    }
    client.delete_node(name).await?;
    ensure_member_removed(ctx, via, m, s).await
}

/// Stops and disables k3s; wipes its data only when asked.
pub async fn uninstall(node: &Node, wipe: bool) -> anyhow::Result<()> {
    k3s::stop(node, SERVER_UNIT).await?;
    if wipe {
        node.run_ok(
            "deleting k3s's data",
            &format!("rm -rf {} {} /etc/systemd/system/{SERVER_UNIT}", k3s::DATA_DIR, k3s::CONFIG_DIR),
        )
        .await?;
    }
    Ok(())
}

/// The embedded etcd's client certificate k3s writes for its own use, and its CA.
const ETCD_TLS: &str = "/var/lib/rancher/k3s/server/tls/etcd";

/// A member of the embedded etcd (its JSON gateway's `member/list`).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
}

impl Member {
    /// Whether the member has started: etcd names a member once it runs.
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }
}

pub fn parse_members(text: &str) -> anyhow::Result<Vec<Member>> {
    let v: serde_json::Value = serde_json::from_str(text).context("etcd member list")?;
    let items = v.get("members").and_then(|m| m.as_array()).cloned().unwrap_or_default();
    Ok(items
        .iter()
        .map(|m| Member {
            id: match &m["ID"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            name: m["name"].as_str().unwrap_or_default().to_string(),
            peer_urls: m["peerURLs"]
                .as_array()
                .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        })
        .collect())
}

/// The member of server `name` at `address`: k3s names members `<node-name>-<suffix>`;
/// its peer URL is `https://<node-ip>:2380`.
pub fn member_of<'a>(members: &'a [Member], name: &str, address: &str) -> Option<&'a Member> {
    let peer =
        if address.contains(':') { format!("https://[{address}]:2380") } else { format!("https://{address}:2380") };
    members.iter().find(|m| {
        m.peer_urls.contains(&peer)
            || m.name == name
            || m.name.strip_prefix(name).is_some_and(|rest| rest.starts_with('-'))
    })
}

/// A request to the embedded etcd's JSON gateway on `via` with k3s's own client
/// certificate; `None` when it cannot be asked there (no curl, no certificate).
async fn etcd_call(via: &Node, path: &str, body: &str) -> anyhow::Result<Option<String>> {
    let cmd = format!(
        "command -v curl >/dev/null && test -r {ETCD_TLS}/client.crt || exit 3; \
         curl -sS --fail --max-time 10 --cacert {ETCD_TLS}/server-ca.crt --cert {ETCD_TLS}/client.crt \
         --key {ETCD_TLS}/client.key -X POST -d {} https://127.0.0.1:2379{path}",
        quote(body)
    );
    let out = via.run(&format!("asking the embedded etcd {path}"), &cmd).await?;
    match out.status {
        0 => Ok(Some(out.stdout)),
        3 => Ok(None),
        s => bail!("{}: etcd {path} failed (exit {s}): {}", via.label(), out.stderr.trim()),
    }
}

pub async fn etcd_members(via: &Node) -> anyhow::Result<Option<Vec<Member>>> {
    etcd_call(via, "/v3/cluster/member/list", "{}").await?.map(|t| parse_members(&t)).transpose()
}

/// Waits until server `s` is an etcd member (embedded etcd only), asking `via`.
pub async fn wait_member(ctx: &Context, via: &Node, m: &K3sClusterModel, s: &ServerModel) -> anyhow::Result<()> {
    if m.datastore.is_some() {
        return Ok(());
    }
    let name = &s.node.name;
    let verified = k3s::wait_for(ctx, &format!("server {name} in the etcd members"), || async {
        Ok(match etcd_members(via).await? {
            None => Ok(false),
            // An added member that has not started yet has no name (etcd's member list).
            Some(ms) if member_of(&ms, name, s.node.address()).is_some_and(Member::started) => Ok(true),
            Some(ms) => Err(format!(
                "{name} is not a started etcd member yet (started members: {})",
                ms.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            )),
        })
    })
    .await?;
    if !verified {
        ctx.warn(Diagnostic::warning(
            format!("etcd membership of {name} not verified"),
            format!("{} has no curl or no k3s etcd client certificate ({ETCD_TLS}/client.crt): only its Node Ready was checked.", via.label()),
        ));
    }
    Ok(())
}

/// After a removed server's Node was deleted, k3s removes its etcd member; if it is
/// still there after a while, it is removed through the etcd API, asking `via`.
pub async fn ensure_member_removed(
    ctx: &Context,
    via: &Node,
    m: &K3sClusterModel,
    s: &ServerModel,
) -> anyhow::Result<()> {
    if m.datastore.is_some() {
        return Ok(());
    }
    let name = &s.node.name;
    // k3s's etcd member controller removes it within seconds of the Node's deletion.
    for _ in 0..15 {
        let Some(ms) = etcd_members(via).await? else {
            ctx.warn(Diagnostic::warning(
                format!("etcd member of {name} not checked"),
                format!("{} has no curl or no k3s etcd client certificate: check `member list` by hand.", via.label()),
            ));
            return Ok(());
        };
        if member_of(&ms, name, s.node.address()).is_none() || ctx.cancel.is_cancelled() {
            return Ok(());
        }
        crate::wait::sleep("k3s_member", std::time::Duration::from_secs(2)).await;
    }
    let ms = etcd_members(via).await?.unwrap_or_default();
    if let Some(member) = member_of(&ms, name, s.node.address()) {
        etcd_call(via, "/v3/cluster/member/remove", &format!("{{\"ID\":\"{}\"}}", member.id)).await?;
    }
    Ok(())
}
