//! The Kubernetes API as the provider uses it from the Terraform host: a small REST
//! client over rustls with the admin client certificate (or anonymously), verifying
//! the server against the cluster CA; bootstrap tokens made the way `kubeadm token
//! create` makes them; Node labels and taints; and the admin kubeconfig.

pub mod kubeconfig;
pub mod names;
pub mod packages;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

/// How long one API request may take: the endpoint is a VIP in front of API servers on
/// the same network, so anything slower is a server that does not answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one API endpoint (`https://host:port`).
pub struct KubeClient {
    http: reqwest::Client,
    base: String,
}

/// A client certificate and its key, PEM.
pub struct ClientIdentity<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// A Kubernetes taint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

/// What the provider reads of a Node object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeObject {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

/// A bootstrap token minted through the API, and when it expires (RFC 3339).
pub struct MintedToken {
    pub token: String,
    pub expires_at: String,
}

impl KubeClient {
    /// `endpoint` is `host:port`; the server must present a certificate that chains
    /// to `ca_pem` and names `host`.
    pub fn new(endpoint: &str, ca_pem: &str, identity: Option<ClientIdentity<'_>>) -> anyhow::Result<KubeClient> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).context("reading the cluster CA certificate")?;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5));
        if let Some(id) = identity {
            let pem = format!("{}\n{}", id.cert_pem.trim_end(), id.key_pem.trim_end());
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).context("reading the client certificate")?);
        }
        Ok(KubeClient { http: b.build().context("building the HTTPS client")?, base: format!("https://{endpoint}") })
    }

    pub fn endpoint_url(&self) -> &str {
        &self.base
    }

    /// Whether `/readyz` answers 200 `ok`.
    pub async fn readyz(&self) -> anyhow::Result<bool> {
        let r = self.http.get(format!("{}/readyz", self.base)).send().await.map_err(describe)?;
        Ok(r.status().is_success())
    }

    /// `gitVersion` of `/version`, e.g. `v1.35.0`.
    pub async fn git_version(&self) -> anyhow::Result<String> {
        let v: Json = self.get_json("/version").await?.ok_or_else(|| anyhow!("/version: not found"))?;
        v.get("gitVersion")
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("/version has no gitVersion"))
    }

    /// Makes a bootstrap token valid for `ttl`, as `kubeadm token create` does: a
    /// `bootstrap-token-<id>` Secret in kube-system usable for authentication and signing,
    /// in kubeadm's default node-token group.
    pub async fn create_bootstrap_token(&self, ttl: Duration) -> anyhow::Result<MintedToken> {
        let token = crate::pki::bootstrap_token();
        let (id, secret) = token.split_once('.').expect("bootstrap tokens have a dot");
        let expires = time::OffsetDateTime::now_utc() + ttl;
        let expires_at = expires
            .replace_nanosecond(0)
            .unwrap_or(expires)
            .format(&time::format_description::well_known::Rfc3339)
            .context("formatting the token expiry")?;
        let body = bootstrap_token_secret(id, secret, &expires_at);
        let r = self
            .http
            .post(format!("{}/api/v1/namespaces/kube-system/secrets", self.base))
            .json(&body)
            .send()
            .await
            .map_err(describe)?;
        // The token itself is never part of an error.
        check(r, "creating a bootstrap token").await?;
        Ok(MintedToken { token, expires_at })
    }

    /// Whether bootstrap token `token` (`<id>.<secret>`) still exists with that secret and
    /// has not expired: e.g. after the control plane was rebuilt on an etcd restored from
    /// a snapshot, the token minted before is still there and stays usable.
    pub async fn bootstrap_token_valid(&self, token: &str) -> anyhow::Result<bool> {
        let Some((id, _)) = token.split_once('.') else { return Ok(false) };
        let path = format!("/api/v1/namespaces/kube-system/secrets/bootstrap-token-{}", path_segment(id));
        Ok(self
            .get_json(&path)
            .await?
            .is_some_and(|s| bootstrap_token_matches(&s, token, time::OffsetDateTime::now_utc())))
    }

    /// The Node `name`, `None` when there is none.
    pub async fn get_node(&self, name: &str) -> anyhow::Result<Option<NodeObject>> {
        let Some(v) = self.get_json(&format!("/api/v1/nodes/{}", path_segment(name))).await? else {
            return Ok(None);
        };
        Ok(Some(parse_node(&v)?))
    }

    /// Sets the labels and taints the provider manages on Node `name` with a JSON merge
    /// patch: `labels` are set and `removed_labels` deleted (other labels, e.g. the
    /// kubelet's own, are left alone); `spec.taints` is replaced as a whole.
    pub async fn patch_node(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        removed_labels: &[String],
        taints: &[Taint],
    ) -> anyhow::Result<()> {
        let body = node_patch(labels, removed_labels, taints);
        let r = self
            .http
            .patch(format!("{}/api/v1/nodes/{}", self.base, path_segment(name)))
            .header(reqwest::header::CONTENT_TYPE, "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .await
            .map_err(describe)?;
        check(r, &format!("patching node {name}")).await.map(|_| ())
    }

    /// Deletes Node `name`; one that is already gone is fine.
    pub async fn delete_node(&self, name: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .delete(format!("{}/api/v1/nodes/{}", self.base, path_segment(name)))
            .send()
            .await
            .map_err(describe)?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        check(r, &format!("deleting node {name}")).await.map(|_| ())
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Option<Json>> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.map_err(describe)?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = check(r, &format!("GET {path}")).await?;
        Ok(Some(serde_json::from_str(&text).with_context(|| format!("GET {path}: not JSON"))?))
    }
}

