//! Network (Neutron v2.0): networks, subnets, ports, security groups and rules, routers,
//! floating IPs, tags.
//!
//! The calls are here; the models and create bodies are in [`types`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::catalog::Service;
use crate::common::Query;
use crate::connection::{seg, Call, Connection};
use crate::error::Result;
use crate::resource::{
    Resource, FLOATING_IPS, NETWORKS, PORTS, QOS_POLICIES, ROUTERS, SECURITY_GROUPS,
    SECURITY_GROUP_RULES, SUBNETS,
};

mod types;

pub use types::{
    AllocationPool, ExternalGateway, FloatingIp, Network, NewFloatingIp, NewNetwork, NewPort,
    NewRouter, NewSecurityGroupRule, NewSubnet, Port, PortFixedIp, QosPolicy, Router,
    SecurityGroup, SecurityGroupRule, Subnet,
};

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

    /// By ID, else by exact name among the items matching `filters`.
    fn find<T: DeserializeOwned>(
        &self,
        r: &Resource,
        name_or_id: &str,
        filters: &Query,
        name_of: impl Fn(&T) -> &str,
    ) -> Result<Option<T>> {
        let by_name = filters.clone().with("name", name_or_id);
        self.conn.find(r, name_or_id, &by_name, name_of)
    }

    // ---- networks ----

    /// Networks matching `filters` (`name`, `project_id`, `router:external`, `shared`, `tags`, ...).
    pub fn list_networks(&self, filters: &Query) -> Result<Vec<Network>> {
        self.conn.list(&NETWORKS, filters)
    }
    /// A network by ID.
    pub fn get_network(&self, id: &str) -> Result<Network> {
        self.conn.get(&NETWORKS, id)
    }
    /// A network by ID or exact name (among those matching `filters`).
    pub fn find_network(&self, name_or_id: &str, filters: &Query) -> Result<Option<Network>> {
        self.find(&NETWORKS, name_or_id, filters, |n: &Network| &n.name)
    }
    /// Creates a network.
    pub fn create_network(&self, new: &NewNetwork) -> Result<Network> {
        self.conn.create(&NETWORKS, new, None)
    }
    /// Deletes a network.
    pub fn delete_network(&self, id: &str) -> Result<()> {
        self.conn.delete(&NETWORKS, id)
    }

    // ---- subnets ----

    /// Subnets matching `filters` (`network_id`, `cidr`, `name`, `project_id`, ...).
    pub fn list_subnets(&self, filters: &Query) -> Result<Vec<Subnet>> {
        self.conn.list(&SUBNETS, filters)
    }
    /// A subnet by ID.
    pub fn get_subnet(&self, id: &str) -> Result<Subnet> {
        self.conn.get(&SUBNETS, id)
    }
    /// A subnet by ID or exact name (among those matching `filters`).
    pub fn find_subnet(&self, name_or_id: &str, filters: &Query) -> Result<Option<Subnet>> {
        self.find(&SUBNETS, name_or_id, filters, |s: &Subnet| &s.name)
    }
    /// Creates a subnet.
    pub fn create_subnet(&self, new: &NewSubnet) -> Result<Subnet> {
        self.conn.create(&SUBNETS, new, None)
    }
    /// Deletes a subnet.
    pub fn delete_subnet(&self, id: &str) -> Result<()> {
        self.conn.delete(&SUBNETS, id)
    }

    // ---- ports ----

    /// Ports matching `filters`: `device_id`, `network_id`, `fixed_ips` (`ip_address=10.0.0.5`,
    /// `subnet_id=...`; repeat for several), `mac_address`, `tags`, `project_id`, ...
    pub fn list_ports(&self, filters: &Query) -> Result<Vec<Port>> {
        self.conn.list(&PORTS, filters)
    }
    /// A port by ID.
    pub fn get_port(&self, id: &str) -> Result<Port> {
        self.conn.get(&PORTS, id)
    }
    /// A port by ID or exact name (among those matching `filters`).
    pub fn find_port(&self, name_or_id: &str, filters: &Query) -> Result<Option<Port>> {
        self.find(&PORTS, name_or_id, filters, |p: &Port| &p.name)
    }
    /// Creates a port.
    pub fn create_port(&self, new: &NewPort) -> Result<Port> {
        self.conn.create(&PORTS, new, None)
    }
    /// Updates attributes of a port (`{"name": ..., "security_groups": [...]}`).
    pub fn update_port(&self, id: &str, changes: Value) -> Result<Port> {
        self.conn.update(&PORTS, id, &changes)
    }
    /// Deletes a port.
    pub fn delete_port(&self, id: &str) -> Result<()> {
        self.conn.delete(&PORTS, id)
    }

    // ---- security groups ----

    /// Security groups matching `filters` (`name`, `project_id`, `tags`, ...).
    pub fn list_security_groups(&self, filters: &Query) -> Result<Vec<SecurityGroup>> {
        self.conn.list(&SECURITY_GROUPS, filters)
    }
    /// A security group by ID.
    pub fn get_security_group(&self, id: &str) -> Result<SecurityGroup> {
        self.conn.get(&SECURITY_GROUPS, id)
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
        self.conn.create(&SECURITY_GROUPS, &g, None)
    }
    /// Deletes a security group.
    pub fn delete_security_group(&self, id: &str) -> Result<()> {
        self.conn.delete(&SECURITY_GROUPS, id)
    }
    /// Creates a rule.
    pub fn create_security_group_rule(
        &self,
        new: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule> {
        self.conn.create(&SECURITY_GROUP_RULES, new, None)
    }
    /// Rules matching `filters` (`security_group_id`, `direction`, ...).
    pub fn list_security_group_rules(&self, filters: &Query) -> Result<Vec<SecurityGroupRule>> {
        self.conn.list(&SECURITY_GROUP_RULES, filters)
    }
    /// Deletes a rule.
    pub fn delete_security_group_rule(&self, id: &str) -> Result<()> {
        self.conn.delete(&SECURITY_GROUP_RULES, id)
    }

    // ---- routers ----

    /// Routers matching `filters`.
    pub fn list_routers(&self, filters: &Query) -> Result<Vec<Router>> {
        self.conn.list(&ROUTERS, filters)
    }
    /// A router by ID.
    pub fn get_router(&self, id: &str) -> Result<Router> {
        self.conn.get(&ROUTERS, id)
    }
    /// A router by ID or exact name (among those matching `filters`).
    pub fn find_router(&self, name_or_id: &str, filters: &Query) -> Result<Option<Router>> {
        self.find(&ROUTERS, name_or_id, filters, |r: &Router| &r.name)
    }
    /// Creates a router (with an external gateway if given).
    pub fn create_router(&self, new: &NewRouter) -> Result<Router> {
        self.conn.create(&ROUTERS, new, None)
    }
    /// Attaches a subnet to a router.
    pub fn add_router_interface(&self, router_id: &str, subnet_id: &str) -> Result<Value> {
        self.conn
            .call_json(
                Call::put(
                    S,
                    format!(
                        "/routers/{}/add_router_interface",
                        seg("router", router_id)?
                    ),
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
                    format!(
                        "/routers/{}/remove_router_interface",
                        seg("router", router_id)?
                    ),
                )
                .json(&json!({"subnet_id": subnet_id}))?,
            )
            .map_err(|e| e.not_found_as("router", router_id))
    }
    /// Deletes a router (its interfaces must be removed first).
    pub fn delete_router(&self, id: &str) -> Result<()> {
        self.conn.delete(&ROUTERS, id)
    }

    // ---- floating IPs ----

    /// Floating IPs matching `filters` (`floating_ip_address`, `port_id`, `fixed_ip_address`,
    /// `floating_network_id`, `project_id`, `tags`, ...).
    pub fn list_floating_ips(&self, filters: &Query) -> Result<Vec<FloatingIp>> {
        self.conn.list(&FLOATING_IPS, filters)
    }
    /// QoS policies matching `filters` (`name`, `project_id`, `shared`), the caller's own and the
    /// shared ones.
    pub fn list_qos_policies(&self, filters: &Query) -> Result<Vec<QosPolicy>> {
        self.conn.list(&QOS_POLICIES, filters)
    }

    /// A floating IP by ID.
    pub fn get_floating_ip(&self, id: &str) -> Result<FloatingIp> {
        self.conn.get(&FLOATING_IPS, id)
    }
    /// A floating IP by ID or address.
    pub fn find_floating_ip(&self, id_or_address: &str) -> Result<Option<FloatingIp>> {
        let by_address = Query::new().with("floating_ip_address", id_or_address);
        self.conn.find(
            &FLOATING_IPS,
            id_or_address,
            &by_address,
            |f: &FloatingIp| &f.floating_ip_address,
        )
    }
    /// Allocates a floating IP (and associates it when `port_id` is given).
    pub fn create_floating_ip(&self, new: &NewFloatingIp) -> Result<FloatingIp> {
        self.conn.create(&FLOATING_IPS, new, None)
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
        self.conn.update(&FLOATING_IPS, id, &body)
    }
    /// Releases a floating IP.
    pub fn delete_floating_ip(&self, id: &str) -> Result<()> {
        self.conn.delete(&FLOATING_IPS, id)
    }

    // ---- tags ----

    /// Adds a tag (`PUT /v2.0/{resource}/{id}/tags/{tag}`).
    pub fn add_tag(&self, resource: TaggedResource, id: &str, tag: &str) -> Result<()> {
        self.conn
            .call(Call::put(
                S,
                format!(
                    "/{}/{}/tags/{}",
                    resource.path(),
                    seg(resource.path(), id)?,
                    seg("tag", tag)?
                ),
            ))
            .map(drop)
            .map_err(|e| e.not_found_as(resource.path().trim_end_matches('s'), id))
    }

    /// Replaces all tags.
    pub fn set_tags(&self, resource: TaggedResource, id: &str, tags: &[String]) -> Result<()> {
        self.conn
            .call(
                Call::put(
                    S,
                    format!("/{}/{}/tags", resource.path(), seg(resource.path(), id)?),
                )
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
                format!(
                    "/{}/{}/tags/{}",
                    resource.path(),
                    seg(resource.path(), id)?,
                    seg("tag", tag)?
                ),
            ))
            .map(drop)
            .map_err(|e| e.not_found_as(resource.path().trim_end_matches('s'), id))
    }

    /// Waits until the port's status is one of `statuses` (e.g. `["ACTIVE"]`).
    pub fn wait_for_port(&self, id: &str, statuses: &[&str], timeout: Duration) -> Result<Port> {
        self.conn
            .wait_for(&PORTS, id, statuses, &["ERROR"], timeout, || None)
    }
}
