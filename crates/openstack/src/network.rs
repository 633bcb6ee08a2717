//! Network (Neutron v2.0): networks, subnets, ports, security groups and rules, routers,
//! floating IPs, tags.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::catalog::Service;
use crate::common::{find_one, wait_status, Observed, Query};
use crate::connection::{seg, Call, Connection};
use crate::de::null_default;
use crate::error::{Error, Result};

/// A network.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Network {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// `ACTIVE`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// Owner project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Admin state.
    #[serde(default)]
    pub admin_state_up: Option<bool>,
    /// Shared with every project.
    #[serde(default)]
    pub shared: Option<bool>,
    /// External (floating IPs come from it).
    #[serde(rename = "router:external", default)]
    pub is_router_external: Option<bool>,
    /// Subnet IDs.
    #[serde(default, deserialize_with = "null_default")]
    pub subnets: Vec<String>,
    /// MTU.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Other keys (`provider:*`, `availability_zones`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An allocation pool of a subnet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AllocationPool {
    /// First address.
    pub start: String,
    /// Last address.
    pub end: String,
}

/// A subnet.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Subnet {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Network.
    #[serde(default)]
    pub network_id: String,
    /// CIDR.
    #[serde(default)]
    pub cidr: String,
    /// 4 or 6.
    #[serde(default)]
    pub ip_version: u8,
    /// Gateway.
    #[serde(default)]
    pub gateway_ip: Option<String>,
    /// DHCP.
    #[serde(default)]
    pub enable_dhcp: Option<bool>,
    /// Allocation pools.
    #[serde(default, deserialize_with = "null_default")]
    pub allocation_pools: Vec<AllocationPool>,
    /// DNS servers.
    #[serde(default, deserialize_with = "null_default")]
    pub dns_nameservers: Vec<String>,
    /// Host routes.
    #[serde(default, deserialize_with = "null_default")]
    pub host_routes: Vec<Value>,
    /// Owner project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A fixed IP of a port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PortFixedIp {
    /// Subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

