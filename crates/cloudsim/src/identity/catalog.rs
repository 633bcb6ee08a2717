//! The service catalog, as tokens carry it and as `/auth/catalog`, services, endpoints and
//! regions list it.

use std::sync::Arc;

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::http::{self, Ctx};
use crate::sim::Sim;
use crate::state::Cloud;

use super::{base, links};

/// The service catalog of a cloud, as it appears in tokens and `GET /auth/catalog`.
pub(super) fn catalog(sim: &Sim, cloud: &Cloud, project_id: &str) -> Value {
    let b = base(sim, &cloud.name);
    let services: [(&str, &str, String); 7] = [
        ("identity", "keystone", format!("{b}/identity")),
        ("compute", "nova", format!("{b}/compute/v2.1")),
        (
            "block-storage",
            "cinder",
            format!("{b}/volume/v3/{project_id}"),
        ),
        (
            "volumev3",
            "cinderv3",
            format!("{b}/volume/v3/{project_id}"),
        ),
        ("image", "glance", format!("{b}/image")),
        ("network", "neutron", format!("{b}/network")),
        ("placement", "placement", format!("{b}/placement")),
    ];
    let entries: Vec<Value> = services
        .iter()
        // Placement is not simulated; leaving it out keeps clients from trying it.
        .filter(|(t, _, _)| *t != "placement")
        .enumerate()
        .map(|(i, (stype, name, url))| {
            let endpoints: Vec<Value> = ["public", "internal", "admin"]
                .iter()
                .enumerate()
                .map(|(j, iface)| {
                    json!({
                        "id": format!("{:032x}", (i * 3 + j + 1) as u128 + ((cloud.index as u128) << 64)),
                        "interface": iface,
                        "region_id": cloud.region,
                        "region": cloud.region,
                        "url": url,
                    })
                })
                .collect();
            json!({"id": format!("{:032x}", (i + 1) as u128 + ((cloud.index as u128) << 96)), "type": stype, "name": name, "endpoints": endpoints})
        })
        .collect();
    Value::Array(entries)
}

async fn auth_catalog(ctx: Ctx) -> Response {
    let cat = ctx.read(|c| catalog(&ctx.sim, c, &ctx.project_id));
    http::ok(json!({"catalog": cat, "links": links(&ctx, "/auth/catalog")}))
}

async fn list_services(ctx: Ctx) -> Response {
    let cat = ctx.read(|c| catalog(&ctx.sim, c, &ctx.project_id));
    let items: Vec<Value> = cat
        .as_array()
        .map(|a| a.iter().map(|s| json!({"id": s["id"], "type": s["type"], "name": s["name"], "enabled": true, "description": null})).collect())
        .unwrap_or_default();
    http::ok(json!({"services": items, "links": links(&ctx, "/services")}))
}

async fn list_endpoints(ctx: Ctx) -> Response {
    let cat = ctx.read(|c| catalog(&ctx.sim, c, &ctx.project_id));
    let mut items = Vec::new();
    for s in cat.as_array().into_iter().flatten() {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            items.push(json!({"id": e["id"], "interface": e["interface"], "region_id": e["region_id"], "region": e["region"], "url": e["url"], "service_id": s["id"], "enabled": true}));
        }
    }
    http::ok(json!({"endpoints": items, "links": links(&ctx, "/endpoints")}))
}

async fn list_regions(ctx: Ctx) -> Response {
    let region = ctx.read(|c| c.region.clone());
    http::ok(
        json!({"regions": [{"id": region, "description": "", "parent_region_id": null}], "links": links(&ctx, "/regions")}),
    )
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/identity/v3/auth/catalog", get(auth_catalog))
        .route("/identity/v3/services", get(list_services))
        .route("/identity/v3/endpoints", get(list_endpoints))
        .route("/identity/v3/regions", get(list_regions))
}
