//! `GET /nodes/{node}/tasks/{upid}/status|log`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use super::check_node;
use crate::error::{ApiError, ApiResult};
use crate::http::{ok, Args};
use crate::params::{verify, Endpoint};
use crate::sim::SharedSim;
use crate::store::Task;
use crate::tasks::parse_upid;

fn find(sim: &SharedSim, node: &str, upid: &str) -> ApiResult<Task> {
    check_node(sim, node)?;
    let parsed =
        parse_upid(upid).ok_or_else(|| ApiError::param("upid", format!("unable to parse worker upid '{upid}'")))?;
    if parsed.0 != node {
        return Err(ApiError::internal(format!("no such task '{upid}' on node '{node}'")));
    }
    sim.read(|st| st.tasks.get(upid).cloned()).ok_or_else(|| ApiError::internal(format!("no such task '{upid}'")))
}

pub async fn status(
    State(sim): State<SharedSim>,
    Path((node, upid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Response> {
    verify(Endpoint::TaskStatus, &args.with_path(&[("node", &node), ("upid", &upid)]))?;
    let t = find(&sim, &node, &upid)?;
    let mut v = json!({
        "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart,
        "starttime": t.starttime, "type": t.kind, "id": t.id, "user": t.user,
        "status": t.status,
    });
    if let Some(e) = &t.exitstatus {
        v["exitstatus"] = json!(e);
    }
    Ok(ok(v))
}

pub async fn log(
    State(sim): State<SharedSim>,
    Path((node, upid)): Path<(String, String)>,
    args: Args,
) -> ApiResult<Json<Value>> {
    let p = verify(Endpoint::TaskLog, &args.with_path(&[("node", &node), ("upid", &upid)]))?;
    let t = find(&sim, &node, &upid)?;
    let start: usize = p.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = p.get("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
    let lines: Vec<Value> =
        t.log.iter().enumerate().skip(start).take(limit).map(|(i, l)| json!({ "n": i + 1, "t": l })).collect();
    Ok(Json(json!({ "data": lines, "total": t.log.len() })))
}
