//! Ports: the record, its rendering, IP allocation, the port operations Nova uses (create,
//! bind, release) and the API (list, show, create, update, delete).

use std::collections::HashSet;
use std::net::IpAddr;
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
use crate::util::{self, Cidr};

use super::listing::{list_response, select_fields, sorted};
use super::security_groups::ensure_default_security_group;
use super::subnets::Subnet;
use super::{b, bad, body_of, conflict, not_found, owner, s, visible, Common, NetworkData};

/// A port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Port {
    /// Common fields.
    #[serde(flatten)]
    pub c: Common,
    /// Network.
    pub network_id: String,
    /// MAC.
    pub mac_address: String,
    /// admin_state_up.
    pub admin_state_up: bool,
    /// DOWN until bound to an active server.
    pub status: String,
    /// Device (server id, router id, floating IP id).
    pub device_id: String,
    /// `compute:<az>`, `network:router_interface`, ...
    pub device_owner: String,
    /// Fixed IPs.
    pub fixed_ips: Vec<FixedIp>,
    /// Security group ids.
    pub security_groups: Vec<String>,
    /// allowed_address_pairs.
    pub allowed_address_pairs: Vec<Value>,
    /// binding:host_id.
    pub binding_host_id: String,
    /// binding:profile.
    pub binding_profile: Value,
    /// binding:vnic_type.
    pub binding_vnic_type: String,
    /// port_security_enabled.
    pub port_security_enabled: bool,
    /// dns_name.
    #[serde(default)]
    pub dns_name: String,
}

/// One fixed IP of a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedIp {
    /// Subnet.
    pub subnet_id: String,
    /// Address.
    pub ip_address: String,
}

fn render_port(p: &Port) -> Value {
    let mut m = p.c.render();
    let bound = !p.binding_host_id.is_empty();
    m.insert("network_id".into(), json!(p.network_id));
    m.insert("mac_address".into(), json!(p.mac_address));
    m.insert("admin_state_up".into(), json!(p.admin_state_up));
    m.insert("status".into(), json!(p.status));
    m.insert("device_id".into(), json!(p.device_id));
    m.insert("device_owner".into(), json!(p.device_owner));
    m.insert("fixed_ips".into(), json!(p.fixed_ips));
    m.insert("security_groups".into(), json!(p.security_groups));
    m.insert(
        "allowed_address_pairs".into(),
        json!(p.allowed_address_pairs),
    );
    m.insert("extra_dhcp_opts".into(), json!([]));
    m.insert("binding:host_id".into(), json!(p.binding_host_id));
    m.insert("binding:profile".into(), p.binding_profile.clone());
    m.insert("binding:vnic_type".into(), json!(p.binding_vnic_type));
    m.insert(
        "binding:vif_type".into(),
        json!(if bound { "ovs" } else { "unbound" }),
    );
    m.insert(
        "binding:vif_details".into(),
        if bound { json!({"port_filter": true, "connectivity": "l2", "bridge_name": "br-int", "datapath_type": "system"}) } else { json!({}) },
    );
    m.insert(
        "port_security_enabled".into(),
        json!(p.port_security_enabled),
    );
    m.insert("dns_name".into(), json!(p.dns_name));
    m.insert("dns_assignment".into(), json!([]));
    m.insert("qos_policy_id".into(), Value::Null);
    m.insert("qos_network_policy_id".into(), Value::Null);
    m.insert("propagate_uplink_status".into(), json!(false));
    m.insert("ip_allocation".into(), json!("immediate"));
    Value::Object(m)
}

fn used_ips(net: &NetworkData, subnet_id: &str) -> HashSet<String> {
    net.ports
        .values()
        .flat_map(|p| p.fixed_ips.iter())
        .filter(|f| f.subnet_id == subnet_id)
        .map(|f| f.ip_address.clone())
        .collect()
}

