//! The REST side: health and version endpoints, then a generic object store keyed like
//! Kubernetes' own etcd layout (`/registry/<resource>/<namespace>/<name>`), with create,
//! get, list, replace, JSON merge patch and delete.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::auth::{self, User};
use super::server::PeerCert;
use super::State;

pub fn router(state: Arc<State>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

async fn handle(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerCert>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let user = if let Some((cn, orgs)) = peer.0 {
        User { name: cn, groups: orgs }
    } else if let Some(token) =
        headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "))
    {
        match auth::bootstrap_user(&state, token.trim()).await {
            Some(u) => u,
            None => return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized".into()),
        }
    } else {
        User::anonymous()
    };
    if !auth::allowed(&user, method.as_str(), &path) {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("forbidden: User \"{}\" cannot {} path \"{path}\"", user.name, method.as_str().to_lowercase()),
        );
    }
    match path.as_str() {
        "/livez" | "/healthz" => return (StatusCode::OK, "ok").into_response(),
        "/readyz" => {
            return if state.etcd.healthy().await {
                (StatusCode::OK, "ok").into_response()
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "[-]etcd failed: reason withheld\nreadyz check failed\n")
                    .into_response()
            };
        }
        "/version" => return axum::Json(crate::version::info_json(state.version)).into_response(),
        _ => {}
    }
    let Some(target) = Target::parse(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
    };
    let content_type = headers.get("content-type").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    match store(&state, &user, &method, &target, &body, &content_type).await {
        Ok(r) => r,
        Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("{e:#}")),
    }
}

/// A REST path resolved to a resource, namespace and optional name.
#[derive(Debug)]
struct Target {
    group: String,
    version: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

impl Target {
    fn parse(path: &str) -> Option<Target> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
            ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
            _ => return None,
        };
        let (namespace, resource, name) = match rest {
            ["namespaces", ns, res] => (Some(ns.to_string()), res.to_string(), None),
            ["namespaces", ns, res, name] => (Some(ns.to_string()), res.to_string(), Some(name.to_string())),
            [res] => (None, res.to_string(), None),
            [res, name] => (None, res.to_string(), Some(name.to_string())),
            _ => return None,
        };
        Some(Target { group, version, resource, namespace, name })
    }

    fn prefix(&self) -> String {
        // Kubernetes keeps Nodes under the historical name `minions`.
        let res = if self.group.is_empty() && self.resource == "nodes" {
            "minions".to_string()
        } else {
            self.resource.clone()
        };
        let base =
            if self.group.is_empty() { format!("/registry/{res}") } else { format!("/registry/{}/{res}", self.group) };
        match &self.namespace {
            Some(ns) => format!("{base}/{ns}/"),
            None => format!("{base}/"),
        }
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn not_found(t: &Target, name: &str) -> Response {
    let gr = if t.group.is_empty() { t.resource.clone() } else { format!("{}.{}", t.resource, t.group) };
    status(StatusCode::NOT_FOUND, "NotFound", format!("{gr} \"{name}\" not found"))
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn random_suffix(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).expect("system randomness");
    b.iter().map(|x| (b'a' + x % 26) as char).collect()
}

/// Defaults the API server fills in on create, plus Secret's stringData folded into data.
fn prepare_new(t: &Target, obj: &mut Value) -> Result<String, String> {
    let Some(o) = obj.as_object_mut() else { return Err("the body is not a JSON object".into()) };
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    let name = match meta.get("name").and_then(|n| n.as_str()) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => match meta.get("generateName").and_then(|n| n.as_str()) {
            Some(g) => format!("{g}{}", random_suffix(5)),
            None => return Err("metadata.name: Required value: name or generateName is required".into()),
        },
    };
    let m = meta.as_object_mut().ok_or("metadata is not an object")?;
    m.insert("name".into(), json!(name));
    if let Some(ns) = &t.namespace {
        m.insert("namespace".into(), json!(ns));
    }
    m.insert("uid".into(), json!(uuid_like()));
    m.insert("creationTimestamp".into(), json!(now()));
    fold_string_data(o);
    Ok(name)
}

