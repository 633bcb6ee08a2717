//! The conversion host's security group: SSH and ICMP from the addresses that need them, and from
//! nowhere else unless an operator widens it.
//!
//! Who needs SSH: this machine (the migrator runs every command on the hosts), at the address the
//! route to the host gives it; the other conversion host, for the link (`ssh_from`); and whatever
//! `ssh_cidr` adds (a migrator behind NAT, say). ICMP follows SSH, for diagnosis. The rules osm adds
//! carry the mark, so that a later deploy can narrow them (a migrator that moved, a widening taken
//! back) without touching rules an operator added.

use std::net::{IpAddr, UdpSocket};

use osm_openstack::{NewSecurityGroupRule, SecurityGroup, SecurityGroupRule};

use super::{ignore_gone, ConversionError, Ctx};

/// The description 1.0.0 gave the groups it created (with rules open to `0.0.0.0/0` and no
/// description of their own): such a group, and those rules, are osm's to narrow and delete.
const LEGACY_DESCRIPTION: &str = "osm conversion hosts: SSH and ICMP";

/// The group, found by name in this project or created with the mark.
pub(super) fn ensure(c: &mut Ctx) -> Result<Option<SecurityGroup>, ConversionError> {
    sources_given(c)?;
    let name = c.s.security_group_name.clone();
    let net = c.conn.network();
    let found = net
        .list_security_groups(&c.scope.named(&name))
        .map_err(c.err("listing security groups"))?
        .into_iter()
        .filter(|g| c.scope.holds(g.project_id.as_deref()))
        .collect();
    match c.one(found, "security group", &name)? {
        Some(g) => Ok(Some(g)),
        None if c.check => {
            c.changed(format!("security group {name}"));
            Ok(None)
        }
        None => {
            let g = net
                .create_security_group(&name, c.scope.description().as_deref())
                .map_err(c.err(format!("creating security group {name}")))?;
            c.changed(format!("security group {name}"));
            Ok(Some(g))
        }
    }
}

fn ours(c: &Ctx, g: &SecurityGroup) -> bool {
    c.scope
        .made(g.project_id.as_deref(), g.description.as_deref())
        || (c.scope.holds(g.project_id.as_deref())
            && g.description.as_deref() == Some(LEGACY_DESCRIPTION))
}

/// Whether osm added this rule: it carries the mark, or it is an unmarked SSH or ICMP rule of a
/// group 1.0.0 made.
fn osm_rule(c: &Ctx, g: &SecurityGroup, r: &SecurityGroupRule) -> bool {
    if r.description.as_deref() == Some(c.scope.mark.as_str()) {
        return true;
    }
    g.description.as_deref() == Some(LEGACY_DESCRIPTION)
        && r.description.as_deref().is_none_or(str::is_empty)
        && r.direction == "ingress"
        && match r.protocol.as_deref() {
            Some("icmp") => true,
            Some("tcp") => r.port_range_min == Some(u32::from(c.s.ssh_port)),
            _ => false,
        }
}

/// The ingress rules the host needs, once its address is known: SSH and ICMP from each source;
/// osm's rules for other sources are removed.
pub(super) fn ensure_rules(
    c: &mut Ctx,
    g: &SecurityGroup,
    address: &str,
) -> Result<(), ConversionError> {
    let sources = sources(c, address)?;
    let port = u32::from(c.s.ssh_port);
    let wanted: Vec<(&str, Option<u32>, &str)> = sources
        .iter()
        .flat_map(|cidr| {
            [
                ("tcp", Some(port), cidr.as_str()),
                ("icmp", None, cidr.as_str()),
            ]
        })
        .collect();
    let matches = |r: &SecurityGroupRule, (proto, port, cidr): (&str, Option<u32>, &str)| {
        r.direction == "ingress"
            && r.protocol.as_deref() == Some(proto)
            && r.port_range_min == port
            && r.remote_ip_prefix.as_deref().unwrap_or("0.0.0.0/0") == cidr
    };
    let net = c.conn.network();
    let name = g.name.clone();
    for w in &wanted {
        if g.rules.iter().any(|r| matches(r, *w)) {
            continue;
        }
        let (proto, port, cidr) = *w;
        if !c.check {
            net.create_security_group_rule(&NewSecurityGroupRule {
                security_group_id: g.id.clone(),
                direction: "ingress".into(),
                ethertype: Some(ethertype(cidr).into()),
                protocol: Some(proto.into()),
                port_range_min: port,
                port_range_max: port,
                remote_ip_prefix: Some(cidr.to_string()),
                description: c.scope.description(),
                ..NewSecurityGroupRule::default()
            })
            .map_err(c.err(format!("adding a {proto} rule to security group {name}")))?;
        }
        c.changed(format!(
            "security group rule {} from {cidr}",
            describe(proto, port)
        ));
    }
    for r in &g.rules {
        if osm_rule(c, g, r) && !wanted.iter().any(|w| matches(r, *w)) {
            remove_rule(c, &name, r)?;
        }
    }
    Ok(())
}

