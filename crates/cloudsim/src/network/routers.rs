//! Routers: the record, external gateways, interfaces on subnets, list, show, create, update,
//! delete.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::sim::Sim;

use super::listing::{list_response, sorted};
use super::ports::{create_port, delete_port_record, PortRequest};
use super::{b, bad, body_of, conflict, not_found, owner, s, visible, Common, NetworkData};

/// A router.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Router {
    /// Common fields.
    #[serde(flatten)]
    pub c: Common,
    /// admin_state_up.
    pub admin_state_up: bool,
    /// Gateway.
    pub gateway: Option<Gateway>,
    /// Static routes.
    pub routes: Vec<Value>,
}

/// A router's external gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gateway {
    /// External network.
    pub network_id: String,
    /// SNAT.
    pub enable_snat: bool,
    /// The gateway port.
    pub port_id: String,
}

fn render_router(r: &Router, net: &NetworkData) -> Value {
    let mut m = r.c.render();
    m.insert("status".into(), json!("ACTIVE"));
    m.insert("admin_state_up".into(), json!(r.admin_state_up));
    m.insert(
        "external_gateway_info".into(),
        match &r.gateway {
            None => Value::Null,
            Some(g) => {
                let ips = net.ports.get(&g.port_id).map(|p| p.fixed_ips.clone()).unwrap_or_default();
                json!({"network_id": g.network_id, "enable_snat": g.enable_snat, "external_fixed_ips": ips})
            }
        },
    );
    m.insert("routes".into(), json!(r.routes));
    m.insert("distributed".into(), json!(false));
    m.insert("ha".into(), json!(false));
    m.insert("flavor_id".into(), Value::Null);
    m.insert("availability_zones".into(), json!(["nova"]));
    m.insert("availability_zone_hints".into(), json!([]));
    m.insert("enable_ndp_proxy".into(), Value::Null);
    Value::Object(m)
}

async fn list_routers(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.read(|c| {
        sorted(
            c.network
                .routers
                .values()
                .filter(|r| visible(&ctx, &r.c.project_id)),
            |r| r.c.seq,
        )
        .into_iter()
        .map(|r| render_router(r, &c.network))
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "routers", items)
}

async fn show_router(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let r = c
            .network
            .routers
            .get(&id)
            .filter(|r| visible(&ctx, &r.c.project_id))
            .ok_or_else(|| not_found("Router", &id))?;
        Ok(http::ok(json!({"router": render_router(r, &c.network)})))
    })
}

/// Sets (or clears, with `None`) a router's gateway, creating the gateway port.
fn set_gateway(
    net: &mut NetworkData,
    seq: &mut u64,
    router_id: &str,
    info: Option<&Value>,
) -> Result<(), ApiError> {
    let old = net.routers.get(router_id).and_then(|r| r.gateway.clone());
    let new = match info {
        None => None,
        Some(v) if v.is_null() || v.as_object().is_some_and(|m| m.is_empty()) => None,
        Some(v) => {
            let net_id = s(v, "network_id")?.ok_or_else(|| {
                bad("Invalid input for external_gateway_info: network_id is required")
            })?;
            let ext = net
                .networks
                .get(&net_id)
                .ok_or_else(|| not_found("Network", &net_id))?;
            if !ext.external {
                return Err(bad(format!(
                    "Bad router request: Network {net_id} is not an external network."
                )));
            }
            let snat = b(v, "enable_snat")?.unwrap_or(true);
            let ips = match v.get("external_fixed_ips") {
                Some(Value::Array(a)) if !a.is_empty() => Some(
                    a.iter()
                        .map(|i| Ok((s(i, "subnet_id")?, s(i, "ip_address")?)))
                        .collect::<Result<Vec<_>, ApiError>>()?,
                ),
                _ => None,
            };
            Some((net_id, snat, ips))
        }
    };
    if let Some(g) = &old {
        if new.as_ref().is_some_and(|(n, _, _)| *n == g.network_id) {
            // Same network: only SNAT may change.
            if let (Some(r), Some((_, snat, _))) = (net.routers.get_mut(router_id), &new) {
                if let Some(gw) = r.gateway.as_mut() {
                    gw.enable_snat = *snat;
                }
            }
            return Ok(());
        }
        delete_port_record(net, &g.port_id);
    }
    let gateway = match new {
        None => None,
        Some((net_id, snat, ips)) => {
            let project = net
                .routers
                .get(router_id)
                .map(|r| r.c.project_id.clone())
                .unwrap_or_default();
            let port = create_port(
                net,
                seq,
                PortRequest {
                    network_id: net_id.clone(),
                    project_id: String::new(),
                    fixed_ips: ips,
                    device_id: router_id.to_string(),
                    device_owner: "network:router_gateway".into(),
                    binding_host_id: "cloudsim-network".into(),
                    ..Default::default()
                },
            )?;
            let _ = project;
            Some(Gateway {
                network_id: net_id,
                enable_snat: snat,
                port_id: port,
            })
        }
    };
    if let Some(r) = net.routers.get_mut(router_id) {
        r.gateway = gateway;
        r.c.touch();
    }
    Ok(())
}

