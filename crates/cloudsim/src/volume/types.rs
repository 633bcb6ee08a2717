//! Volume types: list, show, the default type, extra specs, create, delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody};
use crate::sim::Sim;
use crate::util;

use super::DEFAULT_TYPE;

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

fn render_type(t: &VolumeType) -> Value {
    json!({
        "id": t.id, "name": t.name, "description": t.description, "is_public": t.is_public,
        "os-volume-type-access:is_public": t.is_public, "extra_specs": t.extra_specs, "qos_specs_id": null,
    })
}

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

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/volume/v3/types", get(list_types).post(create_type))
        .route("/volume/v3/types/default", get(default_type))
        .route("/volume/v3/types/{id}", get(show_type).delete(delete_type))
        .route("/volume/v3/types/{id}/extra_specs", get(type_extra_specs))
}