/// The Secret `kubeadm token create` makes.
pub fn bootstrap_token_secret(id: &str, secret: &str, expires_at: &str) -> Json {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "description": "made by terraform-provider-strata",
            "token-id": id,
            "token-secret": secret,
            "expiration": expires_at,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        }
    })
}

/// Whether the bootstrap-token Secret `secret` holds `token` and is not expired at
/// `now`. A Secret's `data` is base64; no `expiration` means it never expires.
pub fn bootstrap_token_matches(secret: &Json, token: &str, now: time::OffsetDateTime) -> bool {
    use base64::Engine;
    let Some((id, want)) = token.split_once('.') else { return false };
    let field = |k: &str| -> Option<String> {
        let b64 = secret.pointer(&format!("/data/{k}"))?.as_str()?;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
    };
    if field("token-id").as_deref() != Some(id) || field("token-secret").as_deref() != Some(want) {
        return false;
    }
    match field("expiration") {
        None => true,
        Some(e) => {
            time::OffsetDateTime::parse(&e, &time::format_description::well_known::Rfc3339).is_ok_and(|t| t > now)
        }
    }
}

/// The merge patch for [`KubeClient::patch_node`]: a null label deletes it.
pub fn node_patch(labels: &BTreeMap<String, String>, removed_labels: &[String], taints: &[Taint]) -> Json {
    let mut l = serde_json::Map::new();
    for k in removed_labels {
        l.insert(k.clone(), Json::Null);
    }
    for (k, v) in labels {
        l.insert(k.clone(), Json::String(v.clone()));
    }
    json!({"metadata": {"labels": l}, "spec": {"taints": taints}})
}

pub fn parse_node(v: &Json) -> anyhow::Result<NodeObject> {
    let labels = match v.pointer("/metadata/labels") {
        Some(l) => serde_json::from_value(l.clone()).context("node labels")?,
        None => BTreeMap::new(),
    };
    let taints = match v.pointer("/spec/taints") {
        Some(Json::Null) | None => Vec::new(),
        Some(t) => serde_json::from_value(t.clone()).context("node taints")?,
    };
    Ok(NodeObject { labels, taints })
}

/// A name as one URL path segment (node names are DNS subdomains, but be safe).
fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The body of a successful response; otherwise an error with the status and the
/// API's `message` (Kubernetes Status objects hold no secrets we sent).
async fn check(r: reqwest::Response, what: &str) -> anyhow::Result<String> {
    let status = r.status();
    let text = r.text().await.map_err(describe)?;
    if status.is_success() {
        return Ok(text);
    }
    let message = serde_json::from_str::<Json>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(Json::as_str).map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect());
    bail!("{what}: the API answered {status}: {message}")
}

/// A transport error with its causes (reqwest's top-level text alone says little).
fn describe(e: reqwest::Error) -> anyhow::Error {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    anyhow!(s)
}

#[cfg(test)]
mod tests;
