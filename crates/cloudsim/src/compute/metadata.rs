//! Server metadata, tags (2.26+) and the instance action log.

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

use super::{server_mut, with_server};

async fn get_metadata(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        Ok(http::ok(json!({"metadata": s.metadata})))
    })
}

async fn merge_metadata(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::metadata_body(&body)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.metadata.extend(m);
        s.updated = util::now();
        Ok(http::ok(json!({"metadata": s.metadata})))
    })
}

async fn replace_metadata(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::metadata_body(&body)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.metadata = m;
        s.updated = util::now();
        Ok(http::ok(json!({"metadata": s.metadata})))
    })
}

async fn get_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        let v = s
            .metadata
            .get(&key)
            .ok_or_else(|| ApiError::not_found("Metadata item was not found"))?;
        Ok(http::ok(json!({"meta": {key.clone(): v}})))
    })
}

async fn put_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (_, v) = util::meta_item_body(&body, &key)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.metadata.insert(key.clone(), v.clone());
        s.updated = util::now();
        Ok(http::ok(json!({"meta": {key.clone(): v}})))
    })
}

async fn delete_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.metadata
            .remove(&key)
            .ok_or_else(|| ApiError::not_found("Metadata item was not found"))?;
        s.updated = util::now();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

fn need_tags(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.mv.ge(2, 26) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

async fn get_tags(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    with_server(&ctx, &id, |_, s| Ok(http::ok(json!({"tags": s.tags}))))
}

async fn replace_tags(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    let tags = util::opt_str_list(&body, "tags")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: tags missing"))?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.tags.clear();
        for t in tags {
            if !s.tags.contains(&t) {
                s.tags.push(t);
            }
        }
        s.updated = util::now();
        Ok(http::ok(json!({"tags": s.tags})))
    })
}

async fn clear_tags(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.tags.clear();
        s.updated = util::now();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn check_tag(
    ctx: Ctx,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    with_server(&ctx, &id, |_, s| {
        if s.tags.contains(&tag) {
            Ok(http::empty(StatusCode::NO_CONTENT))
        } else {
            Err(ApiError::not_found(format!(
                "Tag '{tag}' could not be found."
            )))
        }
    })
}

async fn add_tag(ctx: Ctx, Path((id, tag)): Path<(String, String)>) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        if s.tags.contains(&tag) {
            return Ok(http::empty(StatusCode::NO_CONTENT));
        }
        s.tags.push(tag);
        s.updated = util::now();
        Ok(http::empty(StatusCode::CREATED))
    })
}

async fn remove_tag(
    ctx: Ctx,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        if !s.tags.contains(&tag) {
            return Err(ApiError::not_found(format!(
                "Tag '{tag}' could not be found."
            )));
        }
        s.tags.retain(|t| *t != tag);
        s.updated = util::now();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn instance_actions(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        Ok(http::ok(
            json!({"instanceActions": [{"action": "create", "instance_uuid": s.id, "request_id": ctx.request_id, "user_id": s.user_id, "project_id": s.project_id, "start_time": util::iso_micro(&s.created), "message": null}]}),
        ))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/compute/v2.1/servers/{id}/metadata",
            get(get_metadata).post(merge_metadata).put(replace_metadata),
        )
        .route(
            "/compute/v2.1/servers/{id}/metadata/{key}",
            get(get_meta_item)
                .put(put_meta_item)
                .delete(delete_meta_item),
        )
        .route(
            "/compute/v2.1/servers/{id}/tags",
            get(get_tags).put(replace_tags).delete(clear_tags),
        )
        .route(
            "/compute/v2.1/servers/{id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(remove_tag),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-instance-actions",
            get(instance_actions),
        )
}
