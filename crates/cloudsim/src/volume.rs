//! Cinder v3: volumes (sparse files in `DIR/clouds/<cloud>/volumes/<id>`), snapshots, volume
//! types, volume actions, filters and pagination. Status transitions run in `crate::jobs`.

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
use crate::http::{self, CloudCtx, Ctx, JsonBody, Q, VOLUME_MAX, VOLUME_MIN};
use crate::jobs;
use crate::sim::Sim;
use crate::state::Cloud;
use crate::util::{self, Ts};

/// Where a new volume's bytes come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VolumeSource {
    /// Zeros.
    Blank,
    /// A Glance image's data.
    Image {
        /// Image id.
        id: String,
    },
    /// A snapshot's data.
    Snapshot {
        /// Snapshot id.
        id: String,
    },
    /// Another volume's data.
    Volume {
        /// Volume id.
        id: String,
    },
}

/// One attachment of a volume to a server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolAttachment {
    /// attachment_id.
    pub id: String,
    /// Server.
    pub server_id: String,
    /// `/dev/vdb`.
    pub device: String,
    /// Compute host.
    pub host_name: String,
    /// When.
    pub attached_at: Ts,
}

/// A Cinder volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    /// UUID.
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// creating, downloading, available, attaching, in-use, detaching, deleting, extending, error.
    pub status: String,
    /// GiB.
    pub size: u64,
    /// Owner.
    pub project_id: String,
    /// Creator.
    pub user_id: String,
    /// AZ.
    pub availability_zone: String,
    /// Type name.
    pub volume_type: String,
    /// Bootable flag.
    pub bootable: bool,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// volume_image_metadata.
    pub image_metadata: BTreeMap<String, String>,
    /// Source snapshot.
    pub snapshot_id: Option<String>,
    /// Source volume.
    pub source_volid: Option<String>,
    /// Attachments.
    pub attachments: Vec<VolAttachment>,
    /// Attachment being made (status attaching).
    pub pending_attach: Option<VolAttachment>,
    /// Server being detached from (status detaching).
    pub pending_detach: Option<String>,
    /// multiattach.
    pub multiattach: bool,
    /// Created.
    pub created: Ts,
    /// Updated.
    pub updated: Ts,
    /// Data source of a volume still being created.
    pub source: VolumeSource,
    /// Status to return to after extending.
    #[serde(default)]
    pub status_before: Option<String>,
    /// Target size while extending.
    #[serde(default)]
    pub extend_to: Option<u64>,
    /// Snapshots to delete with the volume (cascade).
    #[serde(default)]
    pub cascade: bool,
}

impl Volume {
    /// A new volume in status `creating`.
    pub fn new(
        seq: u64,
        project_id: &str,
        user_id: &str,
        size: u64,
        source: VolumeSource,
    ) -> Volume {
        let now = util::now();
        Volume {
            id: util::new_id(),
            seq,
            name: None,
            description: None,
            status: "creating".into(),
            size,
            project_id: project_id.into(),
            user_id: user_id.into(),
            availability_zone: "nova".into(),
            volume_type: DEFAULT_TYPE.into(),
            bootable: false,
            metadata: BTreeMap::new(),
            image_metadata: BTreeMap::new(),
            snapshot_id: None,
            source_volid: None,
            attachments: vec![],
            pending_attach: None,
            pending_detach: None,
            multiattach: false,
            created: now,
            updated: now,
            source,
            status_before: None,
            extend_to: None,
            cascade: false,
        }
    }

    /// Cinder's `attach_status`.
    pub fn attach_status(&self) -> &'static str {
        match self.status.as_str() {
            "attaching" => "attaching",
            "detaching" => "detaching",
            _ if !self.attachments.is_empty() => "attached",
            _ => "detached",
        }
    }
}

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

/// A volume type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeType {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Public.
    pub is_public: bool,
    /// Extra specs.
    pub extra_specs: BTreeMap<String, String>,
}

/// A user message (Cinder's messages API, 3.3+): why a volume or snapshot went to error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// UUID.
    pub id: String,
    /// The volume or snapshot.
    pub resource_uuid: String,
    /// VOLUME or SNAPSHOT.
    pub resource_type: String,
    /// Text for the user.
    pub user_message: String,
    /// Cinder event id.
    pub event_id: String,
    /// Owner.
    pub project_id: String,
    /// When.
    pub created: Ts,
}

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

