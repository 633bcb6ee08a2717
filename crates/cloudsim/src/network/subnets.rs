//! Subnets: the record, its rendering, allocation pools, list, show, create, update, delete.

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
use super::{b, bad, body_of, conflict, n, not_found, owner, s, visible, Common};

/// A subnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subnet {
    /// Common fields.
    #[serde(flatten)]
    pub c: Common,
    /// Network.
    pub network_id: String,
    /// CIDR.
    pub cidr: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Gateway (none when null).
    pub gateway_ip: Option<String>,
    /// Allocation pools `(start, end)`.
    pub allocation_pools: Vec<(String, String)>,
    /// enable_dhcp.
    pub enable_dhcp: bool,
    /// DNS servers.
    pub dns_nameservers: Vec<String>,
    /// Host routes.
    pub host_routes: Vec<Value>,
    /// IPv6 modes.
    pub ipv6_ra_mode: Option<String>,
    /// IPv6 modes.
    pub ipv6_address_mode: Option<String>,
}

fn render_subnet(s: &Subnet) -> Value {
    let mut m = s.c.render();
    m.insert("network_id".into(), json!(s.network_id));
    m.insert("cidr".into(), json!(s.cidr));
    m.insert("ip_version".into(), json!(s.ip_version));
    m.insert("gateway_ip".into(), json!(s.gateway_ip));
    m.insert(
        "allocation_pools".into(),
        json!(s
            .allocation_pools
            .iter()
            .map(|(a, b)| json!({"start": a, "end": b}))
            .collect::<Vec<_>>()),
    );
    m.insert("enable_dhcp".into(), json!(s.enable_dhcp));
    m.insert("dns_nameservers".into(), json!(s.dns_nameservers));
    m.insert("host_routes".into(), json!(s.host_routes));
    m.insert("ipv6_ra_mode".into(), json!(s.ipv6_ra_mode));
    m.insert("ipv6_address_mode".into(), json!(s.ipv6_address_mode));
    m.insert("subnetpool_id".into(), Value::Null);
    m.insert("segment_id".into(), Value::Null);
    m.insert("service_types".into(), json!([]));
    m.insert("dns_publish_fixed_ip".into(), json!(false));
    Value::Object(m)
}

async fn list_subnets(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.read(|c| {
        let net = &c.network;
        sorted(
            net.subnets.values().filter(|s| {
                visible(&ctx, &s.c.project_id)
                    || net
                        .networks
                        .get(&s.network_id)
                        .is_some_and(|n| n.shared || n.external)
            }),
            |s| s.c.seq,
        )
        .into_iter()
        .map(render_subnet)
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "subnets", items)
}

async fn show_subnet(ctx: Ctx, Path(id): Path<String>, q: Q) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let s = c
            .network
            .subnets
            .get(&id)
            .ok_or_else(|| not_found("Subnet", &id))?;
        Ok(http::ok(
            json!({"subnet": select_fields(render_subnet(s), &q.all("fields"))}),
        ))
    })
}

fn parse_pools(spec: &Value, cidr: &Cidr) -> Result<Option<Vec<(String, String)>>, ApiError> {
    let Some(Value::Array(pools)) = spec.get("allocation_pools") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for p in pools {
        let start = p
            .get("start")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("Invalid input for allocation_pools: start is required"))?;
        let end = p
            .get("end")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("Invalid input for allocation_pools: end is required"))?;
        let (Ok(a), Ok(z)) = (start.parse::<IpAddr>(), end.parse::<IpAddr>()) else {
            return Err(bad(format!(
                "Invalid input for allocation_pools: {start}-{end}"
            )));
        };
        if !cidr.contains(a) || !cidr.contains(z) || cidr.to_int(a) > cidr.to_int(z) {
            return Err(ApiError::neutron(
                StatusCode::BAD_REQUEST,
                "OutOfBoundsAllocationPool",
                format!("The allocation pool {start}-{end} spans beyond the subnet cidr {cidr}."),
            ));
        }
        out.push((a.to_string(), z.to_string()));
    }
    Ok(Some(out))
}

