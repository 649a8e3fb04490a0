//! The control plane as a whole: observed from its nodes and endpoint, created (init
//! on the first node, control-plane joins one at a time), adopted when it already runs
//! with this CA, refused when it runs with another, and taken down.

use std::time::Duration;

use anyhow::{anyhow, bail};
use futures::future::join_all;

use super::kubeadm::{self, CONFIG_PATH};
use super::model::{ControlPlaneModel, JoinModel, NodeModel, NodeStatus};
use super::probe::{self, Found};
use super::{certs, cni, pki_files};
use crate::framework::{AttributePath, Context, Diagnostic, Diagnostics};
use crate::kube::{kubeconfig, packages, ClientIdentity, KubeClient};
use crate::node::{quote, Node};
use crate::pki;

/// How long the API may take to answer through the endpoint after init or a join.
const READY_WAIT: Duration = Duration::from_secs(120);
/// Lifetime of a token minted for a control-plane join in a later apply.
const CONTROL_PLANE_JOIN_TTL: Duration = Duration::from_secs(3600);

pub const PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];

pub struct Member<'a> {
    pub m: &'a NodeModel,
    pub node: Node,
}

pub async fn connect<'a>(ctx: &Context, nodes: &'a [NodeModel]) -> Result<Vec<Member<'a>>, Diagnostics> {
    let mut out = Vec::new();
    for m in nodes {
        out.push(Member { m, node: Node::connect(ctx, &m.ssh).await? });
    }
    Ok(out)
}

/// Runs `cmd` on `node`; on failure the error carries its output with `secrets` blanked
/// (kubeadm prints join commands with their token).
pub async fn run_redacted(node: &Node, step: &str, cmd: &str, secrets: &[&str]) -> anyhow::Result<String> {
    let out = node.run(step, cmd).await?;
    if out.status == 0 {
        return Ok(out.stdout);
    }
    let mut text = format!("{}\n{}", out.stdout.trim(), out.stderr.trim());
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(s, "<redacted>");
    }
    let tail: Vec<&str> = text.trim().lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
    bail!("{step} failed on {} (exit {}):\n{}", node.label(), out.status, tail.join("\n"))
}

/// The admin API client, from the kubeconfig in `m`.
pub fn admin_client(m: &ControlPlaneModel) -> anyhow::Result<KubeClient> {
    let text = m.kubeconfig.as_deref().ok_or_else(|| anyhow!("no admin kubeconfig issued yet"))?;
    let k = kubeconfig::parse(text)?;
    KubeClient::new(
        &m.endpoint,
        &m.ca_cert,
        Some(ClientIdentity { cert_pem: &k.client_cert_pem, key_pem: &k.client_key_pem }),
    )
}

/// Keeps the kubeconfig of `prior` when it still fits, else issues one.
pub fn ensure_kubeconfig(m: &mut ControlPlaneModel, prior: Option<&str>) -> anyhow::Result<()> {
    let kept = prior.filter(|k| kubeconfig::still_good(k, &m.endpoint, &m.ca_cert, m.kubeconfig_renew_before_days()));
    let text = match kept {
        Some(k) => k.to_string(),
        None => kubeconfig::issue(&m.cluster_name(), &m.endpoint, &m.ca_cert, &m.ca_key, m.kubeconfig_validity_days())?,
    };
    m.kubeconfig_expires_at = Some(kubeconfig::expires_at(&text)?);
    m.kubeconfig = Some(text);
    Ok(())
}

/// Mints the `join` token through the API.
pub async fn mint_join(m: &mut ControlPlaneModel) -> anyhow::Result<()> {
    let minted = admin_client(m)?.create_bootstrap_token(m.join_token_ttl()).await?;
    m.join = Some(JoinModel {
        endpoint: m.endpoint.clone(),
        ca_cert_hash: pki::ca_cert_hash(&m.ca_cert)?,
        token: minted.token,
        token_expires_at: minted.expires_at,
    });
    Ok(())
}