async fn create_router(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "router")?.clone();
    let project = owner(&ctx, &spec)?;
    let name = s(&spec, "name")?.unwrap_or_default();
    let description = s(&spec, "description")?.unwrap_or_default();
    let admin = b(&spec, "admin_state_up")?.unwrap_or(true);
    ctx.write(|c, seq| {
        let mut com = Common::new(seq, &project, name, description);
        com.revision = 1;
        let r = Router {
            c: com,
            admin_state_up: admin,
            gateway: None,
            routes: vec![],
        };
        let id = r.c.id.clone();
        c.network.routers.insert(id.clone(), r);
        if let Err(e) = set_gateway(&mut c.network, seq, &id, spec.get("external_gateway_info")) {
            c.network.routers.remove(&id);
            return Err(e);
        }
        let r = &c.network.routers[&id];
        Ok(http::json(
            StatusCode::CREATED,
            json!({"router": render_router(r, &c.network)}),
        ))
    })
}

async fn update_router(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = body_of(&body, "router")?.clone();
    ctx.write(|c, seq| {
        if !c
            .network
            .routers
            .get(&id)
            .is_some_and(|r| visible(&ctx, &r.c.project_id))
        {
            return Err(not_found("Router", &id));
        }
        if spec.get("external_gateway_info").is_some() {
            set_gateway(&mut c.network, seq, &id, spec.get("external_gateway_info"))?;
        }
        let r = c
            .network
            .routers
            .get_mut(&id)
            .ok_or_else(|| not_found("Router", &id))?;
        if let Some(v) = s(&spec, "name")? {
            r.c.name = v;
        }
        if let Some(v) = s(&spec, "description")? {
            r.c.description = v;
        }
        if let Some(v) = b(&spec, "admin_state_up")? {
            r.admin_state_up = v;
        }
        if let Some(Value::Array(routes)) = spec.get("routes") {
            r.routes = routes.clone();
        }
        r.c.touch();
        let r = r.clone();
        Ok(http::ok(json!({"router": render_router(&r, &c.network)})))
    })
}

