//! Cinder v3, one file per resource family: `volumes.rs` (sparse files in
//! `DIR/clouds/<cloud>/volumes/<id>`), volume `actions.rs`, volume `metadata.rs`, `snapshots.rs`,
//! volume `types.rs`, user `messages.rs`, and `quotas.rs` (availability zones, limits, quota sets,
//! extensions, backups). This module holds the per-cloud data, the route table, the version
//! documents and the lookups and listing helpers the families share. Status transitions run in
//! `crate::jobs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, CloudCtx, Ctx, Q, VOLUME_MAX, VOLUME_MIN};
use crate::sim::Sim;
use crate::state::Cloud;
use crate::util;

mod actions;
mod messages;
mod metadata;
mod quotas;
mod snapshots;
mod types;
mod volumes;

pub use messages::Message;
pub use snapshots::{build_snapshot, Snapshot};
pub use types::VolumeType;
pub use volumes::{build_volume, VolAttachment, Volume, VolumeSource};

/// One cloud's Cinder data.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VolumeData {
    /// User messages, oldest first.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Volumes.
    pub volumes: BTreeMap<String, Volume>,
    /// Snapshots.
    pub snapshots: BTreeMap<String, Snapshot>,
    /// Types.
    pub types: BTreeMap<String, VolumeType>,
}

impl VolumeData {
    /// The `__DEFAULT__` volume type.
    pub fn bootstrap() -> VolumeData {
        let mut d = VolumeData::default();
        let t = VolumeType {
            id: util::new_id(),
            name: DEFAULT_TYPE.into(),
            description: Some("Default Volume Type".into()),
            is_public: true,
            extra_specs: BTreeMap::new(),
        };
        d.types.insert(t.id.clone(), t);
        d
    }

    /// Records a user message about a resource that failed.
    pub fn add_message(
        &mut self,
        resource_type: &str,
        resource_uuid: &str,
        action: &str,
        detail: &str,
    ) {
        let project_id = match resource_type {
            "SNAPSHOT" => self
                .snapshots
                .get(resource_uuid)
                .map(|s| s.project_id.clone()),
            _ => self
                .volumes
                .get(resource_uuid)
                .map(|v| v.project_id.clone()),
        }
        .unwrap_or_default();
        let event_id = if resource_type == "SNAPSHOT" {
            "SNAPSHOT_001_001"
        } else {
            "VOLUME_VOLUME_001_002"
        };
        self.messages.push(Message {
            id: util::new_id(),
            resource_uuid: resource_uuid.to_string(),
            resource_type: resource_type.to_string(),
            user_message: format!("{action}: {detail}"),
            event_id: event_id.to_string(),
            project_id,
            created: util::now(),
        });
    }

    /// A type by name or id.
    pub fn find_type(&self, name_or_id: &str) -> Option<&VolumeType> {
        self.types
            .get(name_or_id)
            .or_else(|| self.types.values().find(|t| t.name == name_or_id))
    }
}

/// The type every deployment has.
pub const DEFAULT_TYPE: &str = "__DEFAULT__";

/// Rounds bytes up to GiB.
pub fn gib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(crate::files::GIB)
}

/// Cinder routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/volume", get(versions))
        .route("/volume/v3", get(version))
        .merge(volumes::routes())
        .merge(actions::routes())
        .merge(metadata::routes())
        .merge(snapshots::routes())
        .merge(types::routes())
        .merge(messages::routes())
        .merge(quotas::routes())
}

fn version_doc(sim: &Sim, cloud: &str) -> Value {
    json!({
        "id": "v3.0", "status": "CURRENT", "version": VOLUME_MAX.to_string(), "min_version": VOLUME_MIN.to_string(),
        "updated": "2023-01-01T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/{}/volume/v3/", sim.base_url, cloud)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
    })
}

async fn versions(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    http::json(
        StatusCode::MULTIPLE_CHOICES,
        json!({"versions": [version_doc(&sim, &cc.cloud)]}),
    )
}

async fn version(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    http::ok(json!({"versions": [version_doc(&sim, &cc.cloud)]}))
}

fn vol_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume {id} could not be found."))
}

fn snap_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Snapshot {id} could not be found."))
}

fn own_volume<'a>(ctx: &Ctx, c: &'a Cloud, id: &str) -> Result<&'a Volume, ApiError> {
    c.volume
        .volumes
        .get(id)
        .filter(|v| v.project_id == ctx.project_id || ctx.is_admin())
        .ok_or_else(|| vol_not_found(id))
}

fn own_volume_mut<'a>(ctx: &Ctx, c: &'a mut Cloud, id: &str) -> Result<&'a mut Volume, ApiError> {
    c.volume
        .volumes
        .get_mut(id)
        .filter(|v| v.project_id == ctx.project_id || ctx.is_admin())
        .ok_or_else(|| vol_not_found(id))
}

/// Sorts by Cinder's `sort=key:dir` / `sort_key`+`sort_dir` (created_at desc by default).
fn sort_by_query<T>(items: &mut [T], q: &Q, key: impl Fn(&T) -> (u64, String, u64, String)) {
    let spec = q.get("sort").map(str::to_string).or_else(|| {
        q.get("sort_key")
            .map(|k| format!("{k}:{}", q.get("sort_dir").unwrap_or("desc")))
    });
    let (k, dir) = match &spec {
        Some(s) => {
            let first = s.split(',').next().unwrap_or("created_at");
            let (k, d) = first.split_once(':').unwrap_or((first, "desc"));
            (k.to_string(), d.to_string())
        }
        None => ("created_at".into(), "desc".into()),
    };
    let desc = dir.eq_ignore_ascii_case("desc");
    items.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        let ord = match k.as_str() {
            "name" => ka.1.cmp(&kb.1),
            "size" => ka.2.cmp(&kb.2),
            "status" => ka.3.cmp(&kb.3),
            _ => ka.0.cmp(&kb.0),
        }
        .then(ka.0.cmp(&kb.0));
        if desc {
            ord.reverse()
        } else {
            ord
        }
    });
}

fn list_body(
    ctx: &Ctx,
    q: &Q,
    key: &str,
    path: &str,
    items: Vec<Value>,
    next: Option<String>,
    count: usize,
) -> Response {
    let mut body = Map::new();
    body.insert(key.into(), Value::Array(items));
    if let Some(m) = next {
        body.insert(format!("{key}_links"), json!([{"rel": "next", "href": ctx.url(&format!("/volume/v3/{}/{path}?{}", ctx.project_id, http::next_query(q, &m)))}]));
    }
    if ctx.mv.ge(3, 45)
        && q.get("with_count")
            .and_then(util::parse_bool_str)
            .unwrap_or(false)
    {
        body.insert("count".into(), json!(count));
    }
    http::ok(Value::Object(body))
}
