//! Volume metadata: the whole set and single keys.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody};
use crate::sim::Sim;
use crate::util;

use super::{own_volume, own_volume_mut};

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
    let m = util::metadata_body(&body)?;
    ctx.write(|c, _| {
        let v = own_volume_mut(&ctx, c, &id)?;
        v.metadata.extend(m);
        Ok(http::ok(json!({"metadata": v.metadata})))
    })
}

async fn replace_metadata(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::metadata_body(&body)?;
    ctx.write(|c, _| {
        let v = own_volume_mut(&ctx, c, &id)?;
        v.metadata = m;
        Ok(http::ok(json!({"metadata": v.metadata})))
    })
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
    let (m, val) = util::meta_item_body(&body, &key)?;
    if m.len() != 1 {
        return Err(ApiError::bad_request(
            "Request body contains too many items",
        ));
    }
    ctx.write(|c, _| {
        let v = own_volume_mut(&ctx, c, &id)?;
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
        let v = own_volume_mut(&ctx, c, &id)?;
        v.metadata.remove(&key).ok_or_else(|| {
            ApiError::not_found(format!("Volume {id} has no metadata with key {key}."))
        })?;
        v.updated = util::now();
        Ok(http::empty(StatusCode::OK))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
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
}