fn allocate_ip(net: &NetworkData, subnet: &Subnet, also_taken: &[FixedIp]) -> Option<String> {
    let cidr = Cidr::parse(&subnet.cidr)?;
    let mut used = used_ips(net, &subnet.c.id);
    used.extend(also_taken.iter().map(|f| f.ip_address.clone()));
    for (start, end) in &subnet.allocation_pools {
        let (Ok(a), Ok(b)) = (start.parse::<IpAddr>(), end.parse::<IpAddr>()) else {
            continue;
        };
        let (a, b) = (cidr.to_int(a), cidr.to_int(b));
        let mut n = a;
        while n <= b {
            let ip = cidr.from_int(n).to_string();
            if !used.contains(&ip) && Some(&ip) != subnet.gateway_ip.as_ref() {
                return Some(ip);
            }
            n += 1;
        }
    }
    None
}

/// A request for a port, from the ports API or from Nova.
#[derive(Debug, Default, Clone)]
pub struct PortRequest {
    /// Network.
    pub network_id: String,
    /// Owner.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Requested fixed IPs `(subnet_id, ip_address)`; `None` allocates one from the first IPv4
    /// subnet (or the first subnet).
    pub fixed_ips: Option<Vec<(Option<String>, Option<String>)>>,
    /// Requested MAC.
    pub mac_address: Option<String>,
    /// Security group ids; `None` means the project's default group.
    pub security_groups: Option<Vec<String>>,
    /// Device.
    pub device_id: String,
    /// Device owner.
    pub device_owner: String,
    /// binding:host_id.
    pub binding_host_id: String,
    /// binding:profile.
    pub binding_profile: Option<Value>,
    /// binding:vnic_type.
    pub binding_vnic_type: Option<String>,
    /// port_security_enabled.
    pub port_security_enabled: Option<bool>,
    /// admin_state_up.
    pub admin_state_up: Option<bool>,
    /// allowed_address_pairs.
    pub allowed_address_pairs: Vec<Value>,
}

fn resolve_fixed_ips(
    net: &NetworkData,
    network_id: &str,
    wanted: &Option<Vec<(Option<String>, Option<String>)>>,
    own_port: Option<&str>,
) -> Result<Vec<FixedIp>, ApiError> {
    let subnets: Vec<&Subnet> = sorted(
        net.subnets.values().filter(|s| s.network_id == network_id),
        |s| s.c.seq,
    );
    let mut out: Vec<FixedIp> = Vec::new();
    let taken = |subnet_id: &str, ip: &str| {
        net.ports.values().any(|p| {
            Some(p.c.id.as_str()) != own_port
                && p.fixed_ips
                    .iter()
                    .any(|f| f.subnet_id == subnet_id && f.ip_address == ip)
        })
    };
    match wanted {
        None => {
            let pick = subnets
                .iter()
                .find(|s| s.ip_version == 4)
                .or(subnets.first());
            if let Some(s) = pick {
                let ip = allocate_ip(net, s, &[]).ok_or_else(|| {
                    conflict(
                        "IpAddressGenerationFailure",
                        format!("No more IP addresses available on network {network_id}."),
                    )
                })?;
                out.push(FixedIp {
                    subnet_id: s.c.id.clone(),
                    ip_address: ip,
                });
            }
        }
        Some(list) => {
            for (subnet_id, ip) in list {
                let subnet = match (subnet_id, ip) {
                    (Some(sid), _) => {
                        let s = subnets.iter().find(|s| &s.c.id == sid).ok_or_else(|| {
                            bad(format!("Invalid input for operation: Failed to create port on network {network_id}, because fixed_ips included invalid subnet {sid}."))
                        })?;
                        if let Some(ip) = ip {
                            let cidr = Cidr::parse(&s.cidr);
                            let ok = ip
                                .parse::<IpAddr>()
                                .ok()
                                .zip(cidr)
                                .is_some_and(|(a, c)| c.contains(a));
                            if !ok {
                                return Err(ApiError::neutron(StatusCode::BAD_REQUEST, "InvalidIpForSubnet", format!("IP address {ip} is not a valid IP for the specified subnet.")));
                            }
                        }
                        *s
                    }
                    (None, Some(ip)) => {
                        let addr: IpAddr = ip.parse().map_err(|_| {
                            bad(format!(
                                "Invalid input for operation: '{ip}' is not a valid IP address."
                            ))
                        })?;
                        subnets
                            .iter()
                            .find(|s| Cidr::parse(&s.cidr).is_some_and(|c| c.contains(addr)))
                            .copied()
                            .ok_or_else(|| ApiError::neutron(StatusCode::BAD_REQUEST, "InvalidIpForNetwork", format!("IP address {ip} is not a valid IP for any of the subnets on the specified network.")))?
                    }
                    (None, None) => continue,
                };
                let ip = match ip {
                    Some(ip) => {
                        let norm = ip
                            .parse::<IpAddr>()
                            .map(|a| a.to_string())
                            .unwrap_or_else(|_| ip.clone());
                        if taken(&subnet.c.id, &norm) || out.iter().any(|f| f.ip_address == norm) {
                            return Err(conflict(
                                "IpAddressAlreadyAllocated",
                                format!(
                                    "IP address {norm} already allocated in subnet {}",
                                    subnet.c.id
                                ),
                            ));
                        }
                        norm
                    }
                    None => {
                        // Skip addresses this same request already took.
                        allocate_ip(net, subnet, &out).ok_or_else(|| {
                            conflict(
                                "IpAddressGenerationFailure",
                                format!("No more IP addresses available on network {network_id}."),
                            )
                        })?
                    }
                };
                out.push(FixedIp {
                    subnet_id: subnet.c.id.clone(),
                    ip_address: ip,
                });
            }
        }
    }
    Ok(out)
}

