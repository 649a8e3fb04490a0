//! Route table.

mod admin;
mod cluster;
mod lxc;
mod qemu;
mod tasks;

use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::json;

use crate::error::{with_reason, ApiError, ApiResult};
use crate::http::gate;
use crate::params::Params;
use crate::sim::SharedSim;

pub fn router(sim: SharedSim) -> Router {
    let api = Router::new()
        .route("/version", get(cluster::version))
        .route("/access/ticket", post(cluster::ticket))
        .route("/nodes", get(cluster::nodes))
        .route("/nodes/{node}/status", get(cluster::node_status))
        .route("/nodes/{node}/storage", get(cluster::storage))
        .route("/cluster/resources", get(cluster::resources))
        .route("/cluster/nextid", get(cluster::nextid))
        .route("/pools", get(cluster::pools).post(cluster::create_pool).put(cluster::update_pool))
        .route("/pools/{poolid}", put(cluster::update_pool_at))
        .route("/nodes/{node}/qemu", get(qemu::list).post(qemu::create))
        .route("/nodes/{node}/qemu/{vmid}", axum::routing::delete(qemu::destroy))
        .route("/nodes/{node}/qemu/{vmid}/config", get(qemu::get_config).put(qemu::put_config).post(qemu::post_config))
        .route("/nodes/{node}/qemu/{vmid}/clone", post(qemu::clone))
        .route("/nodes/{node}/qemu/{vmid}/resize", put(qemu::resize))
        .route("/nodes/{node}/qemu/{vmid}/migrate", post(qemu::migrate))
        .route("/nodes/{node}/qemu/{vmid}/status/current", get(qemu::status_current))
        .route("/nodes/{node}/qemu/{vmid}/status/{action}", post(qemu::status_action))
        .route("/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", get(qemu::agent_interfaces))
        .route("/nodes/{node}/qemu/{vmid}/agent/file-read", get(qemu::agent_file_read))
        .route("/nodes/{node}/lxc", get(lxc::list).post(lxc::create))
        .route("/nodes/{node}/lxc/{vmid}", axum::routing::delete(lxc::destroy))
        .route("/nodes/{node}/lxc/{vmid}/config", get(lxc::get_config).put(lxc::put_config))
        .route("/nodes/{node}/lxc/{vmid}/clone", post(lxc::clone))
        .route("/nodes/{node}/lxc/{vmid}/resize", put(lxc::resize))
        .route("/nodes/{node}/lxc/{vmid}/template", post(lxc::template))
        .route("/nodes/{node}/lxc/{vmid}/interfaces", get(lxc::interfaces))
        .route("/nodes/{node}/lxc/{vmid}/status/current", get(lxc::status_current))
        .route("/nodes/{node}/lxc/{vmid}/status/{action}", post(lxc::status_action))
        .route("/nodes/{node}/storage/{storage}/content", get(lxc::storage_content))
        .route("/nodes/{node}/tasks/{upid}/status", get(tasks::status))
        .route("/nodes/{node}/tasks/{upid}/log", get(tasks::log));
    let admin = Router::new()
        .route("/faults", get(admin::get_faults).put(admin::put_faults))
        .route("/requests", get(admin::requests))
        .route("/requests/reset", post(admin::reset_requests))
        .route("/state", get(admin::state));
    Router::new()
        .nest(crate::http::API_PREFIX, api)
        .nest("/_sim", admin)
        .fallback(not_implemented)
        .layer(axum::middleware::from_fn_with_state(sim.clone(), gate))
        .with_state(sim)
}

/// PVE answers unknown paths/methods with 501.
async fn not_implemented(method: Method, uri: Uri) -> Response {
    let path = uri.path().strip_prefix(crate::http::API_PREFIX).unwrap_or(uri.path());
    with_reason(
        StatusCode::NOT_IMPLEMENTED,
        &format!("Method '{method} {path}' not implemented"),
        json!({ "data": null }),
    )
}

pub(crate) fn check_node(sim: &SharedSim, node: &str) -> ApiResult<()> {
    if sim.is_node(node) {
        Ok(())
    } else {
        Err(ApiError::internal(format!("no such cluster node '{node}'")))
    }
}

/// Reads an already-verified vmid-typed parameter.
pub(crate) fn vmid_of(p: &Params, name: &str) -> u32 {
    p.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub(crate) fn flag(p: &Params, name: &str) -> Option<bool> {
    p.get(name).map(|v| v == "1")
}
