//! Images: the record (core attributes and free-form properties), list with Glance's filters,
//! show, create, JSON-patch update, delete, tags, members, deactivate and reactivate.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::sim::Sim;
use crate::util::{self, Ts};

use super::{not_found, visible_image, visible_image_mut};

/// A Glance image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// UUID.
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// Name.
    pub name: Option<String>,
    /// queued, saving, active, killed, deleted, deactivated.
    pub status: String,
    /// public, private, shared, community.
    pub visibility: String,
    /// Protected from deletion.
    pub protected: bool,
    /// Hidden from default listings.
    pub os_hidden: bool,
    /// MD5 of the data.
    pub checksum: Option<String>,
    /// sha512 of the data.
    pub os_hash_value: Option<String>,
    /// Data size.
    pub size: Option<u64>,
    /// Minimum disk (GiB).
    pub min_disk: u64,
    /// Minimum RAM (MiB).
    pub min_ram: u64,
    /// raw, qcow2, ...
    pub disk_format: Option<String>,
    /// bare, ...
    pub container_format: Option<String>,
    /// Owning project.
    pub owner: String,
    /// Created.
    pub created: Ts,
    /// Updated.
    pub updated: Ts,
    /// Tags.
    pub tags: Vec<String>,
    /// Additional properties (always strings in Glance v2).
    pub properties: BTreeMap<String, String>,
    /// createImage work in progress.
    #[serde(default)]
    pub pending: Option<ImagePending>,
}

impl Image {
    /// A new queued image.
    pub fn new(seq: u64, owner: &str, name: Option<String>) -> Image {
        let now = util::now();
        Image {
            id: util::new_id(),
            seq,
            name,
            status: "queued".into(),
            visibility: "shared".into(),
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_value: None,
            size: None,
            min_disk: 0,
            min_ram: 0,
            disk_format: None,
            container_format: None,
            owner: owner.to_string(),
            created: now,
            updated: now,
            tags: vec![],
            properties: BTreeMap::new(),
            pending: None,
        }
    }

    /// The JSON Glance returns.
    pub fn render(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("status".into(), json!(self.status));
        m.insert("visibility".into(), json!(self.visibility));
        m.insert("protected".into(), json!(self.protected));
        m.insert("os_hidden".into(), json!(self.os_hidden));
        m.insert("checksum".into(), json!(self.checksum));
        m.insert(
            "os_hash_algo".into(),
            json!(self.os_hash_value.as_ref().map(|_| "sha512")),
        );
        m.insert("os_hash_value".into(), json!(self.os_hash_value));
        m.insert("size".into(), json!(self.size));
        m.insert("virtual_size".into(), json!(self.size));
        m.insert("min_disk".into(), json!(self.min_disk));
        m.insert("min_ram".into(), json!(self.min_ram));
        m.insert("disk_format".into(), json!(self.disk_format));
        m.insert("container_format".into(), json!(self.container_format));
        m.insert("owner".into(), json!(self.owner));
        m.insert("created_at".into(), json!(util::iso(&self.created)));
        m.insert("updated_at".into(), json!(util::iso(&self.updated)));
        m.insert("tags".into(), json!(self.tags));
        m.insert("self".into(), json!(format!("/v2/images/{}", self.id)));
        m.insert("file".into(), json!(format!("/v2/images/{}/file", self.id)));
        m.insert("schema".into(), json!("/v2/schemas/image"));
        for (k, v) in &self.properties {
            m.insert(k.clone(), json!(v));
        }
        Value::Object(m)
    }

    /// Whether a project may see it.
    pub fn visible_to(&self, project: &str, admin: bool) -> bool {
        admin
            || self.owner == project
            || self.visibility == "public"
            || self.visibility == "community"
    }

    /// Cinder's `volume_image_metadata` for a volume made from this image.
    pub fn volume_image_metadata(&self) -> BTreeMap<String, String> {
        let mut m = self.properties.clone();
        m.insert("image_id".into(), self.id.clone());
        m.insert("image_name".into(), self.name.clone().unwrap_or_default());
        m.insert("checksum".into(), self.checksum.clone().unwrap_or_default());
        m.insert(
            "container_format".into(),
            self.container_format.clone().unwrap_or_default(),
        );
        m.insert(
            "disk_format".into(),
            self.disk_format.clone().unwrap_or_default(),
        );
        m.insert("min_disk".into(), self.min_disk.to_string());
        m.insert("min_ram".into(), self.min_ram.to_string());
        m.insert("size".into(), self.size.unwrap_or(0).to_string());
        m
    }