fn uuid_like() -> String {
    let s = random_hex(16);
    format!("{}-{}-{}-{}-{}", &s[0..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).expect("system randomness");
    hex::encode(b)
}

fn fold_string_data(o: &mut Map<String, Value>) {
    if let Some(Value::Object(sd)) = o.remove("stringData") {
        let data = o.entry("data").or_insert_with(|| json!({}));
        if let Some(d) = data.as_object_mut() {
            for (k, v) in sd {
                d.insert(k, json!(B64.encode(v.as_str().unwrap_or_default())));
            }
        }
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn store(
    state: &State,
    user: &User,
    method: &Method,
    t: &Target,
    body: &[u8],
    content_type: &str,
) -> anyhow::Result<Response> {
    let prefix = t.prefix();
    let parse_body = || serde_json::from_slice::<Value>(body);
    Ok(match (method.as_str(), &t.name) {
        ("GET", Some(name)) => match state.etcd.get(&format!("{prefix}{name}")).await? {
            Some(raw) => {
                let mut obj: Value = serde_json::from_slice(&raw)?;
                if t.resource == "configmaps" && t.namespace.as_deref() == Some("kube-public") && name == "cluster-info"
                {
                    sign_cluster_info(state, &mut obj).await?;
                }
                axum::Json(obj).into_response()
            }
            None => not_found(t, name),
        },
        ("GET", None) => {
            let items: Vec<Value> = state
                .etcd
                .list(&prefix)
                .await?
                .into_iter()
                .filter(|(k, _)| !k[prefix.len()..].contains('/'))
                .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
                .collect();
            axum::Json(json!({"kind": "List", "apiVersion": t.api_version(), "metadata": {}, "items": items}))
                .into_response()
        }
        ("POST", None) => {
            let Ok(mut obj) = parse_body() else {
                return Ok(status(StatusCode::BAD_REQUEST, "BadRequest", "invalid JSON body".into()));
            };
            let name = match prepare_new(t, &mut obj) {
                Ok(n) => n,
                Err(e) => return Ok(status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e)),
            };
            let key = format!("{prefix}{name}");
            if state.etcd.get(&key).await?.is_some() {
                let gr = if t.group.is_empty() { t.resource.clone() } else { format!("{}.{}", t.resource, t.group) };
                return Ok(status(StatusCode::CONFLICT, "AlreadyExists", format!("{gr} \"{name}\" already exists")));
            }
            if t.group == "certificates.k8s.io" && t.resource == "certificatesigningrequests" {
                if let Err(e) = super::csr::approve_and_sign(state, user, &mut obj) {
                    return Ok(status(StatusCode::FORBIDDEN, "Forbidden", e));
                }
            }
            state.etcd.put(&key, &serde_json::to_vec(&obj)?).await?;
            (StatusCode::CREATED, axum::Json(obj)).into_response()
        }
        ("PUT", Some(name)) => {
            let key = format!("{prefix}{name}");
            let Some(old) = state.etcd.get(&key).await? else { return Ok(not_found(t, name)) };
            let Ok(mut obj) = parse_body() else {
                return Ok(status(StatusCode::BAD_REQUEST, "BadRequest", "invalid JSON body".into()));
            };
            let old: Value = serde_json::from_slice(&old)?;
            if let Some(o) = obj.as_object_mut() {
                fold_string_data(o);
                let meta = o.entry("metadata").or_insert_with(|| json!({}));
                for k in ["uid", "creationTimestamp", "namespace"] {
                    if let Some(v) = old["metadata"].get(k) {
                        meta[k] = v.clone();
                    }
                }
            }
            state.etcd.put(&key, &serde_json::to_vec(&obj)?).await?;
            axum::Json(obj).into_response()
        }
        ("PATCH", Some(name)) => {
            if !content_type.starts_with("application/merge-patch+json")
                && !content_type.starts_with("application/strategic-merge-patch+json")
            {
                return Ok(status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"),
                ));
            }
            let key = format!("{prefix}{name}");
            let Some(old) = state.etcd.get(&key).await? else { return Ok(not_found(t, name)) };
            let Ok(patch) = parse_body() else {
                return Ok(status(StatusCode::BAD_REQUEST, "BadRequest", "invalid JSON patch".into()));
            };
            let mut obj: Value = serde_json::from_slice(&old)?;
            merge_patch(&mut obj, &patch);
            state.etcd.put(&key, &serde_json::to_vec(&obj)?).await?;
            axum::Json(obj).into_response()
        }
        ("DELETE", Some(name)) => {
            if state.etcd.delete(&format!("{prefix}{name}")).await? {
                axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "kind": t.resource}}))
                .into_response()
            } else {
                not_found(t, name)
            }
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here")),
    })
}

/// The bootstrap signer controller's job, done on read: a detached JWS
/// (`jws-kubeconfig-<token-id>`, HS256 keyed with the token) of the kubeconfig in
/// cluster-info for each token currently valid for signing.
async fn sign_cluster_info(state: &State, cm: &mut Value) -> anyhow::Result<()> {
    let Some(kubeconfig) =
        cm.get("data").and_then(|d| d.get("kubeconfig")).and_then(|k| k.as_str()).map(str::to_string)
    else {
        return Ok(());
    };
    for (key, raw) in state.etcd.list("/registry/secrets/kube-system/bootstrap-token-").await? {
        let Ok(secret) = serde_json::from_slice::<Value>(&raw) else { continue };
        let Some(token_secret) = auth::token_usable(&secret, "signing") else { continue };
        let id = key.rsplit("bootstrap-token-").next().unwrap_or_default().to_string();
        let sig = crate::jws::detached_sign(&kubeconfig, &id, &format!("{id}.{token_secret}"));
        cm["data"][format!("jws-kubeconfig-{id}")] = json!(sig);
    }
    Ok(())
}
