//! Neutron v2.0: networks, subnets, ports (with IP and MAC allocation), security groups and
//! rules, routers with interfaces and gateways, floating IPs, tags, filters and pagination.
//!
//! Resources are rendered to JSON once and then filtered generically (`name=x`, `id=a&id=b`,
//! `fixed_ips=ip_address=...`, `tags=`, `fields=`), as Neutron's API layer does for any
//! attribute.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, CloudCtx, Ctx, JsonBody, Q};
use crate::sim::Sim;
use crate::state::Cloud;
use crate::util::{self, Cidr, Ts};

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

/// One fixed IP of a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedIp {
    /// Subnet.
    pub subnet_id: String,
    /// Address.
    pub ip_address: String,
}

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

/// A security group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// Common fields.
    #[serde(flatten)]
    pub c: Common,
    /// stateful.
    pub stateful: bool,
}

/// A security group rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SgRule {
    /// Common fields (name unused).
    #[serde(flatten)]
    pub c: Common,
    /// Group.
    pub security_group_id: String,
    /// ingress / egress.
    pub direction: String,
    /// IPv4 / IPv6.
    pub ethertype: String,
    /// Protocol.
    pub protocol: Option<String>,
    /// Port range.
    pub port_range_min: Option<u64>,
    /// Port range.
    pub port_range_max: Option<u64>,
    /// Remote prefix.
    pub remote_ip_prefix: Option<String>,
    /// Remote group.
    pub remote_group_id: Option<String>,
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
}

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
    /// Next VXLAN segmentation id.
    #[serde(default)]
    pub next_segment: u64,
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

