//! Volume attachments (`os-volume_attachments`) and the device names Nova gives them.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody};
use crate::jobs;
use crate::sim::Sim;
use crate::util;
use crate::volume::VolAttachment;

use super::servers::{Bdm, Server};
use super::{conflict_state, server_ref, with_server, HOST};

/// The device name prefix of a disk bus, as Nova's libvirt driver names disks.
pub(super) fn bus_prefix(bus: Option<&str>) -> &'static str {
    match bus {
        Some("scsi" | "sata" | "usb") => "sd",
        Some("ide") => "hd",
        _ => "vd",
    }
}

/// The `i`th device name on a bus (`/dev/vda`, `/dev/sdb`, ..., `/dev/vdaa`).
pub(super) fn device_name(bus: Option<&str>, i: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let prefix = bus_prefix(bus);
    if i < 26 {
        format!("/dev/{prefix}{}", letters[i] as char)
    } else {
        format!(
            "/dev/{prefix}{}{}",
            letters[(i / 26 - 1) % 26] as char,
            letters[i % 26] as char
        )
    }
}

/// A device name as a client gives it (`vdb` or `/dev/vdb`), as Nova stores it.
pub(super) fn full_device_name(name: &str) -> String {
    if name.starts_with("/dev/") {
        name.to_string()
    } else {
        format!("/dev/{name}")
    }
}

/// The next free device name of a server.
fn next_device(s: &Server) -> String {
    let used: Vec<&str> = s.bdms.iter().map(|b| b.device.as_str()).collect();
    // vda is the root disk of image-booted servers too.
    let start = if s.bdms.iter().any(|b| b.boot_index == Some(0)) || s.image_id.is_some() {
        1
    } else {
        0
    };
    let bus = s.disk_bus.as_deref();
    (start..702)
        .map(|i| device_name(bus, i))
        .find(|d| !used.contains(&d.as_str()))
        .unwrap_or_else(|| format!("/dev/{}zz", bus_prefix(bus)))
}

fn render_attachment(ctx: &Ctx, server_id: &str, b: &Bdm) -> Value {
    let mut m = Map::new();
    if !ctx.mv.ge(2, 89) {
        m.insert("id".into(), json!(b.volume_id));
    }
    m.insert("serverId".into(), json!(server_id));
    m.insert("volumeId".into(), json!(b.volume_id));
    m.insert("device".into(), json!(b.device));
    if ctx.mv.ge(2, 70) {
        m.insert("tag".into(), json!(b.tag));
    }
    if ctx.mv.ge(2, 79) {
        m.insert(
            "delete_on_termination".into(),
            json!(b.delete_on_termination),
        );
    }
    if ctx.mv.ge(2, 89) {
        m.insert("attachment_id".into(), json!(b.attachment_id));
        m.insert("bdm_uuid".into(), json!(b.bdm_id));
    }
    Value::Object(m)
}

async fn list_attachments(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        let items: Vec<Value> = s
            .bdms
            .iter()
            .map(|b| render_attachment(&ctx, &s.id, b))
            .collect();
        Ok(http::ok(json!({"volumeAttachments": items})))
    })
}

async fn show_attachment(
    ctx: Ctx,
    Path((id, vol)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        let b = s.bdms.iter().find(|b| b.volume_id == vol).ok_or_else(|| {
            ApiError::not_found(format!("Volume {vol} is not attached to instance {id}"))
        })?;
        Ok(http::ok(
            json!({"volumeAttachment": render_attachment(&ctx, &s.id, b)}),
        ))
    })
}

