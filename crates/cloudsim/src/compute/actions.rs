//! Server actions (`POST /servers/{id}/action`): stop, start, reboot, createImage, lock,
//! os-resetState, security groups, console output, forceDelete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Mv};
use crate::image::{Image, ImagePending};
use crate::jobs;
use crate::network;
use crate::sim::Sim;
use crate::util;
use crate::volume;

use super::servers::start_delete;
use super::{conflict_state, server_mut, server_not_found, server_ref, with_server};

async fn server_action(
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
        .map(|(k, v)| (k.clone(), v.clone()))
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    match action.as_str() {
        "os-stop" => lifecycle(&ctx, &id, "stop", &["active", "error"], "powering-off").await,
        "os-start" => lifecycle(&ctx, &id, "start", &["stopped"], "powering-on").await,
        "reboot" => {
            let hard = args
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("HARD"));
            if hard {
                lifecycle(
                    &ctx,
                    &id,
                    "reboot",
                    &["active", "stopped", "error"],
                    "rebooting_hard",
                )
                .await
            } else {
                lifecycle(&ctx, &id, "reboot", &["active"], "rebooting").await
            }
        }
        "createImage" => create_image(&ctx, &id, &args).await,
        "forceDelete" => {
            start_delete(&ctx, &id)?;
            Ok(http::empty(StatusCode::ACCEPTED))
        }
        "lock" | "unlock" => ctx.write(|c, _| {
            let s = c
                .compute
                .servers
                .get_mut(&id)
                .ok_or_else(|| server_not_found(&id))?;
            s.locked = action == "lock";
            s.updated = util::now();
            Ok(http::empty(StatusCode::ACCEPTED))
        }),
        "os-resetState" => {
            if !ctx.is_admin() {
                return Err(ApiError::forbidden("Policy doesn't allow os_compute_api:os-admin-actions:reset_state to be performed."));
            }
            let state = args
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_string();
            if state != "active" && state != "error" {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute state. Value: {state}."
                )));
            }
            ctx.write(|c, _| {
                let s = c
                    .compute
                    .servers
                    .get_mut(&id)
                    .ok_or_else(|| server_not_found(&id))?;
                s.vm_state = state;
                s.task_state = None;
                s.updated = util::now();
                Ok(http::empty(StatusCode::ACCEPTED))
            })
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            let g = args
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("Missing parameter name"))?
                .to_string();
            ctx.write(|c, _| {
                let s = server_ref(&ctx, c, &id)?.clone();
                let sg = network::find_security_group(&c.network, &s.project_id, &g)
                    .map(|x| x.c.id.clone())
                    .ok_or_else(|| {
                        ApiError::not_found(format!(
                            "Security group {g} not found for project {}.",
                            s.project_id
                        ))
                    })?;
                let ports: Vec<String> = c
                    .network
                    .ports
                    .values()
                    .filter(|p| p.device_id == id)
                    .map(|p| p.c.id.clone())
                    .collect();
                if action == "removeSecurityGroup"
                    && !ports
                        .iter()
                        .any(|p| c.network.ports[p].security_groups.contains(&sg))
                {
                    return Err(ApiError::not_found(format!(
                        "Security group {g} not associated with the instance {id}"
                    )));
                }
                for p in ports {
                    if let Some(port) = c.network.ports.get_mut(&p) {
                        if action == "addSecurityGroup" {
                            if !port.security_groups.contains(&sg) {
                                port.security_groups.push(sg.clone());
                            }
                        } else {
                            port.security_groups.retain(|x| *x != sg);
                        }
                    }
                }
                Ok(http::empty(StatusCode::ACCEPTED))
            })
        }
        "os-getConsoleOutput" => with_server(&ctx, &id, |_, s| {
            let text = format!(
                "[    0.000000] Linux version 6.1.0 (osm-cloudsim)\n{} login: \n",
                s.hostname
            );
            Ok(http::ok(json!({"output": text})))
        }),
        other => Err(ApiError::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

async fn lifecycle(
    ctx: &Ctx,
    id: &str,
    action: &str,
    from: &[&str],
    task: &str,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = server_mut(ctx, c, id)?;
        if s.locked && !ctx.is_admin() {
            return Err(ApiError::conflict(format!("Instance {id} is locked")));
        }
        if s.task_state.is_some() || !from.contains(&s.vm_state.as_str()) {
            return Err(conflict_state(action, s));
        }
        s.task_state = Some(task.to_string());
        s.updated = util::now();
        Ok(())
    })?;
    jobs::spawn_server(&ctx.sim, &ctx.cloud, id);
    Ok(http::empty(StatusCode::ACCEPTED))
}

