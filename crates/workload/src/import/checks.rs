//! `import_workload_dst_check` and `import_workload_src_check`: nothing is created before both pass.

use std::collections::BTreeSet;

use osm_openstack::{Connection, Query};
use serde::Serialize;

use super::refs::Resolver;
use super::{ImportError, Job};
use crate::model::{BootSource, FloatingIpMode, LocalDisks, Server};
use crate::state::{Phase, Side};

/// What the destination check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DstCheck {
    /// Every reference that resolved, as `kind name -> id`.
    pub resolved: Vec<String>,
}

/// Resolves every reference of the workload in the destination and fails listing ALL that are
/// missing: flavor, image (unless the server boots from a copied or reused volume), networks,
/// subnets, free fixed IPs, security groups, keypair, volume types, floating IP networks and QoS
/// policies (and addresses for `floating_ip_mode: existing`), the volumes to reuse when
/// `data_copy` is false; and refuses what osm cannot do: upstream's `use_nbdkit_direct`, and a
/// local ephemeral disk whose data would be lost (unless `local_disks: recreate`).
pub fn dst_check(job: &mut Job, dst: &Connection) -> Result<DstCheck, ImportError> {
    let s = job.server.clone();
    let mp = &s.migration_params;
    let mut res =
        Resolver::new(dst).map_err(job.cloud_err(Side::Dst, "finding the destination project"))?;
    let mut missing: Vec<String> = Vec::new();
    let mut out = DstCheck::default();
    let mut ok = |what: String| out.resolved.push(what);

    if mp.use_nbdkit_direct {
        missing.push("_migration_params.use_nbdkit_direct is true: upstream's direct read of the source disks through nbdkit on the hypervisor is not supported by osm, which copies through the conversion hosts; set it to false".into());
    }
    let flavor = match res.flavor(&s.params.flavor_ref) {
        Ok(f) => {
            ok(format!("flavor {} -> {}", f.name, f.id));
            Some(f)
        }
        Err(m) => {
            missing.push(m.to_string());
            None
        }
    };
    let reusable = |id: &str, what: &str, missing: &mut Vec<String>| -> Option<String> {
        match dst.block_storage().get_volume(id) {
            Ok(v) if v.status == "available" => Some(format!("{what} {id}")),
            Ok(v) => {
                missing.push(format!("{what} {id} is {}, not available", v.status));
                None
            }
            Err(e) => {
                missing.push(format!("{what} {id}: {e}"));
                None
            }
        }
    };
    match s.boot_source() {
        BootSource::CopiedVolume => {}
        BootSource::ReusedVolume(id) => {
            if let Some(m) = reusable(id, "boot volume (boot_volume.uuid)", &mut missing) {
                ok(m);
            }
        }
        BootSource::Image(r) => match res.image(r) {
            Ok(i) => ok(format!("image {} -> {}", i.name, i.id)),
            Err(m) if mp.data_copy => missing.push(format!(
                "{m} (or set boot_disk_copy: true to copy the boot disk instead)"
            )),
            Err(m) => missing.push(format!(
                "{m} (or give the destination boot volume in boot_volume.uuid)"
            )),
        },
        BootSource::Nothing if mp.data_copy => {
            missing.push("the server boots from a volume but boot_disk_copy is false".into())
        }
        BootSource::Nothing => missing.push(
            "data_copy is false and the server boots from a volume, but no boot_volume.uuid gives the destination boot volume".into(),
        ),
    }
    local_disks(job, &s, flavor.as_ref(), &mut missing);
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
            // A floating IP that is created gets the policy; an existing one is only associated.
            if let (Some(r), false) = (
                &f.params.qos_policy_ref,
                mp.floating_ip_mode == FloatingIpMode::Existing,
            ) {
                match res.qos_policy(r) {
                    Ok(q) => ok(format!("QoS policy {} -> {}", q.name, q.id)),
                    Err(m) => missing.push(format!(
                        "floating IP {}: {m}",
                        f.params.floating_ip_address.as_deref().unwrap_or("?")
                    )),
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
        let reused = mp.reused_additional_volumes();
        for (i, id) in reused.iter().enumerate() {
            if let Some(m) = reusable(id, &format!("additional volume {i}"), &mut missing) {
                ok(m);
            }
        }
        let source = s.additional_volumes().len();
        if reused.len() < source {
            job.log(&format!(
                "data_copy is false: {} of the source's {source} additional volumes have no destination volume (a null additional_volumes[].uuid) and will not be attached, as upstream does",
                source - reused.len()
            ));
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

/// Refuses a local ephemeral disk whose data would be lost, unless `local_disks: recreate` accepts a
/// new, empty one; a swap disk is recreated empty (it holds nothing across a shutdown). The sizes
/// come from the source flavor as exported (`_info.flavor_ephemeral_gb`, `flavor_swap_mb`), else
/// from the destination flavor of the same name.
fn local_disks(
    job: &Job,
    s: &Server,
    flavor: Option<&osm_openstack::Flavor>,
    missing: &mut Vec<String>,
) {
    let flavor_name = &s.params.flavor_ref.name;
    let (ephemeral, swap, whose) = match (s.info.flavor_ephemeral_gb, s.info.flavor_swap_mb) {
        (None, None) => (
            flavor.map_or(0, |f| f.ephemeral),
            flavor.map_or(0, |f| f.swap),
            "the destination flavor of the same name, which the source most likely had too,",
        ),
        (e, w) => (e.unwrap_or(0), w.unwrap_or(0), "the source flavor"),
    };
    // Nova's default device names: the root disk, then ephemeral0, then swap.
    let prefix = s.disk_prefix();
    let swap_letter = if ephemeral > 0 { 'c' } else { 'b' };
    if ephemeral > 0 {
        if s.migration_params.local_disks == Some(LocalDisks::Recreate) {
            job.log(&format!(
                "local ephemeral disk ephemeral0 ({ephemeral} GiB, /dev/{prefix}b) of flavor '{flavor_name}': the destination server gets a new, empty one (local_disks: recreate)"
            ));
        } else {
            missing.push(format!(
                "{whose} '{flavor_name}' gives the server a local ephemeral disk ephemeral0 of {ephemeral} GiB (/dev/{prefix}b as Nova names it) whose data would be lost: no OpenStack API can read a disk local to the hypervisor. Move that data onto a volume inside the guest and export the workload again, or set _migration_params.local_disks: recreate to accept a new, empty ephemeral disk in the destination"
            ));
        }
    }
    if swap > 0 {
        job.log(&format!(
            "swap disk of {swap} MiB (/dev/{prefix}{swap_letter}) of flavor '{flavor_name}': recreated empty in the destination (swap holds nothing across a shutdown)"
        ));
    }
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
