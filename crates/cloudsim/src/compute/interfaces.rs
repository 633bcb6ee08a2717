//! Port attachments (`os-interface`) and a server's addresses (`ips`).

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Mv};
use crate::jobs;
use crate::network::{self, AddrIndex, PortRequest};
use crate::sim::Sim;
use crate::util;

use super::{conflict_state, server_ref, with_server, HOST};

fn render_interface(p: &network::Port, mv: Mv) -> Value {
    let mut v = json!({
        "port_state": p.status, "port_id": p.c.id, "net_id": p.network_id, "mac_addr": p.mac_address,
        "fixed_ips": p.fixed_ips.iter().map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address})).collect::<Vec<_>>(),
    });
    if mv.ge(2, 70) {
        v["tag"] = Value::Null;
    }
    v
}

/// Real Nova answers with Neutron's port listing, which is not the server's NIC order (only
/// `addresses` is). The simulator lists the ports in reverse NIC order so that code taking this
/// list for NIC order fails here every time, not by chance as on a real cloud.
async fn list_interfaces(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, s| {
        let idx = AddrIndex::new(&c.network);
        let items: Vec<Value> = idx
            .ports_in(&s.id, &s.port_order)
            .iter()
            .rev()
            .map(|p| render_interface(p, ctx.mv))
            .collect();
        Ok(http::ok(json!({"interfaceAttachments": items})))
    })
}

async fn show_interface(
    ctx: Ctx,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, _| {
        let p = c
            .network
            .ports
            .get(&port)
            .filter(|p| p.device_id == id)
            .ok_or_else(|| ApiError::not_found(format!("Port {port} is not attached")))?;
        Ok(http::ok(
            json!({"interfaceAttachment": render_interface(p, ctx.mv)}),
        ))
    })
}

async fn attach_interface(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "interfaceAttachment")?.clone();
    let port_id = util::opt_str(&spec, "port_id")?;
    let net_id = util::opt_str(&spec, "net_id")?;
    let fixed: Option<Vec<(Option<String>, Option<String>)>> =
        spec.get("fixed_ips").and_then(Value::as_array).map(|a| {
            a.iter()
                .map(|f| {
                    (
                        None,
                        f.get("ip_address")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    )
                })
                .collect()
        });
    let resp = ctx.write(|c, seq| {
        let s = server_ref(&ctx, c, &id)?.clone();
        if s.task_state.is_some() || !["active", "stopped"].contains(&s.vm_state.as_str()) {
            return Err(conflict_state("attach_interface", &s));
        }
        let pid = match (port_id, net_id) {
            (Some(p), _) => {
                let port =
                    c.network.ports.get_mut(&p).ok_or_else(|| {
                        ApiError::not_found(format!("Port {p} could not be found."))
                    })?;
                if !port.device_id.is_empty() {
                    return Err(ApiError::conflict(format!("Port {p} is still in use.")));
                }
                port.device_id = id.clone();
                port.device_owner = "compute:nova".into();
                p
            }
            (None, Some(n)) => {
                let p = network::create_port(
                    &mut c.network,
                    seq,
                    PortRequest {
                        network_id: n,
                        project_id: s.project_id.clone(),
                        fixed_ips: fixed,
                        device_id: id.clone(),
                        device_owner: "compute:nova".into(),
                        ..Default::default()
                    },
                )?;
                if let Some(srv) = c.compute.servers.get_mut(&id) {
                    srv.created_ports.push(p.clone());
                }
                p
            }
            (None, None) => return Err(ApiError::bad_request("Must input network_id or port_id")),
        };
        if let Some(srv) = c.compute.servers.get_mut(&id) {
            srv.port_order.push(pid.clone());
        }
        network::bind_server_ports(&mut c.network, &id, HOST);
        let p = c
            .network
            .ports
            .get(&pid)
            .ok_or_else(|| ApiError::internal("port vanished"))?;
        Ok(http::ok(
            json!({"interfaceAttachment": render_interface(p, ctx.mv)}),
        ))
    })?;
    jobs::refresh_host(&ctx.sim, &ctx.cloud, &id).await;
    Ok(resp)
}

async fn detach_interface(
    ctx: Ctx,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = server_ref(&ctx, c, &id)?.clone();
        if c.network.ports.get(&port).is_none_or(|p| p.device_id != id) {
            return Err(ApiError::not_found(format!("Port {port} is not attached")));
        }
        let created: Vec<String> = s
            .created_ports
            .iter()
            .filter(|p| **p == port)
            .cloned()
            .collect();
        if created.is_empty() {
            if let Some(p) = c.network.ports.get_mut(&port) {
                p.device_id.clear();
                p.device_owner.clear();
                p.binding_host_id.clear();
                p.status = "DOWN".into();
            }
        } else {
            network::delete_port_record(&mut c.network, &port);
        }
        if let Some(srv) = c.compute.servers.get_mut(&id) {
            srv.created_ports.retain(|p| *p != port);
        }
        Ok(())
    })?;
    jobs::refresh_host(&ctx.sim, &ctx.cloud, &id).await;
    Ok(http::empty(StatusCode::ACCEPTED))
}

async fn server_ips(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, s| {
        let idx = AddrIndex::new(&c.network);
        let (addrs, nic_order) = idx.addresses(&s.id, &s.port_order, s.host_addr.as_deref());
        let stripped: Map<String, Value> = addrs
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            json!(v
                                .as_array()
                                .map(|a| a
                                    .iter()
                                    .map(|x| json!({"addr": x["addr"], "version": x["version"]}))
                                    .collect::<Vec<_>>())
                                .unwrap_or_default()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(http::ok(
            json!({"addresses": stripped, http::KEY_ORDER: {"addresses": nic_order}}),
        ))
    })
}

/// The server's security groups (openstacksdk's `fetch_server_security_groups`, which upstream OS
/// Migrate's export calls).
async fn server_security_groups(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, s| {
        let idx = AddrIndex::new(&c.network);
        let ports: Vec<String> = idx
            .ports_in(&s.id, &s.port_order)
            .iter()
            .map(|p| p.c.id.clone())
            .collect();
        let groups =
            network::nova_security_groups(&c.network, &ports, &s.security_groups, &s.project_id);
        Ok(http::ok(json!({"security_groups": groups})))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/compute/v2.1/servers/{id}/os-security-groups",
            get(server_security_groups),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-interface",
            get(list_interfaces).post(attach_interface),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-interface/{port}",
            get(show_interface).delete(detach_interface),
        )
        .route("/compute/v2.1/servers/{id}/ips", get(server_ips))
}
