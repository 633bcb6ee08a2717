//! Floating IPs: the record, its rendering, association with ports, list, show, create,
//! update, delete.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::sim::Sim;

use super::listing::{list_response, sorted};
use super::ports::{create_port, delete_port_record, PortRequest};
use super::qos::check_usable;
use super::{bad, body_of, conflict, not_found, owner, s, visible, Common, NetworkData};

/// A floating IP.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloatingIp {
    /// Common fields (name unused).
    #[serde(flatten)]
    pub c: Common,
    /// Address.
    pub floating_ip_address: String,
    /// External network.
    pub floating_network_id: String,
    /// Subnet the address came from.
    pub subnet_id: String,
    /// Internal port holding the address (device_owner network:floatingip).
    pub fip_port_id: String,
    /// Associated port.
    pub port_id: Option<String>,
    /// Associated fixed IP.
    pub fixed_ip_address: Option<String>,
    /// Router doing the NAT.
    pub router_id: Option<String>,
    /// dns_domain.
    #[serde(default)]
    pub dns_domain: String,
    /// dns_name.
    #[serde(default)]
    pub dns_name: String,
    /// QoS policy.
    #[serde(default)]
    pub qos_policy_id: Option<String>,
}

fn render_fip(f: &FloatingIp, net: &NetworkData) -> Value {
    let mut m = f.c.render();
    m.remove("name");
    m.insert("floating_ip_address".into(), json!(f.floating_ip_address));
    m.insert("floating_network_id".into(), json!(f.floating_network_id));
    m.insert("router_id".into(), json!(f.router_id));
    m.insert("port_id".into(), json!(f.port_id));
    m.insert("fixed_ip_address".into(), json!(f.fixed_ip_address));
    m.insert(
        "status".into(),
        json!(if f.port_id.is_some() {
            "ACTIVE"
        } else {
            "DOWN"
        }),
    );
    m.insert("dns_domain".into(), json!(f.dns_domain));
    m.insert("dns_name".into(), json!(f.dns_name));
    m.insert("qos_policy_id".into(), json!(f.qos_policy_id));
    m.insert("qos_network_policy_id".into(), Value::Null);
    m.insert("port_forwardings".into(), json!([]));
    m.insert(
        "port_details".into(),
        match f.port_id.as_ref().and_then(|p| net.ports.get(p)) {
            None => Value::Null,
            Some(p) => json!({"name": p.c.name, "network_id": p.network_id, "mac_address": p.mac_address, "admin_state_up": p.admin_state_up, "status": p.status, "device_id": p.device_id, "device_owner": p.device_owner}),
        },
    );
    Value::Object(m)
}

async fn list_fips(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.read(|c| {
        sorted(
            c.network
                .floating_ips
                .values()
                .filter(|f| visible(&ctx, &f.c.project_id)),
            |f| f.c.seq,
        )
        .into_iter()
        .map(|f| render_fip(f, &c.network))
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "floatingips", items)
}

async fn show_fip(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let f = c
            .network
            .floating_ips
            .get(&id)
            .filter(|f| visible(&ctx, &f.c.project_id))
            .ok_or_else(|| not_found("FloatingIP", &id))?;
        Ok(http::ok(json!({"floatingip": render_fip(f, &c.network)})))
    })
}

