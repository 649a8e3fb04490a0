//! API error shapes, matching pveproxy's JSON formatter.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub enum ApiError {
    /// HTTP 400 "Parameter verification failed." with a per-parameter map.
    Params(BTreeMap<String, String>),
    /// Any other failure: PVE puts the message's first line in the reason
    /// phrase and returns `{"data":null}` as body.
    Status(StatusCode, String),
}

impl ApiError {
    /// The generic PVE failure (a `die` in an API handler).
    pub fn internal(msg: impl Into<String>) -> Self {
        ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR, msg.into())
    }
    pub fn param(name: &str, msg: impl Into<String>) -> Self {
        ApiError::Params(BTreeMap::from([(name.to_string(), msg.into())]))
    }
    /// PVE's `raise_perm_exc`: HTTP 403 "Permission check failed (WHY)".
    pub fn permission(why: &str) -> Self {
        ApiError::Status(StatusCode::FORBIDDEN, format!("Permission check failed ({why})"))
    }
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        ApiError::Status(StatusCode::UNAUTHORIZED, msg.into())
    }
    pub fn message(&self) -> String {
        match self {
            ApiError::Params(_) => "Parameter verification failed.".into(),
            ApiError::Status(_, m) => m.clone(),
        }
    }
}

/// Builds a response whose HTTP reason phrase carries `msg`, as pveproxy does.
pub fn with_reason(status: StatusCode, msg: &str, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    let first = msg.lines().next().unwrap_or("").trim();
    // Reason phrases may only hold visible ASCII, space and tab.
    let clean: String = first.chars().map(|c| if c == '\t' || (' '..='~').contains(&c) { c } else { '?' }).collect();
    if !clean.is_empty() {
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(clean.into_bytes()) {
            resp.extensions_mut().insert(reason);
        }
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Params(errors) => with_reason(
                StatusCode::BAD_REQUEST,
                "Parameter verification failed.",
                json!({ "data": null, "errors": errors }),
            ),
            ApiError::Status(code, msg) => with_reason(code, &msg, json!({ "data": null })),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
