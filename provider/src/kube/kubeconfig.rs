//! The admin kubeconfig: a client certificate issued from the cluster CA (CN
//! `kubernetes-admin`, O `kubeadm:cluster-admins`, as kubeadm >= 1.29 issues it), the
//! endpoint as server and the CA as certificate-authority-data. Kept in state and
//! re-issued only when it no longer fits (other CA or endpoint) or is within the
//! renewal window, so plans are stable.

use anyhow::{anyhow, Context as _};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::pki;

pub const ADMIN_USER: &str = "kubernetes-admin";
pub const ADMIN_GROUP: &str = "kubeadm:cluster-admins";

/// What a kubeconfig says, decoded.
pub struct Kubeconfig {
    /// `https://host:port`.
    pub server: String,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    clusters: Vec<NamedCluster>,
    users: Vec<NamedUser>,
    contexts: Vec<NamedContext>,
    #[serde(rename = "current-context")]
    current_context: String,
}

#[derive(Serialize, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterEntry,
}
#[derive(Serialize, Deserialize)]
struct ClusterEntry {
    server: String,
    #[serde(rename = "certificate-authority-data")]
    ca_data: String,
}
#[derive(Serialize, Deserialize)]
struct NamedUser {
    name: String,
    user: UserEntry,
}
#[derive(Serialize, Deserialize)]
struct UserEntry {
    #[serde(rename = "client-certificate-data")]
    cert_data: String,
    #[serde(rename = "client-key-data")]
    key_data: String,
}
#[derive(Serialize, Deserialize)]
struct NamedContext {
    name: String,
    context: ContextEntry,
}
#[derive(Serialize, Deserialize)]
struct ContextEntry {
    cluster: String,
    user: String,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn unb64(s: &str, what: &str) -> anyhow::Result<String> {
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(s.trim()).with_context(|| format!("{what}: not base64"))?;
    String::from_utf8(bytes).with_context(|| format!("{what}: not PEM text"))
}

/// The kubeconfig text (YAML) for `cluster_name` at `https://endpoint`.
pub fn render(cluster_name: &str, endpoint: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let user = ADMIN_USER.to_string();
    let context = format!("{user}@{cluster_name}");
    let f = File {
        api_version: "v1".into(),
        kind: "Config".into(),
        clusters: vec![NamedCluster {
            name: cluster_name.into(),
            cluster: ClusterEntry { server: format!("https://{endpoint}"), ca_data: b64(ca_pem) },
        }],
        users: vec![NamedUser {
            name: user.clone(),
            user: UserEntry { cert_data: b64(cert_pem), key_data: b64(key_pem) },
        }],
        contexts: vec![NamedContext {
            name: context.clone(),
            context: ContextEntry { cluster: cluster_name.into(), user },
        }],
        current_context: context,
    };
    serde_yaml_ng::to_string(&f).expect("a kubeconfig always serialises")
}

/// Issues the admin client certificate and renders the kubeconfig.
pub fn issue(
    cluster_name: &str,
    endpoint: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    validity_days: i64,
) -> anyhow::Result<String> {
    let leaf = pki::issue_client(ca_cert_pem, ca_key_pem, ADMIN_USER, &[ADMIN_GROUP], validity_days)?;
    Ok(render(cluster_name, endpoint, ca_cert_pem, &leaf.cert_pem, &leaf.key_pem))
}

/// Reads the current context's cluster and user of a kubeconfig.
pub fn parse(text: &str) -> anyhow::Result<Kubeconfig> {
    let f: File = serde_yaml_ng::from_str(text).map_err(|e| anyhow!("not a kubeconfig: {e}"))?;
    let ctx =
        f.contexts.iter().find(|c| c.name == f.current_context).ok_or_else(|| {
            anyhow!("the kubeconfig's current-context {:?} is not among its contexts", f.current_context)
        })?;
    let cluster = f
        .clusters
        .iter()
        .find(|c| c.name == ctx.context.cluster)
        .ok_or_else(|| anyhow!("the kubeconfig has no cluster {:?}", ctx.context.cluster))?;
    let user = f
        .users
        .iter()
        .find(|u| u.name == ctx.context.user)
        .ok_or_else(|| anyhow!("the kubeconfig has no user {:?}", ctx.context.user))?;
    Ok(Kubeconfig {
        server: cluster.cluster.server.clone(),
        ca_pem: unb64(&cluster.cluster.ca_data, "certificate-authority-data")?,
        client_cert_pem: unb64(&user.user.cert_data, "client-certificate-data")?,
        client_key_pem: unb64(&user.user.key_data, "client-key-data")?,
    })
}

impl Kubeconfig {
    /// `host:port` of the server URL.
    pub fn endpoint(&self) -> &str {
        self.server.trim_start_matches("https://").trim_end_matches('/')
    }
}

/// Whether a kept kubeconfig can stay: it is for `endpoint`, carries `ca_pem`, its
/// certificate chains to that CA, and it has more than `renew_before_days` left.
pub fn still_good(kept: &str, endpoint: &str, ca_pem: &str, renew_before_days: i64) -> bool {
    let Ok(k) = parse(kept) else { return false };
    k.endpoint() == endpoint
        && k.ca_pem.trim() == ca_pem.trim()
        && pki::signed_by(&k.client_cert_pem, ca_pem).unwrap_or(false)
        && pki::seconds_left(&k.client_cert_pem).is_ok_and(|s| s > renew_before_days * 86_400)
}

/// When the kubeconfig's client certificate expires (RFC 3339).
pub fn expires_at(text: &str) -> anyhow::Result<String> {
    pki::not_after(&parse(text)?.client_cert_pem)
}
