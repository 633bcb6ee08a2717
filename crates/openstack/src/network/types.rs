//! Neutron's resources as it sends them, and what the create calls send.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::de::null_default;
use crate::resource::Status;

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

/// A QoS policy (floating IPs, ports and networks refer to one by ID).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct QosPolicy {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Owner project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Whether other projects may use it.
    #[serde(default)]
    pub shared: bool,
    /// Other keys (`rules`, `is_default`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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

impl Status for Port {
    fn status(&self) -> &str {
        self.status.as_deref().unwrap_or_default()
    }
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

/// What [`NetworkApi::create_network`](crate::NetworkApi::create_network) sends.
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

/// What [`NetworkApi::create_subnet`](crate::NetworkApi::create_subnet) sends.
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

/// What [`NetworkApi::create_port`](crate::NetworkApi::create_port) sends.
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

/// What [`NetworkApi::create_security_group_rule`](crate::NetworkApi::create_security_group_rule) sends.
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

/// What [`NetworkApi::create_router`](crate::NetworkApi::create_router) sends.
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

/// What [`NetworkApi::create_floating_ip`](crate::NetworkApi::create_floating_ip) sends.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