/// Checks that a port's fixed IP can be NATed to the external network and returns
/// `(fixed ip, router id)`.
fn association(
    net: &NetworkData,
    fip_id: &str,
    floating_net: &str,
    port_id: &str,
    fixed: Option<String>,
) -> Result<(String, String), ApiError> {
    let port = net
        .ports
        .get(port_id)
        .ok_or_else(|| not_found("Port", port_id))?;
    let fixed_ip = match fixed {
        Some(ip) => port
            .fixed_ips
            .iter()
            .find(|f| f.ip_address == ip)
            .cloned()
            .ok_or_else(|| {
                bad(format!(
                    "Bad floatingip request: Port {port_id} does not have fixed ip {ip}."
                ))
            })?,
        None => port
            .fixed_ips
            .iter()
            .find(|f| !f.ip_address.contains(':'))
            .cloned()
            .ok_or_else(|| {
                bad(format!(
                    "Bad floatingip request: Port {port_id} does not have any IPv4 address."
                ))
            })?,
    };
    if let Some(other) = net.floating_ips.values().find(|f| {
        f.c.id != fip_id
            && f.port_id.as_deref() == Some(port_id)
            && f.fixed_ip_address.as_deref() == Some(fixed_ip.ip_address.as_str())
    }) {
        return Err(conflict("FloatingIPPortAlreadyAssociated", format!("Cannot associate floating IP {} ({fip_id}) with port {port_id} using fixed IP {}, as that fixed IP already has a floating IP on external network {floating_net}.", other.floating_ip_address, fixed_ip.ip_address)));
    }
    // A router with a gateway on the floating network and an interface on the port's subnet.
    let router = net.routers.values().find(|r| {
        r.gateway
            .as_ref()
            .is_some_and(|g| g.network_id == floating_net)
            && net.ports.values().any(|p| {
                p.device_id == r.c.id
                    && p.device_owner == "network:router_interface"
                    && p.fixed_ips
                        .iter()
                        .any(|f| f.subnet_id == fixed_ip.subnet_id)
            })
    });
    let router = router.ok_or_else(|| {
        ApiError::neutron(StatusCode::NOT_FOUND, "ExternalGatewayForFloatingIPNotFound", format!("External network {floating_net} is not reachable from subnet {}.  Therefore, cannot associate Port {port_id} with a Floating IP.", fixed_ip.subnet_id))
    })?;
    Ok((fixed_ip.ip_address, router.c.id.clone()))
}

fn server_of_port(net: &NetworkData, port_id: Option<&str>) -> Option<String> {
    let p = net.ports.get(port_id?)?;
    p.device_owner
        .starts_with("compute:")
        .then(|| p.device_id.clone())
}

async fn create_fip(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "floatingip")?.clone();
    let net_id = s(&spec, "floating_network_id")?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'floating_network_id' not specified")
    })?;
    let project = owner(&ctx, &spec)?;
    let want_ip = s(&spec, "floating_ip_address")?;
    if want_ip.is_some() && !ctx.is_admin() {
        return Err(ApiError::neutron(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy",
        ));
    }
    let want_subnet = s(&spec, "subnet_id")?;
    let port_id = s(&spec, "port_id")?;
    let fixed = s(&spec, "fixed_ip_address")?;
    let description = s(&spec, "description")?.unwrap_or_default();
    let dns_name = s(&spec, "dns_name")?.unwrap_or_default();
    let dns_domain = s(&spec, "dns_domain")?.unwrap_or_default();
    let qos_policy_id = s(&spec, "qos_policy_id")?;
    let (resp, server) = ctx.write(|c, seq| {
        let net = &mut c.network;
        if let Some(q) = &qos_policy_id {
            check_usable(&ctx, net, q)?;
        }
        let ext = net
            .networks
            .get(&net_id)
            .ok_or_else(|| not_found("Network", &net_id))?;
        if !ext.external {
            return Err(bad(format!(
                "Bad floatingip request: Network {net_id} is not a valid external network."
            )));
        }
        let mut com = Common::new(seq, &project, String::new(), description);
        com.revision = 0;
        let fip_id = com.id.clone();
        let assoc = match &port_id {
            Some(p) => Some(association(net, &fip_id, &net_id, p, fixed)?),
            None => None,
        };
        let ip_req = match (&want_subnet, &want_ip) {
            (None, None) => None,
            (sid, ip) => Some(vec![(sid.clone(), ip.clone())]),
        };
        let fip_port = create_port(
            net,
            seq,
            PortRequest {
                network_id: net_id.clone(),
                project_id: String::new(),
                fixed_ips: ip_req,
                device_id: fip_id.clone(),
                device_owner: "network:floatingip".into(),
                ..Default::default()
            },
        )?;
        let fp = &net.ports[&fip_port];
        let Some(addr) = fp.fixed_ips.first().cloned() else {
            delete_port_record(net, &fip_port);
            return Err(conflict(
                "ExternalIpAddressExhausted",
                format!("Unable to find any IP address on external network {net_id}."),
            ));
        };
        let fip = FloatingIp {
            c: com,
            floating_ip_address: addr.ip_address,
            floating_network_id: net_id.clone(),
            subnet_id: addr.subnet_id,
            fip_port_id: fip_port,
            port_id: port_id.clone(),
            fixed_ip_address: assoc.as_ref().map(|a| a.0.clone()),
            router_id: assoc.map(|a| a.1),
            dns_domain,
            dns_name,
            qos_policy_id,
        };
        let v = render_fip(&fip, net);
        net.floating_ips.insert(fip_id, fip);
        Ok((
            http::json(StatusCode::CREATED, json!({"floatingip": v})),
            server_of_port(net, port_id.as_deref()),
        ))
    })?;
    if let Some(sid) = server {
        crate::jobs::refresh_host(&ctx.sim, &ctx.cloud, &sid).await;
    }
    Ok(resp)
}

