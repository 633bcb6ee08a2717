//! The conversion host server, its floating IP, and the address to reach it by.

use std::collections::BTreeMap;

use osm_openstack::{
    self as os, BlockDeviceMapping, NewFloatingIp, NewServer, Query, ServerNetwork,
};

use super::scope::SERVER_MARK_KEY;
use super::{network, ConversionError, Ctx};

/// The address to reach a conversion host by: its access IPv4 (set by whoever says how to reach
/// it), else its floating IP, else its fixed address (a host on a provider network has no floating
/// IP) - on `network` when it has one there, IPv4 first.
pub fn reach_address(srv: &os::Server, network: Option<&str>) -> Option<String> {
    if let Some(a) = srv.access_ipv4.as_deref().filter(|a| !a.is_empty()) {
        return Some(a.to_string());
    }
    let floating = srv
        .addresses
        .all()
        .find(|a| a.ip_type.as_deref() == Some("floating"));
    if let Some(a) = floating {
        return Some(a.addr.clone());
    }
    let fixed = |on: Option<&str>| {
        let mut found: Vec<&os::ServerAddress> = srv
            .addresses
            .networks()
            .filter(|(n, _)| on.is_none_or(|want| *n == want))
            .flat_map(|(_, a)| a.iter())
            .filter(|a| a.ip_type.as_deref() != Some("floating"))
            .collect();
        // IPv4 first, keeping NIC order otherwise.
        found.sort_by_key(|a| a.addr.contains(':'));
        found.first().map(|a| a.addr.clone())
    };
    fixed(network).or_else(|| fixed(None))
}

/// Whether osm made this server for this host (its metadata carries the mark; Nova keeps servers
/// in their project).
fn made(c: &Ctx, srv: &os::Server) -> bool {
    srv.metadata.get(SERVER_MARK_KEY) == Some(&c.scope.host)
}

fn by_name(c: &Ctx) -> Result<Vec<os::Server>, ConversionError> {
    let name = &c.s.name;
    Ok(c.conn
        .compute()
        .list_servers_with(&Query::new().with("name", crate::nova_exact_name(name)))
        .map_err(c.err("listing servers"))?
        .into_iter()
        .filter(|x| &x.name == name)
        .collect())
}

/// The server, found by name or created (with the mark) and waited for until ACTIVE; None in check
/// mode when it would be created.
pub(super) fn ensure(
    c: &mut Ctx,
    network_id: Option<&str>,
    with_group: bool,
) -> Result<Option<os::Server>, ConversionError> {
    let s = c.s.clone();
    let compute = c.conn.compute();
    let found = by_name(c)?;
    if let Some(srv) = c.one(found, "server", &s.name)? {
        return match srv.status.as_str() {
            "ACTIVE" => Ok(Some(srv)),
            "BUILD" => compute
                .wait_for_server(&srv.id, &["ACTIVE"], c.timeout)
                .map(Some)
                .map_err(c.err("waiting for the server")),
            "SHUTOFF" if !c.check => {
                compute
                    .start_server(&srv.id)
                    .map_err(c.err("starting the server"))?;
                c.changed(format!("started server {}", s.name));
                compute
                    .wait_for_server(&srv.id, &["ACTIVE"], c.timeout)
                    .map(Some)
                    .map_err(c.err("waiting for the server"))
            }
            other => Err(c.invalid(format!(
                "server {} is {other}; delete it (delete_conversion_hosts) and deploy again",
                srv.id
            ))),
        };
    }
    c.changed(format!("server {}", s.name));
    if c.check {
        return Ok(None);
    }
    let image = s
        .image
        .clone()
        .ok_or_else(|| c.invalid("no image given (os_migrate_*_conversion_image_name)"))?;
    let image = c
        .conn
        .image()
        .find_image(&image)
        .map_err(c.err(format!("looking up image {image}")))?
        .ok_or_else(|| c.invalid(format!("image '{image}' not found")))?;
    let flavor = s
        .flavor
        .clone()
        .ok_or_else(|| c.invalid("no flavor given (os_migrate_*_conversion_flavor_name)"))?;
    let flavor = compute
        .find_flavor(&flavor)
        .map_err(c.err(format!("looking up flavor {flavor}")))?
        .ok_or_else(|| c.invalid(format!("flavor '{flavor}' not found")))?;
    let mut new = NewServer {
        name: s.name.clone(),
        flavor_ref: flavor.id,
        key_name: Some(s.keypair_name.clone()),
        security_groups: if with_group {
            vec![s.security_group_name.clone()]
        } else {
            Vec::new()
        },
        networks: network_id
            .map(|n| {
                vec![ServerNetwork::Network {
                    uuid: n.to_string(),
                    fixed_ip: None,
                }]
            })
            .unwrap_or_default(),
        availability_zone: s.availability_zone.clone(),
        metadata: BTreeMap::from([(SERVER_MARK_KEY.to_string(), c.scope.host.clone())]),
        ..NewServer::default()
    };
    match s.boot_volume_size {
        Some(size) => {
            let mut bdm = BlockDeviceMapping::volume(&image.id, Some(0));
            bdm.source_type = "image".into();
            bdm.volume_size = Some(size);
            bdm.delete_on_termination = true;
            new.block_device_mapping_v2 = vec![bdm];
        }
        None => new.image_ref = Some(image.id),
    }
    let created = compute
        .create_server(&new)
        .map_err(c.err("creating the server"))?;
    compute
        .wait_for_server(&created.id, &["ACTIVE"], c.timeout)
        .map(Some)
        .map_err(c.err("waiting for the server to become ACTIVE"))
}