/// Creates a port (Neutron's POST /ports and Nova's port creation); returns its id.
pub fn create_port(
    net: &mut NetworkData,
    seq: &mut u64,
    req: PortRequest,
) -> Result<String, ApiError> {
    let network = net
        .networks
        .get(&req.network_id)
        .ok_or_else(|| not_found("Network", &req.network_id))?;
    let port_security = req
        .port_security_enabled
        .unwrap_or(network.port_security_enabled);
    let mac = match req.mac_address.clone() {
        Some(m) => {
            let m = m.to_ascii_lowercase();
            if net
                .ports
                .values()
                .any(|p| p.network_id == req.network_id && p.mac_address == m)
            {
                return Err(conflict("MacAddressInUse", format!("Unable to complete operation for network {}. The mac address {m} is in use.", req.network_id)));
            }
            m
        }
        None => loop {
            let m = util::random_mac();
            if !net.ports.values().any(|p| p.mac_address == m) {
                break m;
            }
        },
    };
    let fixed_ips = resolve_fixed_ips(net, &req.network_id, &req.fixed_ips, None)?;
    let is_network_owned = req.device_owner.starts_with("network:");
    let security_groups = match req.security_groups.clone() {
        Some(g) => {
            for id in &g {
                if !net.security_groups.contains_key(id) {
                    return Err(not_found("SecurityGroup", id));
                }
            }
            g
        }
        None if port_security && !is_network_owned => {
            vec![ensure_default_security_group(net, &req.project_id, seq)]
        }
        None => vec![],
    };
    let mut c = Common::new(seq, &req.project_id, req.name, req.description);
    c.revision = 1;
    let status = if is_network_owned || !req.binding_host_id.is_empty() {
        "ACTIVE"
    } else {
        "DOWN"
    };
    let port = Port {
        c,
        network_id: req.network_id,
        mac_address: mac,
        admin_state_up: req.admin_state_up.unwrap_or(true),
        status: status.into(),
        device_id: req.device_id,
        device_owner: req.device_owner,
        fixed_ips,
        security_groups,
        allowed_address_pairs: req.allowed_address_pairs,
        binding_host_id: req.binding_host_id,
        binding_profile: req.binding_profile.unwrap_or_else(|| json!({})),
        binding_vnic_type: req.binding_vnic_type.unwrap_or_else(|| "normal".into()),
        port_security_enabled: port_security,
        dns_name: String::new(),
    };
    let id = port.c.id.clone();
    net.ports.insert(id.clone(), port);
    Ok(id)
}

/// Removes a port and whatever hangs on it (floating IP associations).
pub fn delete_port_record(net: &mut NetworkData, port_id: &str) {
    net.ports.remove(port_id);
    for f in net.floating_ips.values_mut() {
        if f.port_id.as_deref() == Some(port_id) {
            f.port_id = None;
            f.fixed_ip_address = None;
            f.router_id = None;
            f.c.touch();
        }
    }
}