/// A port.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Port {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Network.
    #[serde(default)]
    pub network_id: String,
    /// Fixed IPs.
    #[serde(default, deserialize_with = "null_default")]
    pub fixed_ips: Vec<PortFixedIp>,
    /// MAC address.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// `compute:nova`, `network:router_interface`, ...
    #[serde(default)]
    pub device_owner: Option<String>,
    /// Server (or router) ID.
    #[serde(default)]
    pub device_id: Option<String>,
    /// `ACTIVE`, `DOWN`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// `binding:profile`.
    #[serde(rename = "binding:profile", default, deserialize_with = "null_default")]
    pub binding_profile: Map<String, Value>,
    /// `binding:vnic_type` (`normal`, `direct`, ...).
    #[serde(rename = "binding:vnic_type", default)]
    pub binding_vnic_type: Option<String>,
    /// `binding:host_id` (admins).
    #[serde(rename = "binding:host_id", default)]
    pub binding_host_id: Option<String>,
    /// Security group IDs.
    #[serde(default, deserialize_with = "null_default")]
    pub security_groups: Vec<String>,
    /// Allowed address pairs.
    #[serde(default, deserialize_with = "null_default")]
    pub allowed_address_pairs: Vec<Value>,
    /// Owner project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Admin state.
    #[serde(default)]
    pub admin_state_up: Option<bool>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Other keys (`dns_name`, `port_security_enabled`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A security group rule.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct SecurityGroupRule {
    /// ID.
    #[serde(default)]
    pub id: String,
    /// Group it belongs to.
    #[serde(default)]
    pub security_group_id: String,
    /// `ingress` or `egress`.
    #[serde(default)]
    pub direction: String,
    /// `IPv4` or `IPv6`.
    #[serde(default)]
    pub ethertype: Option<String>,
    /// `tcp`, `udp`, `icmp`, a number, or `None` for any.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Port range start.
    #[serde(default)]
    pub port_range_min: Option<u32>,
    /// Port range end.
    #[serde(default)]
    pub port_range_max: Option<u32>,
    /// Remote CIDR.
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    /// Remote group.
    #[serde(default)]
    pub remote_group_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A security group.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct SecurityGroup {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Owner project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Rules.
    #[serde(
        rename = "security_group_rules",
        default,
        deserialize_with = "null_default"
    )]
    pub rules: Vec<SecurityGroupRule>,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Other keys (`stateful`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The external gateway of a router.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ExternalGateway {
    /// External network.
    pub network_id: String,
    /// SNAT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_snat: Option<bool>,
    /// Its IPs on the external network.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub external_fixed_ips: Vec<PortFixedIp>,
}

/// A router.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Router {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// `ACTIVE`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// External gateway.
    #[serde(default)]
    pub external_gateway_info: Option<ExternalGateway>,
    /// Owner project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Admin state.
    #[serde(default)]
    pub admin_state_up: Option<bool>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Other keys (`routes`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A floating IP.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct FloatingIp {
    /// ID.
    pub id: String,
    /// The floating address.
    #[serde(default)]
    pub floating_ip_address: String,
    /// External network it comes from.
    #[serde(default)]
    pub floating_network_id: String,
    /// Fixed address it maps to.
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
    /// Port it maps to.
    #[serde(default)]
    pub port_id: Option<String>,
    /// Router doing the NAT.
    #[serde(default)]
    pub router_id: Option<String>,
    /// `ACTIVE`, `DOWN`.
    #[serde(default)]
    pub status: Option<String>,
    /// Owner project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// DNS domain.
    #[serde(default)]
    pub dns_domain: Option<String>,
    /// DNS name.
    #[serde(default)]
    pub dns_name: Option<String>,
    /// QoS policy.
    #[serde(default)]
    pub qos_policy_id: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What [`NetworkApi::create_network`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewNetwork {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Admin state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_state_up: Option<bool>,
    /// Shared (admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    /// External (admin).
    #[serde(rename = "router:external", skip_serializing_if = "Option::is_none")]
    pub is_router_external: Option<bool>,
    /// Other keys (`provider:network_type`, `mtu`, `project_id`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What [`NetworkApi::create_subnet`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewSubnet {
    /// Network.
    pub network_id: String,
    /// CIDR.
    pub cidr: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Gateway (`None`: Neutron picks the first address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_ip: Option<String>,
    /// DHCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_dhcp: Option<bool>,
    /// Allocation pools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allocation_pools: Vec<AllocationPool>,
    /// DNS servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_nameservers: Vec<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What [`NetworkApi::create_port`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewPort {
    /// Network.
    pub network_id: String,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fixed IPs (subnet and/or address).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixed_ips: Vec<PortFixedIp>,
    /// MAC address (admin, or by policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Security group IDs (`None`: the project's default group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    /// `binding:profile`.
    #[serde(rename = "binding:profile", skip_serializing_if = "Option::is_none")]
    pub binding_profile: Option<Map<String, Value>>,
    /// `binding:vnic_type`.
    #[serde(rename = "binding:vnic_type", skip_serializing_if = "Option::is_none")]
    pub binding_vnic_type: Option<String>,
    /// Device owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_owner: Option<String>,
    /// Device ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Admin state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_state_up: Option<bool>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What [`NetworkApi::create_security_group_rule`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewSecurityGroupRule {
    /// Group.
    pub security_group_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` (default) or `IPv6`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ethertype: Option<String>,
    /// Protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port range start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_range_min: Option<u32>,
    /// Port range end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_range_max: Option<u32>,
    /// Remote CIDR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip_prefix: Option<String>,
    /// Remote group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_group_id: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What [`NetworkApi::create_router`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewRouter {
    /// Name.
    pub name: String,
    /// External gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_gateway_info: Option<ExternalGateway>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Admin state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_state_up: Option<bool>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What [`NetworkApi::create_floating_ip`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewFloatingIp {
    /// External network.
    pub floating_network_id: String,
    /// Wanted address (admin, or by policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floating_ip_address: Option<String>,
    /// Port to associate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    /// Fixed address of the port to associate (ports with several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_ip_address: Option<String>,
    /// Subnet of the external network to take the address from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// DNS domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
    /// DNS name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// QoS policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos_policy_id: Option<String>,
}

/// The Neutron resources with tags, as their URL path names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaggedResource {
    /// `networks`
    Network,
    /// `subnets`
    Subnet,
    /// `ports`
    Port,
    /// `security-groups`
    SecurityGroup,
    /// `routers`
    Router,
    /// `floatingips`
    FloatingIp,
}

impl TaggedResource {
    fn path(&self) -> &'static str {
        match self {
            TaggedResource::Network => "networks",
            TaggedResource::Subnet => "subnets",
            TaggedResource::Port => "ports",
            TaggedResource::SecurityGroup => "security-groups",
            TaggedResource::Router => "routers",
            TaggedResource::FloatingIp => "floatingips",
        }
    }
}

/// One Neutron resource type: URL path, JSON keys, and the name errors use.
struct Res {
    path: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
}

const NETWORKS: Res = Res {
    path: "/networks",
    plural: "networks",
    singular: "network",
    kind: "network",
};
const SUBNETS: Res = Res {
    path: "/subnets",
    plural: "subnets",
    singular: "subnet",
    kind: "subnet",
};
const PORTS: Res = Res {
    path: "/ports",
    plural: "ports",
    singular: "port",
    kind: "port",
};
const SECURITY_GROUPS: Res = Res {
    path: "/security-groups",
    plural: "security_groups",
    singular: "security_group",
    kind: "security group",
};
const SECURITY_GROUP_RULES: Res = Res {
    path: "/security-group-rules",
    plural: "security_group_rules",
    singular: "security_group_rule",
    kind: "security group rule",
};
const ROUTERS: Res = Res {
    path: "/routers",
    plural: "routers",
    singular: "router",
    kind: "router",
};
const FLOATING_IPS: Res = Res {
    path: "/floatingips",
    plural: "floatingips",
    singular: "floatingip",
    kind: "floating IP",
};

/// Network calls; from [`Connection::network`].
///
/// With an admin token Neutron lists every project's resources: pass a `project_id` filter to
/// the `list_*` and `find_*` calls to stay in one project.
#[derive(Clone, Copy)]
pub struct NetworkApi<'a> {
    conn: &'a Connection,
}

const S: Service = Service::Network;

impl<'a> NetworkApi<'a> {
    pub(crate) fn new(conn: &'a Connection) -> NetworkApi<'a> {
        NetworkApi { conn }
    }

    fn list<T: DeserializeOwned>(&self, r: &Res, filters: &Query) -> Result<Vec<T>> {
        self.conn
            .list_all(Call::get(S, r.path).queries(filters), r.plural)
    }

    fn get<T: DeserializeOwned>(&self, r: &Res, id: &str) -> Result<T> {
        self.conn
            .call_key(Call::get(S, format!("{}/{}", r.path, seg(id))), r.singular)
            .map_err(|e| e.not_found_as(r.kind, id))
    }

    fn create<T: DeserializeOwned>(&self, r: &Res, body: &impl Serialize) -> Result<T> {
        let mut wrapped = Map::new();
        wrapped.insert(
            r.singular.to_string(),
            serde_json::to_value(body).map_err(|e| Error::Io {
                context: format!("encoding a {}", r.kind),
                source: e.into(),
            })?,
        );
        self.conn
            .call_key(Call::post(S, r.path).json(&wrapped)?, r.singular)
    }

    fn update<T: DeserializeOwned>(&self, r: &Res, id: &str, body: Value) -> Result<T> {
        let mut wrapped = Map::new();
        wrapped.insert(r.singular.to_string(), body);
        self.conn
            .call_key(
                Call::put(S, format!("{}/{}", r.path, seg(id))).json(&wrapped)?,
                r.singular,
            )
            .map_err(|e| e.not_found_as(r.kind, id))
    }

    fn delete(&self, r: &Res, id: &str) -> Result<()> {
        self.conn
            .call(Call::delete(S, format!("{}/{}", r.path, seg(id))))
            .map(drop)
            .map_err(|e| e.not_found_as(r.kind, id))
    }

    fn find<T: DeserializeOwned>(
        &self,
        r: &Res,
        name_or_id: &str,
        filters: &Query,
        name_of: impl Fn(&T) -> &str,
    ) -> Result<Option<T>> {
        find_one(
            r.kind,
            name_or_id,
            || self.get(r, name_or_id),
            || self.list(r, &filters.clone().with("name", name_or_id)),
            |t| Some(name_of(t)),
        )
    }

    // ---- networks ----

    /// Networks matching `filters` (`name`, `project_id`, `router:external`, `shared`, `tags`, ...).
    pub fn list_networks(&self, filters: &Query) -> Result<Vec<Network>> {
        self.list(&NETWORKS, filters)
    }
    /// A network by ID.
    pub fn get_network(&self, id: &str) -> Result<Network> {
        self.get(&NETWORKS, id)
    }
    /// A network by ID or exact name (among those matching `filters`).
    pub fn find_network(&self, name_or_id: &str, filters: &Query) -> Result<Option<Network>> {
        self.find(&NETWORKS, name_or_id, filters, |n: &Network| &n.name)
    }
    /// Creates a network.
    pub fn create_network(&self, new: &NewNetwork) -> Result<Network> {
        self.create(&NETWORKS, new)
    }
    /// Deletes a network.
    pub fn delete_network(&self, id: &str) -> Result<()> {
        self.delete(&NETWORKS, id)
    }

    // ---- subnets ----

    /// Subnets matching `filters` (`network_id`, `cidr`, `name`, `project_id`, ...).
    pub fn list_subnets(&self, filters: &Query) -> Result<Vec<Subnet>> {
        self.list(&SUBNETS, filters)
    }
    /// A subnet by ID.
    pub fn get_subnet(&self, id: &str) -> Result<Subnet> {
        self.get(&SUBNETS, id)
    }
    /// A subnet by ID or exact name (among those matching `filters`).
    pub fn find_subnet(&self, name_or_id: &str, filters: &Query) -> Result<Option<Subnet>> {
        self.find(&SUBNETS, name_or_id, filters, |s: &Subnet| &s.name)
    }
    /// Creates a subnet.
    pub fn create_subnet(&self, new: &NewSubnet) -> Result<Subnet> {
        self.create(&SUBNETS, new)
    }
    /// Deletes a subnet.
    pub fn delete_subnet(&self, id: &str) -> Result<()> {
        self.delete(&SUBNETS, id)
    }

    // ---- ports ----

    /// Ports matching `filters`: `device_id`, `network_id`, `fixed_ips` (`ip_address=10.0.0.5`,
    /// `subnet_id=...`; repeat for several), `mac_address`, `tags`, `project_id`, ...
    pub fn list_ports(&self, filters: &Query) -> Result<Vec<Port>> {
        self.list(&PORTS, filters)
    }
    /// A port by ID.
    pub fn get_port(&self, id: &str) -> Result<Port> {
        self.get(&PORTS, id)
    }
    /// A port by ID or exact name (among those matching `filters`).
    pub fn find_port(&self, name_or_id: &str, filters: &Query) -> Result<Option<Port>> {
        self.find(&PORTS, name_or_id, filters, |p: &Port| &p.name)
    }
    /// Creates a port.
    pub fn create_port(&self, new: &NewPort) -> Result<Port> {
        self.create(&PORTS, new)
    }
    /// Updates attributes of a port (`{"name": ..., "security_groups": [...]}`).
    pub fn update_port(&self, id: &str, changes: Value) -> Result<Port> {
        self.update(&PORTS, id, changes)
    }
    /// Deletes a port.
    pub fn delete_port(&self, id: &str) -> Result<()> {
        self.delete(&PORTS, id)
    }

    // ---- security groups ----

    /// Security groups matching `filters` (`name`, `project_id`, `tags`, ...).
    pub fn list_security_groups(&self, filters: &Query) -> Result<Vec<SecurityGroup>> {
        self.list(&SECURITY_GROUPS, filters)
    }
    /// A security group by ID.
    pub fn get_security_group(&self, id: &str) -> Result<SecurityGroup> {
        self.get(&SECURITY_GROUPS, id)
    }
    /// A security group by ID or exact name (among those matching `filters`; every project has a
    /// `default`, so give `project_id` when the token is an admin's).
    pub fn find_security_group(
        &self,
        name_or_id: &str,
        filters: &Query,
    ) -> Result<Option<SecurityGroup>> {
        self.find(
            &SECURITY_GROUPS,
            name_or_id,
            filters,
            |g: &SecurityGroup| &g.name,
        )
    }
    /// Creates a security group (Neutron adds the default egress rules).
    pub fn create_security_group(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<SecurityGroup> {
        let mut g = json!({"name": name});
        if let Some(d) = description {
            g["description"] = json!(d);
        }
        self.create(&SECURITY_GROUPS, &g)
    }
    /// Deletes a security group.
    pub fn delete_security_group(&self, id: &str) -> Result<()> {
        self.delete(&SECURITY_GROUPS, id)
    }
    /// Creates a rule.
    pub fn create_security_group_rule(
        &self,
        new: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule> {
        self.create(&SECURITY_GROUP_RULES, new)
    }
    /// Rules matching `filters` (`security_group_id`, `direction`, ...).
    pub fn list_security_group_rules(&self, filters: &Query) -> Result<Vec<SecurityGroupRule>> {
        self.list(&SECURITY_GROUP_RULES, filters)
    }
    /// Deletes a rule.
    pub fn delete_security_group_rule(&self, id: &str) -> Result<()> {
        self.delete(&SECURITY_GROUP_RULES, id)
    }

    // ---- routers ----

    /// Routers matching `filters`.
    pub fn list_routers(&self, filters: &Query) -> Result<Vec<Router>> {
        self.list(&ROUTERS, filters)
    }
    /// A router by ID.
    pub fn get_router(&self, id: &str) -> Result<Router> {
        self.get(&ROUTERS, id)
    }
    /// A router by ID or exact name (among those matching `filters`).
    pub fn find_router(&self, name_or_id: &str, filters: &Query) -> Result<Option<Router>> {
        self.find(&ROUTERS, name_or_id, filters, |r: &Router| &r.name)
    }
    /// Creates a router (with an external gateway if given).
    pub fn create_router(&self, new: &NewRouter) -> Result<Router> {
        self.create(&ROUTERS, new)
    }
    /// Attaches a subnet to a router.
    pub fn add_router_interface(&self, router_id: &str, subnet_id: &str) -> Result<Value> {
        self.conn
            .call_json(
                Call::put(
                    S,
                    format!("/routers/{}/add_router_interface", seg(router_id)),
                )
                .json(&json!({"subnet_id": subnet_id}))?,
            )
            .map_err(|e| e.not_found_as("router", router_id))
    }
    /// Detaches a subnet from a router.
    pub fn remove_router_interface(&self, router_id: &str, subnet_id: &str) -> Result<Value> {
        self.conn
            .call_json(
                Call::put(
                    S,
                    format!("/routers/{}/remove_router_interface", seg(router_id)),
                )
                .json(&json!({"subnet_id": subnet_id}))?,
            )
            .map_err(|e| e.not_found_as("router", router_id))
    }
    /// Deletes a router (its interfaces must be removed first).
    pub fn delete_router(&self, id: &str) -> Result<()> {
        self.delete(&ROUTERS, id)
    }

    // ---- floating IPs ----

    /// Floating IPs matching `filters` (`floating_ip_address`, `port_id`, `fixed_ip_address`,
    /// `floating_network_id`, `project_id`, `tags`, ...).
    pub fn list_floating_ips(&self, filters: &Query) -> Result<Vec<FloatingIp>> {
        self.list(&FLOATING_IPS, filters)
    }
    /// A floating IP by ID.
    pub fn get_floating_ip(&self, id: &str) -> Result<FloatingIp> {
        self.get(&FLOATING_IPS, id)
    }
    /// A floating IP by ID or address.
    pub fn find_floating_ip(&self, id_or_address: &str) -> Result<Option<FloatingIp>> {
        find_one(
            "floating IP",
            id_or_address,
            || self.get_floating_ip(id_or_address),
            || self.list_floating_ips(&Query::new().with("floating_ip_address", id_or_address)),
            |f| Some(f.floating_ip_address.as_str()),
        )
    }
    /// Allocates a floating IP (and associates it when `port_id` is given).
    pub fn create_floating_ip(&self, new: &NewFloatingIp) -> Result<FloatingIp> {
        self.create(&FLOATING_IPS, new)
    }
    /// Associates a floating IP with a port (optionally one of its fixed addresses), or
    /// disassociates it (`port_id: None`).
    pub fn update_floating_ip_port(
        &self,
        id: &str,
        port_id: Option<&str>,
        fixed_ip_address: Option<&str>,
    ) -> Result<FloatingIp> {
        let mut body = json!({"port_id": port_id});
        if let Some(ip) = fixed_ip_address {
            body["fixed_ip_address"] = json!(ip);
        }
        self.update(&FLOATING_IPS, id, body)
    }
    /// Releases a floating IP.
    pub fn delete_floating_ip(&self, id: &str) -> Result<()> {
        self.delete(&FLOATING_IPS, id)
    }

    // ---- tags ----

    /// Adds a tag (`PUT /v2.0/{resource}/{id}/tags/{tag}`).
    pub fn add_tag(&self, resource: TaggedResource, id: &str, tag: &str) -> Result<()> {
        self.conn
            .call(Call::put(
                S,
                format!("/{}/{}/tags/{}", resource.path(), seg(id), seg(tag)),
            ))
            .map(drop)
            .map_err(|e| e.not_found_as(resource.path().trim_end_matches('s'), id))
    }

    /// Replaces all tags.
    pub fn set_tags(&self, resource: TaggedResource, id: &str, tags: &[String]) -> Result<()> {
        self.conn
            .call(
                Call::put(S, format!("/{}/{}/tags", resource.path(), seg(id)))
                    .json(&json!({"tags": tags}))?,
            )
            .map(drop)
            .map_err(|e| e.not_found_as(resource.path().trim_end_matches('s'), id))
    }

    /// Removes a tag.
    pub fn remove_tag(&self, resource: TaggedResource, id: &str, tag: &str) -> Result<()> {
        self.conn
            .call(Call::delete(
                S,
                format!("/{}/{}/tags/{}", resource.path(), seg(id), seg(tag)),
            ))
            .map(drop)
            .map_err(|e| e.not_found_as(resource.path().trim_end_matches('s'), id))
    }

    /// Waits until the port's status is one of `statuses` (e.g. `["ACTIVE"]`).
    pub fn wait_for_port(&self, id: &str, statuses: &[&str], timeout: Duration) -> Result<Port> {
        wait_status(
            "port",
            id,
            statuses,
            &["ERROR"],
            timeout,
            || {
                let p = self.get_port(id)?;
                Ok(Observed {
                    status: p.status.clone().unwrap_or_default(),
                    fault: None,
                    value: p,
                })
            },
            |_| None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_model() {
        let p: Port = serde_json::from_value(json!({
            "id": "p1", "name": "", "network_id": "n1",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"}],
            "mac_address": "fa:16:3e:00:00:01", "device_owner": "compute:nova", "device_id": "srv",
            "binding:profile": {}, "binding:vnic_type": "normal", "binding:host_id": "",
            "security_groups": ["sg1"], "tags": [], "description": "", "status": "ACTIVE",
            "port_security_enabled": true
        }))
        .unwrap();
        assert_eq!(p.fixed_ips[0].ip_address.as_deref(), Some("10.0.0.5"));
        assert_eq!(p.binding_vnic_type.as_deref(), Some("normal"));
        assert_eq!(p.extra["port_security_enabled"], true);
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["binding:vnic_type"], "normal");
    }

    #[test]
    fn create_bodies() {
        let n = NewPort {
            network_id: "n".into(),
            fixed_ips: vec![PortFixedIp {
                subnet_id: Some("s".into()),
                ip_address: Some("10.0.0.5".into()),
            }],
            mac_address: Some("fa:16:3e:00:00:01".into()),
            binding_profile: Some(Map::new()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"network_id": "n", "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.5"}], "mac_address": "fa:16:3e:00:00:01", "binding:profile": {}})
        );
        let r = NewRouter {
            name: "r".into(),
            external_gateway_info: Some(ExternalGateway {
                network_id: "ext".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"name": "r", "external_gateway_info": {"network_id": "ext"}})
        );
        let f = NewFloatingIp {
            floating_network_id: "ext".into(),
            port_id: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"floating_network_id": "ext", "port_id": "p"})
        );
    }

    #[test]
    fn security_group_model() {
        let g: SecurityGroup = serde_json::from_value(json!({
            "id": "g", "name": "default", "project_id": "p",
            "security_group_rules": [{"id": "r", "security_group_id": "g", "direction": "egress", "ethertype": "IPv4", "protocol": null, "port_range_min": null}],
            "stateful": true
        }))
        .unwrap();
        assert_eq!(g.rules[0].direction, "egress");
        assert_eq!(g.extra["stateful"], true);
    }
}