fn default_rule(
    seq: &mut u64,
    project: &str,
    sg: &str,
    direction: &str,
    ethertype: &str,
    remote_group: Option<&str>,
) -> SgRule {
    SgRule {
        c: Common::new(seq, project, String::new(), String::new()),
        security_group_id: sg.to_string(),
        direction: direction.into(),
        ethertype: ethertype.into(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: remote_group.map(str::to_string),
    }
}

/// Creates the project's `default` security group (egress anywhere, ingress from the group
/// itself, for IPv4 and IPv6) unless it exists; returns its id.
pub fn ensure_default_security_group(
    net: &mut NetworkData,
    project: &str,
    seq: &mut u64,
) -> String {
    if let Some(sg) = net
        .security_groups
        .values()
        .find(|g| g.c.name == "default" && g.c.project_id == project)
    {
        return sg.c.id.clone();
    }
    let sg = SecurityGroup {
        c: Common::new(
            seq,
            project,
            "default".into(),
            "Default security group".into(),
        ),
        stateful: true,
    };
    let id = sg.c.id.clone();
    for (dir, eth, remote) in [
        ("egress", "IPv4", None),
        ("egress", "IPv6", None),
        ("ingress", "IPv4", Some(id.as_str())),
        ("ingress", "IPv6", Some(id.as_str())),
    ] {
        let r = default_rule(seq, project, &id, dir, eth, remote);
        net.sg_rules.insert(r.c.id.clone(), r);
    }
    net.security_groups.insert(id.clone(), sg);
    id
}

// ---------------------------------------------------------------------------------------------
// Rendering

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

fn render_rule(r: &SgRule) -> Value {
    let mut m = r.c.render();
    m.remove("name");
    m.remove("tags");
    m.insert("security_group_id".into(), json!(r.security_group_id));
    m.insert("direction".into(), json!(r.direction));
    m.insert("ethertype".into(), json!(r.ethertype));
    m.insert("protocol".into(), json!(r.protocol));
    m.insert("port_range_min".into(), json!(r.port_range_min));
    m.insert("port_range_max".into(), json!(r.port_range_max));
    m.insert("remote_ip_prefix".into(), json!(r.remote_ip_prefix));
    m.insert("remote_group_id".into(), json!(r.remote_group_id));
    m.insert("remote_address_group_id".into(), Value::Null);
    m.insert(
        "normalized_cidr".into(),
        json!(r
            .remote_ip_prefix
            .as_ref()
            .and_then(|p| Cidr::parse(p))
            .map(|c| c.to_string())),
    );
    m.insert("belongs_to_default_sg".into(), Value::Null);
    Value::Object(m)
}

fn render_sg(g: &SecurityGroup, net: &NetworkData) -> Value {
    let mut m = g.c.render();
    let mut rules: Vec<&SgRule> = net
        .sg_rules
        .values()
        .filter(|r| r.security_group_id == g.c.id)
        .collect();
    rules.sort_by_key(|r| r.c.seq);
    m.insert(
        "security_group_rules".into(),
        json!(rules.iter().map(|r| render_rule(r)).collect::<Vec<_>>()),
    );
    m.insert("stateful".into(), json!(g.stateful));
    m.insert("shared".into(), json!(false));
    Value::Object(m)
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
    m.insert("qos_policy_id".into(), Value::Null);
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

// ---------------------------------------------------------------------------------------------
// Listing: filters, sorting, pagination, fields

const RESERVED: &[&str] = &[
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "fields",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "page_reverse",
    "fixed_ips",
    "ip_address",
    "subnet_id",
];

fn value_matches(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => util::parse_bool_str(want) == Some(*b) && !want.is_empty(),
        Value::Number(n) => n.to_string() == want,
        Value::Null => want.is_empty() || want == "None" || want == "null",
        Value::Array(items) => items.iter().any(|i| value_matches(i, want)),
        Value::Object(_) => *v.to_string() == *want,
    }
}

fn tags_of(item: &Value) -> HashSet<&str> {
    item.get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn split_tags(q: &Q, key: &str) -> Vec<String> {
    q.all(key)
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn passes(item: &Value, q: &Q) -> bool {
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, v) in &q.0 {
        if !RESERVED.contains(&k.as_str()) {
            by_key.entry(k.as_str()).or_default().push(v.as_str());
        }
    }
    for (k, wants) in by_key {
        let Some(v) = item.get(k) else { continue };
        if !wants.iter().any(|w| value_matches(v, w)) {
            return false;
        }
    }
    // fixed_ips=ip_address=1.2.3.4 / fixed_ips=subnet_id=X (and the sdk's ip_address= / subnet_id=).
    let mut fixed: Vec<(String, String)> = q
        .all("fixed_ips")
        .iter()
        .filter_map(|f| {
            f.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    for key in ["ip_address", "subnet_id"] {
        if let Some(v) = q.get(key) {
            fixed.push((key.to_string(), v.to_string()));
        }
    }
    if !fixed.is_empty() {
        let Some(ips) = item.get("fixed_ips").and_then(Value::as_array) else {
            return false;
        };
        for (k, v) in &fixed {
            if !ips
                .iter()
                .any(|ip| ip.get(k.as_str()).and_then(Value::as_str) == Some(v.as_str()))
            {
                return false;
            }
        }
    }
    let tags = tags_of(item);
    let all = split_tags(q, "tags");
    if !all.iter().all(|t| tags.contains(t.as_str())) {
        return false;
    }
    let any = split_tags(q, "tags-any");
    if !any.is_empty() && !any.iter().any(|t| tags.contains(t.as_str())) {
        return false;
    }
    let not_all = split_tags(q, "not-tags");
    if !not_all.is_empty() && not_all.iter().all(|t| tags.contains(t.as_str())) {
        return false;
    }
    let not_any = split_tags(q, "not-tags-any");
    if not_any.iter().any(|t| tags.contains(t.as_str())) {
        return false;
    }
    true
}

fn select_fields(item: Value, fields: &[&str]) -> Value {
    if fields.is_empty() {
        return item;
    }
    match item {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

fn list_response(
    ctx: &Ctx,
    q: &Q,
    collection: &str,
    items: Vec<Value>,
) -> Result<Response, ApiError> {
    let mut items: Vec<Value> = items.into_iter().filter(|i| passes(i, q)).collect();
    if let Some(key) = q.get("sort_key") {
        let desc = q
            .get("sort_dir")
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        items.sort_by(|a, b| {
            let (x, y) = (
                a.get(key).map(|v| v.to_string()),
                b.get(key).map(|v| v.to_string()),
            );
            if desc {
                y.cmp(&x)
            } else {
                x.cmp(&y)
            }
        });
    }
    let page = http::paginate(
        items,
        |i| {
            i.get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        },
        q,
        usize::MAX,
    )
    .map_err(|e| ApiError::neutron(StatusCode::BAD_REQUEST, "BadRequest", e.message))?;
    let fields = q.all("fields");
    let out: Vec<Value> = page
        .items
        .into_iter()
        .map(|i| select_fields(i, &fields))
        .collect();
    let mut body = Map::new();
    body.insert(collection.into(), Value::Array(out));
    if let Some(m) = page.next_marker {
        let href = ctx.url(&format!(
            "/network/v2.0/{collection}?{}",
            http::next_query(q, &m)
        ));
        body.insert(
            format!("{collection}_links"),
            json!([{"rel": "next", "href": href}]),
        );
    }
    Ok(http::ok(Value::Object(body)))
}

fn sorted<T, F: Fn(&T) -> u64>(items: impl Iterator<Item = T>, key: F) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort_by_key(|x| key(x));
    v
}

// ---------------------------------------------------------------------------------------------
// IP allocation and ports (also used by Nova)

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

/// Floating IP addresses in 127.0.0.0/8 associated with a server's ports (they reach its sshd).
pub fn loopback_fips_of_server(net: &NetworkData, server_id: &str) -> Vec<IpAddr> {
    let ports: HashSet<&str> = net
        .ports
        .values()
        .filter(|p| p.device_id == server_id)
        .map(|p| p.c.id.as_str())
        .collect();
    sorted(
        net.floating_ips
            .values()
            .filter(|f| f.port_id.as_deref().is_some_and(|p| ports.contains(p))),
        |f| f.c.seq,
    )
    .iter()
    .filter_map(|f| f.floating_ip_address.parse::<IpAddr>().ok())
    .filter(|a| a.is_loopback())
    .collect()
}

/// Every floating IP address in use (host address allocation avoids them).
pub fn all_fip_addresses(net: &NetworkData) -> Vec<String> {
    net.floating_ips
        .values()
        .map(|f| f.floating_ip_address.clone())
        .collect()
}

/// Index of ports and floating IPs per device, built once for a server listing.
pub struct AddrIndex<'a> {
    ports: HashMap<&'a str, Vec<&'a Port>>,
    fips: HashMap<&'a str, Vec<&'a FloatingIp>>,
    net: &'a NetworkData,
}

impl<'a> AddrIndex<'a> {
    /// Builds the index.
    pub fn new(net: &'a NetworkData) -> AddrIndex<'a> {
        let mut ports: HashMap<&str, Vec<&Port>> = HashMap::new();
        for p in net.ports.values() {
            if !p.device_id.is_empty() {
                ports.entry(p.device_id.as_str()).or_default().push(p);
            }
        }
        for v in ports.values_mut() {
            v.sort_by_key(|p| p.c.seq);
        }
        let mut fips: HashMap<&str, Vec<&FloatingIp>> = HashMap::new();
        for f in net.floating_ips.values() {
            if let Some(p) = &f.port_id {
                fips.entry(p.as_str()).or_default().push(f);
            }
        }
        AddrIndex { ports, fips, net }
    }

    /// A server's ports in creation order.
    pub fn ports(&self, server_id: &str) -> &[&'a Port] {
        self.ports
            .get(server_id)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// A server's ports in the order it asked for them (`order`), others after in creation order.
    pub fn ports_in(&self, server_id: &str, order: &[String]) -> Vec<&'a Port> {
        let mut v: Vec<&Port> = self.ports(server_id).to_vec();
        v.sort_by_key(|p| {
            order
                .iter()
                .position(|o| *o == p.c.id)
                .unwrap_or(usize::MAX)
        });
        v
    }

    /// Nova's `addresses`: `{network name: [{addr, version, OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr}]}`,
    /// plus `extra` (a conversion host's own address) as a fixed address on the first network;
    /// and the network names in NIC order, the order Nova writes them in (see
    /// [`crate::http::KEY_ORDER`]).
    pub fn addresses(
        &self,
        server_id: &str,
        order: &[String],
        extra: Option<&str>,
    ) -> (Value, Vec<String>) {
        let mut out = Map::new();
        let mut names: Vec<String> = Vec::new();
        let ports = self.ports_in(server_id, order);
        for p in &ports {
            let net_name = self
                .net
                .networks
                .get(&p.network_id)
                .map(|n| n.c.name.clone())
                .unwrap_or_else(|| p.network_id.clone());
            if !names.contains(&net_name) {
                names.push(net_name.clone());
            }
            let mut list: Vec<Value> = match out.remove(&net_name) {
                Some(Value::Array(a)) => a,
                _ => vec![],
            };
            for f in &p.fixed_ips {
                let version = if f.ip_address.contains(':') { 6 } else { 4 };
                list.push(json!({"addr": f.ip_address, "version": version, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": p.mac_address}));
                for fip in self.fips.get(p.c.id.as_str()).into_iter().flatten() {
                    if fip.fixed_ip_address.as_deref() == Some(f.ip_address.as_str()) {
                        list.push(json!({"addr": fip.floating_ip_address, "version": 4, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": p.mac_address}));
                    }
                }
            }
            out.insert(net_name, Value::Array(list));
        }
        if let Some(addr) = extra {
            let first = ports.first();
            let key = first
                .and_then(|p| self.net.networks.get(&p.network_id))
                .map(|n| n.c.name.clone())
                .unwrap_or_else(|| "osm-sim-host".to_string());
            let mac = first
                .map(|p| p.mac_address.clone())
                .unwrap_or_else(|| "fa:16:3e:00:00:01".into());
            let entry = json!({"addr": addr, "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac});
            match out.get_mut(&key) {
                Some(Value::Array(a)) => a.push(entry),
                _ => {
                    names.push(key.clone());
                    out.insert(key, json!([entry]));
                }
            }
        }
        (Value::Object(out), names)
    }

    /// Names of the security groups on a server's ports.
    pub fn security_group_names(&self, server_id: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for p in self.ports(server_id) {
            for g in &p.security_groups {
                if let Some(sg) = self.net.security_groups.get(g) {
                    if !names.contains(&sg.c.name) {
                        names.push(sg.c.name.clone());
                    }
                }
            }
        }
        names
    }
}

/// Finds a network by id, or by name among those visible to the project.
pub fn find_network<'a>(net: &'a NetworkData, id_or_name: &str) -> Option<&'a Network> {
    net.networks
        .get(id_or_name)
        .or_else(|| net.networks.values().find(|n| n.c.name == id_or_name))
}

/// Finds a security group by id, or by name in the project.
pub fn find_security_group<'a>(
    net: &'a NetworkData,
    project: &str,
    id_or_name: &str,
) -> Option<&'a SecurityGroup> {
    net.security_groups.get(id_or_name).or_else(|| {
        net.security_groups
            .values()
            .find(|g| g.c.name == id_or_name && g.c.project_id == project)
    })
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Neutron routes.
pub fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/network", get(versions))
        .route("/network/v2.0", get(resources))
        .route("/network/v2.0/extensions", get(extensions))
        .route("/network/v2.0/availability_zones", get(availability_zones))
        .route("/network/v2.0/quotas/{project}", get(quotas))
        .route("/network/v2.0/quotas/{project}/details", get(quota_details))
        .route(
            "/network/v2.0/networks",
            get(list_networks).post(create_network),
        )
        .route(
            "/network/v2.0/networks/{id}",
            get(show_network).put(update_network).delete(delete_network),
        )
        .route(
            "/network/v2.0/subnets",
            get(list_subnets).post(create_subnet),
        )
        .route(
            "/network/v2.0/subnets/{id}",
            get(show_subnet).put(update_subnet).delete(delete_subnet),
        )
        .route("/network/v2.0/ports", get(list_ports).post(create_port_api))
        .route(
            "/network/v2.0/ports/{id}",
            get(show_port).put(update_port).delete(delete_port),
        )
        .route(
            "/network/v2.0/security-groups",
            get(list_sgs).post(create_sg),
        )
        .route(
            "/network/v2.0/security-groups/{id}",
            get(show_sg).put(update_sg).delete(delete_sg),
        )
        .route(
            "/network/v2.0/security-group-rules",
            get(list_rules).post(create_rule),
        )
        .route(
            "/network/v2.0/security-group-rules/{id}",
            get(show_rule).delete(delete_rule),
        )
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
        .route("/network/v2.0/floatingips", get(list_fips).post(create_fip))
        .route(
            "/network/v2.0/floatingips/{id}",
            get(show_fip).put(update_fip).delete(delete_fip),
        )
        .route(
            "/network/v2.0/{collection}/{id}/tags",
            get(get_tags).put(replace_tags).delete(clear_tags),
        )
        .route(
            "/network/v2.0/{collection}/{id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(remove_tag),
        )
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

const EXTENSIONS: &[(&str, &str)] = &[
    ("agent", "agent"),
    ("allowed-address-pairs", "Allowed Address Pairs"),
    ("availability_zone", "Availability Zone"),
    ("binding", "Port Binding"),
    ("external-net", "Neutron external network"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options"),
    ("fip-port-details", "Floating IP Port Details Extension"),
    ("net-mtu", "Network MTU"),
    ("port-security", "Port Security"),
    ("project-id", "project_id field enabled"),
    ("provider", "Provider Network"),
    ("quotas", "Quota management support"),
    ("router", "Neutron L3 Router"),
    ("security-group", "security-group"),
    ("standard-attr-description", "standard-attr-description"),
    ("standard-attr-revisions", "Resource revision numbers"),
    ("standard-attr-tag", "Tag support for resources with standard attribute: port, subnet, network, router, floatingip, security_group"),
    ("standard-attr-timestamp", "Resource timestamps"),
    ("stateful-security-group", "Stateful security group"),
    ("subnet_allocation", "Subnet Allocation"),
];

async fn extensions(_ctx: Ctx) -> Response {
    let items: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(alias, name)| json!({"alias": alias, "name": name, "description": name, "updated": "2023-01-01T10:00:00-00:00", "links": []}))
        .collect();
    http::ok(json!({"extensions": items}))
}

async fn availability_zones(_ctx: Ctx) -> Response {
    http::ok(
        json!({"availability_zones": [{"name": "nova", "resource": "network", "state": "available"}, {"name": "nova", "resource": "router", "state": "available"}]}),
    )
}

const QUOTA_KEYS: &[&str] = &[
    "network",
    "subnet",
    "port",
    "router",
    "floatingip",
    "security_group",
    "security_group_rule",
    "rbac_policy",
    "subnetpool",
];

async fn quotas(_ctx: Ctx, Path(project): Path<String>) -> Response {
    let _ = project;
    let q: Map<String, Value> = QUOTA_KEYS
        .iter()
        .map(|k| (k.to_string(), json!(-1)))
        .collect();
    http::ok(json!({"quota": q}))
}

async fn quota_details(ctx: Ctx, Path(project): Path<String>) -> Response {
    let counts = ctx.read(|c| {
        let n = &c.network;
        let own = |p: &str| p == project;
        vec![
            (
                "network",
                n.networks.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            (
                "subnet",
                n.subnets.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            (
                "port",
                n.ports.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            (
                "router",
                n.routers.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            (
                "floatingip",
                n.floating_ips
                    .values()
                    .filter(|x| own(&x.c.project_id))
                    .count(),
            ),
            (
                "security_group",
                n.security_groups
                    .values()
                    .filter(|x| own(&x.c.project_id))
                    .count(),
            ),
            (
                "security_group_rule",
                n.sg_rules.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            ("rbac_policy", 0),
            ("subnetpool", 0),
        ]
    });
    let q: Map<String, Value> = counts
        .into_iter()
        .map(|(k, used)| {
            (
                k.to_string(),
                json!({"limit": -1, "used": used, "reserved": 0}),
            )
        })
        .collect();
    http::ok(json!({"quota": q}))
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

// --- networks

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

// --- subnets

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

// --- ports

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

// --- security groups and rules

async fn list_sgs(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.write(|c, seq| {
        ensure_default_security_group(&mut c.network, &ctx.project_id, seq);
        let net = &c.network;
        sorted(
            net.security_groups
                .values()
                .filter(|g| visible(&ctx, &g.c.project_id)),
            |g| g.c.seq,
        )
        .into_iter()
        .map(|g| render_sg(g, net))
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "security_groups", items)
}

async fn show_sg(ctx: Ctx, Path(id): Path<String>, q: Q) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let g = c
            .network
            .security_groups
            .get(&id)
            .filter(|g| visible(&ctx, &g.c.project_id))
            .ok_or_else(|| not_found("SecurityGroup", &id))?;
        Ok(http::ok(
            json!({"security_group": select_fields(render_sg(g, &c.network), &q.all("fields"))}),
        ))
    })
}

async fn create_sg(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "security_group")?.clone();
    let project = owner(&ctx, &spec)?;
    let name = s(&spec, "name")?.unwrap_or_default();
    if name == "default" {
        return Err(conflict(
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        ));
    }
    let description = s(&spec, "description")?.unwrap_or_default();
    let stateful = b(&spec, "stateful")?.unwrap_or(true);
    ctx.write(|c, seq| {
        ensure_default_security_group(&mut c.network, &project, seq);
        let mut com = Common::new(seq, &project, name, description);
        com.revision = 1;
        let g = SecurityGroup { c: com, stateful };
        let id = g.c.id.clone();
        for eth in ["IPv4", "IPv6"] {
            let r = default_rule(seq, &project, &id, "egress", eth, None);
            c.network.sg_rules.insert(r.c.id.clone(), r);
        }
        let v = render_sg(&g, &c.network);
        c.network.security_groups.insert(id, g);
        Ok(http::json(
            StatusCode::CREATED,
            json!({"security_group": v}),
        ))
    })
}

async fn update_sg(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = body_of(&body, "security_group")?.clone();
    ctx.write(|c, _| {
        let g = c
            .network
            .security_groups
            .get_mut(&id)
            .filter(|g| visible(&ctx, &g.c.project_id))
            .ok_or_else(|| not_found("SecurityGroup", &id))?;
        if let Some(v) = s(&spec, "name")? {
            g.c.name = v;
        }
        if let Some(v) = s(&spec, "description")? {
            g.c.description = v;
        }
        g.c.touch();
        let g = g.clone();
        Ok(http::ok(
            json!({"security_group": render_sg(&g, &c.network)}),
        ))
    })
}

async fn delete_sg(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let net = &mut c.network;
        let g = net
            .security_groups
            .get(&id)
            .filter(|g| visible(&ctx, &g.c.project_id))
            .ok_or_else(|| not_found("SecurityGroup", &id))?;
        if g.c.name == "default" {
            return Err(conflict(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        if net.ports.values().any(|p| p.security_groups.contains(&id)) {
            return Err(conflict(
                "SecurityGroupInUse",
                format!("Security Group {id} in use."),
            ));
        }
        net.security_groups.remove(&id);
        net.sg_rules.retain(|_, r| r.security_group_id != id);
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn list_rules(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.read(|c| {
        sorted(
            c.network
                .sg_rules
                .values()
                .filter(|r| visible(&ctx, &r.c.project_id)),
            |r| r.c.seq,
        )
        .into_iter()
        .map(render_rule)
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "security_group_rules", items)
}

async fn show_rule(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let r = c
            .network
            .sg_rules
            .get(&id)
            .ok_or_else(|| not_found("SecurityGroupRule", &id))?;
        Ok(http::ok(json!({"security_group_rule": render_rule(r)})))
    })
}

async fn create_rule(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "security_group_rule")?.clone();
    let sg = s(&spec, "security_group_id")?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'security_group_id' not specified")
    })?;
    let direction = s(&spec, "direction")?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'direction' not specified")
    })?;
    if direction != "ingress" && direction != "egress" {
        return Err(bad(format!(
            "Invalid input for direction. Reason: {direction} is not in valid_values."
        )));
    }
    let ethertype = s(&spec, "ethertype")?.unwrap_or_else(|| "IPv4".into());
    let protocol = s(&spec, "protocol")?
        .map(|p| p.to_ascii_lowercase())
        .filter(|p| p != "any");
    let min = n(&spec, "port_range_min")?;
    let max = n(&spec, "port_range_max")?;
    let prefix = s(&spec, "remote_ip_prefix")?;
    let remote_group = s(&spec, "remote_group_id")?;
    let description = s(&spec, "description")?.unwrap_or_default();
    if let Some(p) = &prefix {
        if Cidr::parse(p).is_none() && p.parse::<IpAddr>().is_err() {
            return Err(bad(format!(
                "Invalid input for remote_ip_prefix. Reason: '{p}' is not a valid IP subnet."
            )));
        }
    }
    ctx.write(|c, seq| {
        let net = &mut c.network;
        let group = net
            .security_groups
            .get(&sg)
            .ok_or_else(|| not_found("SecurityGroup", &sg))?;
        let project = group.c.project_id.clone();
        let dup = net.sg_rules.values().find(|r| {
            r.security_group_id == sg
                && r.direction == direction
                && r.ethertype == ethertype
                && r.protocol == protocol
                && r.port_range_min == min
                && r.port_range_max == max
                && r.remote_ip_prefix == prefix
                && r.remote_group_id == remote_group
        });
        if let Some(d) = dup {
            return Err(conflict(
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {}.", d.c.id),
            ));
        }
        let mut com = Common::new(seq, &project, String::new(), description);
        com.revision = 0;
        let r = SgRule {
            c: com,
            security_group_id: sg.clone(),
            direction,
            ethertype,
            protocol,
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix: prefix,
            remote_group_id: remote_group,
        };
        let v = render_rule(&r);
        net.sg_rules.insert(r.c.id.clone(), r);
        if let Some(g) = net.security_groups.get_mut(&sg) {
            g.c.touch();
        }
        Ok(http::json(
            StatusCode::CREATED,
            json!({"security_group_rule": v}),
        ))
    })
}

async fn delete_rule(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        c.network
            .sg_rules
            .remove(&id)
            .ok_or_else(|| not_found("SecurityGroupRule", &id))?;
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

// --- routers

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

// --- floating IPs

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
    let (resp, server) = ctx.write(|c, seq| {
        let net = &mut c.network;
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

// --- tags

fn tags_mut<'a>(
    net: &'a mut NetworkData,
    collection: &str,
    id: &str,
) -> Result<&'a mut Common, ApiError> {
    let c = match collection {
        "networks" => net.networks.get_mut(id).map(|x| &mut x.c),
        "subnets" => net.subnets.get_mut(id).map(|x| &mut x.c),
        "ports" => net.ports.get_mut(id).map(|x| &mut x.c),
        "routers" => net.routers.get_mut(id).map(|x| &mut x.c),
        "floatingips" => net.floating_ips.get_mut(id).map(|x| &mut x.c),
        "security-groups" | "security_groups" => net.security_groups.get_mut(id).map(|x| &mut x.c),
        _ => return Err(not_found("Resource", collection)),
    };
    c.ok_or_else(|| {
        ApiError::neutron(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{collection} {id} could not be found."),
        )
    })
}

async fn get_tags(
    ctx: Ctx,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut st = ctx.sim.lock();
    let (c, _) = http::cloud_and_seq(&mut st, &ctx.cloud);
    let com = tags_mut(&mut c.network, &collection, &id)?;
    Ok(http::ok(json!({"tags": com.tags})))
}

async fn replace_tags(
    ctx: Ctx,
    Path((collection, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let tags = util::opt_str_list(&body, "tags")
        .map_err(|e| bad(e.message))?
        .ok_or_else(|| bad("Invalid input: tags is required"))?;
    ctx.write(|c, _| {
        let com = tags_mut(&mut c.network, &collection, &id)?;
        let mut uniq: Vec<String> = Vec::new();
        for t in tags {
            if !uniq.contains(&t) {
                uniq.push(t);
            }
        }
        com.tags = uniq;
        com.touch();
        Ok(http::ok(json!({"tags": com.tags})))
    })
}

async fn clear_tags(
    ctx: Ctx,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let com = tags_mut(&mut c.network, &collection, &id)?;
        com.tags.clear();
        com.touch();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn check_tag(
    ctx: Ctx,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let mut st = ctx.sim.lock();
    let (c, _) = http::cloud_and_seq(&mut st, &ctx.cloud);
    let com = tags_mut(&mut c.network, &collection, &id)?;
    if com.tags.contains(&tag) {
        Ok(http::empty(StatusCode::NO_CONTENT))
    } else {
        Err(ApiError::neutron(
            StatusCode::NOT_FOUND,
            "TagNotFound",
            format!("Tag {tag} could not be found for {collection} {id}."),
        ))
    }
}

async fn add_tag(
    ctx: Ctx,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let com = tags_mut(&mut c.network, &collection, &id)?;
        if !com.tags.contains(&tag) {
            com.tags.push(tag);
            com.touch();
        }
        Ok(http::empty(StatusCode::CREATED))
    })
}

async fn remove_tag(
    ctx: Ctx,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let com = tags_mut(&mut c.network, &collection, &id)?;
        if !com.tags.contains(&tag) {
            return Err(ApiError::neutron(
                StatusCode::NOT_FOUND,
                "TagNotFound",
                format!("Tag {tag} could not be found for {collection} {id}."),
            ));
        }
        com.tags.retain(|t| *t != tag);
        com.touch();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

/// For other services: the cloud's Neutron data.
pub fn data(c: &Cloud) -> &NetworkData {
    &c.network
}