/// The type every deployment has.
pub const DEFAULT_TYPE: &str = "__DEFAULT__";

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

fn vol_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume {id} could not be found."))
}

fn snap_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Snapshot {id} could not be found."))
}

/// Rounds bytes up to GiB.
pub fn gib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(crate::files::GIB)
}

/// Renders a volume (detail form) for microversion `mv`.
pub fn render_volume(
    ctx_url: &dyn Fn(&str) -> String,
    cloud: &Cloud,
    v: &Volume,
    mv: http::Mv,
) -> Value {
    let type_id = cloud.volume.find_type(&v.volume_type).map(|t| t.id.clone());
    let attachments: Vec<Value> = v
        .attachments
        .iter()
        .map(|a| {
            json!({
                "id": v.id, "attachment_id": a.id, "volume_id": v.id, "server_id": a.server_id,
                "host_name": a.host_name, "device": a.device, "attached_at": util::iso_micro(&a.attached_at),
            })
        })
        .collect();
    let mut m = Map::new();
    let link = ctx_url(&format!("/volume/v3/{}/volumes/{}", v.project_id, v.id));
    m.insert("id".into(), json!(v.id));
    m.insert("name".into(), json!(v.name));
    m.insert("description".into(), json!(v.description));
    m.insert("status".into(), json!(v.status));
    m.insert("size".into(), json!(v.size));
    m.insert("availability_zone".into(), json!(v.availability_zone));
    m.insert("created_at".into(), json!(util::iso_micro(&v.created)));
    m.insert("updated_at".into(), json!(util::iso_micro(&v.updated)));
    m.insert("attachments".into(), json!(attachments));
    m.insert(
        "links".into(),
        json!([{"rel": "self", "href": link}, {"rel": "bookmark", "href": link}]),
    );
    m.insert(
        "bootable".into(),
        json!(if v.bootable { "true" } else { "false" }),
    );
    m.insert("encrypted".into(), json!(false));
    m.insert("multiattach".into(), json!(v.multiattach));
    m.insert("metadata".into(), json!(v.metadata));
    m.insert("volume_type".into(), json!(v.volume_type));
    m.insert("snapshot_id".into(), json!(v.snapshot_id));
    m.insert("source_volid".into(), json!(v.source_volid));
    m.insert("user_id".into(), json!(v.user_id));
    m.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
    m.insert("os-vol-host-attr:host".into(), json!("cloudsim@lvm#lvm"));
    m.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
    m.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
    m.insert("replication_status".into(), Value::Null);
    m.insert("consistencygroup_id".into(), Value::Null);
    if !v.image_metadata.is_empty() {
        m.insert("volume_image_metadata".into(), json!(v.image_metadata));
    }
    if mv.ge(3, 13) {
        m.insert("group_id".into(), Value::Null);
    }
    if mv.ge(3, 21) {
        m.insert("provider_id".into(), Value::Null);
    }
    if mv.ge(3, 47) {
        m.insert("backup_id".into(), Value::Null);
    }
    if mv.ge(3, 48) {
        m.insert(
            "service_uuid".into(),
            json!("c4a12e3e-0000-4000-8000-00000000c1d5"),
        );
        m.insert("shared_targets".into(), json!(false));
    }
    if mv.ge(3, 61) {
        m.insert("cluster_name".into(), Value::Null);
    }
    if mv.ge(3, 63) {
        m.insert("volume_type_id".into(), json!(type_id));
    }
    if mv.ge(3, 64) {
        m.insert("encryption_key_id".into(), Value::Null);
    }
    if mv.ge(3, 65) {
        m.insert("consumes_quota".into(), json!(true));
    }
    Value::Object(m)
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

fn render_type(t: &VolumeType) -> Value {
    json!({
        "id": t.id, "name": t.name, "description": t.description, "is_public": t.is_public,
        "os-volume-type-access:is_public": t.is_public, "extra_specs": t.extra_specs, "qos_specs_id": null,
    })
}

/// Cinder routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/volume", get(versions))
        .route("/volume/v3", get(version))
        .route("/volume/v3/volumes", get(list_volumes).post(create_volume))
        .route("/volume/v3/volumes/detail", get(list_volumes_detail))
        .route(
            "/volume/v3/volumes/{id}",
            get(show_volume).put(update_volume).delete(delete_volume),
        )
        .route("/volume/v3/volumes/{id}/action", post(volume_action))
        .route(
            "/volume/v3/volumes/{id}/metadata",
            get(get_metadata).post(merge_metadata).put(replace_metadata),
        )
        .route(
            "/volume/v3/volumes/{id}/metadata/{key}",
            get(get_meta_item)
                .put(put_meta_item)
                .delete(delete_meta_item),
        )
        .route("/volume/v3/messages", get(list_messages))
        .route(
            "/volume/v3/messages/{id}",
            get(show_message).delete(delete_message),
        )
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
        .route("/volume/v3/types", get(list_types).post(create_type))
        .route("/volume/v3/types/default", get(default_type))
        .route("/volume/v3/types/{id}", get(show_type).delete(delete_type))
        .route("/volume/v3/types/{id}/extra_specs", get(type_extra_specs))
        .route("/volume/v3/os-availability-zone", get(availability_zones))
        .route("/volume/v3/limits", get(limits))
        .route("/volume/v3/os-quota-sets/{project}", get(quota_set))
        .route("/volume/v3/extensions", get(extensions))
        .route("/volume/v3/backups", get(empty_backups))
        .route("/volume/v3/backups/detail", get(empty_backups))
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

fn parse_metadata_filter(s: &str) -> Option<BTreeMap<String, String>> {
    // cinderclient sends Python's repr of a dict: {'k': 'v'}.
    serde_json::from_str::<BTreeMap<String, String>>(s)
        .ok()
        .or_else(|| serde_json::from_str::<BTreeMap<String, String>>(&s.replace('\'', "\"")).ok())
}

fn listed_volumes(ctx: &Ctx, q: &Q) -> Result<(Vec<Value>, Option<String>, usize), ApiError> {
    let all = q
        .get("all_tenants")
        .and_then(util::parse_bool_str)
        .unwrap_or(false)
        && ctx.is_admin();
    let meta = match q.get("metadata") {
        Some(s) => Some(
            parse_metadata_filter(s)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid metadata filter: {s}")))?,
        ),
        None => None,
    };
    let name_like = q.get("name~");
    let mut vols: Vec<Volume> = ctx.read(|c| {
        c.volume
            .volumes
            .values()
            .filter(|v| all || v.project_id == ctx.project_id)
            .filter(|v| q.get("name").is_none_or(|n| v.name.as_deref() == Some(n)))
            .filter(|v| name_like.is_none_or(|n| v.name.as_deref().is_some_and(|x| x.contains(n))))
            .filter(|v| {
                q.get("status")
                    .is_none_or(|s| v.status.eq_ignore_ascii_case(s))
            })
            .filter(|v| {
                q.get("bootable")
                    .and_then(util::parse_bool_str)
                    .is_none_or(|b| v.bootable == b)
            })
            .filter(|v| {
                q.get("availability_zone")
                    .is_none_or(|a| v.availability_zone == a)
            })
            .filter(|v| q.get("volume_type").is_none_or(|t| v.volume_type == t))
            .filter(|v| {
                meta.as_ref()
                    .is_none_or(|m| m.iter().all(|(k, val)| v.metadata.get(k) == Some(val)))
            })
            .cloned()
            .collect()
    });
    sort_by_query(&mut vols, q, |v| {
        (
            v.seq,
            v.name.clone().unwrap_or_default(),
            v.size,
            v.status.clone(),
        )
    });
    let count = vols.len();
    let page = http::paginate(vols, |v| v.id.clone(), q, 1000)?;
    let items = ctx.read(|c| {
        page.items
            .iter()
            .map(|v| render_volume(&|p| ctx.url(p), c, v, ctx.mv))
            .collect()
    });
    Ok((items, page.next_marker, count))
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

async fn list_volumes(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let (items, next, count) = listed_volumes(&ctx, &q)?;
    let items = items
        .into_iter()
        .map(|v| json!({"id": v["id"], "name": v["name"], "links": v["links"]}))
        .collect();
    Ok(list_body(
        &ctx, &q, "volumes", "volumes", items, next, count,
    ))
}

async fn list_volumes_detail(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let (items, next, count) = listed_volumes(&ctx, &q)?;
    Ok(list_body(
        &ctx,
        &q,
        "volumes",
        "volumes/detail",
        items,
        next,
        count,
    ))
}

fn own_volume<'a>(ctx: &Ctx, c: &'a Cloud, id: &str) -> Result<&'a Volume, ApiError> {
    c.volume
        .volumes
        .get(id)
        .filter(|v| v.project_id == ctx.project_id || ctx.is_admin())
        .ok_or_else(|| vol_not_found(id))
}