    /// Whether booting it makes a simulated conversion host.
    pub fn is_conversion_host(&self) -> bool {
        self.properties
            .get("osm_sim_conversion_host")
            .is_some_and(|v| util::parse_bool_str(v) == Some(true))
    }
}

/// Work still to do for an image created by Nova's createImage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImagePending {
    /// Copy the root disk of an image-booted server into the image.
    ServerDisk {
        /// Server.
        server_id: String,
    },
    /// Wait for the Cinder snapshots of a volume-booted server.
    VolumeSnapshots {
        /// Server.
        server_id: String,
        /// Snapshots that make up the image.
        snapshot_ids: Vec<String>,
    },
}

const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "min_disk",
    "min_ram",
    "disk_format",
    "container_format",
    "owner",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
    "locations",
    "direct_url",
    "stores",
];
const READ_ONLY: &[&str] = &[
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "stores",
    "locations",
];
const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

fn prop_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // Python clients send booleans as True/False strings; keep that spelling.
        Value::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Applies one attribute to an image (create and PATCH share this).
fn set_attr(img: &mut Image, key: &str, value: &Value, admin: bool) -> Result<(), ApiError> {
    if READ_ONLY.contains(&key) {
        return Err(ApiError::forbidden(format!(
            "Attribute '{key}' is read-only."
        )));
    }
    let bad = |what: &str| ApiError::bad_request(format!("Invalid value for {key}: {what}"));
    match key {
        "id" => return Err(ApiError::forbidden("Attribute 'id' is read-only.")),
        "name" => img.name = value.as_str().map(str::to_string),
        "visibility" => {
            let v = value.as_str().ok_or_else(|| bad("not a string"))?;
            if !["public", "private", "shared", "community"].contains(&v) {
                return Err(ApiError::bad_request(format!(
                    "Invalid visibility value: {v}"
                )));
            }
            if v == "public" && !admin {
                return Err(ApiError::forbidden(
                    "You are not authorized to complete publicize_image action.",
                ));
            }
            img.visibility = v.to_string();
        }
        "protected" => {
            img.protected = util::parse_bool(value).ok_or_else(|| bad("not a boolean"))?
        }
        "os_hidden" => {
            img.os_hidden = util::parse_bool(value).ok_or_else(|| bad("not a boolean"))?
        }
        "min_disk" | "min_ram" => {
            let n = match value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| bad("not a non-negative integer"))?;
            if key == "min_disk" {
                img.min_disk = n
            } else {
                img.min_ram = n
            }
        }
        "disk_format" | "container_format" => {
            let v = value.as_str().map(str::to_string);
            let allowed = if key == "disk_format" {
                DISK_FORMATS
            } else {
                CONTAINER_FORMATS
            };
            if let Some(f) = &v {
                if !allowed.contains(&f.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "Invalid value '{f}' for {key}"
                    )));
                }
            }
            if img.status != "queued" {
                return Err(ApiError::forbidden(format!(
                    "Attribute {key} can be only replaced for a queued image."
                )));
            }
            if key == "disk_format" {
                img.disk_format = v
            } else {
                img.container_format = v
            }
        }
        "owner" => img.owner = value.as_str().unwrap_or_default().to_string(),
        "tags" => {
            let tags = value.as_array().ok_or_else(|| bad("not a list"))?;
            img.tags.clear();
            for t in tags {
                let t = t
                    .as_str()
                    .ok_or_else(|| bad("tags must be strings"))?
                    .to_string();
                if !img.tags.contains(&t) {
                    img.tags.push(t);
                }
            }
        }
        _ => match prop_string(value) {
            Some(s) => {
                img.properties.insert(key.to_string(), s);
            }
            None => {
                img.properties.remove(key);
            }
        },
    }
    Ok(())
}

async fn create_image(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let obj = body.as_object().cloned().unwrap_or_default();
    let want_id = obj.get("id").and_then(Value::as_str).map(str::to_string);
    ctx.write(|c, seq| {
        *seq += 1;
        let mut img = Image::new(*seq, &ctx.project_id, None);
        if let Some(id) = want_id {
            if uuid::Uuid::parse_str(&id).is_err() {
                return Err(ApiError::bad_request(format!("Invalid image id: {id}")));
            }
            if c.image.images.contains_key(&id) {
                return Err(ApiError::conflict(format!(
                    "An image with identifier {id} already exists"
                )));
            }
            img.id = id;
        }
        for (k, v) in &obj {
            if k == "id" {
                continue;
            }
            set_attr(&mut img, k, v, ctx.is_admin())?;
        }
        let v = img.render();
        let mut resp = http::json(StatusCode::CREATED, v);
        if let Ok(loc) = HeaderValue::from_str(&ctx.url(&format!("/image/v2/images/{}", img.id))) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        c.image.images.insert(img.id.clone(), img);
        Ok(resp)
    })
}

