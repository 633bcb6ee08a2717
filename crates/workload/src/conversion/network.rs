//! The conversion host's network, subnet and router (when managed), and the external network.

use osm_openstack::{
    self as os, AllocationPool, ExternalGateway, NewNetwork, NewRouter, NewSubnet, Query,
};

use super::{ignore_gone, ConversionError, Ctx};

/// The external network, for the router gateway and the floating IP: the operator's, so looked up
/// in every project the token sees.
pub(super) fn external(c: &Ctx) -> Result<Option<os::Network>, ConversionError> {
    let Some(name) = c.s.external_network.as_deref() else {
        return Ok(None);
    };
    c.conn
        .network()
        .find_network(name, &Query::new())
        .map_err(c.err(format!("looking up external network {name}")))?
        .map(Some)
        .ok_or_else(|| c.invalid(format!("external network '{name}' not found")))
}

/// The network, subnet and router (when managed), each found by name in this project or created
/// with the mark; returns the network ID to boot on.
pub(super) fn ensure(c: &mut Ctx) -> Result<Option<String>, ConversionError> {
    let s = c.s.clone();
    let net = c.conn.network();
    if !s.manage_network {
        return unmanaged(c).map(Some);
    }
    let found = net
        .list_networks(&c.scope.named(&s.network_name))
        .map_err(c.err("listing networks"))?;
    let found = found
        .into_iter()
        .filter(|n| c.scope.holds(n.project_id.as_deref()))
        .collect();
    let network_id = match c.one(found, "network", &s.network_name)? {
        Some(n) => Some(n.id),
        None if c.check => {
            c.changed(format!("network {}", s.network_name));
            None
        }
        None => {
            let n = net
                .create_network(&NewNetwork {
                    name: s.network_name.clone(),
                    description: c.scope.description(),
                    extra: s
                        .network_mtu
                        .map(|m| serde_json::Map::from_iter([("mtu".to_string(), m.into())]))
                        .unwrap_or_default(),
                    ..NewNetwork::default()
                })
                .map_err(c.err(format!("creating network {}", s.network_name)))?;
            c.changed(format!("network {}", s.network_name));
            Some(n.id)
        }
    };
    let subnet = match &network_id {
        Some(nid) => {
            let found = net
                .list_subnets(
                    &c.scope
                        .named(&s.subnet_name)
                        .with("network_id", nid.clone()),
                )
                .map_err(c.err("listing subnets"))?
                .into_iter()
                .filter(|sn| c.scope.holds(sn.project_id.as_deref()))
                .collect();
            c.one(found, "subnet", &s.subnet_name)?
        }
        None => None,
    };
    let subnet_id = match (subnet, &network_id) {
        (Some(sn), _) => Some(sn.id),
        (None, Some(nid)) if !c.check => {
            let sn = net
                .create_subnet(&NewSubnet {
                    network_id: nid.clone(),
                    cidr: s.subnet_cidr.clone(),
                    ip_version: 4,
                    name: Some(s.subnet_name.clone()),
                    enable_dhcp: Some(true),
                    dns_nameservers: s.dns_nameservers.clone(),
                    gateway_ip: s.gateway_ip.clone(),
                    allocation_pools: match (&s.allocation_pool_start, &s.allocation_pool_end) {
                        (Some(start), Some(end)) => vec![AllocationPool {
                            start: start.clone(),
                            end: end.clone(),
                        }],
                        _ => Vec::new(),
                    },
                    description: c.scope.description(),
                    ..NewSubnet::default()
                })
                .map_err(c.err(format!("creating subnet {}", s.subnet_name)))?;
            c.changed(format!("subnet {}", s.subnet_name));
            Some(sn.id)
        }
        (None, _) => {
            c.changed(format!("subnet {}", s.subnet_name));
            None
        }
    };
    let ext = external(c)?;
    let found = net
        .list_routers(&c.scope.named(&s.router_name))
        .map_err(c.err("listing routers"))?
        .into_iter()
        .filter(|r| c.scope.holds(r.project_id.as_deref()))
        .collect();
    let router_id = match c.one(found, "router", &s.router_name)? {
        Some(r) => Some(r.id),
        None if c.check => {
            c.changed(format!("router {}", s.router_name));
            None
        }
        None => {
            let r = net
                .create_router(&NewRouter {
                    name: s.router_name.clone(),
                    description: c.scope.description(),
                    external_gateway_info: ext.as_ref().map(|e| ExternalGateway {
                        network_id: e.id.clone(),
                        ..ExternalGateway::default()
                    }),
                    ..NewRouter::default()
                })
                .map_err(c.err(format!("creating router {}", s.router_name)))?;
            c.changed(format!("router {}", s.router_name));
            Some(r.id)
        }
    };
    if let (Some(rid), Some(sid)) = (router_id, subnet_id) {
        let ports = net
            .list_ports(&Query::new().with("device_id", rid.clone()))
            .map_err(c.err("listing the router's ports"))?;
        if !ports.iter().any(|p| {
            p.fixed_ips
                .iter()
                .any(|f| f.subnet_id.as_deref() == Some(sid.as_str()))
        }) {
            if !c.check {
                net.add_router_interface(&rid, &sid).map_err(c.err(format!(
                    "adding subnet {} to router {}",
                    s.subnet_name, s.router_name
                )))?;
            }
            c.changed(format!(
                "router interface {} -> {}",
                s.router_name, s.subnet_name
            ));
        }
    }
    Ok(network_id)
}