async fn show_volume(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let v = own_volume(&ctx, c, &id)?;
        Ok(http::ok(
            json!({"volume": render_volume(&|p| ctx.url(p), c, v, ctx.mv)}),
        ))
    })
}

async fn create_volume(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "volume")?;
    let size = util::opt_u64(spec, "size")?;
    let name = util::opt_str(spec, "name")?;
    let description = util::opt_str(spec, "description")?;
    let vtype = util::opt_str(spec, "volume_type")?;
    let az = util::opt_str(spec, "availability_zone")?;
    let snapshot_id = util::opt_str(spec, "snapshot_id")?;
    let source_volid = util::opt_str(spec, "source_volid")?;
    let image_ref = util::opt_str(spec, "imageRef")?.or(util::opt_str(spec, "image_id")?);
    let metadata = util::opt_str_map(spec, "metadata")?.unwrap_or_default();
    let multiattach = util::opt_bool(spec, "multiattach")?.unwrap_or(false);
    // Not in Cinder's schema, but some clients send it; honour it instead of dropping it.
    let bootable = util::opt_bool(spec, "bootable")?;
    if util::opt_str(spec, "backup_id")?.is_some() {
        return Err(ApiError::bad_request(
            "Invalid input received: restoring from backups is not simulated.",
        ));
    }
    let id = ctx.write(|c, seq| {
        let mut vol = build_volume(
            c,
            seq,
            &ctx.project_id,
            &ctx.user_id,
            size,
            snapshot_id,
            source_volid,
            image_ref,
            vtype,
            az,
        )?;
        vol.name = name;
        vol.description = description;
        vol.metadata = metadata;
        vol.multiattach = multiattach;
        if let Some(b) = bootable {
            vol.bootable = b;
        }
        let id = vol.id.clone();
        c.volume.volumes.insert(id.clone(), vol);
        Ok::<_, ApiError>(id)
    })?;
    jobs::spawn_volume(&ctx.sim, &ctx.cloud, &id);
    ctx.read(|c| {
        let v = own_volume(&ctx, c, &id)?;
        Ok(http::json(
            StatusCode::ACCEPTED,
            json!({"volume": render_volume(&|p| ctx.url(p), c, v, ctx.mv)}),
        ))
    })
}