async fn attach_volume(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "volumeAttachment")?.clone();
    let vol = util::opt_str(&spec, "volumeId")?.ok_or_else(|| ApiError::bad_request("Invalid input for field/attribute volumeAttachment. Value: 'volumeId' is a required property"))?;
    let tag = util::opt_str(&spec, "tag")?;
    let dot = util::opt_bool(&spec, "delete_on_termination")?.unwrap_or(false);
    let device_req = util::opt_str(&spec, "device")?;
    let resp = ctx.write(|c, _| {
        let s = server_ref(&ctx, c, &id)?.clone();
        if s.task_state.is_some()
            || !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str())
        {
            return Err(conflict_state("attach_volume", &s));
        }
        let v = c
            .volume
            .volumes
            .get(&vol)
            .filter(|v| v.project_id == ctx.project_id || ctx.is_admin())
            .ok_or_else(|| ApiError::not_found(format!("Volume {vol} could not be found.")))?;
        if s.bdms.iter().any(|b| b.volume_id == vol) {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: volume {vol} already attached"
            )));
        }
        if v.status != "available" {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: volume '{vol}' status must be 'available'. Currently in '{}'",
                v.status
            )));
        }
        let device = match device_req.as_deref().map(full_device_name) {
            Some(d) if !s.bdms.iter().any(|b| b.device == d) => d,
            _ => next_device(&s),
        };
        let bdm = Bdm {
            volume_id: vol.clone(),
            boot_index: None,
            device: device.clone(),
            delete_on_termination: dot,
            attachment_id: util::new_id(),
            bdm_id: util::new_id(),
            tag,
            created_for_boot: false,
        };
        let v = c
            .volume
            .volumes
            .get_mut(&vol)
            .ok_or_else(|| ApiError::not_found(format!("Volume {vol} could not be found.")))?;
        v.status = "attaching".into();
        v.pending_attach = Some(VolAttachment {
            id: bdm.attachment_id.clone(),
            server_id: id.clone(),
            device,
            host_name: HOST.into(),
            attached_at: util::now(),
        });
        v.updated = util::now();
        let out = render_attachment(&ctx, &id, &bdm);
        if let Some(srv) = c.compute.servers.get_mut(&id) {
            srv.bdms.push(bdm);
            srv.updated = util::now();
        }
        Ok(http::ok(json!({"volumeAttachment": out})))
    })?;
    jobs::spawn_volume(&ctx.sim, &ctx.cloud, &vol);
    Ok(resp)
}

async fn detach_volume(
    ctx: Ctx,
    Path((id, vol)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = server_ref(&ctx, c, &id)?.clone();
        let b = s.bdms.iter().find(|b| b.volume_id == vol).ok_or_else(|| ApiError::not_found(format!("volume_id not found: {vol}")))?;
        if b.boot_index == Some(0) {
            return Err(ApiError::bad_request("Cannot detach a root device volume"));
        }
        if s.task_state.is_some() || !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str()) {
            return Err(conflict_state("detach_volume", &s));
        }
        let v = c.volume.volumes.get_mut(&vol).ok_or_else(|| ApiError::not_found(format!("Volume {vol} could not be found.")))?;
        if v.status != "in-use" {
            return Err(ApiError::bad_request(format!("Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach. Currently: status: '{}', attach_status: '{}.'", v.status, v.attach_status())));
        }
        v.status = "detaching".into();
        v.pending_detach = Some(id.clone());
        v.updated = util::now();
        Ok(())
    })?;
    jobs::spawn_volume(&ctx.sim, &ctx.cloud, &vol);
    Ok(http::empty(StatusCode::ACCEPTED))
}

/// Updates an attachment: `delete_on_termination` (microversion 2.85). Swapping the volume (another
/// `volumeId`) is an admin's operation that the simulator does not do.
async fn update_attachment(
    ctx: Ctx,
    Path((id, vol)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "volumeAttachment")?.clone();
    let new_vol = util::opt_str(&spec, "volumeId")?.ok_or_else(|| ApiError::bad_request("Invalid input for field/attribute volumeAttachment. Value: 'volumeId' is a required property"))?;
    if new_vol != vol {
        return Err(ApiError::forbidden(
            "Policy doesn't allow os_compute_api:os-volumes-attachments:swap to be performed.",
        ));
    }
    let dot = util::opt_bool(&spec, "delete_on_termination")?;
    if dot.is_some() && !ctx.mv.ge(2, 85) {
        return Err(ApiError::bad_request("Invalid input for field/attribute volumeAttachment. Value: {'delete_on_termination': ...}. Additional properties are not allowed ('delete_on_termination' was unexpected)"));
    }
    ctx.write(|c, _| {
        server_ref(&ctx, c, &id)?;
        let srv = c
            .compute
            .servers
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found(format!("Instance {id} could not be found.")))?;
        let b = srv
            .bdms
            .iter_mut()
            .find(|b| b.volume_id == vol)
            .ok_or_else(|| {
                ApiError::not_found(format!("Volume {vol} is not attached to instance {id}"))
            })?;
        if let Some(d) = dot {
            b.delete_on_termination = d;
        }
        srv.updated = util::now();
        Ok(http::empty(StatusCode::ACCEPTED))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/compute/v2.1/servers/{id}/os-volume_attachments",
            get(list_attachments).post(attach_volume),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-volume_attachments/{vol}",
            get(show_attachment)
                .put(update_attachment)
                .delete(detach_volume),
        )
}
