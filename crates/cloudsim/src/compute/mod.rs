//! Nova v2.1, one file per resource family: `servers.rs` (list, show, update, delete),
//! `create.rs` (server create: block device mappings, networks, conversion hosts), `actions.rs`
//! (stop/start/reboot, createImage, ...), `attachments.rs` (os-volume_attachments),
//! `interfaces.rs` (os-interface, ips), `metadata.rs` (metadata, tags, instance actions),
//! `flavors.rs`, `keypairs.rs` and `quotas.rs` (availability zones, limits, quota sets, extensions).
//! This module holds the per-cloud data, the route table, the version documents and the helpers
//! the families share (server lookup, links, conflict errors).
//!
//! A server's status is derived from its `vm_state` and `task_state`, as in Nova. Requests only
//! validate and record intent (`task_state`), and `crate::jobs` completes the transition later.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, CloudCtx, Ctx, COMPUTE_MAX, COMPUTE_MIN, Q};
use crate::sim::Sim;
use crate::state::Cloud;

mod actions;
mod attachments;
mod create;
mod flavors;
mod interfaces;
mod keypairs;
mod metadata;
mod quotas;
mod requests;
mod servers;

pub use flavors::Flavor;
pub use keypairs::Keypair;
pub use servers::{Bdm, FlavorCopy, Server, ServerFault};

/// The one compute host every server lands on.
pub const HOST: &str = "cloudsim-compute";

/// One cloud's Nova data.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ComputeData {
    /// Servers.
    pub servers: BTreeMap<String, Server>,
    /// Flavors.
    pub flavors: BTreeMap<String, Flavor>,
    /// Keypairs by `user_id/name`.
    pub keypairs: BTreeMap<String, Keypair>,
    /// Counter for instance names and keypair ids.
    pub counter: u64,
}

fn server_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Instance {id} could not be found."))
}

fn conflict_state(action: &str, s: &Server) -> ApiError {
    match &s.task_state {
        Some(t) => ApiError::conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {t}",
            s.id
        )),
        None => ApiError::conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {}",
            s.id, s.vm_state
        )),
    }
}

/// Nova routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/compute", get(versions))
        .route("/compute/v2.1", get(version))
        .merge(servers::routes())
        .merge(actions::routes())
        .merge(attachments::routes())
        .merge(interfaces::routes())
        .merge(metadata::routes())
        .merge(flavors::routes())
        .merge(keypairs::routes())
        .merge(quotas::routes())
}

fn version_doc(sim: &Sim, cloud: &str) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT", "version": COMPUTE_MAX.to_string(), "min_version": COMPUTE_MIN.to_string(),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/{}/compute/v2.1/", sim.base_url, cloud)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    })
}

async fn versions(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    http::ok(json!({"versions": [version_doc(&sim, &cc.cloud)]}))
}

async fn version(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    http::ok(json!({"version": version_doc(&sim, &cc.cloud)}))
}

fn links(ctx: &Ctx, kind: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": ctx.url(&format!("/compute/v2.1/{kind}/{id}"))},
        {"rel": "bookmark", "href": ctx.url(&format!("/compute/{kind}/{id}"))},
    ])
}

/// A page of a Nova list: `{key: items}`, and `{key}_links` to the next page of `path` (after
/// `/compute/v2.1/`) when there is one.
fn list_page(
    ctx: &Ctx,
    q: &Q,
    key: &str,
    path: &str,
    items: Vec<Value>,
    next_marker: Option<String>,
) -> Response {
    let mut body = json!({ key: items });
    if let Some(m) = next_marker {
        let href = ctx.url(&format!("/compute/v2.1/{path}?{}", http::next_query(q, &m)));
        body[format!("{key}_links")] = json!([{"rel": "next", "href": href}]);
    }
    http::ok(body)
}

fn visible_server(ctx: &Ctx, s: &Server) -> bool {
    s.project_id == ctx.project_id || ctx.is_admin()
}

fn server_ref<'a>(ctx: &Ctx, c: &'a Cloud, id: &str) -> Result<&'a Server, ApiError> {
    c.compute
        .servers
        .get(id)
        .filter(|s| visible_server(ctx, s))
        .ok_or_else(|| server_not_found(id))
}

fn server_mut<'a>(ctx: &Ctx, c: &'a mut Cloud, id: &str) -> Result<&'a mut Server, ApiError> {
    c.compute
        .servers
        .get_mut(id)
        .filter(|s| s.project_id == ctx.project_id || ctx.is_admin())
        .ok_or_else(|| server_not_found(id))
}

fn with_server<R>(
    ctx: &Ctx,
    id: &str,
    f: impl FnOnce(&Cloud, &Server) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    ctx.read(|c| f(c, server_ref(ctx, c, id)?))
}
