//! The REST side: health, version and discovery endpoints, then a generic object store
//! keyed like Kubernetes' own etcd layout (`/registry/<resource>/<namespace>/<name>`),
//! with create, get, list (field and label selectors), replace, patch (JSON merge,
//! strategic merge, JSON patch, server-side apply), delete, `resourceVersion`
//! conflicts, the `status` subresources and the eviction API.

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
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
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
        "/version" => {
            let mut v = crate::version::info_json(state.version);
            if let Some(g) = &state.git_version {
                v["gitVersion"] = json!(g);
            }
            return axum::Json(v).into_response();
        }
        _ => {}
    }
    if method == Method::GET {
        let advertise = format!("{}:{}", state.flags.advertise_address, state.flags.secure_port);
        if let Some(doc) = super::discovery::document(&path, &advertise).or_else(|| super::discovery::openapi_v3(&path))
        {
            return axum::Json(doc).into_response();
        }
    }
    let Some(target) = Target::parse(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
    };
    let content_type = headers.get("content-type").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let filters =
        Filters { fields: q("fieldSelector").map(str::to_string), labels: q("labelSelector").map(str::to_string) };
    let result = if target.subresource.as_deref() == Some("eviction") {
        if method != Method::POST {
            return status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "only POST creates an eviction".into());
        }
        evict(&state, &target).await
    } else if target.subresource.as_deref().is_some_and(|s| s != "status") {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
    } else {
        store(&state, &user, &method, &target, &body, &content_type, &filters).await
    };
    let accept = headers.get("accept").and_then(|h| h.to_str().ok()).unwrap_or("");
    match result {
        Ok(r)
            if method == Method::GET
                && target.resource == "nodes"
                && target.subresource.is_none()
                && r.status().is_success()
                && super::table::wants_table(accept) =>
        {
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            axum::Json(super::table::nodes(&body, time::OffsetDateTime::now_utc())).into_response()
        }
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
    /// `status`, `eviction`.
    subresource: Option<String>,
}

struct Filters {
    fields: Option<String>,
    labels: Option<String>,
}

impl Target {
    fn parse(path: &str) -> Option<Target> {
        // Segments are percent-decoded, as by the real API server (`web%2D1` is `web-1`).
        let decoded: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(|x| percent_encoding::percent_decode_str(x).decode_utf8_lossy().into_owned())
            .collect();
        let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
            ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
            _ => return None,
        };
        let s = |x: &&str| x.to_string();
        let (namespace, resource, name, subresource) = match rest {
            ["namespaces", ns, res] => (Some(s(ns)), s(res), None, None),
            ["namespaces", ns, res, name] => (Some(s(ns)), s(res), Some(s(name)), None),
            ["namespaces", ns, res, name, sub] => (Some(s(ns)), s(res), Some(s(name)), Some(s(sub))),
            [res] => (None, s(res), None, None),
            [res, name] => (None, s(res), Some(s(name)), None),
            [res, name, sub] => (None, s(res), Some(s(name)), Some(s(sub))),
            _ => return None,
        };
        Some(Target { group, version, resource, namespace, name, subresource })
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

    fn kind(&self) -> String {
        super::discovery::kind(&self.group, &self.resource).unwrap_or("Object").to_string()
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

/// A new `metadata.resourceVersion` for every write: increasing (nanoseconds), so a
/// client that read an older one gets a conflict.
pub fn bump_resource_version(obj: &mut Value) {
    let v = time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), json!(v));
    }
}

/// kind and apiVersion as the API server always sends them (kubectl decodes by them).
fn typed(t: &Target, mut obj: Value) -> Value {
    if let Some(o) = obj.as_object_mut() {
        o.entry("kind").or_insert_with(|| json!(t.kind()));
        o.entry("apiVersion").or_insert_with(|| json!(t.api_version()));
    }
    obj
}