fn remove_rule(c: &mut Ctx, group: &str, r: &SecurityGroupRule) -> Result<(), ConversionError> {
    let what = format!(
        "security group rule {} from {} (removed from {group})",
        describe(r.protocol.as_deref().unwrap_or("any"), r.port_range_min),
        r.remote_ip_prefix.as_deref().unwrap_or("0.0.0.0/0")
    );
    if !c.check {
        ignore_gone(c.conn.network().delete_security_group_rule(&r.id))
            .map_err(c.err(format!("removing a rule of security group {group}")))?;
    }
    c.changed(what);
    Ok(())
}

fn describe(proto: &str, port: Option<u32>) -> String {
    match port {
        Some(p) => format!("{proto} {p}"),
        None => proto.to_string(),
    }
}

fn ethertype(cidr: &str) -> &'static str {
    if cidr.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// `ssh_from` and `ssh_cidr` as CIDRs, refused (before anything is made) when they are not
/// addresses or networks.
fn sources_given(c: &Ctx) -> Result<Vec<String>, ConversionError> {
    let mut out = Vec::new();
    let given = c.s.ssh_from.iter().map(|a| ("ssh_from", a));
    for (field, value) in given.chain(c.s.ssh_cidr.iter().map(|a| ("ssh_cidr", a))) {
        out.push(cidr(value).ok_or_else(|| {
            c.invalid(format!(
                "option '{field}': {value:?} is not an IP address or network (like 192.0.2.7 or 192.0.2.0/24); nothing was changed"
            ))
        })?);
    }
    Ok(out)
}

/// Who may reach the host: this machine, as the route to `address` shows it, and the given sources.
fn sources(c: &Ctx, address: &str) -> Result<Vec<String>, ConversionError> {
    let mut out = sources_given(c)?;
    match migrator_address(address, c.s.ssh_port) {
        Some(ip) => out.insert(0, host_cidr(ip)),
        None if c.s.ssh_cidr.is_none() => {
            return Err(c.invalid(format!(
                "cannot tell this machine's address towards {address}, so the security group cannot let it in; set os_migrate_conversion_ssh_cidr to the network this machine reaches the conversion hosts from"
            )))
        }
        None => {}
    }
    out.dedup();
    Ok(out)
}

/// The local address the kernel picks to reach `address` (no packet is sent). Behind NAT the cloud
/// sees another one: the operator then names it with `ssh_cidr`.
fn migrator_address(address: &str, port: u16) -> Option<IpAddr> {
    let target: IpAddr = address.parse().ok()?;
    let local = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local).ok()?;
    socket.connect((target, port)).ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// An address (made a host network) or a network, as Neutron writes it; None when it is neither.
fn cidr(value: &str) -> Option<String> {
    let (addr, len) = match value.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (value, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len {
        None => Some(host_cidr(ip)),
        Some(l) => {
            let l: u8 = l.trim().parse().ok().filter(|l| *l <= max)?;
            Some(format!("{ip}/{l}"))
        }
    }
}

/// Deletes the group osm made; from a group of that name osm did not make, removes only the rules
/// osm added.
pub(super) fn remove(c: &mut Ctx) -> Result<(), ConversionError> {
    let name = c.s.security_group_name.clone();
    let net = c.conn.network();
    for g in net
        .list_security_groups(&c.scope.named(&name))
        .map_err(c.err("listing security groups"))?
    {
        if !c.scope.holds(g.project_id.as_deref()) {
            continue;
        }
        if ours(c, &g) {
            c.changed(format!("security group {}", g.name));
            if !c.check {
                ignore_gone(net.delete_security_group(&g.id))
                    .map_err(c.err(format!("deleting security group {}", g.name)))?;
            }
            continue;
        }
        let added: Vec<&SecurityGroupRule> =
            g.rules.iter().filter(|r| osm_rule(c, &g, r)).collect();
        for r in added {
            remove_rule(c, &g.name, r)?;
        }
        c.kept(format!(
            "security group {} ({}): osm did not make it",
            g.name, g.id
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_addresses_or_networks() {
        assert_eq!(cidr("192.0.2.7").as_deref(), Some("192.0.2.7/32"));
        assert_eq!(cidr("192.0.2.0/24").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(cidr("2001:db8::1").as_deref(), Some("2001:db8::1/128"));
        assert_eq!(cidr("0.0.0.0/0").as_deref(), Some("0.0.0.0/0"));
        for bad in [
            "",
            "host.example",
            "192.0.2.0/33",
            "192.0.2.0/x",
            "1.2.3.4; id",
        ] {
            assert_eq!(cidr(bad), None, "{bad:?}");
        }
        assert_eq!(ethertype("2001:db8::1/128"), "IPv6");
    }

    #[test]
    fn the_migrator_address_is_the_route_source() {
        assert_eq!(
            migrator_address("127.0.0.1", 22),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(migrator_address("not-an-address", 22), None);
    }
}