async fn show_image(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let img = visible_image(&ctx, c, &id)?;
        Ok(http::ok(img.render()))
    })
}

fn filter_matches(img: &Image, rendered: &Value, key: &str, want: &str) -> bool {
    // `in:a,b` operator for id and name.
    let wants: Vec<&str> = match want.strip_prefix("in:") {
        Some(list) => list.split(',').collect(),
        None => vec![want],
    };
    match key {
        "tag" => img.tags.iter().any(|t| t == want),
        "size_min" => want
            .parse::<u64>()
            .is_ok_and(|n| img.size.is_some_and(|s| s >= n)),
        "size_max" => want
            .parse::<u64>()
            .is_ok_and(|n| img.size.is_some_and(|s| s <= n)),
        "member_status" => true,
        "protected" | "os_hidden" => {
            rendered.get(key).and_then(Value::as_bool) == util::parse_bool_str(want)
        }
        _ => match rendered.get(key) {
            Some(Value::String(s)) => wants.iter().any(|w| w == s),
            Some(Value::Number(n)) => wants.iter().any(|w| *w == n.to_string()),
            Some(Value::Bool(b)) => util::parse_bool_str(want) == Some(*b),
            _ => false,
        },
    }
}

async fn list_images(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let mut items: Vec<Image> = ctx.read(|c| c.image.images.values().cloned().collect());
    let visibility = q.get("visibility").unwrap_or("");
    items.retain(|i| match visibility {
        "" => {
            // Default listing: public, own and shared images; community ones only if owned.
            i.visible_to(&ctx.project_id, ctx.is_admin())
                && (i.visibility != "community" || i.owner == ctx.project_id)
        }
        "all" => i.visible_to(&ctx.project_id, ctx.is_admin()),
        v => i.visibility == v && i.visible_to(&ctx.project_id, ctx.is_admin()),
    });
    let hidden_wanted = q
        .get("os_hidden")
        .and_then(util::parse_bool_str)
        .unwrap_or(false);
    items.retain(|i| i.os_hidden == hidden_wanted);
    let skip = [
        "limit",
        "marker",
        "sort_key",
        "sort_dir",
        "sort",
        "visibility",
        "os_hidden",
    ];
    for (k, v) in &q.0 {
        if skip.contains(&k.as_str()) {
            continue;
        }
        items.retain(|i| filter_matches(i, &i.render(), k, v));
    }
    // Sort: `sort=name:asc,created_at:desc` or sort_key/sort_dir; default created_at desc.
    let mut keys: Vec<(String, bool)> = Vec::new();
    if let Some(s) = q.get("sort") {
        for part in s.split(',') {
            let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
            keys.push((k.trim().to_string(), d.trim().eq_ignore_ascii_case("desc")));
        }
    } else {
        let dirs = q.all("sort_dir");
        for (i, k) in q.all("sort_key").iter().enumerate() {
            let d = dirs.get(i).or(dirs.first()).copied().unwrap_or("desc");
            keys.push((k.to_string(), d.eq_ignore_ascii_case("desc")));
        }
    }
    if keys.is_empty() {
        keys.push(("created_at".into(), true));
    }
    let rendered: Vec<(Value, Image)> = items.into_iter().map(|i| (i.render(), i)).collect();
    let mut rendered = rendered;
    rendered.sort_by(|(a, ia), (b, ib)| {
        for (k, desc) in &keys {
            let ord = if k == "created_at" {
                ia.seq.cmp(&ib.seq)
            } else {
                let x = a.get(k.as_str()).map(|v| v.to_string()).unwrap_or_default();
                let y = b.get(k.as_str()).map(|v| v.to_string()).unwrap_or_default();
                x.cmp(&y)
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        ib.seq.cmp(&ia.seq)
    });
    let page = http::paginate(rendered, |(_, i)| i.id.clone(), &q, 1000)?;
    let mut body = json!({
        "images": page.items.into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    });
    if let Some(m) = page.next_marker {
        body["next"] = json!(format!("/v2/images?{}", http::next_query(&q, &m)));
    }
    Ok(http::ok(body))
}

async fn update_image(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let ops = body.as_array().cloned().ok_or_else(|| {
        ApiError::bad_request("Request body must be a JSON array of operation objects.")
    })?;
    ctx.write(|c, _| {
        let img = visible_image_mut(&ctx, c, &id)?;
        if img.owner != ctx.project_id && !ctx.is_admin() {
            return Err(ApiError::forbidden(
                "You are not permitted to modify this image.",
            ));
        }
        let mut next = img.clone();
        for op in &ops {
            let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
            let path = op.get("path").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request("Unable to find 'path' in JSON Schema change")
            })?;
            // JSON pointer: "/name", with ~1 for '/' and ~0 for '~'.
            let key = path
                .trim_start_matches('/')
                .replace("~1", "/")
                .replace("~0", "~");
            let is_core = CORE.contains(&key.as_str());
            match kind {
                "add" | "replace" => {
                    let value = op.get("value").cloned().unwrap_or(Value::Null);
                    if kind == "replace" && !is_core && !next.properties.contains_key(&key) {
                        return Err(ApiError::conflict(format!(
                            "Property {key} does not exist."
                        )));
                    }
                    set_attr(&mut next, &key, &value, ctx.is_admin())?;
                }
                "remove" => {
                    if is_core {
                        return Err(ApiError::forbidden(format!(
                            "Attribute '{key}' is read-only."
                        )));
                    }
                    if next.properties.remove(&key).is_none() {
                        return Err(ApiError::conflict(format!(
                            "Property {key} does not exist."
                        )));
                    }
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid operation: `{other}`"
                    )))
                }
            }
        }
        next.updated = util::now();
        *img = next;
        Ok(http::ok(img.render()))
    })
}

