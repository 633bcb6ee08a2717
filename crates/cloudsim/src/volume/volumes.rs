//! Volumes: the record and where its bytes come from, rendering, list with Cinder's filters,
//! show, create (empty, from an image, a snapshot or a volume), update, delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::jobs;
use crate::sim::Sim;
use crate::state::Cloud;
use crate::util::{self, Ts};

use super::{
    gib_ceil, list_body, own_volume, own_volume_mut, snap_not_found, sort_by_query, vol_not_found,
    DEFAULT_TYPE,
};

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

/// Renders a volume (detail form) for microversion `mv`.
fn render_volume(
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
        let v = own_volume_mut(&ctx, c, &id)?;
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

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/volume/v3/volumes", get(list_volumes).post(create_volume))
        .route("/volume/v3/volumes/detail", get(list_volumes_detail))
        .route(
            "/volume/v3/volumes/{id}",
            get(show_volume).put(update_volume).delete(delete_volume),
        )
}
