//! Snapshots: the record, rendering, list, show, create, update, delete, actions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::jobs;
use crate::sim::Sim;
use crate::state::Cloud;
use crate::util::{self, Ts};

use super::{list_body, own_volume, snap_not_found, sort_by_query, vol_not_found};

/// A Cinder snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// UUID.
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Volume.
    pub volume_id: String,
    /// creating, available, deleting, error.
    pub status: String,
    /// GiB.
    pub size: u64,
    /// Owner.
    pub project_id: String,
    /// Creator.
    pub user_id: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Created.
    pub created: Ts,
    /// Updated.
    pub updated: Ts,
}

fn render_snapshot(s: &Snapshot, mv: http::Mv) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id));
    m.insert("name".into(), json!(s.name));
    m.insert("description".into(), json!(s.description));
    m.insert("status".into(), json!(s.status));
    m.insert("size".into(), json!(s.size));
    m.insert("volume_id".into(), json!(s.volume_id));
    m.insert("created_at".into(), json!(util::iso_micro(&s.created)));
    m.insert("updated_at".into(), json!(util::iso_micro(&s.updated)));
    m.insert("metadata".into(), json!(s.metadata));
    m.insert(
        "os-extended-snapshot-attributes:progress".into(),
        json!(if s.status == "available" {
            "100%"
        } else {
            "0%"
        }),
    );
    m.insert(
        "os-extended-snapshot-attributes:project_id".into(),
        json!(s.project_id),
    );
    if mv.ge(3, 14) {
        m.insert("group_snapshot_id".into(), Value::Null);
    }
    if mv.ge(3, 41) {
        m.insert("user_id".into(), json!(s.user_id));
    }
    if mv.ge(3, 65) {
        m.insert("consumes_quota".into(), json!(true));
    }
    Value::Object(m)
}

fn listed_snapshots(ctx: &Ctx, q: &Q) -> Result<(Vec<Value>, Option<String>, usize), ApiError> {
    let all = q
        .get("all_tenants")
        .and_then(util::parse_bool_str)
        .unwrap_or(false)
        && ctx.is_admin();
    let mut snaps: Vec<Snapshot> = ctx.read(|c| {
        c.volume
            .snapshots
            .values()
            .filter(|s| all || s.project_id == ctx.project_id)
            .filter(|s| q.get("name").is_none_or(|n| s.name.as_deref() == Some(n)))
            .filter(|s| {
                q.get("status")
                    .is_none_or(|x| s.status.eq_ignore_ascii_case(x))
            })
            .filter(|s| q.get("volume_id").is_none_or(|x| s.volume_id == x))
            .cloned()
            .collect()
    });
    sort_by_query(&mut snaps, q, |s| {
        (
            s.seq,
            s.name.clone().unwrap_or_default(),
            s.size,
            s.status.clone(),
        )
    });
    let count = snaps.len();
    let page = http::paginate(snaps, |s| s.id.clone(), q, 1000)?;
    Ok((
        page.items
            .iter()
            .map(|s| render_snapshot(s, ctx.mv))
            .collect(),
        page.next_marker,
        count,
    ))
}

async fn list_snapshots(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let (items, next, count) = listed_snapshots(&ctx, &q)?;
    Ok(list_body(
        &ctx,
        &q,
        "snapshots",
        "snapshots",
        items,
        next,
        count,
    ))
}

async fn list_snapshots_detail(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let (items, next, count) = listed_snapshots(&ctx, &q)?;
    Ok(list_body(
        &ctx,
        &q,
        "snapshots",
        "snapshots/detail",
        items,
        next,
        count,
    ))
}

async fn show_snapshot(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let s = c
            .volume
            .snapshots
            .get(&id)
            .filter(|s| s.project_id == ctx.project_id || ctx.is_admin())
            .ok_or_else(|| snap_not_found(&id))?;
        Ok(http::ok(json!({"snapshot": render_snapshot(s, ctx.mv)})))
    })
}

