//! The cluster as a whole: how it is observed (member list and health over TLS, from a
//! member), formed, adopted, and changed one member at a time without losing quorum.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail};
use futures::future::{join_all, try_join_all};
use serde::Deserialize;

use super::certs::{self, Issued};
use super::member::{self, etcdctl, Found, Member};
use super::{backup, EtcdClusterModel, MemberModel, MemberStatus};
use crate::etcd::snapshot;
use crate::framework::{Context, Diagnostic, Diagnostics};
use crate::node::{quote, Node};

/// One member as `etcdctl member list -w json` lists it.
#[derive(Deserialize, Clone, Debug)]
pub struct Listed {
    #[serde(rename = "ID")]
    pub id: u64,
    /// Empty while an added member has not started.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    /// A learner replicates but does not vote (a member being added, until promoted).
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

#[derive(Deserialize)]
struct Header {
    cluster_id: u64,
}

#[derive(Deserialize)]
struct MemberList {
    header: Header,
    #[serde(default)]
    members: Vec<Listed>,
}

/// What the cluster says about itself, through one member.
pub struct View {
    /// Index (in the configured members) of the member that answered.
    pub via: usize,
    pub cluster_id: u64,
    pub listed: Vec<Listed>,
    /// Client URLs that answered healthy.
    pub healthy: BTreeSet<String>,
}

impl View {
    /// The listed member that is `m`: the one with its peer URL (a member's identity in
    /// the running cluster; its name may differ, e.g. before a rename is applied).
    pub fn find(&self, m: &MemberModel) -> Option<&Listed> {
        self.listed.iter().find(|l| matches(l, m))
    }

    pub fn is_healthy(&self, m: &MemberModel) -> bool {
        self.find(m).is_some() && self.healthy.contains(&member::client_url(m.address()))
    }

    /// Healthy voting members (a learner does not count towards the quorum).
    fn healthy_count(&self) -> usize {
        self.voting().filter(|l| l.client_urls.iter().any(|u| self.healthy.contains(u))).count()
    }

    fn voting(&self) -> impl Iterator<Item = &Listed> {
        self.listed.iter().filter(|l| !l.is_learner)
    }
}

pub fn parse_member_list(json: &str) -> anyhow::Result<(u64, Vec<Listed>)> {
    let l: MemberList = serde_json::from_str(json).map_err(|e| anyhow!("unreadable etcdctl member list: {e}"))?;
    Ok((l.header.cluster_id, l.members))
}

/// Endpoints `etcdctl endpoint health` reports healthy (its text output, stdout and stderr).
pub fn parse_health(output: &str) -> BTreeSet<String> {
    output.lines().filter_map(|l| l.split_once(" is healthy")).map(|(ep, _)| ep.trim().to_string()).collect()
}

pub async fn connect<'a>(ctx: &Context, members: &'a [MemberModel]) -> Result<Vec<Member<'a>>, Diagnostics> {
    let mut out = Vec::new();
    for m in members {
        out.push(Member { m, node: Node::connect(ctx, &m.ssh).await? });
    }
    Ok(out)
}

