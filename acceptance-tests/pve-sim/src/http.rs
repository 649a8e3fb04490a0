//! Request plumbing shared by all handlers: the gate middleware (auth,
//! fault injection, request log), parameter extraction and the `{"data":..}`
//! envelope.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::{with_reason, ApiError};
use crate::faults::{self, Injected};
use crate::params::RawParams;
use crate::reqlog::RequestEntry;
use crate::server::ConnKill;
use crate::sim::{now, SharedSim};

pub const API_PREFIX: &str = "/api2/json";

/// Wraps a value in PVE's `{"data": ...}` envelope.
pub fn ok(data: Value) -> Response {
    Json(json!({ "data": data })).into_response()
}

pub async fn gate(State(sim): State<SharedSim>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let ts = now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let is_api = path.starts_with(API_PREFIX);
    let is_admin = path.starts_with("/_sim/");
    let kill = req.extensions().get::<ConnKill>().cloned();

    let log = |status: u16, fault: Option<&str>, user: Option<&str>| {
        // The admin API is the test harness's own channel: keep it out of
        // the log so counts reflect only client traffic.
        if !is_admin {
            sim.reqlog.record(RequestEntry {
                ts,
                method: method.to_string(),
                path: path.clone(),
                status,
                duration_ms: start.elapsed().as_millis() as u64,
                duration_us: start.elapsed().as_micros() as u64,
                fault: fault.map(String::from),
                user: user.map(String::from),
            });
        }
    };

    let faults = sim.faults();
    if is_api && faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }

    let login = method == Method::POST && path == format!("{API_PREFIX}/access/ticket");
    let ident = if login || !(is_api || is_admin) {
        None
    } else {
        match sim.auth.authenticate(req.headers(), &method) {
            Ok(i) => Some(i),
            Err(e) => {
                if sim.cfg.auth_fail_delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(sim.cfg.auth_fail_delay_ms)).await;
                }
                log(401, None, None);
                return e.into_response();
            }
        }
    };
    let user = ident.as_ref().map(|i| i.upid_user().to_string());
    if let Some(i) = ident {
        req.extensions_mut().insert(i);
    }

    if is_api {
        match faults::decide(&faults, &method) {
            Injected::None => {}
            Injected::Fail(code) => {
                log(code.as_u16(), Some("5xx"), user.as_deref());
                let msg = if code == StatusCode::SERVICE_UNAVAILABLE {
                    "Service Unavailable (pve-sim injected fault)"
                } else {
                    "Internal Server Error (pve-sim injected fault)"
                };
                return with_reason(code, msg, json!({ "data": null }));
            }
            Injected::ResetBefore => {
                log(0, Some("reset-before"), user.as_deref());
                return reset(kill).await;
            }
            Injected::ResetAfter => {
                let resp = next.run(req).await;
                log(resp.status().as_u16(), Some("reset-after"), user.as_deref());
                return reset(kill).await;
            }
        }
    }

    let resp = next.run(req).await;
    log(resp.status().as_u16(), None, user.as_deref());
    resp
}

/// Asks the connection task to drop the connection and never answers.
async fn reset(kill: Option<ConnKill>) -> Response {
    match kill {
        Some(k) => {
            k.0.notify_one();
            std::future::pending::<Response>().await
        }
        // Not served through our accept loop (shouldn't happen): fail loudly.
        None => ApiError::internal("connection reset requested outside a connection").into_response(),
    }
}

/// All request parameters: query string plus a form-urlencoded or JSON body
/// (PVE accepts both).
pub struct Args(pub RawParams);

impl<S: Send + Sync> FromRequest<S> for Args {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut out: RawParams = Vec::new();
        if let Some(q) = req.uri().query() {
            out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        let is_json = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|ct| ct.starts_with("application/json"))
            .unwrap_or(false);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.to_string()))?;
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Args(out));
        }
        if is_json {
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, format!("unable to parse JSON body: {e}")))?;
            let Value::Object(map) = v else {
                return Err(ApiError::Status(StatusCode::BAD_REQUEST, "JSON body must be an object".into()));
            };
            for (k, v) in map {
                let s = match v {
                    Value::Null => continue,
                    Value::String(s) => s,
                    Value::Bool(b) => {
                        if b {
                            "1".into()
                        } else {
                            "0".into()
                        }
                    }
                    other => other.to_string(),
                };
                out.push((k, s));
            }
        } else {
            out.extend(form_urlencoded::parse(&body).into_owned());
        }
        Ok(Args(out))
    }
}

impl Args {
    /// Adds path parameters; they win over same-named body parameters.
    pub fn with_path(mut self, pairs: &[(&str, &str)]) -> RawParams {
        self.0.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
        for (k, v) in pairs {
            self.0.push((k.to_string(), v.to_string()));
        }
        self.0
    }
}
