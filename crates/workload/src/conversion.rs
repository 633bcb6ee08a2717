//! Conversion host lifecycle in one cloud: keypair, network, subnet, router, security group, server
//! and floating IP, created or deleted idempotently (find, compare, act).
//!
//! A conversion host needs nothing but sshd: the agent is uploaded by the import steps (or by the
//! deploy playbook), and the tunnel uses the OpenSSH client that comes with sshd.

use std::time::Duration;

use osm_openstack::{
    self as os, AllocationPool, BlockDeviceMapping, Connection, ExternalGateway, NewFloatingIp,
    NewNetwork, NewRouter, NewSecurityGroupRule, NewServer, NewSubnet, Query, ServerNetwork,
};
use serde::{Deserialize, Serialize};

/// What failed while deploying or deleting a conversion host.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// A cloud call failed.
    #[error("conversion host '{host}': {doing}: {source}")]
    Cloud {
        /// The host's name.
        host: String,
        /// What was being done.
        doing: String,
        /// The client's error.
        source: os::Error,
    },
    /// The settings or the cloud do not allow the deploy.
    #[error("conversion host '{host}': {message}")]
    Invalid {
        /// The host's name.
        host: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The conversion host of one cloud, as the deploy playbook's variables describe it.
#[derive(Debug, Clone, Deserialize)]
pub struct HostSettings {
    /// Server name.
    pub name: String,
    /// Image name or ID.
    #[serde(default)]
    pub image: Option<String>,
    /// Flavor name or ID.
    #[serde(default)]
    pub flavor: Option<String>,
    /// Keypair name.
    pub keypair_name: String,
    /// Public key of the keypair (OpenSSH format).
    #[serde(default)]
    pub public_key: Option<String>,
    /// Create the network, subnet and router.
    #[serde(default = "yes")]
    pub manage_network: bool,
    /// The network (created when managed).
    pub network_name: String,
    /// The subnet (created when managed).
    pub subnet_name: String,
    /// Subnet CIDR (managed network).
    #[serde(default = "default_cidr")]
    pub subnet_cidr: String,
    /// DNS servers of the subnet.
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
    /// The router (created when managed).
    pub router_name: String,
    /// External network for the router gateway and the floating IP.
    #[serde(default)]
    pub external_network: Option<String>,
    /// Security group allowing SSH and ICMP.
    pub security_group_name: String,
    /// Who may reach SSH.
    #[serde(default = "default_ssh_cidr")]
    pub ssh_cidr: String,
    /// SSH port to open.
    #[serde(default = "default_port")]
    pub ssh_port: u16,
    /// Boot from a volume of this many GiB instead of the image.
    #[serde(default)]
    pub boot_volume_size: Option<u64>,
    /// Availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// A fixed floating IP address to use (it is allocated if free); otherwise one is allocated.
    #[serde(default)]
    pub floating_ip_address: Option<String>,
    /// Attach a floating IP.
    #[serde(default = "yes")]
    pub floating_ip: bool,
    /// On delete, delete the floating IP osm allocated (false: release it, keeping the address).
    #[serde(default = "yes")]
    pub delete_floating_ip: bool,
    /// MTU of the managed network (Neutron's default when unset).
    #[serde(default)]
    pub network_mtu: Option<u32>,
    /// First address of the managed subnet's allocation pool (with `allocation_pool_end`).
    #[serde(default)]
    pub allocation_pool_start: Option<String>,
    /// Last address of the managed subnet's allocation pool.
    #[serde(default)]
    pub allocation_pool_end: Option<String>,
    /// Gateway of the managed subnet: the router's address on it (Neutron's first address when unset).
    #[serde(default)]
    pub gateway_ip: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_cidr() -> String {
    "192.168.199.0/24".into()
}
fn default_ssh_cidr() -> String {
    "0.0.0.0/0".into()
}
fn default_port() -> u16 {
    22
}

/// The deployed host, as `os_conversion_host_info` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// Server ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status.
    pub status: String,
    /// Address to reach it.
    pub address: String,
    /// SSH port.
    pub ssh_port: u16,
}

/// What a deploy or delete did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Resources created (or deleted), as `kind name`.
    pub changes: Vec<String>,
    /// The host, when deployed.
    pub host: Option<Deployed>,
}

