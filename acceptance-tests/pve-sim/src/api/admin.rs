//! `/_sim/*`: the harness's control channel (not part of the PVE API).

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde_json::json;

use crate::config::FaultsPatch;
use crate::error::{ApiError, ApiResult};
use crate::http::ok;
use crate::sim::SharedSim;

pub async fn get_faults(State(sim): State<SharedSim>) -> Response {
    ok(json!(sim.faults()))
}

pub async fn put_faults(State(sim): State<SharedSim>, body: axum::body::Bytes) -> ApiResult<Response> {
    let patch: FaultsPatch =
        serde_json::from_slice(&body).map_err(|e| ApiError::param("faults", format!("invalid faults JSON: {e}")))?;
    let next = patch.apply(&sim.faults());
    next.validate().map_err(|e| ApiError::param("faults", e))?;
    sim.set_faults(next.clone());
    Ok(ok(json!(next)))
}

pub async fn requests(State(sim): State<SharedSim>) -> Response {
    ok(json!(sim.reqlog.entries()))
}

pub async fn reset_requests(State(sim): State<SharedSim>) -> Response {
    sim.reqlog.clear();
    ok(json!(null))
}

pub async fn state(State(sim): State<SharedSim>) -> Json<serde_json::Value> {
    let v = sim.read(|st| {
        let mut v = serde_json::to_value(st).unwrap_or_default();
        v["shared_locks"] = json!(st.shared_locks);
        v
    });
    Json(json!({ "data": v }))
}
