//! `import_workload_dst_check` and `import_workload_src_check`: nothing is created before both pass.

use std::collections::BTreeSet;

use osm_openstack::{Connection, Query};
use serde::Serialize;

use super::refs::Resolver;
use super::{ImportError, Job};
use crate::model::FloatingIpMode;
use crate::state::{Phase, Side};

/// What the destination check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DstCheck {
    /// Every reference that resolved, as `kind name -> id`.
    pub resolved: Vec<String>,
}

/// Resolves every reference of the workload in the destination and fails listing ALL that are
/// missing: flavor, image (unless the boot disk is copied), networks, subnets, free fixed IPs,
/// security groups, keypair, volume types, floating IP networks (and addresses for
/// `floating_ip_mode: existing`), and the volumes to reuse when `data_copy` is false.
pub fn dst_check(job: &mut Job, dst: &Connection) -> Result<DstCheck, ImportError> {
    let s = job.server.clone();
    let mp = &s.migration_params;
    let mut res =
        Resolver::new(dst).map_err(job.cloud_err(Side::Dst, "finding the destination project"))?;
    let mut missing: Vec<String> = Vec::new();
    let mut out = DstCheck::default();
    let mut ok = |what: String| out.resolved.push(what);

    match res.flavor(&s.params.flavor_ref) {
        Ok(f) => ok(format!("flavor {} -> {}", f.name, f.id)),
        Err(m) => missing.push(m.to_string()),
    }
    if !mp.boot_disk_copy {
        match &s.params.image_ref {
            Some(r) => match res.image(r) {
                Ok(i) => ok(format!("image {} -> {}", i.name, i.id)),
                Err(m) => missing.push(format!(
                    "{m} (or set boot_disk_copy: true to copy the boot disk instead)"
                )),
            },
            None => {
                missing.push("the server boots from a volume but boot_disk_copy is false".into())
            }
        }
    }
    for (i, p) in s.params.ports.iter().enumerate() {
        let net = match res.network(&p.params.network_ref) {
            Ok(n) => {
                ok(format!("network {} -> {}", n.name, n.id));
                Some(n)
            }
            Err(m) => {
                missing.push(format!("port {i}: {m}"));
                None
            }
        };
        for f in &p.params.fixed_ips_refs {
            let Some(sr) = &f.subnet_ref else { continue };
            match res.subnet(sr, net.as_ref().map(|n| n.id.as_str())) {
                Ok(sub) => {
                    ok(format!("subnet {} -> {}", sub.name, sub.id));
                    if let Some(ip) = &f.ip_address {
                        let q = Query::new()
                            .with("fixed_ips", format!("ip_address={ip}"))
                            .with("network_id", sub.network_id.clone());
                        match dst.network().list_ports(&q) {
                            Ok(ports) => {
                                let taken: Vec<_> = ports
                                    .iter()
                                    .filter(|p| {
                                        p.fixed_ips
                                            .iter()
                                            .any(|x| x.ip_address.as_deref() == Some(ip.as_str()))
                                    })
                                    .filter(|p| !p.tags.iter().any(|t| *t == job.state.tag()))
                                    .collect();
                                if let Some(p) = taken.first() {
                                    missing.push(format!(
                                        "fixed IP {ip} on subnet '{}' is already used by port {} ({})",
                                        sub.name,
                                        p.id,
                                        p.device_owner.as_deref().unwrap_or("no owner")
                                    ));
                                }
                            }
                            Err(e) => missing.push(format!("checking fixed IP {ip}: {e}")),
                        }
                    }
                }
                Err(m) => missing.push(format!("port {i}: {m}")),
            }
        }
    }
    for r in &s.params.security_group_refs {
        match res.security_group(r) {
            Ok(g) => ok(format!("security group {} -> {}", g.name, g.id)),
            Err(m) => missing.push(m.to_string()),
        }
    }
    if let Some(k) = s.params.key_name.as_deref().filter(|k| !k.is_empty()) {
        match dst.compute().find_keypair(k) {
            Ok(Some(_)) => ok(format!("keypair {k}")),
            Ok(None) => missing.push(format!("keypair '{k}' not found")),
            Err(e) => missing.push(format!("keypair '{k}': {e}")),
        }
    }
    let mut types: BTreeSet<String> = BTreeSet::new();
    for v in &s.params.volumes {
        if let Some(t) = &v.params.volume_type {
            types.insert(t.clone());
        }
    }
    if let Some(t) = &mp.boot_volume_params.volume_type {
        types.insert(t.clone());
    }
    if !types.is_empty() {
        match dst.block_storage().list_volume_types() {
            Ok(known) => {
                for t in &types {
                    if known.iter().any(|k| &k.name == t || &k.id == t) {
                        ok(format!("volume type {t}"));
                    } else {
                        missing.push(format!("volume type '{t}' not found"));
                    }
                }
            }
            Err(e) => missing.push(format!("listing volume types: {e}")),
        }
    }
    if mp.floating_ip_mode != FloatingIpMode::Skip {
        for f in &s.params.floating_ips {
            if let Some(r) = &f.params.floating_network_ref {
                match res.network(r) {
                    Ok(n) => ok(format!("floating IP network {} -> {}", n.name, n.id)),
                    Err(m) => missing.push(format!("floating IP network: {m}")),
                }
            }
            if mp.floating_ip_mode == FloatingIpMode::Existing {
                if let Some(addr) = &f.params.floating_ip_address {
                    let q = Query::new()
                        .with("floating_ip_address", addr.clone())
                        .with("project_id", res.project_id().to_string());
                    match dst.network().list_floating_ips(&q) {
                        Ok(found) => match found.first() {
                            None => missing.push(format!("floating IP {addr} does not exist in the destination project (floating_ip_mode: existing)")),
                            Some(fip) if fip.port_id.is_some() => {
                                missing.push(format!("floating IP {addr} is already associated with port {}", fip.port_id.as_deref().unwrap_or("")))
                            }
                            Some(fip) => ok(format!("floating IP {addr} -> {}", fip.id)),
                        },
                        Err(e) => missing.push(format!("floating IP {addr}: {e}")),
                    }
                }
            }
        }
    }
    if !mp.data_copy {
        let mut wanted: Vec<(String, Option<String>)> = Vec::new();
        if s.boots_from_volume() || mp.boot_disk_copy {
            wanted.push((
                "boot volume (boot_volume.uuid)".into(),
                mp.reused_boot_volume().map(str::to_string),
            ));
        }
        for (i, _) in s.additional_volumes().iter().enumerate() {
            wanted.push((
                format!("additional volume {i} (additional_volumes[{i}].uuid)"),
                mp.reused_additional_volume(i).map(str::to_string),
            ));
        }
        for (what, id) in wanted {
            match id {
                None => missing.push(format!("data_copy is false but no {what} is given")),
                Some(id) => match dst.block_storage().get_volume(&id) {
                    Ok(v) if v.status == "available" => ok(format!("{what} {id}")),
                    Ok(v) => missing.push(format!("{what} {id} is {}, not available", v.status)),
                    Err(e) => missing.push(format!("{what} {id}: {e}")),
                },
            }
        }
    }
    for m in &missing {
        job.log(&format!("missing in the destination: {m}"));
    }
    if !missing.is_empty() {
        return Err(ImportError::Missing {
            workload: job.name().to_string(),
            missing,
        });
    }
    job.log(&format!(
        "destination check passed: {}",
        out.resolved.join(", ")
    ));
    Ok(out)
}