const FIP_DESCRIPTION: &str = "osm conversion host";

struct Ctx<'a> {
    conn: &'a Connection,
    s: &'a HostSettings,
    check: bool,
    report: Report,
    timeout: Duration,
}

impl<'a> Ctx<'a> {
    fn new(conn: &'a Connection, s: &'a HostSettings, check: bool, timeout: Duration) -> Ctx<'a> {
        Ctx {
            conn,
            s,
            check,
            report: Report::default(),
            timeout,
        }
    }

    fn err(&self, doing: impl Into<String>) -> impl FnOnce(os::Error) -> ConversionError {
        let host = self.s.name.clone();
        let doing = doing.into();
        move |source| ConversionError::Cloud {
            host,
            doing,
            source,
        }
    }

    fn invalid(&self, message: impl Into<String>) -> ConversionError {
        ConversionError::Invalid {
            host: self.s.name.clone(),
            message: message.into(),
        }
    }

    fn changed(&mut self, what: String) {
        self.report.changes.push(what);
    }
}

/// Creates whatever of the conversion host is missing, and returns it. In check mode, reports what
/// would be created without creating anything.
pub fn deploy(
    conn: &Connection,
    s: &HostSettings,
    check: bool,
    timeout: Duration,
) -> Result<Report, ConversionError> {
    let mut c = Ctx::new(conn, s, check, timeout);
    keypair(&mut c)?;
    let network_id = network(&mut c)?;
    let sg = security_group(&mut c)?;
    let server = server(&mut c, network_id.as_deref(), sg.as_deref())?;
    if let Some(srv) = server {
        let address = floating_ip(&mut c, &srv)?;
        let srv = conn
            .compute()
            .get_server(&srv.id)
            .map_err(c.err("reading the server"))?;
        let address = address
            .or_else(|| srv.access_ipv4.clone().filter(|a| !a.is_empty()))
            .or_else(|| srv.addresses.all().next().map(|a| a.addr.clone()))
            .unwrap_or_default();
        c.report.host = Some(Deployed {
            id: srv.id,
            name: srv.name,
            status: srv.status,
            address,
            ssh_port: s.ssh_port,
        });
    }
    Ok(c.report)
}

fn keypair(c: &mut Ctx) -> Result<(), ConversionError> {
    let name = c.s.keypair_name.clone();
    let Some(public) =
        c.s.public_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
    else {
        return Err(c.invalid("no public key for the conversion keypair"));
    };
    match c.conn.compute().find_keypair(&name).map_err(c.err(format!("looking up keypair {name}")))? {
        Some(k) if same_key(&k.public_key, public) => Ok(()),
        Some(_) => Err(c.invalid(format!(
            "keypair '{name}' exists with another public key than the local one; delete it or point os_migrate_conversion_keypair_private_path at its private key"
        ))),
        None => {
            if !c.check {
                c.conn.compute().create_keypair(&name, public, None).map_err(c.err(format!("creating keypair {name}")))?;
            }
            c.changed(format!("keypair {name}"));
            Ok(())
        }
    }
}

fn same_key(a: &str, b: &str) -> bool {
    let body = |k: &str| k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    body(a) == body(b)
}

fn find_one<T>(
    mut items: Vec<T>,
    kind: &str,
    name: &str,
    host: &str,
) -> Result<Option<T>, ConversionError> {
    match items.len() {
        0 => Ok(None),
        1 => Ok(items.pop()),
        n => Err(ConversionError::Invalid {
            host: host.to_string(),
            message: format!("{n} {kind}s are named '{name}'; remove the extra ones"),
        }),
    }
}

