//! Glance v2: images with data upload/download, JSON-patch updates, tags, visibility, filters and
//! `next` pagination. Image data lives in `DIR/clouds/<cloud>/images/<id>`. `images.rs` holds
//! the record and its API, `data.rs` the upload and download of image data; this module holds
//! the per-cloud data, the route table and the version and schema documents.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, CloudCtx, Ctx};
use crate::sim::Sim;
use crate::state::Cloud;

mod data;
mod images;

pub use data::hash_file;
pub use images::{Image, ImagePending};

/// One cloud's Glance data.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ImageData {
    /// Images by id.
    pub images: BTreeMap<String, Image>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No image found with ID {id}"))
}

fn visible_image<'a>(ctx: &Ctx, c: &'a Cloud, id: &str) -> Result<&'a Image, ApiError> {
    c.image
        .images
        .get(id)
        .filter(|i| i.visible_to(&ctx.project_id, ctx.is_admin()))
        .ok_or_else(|| not_found(id))
}

fn visible_image_mut<'a>(ctx: &Ctx, c: &'a mut Cloud, id: &str) -> Result<&'a mut Image, ApiError> {
    c.image
        .images
        .get_mut(id)
        .filter(|i| i.visible_to(&ctx.project_id, ctx.is_admin()))
        .ok_or_else(|| not_found(id))
}

/// Glance routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/image", get(versions))
        .route("/image/versions", get(versions))
        .route("/image/v2", get(versions))
        .route("/image/v2/schemas/image", get(schema_image))
        .route("/image/v2/schemas/images", get(schema_images))
        .route("/image/v2/info/import", get(info_import))
        .merge(images::routes())
        .merge(data::routes())
}

async fn versions(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    let href = format!("{}/{}/image/v2/", sim.base_url, cc.cloud);
    let vs: Vec<Value> = ["2.16", "2.15", "2.9", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0"]
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"id": format!("v{v}"), "status": if i == 0 { "CURRENT" } else { "SUPPORTED" }, "links": [{"rel": "self", "href": href}]}))
        .collect();
    http::json(StatusCode::MULTIPLE_CHOICES, json!({"versions": vs}))
}

async fn info_import(_ctx: Ctx) -> Response {
    http::ok(
        json!({"import-methods": {"description": "Import methods available.", "type": "array", "value": []}}),
    )
}

async fn schema_image(_ctx: Ctx) -> Response {
    http::ok(
        json!({"name": "image", "additionalProperties": {"type": "string"}, "properties": {
            "id": {"type": "string"}, "name": {"type": ["null", "string"]}, "status": {"type": "string"},
            "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"]},
            "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"}, "checksum": {"type": ["null", "string"]},
            "size": {"type": ["null", "integer"]}, "virtual_size": {"type": ["null", "integer"]},
            "min_disk": {"type": "integer"}, "min_ram": {"type": "integer"},
            "disk_format": {"type": ["null", "string"], "enum": [null, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]},
            "container_format": {"type": ["null", "string"], "enum": [null, "ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]},
            "owner": {"type": ["null", "string"]}, "tags": {"type": "array", "items": {"type": "string"}},
        }}),
    )
}

async fn schema_images(ctx: Ctx) -> Response {
    let _ = ctx;
    http::ok(
        json!({"name": "images", "properties": {"images": {"type": "array"}, "first": {"type": "string"}, "next": {"type": "string"}, "schema": {"type": "string"}}}),
    )
}