async fn update_fip(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = body_of(&body, "floatingip")?.clone();
    let (resp, servers) = ctx.write(|c, _| {
        let net = &mut c.network;
        let cur = net
            .floating_ips
            .get(&id)
            .filter(|f| visible(&ctx, &f.c.project_id))
            .ok_or_else(|| not_found("FloatingIP", &id))?
            .clone();
        let mut servers = vec![server_of_port(net, cur.port_id.as_deref())];
        let mut next = cur.clone();
        if spec.get("port_id").is_some() {
            match s(&spec, "port_id")? {
                None => {
                    next.port_id = None;
                    next.fixed_ip_address = None;
                    next.router_id = None;
                }
                Some(p) => {
                    let (ip, router) = association(
                        net,
                        &id,
                        &cur.floating_network_id,
                        &p,
                        s(&spec, "fixed_ip_address")?,
                    )?;
                    next.port_id = Some(p);
                    next.fixed_ip_address = Some(ip);
                    next.router_id = Some(router);
                }
            }
        }
        if let Some(d) = s(&spec, "description")? {
            next.c.description = d;
        }
        if spec.get("qos_policy_id").is_some() {
            next.qos_policy_id = s(&spec, "qos_policy_id")?;
            if let Some(q) = &next.qos_policy_id {
                check_usable(&ctx, net, q)?;
            }
        }
        next.c.touch();
        servers.push(server_of_port(net, next.port_id.as_deref()));
        let v = render_fip(&next, net);
        net.floating_ips.insert(id.clone(), next);
        Ok::<_, ApiError>((http::ok(json!({"floatingip": v})), servers))
    })?;
    let mut seen = HashSet::new();
    for sid in servers.into_iter().flatten() {
        if seen.insert(sid.clone()) {
            crate::jobs::refresh_host(&ctx.sim, &ctx.cloud, &sid).await;
        }
    }
    Ok(resp)
}

async fn delete_fip(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let server = ctx.write(|c, _| {
        let net = &mut c.network;
        let f = net
            .floating_ips
            .remove(&id)
            .ok_or_else(|| not_found("FloatingIP", &id))?;
        net.ports.remove(&f.fip_port_id);
        Ok::<_, ApiError>(server_of_port(net, f.port_id.as_deref()))
    })?;
    if let Some(sid) = server {
        crate::jobs::refresh_host(&ctx.sim, &ctx.cloud, &sid).await;
    }
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/network/v2.0/floatingips", get(list_fips).post(create_fip))
        .route(
            "/network/v2.0/floatingips/{id}",
            get(show_fip).put(update_fip).delete(delete_fip),
        )
}
