//! Tags of any taggable resource (`/{collection}/{id}/tags`).

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody};
use crate::sim::Sim;
use crate::util;

use super::{bad, not_found, Common, NetworkData};

fn tags_mut<'a>(
    net: &'a mut NetworkData,
    collection: &str,
    id: &str,
) -> Result<&'a mut Common, ApiError> {
    let c = match collection {
        "networks" => net.networks.get_mut(id).map(|x| &mut x.c),
        "subnets" => net.subnets.get_mut(id).map(|x| &mut x.c),
        "ports" => net.ports.get_mut(id).map(|x| &mut x.c),
        "routers" => net.routers.get_mut(id).map(|x| &mut x.c),
        "floatingips" => net.floating_ips.get_mut(id).map(|x| &mut x.c),
        "security-groups" | "security_groups" => net.security_groups.get_mut(id).map(|x| &mut x.c),
        _ => return Err(not_found("Resource", collection)),
    };
    c.ok_or_else(|| {
        ApiError::neutron(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{collection} {id} could not be found."),
        )
    })
}

async fn get_tags(
    ctx: Ctx,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut st = ctx.sim.lock();
    let (c, _) = http::cloud_and_seq(&mut st, &ctx.cloud);
    let com = tags_mut(&mut c.network, &collection, &id)?;
    Ok(http::ok(json!({"tags": com.tags})))
}

async fn replace_tags(
    ctx: Ctx,
    Path((collection, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let tags = util::opt_str_list(&body, "tags")
        .map_err(|e| bad(e.message))?
        .ok_or_else(|| bad("Invalid input: tags is required"))?;
    ctx.write(|c, _| {
        let com = tags_mut(&mut c.network, &collection, &id)?;
        let mut uniq: Vec<String> = Vec::new();
        for t in tags {
            if !uniq.contains(&t) {
                uniq.push(t);
            }
        }
        com.tags = uniq;
        com.touch();
        Ok(http::ok(json!({"tags": com.tags})))
    })
}

async fn clear_tags(
    ctx: Ctx,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let com = tags_mut(&mut c.network, &collection, &id)?;
        com.tags.clear();
        com.touch();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn check_tag(
    ctx: Ctx,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let mut st = ctx.sim.lock();
    let (c, _) = http::cloud_and_seq(&mut st, &ctx.cloud);
    let com = tags_mut(&mut c.network, &collection, &id)?;
    if com.tags.contains(&tag) {
        Ok(http::empty(StatusCode::NO_CONTENT))
    } else {
        Err(ApiError::neutron(
            StatusCode::NOT_FOUND,
            "TagNotFound",
            format!("Tag {tag} could not be found for {collection} {id}."),
        ))
    }
}

async fn add_tag(
    ctx: Ctx,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let com = tags_mut(&mut c.network, &collection, &id)?;
        if !com.tags.contains(&tag) {
            com.tags.push(tag);
            com.touch();
        }
        Ok(http::empty(StatusCode::CREATED))
    })
}

async fn remove_tag(
    ctx: Ctx,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let com = tags_mut(&mut c.network, &collection, &id)?;
        if !com.tags.contains(&tag) {
            return Err(ApiError::neutron(
                StatusCode::NOT_FOUND,
                "TagNotFound",
                format!("Tag {tag} could not be found for {collection} {id}."),
            ));
        }
        com.tags.retain(|t| *t != tag);
        com.touch();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route(
            "/network/v2.0/{collection}/{id}/tags",
            get(get_tags).put(replace_tags).delete(clear_tags),
        )
        .route(
            "/network/v2.0/{collection}/{id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(remove_tag),
        )
}