fn same_identity(on_node: &str, ca_cert: &str) -> bool {
    match (pki::ca_cert_hash(on_node), pki::ca_cert_hash(ca_cert)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The error for a control plane that runs with another CA.
pub fn foreign_ca_error(name: &str, label: &str) -> anyhow::Error {
    let host = label.rsplit_once('@').map(|(_, h)| h).unwrap_or(label);
    let host = host.split(':').next().unwrap_or(host);
    anyhow!(
        "A Kubernetes control plane already runs on node {name} ({label}), and its cluster CA \
         (/etc/kubernetes/pki/ca.crt) is not ca_cert: running kubeadm there would split or break that cluster, so \
         nothing was changed. If this is the cluster to manage (e.g. its Terraform state was lost), bring its \
         identity back into strata_cluster_secrets by importing it from a control-plane node, then apply again:\n\n\
         import {{\n  to = strata_cluster_secrets.this\n  id = \"ssh://root@{host}\"\n}}\n\n\
         (or `terraform import strata_cluster_secrets.this ssh://root@{host}`; a local copy of the PKI directory \
         works too: id = \"/path/to/pki\"). If it is not, take it down first (`kubeadm reset -f` on its nodes)."
    )
}

/// Packages, PKI files and the validated kubeadm configuration on one node.
async fn prepare(x: &Member<'_>, m: &ControlPlaneModel, config: &str, secrets: &[&str]) -> anyhow::Result<()> {
    x.node.require_systemd().await?;
    if m.install_packages() {
        packages::install_held(&x.node, &PACKAGES, &m.version()?.package_version()).await?;
    }
    pki_files::place(&x.node, m).await?;
    x.node.write_file(CONFIG_PATH, config.as_bytes(), 0o600).await?;
    run_redacted(
        &x.node,
        "validating the kubeadm configuration",
        &format!("kubeadm config validate --config {}", quote(CONFIG_PATH)),
        secrets,
    )
    .await
    .map(|_| ())
}

/// `kubeadm init` on `x`, then waits for the API through the endpoint.
async fn init(x: &Member<'_>, m: &ControlPlaneModel, token: &str) -> anyhow::Result<()> {
    let config = kubeadm::init_config(m, x.m, token);
    prepare(x, m, &config, &[token]).await?;
    run_redacted(&x.node, "kubeadm init", &format!("kubeadm init --config {}", quote(CONFIG_PATH)), &[token]).await?;
    probe::wait_ready(&m.endpoint, &m.ca_cert, READY_WAIT).await
}

/// `kubeadm join --control-plane` (by configuration) on `x`, after deleting a Node of its
/// name left by its previous machine (kubeadm refuses to join over a Ready one; after
/// an etcd restore the old Nodes come back Ready).
async fn join(x: &Member<'_>, m: &ControlPlaneModel, token: &str) -> anyhow::Result<()> {
    let hash = pki::ca_cert_hash(&m.ca_cert)?;
    let config = kubeadm::join_config(m, x.m, token, &hash);
    prepare(x, m, &config, &[token]).await?;
    admin_client(m)?
        .clear_stale_node(&x.m.name, x.m.address())
        .await
        .map_err(|e| e.context(format!("before joining {}", x.node.label())))?;
    run_redacted(&x.node, "kubeadm join", &format!("kubeadm join --config {}", quote(CONFIG_PATH)), &[token]).await?;
    Ok(())
}

/// Applies the CNI manifest on the first node.
pub async fn apply_cni(x: &Member<'_>, m: &ControlPlaneModel) -> anyhow::Result<()> {
    let Some(cni) = &m.cni else { return Ok(()) };
    let Some(manifest) = cni::render(cni, &m.pod_cidr())? else { return Ok(()) };
    x.node.write_file(cni::MANIFEST_PATH, manifest.as_bytes(), 0o644).await?;
    x.node
        .run_ok(
            "applying the CNI manifest",
            &format!("kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f {}", quote(cni::MANIFEST_PATH)),
        )
        .await
        .map(|_| ())
}

/// Finds the nodes; refuses when one runs a control plane of another CA.
async fn find(members: &[Member<'_>], ca_cert: &str) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    for x in members {
        found.push(probe::inspect(&x.node).await?);
    }
    for (x, f) in members.iter().zip(&found) {
        if let (true, Some(ca)) = (f.joined, &f.ca_cert) {
            if !same_identity(ca, ca_cert) {
                return Err(foreign_ca_error(&x.m.name, x.node.label()));
            }
        }
    }
    Ok(found)
}

/// Creates the control plane, or adopts the one that runs with this CA. Returns
/// whether `kubeadm init` ran.
pub async fn create(ctx: &Context, m: &mut ControlPlaneModel) -> anyhow::Result<bool> {
    let config = m.node.clone();
    let members = connect(ctx, &config).await.map_err(|d| anyhow!("{d}"))?;
    let found = find(&members, &m.ca_cert).await?;
    ensure_kubeconfig(m, None)?;
    let initialised = if needs_init(&found) {
        init_all(m, &members).await?;
        true
    } else {
        // Adopt: it must be healthy through the endpoint before anything joins it.
        probe::ready(&m.endpoint, &m.ca_cert).await.map_err(|e| {
            e.context(
                "a control plane with this CA runs on some nodes, but the endpoint does not answer: refusing to \
                 change it until it does (nothing was changed)",
            )
        })?;
        false
    };
    converge(m, &members).await?;
    if initialised {
        apply_cni(&members[0], m).await?;
    }
    mint_join(m).await?;
    Ok(initialised)
}

/// Whether `kubeadm init` must run: no node has joined (every node was found, so none
/// runs a control plane that init would split). With the cluster's PKI placed first,
/// init on an external etcd that still holds the cluster (restored from a snapshot)
/// brings that cluster back rather than a new one.
pub fn needs_init(found: &[Found]) -> bool {
    !found.iter().any(|f| f.joined)
}

/// `kubeadm init` on the first node, then control-plane joins one at a time, with a
/// token made for init.
async fn init_all(m: &ControlPlaneModel, members: &[Member<'_>]) -> anyhow::Result<()> {
    let token = pki::bootstrap_token();
    init(&members[0], m, &token).await?;
    for x in &members[1..] {
        join(x, m, &token).await?;
    }
    Ok(())
}

/// Makes every node a control-plane member of the running cluster: PKI rewritten where
/// it drifted, nodes that have not joined joined one at a time. When no node has
/// joined (every machine re-created blank), the API is down and no join token can be
/// minted: the control plane is initialised again from the same PKI instead. Returns
/// whether `kubeadm init` ran.
pub async fn converge(m: &ControlPlaneModel, members: &[Member<'_>]) -> anyhow::Result<bool> {
    let found = find(members, &m.ca_cert).await?;
    if needs_init(&found) {
        init_all(m, members).await?;
        return Ok(true);
    }
    let mut token: Option<String> = None;
    for (x, f) in members.iter().zip(&found) {
        if f.joined {
            // Only files that differ are written: e.g. a re-issued etcd client
            // certificate after the etcd cluster was adopted anew.
            pki_files::place(&x.node, m).await?;
            continue;
        }
        let t = match &token {
            Some(t) => t.clone(),
            None => {
                let minted = admin_client(m)?.create_bootstrap_token(CONTROL_PLANE_JOIN_TTL).await?;
                token = Some(minted.token.clone());
                minted.token
            }
        };
        join(x, m, &t).await?;
    }
    Ok(false)
}

/// `kubeadm reset -f` and strata's files on a node leaving the control plane.
pub async fn reset(node: &Node) -> anyhow::Result<()> {
    node.run_ok(
        "kubeadm reset",
        "if command -v kubeadm >/dev/null; then kubeadm reset -f; fi && rm -rf /etc/kubernetes/strata",
    )
    .await
    .map(|_| ())
}

/// Observes the nodes and the endpoint into `m` (`nodes` always). `false` when no
/// control plane runs: every node answers and none has kubeadm's files. A node that
/// does not answer, or an endpoint that is not ready, is a warning, not a failure.
pub async fn observe(ctx: &Context, m: &mut ControlPlaneModel) -> Result<bool, Diagnostics> {
    let config = m.node.clone();
    let members = connect(ctx, &config).await?;
    let found: Vec<anyhow::Result<Found>> = join_all(members.iter().map(|x| probe::inspect(&x.node))).await;
    let runs = !found.iter().all(|f| f.as_ref().is_ok_and(|f| !f.joined));
    let mut statuses = Vec::new();
    for (i, (x, f)) in members.iter().zip(&found).enumerate() {
        if let Err(e) = f {
            ctx.warn(
                Diagnostic::warning(
                    format!("Control-plane node {} not reached", x.m.name),
                    format!("{e:#}. It is shown as unreachable; the next apply checks it again."),
                )
                .at(AttributePath::root("node").index(i)),
            );
        }
        statuses.push(NodeStatus {
            name: x.m.name.clone(),
            reachable: f.is_ok(),
            joined: f.as_ref().is_ok_and(|f| f.joined),
            ca_matches: f
                .as_ref()
                .ok()
                .and_then(|f| f.ca_cert.as_deref())
                .is_some_and(|c| pki_files::same_ca(c, &m.ca_cert)),
            kubernetes_version: f.as_ref().ok().and_then(|f| f.version).map(|v| v.to_string()),
        });
    }
    m.nodes = Some(statuses);
    let joined: Vec<&Member<'_>> =
        members.iter().zip(&found).filter(|(_, f)| f.as_ref().is_ok_and(|f| f.joined)).map(|(x, _)| x).collect();
    let rotation = join_all(joined.iter().map(|x| certs::kubelet_rotates(&x.node))).await;
    for (x, r) in joined.iter().zip(rotation) {
        // kubeadm turns it on; off, the kubelet's client certificate only changes when
        // Strata re-issues it in a renewal.
        if let Ok(Some(false)) = r {
            ctx.warn(Diagnostic::warning(
                format!("Kubelet client certificate rotation is off on control-plane node {}", x.m.name),
                format!(
                    "rotateCertificates is not true in {} there, so the kubelet will not renew its client \
                     certificate itself. Strata re-issues it with the other certificates within \
                     certificates_renew_before_days of its expiry; turn rotation back on (kubeadm's default) to let \
                     the kubelet keep it fresh.",
                    certs::KUBELET_CONFIG
                ),
            ));
        }
    }
    let read = join_all(joined.iter().map(|x| certs::expiries(&x.node))).await;
    let mut earliest: Option<time::OffsetDateTime> = None;
    for (x, r) in joined.iter().zip(read) {
        match r {
            Ok(list) => {
                for (_, t) in list {
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                }
            }
            Err(e) => ctx.warn(Diagnostic::warning(
                format!("Certificates of control-plane node {} not read", x.m.name),
                format!("{e:#}. certificates_expire_at leaves this node out."),
            )),
        }
    }
    m.certificates_expire_at = earliest.map(certs::rfc3339);
    if !runs {
        return Ok(false);
    }
    if let Err(e) = probe::ready(&m.endpoint, &m.ca_cert).await {
        ctx.warn(
            Diagnostic::warning(
                "Kubernetes API not ready",
                format!("{e:#} (verified against the cluster CA). The nodes are reported as found on disk."),
            )
            .at(AttributePath::root("endpoint")),
        );
    }
    m.id = Some(m.cluster_name());
    m.ca_cert_hash = pki::ca_cert_hash(&m.ca_cert).ok();
    Ok(true)
}
