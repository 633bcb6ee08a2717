//! Volume actions (`POST /volumes/{id}/action`): extend, bootable, image metadata, reset
//! status, readonly, ...

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::json;

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody};
use crate::jobs;
use crate::sim::Sim;
use crate::util;

use super::{own_volume_mut, vol_not_found};

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
        let v = own_volume_mut(&ctx, c, &id)?;
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

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/volume/v3/volumes/{id}/action", post(volume_action))
}