/// Marks a server's ports bound and active (the server became ACTIVE on `host`).
pub fn bind_server_ports(net: &mut NetworkData, server_id: &str, host: &str) {
    for p in net.ports.values_mut().filter(|p| p.device_id == server_id) {
        p.binding_host_id = host.to_string();
        p.status = "ACTIVE".into();
        p.c.touch();
    }
}

/// Releases a deleted server's ports: the ones Nova created are deleted, pre-created ones are
/// unbound and kept (as Nova does).
pub fn release_server_ports(net: &mut NetworkData, server_id: &str, created: &[String]) {
    let ids: Vec<String> = net
        .ports
        .values()
        .filter(|p| p.device_id == server_id)
        .map(|p| p.c.id.clone())
        .collect();
    for id in ids {
        if created.contains(&id) {
            delete_port_record(net, &id);
        } else if let Some(p) = net.ports.get_mut(&id) {
            p.device_id.clear();
            p.device_owner.clear();
            p.binding_host_id.clear();
            p.status = "DOWN".into();
            p.c.touch();
        }
    }
}

async fn list_ports(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.read(|c| {
        sorted(
            c.network
                .ports
                .values()
                .filter(|p| visible(&ctx, &p.c.project_id)),
            |p| p.c.seq,
        )
        .into_iter()
        .map(render_port)
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "ports", items)
}

async fn show_port(ctx: Ctx, Path(id): Path<String>, q: Q) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let p = c
            .network
            .ports
            .get(&id)
            .filter(|p| visible(&ctx, &p.c.project_id))
            .ok_or_else(|| not_found("Port", &id))?;
        Ok(http::ok(
            json!({"port": select_fields(render_port(p), &q.all("fields"))}),
        ))
    })
}

/// Requested fixed IPs as `(subnet_id, ip_address)` pairs.
type FixedIpRequest = Vec<(Option<String>, Option<String>)>;

fn parse_fixed_ips(spec: &Value) -> Result<Option<FixedIpRequest>, ApiError> {
    match spec.get("fixed_ips") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| Ok((s(i, "subnet_id")?, s(i, "ip_address")?)))
            .collect::<Result<Vec<_>, ApiError>>()
            .map(Some),
        Some(_) => Err(bad("Invalid input for fixed_ips. Reason: not a list.")),
    }
}

