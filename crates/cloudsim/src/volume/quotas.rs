//! Fixed answers clients ask for: availability zones, limits, quota sets, extensions, backups.

use std::sync::Arc;

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::http::{self, Ctx, Q};
use crate::sim::Sim;
use crate::util;

use super::volumes::Volume;

async fn availability_zones(_ctx: Ctx) -> Response {
    http::ok(
        json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": true}}]}),
    )
}

async fn limits(ctx: Ctx) -> Response {
    let (vols, gigs, snaps) = ctx.read(|c| {
        let own: Vec<&Volume> = c
            .volume
            .volumes
            .values()
            .filter(|v| v.project_id == ctx.project_id)
            .collect();
        (
            own.len(),
            own.iter().map(|v| v.size).sum::<u64>(),
            c.volume
                .snapshots
                .values()
                .filter(|s| s.project_id == ctx.project_id)
                .count(),
        )
    });
    http::ok(json!({"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": -1, "maxTotalSnapshots": -1, "maxTotalVolumeGigabytes": -1, "maxTotalBackups": -1,
        "maxTotalBackupGigabytes": -1, "totalVolumesUsed": vols, "totalGigabytesUsed": gigs,
        "totalSnapshotsUsed": snaps, "totalBackupsUsed": 0, "totalBackupGigabytesUsed": 0,
    }}}))
}

async fn quota_set(_ctx: Ctx, Path(project): Path<String>, q: Q) -> Response {
    let usage = q
        .get("usage")
        .and_then(util::parse_bool_str)
        .unwrap_or(false);
    let v = |n: i64| {
        if usage {
            json!({"limit": n, "in_use": 0, "reserved": 0, "allocated": 0})
        } else {
            json!(n)
        }
    };
    http::ok(json!({"quota_set": {
        "id": project, "volumes": v(-1), "snapshots": v(-1), "gigabytes": v(-1), "backups": v(-1),
        "backup_gigabytes": v(-1), "per_volume_gigabytes": v(-1), "groups": v(-1),
    }}))
}

async fn extensions(_ctx: Ctx) -> Response {
    http::ok(json!({"extensions": []}))
}

async fn empty_backups(_ctx: Ctx) -> Response {
    http::ok(json!({"backups": []}))
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/volume/v3/os-availability-zone", get(availability_zones))
        .route("/volume/v3/limits", get(limits))
        .route("/volume/v3/os-quota-sets/{project}", get(quota_set))
        .route("/volume/v3/extensions", get(extensions))
        .route("/volume/v3/backups", get(empty_backups))
        .route("/volume/v3/backups/detail", get(empty_backups))
}
