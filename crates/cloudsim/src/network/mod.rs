//! Neutron v2.0, one file per resource family: `networks.rs`, `subnets.rs`, `ports.rs` (with IP
//! and MAC allocation), `security_groups.rs` and their rules, `routers.rs` with interfaces and
//! gateways, `floating_ips.rs`, `qos.rs` (QoS policies), `tags.rs`, plus `addresses.rs` (a server's addresses as Nova shows
//! them) and `quotas.rs` (extensions, availability zones, quotas). `listing.rs` filters, sorts,
//! paginates and selects fields for every collection. This module holds the per-cloud data, the
//! fields every resource has, the route table and the validation helpers the families share.
//!
//! Resources are rendered to JSON once and then filtered generically (`name=x`, `id=a&id=b`,
//! `fixed_ips=ip_address=...`, `tags=`, `fields=`), as Neutron's API layer does for any
//! attribute.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, CloudCtx, Ctx};
use crate::sim::Sim;
use crate::util::{self, Ts};

mod addresses;
mod floating_ips;
mod listing;
mod networks;
mod ports;
mod qos;
mod quotas;
mod routers;
mod security_groups;
mod subnets;
mod tags;

pub use addresses::{all_fip_addresses, loopback_fips_of_server, AddrIndex};
pub use floating_ips::FloatingIp;
pub use networks::Network;
pub use ports::{
    bind_server_ports, create_port, delete_port_record, release_server_ports, FixedIp, Port,
    PortRequest,
};
pub use qos::QosPolicy;
pub use routers::{Gateway, Router};
pub use security_groups::{
    ensure_default_security_group, find_security_group, nova_security_groups, SecurityGroup, SgRule,
};
pub use subnets::Subnet;

/// One cloud's Neutron data.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct NetworkData {
    /// Networks.
    pub networks: BTreeMap<String, Network>,
    /// Subnets.
    pub subnets: BTreeMap<String, Subnet>,
    /// Ports.
    pub ports: BTreeMap<String, Port>,
    /// Security groups.
    pub security_groups: BTreeMap<String, SecurityGroup>,
    /// Rules.
    pub sg_rules: BTreeMap<String, SgRule>,
    /// Routers.
    pub routers: BTreeMap<String, Router>,
    /// Floating IPs.
    pub floating_ips: BTreeMap<String, FloatingIp>,
    /// QoS policies.
    #[serde(default)]
    pub qos_policies: BTreeMap<String, QosPolicy>,
    /// Next VXLAN segmentation id.
    #[serde(default)]
    pub next_segment: u64,
}

/// Fields every Neutron resource has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Common {
    /// UUID.
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Owner.
    pub project_id: String,
    /// Tags (standard-attr-tag).
    pub tags: Vec<String>,
    /// Created.
    pub created: Ts,
    /// Updated.
    pub updated: Ts,
    /// revision_number.
    pub revision: u64,
}

impl Common {
    fn new(seq: &mut u64, project_id: &str, name: String, description: String) -> Common {
        *seq += 1;
        let now = util::now();
        Common {
            id: util::new_id(),
            seq: *seq,
            name,
            description,
            project_id: project_id.to_string(),
            tags: vec![],
            created: now,
            updated: now,
            revision: 0,
        }
    }

    fn touch(&mut self) {
        self.updated = util::now();
        self.revision += 1;
    }

    fn render(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("description".into(), json!(self.description));
        m.insert("tenant_id".into(), json!(self.project_id));
        m.insert("project_id".into(), json!(self.project_id));
        m.insert("tags".into(), json!(self.tags));
        m.insert("created_at".into(), json!(util::iso(&self.created)));
        m.insert("updated_at".into(), json!(util::iso(&self.updated)));
        m.insert("revision_number".into(), json!(self.revision));
        m
    }
}

fn not_found(kind: &str, id: &str) -> ApiError {
    ApiError::neutron(
        StatusCode::NOT_FOUND,
        &format!("{kind}NotFound"),
        format!("{kind} {id} could not be found."),
    )
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::neutron(StatusCode::BAD_REQUEST, "HTTPBadRequest", msg)
}

fn conflict(kind: &str, msg: impl Into<String>) -> ApiError {
    ApiError::neutron(StatusCode::CONFLICT, kind, msg)
}

fn visible(ctx: &Ctx, project: &str) -> bool {
    // An admin sees every project's resources, as in Neutron.
    ctx.is_admin() || project == ctx.project_id
}

fn body_of<'a>(body: &'a Value, key: &str) -> Result<&'a Value, ApiError> {
    match body.get(key) {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad(format!(
            "Resource body required, or not a {key} object."
        ))),
    }
}

fn owner(ctx: &Ctx, spec: &Value) -> Result<String, ApiError> {
    let p = util::opt_str(spec, "project_id")?.or(util::opt_str(spec, "tenant_id")?);
    Ok(p.unwrap_or_else(|| ctx.project_id.clone()))
}

fn s(spec: &Value, key: &str) -> Result<Option<String>, ApiError> {
    util::opt_str(spec, key).map_err(|e| bad(e.message))
}

fn b(spec: &Value, key: &str) -> Result<Option<bool>, ApiError> {
    util::opt_bool(spec, key).map_err(|e| bad(e.message))
}

fn n(spec: &Value, key: &str) -> Result<Option<u64>, ApiError> {
    util::opt_u64(spec, key).map_err(|e| bad(e.message))
}

/// Neutron routes.
pub fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/network", get(versions))
        .route("/network/v2.0", get(resources))
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(ports::routes())
        .merge(security_groups::routes())
        .merge(routers::routes())
        .merge(floating_ips::routes())
        .merge(qos::routes())
        .merge(tags::routes())
        .merge(quotas::routes())
}

async fn versions(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    let href = format!("{}/{}/network/v2.0/", sim.base_url, cc.cloud);
    http::ok(
        json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}]}),
    )
}

async fn resources(ctx: Ctx) -> Response {
    let items: Vec<Value> = [("network", "networks"), ("subnet", "subnets"), ("port", "ports"), ("router", "routers"), ("floatingip", "floatingips"), ("security_group", "security-groups"), ("security_group_rule", "security-group-rules")]
        .iter()
        .map(|(n, c)| json!({"name": n, "collection": c, "links": [{"rel": "self", "href": ctx.url(&format!("/network/v2.0/{c}"))}]}))
        .collect();
    http::ok(json!({"resources": items}))
}