async fn delete_router(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, seq| {
        let net = &mut c.network;
        if !net
            .routers
            .get(&id)
            .is_some_and(|r| visible(&ctx, &r.c.project_id))
        {
            return Err(not_found("Router", &id));
        }
        if net
            .ports
            .values()
            .any(|p| p.device_id == id && p.device_owner == "network:router_interface")
        {
            return Err(conflict(
                "RouterInUse",
                format!("Router {id} still has ports"),
            ));
        }
        if net
            .floating_ips
            .values()
            .any(|f| f.router_id.as_deref() == Some(id.as_str()))
        {
            return Err(conflict(
                "RouterInUse",
                format!("Router {id} still has floating IPs associated through it"),
            ));
        }
        set_gateway(net, seq, &id, None)?;
        net.routers.remove(&id);
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn add_interface(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let subnet_id = s(&body, "subnet_id")?;
    let port_id = s(&body, "port_id")?;
    ctx.write(|c, seq| {
        let net = &mut c.network;
        let router = net.routers.get(&id).filter(|r| visible(&ctx, &r.c.project_id)).ok_or_else(|| not_found("Router", &id))?;
        let project = router.c.project_id.clone();
        let port_id = match (subnet_id, port_id) {
            (Some(sid), None) => {
                let sn = net.subnets.get(&sid).ok_or_else(|| not_found("Subnet", &sid))?.clone();
                if net.ports.values().any(|p| p.device_id == id && p.fixed_ips.iter().any(|f| f.subnet_id == sid)) {
                    return Err(bad(format!("Bad router request: Router already has a port on subnet {sid}.")));
                }
                let gw = sn.gateway_ip.clone().ok_or_else(|| bad("Bad router request: Subnet for router interface must have a gateway IP."))?;
                create_port(
                    net,
                    seq,
                    PortRequest {
                        network_id: sn.network_id.clone(),
                        project_id: project.clone(),
                        fixed_ips: Some(vec![(Some(sid.clone()), Some(gw))]),
                        device_id: id.clone(),
                        device_owner: "network:router_interface".into(),
                        binding_host_id: "cloudsim-network".into(),
                        ..Default::default()
                    },
                )?
            }
            (None, Some(pid)) => {
                let p = net.ports.get_mut(&pid).ok_or_else(|| not_found("Port", &pid))?;
                if !p.device_id.is_empty() {
                    return Err(conflict("PortInUse", format!("Unable to complete operation on port {pid} for network {}. Port already has an attached device {}.", p.network_id, p.device_id)));
                }
                p.device_id = id.clone();
                p.device_owner = "network:router_interface".into();
                p.status = "ACTIVE".into();
                p.c.touch();
                pid
            }
            _ => return Err(bad("Bad router request: Either subnet_id or port_id must be specified.")),
        };
        let p = &net.ports[&port_id];
        let subnet_ids: Vec<&str> = p.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect();
        Ok(http::ok(json!({
            "id": id, "tenant_id": project, "project_id": project, "port_id": port_id,
            "network_id": p.network_id, "subnet_id": subnet_ids.first(), "subnet_ids": subnet_ids,
        })))
    })
}

async fn remove_interface(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let subnet_id = s(&body, "subnet_id")?;
    let port_id = s(&body, "port_id")?;
    ctx.write(|c, _| {
        let net = &mut c.network;
        let router = net.routers.get(&id).ok_or_else(|| not_found("Router", &id))?;
        let project = router.c.project_id.clone();
        let port = net
            .ports
            .values()
            .find(|p| {
                p.device_id == id
                    && p.device_owner == "network:router_interface"
                    && (port_id.as_ref().is_some_and(|x| *x == p.c.id) || subnet_id.as_ref().is_some_and(|sid| p.fixed_ips.iter().any(|f| &f.subnet_id == sid)))
            })
            .cloned()
            .ok_or_else(|| {
                let what = subnet_id.clone().or(port_id.clone()).unwrap_or_default();
                ApiError::neutron(StatusCode::NOT_FOUND, "RouterInterfaceNotFoundForSubnet", format!("Router {id} has no interface on subnet {what}"))
            })?;
        let subnets: Vec<String> = port.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
        let in_use = net.floating_ips.values().any(|f| {
            f.router_id.as_deref() == Some(id.as_str())
                && f.port_id.as_ref().and_then(|p| net.ports.get(p)).is_some_and(|p| p.fixed_ips.iter().any(|x| subnets.contains(&x.subnet_id)))
        });
        if in_use {
            return Err(conflict("RouterInterfaceInUseByFloatingIP", format!("Router interface for subnet {} on router {id} cannot be deleted, as it is required by one or more floating IPs.", subnets.first().cloned().unwrap_or_default())));
        }
        delete_port_record(net, &port.c.id);
        Ok(http::ok(json!({
            "id": id, "tenant_id": project, "project_id": project, "port_id": port.c.id,
            "network_id": port.network_id, "subnet_id": subnets.first(), "subnet_ids": subnets,
        })))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route(
            "/network/v2.0/routers",
            get(list_routers).post(create_router),
        )
        .route(
            "/network/v2.0/routers/{id}",
            get(show_router).put(update_router).delete(delete_router),
        )
        .route(
            "/network/v2.0/routers/{id}/add_router_interface",
            put(add_interface),
        )
        .route(
            "/network/v2.0/routers/{id}/remove_router_interface",
            put(remove_interface),
        )
}
