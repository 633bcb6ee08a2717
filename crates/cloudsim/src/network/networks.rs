//! Networks: the record, its rendering, list, show, create, update, delete.

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
use crate::util;

use super::listing::{list_response, select_fields, sorted};
use super::subnets::Subnet;
use super::{b, bad, body_of, conflict, n, not_found, owner, s, visible, Common, NetworkData};

/// A network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    /// Common fields.
    #[serde(flatten)]
    pub c: Common,
    /// admin_state_up.
    pub admin_state_up: bool,
    /// shared.
    pub shared: bool,
    /// router:external.
    pub external: bool,
    /// MTU.
    pub mtu: u64,
    /// port_security_enabled.
    pub port_security_enabled: bool,
    /// provider:network_type.
    pub network_type: String,
    /// provider:physical_network.
    pub physical_network: Option<String>,
    /// provider:segmentation_id.
    pub segmentation_id: Option<u64>,
    /// availability_zone_hints.
    pub az_hints: Vec<String>,
    /// dns_domain.
    #[serde(default)]
    pub dns_domain: String,
}

fn render_network(n: &Network, net: &NetworkData) -> Value {
    let mut m = n.c.render();
    let subnets: Vec<&str> = {
        let mut s: Vec<&Subnet> = net
            .subnets
            .values()
            .filter(|s| s.network_id == n.c.id)
            .collect();
        s.sort_by_key(|s| s.c.seq);
        s.iter().map(|s| s.c.id.as_str()).collect()
    };
    m.insert("status".into(), json!("ACTIVE"));
    m.insert("subnets".into(), json!(subnets));
    m.insert("admin_state_up".into(), json!(n.admin_state_up));
    m.insert("shared".into(), json!(n.shared));
    m.insert("router:external".into(), json!(n.external));
    m.insert("mtu".into(), json!(n.mtu));
    m.insert(
        "port_security_enabled".into(),
        json!(n.port_security_enabled),
    );
    m.insert("provider:network_type".into(), json!(n.network_type));
    m.insert(
        "provider:physical_network".into(),
        json!(n.physical_network),
    );
    m.insert("provider:segmentation_id".into(), json!(n.segmentation_id));
    m.insert("availability_zone_hints".into(), json!(n.az_hints));
    m.insert("availability_zones".into(), json!(["nova"]));
    m.insert("ipv4_address_scope".into(), Value::Null);
    m.insert("ipv6_address_scope".into(), Value::Null);
    m.insert("is_default".into(), json!(false));
    m.insert("l2_adjacency".into(), json!(true));
    m.insert("qos_policy_id".into(), Value::Null);
    m.insert("dns_domain".into(), json!(n.dns_domain));
    Value::Object(m)
}

async fn list_networks(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.read(|c| {
        sorted(
            c.network
                .networks
                .values()
                .filter(|n| visible(&ctx, &n.c.project_id) || n.shared || n.external),
            |n| n.c.seq,
        )
        .into_iter()
        .map(|n| render_network(n, &c.network))
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "networks", items)
}

async fn show_network(ctx: Ctx, Path(id): Path<String>, q: Q) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let n = c
            .network
            .networks
            .get(&id)
            .filter(|n| visible(&ctx, &n.c.project_id) || n.shared || n.external)
            .ok_or_else(|| not_found("Network", &id))?;
        Ok(http::ok(
            json!({"network": select_fields(render_network(n, &c.network), &q.all("fields"))}),
        ))
    })
}

async fn create_network(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "network")?;
    let project = owner(&ctx, spec)?;
    let external = b(spec, "router:external")?.unwrap_or(false);
    let shared = b(spec, "shared")?.unwrap_or(false);
    if (external || shared) && !ctx.is_admin() {
        return Err(ApiError::neutron(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "(rule:create_network:router:external) is disallowed by policy",
        ));
    }
    let name = s(spec, "name")?.unwrap_or_default();
    let description = s(spec, "description")?.unwrap_or_default();
    let ntype = s(spec, "provider:network_type")?;
    let physnet = s(spec, "provider:physical_network")?;
    let segid = n(spec, "provider:segmentation_id")?;
    let mtu = n(spec, "mtu")?;
    let admin_state_up = b(spec, "admin_state_up")?.unwrap_or(true);
    let port_security = b(spec, "port_security_enabled")?.unwrap_or(true);
    let az_hints = util::opt_str_list(spec, "availability_zone_hints")
        .map_err(|e| bad(e.message))?
        .unwrap_or_default();
    let dns_domain = s(spec, "dns_domain")?.unwrap_or_default();
    ctx.write(|c, seq| {
        let net = &mut c.network;
        let (ntype, segid) = match ntype.as_deref() {
            None | Some("vxlan") | Some("geneve") => {
                let id = segid.unwrap_or_else(|| {
                    net.next_segment += 1;
                    net.next_segment
                });
                (ntype.unwrap_or_else(|| "vxlan".into()), Some(id))
            }
            Some("flat") | Some("local") => (ntype.unwrap_or_default(), None),
            Some(other) => (other.to_string(), segid),
        };
        let mtu = mtu.unwrap_or(if ntype == "vxlan" || ntype == "geneve" {
            1450
        } else {
            1500
        });
        let mut com = Common::new(seq, &project, name, description);
        com.revision = 1;
        let network = Network {
            c: com,
            admin_state_up,
            shared,
            external,
            mtu,
            port_security_enabled: port_security,
            network_type: ntype,
            physical_network: physnet,
            segmentation_id: segid,
            az_hints,
            dns_domain,
        };
        let v = render_network(&network, net);
        net.networks.insert(network.c.id.clone(), network);
        Ok(http::json(StatusCode::CREATED, json!({"network": v})))
    })
}

async fn update_network(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = body_of(&body, "network")?.clone();
    ctx.write(|c, _| {
        let net = &mut c.network;
        let n = net
            .networks
            .get_mut(&id)
            .filter(|n| visible(&ctx, &n.c.project_id))
            .ok_or_else(|| not_found("Network", &id))?;
        if let Some(v) = s(&spec, "name")? {
            n.c.name = v;
        }
        if let Some(v) = s(&spec, "description")? {
            n.c.description = v;
        }
        if let Some(v) = b(&spec, "admin_state_up")? {
            n.admin_state_up = v;
        }
        if let Some(v) = b(&spec, "shared")? {
            n.shared = v;
        }
        if let Some(v) = b(&spec, "router:external")? {
            n.external = v;
        }
        if let Some(v) = n_opt(&spec, "mtu")? {
            n.mtu = v;
        }
        if let Some(v) = b(&spec, "port_security_enabled")? {
            n.port_security_enabled = v;
        }
        n.c.touch();
        let n = n.clone();
        Ok(http::ok(json!({"network": render_network(&n, net)})))
    })
}

fn n_opt(spec: &Value, key: &str) -> Result<Option<u64>, ApiError> {
    n(spec, key)
}

async fn delete_network(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let net = &mut c.network;
        if !net.networks.get(&id).is_some_and(|n| visible(&ctx, &n.c.project_id)) {
            return Err(not_found("Network", &id));
        }
        if net.ports.values().any(|p| p.network_id == id) {
            return Err(conflict("NetworkInUse", format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network.")));
        }
        net.subnets.retain(|_, s| s.network_id != id);
        net.networks.remove(&id);
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route(
            "/network/v2.0/networks",
            get(list_networks).post(create_network),
        )
        .route(
            "/network/v2.0/networks/{id}",
            get(show_network).put(update_network).delete(delete_network),
        )
}