/// Fails unless the source server is SHUTOFF (or, for a pre-copy, ACTIVE or SHUTOFF) and its
/// attached volumes are the ones serialized.
pub fn src_check(job: &mut Job, src: &Connection) -> Result<Vec<String>, ImportError> {
    let id = job.server.info.id.clone();
    let srv = src
        .compute()
        .get_server(&id)
        .map_err(job.cloud_err(Side::Src, format!("reading server {id}")))?;
    let source = |message: String| ImportError::Source {
        workload: job.name().to_string(),
        message,
    };
    let precopy = job.settings.phase == Phase::Precopy;
    if precopy && !matches!(srv.status.as_str(), "ACTIVE" | "SHUTOFF") {
        return Err(source(format!(
            "source server {id} is {}: a pre-copy takes snapshots of a server that is ACTIVE or SHUTOFF only",
            srv.status
        )));
    }
    if !precopy && srv.status != "SHUTOFF" {
        return Err(source(format!(
            "source server {id} is {}, not SHUTOFF: stop it first, or set os_migrate_workload_stop_before_migration: true",
            srv.status
        )));
    }
    let attached: BTreeSet<&str> = srv.volumes_attached.iter().map(|v| v.id.as_str()).collect();
    let serialized: BTreeSet<&str> = job.server.volume_ids().collect();
    let detached_by_us: BTreeSet<&str> = job
        .state
        .detached
        .iter()
        .filter(|d| !d.reattached)
        .map(|d| d.volume_id.as_str())
        .collect();
    let now: BTreeSet<&str> = attached.union(&detached_by_us).copied().collect();
    if now != serialized {
        let extra: Vec<&str> = now.difference(&serialized).copied().collect();
        let gone: Vec<&str> = serialized.difference(&now).copied().collect();
        return Err(source(format!(
            "the volumes attached to source server {id} differ from workloads.yml (attached but not serialized: {extra:?}; serialized but not attached: {gone:?}); export the workload again"
        )));
    }
    job.log(&format!(
        "source server {id} is {} with its {} volumes",
        srv.status,
        attached.len()
    ));
    Ok(attached.into_iter().map(str::to_string).collect())
}