fn already_exists(t: &Target, name: &str) -> Response {
    let gr = if t.group.is_empty() { t.resource.clone() } else { format!("{}.{}", t.resource, t.group) };
    status(StatusCode::CONFLICT, "AlreadyExists", format!("{gr} \"{name}\" already exists"))
}

fn conflict(t: &Target, name: &str) -> Response {
    let gr = if t.group.is_empty() { t.resource.clone() } else { format!("{}.{}", t.resource, t.group) };
    status(
        StatusCode::CONFLICT,
        "Conflict",
        format!("Operation cannot be fulfilled on {gr} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
    )
}

/// Whether a write that names `resourceVersion` `sent` is stale against `stored`.
fn stale(sent: &Value, stored: &Value) -> bool {
    match sent.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => stored.pointer("/metadata/resourceVersion").and_then(Value::as_str) != Some(v),
        _ => false,
    }
}

/// What the API server (and for Nodes the node lifecycle controller, for Pods bound to
/// a node the kubelet) does to every object written.
fn on_write(t: &Target, obj: &mut Value) {
    if t.group.is_empty() && t.resource == "nodes" {
        // A write is no news of the kubelet's health (the controller loop judges that):
        // only the taints are brought in line with the status written.
        super::nodes::reconcile(obj, false, time::OffsetDateTime::now_utc());
    }
    if t.group.is_empty()
        && t.resource == "pods"
        && obj.pointer("/spec/nodeName").is_some()
        && obj.pointer("/status/phase").is_none()
    {
        // No kubelet runs pods here: a pod bound to a node counts as running.
        obj["status"] = json!({"phase": "Running"});
    }
    bump_resource_version(obj);
}

/// `PATCH` bodies by content type onto `obj`; `Err` is a 4xx response.
fn apply_patch(obj: &mut Value, body: &[u8], content_type: &str) -> Result<(), Box<Response>> {
    let bad = |m: String| Box::new(status(StatusCode::BAD_REQUEST, "BadRequest", m));
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON patch: {e}")))?;
            // The directives of a strategic merge patch ($patch, $setElementOrder/...,
            // $retainKeys) are dropped: the core fields kubectl patches (labels, taints,
            // unschedulable) have no merge keys, so the rest is a merge patch.
            merge_patch(obj, &strip_directives(patch));
        }
        "application/json-patch+json" => {
            let patch: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(obj, &patch).map_err(|e| {
                Box::new(status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the JSON patch could not be applied: {e}"),
                ))
            })?;
        }
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            let patch: Value =
                serde_yaml_ng::from_slice(body).map_err(|e| bad(format!("invalid apply configuration: {e}")))?;
            merge_patch(obj, &patch);
        }
        _ => {
            return Err(Box::new(status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"),
            )))
        }
    }
    Ok(())
}

fn strip_directives(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k, strip_directives(v))).collect(),
        ),
        other => other,
    }
}

/// `POST pods/{name}/eviction`.
async fn evict(state: &State, t: &Target) -> anyhow::Result<Response> {
    let (Some(ns), Some(name)) = (&t.namespace, &t.name) else {
        return Ok(status(StatusCode::NOT_FOUND, "NotFound", "eviction needs a namespaced pod".into()));
    };
    let key = format!("/registry/pods/{ns}/{name}");
    let Some(raw) = state.etcd.get(&key).await? else {
        return Ok(status(StatusCode::NOT_FOUND, "NotFound", format!("pods \"{name}\" not found")));
    };
    let pod: Value = serde_json::from_slice(&raw)?;
    let values = |kvs: Vec<(String, Vec<u8>)>| -> Vec<Value> {
        kvs.into_iter().filter_map(|(_, v)| serde_json::from_slice(&v).ok()).collect()
    };
    let pods = values(state.etcd.list(&format!("/registry/pods/{ns}/")).await?);
    let pdbs = values(state.etcd.list(&format!("/registry/policy/poddisruptionbudgets/{ns}/")).await?);
    let argv = ["kube-apiserver".to_string(), "evict".into(), ns.clone(), name.clone()];
    if let Some(why) = super::eviction::violation(&pod, &pods, &pdbs) {
        crate::record::record("eviction", &argv, &[], 429);
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests", "code": 429,
            "details": {"causes": [{"reason": "DisruptionBudget", "message": why}]}});
        return Ok((StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response());
    }
    state.etcd.delete(&key).await?;
    // In the node's call log, so tests can order evictions against kubeadm calls.
    crate::record::record("eviction", &argv, &[], 0);
    let ok = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok((StatusCode::CREATED, axum::Json(ok)).into_response())
}