async fn create_image(ctx: &Ctx, id: &str, args: &Value) -> Result<Response, ApiError> {
    let name = util::opt_str(args, "name")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute createImage. Value: 'name' is a required property",
        )
    })?;
    let extra = util::opt_str_map(args, "metadata")?.unwrap_or_default();
    let (image_id, snaps) = ctx.write(|c, seq| {
        let s = server_ref(ctx, c, id)?.clone();
        if s.task_state.is_some() || !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str()) {
            return Err(conflict_state("createImage", &s));
        }
        let user_name = c.identity.users.get(&s.user_id).map(|u| u.name.clone()).unwrap_or_default();
        let project_name = c.identity.projects.get(&s.project_id).map(|p| p.name.clone()).unwrap_or_default();
        *seq += 1;
        let mut img = Image::new(*seq, &ctx.project_id, Some(name.clone()));
        img.visibility = "private".into();
        img.min_ram = 0;
        // Nova copies the base image's properties and records where the snapshot came from.
        let base = s.image_id.as_ref().and_then(|i| c.image.images.get(i)).cloned();
        let mut props: BTreeMap<String, String> = base.as_ref().map(|b| b.properties.clone()).unwrap_or_default();
        if s.image_id.is_none() {
            if let Some(root) = s.bdms.iter().find(|b| b.boot_index == Some(0)).and_then(|b| c.volume.volumes.get(&b.volume_id)) {
                for (k, v) in &root.image_metadata {
                    if !["image_id", "image_name", "checksum", "container_format", "disk_format", "min_disk", "min_ram", "size"].contains(&k.as_str()) {
                        props.insert(k.clone(), v.clone());
                    }
                }
                img.disk_format = root.image_metadata.get("disk_format").cloned().filter(|x| !x.is_empty()).or(Some("raw".into()));
                img.container_format = root.image_metadata.get("container_format").cloned().filter(|x| !x.is_empty()).or(Some("bare".into()));
            }
        } else {
            img.disk_format = base.as_ref().and_then(|b| b.disk_format.clone()).or(Some("raw".into()));
            img.container_format = base.as_ref().and_then(|b| b.container_format.clone()).or(Some("bare".into()));
        }
        props.extend(extra.clone());
        props.insert("image_type".into(), "snapshot".into());
        props.insert("instance_uuid".into(), s.id.clone());
        props.insert("user_id".into(), s.user_id.clone());
        props.insert("owner_user_name".into(), user_name);
        props.insert("owner_project_name".into(), project_name);
        props.insert("image_location".into(), "snapshot".into());
        props.insert("base_image_ref".into(), s.image_id.clone().unwrap_or_default());
        props.insert("boot_roles".into(), "admin,member,reader".into());
        img.min_disk = s.flavor.disk.max(base.as_ref().map(|b| b.min_disk).unwrap_or(0));
        img.min_ram = base.as_ref().map(|b| b.min_ram).unwrap_or(0);
        let mut snaps = Vec::new();
        if s.image_id.is_some() {
            img.pending = Some(ImagePending::ServerDisk { server_id: s.id.clone() });
        } else {
            // Volume-backed: a Cinder snapshot per volume and an image that maps them.
            let mut mappings = Vec::new();
            for b in &s.bdms {
                let mut snap = volume::build_snapshot(c, seq, &s.project_id, &s.user_id, &b.volume_id, Some(true), Mv(3, 0))?;
                snap.name = Some(format!("snapshot for {name}"));
                let size = snap.size;
                mappings.push(json!({
                    "source_type": "snapshot", "destination_type": "volume", "snapshot_id": snap.id,
                    "boot_index": b.boot_index, "volume_size": size, "delete_on_termination": b.delete_on_termination,
                    "device_name": b.device, "tag": b.tag, "disk_bus": "virtio", "device_type": "disk",
                    "guest_format": null, "volume_type": null, "image_id": null, "no_device": null, "volume_id": null,
                }));
                snaps.push(snap.id.clone());
                c.volume.snapshots.insert(snap.id.clone(), snap);
            }
            props.insert("block_device_mapping".into(), serde_json::to_string(&mappings).unwrap_or_else(|_| "[]".into()));
            props.insert("bdm_v2".into(), "True".into());
            props.insert("root_device_name".into(), "/dev/vda".into());
            img.pending = Some(ImagePending::VolumeSnapshots { server_id: s.id.clone(), snapshot_ids: snaps.clone() });
        }
        img.properties = props;
        let image_id = img.id.clone();
        c.image.images.insert(image_id.clone(), img);
        if let Some(srv) = c.compute.servers.get_mut(id) {
            srv.task_state = Some("image_snapshot".into());
            srv.updated = util::now();
        }
        Ok((image_id, snaps))
    })?;
    for s in &snaps {
        jobs::spawn_snapshot(&ctx.sim, &ctx.cloud, s);
    }
    jobs::spawn_image(&ctx.sim, &ctx.cloud, &image_id);
    let mut resp = if ctx.mv.ge(2, 45) {
        http::json(StatusCode::ACCEPTED, json!({"image_id": image_id}))
    } else {
        http::empty(StatusCode::ACCEPTED)
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.url(&format!("/image/v2/images/{image_id}"))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/compute/v2.1/servers/{id}/action", post(server_action))
}
