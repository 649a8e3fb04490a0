//! The supervisor paths k3s serves beside the Kubernetes API on port 6443
//! (pkg/server/router.go): `/cacerts` (no auth), `/v1-k3s/server-bootstrap` (basic auth
//! `server:<secret>`), `/db/info` (etcd members), `/v1-k3s/client-kubelet.crt` (basic auth
//! `node:<secret>`, header `k3s-Node-Name`: a kubelet client certificate and key),
//! `/v1-k3s/readyz`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::etcd::Etcd;

pub struct Supervisor {
    pub tls_dir: PathBuf,
    pub secret: String,
    /// `agent-token`'s secret: agents may use it instead of the server token's.
    pub agent_secret: Option<String>,
    pub etcd: Etcd,
}

pub fn router(s: Arc<Supervisor>) -> Router {
    Router::new()
        .route("/cacerts", get(cacerts))
        .route("/v1-k3s/server-bootstrap", get(server_bootstrap))
        .route("/db/info", get(db_info))
        .route("/v1-k3s/client-kubelet.crt", get(client_kubelet))
        .route("/v1-k3s/readyz", get(|| async { "ok" }))
        .with_state(s)
}

/// The basic-auth user, if its password is the secret.
pub fn basic_user(headers: &HeaderMap, secret: &str) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let dec = String::from_utf8(B64.decode(v.trim()).ok()?).ok()?;
    let (u, p) = dec.split_once(':')?;
    (p == secret).then(|| u.to_string())
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response()
}

fn internal(e: anyhow::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response()
}

async fn cacerts(AxState(s): AxState<Arc<Supervisor>>) -> Response {
    match std::fs::read(s.tls_dir.join("server-ca.crt")) {
        Ok(b) => b.into_response(),
        Err(e) => internal(e.into()),
    }
}

async fn server_bootstrap(AxState(s): AxState<Arc<Supervisor>>, headers: HeaderMap) -> Response {
    if basic_user(&headers, &s.secret).as_deref() != Some("server") {
        return unauthorized();
    }
    match super::bootstrap::collect(&s.tls_dir) {
        Ok(j) => ([("content-type", "application/json")], j).into_response(),
        Err(e) => internal(e),
    }
}

async fn db_info(AxState(s): AxState<Arc<Supervisor>>, headers: HeaderMap) -> Response {
    if basic_user(&headers, &s.secret).is_none() {
        return unauthorized();
    }
    match super::etcd::members_json(&s.etcd).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => internal(e),
    }
}

async fn client_kubelet(AxState(s): AxState<Arc<Supervisor>>, headers: HeaderMap) -> Response {
    let with_agent_token = s.agent_secret.as_deref().and_then(|a| basic_user(&headers, a));
    if !matches!(basic_user(&headers, &s.secret).or(with_agent_token).as_deref(), Some("node" | "server")) {
        return unauthorized();
    }
    let Some(node) = headers.get("k3s-node-name").and_then(|v| v.to_str().ok()).filter(|n| !n.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "missing k3s-Node-Name header\n").into_response();
    };
    let ca = match crate::pki::load_ca(
        &s.tls_dir.join("client-ca.crt").to_string_lossy(),
        &s.tls_dir.join("client-ca.key").to_string_lossy(),
    ) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    match crate::pki::issue(&ca, &format!("system:node:{node}"), &["system:nodes"], &[], crate::pki::Usage::Client) {
        Ok(leaf) => format!("{}{}", leaf.cert_pem, leaf.key_pem).into_response(),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_needs_the_secret() {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Basic {}", B64.encode("server:s3")).parse().unwrap());
        assert_eq!(basic_user(&h, "s3").as_deref(), Some("server"));
        assert_eq!(basic_user(&h, "other"), None);
        assert_eq!(basic_user(&HeaderMap::new(), "s3"), None);
    }
}