async fn delete_image(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let path = ctx.sim.data_path(&ctx.cloud, "images", &id);
    ctx.write(|c, _| {
        let img = visible_image(&ctx, c, &id)?;
        if img.owner != ctx.project_id && !ctx.is_admin() {
            return Err(ApiError::forbidden(
                "You are not permitted to delete this image.",
            ));
        }
        if img.protected {
            return Err(ApiError::forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            )));
        }
        c.image.images.remove(&id);
        Ok(())
    })?;
    crate::files::remove(&path);
    Ok(http::empty(StatusCode::NO_CONTENT))
}

async fn add_tag(ctx: Ctx, Path((id, tag)): Path<(String, String)>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let img = visible_image_mut(&ctx, c, &id)?;
        if !img.tags.contains(&tag) {
            img.tags.push(tag);
            img.updated = util::now();
        }
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn remove_tag(
    ctx: Ctx,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let img = visible_image_mut(&ctx, c, &id)?;
        if !img.tags.contains(&tag) {
            return Err(ApiError::not_found(format!("Tag {tag} not found")));
        }
        img.tags.retain(|t| *t != tag);
        img.updated = util::now();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn members(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        c.image
            .images
            .get(&id)
            .map(|_| ())
            .ok_or_else(|| not_found(&id))
    })?;
    Ok(http::ok(
        json!({"members": [], "schema": "/v2/schemas/members"}),
    ))
}

async fn set_status(ctx: &Ctx, id: &str, from: &[&str], to: &str) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let img = c.image.images.get_mut(id).ok_or_else(|| not_found(id))?;
        if !ctx.is_admin() {
            return Err(ApiError::forbidden(
                "You are not authorized to complete this action.",
            ));
        }
        if img.status == to {
            return Ok(http::empty(StatusCode::NO_CONTENT));
        }
        if !from.contains(&img.status.as_str()) {
            return Err(ApiError::forbidden(format!(
                "Not allowed to change the status of an image in status {}",
                img.status
            )));
        }
        img.status = to.into();
        img.updated = util::now();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn deactivate(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_status(&ctx, &id, &["active"], "deactivated").await
}

async fn reactivate(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_status(&ctx, &id, &["deactivated"], "active").await
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/image/v2/images", get(list_images).post(create_image))
        .route(
            "/image/v2/images/{id}",
            get(show_image).patch(update_image).delete(delete_image),
        )
        .route(
            "/image/v2/images/{id}/tags/{tag}",
            put(add_tag).delete(remove_tag),
        )
        .route("/image/v2/images/{id}/members", get(members))
        .route("/image/v2/images/{id}/actions/deactivate", post(deactivate))
        .route("/image/v2/images/{id}/actions/reactivate", post(reactivate))
}
