//! Conversion host lifecycle in one cloud: keypair, network, subnet, router, security group, server
//! and floating IP, created or deleted idempotently (find, compare, act).
//!
//! Each resource's finding, creating and deleting sit together in one file (`keypair`, `network`,
//! `security_group`, `server`), all through one [`Scope`]: lookups stay in the connection's project
//! (with admin credentials Neutron lists every project's resources, and a same-named network or
//! router of another project must never be used, changed or deleted), and what deploy creates
//! carries a mark: the description `osm conversion host <name>`, the server's metadata
//! `osm_conversion_host`, and for the keypair the public key itself. Delete removes only what carries
//! the mark in that project; a resource of the configured name that osm did not make is used when
//! deploy needs it and reported, untouched, by delete.
//!
//! A conversion host needs nothing but sshd: the agent is uploaded by the import steps (or by the
//! deploy playbook), and the tunnel uses the OpenSSH client that comes with sshd. Its security group
//! opens SSH (and ICMP) only to the addresses that need it: this machine, as the route to the host
//! shows its address, the other conversion host (`ssh_from`), and `ssh_cidr` when an operator widens
//! it.

mod keypair;
mod network;
mod scope;
mod security_group;
mod server;

use std::time::Duration;

use osm_openstack::{self as os, Connection};
use serde::{Deserialize, Serialize};

pub use server::reach_address;

use scope::Scope;

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
    /// Also allow SSH and ICMP from this CIDR (an operator widening the default).
    #[serde(default)]
    pub ssh_cidr: Option<String>,
    /// Addresses (or CIDRs) that need SSH besides this machine: the other conversion host, for the
    /// link.
    #[serde(default)]
    pub ssh_from: Vec<String>,
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
    /// Resources of the configured names that osm did not make (no mark, or another project's):
    /// delete leaves them alone and says so here.
    pub kept: Vec<String>,
    /// The host, when deployed.
    pub host: Option<Deployed>,
}

struct Ctx<'a> {
    conn: &'a Connection,
    s: &'a HostSettings,
    scope: Scope,
    check: bool,
    report: Report,
    timeout: Duration,
}

impl<'a> Ctx<'a> {
    fn new(
        conn: &'a Connection,
        s: &'a HostSettings,
        check: bool,
        timeout: Duration,
    ) -> Result<Ctx<'a>, ConversionError> {
        let project = conn.project_id().map_err(|source| ConversionError::Cloud {
            host: s.name.clone(),
            doing: "finding the project".into(),
            source,
        })?;
        Ok(Ctx {
            conn,
            s,
            scope: Scope::new(project, &s.name),
            check,
            report: Report::default(),
            timeout,
        })
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

    fn kept(&mut self, what: String) {
        self.report.kept.push(what);
    }

    /// One item of a lookup by name, or none; several is an error naming them.
    fn one<T>(
        &self,
        mut items: Vec<T>,
        kind: &str,
        name: &str,
    ) -> Result<Option<T>, ConversionError> {
        match items.len() {
            0 => Ok(None),
            1 => Ok(items.pop()),
            n => Err(self.invalid(format!(
                "{n} {kind}s are named '{name}' in project {}; remove the extra ones",
                self.scope.project
            ))),
        }
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
    let mut c = Ctx::new(conn, s, check, timeout)?;
    keypair::ensure(&mut c)?;
    let network_id = network::ensure(&mut c)?;
    let group = security_group::ensure(&mut c)?;
    let Some(srv) = server::ensure(&mut c, network_id.as_deref(), group.is_some())? else {
        return Ok(c.report);
    };
    server::ensure_floating_ip(&mut c, &srv)?;
    let srv = conn
        .compute()
        .get_server(&srv.id)
        .map_err(c.err("reading the server"))?;
    let address = reach_address(&srv, Some(&s.network_name)).ok_or_else(|| {
        c.invalid(format!(
            "server {} has no address to reach it by (no access IPv4, floating IP or fixed address)",
            srv.id
        ))
    })?;
    if let Some(g) = &group {
        security_group::ensure_rules(&mut c, g, &address)?;
    }
    c.report.host = Some(Deployed {
        id: srv.id,
        name: srv.name,
        status: srv.status,
        address,
        ssh_port: s.ssh_port,
    });
    Ok(c.report)
}

/// Deletes the conversion host and what `deploy` created for it in this project: its floating IP
/// (when osm allocated it and `delete_floating_ip`; otherwise it is only disassociated), the server, the security group, the router,
/// subnet and network (when managed) and the keypair. What is already gone is skipped; what osm did
/// not make is left alone and listed in [`Report::kept`].
pub fn delete(
    conn: &Connection,
    s: &HostSettings,
    check: bool,
    timeout: Duration,
) -> Result<Report, ConversionError> {
    let mut c = Ctx::new(conn, s, check, timeout)?;
    server::remove(&mut c)?;
    security_group::remove(&mut c)?;
    if s.manage_network {
        network::remove(&mut c)?;
    }
    keypair::remove(&mut c)?;
    Ok(c.report)
}

fn ignore_gone(r: Result<(), os::Error>) -> Result<(), os::Error> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
