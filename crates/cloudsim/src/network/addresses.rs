//! A server's network view as Nova shows it: `addresses` in NIC order, security group names,
//! and the loopback floating IPs of conversion hosts.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::floating_ips::FloatingIp;
use super::listing::sorted;
use super::ports::Port;
use super::NetworkData;

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
        // The host's own address, unless it is one of its fixed addresses already.
        let listed = |a: &str| {
            ports
                .iter()
                .any(|p| p.fixed_ips.iter().any(|f| f.ip_address == a))
        };
        if let Some(addr) = extra.filter(|a| !listed(a)) {
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