/// Validates and records a snapshot (status `creating`); shared with Nova's createImage.
pub fn build_snapshot(
    c: &Cloud,
    seq: &mut u64,
    project_id: &str,
    user_id: &str,
    volume_id: &str,
    force: Option<bool>,
    mv: http::Mv,
) -> Result<Snapshot, ApiError> {
    let v = c
        .volume
        .volumes
        .get(volume_id)
        .ok_or_else(|| vol_not_found(volume_id))?;
    let in_use_ok = force.unwrap_or(false) || (mv.ge(3, 66) && force != Some(false));
    if !(v.status == "available" || (v.status == "in-use" && in_use_ok)) {
        return Err(ApiError::bad_request(format!("Invalid volume: Volume {volume_id} status must be available, but current status is: {}.", v.status)));
    }
    *seq += 1;
    let now = util::now();
    Ok(Snapshot {
        id: util::new_id(),
        seq: *seq,
        name: None,
        description: None,
        volume_id: volume_id.to_string(),
        status: "creating".into(),
        size: v.size,
        project_id: project_id.to_string(),
        user_id: user_id.to_string(),
        metadata: BTreeMap::new(),
        created: now,
        updated: now,
    })
}

async fn create_snapshot(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "snapshot")?;
    let volume_id = util::opt_str(spec, "volume_id")?
        .ok_or_else(|| ApiError::bad_request("'volume_id' must be specified"))?;
    let force = util::opt_bool(spec, "force")?;
    let name = util::opt_str(spec, "name")?.or(util::opt_str(spec, "display_name")?);
    let description =
        util::opt_str(spec, "description")?.or(util::opt_str(spec, "display_description")?);
    let metadata = util::opt_str_map(spec, "metadata")?.unwrap_or_default();
    let (id, v) = ctx.write(|c, seq| {
        own_volume(&ctx, c, &volume_id)?;
        let mut s = build_snapshot(
            c,
            seq,
            &ctx.project_id,
            &ctx.user_id,
            &volume_id,
            force,
            ctx.mv,
        )?;
        s.name = name;
        s.description = description;
        s.metadata = metadata;
        let v = render_snapshot(&s, ctx.mv);
        let id = s.id.clone();
        c.volume.snapshots.insert(id.clone(), s);
        Ok::<_, ApiError>((id, v))
    })?;
    jobs::spawn_snapshot(&ctx.sim, &ctx.cloud, &id);
    Ok(http::json(StatusCode::ACCEPTED, json!({"snapshot": v})))
}

async fn update_snapshot(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "snapshot")?;
    let name = util::opt_str(spec, "name")?;
    let description = util::opt_str(spec, "description")?;
    ctx.write(|c, _| {
        let s = c
            .volume
            .snapshots
            .get_mut(&id)
            .filter(|s| s.project_id == ctx.project_id || ctx.is_admin())
            .ok_or_else(|| snap_not_found(&id))?;
        if spec.get("name").is_some() {
            s.name = name;
        }
        if spec.get("description").is_some() {
            s.description = description;
        }
        s.updated = util::now();
        Ok(http::ok(json!({"snapshot": render_snapshot(s, ctx.mv)})))
    })
}

async fn delete_snapshot(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = c.volume.snapshots.get_mut(&id).filter(|s| s.project_id == ctx.project_id || ctx.is_admin()).ok_or_else(|| snap_not_found(&id))?;
        if s.status == "deleting" {
            return Ok(());
        }
        if s.status != "available" && s.status != "error" {
            return Err(ApiError::bad_request("Invalid snapshot: Volume Snapshot status must be available or error and must not be part of a group."));
        }
        s.status = "deleting".into();
        s.updated = util::now();
        Ok(())
    })?;
    jobs::spawn_snapshot(&ctx.sim, &ctx.cloud, &id);
    Ok(http::empty(StatusCode::ACCEPTED))
}

async fn snapshot_action(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let status = body
        .get("os-reset_status")
        .and_then(|a| a.get("status"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let status = status.ok_or_else(|| {
        ApiError::bad_request(
            "There is no such action (only os-reset_status is simulated for snapshots)",
        )
    })?;
    ctx.write(|c, _| {
        let s = c
            .volume
            .snapshots
            .get_mut(&id)
            .ok_or_else(|| snap_not_found(&id))?;
        s.status = status;
        s.updated = util::now();
        Ok(http::empty(StatusCode::ACCEPTED))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/volume/v3/snapshots",
            get(list_snapshots).post(create_snapshot),
        )
        .route("/volume/v3/snapshots/detail", get(list_snapshots_detail))
        .route(
            "/volume/v3/snapshots/{id}",
            get(show_snapshot)
                .put(update_snapshot)
                .delete(delete_snapshot),
        )
        .route("/volume/v3/snapshots/{id}/action", post(snapshot_action))
}