/// Validates a volume request against its source and returns the new record (status
/// `creating`); shared with Nova's block device mappings.
#[allow(clippy::too_many_arguments)]
pub fn build_volume(
    c: &Cloud,
    seq: &mut u64,
    project_id: &str,
    user_id: &str,
    size: Option<u64>,
    snapshot_id: Option<String>,
    source_volid: Option<String>,
    image_ref: Option<String>,
    vtype: Option<String>,
    az: Option<String>,
) -> Result<Volume, ApiError> {
    if let Some(a) = &az {
        if a != "nova" {
            return Err(ApiError::bad_request(format!(
                "Invalid input received: Availability zone '{a}' is invalid."
            )));
        }
    }
    let vtype = match vtype {
        None => DEFAULT_TYPE.to_string(),
        Some(t) => c
            .volume
            .find_type(&t)
            .map(|x| x.name.clone())
            .ok_or_else(|| {
                ApiError::not_found(format!("Volume type with name {t} could not be found."))
            })?,
    };
    let (source, min_size, bootable, image_meta, snap, srcvol) = if let Some(sid) = snapshot_id {
        let s = c
            .volume
            .snapshots
            .get(&sid)
            .ok_or_else(|| snap_not_found(&sid))?;
        if s.status != "available" {
            return Err(ApiError::bad_request(format!("Invalid snapshot: Originating snapshot status must be one of 'available' values (current status: {}).", s.status)));
        }
        let parent = c.volume.volumes.get(&s.volume_id);
        (
            VolumeSource::Snapshot { id: sid.clone() },
            s.size,
            parent.is_some_and(|p| p.bootable),
            parent.map(|p| p.image_metadata.clone()).unwrap_or_default(),
            Some(sid),
            None,
        )
    } else if let Some(vid) = source_volid {
        let v = c
            .volume
            .volumes
            .get(&vid)
            .ok_or_else(|| vol_not_found(&vid))?;
        if v.status != "available" && v.status != "in-use" {
            return Err(ApiError::bad_request(format!("Invalid volume: Volume {vid} status must be available or in-use, but current status is: {}.", v.status)));
        }
        (
            VolumeSource::Volume { id: vid.clone() },
            v.size,
            v.bootable,
            v.image_metadata.clone(),
            None,
            Some(vid),
        )
    } else if let Some(iref) = image_ref {
        let iid = util::ref_id(&iref).to_string();
        let img = c
            .image
            .images
            .get(&iid)
            .filter(|i| i.visible_to(project_id, true))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid image identifier or unable to access requested image. (image {iid})"
                ))
            })?;
        if img.status != "active" {
            return Err(ApiError::bad_request(format!(
                "Invalid input received: Image {iid} is not active."
            )));
        }
        let need = gib_ceil(img.size.unwrap_or(0)).max(img.min_disk);
        if let Some(sz) = size {
            if sz < gib_ceil(img.size.unwrap_or(0)) {
                return Err(ApiError::bad_request(format!("Invalid input received: Size of specified image {} is larger than volume size {sz}.", gib_ceil(img.size.unwrap_or(0)))));
            }
            if sz < img.min_disk {
                return Err(ApiError::bad_request(format!("Invalid input received: Volume size {sz}GB cannot be smaller than the image minDisk size {}GB.", img.min_disk)));
            }
        }
        (
            VolumeSource::Image { id: iid },
            need,
            true,
            img.volume_image_metadata(),
            None,
            None,
        )
    } else {
        (VolumeSource::Blank, 0, false, BTreeMap::new(), None, None)
    };
    let size = match size {
        Some(0) => {
            return Err(ApiError::bad_request(
                "Invalid input received: Volume size '0' must be an integer and greater than 0.",
            ))
        }
        Some(s) => {
            if matches!(
                source,
                VolumeSource::Snapshot { .. } | VolumeSource::Volume { .. }
            ) && s < min_size
            {
                return Err(ApiError::bad_request(format!("Invalid input received: Volume size '{s}'GB cannot be smaller than the source size {min_size}GB. They must be >= original size.")));
            }
            s
        }
        None if min_size > 0 && !matches!(source, VolumeSource::Image { .. }) => min_size,
        None => return Err(ApiError::bad_request(
            "Invalid input received: Volume size must be specified (an integer greater than 0).",
        )),
    };
    *seq += 1;
    let mut vol = Volume::new(*seq, project_id, user_id, size, source);
    vol.volume_type = vtype;
    vol.bootable = bootable;
    vol.image_metadata = image_meta;
    vol.snapshot_id = snap;
    vol.source_volid = srcvol;
    Ok(vol)
}