fn external_network(c: &Ctx) -> Result<Option<os::Network>, ConversionError> {
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

/// The network, subnet and router (when managed); returns the network ID to boot on.
fn network(c: &mut Ctx) -> Result<Option<String>, ConversionError> {
    let s = c.s.clone();
    let net = c.conn.network();
    let host = s.name.clone();
    let existing = find_one(
        net.list_networks(&Query::new().with("name", s.network_name.clone()))
            .map_err(c.err("listing networks"))?,
        "network",
        &s.network_name,
        &host,
    )?;
    if !s.manage_network {
        return existing.map(|n| Some(n.id)).ok_or_else(|| {
            c.invalid(format!(
                "network '{}' not found (and its management is off)",
                s.network_name
            ))
        });
    }
    let network_id = match existing {
        Some(n) => Some(n.id),
        None if c.check => {
            c.changed(format!("network {}", s.network_name));
            None
        }
        None => {
            let n = net
                .create_network(&NewNetwork {
                    name: s.network_name.clone(),
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
        Some(nid) => find_one(
            net.list_subnets(
                &Query::new()
                    .with("name", s.subnet_name.clone())
                    .with("network_id", nid.clone()),
            )
            .map_err(c.err("listing subnets"))?,
            "subnet",
            &s.subnet_name,
            &host,
        )?,
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
    let ext = external_network(c)?;
    let router = find_one(
        net.list_routers(&Query::new().with("name", s.router_name.clone()))
            .map_err(c.err("listing routers"))?,
        "router",
        &s.router_name,
        &host,
    )?;
    let router_id = match router {
        Some(r) => Some(r.id),
        None if c.check => {
            c.changed(format!("router {}", s.router_name));
            None
        }
        None => {
            let r = net
                .create_router(&NewRouter {
                    name: s.router_name.clone(),
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

fn security_group(c: &mut Ctx) -> Result<Option<String>, ConversionError> {
    let s = c.s.clone();
    let net = c.conn.network();
    let project = c.conn.project_id().map_err(c.err("finding the project"))?;
    let existing = find_one(
        net.list_security_groups(
            &Query::new()
                .with("name", s.security_group_name.clone())
                .with("project_id", project),
        )
        .map_err(c.err("listing security groups"))?,
        "security group",
        &s.security_group_name,
        &s.name,
    )?;
    let sg = match existing {
        Some(g) => g,
        None if c.check => {
            c.changed(format!("security group {}", s.security_group_name));
            return Ok(None);
        }
        None => {
            let g = net
                .create_security_group(
                    &s.security_group_name,
                    Some("osm conversion hosts: SSH and ICMP"),
                )
                .map_err(c.err(format!("creating security group {}", s.security_group_name)))?;
            c.changed(format!("security group {}", s.security_group_name));
            g
        }
    };
    let wanted = [("tcp", Some(u32::from(s.ssh_port))), ("icmp", None)];
    for (proto, port) in wanted {
        let present = sg.rules.iter().any(|r| {
            r.direction == "ingress"
                && r.protocol.as_deref() == Some(proto)
                && r.port_range_min == port
                && r.remote_ip_prefix.as_deref().unwrap_or("0.0.0.0/0") == s.ssh_cidr
        });
        if !present {
            if !c.check {
                net.create_security_group_rule(&NewSecurityGroupRule {
                    security_group_id: sg.id.clone(),
                    direction: "ingress".into(),
                    ethertype: Some("IPv4".into()),
                    protocol: Some(proto.into()),
                    port_range_min: port,
                    port_range_max: port,
                    remote_ip_prefix: Some(s.ssh_cidr.clone()),
                    ..NewSecurityGroupRule::default()
                })
                .map_err(c.err(format!(
                    "adding a {proto} rule to security group {}",
                    s.security_group_name
                )))?;
            }
            c.changed(format!(
                "security group rule {proto} {} from {}",
                port.map(|p| p.to_string()).unwrap_or_default(),
                s.ssh_cidr
            ));
        }
    }
    Ok(Some(sg.id))
}

fn server(
    c: &mut Ctx,
    network_id: Option<&str>,
    sg: Option<&str>,
) -> Result<Option<os::Server>, ConversionError> {
    let s = c.s.clone();
    let compute = c.conn.compute();
    let found = find_one(
        compute
            .list_servers_with(&Query::new().with("name", crate::nova_exact_name(&s.name)))
            .map_err(c.err("listing servers"))?
            .into_iter()
            .filter(|x| x.name == s.name)
            .collect(),
        "server",
        &s.name,
        &s.name,
    )?;
    if let Some(srv) = found {
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
        security_groups: sg
            .map(|_| vec![s.security_group_name.clone()])
            .unwrap_or_default(),
        networks: network_id
            .map(|n| {
                vec![ServerNetwork::Network {
                    uuid: n.to_string(),
                    fixed_ip: None,
                }]
            })
            .unwrap_or_default(),
        availability_zone: s.availability_zone.clone(),
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

fn floating_ip(c: &mut Ctx, srv: &os::Server) -> Result<Option<String>, ConversionError> {
    if !c.s.floating_ip {
        return Ok(None);
    }
    if let Some(a) = srv
        .addresses
        .all()
        .find(|a| a.ip_type.as_deref() == Some("floating"))
    {
        return Ok(Some(a.addr.clone()));
    }
    let net = c.conn.network();
    let ext = external_network(c)?.ok_or_else(|| c.invalid("a floating IP needs the external network (os_migrate_*_conversion_external_network_name)"))?;
    let port = net
        .list_ports(&Query::new().with("device_id", srv.id.clone()))
        .map_err(c.err("listing the server's ports"))?
        .into_iter()
        .next()
        .ok_or_else(|| c.invalid("the server has no port to attach a floating IP to"))?;
    c.changed(format!("floating IP for {}", c.s.name));
    if c.check {
        return Ok(None);
    }
    if let Some(addr) = &c.s.floating_ip_address {
        let existing = net
            .list_floating_ips(&Query::new().with("floating_ip_address", addr.clone()))
            .map_err(c.err(format!("looking up floating IP {addr}")))?
            .into_iter()
            .next();
        if let Some(f) = existing {
            if f.port_id.as_deref().is_some_and(|p| p != port.id) {
                return Err(c.invalid(format!(
                    "floating IP {addr} is associated with another port ({})",
                    f.port_id.unwrap_or_default()
                )));
            }
            net.update_floating_ip_port(&f.id, Some(&port.id), None)
                .map_err(c.err(format!("associating floating IP {addr}")))?;
            return Ok(Some(f.floating_ip_address));
        }
    }
    let f = net
        .create_floating_ip(&NewFloatingIp {
            floating_network_id: ext.id,
            floating_ip_address: c.s.floating_ip_address.clone(),
            port_id: Some(port.id),
            description: Some(format!("{FIP_DESCRIPTION} {}", c.s.name)),
            ..NewFloatingIp::default()
        })
        .map_err(c.err("allocating a floating IP"))?;
    Ok(Some(f.floating_ip_address))
}

/// Deletes the conversion host and what `deploy` created for it: its floating IP (when osm allocated
/// it and `delete_floating_ip`; an address osm did not allocate is only released), the server, the security group, the router, subnet and network (when managed) and the
/// keypair. What is already gone is skipped.
pub fn delete(
    conn: &Connection,
    s: &HostSettings,
    check: bool,
    timeout: Duration,
) -> Result<Report, ConversionError> {
    let mut c = Ctx::new(conn, s, check, timeout);
    let net = conn.network();
    let compute = conn.compute();
    let servers: Vec<os::Server> = compute
        .list_servers_with(&Query::new().with("name", crate::nova_exact_name(&s.name)))
        .map_err(c.err("listing servers"))?;
    for srv in servers.into_iter().filter(|x| x.name == s.name) {
        let ports = net
            .list_ports(&Query::new().with("device_id", srv.id.clone()))
            .map_err(c.err("listing the server's ports"))?;
        for p in &ports {
            for f in net
                .list_floating_ips(&Query::new().with("port_id", p.id.clone()))
                .map_err(c.err("listing floating IPs"))?
            {
                let ours = f
                    .description
                    .as_deref()
                    .is_some_and(|d| d.starts_with(FIP_DESCRIPTION));
                c.changed(format!("floating IP {}", f.floating_ip_address));
                if !check {
                    let r = if ours && s.delete_floating_ip {
                        net.delete_floating_ip(&f.id)
                    } else {
                        net.update_floating_ip_port(&f.id, None, None).map(drop)
                    };
                    r.map_err(c.err(format!("releasing floating IP {}", f.floating_ip_address)))?;
                }
            }
        }
        c.changed(format!("server {}", s.name));
        if !check {
            compute
                .delete_server(&srv.id)
                .map_err(c.err("deleting the server"))?;
            compute
                .wait_for_server_deleted(&srv.id, timeout)
                .map_err(c.err("waiting for the server to go"))?;
        }
    }
    let project = conn.project_id().map_err(c.err("finding the project"))?;
    for g in net
        .list_security_groups(
            &Query::new()
                .with("name", s.security_group_name.clone())
                .with("project_id", project),
        )
        .map_err(c.err("listing security groups"))?
    {
        c.changed(format!("security group {}", g.name));
        if !check {
            ignore_gone(net.delete_security_group(&g.id))
                .map_err(c.err(format!("deleting security group {}", g.name)))?;
        }
    }
    if s.manage_network {
        for r in net
            .list_routers(&Query::new().with("name", s.router_name.clone()))
            .map_err(c.err("listing routers"))?
        {
            let ports = net
                .list_ports(&Query::new().with("device_id", r.id.clone()))
                .map_err(c.err("listing the router's ports"))?;
            for p in ports
                .iter()
                .filter(|p| p.device_owner.as_deref() == Some("network:router_interface"))
            {
                for f in &p.fixed_ips {
                    if let Some(sid) = &f.subnet_id {
                        c.changed(format!("router interface {} -> {sid}", r.name));
                        if !check {
                            ignore_gone(net.remove_router_interface(&r.id, sid).map(drop))
                                .map_err(c.err("removing a router interface"))?;
                        }
                    }
                }
            }
            c.changed(format!("router {}", r.name));
            if !check {
                ignore_gone(net.delete_router(&r.id))
                    .map_err(c.err(format!("deleting router {}", r.name)))?;
            }
        }
        for n in net
            .list_networks(&Query::new().with("name", s.network_name.clone()))
            .map_err(c.err("listing networks"))?
        {
            for sn in net
                .list_subnets(&Query::new().with("network_id", n.id.clone()))
                .map_err(c.err("listing subnets"))?
            {
                c.changed(format!("subnet {}", sn.name));
                if !check {
                    ignore_gone(net.delete_subnet(&sn.id))
                        .map_err(c.err(format!("deleting subnet {}", sn.name)))?;
                }
            }
            c.changed(format!("network {}", n.name));
            if !check {
                ignore_gone(net.delete_network(&n.id))
                    .map_err(c.err(format!("deleting network {}", n.name)))?;
            }
        }
    }
    if compute
        .find_keypair(&s.keypair_name)
        .map_err(c.err("looking up the keypair"))?
        .is_some()
    {
        c.changed(format!("keypair {}", s.keypair_name));
        if !check {
            ignore_gone(compute.delete_keypair(&s.keypair_name))
                .map_err(c.err("deleting the keypair"))?;
        }
    }
    Ok(c.report)
}

fn ignore_gone(r: Result<(), os::Error>) -> Result<(), os::Error> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