async fn create_port_api(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "port")?.clone();
    let network_id = s(&spec, "network_id")?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'network_id' not specified")
    })?;
    let req = PortRequest {
        network_id,
        project_id: owner(&ctx, &spec)?,
        name: s(&spec, "name")?.unwrap_or_default(),
        description: s(&spec, "description")?.unwrap_or_default(),
        fixed_ips: parse_fixed_ips(&spec)?,
        mac_address: s(&spec, "mac_address")?,
        security_groups: util::opt_str_list(&spec, "security_groups")
            .map_err(|e| bad(e.message))?,
        device_id: s(&spec, "device_id")?.unwrap_or_default(),
        device_owner: s(&spec, "device_owner")?.unwrap_or_default(),
        binding_host_id: s(&spec, "binding:host_id")?.unwrap_or_default(),
        binding_profile: spec
            .get("binding:profile")
            .filter(|v| v.is_object())
            .cloned(),
        binding_vnic_type: s(&spec, "binding:vnic_type")?,
        port_security_enabled: b(&spec, "port_security_enabled")?,
        admin_state_up: b(&spec, "admin_state_up")?,
        allowed_address_pairs: spec
            .get("allowed_address_pairs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    };
    if let Some(m) = &req.mac_address {
        if m.split(':').count() != 6
            || m.split(':')
                .any(|o| o.len() != 2 || u8::from_str_radix(o, 16).is_err())
        {
            return Err(bad(format!(
                "Invalid input for mac_address. Reason: '{m}' is not a valid MAC address."
            )));
        }
    }
    let tags = util::opt_str_list(&spec, "tags").map_err(|e| bad(e.message))?;
    ctx.write(|c, seq| {
        let id = create_port(&mut c.network, seq, req)?;
        let p = c
            .network
            .ports
            .get_mut(&id)
            .ok_or_else(|| ApiError::internal("port vanished"))?;
        if let Some(t) = tags {
            p.c.tags = t;
        }
        Ok(http::json(
            StatusCode::CREATED,
            json!({"port": render_port(p)}),
        ))
    })
}

async fn update_port(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = body_of(&body, "port")?.clone();
    ctx.write(|c, _| {
        let net = &mut c.network;
        let cur = net.ports.get(&id).filter(|p| visible(&ctx, &p.c.project_id)).ok_or_else(|| not_found("Port", &id))?.clone();
        let fixed = match parse_fixed_ips(&spec)? {
            Some(wanted) => Some(resolve_fixed_ips(net, &cur.network_id, &Some(wanted), Some(&id))?),
            None => None,
        };
        if let Some(groups) = util::opt_str_list(&spec, "security_groups").map_err(|e| bad(e.message))? {
            for g in &groups {
                if !net.security_groups.contains_key(g) {
                    return Err(not_found("SecurityGroup", g));
                }
            }
        }
        if let Some(m) = s(&spec, "mac_address")? {
            let m = m.to_ascii_lowercase();
            if m != cur.mac_address {
                if !cur.binding_host_id.is_empty() {
                    return Err(conflict("PortBound", format!("Unable to complete operation on port {id}, port is already bound, port type: ovs, old_mac {}, new_mac {m}.", cur.mac_address)));
                }
                if net.ports.values().any(|p| p.network_id == cur.network_id && p.mac_address == m) {
                    return Err(conflict("MacAddressInUse", format!("Unable to complete operation for network {}. The mac address {m} is in use.", cur.network_id)));
                }
            }
        }
        let p = net.ports.get_mut(&id).ok_or_else(|| not_found("Port", &id))?;
        if let Some(v) = s(&spec, "name")? {
            p.c.name = v;
        }
        if let Some(v) = s(&spec, "description")? {
            p.c.description = v;
        }
        if let Some(v) = b(&spec, "admin_state_up")? {
            p.admin_state_up = v;
        }
        if let Some(v) = s(&spec, "device_id")? {
            p.device_id = v;
        }
        if let Some(v) = s(&spec, "device_owner")? {
            p.device_owner = v;
        }
        if let Some(f) = fixed {
            p.fixed_ips = f;
        }
        if let Some(g) = util::opt_str_list(&spec, "security_groups").map_err(|e| bad(e.message))? {
            p.security_groups = g;
        }
        if let Some(v) = s(&spec, "binding:host_id")? {
            p.status = if v.is_empty() { "DOWN".into() } else { "ACTIVE".into() };
            p.binding_host_id = v;
        }
        if let Some(v) = spec.get("binding:profile") {
            p.binding_profile = if v.is_null() { json!({}) } else { v.clone() };
        }
        if let Some(v) = s(&spec, "binding:vnic_type")? {
            p.binding_vnic_type = v;
        }
        if let Some(v) = b(&spec, "port_security_enabled")? {
            p.port_security_enabled = v;
        }
        if let Some(m) = s(&spec, "mac_address")? {
            p.mac_address = m.to_ascii_lowercase();
        }
        if let Some(Value::Array(a)) = spec.get("allowed_address_pairs") {
            p.allowed_address_pairs = a.clone();
        }
        p.c.touch();
        Ok(http::ok(json!({"port": render_port(p)})))
    })
}

async fn delete_port(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let server = ctx.write(|c, _| {
        let p = c
            .network
            .ports
            .get(&id)
            .filter(|p| visible(&ctx, &p.c.project_id))
            .ok_or_else(|| not_found("Port", &id))?;
        if p.device_owner == "network:router_interface"
            || p.device_owner == "network:router_gateway"
            || p.device_owner == "network:floatingip"
        {
            return Err(conflict(
                "L3PortInUse",
                format!(
                    "Port {id} cannot be deleted directly via the port API: has device owner {}.",
                    p.device_owner
                ),
            ));
        }
        let server = p
            .device_owner
            .starts_with("compute:")
            .then(|| p.device_id.clone());
        delete_port_record(&mut c.network, &id);
        Ok(server)
    })?;
    if let Some(sid) = server {
        crate::jobs::refresh_host(&ctx.sim, &ctx.cloud, &sid).await;
    }
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/network/v2.0/ports", get(list_ports).post(create_port_api))
        .route(
            "/network/v2.0/ports/{id}",
            get(show_port).put(update_port).delete(delete_port),
        )
}