async fn update_volume(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "volume")?;
    let name = util::opt_str(spec, "name")?.or(util::opt_str(spec, "display_name")?);
    let description =
        util::opt_str(spec, "description")?.or(util::opt_str(spec, "display_description")?);
    let metadata = util::opt_str_map(spec, "metadata")?;
    ctx.write(|c, _| {
        own_volume(&ctx, c, &id)?;
        let v = c
            .volume
            .volumes
            .get_mut(&id)
            .ok_or_else(|| vol_not_found(&id))?;
        if spec.get("name").is_some() || spec.get("display_name").is_some() {
            v.name = name;
        }
        if spec.get("description").is_some() || spec.get("display_description").is_some() {
            v.description = description;
        }
        if let Some(m) = metadata {
            v.metadata = m;
        }
        v.updated = util::now();
        let v = v.clone();
        Ok(http::ok(
            json!({"volume": render_volume(&|p| ctx.url(p), c, &v, ctx.mv)}),
        ))
    })
}

const DELETABLE: &[&str] = &[
    "available",
    "error",
    "error_restoring",
    "error_extending",
    "error_managing",
];

async fn delete_volume(ctx: Ctx, Path(id): Path<String>, q: Q) -> Result<Response, ApiError> {
    let cascade = q
        .get("cascade")
        .and_then(util::parse_bool_str)
        .unwrap_or(false);
    let force = q
        .get("force")
        .and_then(util::parse_bool_str)
        .unwrap_or(false);
    let snaps = ctx.write(|c, _| {
        let v = own_volume(&ctx, c, &id)?;
        if v.status == "deleting" {
            return Ok(vec![]);
        }
        let attached = !v.attachments.is_empty() || v.pending_attach.is_some();
        if (!DELETABLE.contains(&v.status.as_str()) && !force) || attached {
            return Err(ApiError::bad_request("Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."));
        }
        let snaps: Vec<String> = c.volume.snapshots.values().filter(|s| s.volume_id == id).map(|s| s.id.clone()).collect();
        if !snaps.is_empty() && !cascade {
            return Err(ApiError::bad_request(format!("Invalid volume: Volume {id} still has {} dependent snapshots.", snaps.len())));
        }
        for s in &snaps {
            if let Some(s) = c.volume.snapshots.get_mut(s) {
                s.status = "deleting".into();
                s.updated = util::now();
            }
        }
        let v = c.volume.volumes.get_mut(&id).ok_or_else(|| vol_not_found(&id))?;
        v.status = "deleting".into();
        v.cascade = cascade;
        v.updated = util::now();
        Ok(snaps)
    })?;
    for s in snaps {
        jobs::spawn_snapshot(&ctx.sim, &ctx.cloud, &s);
    }
    jobs::spawn_volume(&ctx.sim, &ctx.cloud, &id);
    Ok(http::empty(StatusCode::ACCEPTED))
}