/// The cluster as the first member that answers sees it; `None` when none does.
pub async fn view(members: &[Member<'_>], only: Option<&[bool]>) -> Option<View> {
    for (i, x) in members.iter().enumerate() {
        if only.is_some_and(|o| !o[i]) {
            continue;
        }
        let Ok(out) = x.etcdctl("listing etcd members", None, "member list -w json").await else { continue };
        if out.status != 0 {
            continue;
        }
        let Ok((cluster_id, listed)) = parse_member_list(&out.stdout) else { continue };
        let mut endpoints: Vec<String> = listed.iter().flat_map(|l| l.client_urls.clone()).collect();
        endpoints.extend(members.iter().map(Member::client_url));
        endpoints.sort();
        endpoints.dedup();
        // A lost member should not hold every check for the whole command timeout.
        let health = x
            .etcdctl("checking member health", Some(&endpoints.join(",")), "endpoint health --command-timeout=5s")
            .await;
        let healthy = health.map(|h| parse_health(&format!("{}\n{}", h.stdout, h.stderr))).unwrap_or_default();
        return Some(View { via: i, cluster_id, listed, healthy });
    }
    None
}

/// The token that keeps members of this cluster from joining another one by mistake.
pub fn token(ca_cert: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("strata-{}", &hex::encode(Sha256::digest(ca_cert.as_bytes()))[..16])
}

/// Observes the cluster into `m` (members, ids, health, cluster id, version). `false`
/// when it does not exist and state knows no cluster (no `id`): every node answers and
/// none has etcd configured, data or running; or no node answers at all (the machines
/// are gone, with a warning each), so the plan forms it. When state knows a cluster and
/// every member is gone or without data, the cluster's data is lost: it is kept in
/// state with `cluster_id` null and a warning, and the next apply restores it from
/// `restore_from_snapshot` or, only with `allow_empty_cluster`, forms a new one. Some
/// nodes that do not answer are a warning and unhealthy members, replaced by the next
/// apply.
pub async fn observe(ctx: &Context, m: &mut EtcdClusterModel) -> Result<bool, Diagnostics> {
    let data_dir = m.data_dir();
    let config = m.member.clone();
    let members = connect(ctx, &config).await?;
    let answers = join_all(members.iter().map(|x| x.node.answers())).await;
    let known = m.id.is_some();
    if crate::node::all_gone(&answers) && !known {
        for x in &members {
            ctx.warn(crate::node::gone_warning(
                &x.node,
                "no member answers, so the cluster is planned to be formed again (from restore_from_snapshot when set)",
            ));
        }
        return Ok(false);
    }
    let found: Vec<anyhow::Result<Found>> = join_all(members.iter().map(|x| x.inspect(&data_dir))).await;
    if !known && found.iter().all(|f| f.as_ref().is_ok_and(|f| !f.configured && !f.has_data && !f.active)) {
        return Ok(false);
    }
    let lost: Vec<Option<String>> = answers.iter().zip(&found).map(|(a, f)| data_lost(a, f)).collect();
    if known && lost.iter().all(Option::is_some) {
        let why: Vec<String> =
            members.iter().zip(&lost).map(|(x, l)| format!("{}: {}", x.m.name, l.as_deref().unwrap_or(""))).collect();
        ctx.warn(
            Diagnostic::warning(
                format!("etcd cluster {} has lost its data", m.id.as_deref().unwrap_or_default()),
                format!(
                    "Every member is gone or without data ({}). The next apply restores the cluster from \
                     restore_from_snapshot when it is set; otherwise it is refused, unless allow_empty_cluster = true \
                     says that a new, empty cluster is intended.",
                    why.join("; ")
                ),
            )
            .at(crate::framework::AttributePath::root("restore_from_snapshot")),
        );
        m.cluster_id = None;
        m.members = Some(
            config
                .iter()
                .map(|c| MemberStatus { name: c.name.clone(), id: String::new(), healthy: false, configured: false })
                .collect(),
        );
        m.finish();
        return Ok(true);
    }
    for (x, f) in members.iter().zip(&found) {
        if let Err(e) = f {
            ctx.warn(
                Diagnostic::warning(
                    format!("etcd member {} not reached", x.m.name),
                    format!("{e:#}. It is shown as unhealthy; the next apply replaces it once its node answers."),
                )
                .at(crate::framework::AttributePath::root("member")),
            );
        }
    }
    let reachable: Vec<bool> = found.iter().map(|f| f.as_ref().is_ok_and(|f| f.active)).collect();
    let view = view(&members, Some(&reachable)).await;
    let issued = m.certificates.clone().unwrap_or_default();
    let mut statuses = Vec::new();
    for (x, f) in members.iter().zip(&found) {
        let listed = view.as_ref().and_then(|v| v.find(x.m));
        let configured = f.is_ok()
            && x.config_matches(&m.ca_cert, &issued, &data_dir).await.unwrap_or(false)
            && backup::matches(x, m.backup.as_ref()).await.unwrap_or(false);
        statuses.push(MemberStatus {
            name: x.m.name.clone(),
            id: listed.map(|l| format!("{:x}", l.id)).unwrap_or_default(),
            healthy: view.as_ref().is_some_and(|v| v.is_healthy(x.m)),
            configured,
        });
    }
    if let Some(v) = &view {
        let id = format!("{:x}", v.cluster_id);
        m.cluster_id = Some(id.clone());
        m.id = Some(id);
        if let Ok(Some(version)) = members[v.via].version().await {
            m.version = Some(version);
        }
    }
    m.members = Some(statuses);
    m.finish();
    Ok(true)
}

/// Why a member holds none of the cluster's data (its node is gone, or etcd is not
/// running and its data directory holds no member), or `None`.
fn data_lost(answers: &anyhow::Result<bool>, found: &anyhow::Result<Found>) -> Option<String> {
    match (answers, found) {
        (Ok(false), _) => Some("its node does not answer".into()),
        (_, Ok(f)) if !f.has_data && !f.active => Some(
            match f.configured {
                true => "etcd is stopped and its data directory is empty",
                false => "the node is blank (no etcd settings, data or service)",
            }
            .into(),
        ),
        _ => None,
    }
}

/// When state knows a cluster (`known_id`) and, at apply, every member's node answers
/// and holds no data with etcd stopped: the cluster is formed again from
/// `restore_from_snapshot`, or new and empty when `allow_empty_cluster` says so, else
/// refused before anything is changed. `false` when the cluster still has data.
pub async fn recover_if_lost(
    m: &EtcdClusterModel,
    members: &[Member<'_>],
    issued: &Issued,
    known_id: &str,
) -> anyhow::Result<bool> {
    let data_dir = m.data_dir();
    let found = try_join_all(members.iter().map(|x| x.inspect(&data_dir))).await?;
    if found.iter().any(|f| f.has_data || f.active) {
        return Ok(false);
    }
    if m.restore_from_snapshot.is_none() && m.allow_empty_cluster != Some(true) {
        bail!("{}", refusal(known_id));
    }
    if let Some(path) = &m.restore_from_snapshot {
        snapshot::check(path).map_err(|e| anyhow!("restore_from_snapshot: {e}"))?;
        tracing::info!(cluster = known_id, "restoring the etcd cluster from {path}: every member lost its data");
    }
    form(m, members, issued).await?;
    Ok(true)
}

/// The error when a known cluster's data is gone and nothing says what to do.
pub fn refusal(known_id: &str) -> String {
    format!(
        "every member of etcd cluster {known_id} is gone or without data: refusing to form a new, empty cluster \
         (API servers that still run would reconnect to it and see no objects). Set restore_from_snapshot to a \
         snapshot of the cluster to restore it, or set allow_empty_cluster = true if a new, empty cluster is \
         intended. Nothing was changed."
    )
}

/// What `create` finds: nothing (a new cluster is formed), or a cluster that runs and
/// answers with this CA (adopted), or something it must not touch (refused).
pub async fn create(ctx: &Context, m: &mut EtcdClusterModel) -> anyhow::Result<()> {
    if let Some(path) = &m.restore_from_snapshot {
        snapshot::check(path).map_err(|e| anyhow!("restore_from_snapshot: {e}"))?;
    }
    let data_dir = m.data_dir();
    let config = m.member.clone();
    let members = connect(ctx, &config).await.map_err(|d| anyhow!("{d}"))?;
    let found = try_join_all(members.iter().map(|x| x.inspect(&data_dir))).await?;
    let active: Vec<usize> = found.iter().enumerate().filter(|(_, f)| f.active).map(|(i, _)| i).collect();
    if active.is_empty() {
        if let Some((x, _)) = members.iter().zip(&found).find(|(_, f)| f.has_data) {
            bail!(
                "member {} ({}) holds etcd data in {data_dir} but etcd is not running there: refusing to initialise a \
                 new cluster over it. Start etcd there (the next apply adopts a healthy cluster with this CA) or empty \
                 {data_dir} first.",
                x.m.name,
                x.node.label()
            );
        }
        let (issued, _) = issue(m, None, false)?;
        m.certificates = Some(issued.clone());
        return form(m, &members, &issued).await;
    }
    // Something runs. A member strata configured says on disk which CA it trusts.
    for (x, f) in members.iter().zip(&found) {
        if !f.active || !f.configured {
            continue;
        }
        let trusted = x.node.read_file(&format!("{}/ca.crt", member::PKI_DIR)).await?.unwrap_or_default();
        if !String::from_utf8_lossy(&trusted).contains(m.ca_cert.trim()) {
            bail!(
                "etcd already runs on member {} ({}) with certificates from a different CA than ca_cert: refusing to \
                 touch the running members (no certificate, setting or data was changed). Use the CA that cluster \
                 was made with, or take it down and empty its data directories first.",
                x.m.name,
                x.node.label()
            );
        }
    }
    // It must answer our CA's health certificate before anything is written.
    let (issued, _) = issue(m, None, false)?;
    let probe = &members[active[0]];
    let listed = probe_with(probe, &m.ca_cert, &issued).await?;
    // Adopt: keep each member's certificates on disk (no restart), issue what is missing.
    let mut kept = Issued::new();
    for (x, f) in members.iter().zip(&found) {
        if !f.configured {
            continue;
        }
        if let Some((server, peer, health)) = x.read_certs().await? {
            kept.insert(certs::server_name(&x.m.name), server);
            kept.insert(certs::peer_name(&x.m.name), peer);
            kept.entry(certs::HEALTHCHECK_CLIENT.to_string()).or_insert(health);
        }
    }
    tracing::info!(members = listed.len(), "adopting the running etcd cluster");
    let (issued, _) = issue(m, Some(&kept), true)?;
    m.certificates = Some(issued);
    converge(m, &members, &[], None).await
}

/// Lists the members through `probe` with a health certificate fresh from this CA,
/// from a scratch directory: the member's own files are not touched.
async fn probe_with(probe: &Member<'_>, ca_cert: &str, issued: &Issued) -> anyhow::Result<Vec<Listed>> {
    let dir = "/run/strata-etcd-probe";
    let health = issued.get(certs::HEALTHCHECK_CLIENT).ok_or_else(|| anyhow!("no health certificate"))?;
    probe.node.write_file(&format!("{dir}/ca.crt"), ca_cert.as_bytes(), 0o600).await?;
    probe.node.write_file(&format!("{dir}/healthcheck-client.crt"), health.cert.as_bytes(), 0o600).await?;
    probe.node.write_file(&format!("{dir}/healthcheck-client.key"), health.key.as_bytes(), 0o600).await?;
    // A member busy restarting or electing may time out once: a few bounded tries, but
    // none after a TLS refusal, which will not change.
    let ctl = format!("{} member list -w json", etcdctl(dir, &probe.client_url()));
    let out = probe
        .node
        .run(
            "probing the running etcd",
            &format!(
                "for i in 1 2 3; do {ctl} 2>{dir}/err && exit 0; \
                 grep -qiE 'certificate|x509|tls:|authority' {dir}/err && break; sleep 2; done; \
                 cat {dir}/err >&2; exit 1"
            ),
        )
        .await;
    let _ = probe.node.run("removing the probe files", &format!("rm -rf {dir}")).await;
    let out = out?;
    if out.status != 0 {
        bail!(
            "etcd already runs on member {} ({}) but does not answer a client certificate from ca_cert: it runs with \
             another CA, or is not healthy. Refusing to touch the running members (nothing was changed). etcdctl \
             said: {}",
            probe.m.name,
            probe.node.label(),
            out.stderr.trim()
        );
    }
    Ok(parse_member_list(&out.stdout)?.1)
}

/// Certificates for `m`, keeping what `prior` has where still good.
pub fn issue(m: &EtcdClusterModel, prior: Option<&Issued>, same_ca: bool) -> anyhow::Result<(Issued, Vec<String>)> {
    certs::ensure(prior, same_ca, &m.ca_cert, &m.ca_key, &m.member, m.validity_days(), m.renew_before_days())
}

/// A new cluster: every member configured with `--initial-cluster-state new` (or its
/// data restored from the snapshot), all started together (each waits for a quorum),
/// and not reported created until every member answers healthy over TLS.
async fn form(m: &EtcdClusterModel, members: &[Member<'_>], issued: &Issued) -> anyhow::Result<()> {
    let data_dir = m.data_dir();
    let initial = member::initial_cluster(&m.member);
    let token = token(&m.ca_cert);
    let snapshot = match &m.restore_from_snapshot {
        Some(p) => Some(
            std::fs::read(crate::node::expand(p)).map_err(|e| anyhow!("restore_from_snapshot: reading {p}: {e}"))?,
        ),
        None => None,
    };
    try_join_all(members.iter().map(|x| async {
        x.install(m.package_version.as_deref(), m.release_archive.as_ref()).await?;
        x.require_supported().await?;
        x.write_config(&m.ca_cert, issued, &data_dir).await?;
        x.write_initial(&member::render_initial(&initial, "new", &token)).await?;
        if let Some(snap) = &snapshot {
            restore(x, snap, &initial, &token, &data_dir).await?;
        }
        anyhow::Ok(())
    }))
    .await?;
    try_join_all(members.iter().map(Member::start)).await?;
    try_join_all(members.iter().map(Member::wait_healthy)).await?;
    try_join_all(members.iter().map(|x| backup::apply(x, m.backup.as_ref()))).await.map(|_| ())
}

/// The member's data directory made from the snapshot, with its own name and the full
/// initial cluster, before etcd first starts.
async fn restore(x: &Member<'_>, snapshot: &[u8], initial: &str, token: &str, data_dir: &str) -> anyhow::Result<()> {
    let file = "/var/lib/strata-etcd-restore.db";
    x.node.write_file(file, snapshot, 0o600).await?;
    let d = quote(data_dir);
    let tmp = quote(&format!("{data_dir}.restore"));
    x.node
        .run_ok(
            "restoring the etcd snapshot",
            &format!(
                "set -e; rm -rf {tmp}; ETCDCTL_API=3 etcdctl snapshot restore {file} --name {name} --initial-cluster {ic} \
                 --initial-cluster-token {token} --initial-advertise-peer-urls {peer} --data-dir {tmp} >/dev/null; \
                 find {d} -mindepth 1 -delete; mv {tmp}/member {d}/; rm -rf {tmp} {file}; chown -R etcd:etcd {d}",
                name = quote(&x.m.name),
                ic = quote(initial),
                token = quote(token),
                peer = quote(&member::peer_url(x.m.address())),
            ),
        )
        .await
        .map(|_| ())
}

/// Brings the running cluster to `m`, one member at a time: members whose settings or
/// certificates changed are restarted; an unhealthy member that has its data is
/// restarted, and one that still does not answer (or came back empty) is replaced
/// (removed, wiped, added anew); new members are added; members no longer configured
/// are removed (their nodes, from `leaving`, stopped and wiped). A change that would
/// leave fewer healthy members than a quorum is refused.
pub async fn converge(
    m: &EtcdClusterModel,
    members: &[Member<'_>],
    leaving: &[Member<'_>],
    prior_ca: Option<&str>,
) -> anyhow::Result<()> {
    let data_dir = m.data_dir();
    let issued = m.certificates.clone().unwrap_or_default();
    let token = token(&m.ca_cert);
    let ca_path = format!("{}/ca.crt", member::PKI_DIR);
    // A new CA is trusted beside the old one until every member has its new
    // certificates, so members restart one at a time and still talk to the others.
    let rotating = prior_ca.filter(|old| *old != m.ca_cert);
    let ca_file = match rotating {
        Some(old) => format!("{}\n{}\n", m.ca_cert.trim_end(), old.trim_end()),
        None => m.ca_cert.clone(),
    };
    if rotating.is_some() {
        for x in members {
            if x.node.write_validated(&ca_path, ca_file.as_bytes(), 0o644, None).await? {
                x.restart_in_turn().await?;
                x.wait_healthy().await?;
            }
        }
    }
    // One member at a time: a package upgrade restarts etcd where it runs.
    let mut changed = Vec::new();
    for x in members {
        let found = x.inspect(&data_dir).await?;
        let before = x.version().await?;
        x.install(m.package_version.as_deref(), m.release_archive.as_ref()).await?;
        x.require_supported().await?;
        if found.active && before.is_some() && x.version().await? != before {
            x.wait_healthy().await?;
        }
        changed.push((found, x.write_config(&ca_file, &issued, &data_dir).await?));
    }
    let mut view = view(members, None).await.ok_or_else(|| {
        anyhow!("no member of the cluster answers over TLS: cannot change membership without a quorum")
    })?;
    for (i, x) in members.iter().enumerate() {
        let (found, files_changed) = &changed[i];
        match view.find(x.m).cloned() {
            Some(_) if view.is_healthy(x.m) => {
                if !*files_changed {
                    continue;
                }
                x.restart_in_turn().await?;
                x.wait_healthy().await?;
            }
            Some(listed) => {
                // A member that kept its data may only need starting.
                if found.has_data && x.restart().await.is_ok() && x.wait_healthy().await.is_ok() {
                    view = refresh(members).await?;
                    continue;
                }
                require_quorum_after(&view, Some(false), 0, &x.m.name)?;
                talker(members, &view, i)?
                    .etcdctl_ok("removing the stale member", &format!("member remove {:x}", listed.id))
                    .await?;
                x.stop_and_wipe(&data_dir).await?;
                x.write_config(&ca_file, &issued, &data_dir).await?;
                view = refresh(members).await?;
                require_quorum_after(&view, None, 1, &x.m.name)?;
                add(x, talker(members, &view, i)?, &token).await?;
            }
            None => {
                require_quorum_after(&view, None, 1, &x.m.name)?;
                x.stop_and_wipe(&data_dir).await?;
                x.write_config(&ca_file, &issued, &data_dir).await?;
                add(x, talker(members, &view, i)?, &token).await?;
            }
        }
        view = refresh(members).await?;
    }
    let stale: Vec<Listed> = view.listed.iter().filter(|l| !m.member.iter().any(|c| matches(l, c))).cloned().collect();
    for l in stale {
        let healthy = l.client_urls.iter().any(|u| view.healthy.contains(u));
        require_quorum_after(&view, Some(healthy), 0, &l.name)?;
        talker(members, &view, usize::MAX)?
            .etcdctl_ok(&format!("removing member {}", l.name), &format!("member remove {:x}", l.id))
            .await?;
        if let Some(x) = leaving.iter().find(|x| matches(&l, x.m)) {
            backup::remove(x).await?;
            x.stop_and_wipe(&data_dir).await?;
        }
        view = refresh(members).await?;
    }
    if rotating.is_some() {
        // Every member has certificates from the new CA now: stop trusting the old one.
        for x in members {
            if x.node.write_validated(&ca_path, m.ca_cert.as_bytes(), 0o644, None).await? {
                x.restart_in_turn().await?;
                x.wait_healthy().await?;
            }
        }
    }
    try_join_all(members.iter().map(|x| backup::apply(x, m.backup.as_ref()))).await?;
    Ok(())
}

/// Whether the listed member is the configured one: by peer URL, never by name (a
/// rename keeps the member; its name in the cluster follows at its restart).
pub fn matches(l: &Listed, c: &MemberModel) -> bool {
    l.peer_urls.contains(&member::peer_url(c.address()))
}

async fn refresh(members: &[Member<'_>]) -> anyhow::Result<View> {
    view(members, None).await.ok_or_else(|| anyhow!("the cluster stopped answering during the change"))
}

/// A healthy member other than `except`, to change membership through.
fn talker<'a, 'b>(members: &'a [Member<'b>], view: &View, except: usize) -> anyhow::Result<&'a Member<'b>> {
    members
        .iter()
        .enumerate()
        .find(|(i, x)| *i != except && view.is_healthy(x.m))
        .map(|(_, x)| x)
        .ok_or_else(|| anyhow!("no healthy member to change the membership through"))
}

/// Refuses a change unless the cluster has a quorum now (healthy members are a
/// majority) and still has one after it: `removing` one member (`Some(its health)`),
/// or `adding` members, each counted healthy once added, since it is added as a
/// learner (no vote, so no change to the quorum) and promoted only once in sync.
pub fn require_quorum_after(view: &View, removing: Option<bool>, adding: usize, name: &str) -> anyhow::Result<()> {
    let (size, healthy) = (view.voting().count(), view.healthy_count());
    let size_after = size - usize::from(removing.is_some()) + adding;
    let healthy_after = healthy - usize::from(removing == Some(true)) + adding;
    if !quorum(size, healthy) || !quorum(size_after, healthy_after) {
        bail!(
            "changing member {name} now would leave {healthy_after} healthy member(s) of {size_after} (now {healthy} \
             of {size}), below quorum; nothing more was changed. Bring the unhealthy members back first."
        );
    }
    Ok(())
}

/// Whether `healthy` of `size` voting members are a quorum (a strict majority).
pub fn quorum(size: usize, healthy: usize) -> bool {
    size > 0 && healthy * 2 > size
}

/// `member add --learner` through `talker`, the new member started with the cluster as
/// `member add` printed it and `--initial-cluster-state existing`, then promoted to a
/// voting member once it has caught up: the voting quorum never waits for a member that
/// has not started (a 1-member cluster grows without losing its quorum).
async fn add(x: &Member<'_>, talker: &Member<'_>, token: &str) -> anyhow::Result<()> {
    let out = talker
        .etcdctl_ok(
            &format!("adding member {} as a learner", x.m.name),
            &format!(
                "member add {} --learner --peer-urls={}",
                quote(&x.m.name),
                quote(&member::peer_url(x.m.address()))
            ),
        )
        .await?;
    let initial = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .ok_or_else(|| anyhow!("etcdctl member add printed no ETCD_INITIAL_CLUSTER: {out}"))?;
    let id = added_id(&out).ok_or_else(|| anyhow!("etcdctl member add printed no member id: {out}"))?;
    x.write_initial(&member::render_initial(&initial, "existing", token)).await?;
    x.start().await?;
    // etcd refuses the promotion until the learner is in sync with the leader.
    let ctl = member::etcdctl(member::PKI_DIR, &talker.client_url());
    let promote = talker
        .node
        .run(
            &format!("promoting member {}", x.m.name),
            &format!(
                "for i in $(seq {PROMOTE_WITHIN_SECS}); do {ctl} member promote {id:x} >/dev/null 2>&1 && exit 0; \
                 sleep 1; done; {ctl} member promote {id:x}"
            ),
        )
        .await?;
    if promote.status != 0 {
        bail!(
            "member {} was added as a learner but could not be promoted within {PROMOTE_WITHIN_SECS}s: {}",
            x.m.name,
            promote.stderr.trim()
        );
    }
    x.wait_healthy().await
}

const PROMOTE_WITHIN_SECS: u32 = 90;

/// The id in `etcdctl member add`'s "Member <hex id> added to cluster <hex id>".
pub fn added_id(out: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Member ")?.split_whitespace().next())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
}