/// A network osm does not manage: this project's of that name, else a shared or external one
/// (a provider network the operator offers every project).
fn unmanaged(c: &Ctx) -> Result<String, ConversionError> {
    let name = &c.s.network_name;
    let found = c
        .conn
        .network()
        .list_networks(&Query::new().with("name", name.clone()))
        .map_err(c.err("listing networks"))?;
    let (ours, others): (Vec<_>, Vec<_>) = found
        .into_iter()
        .partition(|n| c.scope.holds(n.project_id.as_deref()));
    let offered: Vec<_> = others
        .into_iter()
        .filter(|n| n.shared == Some(true) || n.is_router_external == Some(true))
        .collect();
    let pick = if ours.is_empty() {
        c.one(offered, "shared network", name)?
    } else {
        c.one(ours, "network", name)?
    };
    pick.map(|n| n.id).ok_or_else(|| {
        c.invalid(format!(
            "network '{name}' not found in project {} nor shared with it (and its management is off)",
            c.scope.project
        ))
    })
}

/// Deletes the router, subnet and network osm made for this host in this project. A router that
/// still routes a subnet osm did not make, or a network that still holds one, stays.
pub(super) fn remove(c: &mut Ctx) -> Result<(), ConversionError> {
    let s = c.s.clone();
    let net = c.conn.network();
    for r in net
        .list_routers(&c.scope.named(&s.router_name))
        .map_err(c.err("listing routers"))?
    {
        if !c.scope.holds(r.project_id.as_deref()) {
            continue;
        }
        if !c
            .scope
            .made(r.project_id.as_deref(), r.description.as_deref())
        {
            c.kept(format!("router {} ({}): osm did not make it", r.name, r.id));
            continue;
        }
        let ports = net
            .list_ports(&Query::new().with("device_id", r.id.clone()))
            .map_err(c.err("listing the router's ports"))?;
        let mut foreign = 0;
        for sid in ports
            .iter()
            .filter(|p| p.device_owner.as_deref() == Some("network:router_interface"))
            .flat_map(|p| p.fixed_ips.iter().filter_map(|f| f.subnet_id.clone()))
        {
            let sn = match net.get_subnet(&sid) {
                Ok(sn) => sn,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(c.err("reading a routed subnet")(e)),
            };
            if !c
                .scope
                .made(sn.project_id.as_deref(), sn.description.as_deref())
            {
                foreign += 1;
                continue;
            }
            c.changed(format!("router interface {} -> {}", r.name, sn.name));
            if !c.check {
                ignore_gone(net.remove_router_interface(&r.id, &sid).map(drop))
                    .map_err(c.err("removing a router interface"))?;
            }
        }
        if foreign > 0 {
            c.kept(format!(
                "router {} ({}): it also routes {foreign} subnet(s) osm did not make",
                r.name, r.id
            ));
            continue;
        }
        c.changed(format!("router {}", r.name));
        if !c.check {
            ignore_gone(net.delete_router(&r.id))
                .map_err(c.err(format!("deleting router {}", r.name)))?;
        }
    }
    for n in net
        .list_networks(&c.scope.named(&s.network_name))
        .map_err(c.err("listing networks"))?
    {
        if !c.scope.holds(n.project_id.as_deref()) {
            continue;
        }
        if !c
            .scope
            .made(n.project_id.as_deref(), n.description.as_deref())
        {
            c.kept(format!(
                "network {} ({}): osm did not make it",
                n.name, n.id
            ));
            continue;
        }
        let (ours, others): (Vec<_>, Vec<_>) = net
            .list_subnets(&Query::new().with("network_id", n.id.clone()))
            .map_err(c.err("listing subnets"))?
            .into_iter()
            .partition(|sn| {
                c.scope
                    .made(sn.project_id.as_deref(), sn.description.as_deref())
            });
        for sn in ours {
            c.changed(format!("subnet {}", sn.name));
            if !c.check {
                ignore_gone(net.delete_subnet(&sn.id))
                    .map_err(c.err(format!("deleting subnet {}", sn.name)))?;
            }
        }
        if !others.is_empty() {
            c.kept(format!(
                "network {} ({}): it also holds {} subnet(s) osm did not make",
                n.name,
                n.id,
                others.len()
            ));
            continue;
        }
        c.changed(format!("network {}", n.name));
        if !c.check {
            ignore_gone(net.delete_network(&n.id))
                .map_err(c.err(format!("deleting network {}", n.name)))?;
        }
    }
    Ok(())
}