async fn volume_action(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    let (action, args) = obj
        .iter()
        .next()
        .ok_or_else(|| ApiError::bad_request("Malformed request body: no action"))?;
    let args = args.clone();
    let action = action.clone();
    let mut spawn = false;
    let resp = ctx.write(|c, _| {
        own_volume(&ctx, c, &id)?;
        let v = c.volume.volumes.get_mut(&id).ok_or_else(|| vol_not_found(&id))?;
        let r = match action.as_str() {
            "os-set_bootable" => {
                v.bootable = util::opt_bool(&args, "bootable")?.ok_or_else(|| ApiError::bad_request("Must specify bootable in request."))?;
                http::empty(StatusCode::OK)
            }
            "os-set_image_metadata" => {
                let m = util::opt_str_map(&args, "metadata")?.ok_or_else(|| ApiError::bad_request("Malformed request body: metadata missing"))?;
                v.image_metadata.extend(m);
                http::ok(json!({"metadata": v.image_metadata}))
            }
            "os-unset_image_metadata" => {
                let key = util::opt_str(&args, "key")?.ok_or_else(|| ApiError::bad_request("Malformed request body: key missing"))?;
                if v.image_metadata.remove(&key).is_none() {
                    return Err(ApiError::not_found(format!("Glance metadata for volume {id} with key {key} could not be found.")));
                }
                http::empty(StatusCode::OK)
            }
            "os-show_image_metadata" => http::ok(json!({"metadata": v.image_metadata})),
            "os-reset_status" => {
                if let Some(s) = util::opt_str(&args, "status")? {
                    v.status = s;
                }
                if util::opt_str(&args, "attach_status")?.as_deref() == Some("detached") {
                    v.attachments.clear();
                    v.pending_attach = None;
                }
                http::empty(StatusCode::ACCEPTED)
            }
            "os-extend" => {
                let new = util::opt_u64(&args, "new_size")?.ok_or_else(|| ApiError::bad_request("Must specify 'new_size'"))?;
                let ok_status = v.status == "available" || (v.status == "in-use" && ctx.mv.ge(3, 42));
                if !ok_status {
                    return Err(ApiError::bad_request(format!("Invalid volume: Volume status must be 'available' to extend, but current status is: {}.", v.status)));
                }
                if new <= v.size {
                    return Err(ApiError::bad_request(format!("Invalid input received: New size for extend must be greater than current size. (current: {}, extended: {new}).", v.size)));
                }
                v.status_before = Some(v.status.clone());
                v.status = "extending".into();
                v.extend_to = Some(new);
                spawn = true;
                http::empty(StatusCode::ACCEPTED)
            }
            "os-retype" => {
                let t = util::opt_str(&args, "new_type")?.ok_or_else(|| ApiError::bad_request("New volume type must be specified."))?;
                let name = c.volume.find_type(&t).map(|x| x.name.clone()).ok_or_else(|| ApiError::not_found(format!("Volume type {t} could not be found.")))?;
                let v = c.volume.volumes.get_mut(&id).ok_or_else(|| vol_not_found(&id))?;
                v.volume_type = name;
                http::empty(StatusCode::ACCEPTED)
            }
            "os-update_readonly_flag" => http::empty(StatusCode::ACCEPTED),
            "os-force_detach" => {
                v.attachments.clear();
                v.pending_attach = None;
                v.status = "available".into();
                http::empty(StatusCode::ACCEPTED)
            }
            other => return Err(ApiError::bad_request(format!("There is no such action: {other}"))),
        };
        if let Some(v) = c.volume.volumes.get_mut(&id) {
            v.updated = util::now();
        }
        Ok(r)
    })?;
    if spawn {
        jobs::spawn_volume(&ctx.sim, &ctx.cloud, &id);
    }
    Ok(resp)
}

