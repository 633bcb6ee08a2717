//! Fixed answers clients ask for: availability zones, limits, quota sets, extensions.

use std::sync::Arc;

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::http::{self, Ctx};
use crate::sim::Sim;
use crate::util;

use super::servers::Server;
use super::HOST;

async fn availability_zones(_ctx: Ctx) -> Response {
    http::ok(
        json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": true}, "hosts": null}]}),
    )
}

async fn availability_zones_detail(_ctx: Ctx) -> Response {
    let now = util::iso_micro(&util::now());
    http::ok(json!({"availabilityZoneInfo": [
        {"zoneName": "nova", "zoneState": {"available": true}, "hosts": {HOST: {"nova-compute": {"available": true, "active": true, "updated_at": now}}}},
        {"zoneName": "internal", "zoneState": {"available": true}, "hosts": {"cloudsim-controller": {"nova-conductor": {"available": true, "active": true, "updated_at": now}, "nova-scheduler": {"available": true, "active": true, "updated_at": now}}}},
    ]}))
}

async fn limits(ctx: Ctx) -> Response {
    let (n, cores, ram) = ctx.read(|c| {
        let own: Vec<&Server> = c
            .compute
            .servers
            .values()
            .filter(|s| s.project_id == ctx.project_id && s.vm_state != "deleted")
            .collect();
        (
            own.len(),
            own.iter().map(|s| s.flavor.vcpus).sum::<u64>(),
            own.iter().map(|s| s.flavor.ram).sum::<u64>(),
        )
    });
    http::ok(json!({"limits": {"rate": [], "absolute": {
        "maxServerMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240, "maxImageMeta": 128,
        "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
        "maxTotalCores": -1, "maxTotalInstances": -1, "maxTotalRAMSize": -1,
        "totalCoresUsed": cores, "totalInstancesUsed": n, "totalRAMUsed": ram, "totalServerGroupsUsed": 0,
    }}}))
}

fn quota_body(project: &str, detail: bool) -> Value {
    let keys = [
        "instances",
        "cores",
        "ram",
        "key_pairs",
        "metadata_items",
        "server_groups",
        "server_group_members",
        "injected_files",
        "injected_file_content_bytes",
        "injected_file_path_bytes",
    ];
    let mut m = Map::new();
    m.insert("id".into(), json!(project));
    for k in keys {
        m.insert(
            k.into(),
            if detail {
                json!({"limit": -1, "in_use": 0, "reserved": 0})
            } else {
                json!(-1)
            },
        );
    }
    json!({"quota_set": m})
}

async fn quota_set(_ctx: Ctx, Path(project): Path<String>) -> Response {
    http::ok(quota_body(&project, false))
}

async fn quota_set_detail(_ctx: Ctx, Path(project): Path<String>) -> Response {
    http::ok(quota_body(&project, true))
}

async fn extensions(_ctx: Ctx) -> Response {
    http::ok(json!({"extensions": []}))
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/compute/v2.1/os-availability-zone",
            get(availability_zones),
        )
        .route(
            "/compute/v2.1/os-availability-zone/detail",
            get(availability_zones_detail),
        )
        .route("/compute/v2.1/limits", get(limits))
        .route("/compute/v2.1/os-quota-sets/{project}", get(quota_set))
        .route(
            "/compute/v2.1/os-quota-sets/{project}/detail",
            get(quota_set_detail),
        )
        .route("/compute/v2.1/extensions", get(extensions))
}