/// The server's floating IP (when asked for): the one it has, the given address of this project,
/// or a new one carrying the mark.
pub(super) fn ensure_floating_ip(c: &mut Ctx, srv: &os::Server) -> Result<(), ConversionError> {
    if !c.s.floating_ip
        || srv
            .addresses
            .all()
            .any(|a| a.ip_type.as_deref() == Some("floating"))
    {
        return Ok(());
    }
    let net = c.conn.network();
    let ext = network::external(c)?.ok_or_else(|| c.invalid("a floating IP needs the external network (os_migrate_*_conversion_external_network_name)"))?;
    let port = net
        .list_ports(&Query::new().with("device_id", srv.id.clone()))
        .map_err(c.err("listing the server's ports"))?
        .into_iter()
        .next()
        .ok_or_else(|| c.invalid("the server has no port to attach a floating IP to"))?;
    c.changed(format!("floating IP for {}", c.s.name));
    if c.check {
        return Ok(());
    }
    if let Some(addr) = &c.s.floating_ip_address {
        let existing = net
            .list_floating_ips(
                &Query::new()
                    .with("floating_ip_address", addr.clone())
                    .with("project_id", c.scope.project.clone()),
            )
            .map_err(c.err(format!("looking up floating IP {addr}")))?
            .into_iter()
            .find(|f| c.scope.holds(f.project_id.as_deref()));
        if let Some(f) = existing {
            if f.port_id.as_deref().is_some_and(|p| p != port.id) {
                return Err(c.invalid(format!(
                    "floating IP {addr} is associated with another port ({})",
                    f.port_id.unwrap_or_default()
                )));
            }
            net.update_floating_ip_port(&f.id, Some(&port.id), None)
                .map_err(c.err(format!("associating floating IP {addr}")))?;
            return Ok(());
        }
    }
    net.create_floating_ip(&NewFloatingIp {
        floating_network_id: ext.id,
        floating_ip_address: c.s.floating_ip_address.clone(),
        port_id: Some(port.id),
        description: c.scope.description(),
        ..NewFloatingIp::default()
    })
    .map_err(c.err("allocating a floating IP"))?;
    Ok(())
}

/// Deletes the server osm made (its floating IP too when osm allocated it and `delete_floating_ip`;
/// otherwise the address is only disassociated). A server of that name osm did not make is left alone.
pub(super) fn remove(c: &mut Ctx) -> Result<(), ConversionError> {
    let net = c.conn.network();
    let compute = c.conn.compute();
    for srv in by_name(c)? {
        if !made(c, &srv) {
            c.kept(format!(
                "server {} ({}): osm did not make it",
                srv.name, srv.id
            ));
            continue;
        }
        let ports = net
            .list_ports(&Query::new().with("device_id", srv.id.clone()))
            .map_err(c.err("listing the server's ports"))?;
        for p in &ports {
            for f in net
                .list_floating_ips(&Query::new().with("port_id", p.id.clone()))
                .map_err(c.err("listing floating IPs"))?
            {
                c.changed(format!("floating IP {}", f.floating_ip_address));
                if c.check {
                    continue;
                }
                let ours = c
                    .scope
                    .made(f.project_id.as_deref(), f.description.as_deref());
                let r = if ours && c.s.delete_floating_ip {
                    net.delete_floating_ip(&f.id)
                } else {
                    net.update_floating_ip_port(&f.id, None, None).map(drop)
                };
                r.map_err(c.err(format!("releasing floating IP {}", f.floating_ip_address)))?;
            }
        }
        c.changed(format!("server {}", c.s.name));
        if !c.check {
            compute
                .delete_server(&srv.id)
                .map_err(c.err("deleting the server"))?;
            compute
                .wait_for_server_deleted(&srv.id, c.timeout)
                .map_err(c.err("waiting for the server to go"))?;
        }
    }
    Ok(())
}