async fn get_metadata(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        Ok(http::ok(
            json!({"metadata": own_volume(&ctx, c, &id)?.metadata}),
        ))
    })
}

async fn merge_metadata(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::opt_str_map(&body, "metadata")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: metadata missing"))?;
    ctx.write(|c, _| {
        own_volume(&ctx, c, &id)?;
        let v = c
            .volume
            .volumes
            .get_mut(&id)
            .ok_or_else(|| vol_not_found(&id))?;
        v.metadata.extend(m);
        Ok(http::ok(json!({"metadata": v.metadata})))
    })
}

async fn replace_metadata(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::opt_str_map(&body, "metadata")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: metadata missing"))?;
    ctx.write(|c, _| {
        own_volume(&ctx, c, &id)?;
        let v = c
            .volume
            .volumes
            .get_mut(&id)
            .ok_or_else(|| vol_not_found(&id))?;
        v.metadata = m;
        Ok(http::ok(json!({"metadata": v.metadata})))
    })
}

// --- snapshots

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

// --- types, AZs, limits

async fn list_types(ctx: Ctx) -> Response {
    let items = ctx.read(|c| c.volume.types.values().map(render_type).collect::<Vec<_>>());
    http::ok(json!({"volume_types": items}))
}

async fn show_type(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let t = c
            .volume
            .find_type(&id)
            .ok_or_else(|| ApiError::not_found(format!("Volume type {id} could not be found.")))?;
        Ok(http::ok(json!({"volume_type": render_type(t)})))
    })
}

async fn default_type(ctx: Ctx) -> Result<Response, ApiError> {
    show_type(ctx, Path(DEFAULT_TYPE.to_string())).await
}

async fn type_extra_specs(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let t = c
            .volume
            .find_type(&id)
            .ok_or_else(|| ApiError::not_found(format!("Volume type {id} could not be found.")))?;
        Ok(http::ok(json!({"extra_specs": t.extra_specs})))
    })
}

async fn create_type(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    if !ctx.is_admin() {
        return Err(ApiError::forbidden(
            "Policy doesn't allow volume_extension:types_manage to be performed.",
        ));
    }
    let spec = util::body_object(&body, "volume_type")?;
    let name = util::opt_str(spec, "name")?
        .ok_or_else(|| ApiError::bad_request("Volume type name can not be empty."))?;
    let description = util::opt_str(spec, "description")?;
    let is_public = util::opt_bool(spec, "os-volume-type-access:is_public")?
        .or(util::opt_bool(spec, "is_public")?)
        .unwrap_or(true);
    let extra_specs = util::opt_str_map(spec, "extra_specs")?.unwrap_or_default();
    ctx.write(|c, _| {
        if c.volume.types.values().any(|t| t.name == name) {
            return Err(ApiError::conflict(format!(
                "Volume Type {name} already exists."
            )));
        }
        let t = VolumeType {
            id: util::new_id(),
            name,
            description,
            is_public,
            extra_specs,
        };
        let v = render_type(&t);
        c.volume.types.insert(t.id.clone(), t);
        Ok(http::ok(json!({"volume_type": v})))
    })
}