async fn store(
    state: &State,
    user: &User,
    method: &Method,
    t: &Target,
    body: &[u8],
    content_type: &str,
    filters: &Filters,
) -> anyhow::Result<Response> {
    let prefix = t.prefix();
    let parse_body = || serde_json::from_slice::<Value>(body);
    Ok(match (method.as_str(), &t.name) {
        ("GET", Some(name)) => match state.etcd.get(&format!("{prefix}{name}")).await? {
            Some(raw) => {
                let mut obj: Value = typed(t, serde_json::from_slice(&raw)?);
                if t.resource == "configmaps" && t.namespace.as_deref() == Some("kube-public") && name == "cluster-info"
                {
                    sign_cluster_info(state, &mut obj).await?;
                }
                axum::Json(obj).into_response()
            }
            None => not_found(t, name),
        },
        ("GET", None) => {
            // Without a namespace, a namespaced resource lists every namespace's objects.
            let depth = usize::from(
                t.namespace.is_none()
                    && matches!(
                        t.resource.as_str(),
                        "pods"
                            | "configmaps"
                            | "secrets"
                            | "services"
                            | "serviceaccounts"
                            | "events"
                            | "daemonsets"
                            | "deployments"
                            | "replicasets"
                            | "statefulsets"
                            | "poddisruptionbudgets"
                            | "leases"
                            | "roles"
                            | "rolebindings"
                    ),
            );
            let items: Vec<Value> = state
                .etcd
                .list(&prefix)
                .await?
                .into_iter()
                .filter(|(k, _)| k[prefix.len()..].matches('/').count() == depth)
                .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
                .map(|o| typed(t, o))
                .filter(|o| filters.fields.as_deref().is_none_or(|f| super::select::fields_match(o, f)))
                .filter(|o| filters.labels.as_deref().is_none_or(|l| super::select::labels_match(o, l)))
                .collect();
            let rv = time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string();
            axum::Json(json!({"kind": format!("{}List", t.kind()), "apiVersion": t.api_version(),
                "metadata": {"resourceVersion": rv}, "items": items}))
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
                return Ok(already_exists(t, &name));
            }
            if t.group == "certificates.k8s.io" && t.resource == "certificatesigningrequests" {
                if let Err(e) = super::csr::approve_and_sign(state, user, &mut obj) {
                    return Ok(status(StatusCode::FORBIDDEN, "Forbidden", e));
                }
            }
            let mut obj = typed(t, obj);
            on_write(t, &mut obj);
            // Created in between by another request: the same AlreadyExists.
            if !state.etcd.put_if(&key, &serde_json::to_vec(&obj)?, None).await? {
                return Ok(already_exists(t, &name));
            }
            (StatusCode::CREATED, axum::Json(obj)).into_response()
        }
        ("PUT", Some(name)) => {
            let key = format!("{prefix}{name}");
            let Some(old_raw) = state.etcd.get(&key).await? else { return Ok(not_found(t, name)) };
            let Ok(mut obj) = parse_body() else {
                return Ok(status(StatusCode::BAD_REQUEST, "BadRequest", "invalid JSON body".into()));
            };
            let old: Value = serde_json::from_slice(&old_raw)?;
            if stale(&obj, &old) {
                return Ok(conflict(t, name));
            }
            if let Some(o) = obj.as_object_mut() {
                fold_string_data(o);
                let meta = o.entry("metadata").or_insert_with(|| json!({}));
                for k in ["uid", "creationTimestamp", "namespace"] {
                    if let Some(v) = old["metadata"].get(k) {
                        meta[k] = v.clone();
                    }
                }
            }
            let mut obj = typed(t, obj);
            on_write(t, &mut obj);
            // Changed in between by another request (the resourceVersion checked above is
            // stale now): a conflict, as from the real API server.
            if !state.etcd.put_if(&key, &serde_json::to_vec(&obj)?, Some(&old_raw)).await? {
                return Ok(conflict(t, name));
            }
            axum::Json(obj).into_response()
        }
        ("PATCH", Some(name)) => {
            let key = format!("{prefix}{name}");
            let apply = content_type.starts_with("application/apply-patch");
            // As kube-apiserver's GuaranteedUpdate: the patch is applied to the object as
            // read and written only over that object; a write in between (another client,
            // the node controller) makes it read and patch again, so no update is lost.
            loop {
                let old_raw = state.etcd.get(&key).await?;
                let (mut obj, created) = match &old_raw {
                    Some(old) => (serde_json::from_slice::<Value>(old)?, false),
                    // Server-side apply creates what does not exist yet.
                    None if apply => {
                        let mut o = json!({"metadata": {"name": name}});
                        prepare_new(t, &mut o).map_err(|e| anyhow::anyhow!(e))?;
                        (o, true)
                    }
                    None => return Ok(not_found(t, name)),
                };
                let before = obj.clone();
                if let Err(r) = apply_patch(&mut obj, body, content_type) {
                    return Ok(*r);
                }
                if stale(&obj, &before) {
                    return Ok(conflict(t, name));
                }
                for k in ["uid", "creationTimestamp", "name", "namespace"] {
                    if let Some(v) = before["metadata"].get(k) {
                        obj["metadata"][k] = v.clone();
                    }
                }
                let mut obj = typed(t, obj);
                on_write(t, &mut obj);
                if state.etcd.put_if(&key, &serde_json::to_vec(&obj)?, old_raw.as_deref()).await? {
                    break (if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(obj))
                        .into_response();
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_registry_keys() {
        let t = Target::parse("/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef").unwrap();
        assert_eq!(t.prefix(), "/registry/secrets/kube-system/");
        assert_eq!(t.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(Target::parse("/api/v1/nodes/node1").unwrap().prefix(), "/registry/minions/");
        let t = Target::parse("/apis/apps/v1/namespaces/kube-flannel/daemonsets").unwrap();
        assert_eq!(t.prefix(), "/registry/apps/daemonsets/kube-flannel/");
        assert!(t.name.is_none());
        assert!(Target::parse("/metrics").is_none());
        let t = Target::parse("/api/v1/namespaces/apps/pods/web%2D1/eviction").unwrap();
        assert_eq!((t.name.as_deref(), t.subresource.as_deref()), (Some("web-1"), Some("eviction")));
    }

    #[test]
    fn json_merge_patch_rfc7386() {
        let mut node = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"taints": [{"key": "x"}]}});
        merge_patch(&mut node, &json!({"metadata": {"labels": {"b": null, "c": "3"}}, "spec": {"taints": []}}));
        assert_eq!(node, json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"taints": []}}));
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let mut s = json!({"metadata": {"name": "x"}, "stringData": {"token-id": "abcdef"}});
        let t = Target::parse("/api/v1/namespaces/kube-system/secrets").unwrap();
        assert_eq!(prepare_new(&t, &mut s).unwrap(), "x");
        assert_eq!(s["data"]["token-id"], B64.encode("abcdef"));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["metadata"]["namespace"], "kube-system");
    }
}