async fn create_subnet(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "subnet")?.clone();
    let network_id = s(&spec, "network_id")?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'network_id' not specified")
    })?;
    let cidr_s = s(&spec, "cidr")?.ok_or_else(|| {
        bad("Bad subnets request: a cidr is required (subnet pools are not simulated).")
    })?;
    let cidr = Cidr::parse(&cidr_s).ok_or_else(|| {
        bad(format!(
            "Invalid input for cidr. Reason: '{cidr_s}' is not a valid IP subnet."
        ))
    })?;
    let ip_version = n(&spec, "ip_version")?.unwrap_or(cidr.version() as u64) as u8;
    if ip_version != cidr.version() {
        return Err(bad(
            "Invalid input for operation: cidr and ip_version do not match.",
        ));
    }
    let (first, last) = cidr.range();
    let gateway = match spec.get("gateway_ip") {
        Some(Value::Null) => None,
        Some(Value::String(g)) => {
            let a: IpAddr = g.parse().map_err(|_| {
                bad(format!(
                    "Invalid input for gateway_ip. Reason: '{g}' is not a valid IP address."
                ))
            })?;
            Some(a.to_string())
        }
        Some(_) => return Err(bad("Invalid input for gateway_ip.")),
        None => Some(cidr.from_int(first + 1).to_string()),
    };
    let pools = match parse_pools(&spec, &cidr)? {
        Some(p) => p,
        None => {
            // Everything but the network, broadcast (IPv4) and gateway addresses.
            let lo = first + 1;
            let hi = if cidr.version() == 4 {
                last.saturating_sub(1)
            } else {
                last
            };
            let gw = gateway
                .as_ref()
                .and_then(|g| g.parse::<IpAddr>().ok())
                .map(|a| cidr.to_int(a));
            let mut pools = vec![];
            match gw {
                Some(g) if g >= lo && g <= hi => {
                    if g > lo {
                        pools.push((
                            cidr.from_int(lo).to_string(),
                            cidr.from_int(g - 1).to_string(),
                        ));
                    }
                    if g < hi {
                        pools.push((
                            cidr.from_int(g + 1).to_string(),
                            cidr.from_int(hi).to_string(),
                        ));
                    }
                }
                _ => {
                    if lo <= hi {
                        pools.push((cidr.from_int(lo).to_string(), cidr.from_int(hi).to_string()));
                    }
                }
            }
            pools
        }
    };
    let project = owner(&ctx, &spec)?;
    let name = s(&spec, "name")?.unwrap_or_default();
    let description = s(&spec, "description")?.unwrap_or_default();
    let enable_dhcp = b(&spec, "enable_dhcp")?.unwrap_or(true);
    let dns = util::opt_str_list(&spec, "dns_nameservers")
        .map_err(|e| bad(e.message))?
        .unwrap_or_default();
    let host_routes = spec
        .get("host_routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ra = s(&spec, "ipv6_ra_mode")?;
    let am = s(&spec, "ipv6_address_mode")?;
    ctx.write(|c, seq| {
        let net = &mut c.network;
        if !net.networks.contains_key(&network_id) {
            return Err(not_found("Network", &network_id));
        }
        if let Some(other) = net.subnets.values().find(|x| {
            x.network_id == network_id && Cidr::parse(&x.cidr).is_some_and(|o| o.contains(cidr.addr) || cidr.contains(o.addr))
        }) {
            return Err(bad(format!("Invalid input for operation: Requested subnet with cidr: {cidr} for network: {network_id} overlaps with another subnet {}.", other.c.id)));
        }
        let mut com = Common::new(seq, &project, name, description);
        com.revision = 1;
        let subnet = Subnet {
            c: com,
            network_id: network_id.clone(),
            cidr: cidr.to_string(),
            ip_version,
            gateway_ip: gateway,
            allocation_pools: pools,
            enable_dhcp,
            dns_nameservers: dns,
            host_routes,
            ipv6_ra_mode: ra,
            ipv6_address_mode: am,
        };
        let v = render_subnet(&subnet);
        net.subnets.insert(subnet.c.id.clone(), subnet);
        if let Some(n) = net.networks.get_mut(&network_id) {
            n.c.touch();
        }
        Ok(http::json(StatusCode::CREATED, json!({"subnet": v})))
    })
}

async fn update_subnet(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = body_of(&body, "subnet")?.clone();
    ctx.write(|c, _| {
        let sn = c
            .network
            .subnets
            .get_mut(&id)
            .ok_or_else(|| not_found("Subnet", &id))?;
        let cidr =
            Cidr::parse(&sn.cidr).ok_or_else(|| ApiError::internal("stored CIDR is invalid"))?;
        if let Some(v) = s(&spec, "name")? {
            sn.c.name = v;
        }
        if let Some(v) = s(&spec, "description")? {
            sn.c.description = v;
        }
        if let Some(v) = b(&spec, "enable_dhcp")? {
            sn.enable_dhcp = v;
        }
        match spec.get("gateway_ip") {
            Some(Value::Null) => sn.gateway_ip = None,
            Some(Value::String(g)) => sn.gateway_ip = Some(g.clone()),
            _ => {}
        }
        if let Some(p) = parse_pools(&spec, &cidr)? {
            sn.allocation_pools = p;
        }
        if let Some(d) = util::opt_str_list(&spec, "dns_nameservers").map_err(|e| bad(e.message))? {
            sn.dns_nameservers = d;
        }
        if let Some(Value::Array(r)) = spec.get("host_routes") {
            sn.host_routes = r.clone();
        }
        sn.c.touch();
        Ok(http::ok(json!({"subnet": render_subnet(sn)})))
    })
}

async fn delete_subnet(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let net = &mut c.network;
        if !net.subnets.contains_key(&id) {
            return Err(not_found("Subnet", &id));
        }
        if net.ports.values().any(|p| p.fixed_ips.iter().any(|f| f.subnet_id == id)) {
            return Err(conflict("SubnetInUse", format!("Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet.")));
        }
        net.subnets.remove(&id);
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route(
            "/network/v2.0/subnets",
            get(list_subnets).post(create_subnet),
        )
        .route(
            "/network/v2.0/subnets/{id}",
            get(show_subnet).put(update_subnet).delete(delete_subnet),
        )
}