async fn delete_type(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let t = c.volume.find_type(&id).cloned().ok_or_else(|| ApiError::not_found(format!("Volume type {id} could not be found.")))?;
        if t.name == DEFAULT_TYPE {
            return Err(ApiError::bad_request("Default volume type can not be deleted."));
        }
        if c.volume.volumes.values().any(|v| v.volume_type == t.name) {
            return Err(ApiError::bad_request(format!("Target volume type is still in use. Volume Type {} deletion is not allowed with volumes present with the type.", t.id)));
        }
        c.volume.types.remove(&t.id);
        Ok(http::empty(StatusCode::ACCEPTED))
    })
}

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

async fn get_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let v = own_volume(&ctx, c, &id)?;
        let val = v.metadata.get(&key).ok_or_else(|| {
            ApiError::not_found(format!("Volume {id} has no metadata with key {key}."))
        })?;
        Ok(http::ok(json!({"meta": {key.clone(): val}})))
    })
}

async fn put_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::opt_str_map(&body, "meta")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: meta missing"))?;
    let val = m
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("Request body and URI mismatch"))?;
    if m.len() != 1 {
        return Err(ApiError::bad_request(
            "Request body contains too many items",
        ));
    }
    ctx.write(|c, _| {
        own_volume(&ctx, c, &id)?;
        let v = c
            .volume
            .volumes
            .get_mut(&id)
            .ok_or_else(|| vol_not_found(&id))?;
        v.metadata.insert(key.clone(), val.clone());
        v.updated = util::now();
        Ok(http::ok(json!({"meta": {key.clone(): val}})))
    })
}

async fn delete_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        own_volume(&ctx, c, &id)?;
        let v = c
            .volume
            .volumes
            .get_mut(&id)
            .ok_or_else(|| vol_not_found(&id))?;
        v.metadata.remove(&key).ok_or_else(|| {
            ApiError::not_found(format!("Volume {id} has no metadata with key {key}."))
        })?;
        v.updated = util::now();
        Ok(http::empty(StatusCode::OK))
    })
}

fn need_messages(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.mv.ge(3, 3) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

fn render_message(ctx: &Ctx, m: &Message) -> Value {
    json!({
        "id": m.id, "resource_uuid": m.resource_uuid, "resource_type": m.resource_type,
        "user_message": m.user_message, "event_id": m.event_id, "message_level": "ERROR",
        "request_id": ctx.request_id, "created_at": util::iso_micro(&m.created),
        "guaranteed_until": util::iso_micro(&(m.created + chrono::Duration::days(30))),
        "links": [{"rel": "self", "href": ctx.url(&format!("/volume/v3/{}/messages/{}", m.project_id, m.id))}],
    })
}

async fn list_messages(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    need_messages(&ctx)?;
    let items: Vec<Value> = ctx.read(|c| {
        c.volume
            .messages
            .iter()
            .rev()
            .filter(|m| m.project_id == ctx.project_id || ctx.is_admin())
            .filter(|m| q.get("resource_uuid").is_none_or(|r| m.resource_uuid == r))
            .filter(|m| {
                q.get("resource_type")
                    .is_none_or(|r| m.resource_type.eq_ignore_ascii_case(r))
            })
            .filter(|m| q.get("event_id").is_none_or(|e| m.event_id == e))
            .map(|m| render_message(&ctx, m))
            .collect()
    });
    Ok(http::ok(json!({"messages": items})))
}

async fn show_message(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    need_messages(&ctx)?;
    ctx.read(|c| {
        let m = c
            .volume
            .messages
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ApiError::not_found(format!("Message {id} could not be found.")))?;
        Ok(http::ok(json!({"message": render_message(&ctx, m)})))
    })
}

async fn delete_message(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    need_messages(&ctx)?;
    ctx.write(|c, _| {
        let before = c.volume.messages.len();
        c.volume.messages.retain(|m| m.id != id);
        if c.volume.messages.len() == before {
            return Err(ApiError::not_found(format!(
                "Message {id} could not be found."
            )));
        }
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}
