//! `import_workload_create_instance`: the destination server, its ports and floating IPs.

use std::collections::BTreeMap;

use osm_openstack::{
    BlockDeviceMapping, Connection, NewFloatingIp, NewPort, NewServer, PortFixedIp, Query,
    ServerNetwork, TaggedResource, UserData,
};
use serde::Serialize;
use serde_json::Value;

use super::refs::Resolver;
use super::{ImportError, Job};
use crate::model::{BootSource, FloatingIpMode, PortCreationMode, ServerPort};
use crate::state::{Kind, Side, Status, TRANSFER_KEY};

/// The destination server as created.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedServer {
    /// Server ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status (ACTIVE).
    pub status: String,
    /// Nova's addresses.
    pub addresses: Value,
    /// Floating IP addresses given to it.
    pub floating_ips: Vec<String>,
    /// Attached volume IDs.
    pub volumes: Vec<String>,
    /// Seconds from the request to stop the source to this server ACTIVE, when this run stopped it.
    pub downtime_s: Option<f64>,
}

fn miss(job: &Job, what: String) -> ImportError {
    ImportError::Missing {
        workload: job.name().to_string(),
        missing: vec![what],
    }
}

/// Creates the destination server: flavor, the copied volumes (boot index 0 = boot disk) or image
/// boot, ports (nova mode: networks and fixed IPs; neutron mode: pre-created ports keeping the MAC),
/// security groups, keypair, metadata, tags, user data, AZ; waits for ACTIVE; then floating IPs by
/// `floating_ip_mode`. On success the transfer marks are taken off what is kept. With
/// `downtime_since` (when this run stopped the source, seconds since the epoch), the downtime up to
/// the server being ACTIVE is measured and recorded.
pub fn create_instance(
    job: &mut Job,
    dst: &Connection,
    downtime_since: Option<f64>,
) -> Result<CreatedServer, ImportError> {
    let timeout = job.settings.timeout;
    let s = job.server.clone();
    let mut res =
        Resolver::new(dst).map_err(job.cloud_err(Side::Dst, "finding the destination project"))?;
    let flavor = res
        .flavor(&s.params.flavor_ref)
        .map_err(|m| miss(job, m.to_string()))?;

    let (bdm, image_ref, copied_boot) = block_devices(job, dst, &mut res)?;

    let mut sg_ids = Vec::new();
    let mut sg_names = Vec::new();
    for r in &s.params.security_group_refs {
        let g = res
            .security_group(r)
            .map_err(|m| miss(job, m.to_string()))?;
        sg_ids.push(g.id);
        sg_names.push(g.name);
    }

    let mut networks = Vec::new();
    for (i, p) in s.params.ports.iter().enumerate() {
        networks.push(server_network(job, dst, &mut res, i, p, &sg_ids)?);
    }

    let server_id = match existing_server(job, dst)? {
        Some(id) => id,
        None => {
            let mut metadata: BTreeMap<String, String> = s
                .params
                .metadata
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect();
            metadata.insert(TRANSFER_KEY.into(), job.state.transfer_id.clone());
            let pre_created_ports = networks.iter().all(|n| matches!(n, ServerNetwork::Port(_)))
                && !networks.is_empty();
            let new = NewServer {
                name: s.params.name.clone(),
                flavor_ref: flavor.id.clone(),
                image_ref,
                block_device_mapping_v2: bdm,
                networks: networks.clone(),
                key_name: s.params.key_name.clone().filter(|k| !k.is_empty()),
                security_groups: if pre_created_ports {
                    Vec::new()
                } else {
                    sg_names.clone()
                },
                metadata,
                tags: s.params.tags.clone(),
                user_data: s
                    .params
                    .user_data
                    .clone()
                    .filter(|u| !u.is_empty())
                    .map(UserData::Base64),
                availability_zone: s.params.availability_zone.clone().filter(|a| !a.is_empty()),
                config_drive: s.params.config_drive.as_ref().and_then(config_drive),
                disk_config: s.params.disk_config.clone(),
                description: s.params.description.clone(),
                scheduler_hints: match &s.params.scheduler_hints {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Default::default(),
                },
                ..NewServer::default()
            };
            job.state
                .plan(Side::Dst, Kind::Server, "server", &s.params.name);
            job.save()?;
            let created = dst.compute().create_server(&new).map_err(
                job.cloud_err(Side::Dst, format!("creating server '{}'", s.params.name)),
            )?;
            job.state
                .set_id(Side::Dst, Kind::Server, "server", &created.id);
            job.state.dst_server_id = Some(created.id.clone());
            job.save()?;
            job.log(&format!(
                "created destination server {} (flavor {})",
                created.id, flavor.name
            ));
            created.id
        }
    };
    let srv = dst
        .compute()
        .wait_for_server(&server_id, &["ACTIVE"], timeout)
        .map_err(job.cloud_err(
            Side::Dst,
            format!("waiting for server {server_id} to become ACTIVE"),
        ))?;
    job.log(&format!("destination server {server_id} is ACTIVE"));
    let downtime = downtime_since.map(|since| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(since);
        ((now - since).max(0.0) * 10.0).round() / 10.0
    });
    if let Some(d) = downtime {
        job.state.stop_requested_at = downtime_since;
        job.state.downtime_s = Some(d);
        job.save()?;
        job.log(&format!(
            "downtime {d:.1} s, from the request to stop the source server to the destination server ACTIVE"
        ));
    }

    if let Some(boot) = &copied_boot {
        delete_boot_volume_with_server(job, dst, &server_id, boot);
    }
    let floating_ips = floating_ips(job, dst, &mut res, &server_id)?;
    unmark(job, dst, &server_id)?;
    job.state.status = Status::Done;
    job.save()?;
    let srv = dst.compute().get_server(&server_id).unwrap_or(srv);
    Ok(CreatedServer {
        downtime_s: downtime,
        id: srv.id.clone(),
        name: srv.name.clone(),
        status: srv.status.clone(),
        addresses: serde_json::to_value(&srv.addresses).unwrap_or(Value::Null),
        floating_ips,
        volumes: srv.volumes_attached.iter().map(|v| v.id.clone()).collect(),
    })
}

/// The block device mapping of the new server, its image (when it boots from one) and its copied
/// boot volume (when it boots from one). As upstream: the boot disk at boot index 0, the other
/// volumes after it in the order of their source devices, each with the device name the source had
/// it at (`vdb`, `sdb`: Nova's libvirt driver picks the bus from a name's prefix where no image
/// metadata says); reused volumes (`data_copy: false`) without names, as upstream sends them.
fn block_devices(
    job: &Job,
    dst: &Connection,
    res: &mut Resolver,
) -> Result<(Vec<BlockDeviceMapping>, Option<String>, Option<String>), ImportError> {
    let s = &job.server;
    let dst_volume = |role: &str| {
        job.state
            .volumes
            .iter()
            .find(|v| v.role == role)
            .and_then(|v| v.dst_volume_id.clone())
    };
    let (boot_volume, image_ref) = match s.boot_source() {
        BootSource::CopiedVolume => (
            Some(dst_volume("boot").ok_or_else(|| {
                job.invalid(
                    "no destination boot volume: import_workload_transfer_volumes must run first",
                )
            })?),
            None,
        ),
        BootSource::ReusedVolume(id) => (Some(id.to_string()), None),
        BootSource::Image(r) => (
            None,
            Some(res.image(r).map_err(|m| miss(job, m.to_string()))?.id),
        ),
        BootSource::Nothing => {
            return Err(job.invalid("the server boots from a volume but boot_disk_copy is false"))
        }
    };
    let copied = s.migration_params.data_copy;
    let mut bdm = Vec::new();
    if let Some(b) = &boot_volume {
        let mut m = BlockDeviceMapping::volume(b, Some(0));
        if copied {
            m.device_name = Some(boot_device_name(job, dst, b));
        }
        bdm.push(m);
    }
    let mut data: Vec<BlockDeviceMapping> = Vec::new();
    if copied {
        for (i, v) in s.additional_volumes().iter().enumerate() {
            let id = dst_volume(&format!("data-{i}")).ok_or_else(|| {
                job.invalid(format!("no destination volume for additional volume {i}"))
            })?;
            let mut m = BlockDeviceMapping::volume(&id, None);
            m.device_name = s
                .device_of(v)
                .map(|d| d.trim_start_matches("/dev/").to_string());
            data.push(m);
        }
        data.sort_by(|a, b| a.device_name.cmp(&b.device_name));
    } else {
        for id in s.migration_params.reused_additional_volumes() {
            data.push(BlockDeviceMapping::volume(id, None));
        }
    }
    if let (Some(image), false) = (&image_ref, data.is_empty()) {
        // With block_device_mapping_v2, Nova wants the image in it too, at boot index 0.
        bdm.push(BlockDeviceMapping::image_local(image));
    }
    bdm.extend(data);
    let copied_boot = boot_volume.filter(|_| copied);
    Ok((bdm, image_ref, copied_boot))
}

/// The device name of the copied boot disk: the one the source booted from (`sda` for a server on
/// virtio-scsi), or for a server booted from an image, `a` after the prefix of the bus its image
/// metadata (kept on the destination volume) names.
fn boot_device_name(job: &Job, dst: &Connection, volume_id: &str) -> String {
    if let Some(d) = job
        .server
        .boot_volume()
        .and_then(|v| job.server.device_of(v))
    {
        return d.trim_start_matches("/dev/").to_string();
    }
    let bus = dst
        .block_storage()
        .get_volume(volume_id)
        .ok()
        .and_then(|v| v.volume_image_metadata.get("hw_disk_bus").cloned());
    let prefix = match bus.as_deref() {
        Some("scsi" | "sata" | "usb") => "sd",
        Some("ide") => "hd",
        Some("xen") => "xvd",
        _ => "vd",
    };
    format!("{prefix}a")
}

/// As upstream, the migrated server's boot volume goes with it (`delete_on_termination`). The server
/// is created without it, so that deleting a half-made server in failure cleanup never takes the
/// synced volume (resume keeps it); once the server is ACTIVE it is set (microversion 2.85). A cloud
/// without 2.85 keeps the volume: the log says so, nothing fails.
fn delete_boot_volume_with_server(job: &Job, dst: &Connection, server_id: &str, volume_id: &str) {
    match dst
        .compute()
        .set_delete_on_termination(server_id, volume_id, true)
    {
        Ok(()) => job.log(&format!(
            "boot volume {volume_id} set to be deleted with server {server_id} (delete_on_termination, as upstream)"
        )),
        Err(e) => job.log(&format!(
            "boot volume {volume_id} stays when server {server_id} is deleted: delete_on_termination could not be set ({e})"
        )),
    }
}

fn config_drive(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "yes" | "1"
        )),
        _ => None,
    }
}

/// The server recorded by a previous run, when it still exists and is usable.
fn existing_server(job: &Job, dst: &Connection) -> Result<Option<String>, ImportError> {
    let Some(id) = job.state.dst_server_id.clone() else {
        return Ok(None);
    };
    match dst.compute().get_server(&id) {
        Ok(s) if s.status == "ERROR" => Err(job.invalid(format!(
            "destination server {id} of a previous run is in ERROR{}; import_workload_dst_failure_cleanup removes it",
            s.fault.map(|f| format!(" ({})", f.message)).unwrap_or_default()
        ))),
        Ok(s) => Ok(Some(s.id)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(job.cloud_err(Side::Dst, format!("reading server {id}"))(e)),
    }
}

/// A network of the server create. Nova mode: the network with its fixed IP. Neutron mode (or a port
/// with several fixed IPs, which Nova cannot request): a port created first, keeping the MAC address
/// in neutron mode.
fn server_network(
    job: &mut Job,
    dst: &Connection,
    res: &mut Resolver,
    index: usize,
    p: &ServerPort,
    sg_ids: &[String],
) -> Result<ServerNetwork, ImportError> {
    let net = res
        .network(&p.params.network_ref)
        .map_err(|m| miss(job, format!("port {index}: {m}")))?;
    let mut fixed = Vec::new();
    for f in &p.params.fixed_ips_refs {
        let subnet_id = match &f.subnet_ref {
            Some(r) => Some(
                res.subnet(r, Some(&net.id))
                    .map_err(|m| miss(job, format!("port {index}: {m}")))?
                    .id,
            ),
            None => None,
        };
        fixed.push(PortFixedIp {
            subnet_id,
            ip_address: f.ip_address.clone(),
        });
    }
    let neutron = job.server.migration_params.port_creation_mode == PortCreationMode::Neutron;
    if !neutron && fixed.len() <= 1 {
        return Ok(ServerNetwork::Network {
            uuid: net.id,
            fixed_ip: fixed.first().and_then(|f| f.ip_address.clone()),
        });
    }
    let role = format!("port-{index}");
    if let Some(id) = job
        .state
        .created(Side::Dst, Kind::Port, &role)
        .and_then(|c| c.id.clone())
    {
        match dst.network().get_port(&id) {
            Ok(port) => return Ok(ServerNetwork::Port(port.id)),
            Err(e) if e.is_not_found() => {
                if let Some(c) = job
                    .state
                    .created
                    .iter_mut()
                    .find(|c| c.kind == Kind::Port && c.role == role && !c.deleted)
                {
                    c.deleted = true;
                }
            }
            Err(e) => return Err(job.cloud_err(Side::Dst, format!("reading port {id}"))(e)),
        }
    }
    let name = job.state.temp_name(&role);
    let profile = match &p.params.binding_profile {
        Some(Value::Object(m)) if !m.is_empty() => Some(m.clone()),
        _ => None,
    };
    let new = NewPort {
        network_id: net.id.clone(),
        name: Some(name.clone()),
        fixed_ips: fixed,
        mac_address: if neutron {
            p.params.mac_address.clone()
        } else {
            None
        },
        security_groups: Some(sg_ids.to_vec()),
        binding_profile: profile,
        binding_vnic_type: p.params.binding_vnic_type.clone(),
        ..NewPort::default()
    };
    job.state.plan(Side::Dst, Kind::Port, &role, &name);
    job.save()?;
    let port = dst.network().create_port(&new).map_err(job.cloud_err(
        Side::Dst,
        format!("creating port {index} on network '{}'", net.name),
    ))?;
    job.state.set_id(Side::Dst, Kind::Port, &role, &port.id);
    job.save()?;
    dst.network()
        .add_tag(TaggedResource::Port, &port.id, &job.state.tag())
        .map_err(job.cloud_err(Side::Dst, format!("tagging port {}", port.id)))?;
    job.log(&format!(
        "created port {} on network '{}' (MAC {})",
        port.id,
        net.name,
        port.mac_address.as_deref().unwrap_or("-")
    ));
    Ok(ServerNetwork::Port(port.id))
}

/// Floating IPs by `floating_ip_mode`: auto (the same address when free, else a new one), new,
/// existing (the same address, which must exist unassociated), skip.
fn floating_ips(
    job: &mut Job,
    dst: &Connection,
    res: &mut Resolver,
    server_id: &str,
) -> Result<Vec<String>, ImportError> {
    let mode = job.server.migration_params.floating_ip_mode;
    if mode == FloatingIpMode::Skip || job.server.params.floating_ips.is_empty() {
        return Ok(Vec::new());
    }
    let ports = dst
        .network()
        .list_ports(&Query::new().with("device_id", server_id.to_string()))
        .map_err(job.cloud_err(
            Side::Dst,
            format!("listing the ports of server {server_id}"),
        ))?;
    let mut given = Vec::new();
    for (i, f) in job.server.params.floating_ips.clone().iter().enumerate() {
        let fixed = f.params.fixed_ip_address.clone();
        let port = ports
            .iter()
            .find(|p| {
                fixed.as_deref().is_none_or(|ip| {
                    p.fixed_ips
                        .iter()
                        .any(|x| x.ip_address.as_deref() == Some(ip))
                })
            })
            .ok_or_else(|| {
                job.invalid(format!(
                    "no port of server {server_id} has fixed IP {}",
                    fixed.as_deref().unwrap_or("?")
                ))
            })?;
        let addr = f.params.floating_ip_address.clone();
        let existing = match &addr {
            Some(a) => dst
                .network()
                .list_floating_ips(
                    &Query::new()
                        .with("floating_ip_address", a.clone())
                        .with("project_id", res.project_id().to_string()),
                )
                .map_err(job.cloud_err(Side::Dst, format!("looking up floating IP {a}")))?
                .into_iter()
                .next(),
            None => None,
        };
        if let Some(fip) = existing.filter(|x| x.port_id.as_deref().is_none_or(|p| p == port.id)) {
            if mode != FloatingIpMode::New {
                dst.network()
                    .update_floating_ip_port(&fip.id, Some(&port.id), fixed.as_deref())
                    .map_err(job.cloud_err(
                        Side::Dst,
                        format!("associating floating IP {}", fip.floating_ip_address),
                    ))?;
                job.log(&format!(
                    "associated existing floating IP {} with port {}",
                    fip.floating_ip_address, port.id
                ));
                given.push(fip.floating_ip_address);
                continue;
            }
        }
        if mode == FloatingIpMode::Existing {
            return Err(miss(
                job,
                format!(
                    "floating IP {} is not available in the destination project",
                    addr.as_deref().unwrap_or("?")
                ),
            ));
        }
        let network = match &f.params.floating_network_ref {
            Some(r) => res
                .network(r)
                .map_err(|m| miss(job, format!("floating IP network: {m}")))?,
            None => {
                return Err(miss(
                    job,
                    "a floating IP without a floating network reference".into(),
                ))
            }
        };
        let role = format!("fip-{i}");
        if let Some(id) = job
            .state
            .created(Side::Dst, Kind::FloatingIp, &role)
            .and_then(|c| c.id.clone())
        {
            if let Ok(fip) = dst.network().get_floating_ip(&id) {
                dst.network()
                    .update_floating_ip_port(&fip.id, Some(&port.id), fixed.as_deref())
                    .map_err(job.cloud_err(
                        Side::Dst,
                        format!("associating floating IP {}", fip.floating_ip_address),
                    ))?;
                given.push(fip.floating_ip_address);
                continue;
            }
        }
        job.state.plan(
            Side::Dst,
            Kind::FloatingIp,
            &role,
            &job.state.temp_name(&role),
        );
        job.save()?;
        let mut new = NewFloatingIp {
            floating_network_id: network.id.clone(),
            floating_ip_address: if mode == FloatingIpMode::Auto {
                addr.clone()
            } else {
                None
            },
            port_id: Some(port.id.clone()),
            fixed_ip_address: fixed.clone(),
            description: f.params.description.clone(),
            dns_name: f.params.dns_name.clone().filter(|d| !d.is_empty()),
            dns_domain: f.params.dns_domain.clone().filter(|d| !d.is_empty()),
            qos_policy_id: match &f.params.qos_policy_ref {
                Some(r) => Some(
                    res.qos_policy(r)
                        .map_err(|m| miss(job, format!("floating IP QoS policy: {m}")))?
                        .id,
                ),
                None => None,
            },
            ..NewFloatingIp::default()
        };
        let fip = match dst.network().create_floating_ip(&new) {
            Ok(fip) => fip,
            // 403: Neutron's default policy lets only admins choose the address.
            Err(e)
                if new.floating_ip_address.is_some()
                    && matches!(e.status(), Some(400 | 403 | 409)) =>
            {
                job.log(&format!(
                    "floating IP {} cannot be had in the destination ({e}); allocating a new one",
                    addr.as_deref().unwrap_or("?")
                ));
                new.floating_ip_address = None;
                dst.network()
                    .create_floating_ip(&new)
                    .map_err(job.cloud_err(Side::Dst, "allocating a floating IP"))?
            }
            Err(e) => return Err(job.cloud_err(Side::Dst, "allocating a floating IP")(e)),
        };
        job.state
            .set_id(Side::Dst, Kind::FloatingIp, &role, &fip.id);
        job.save()?;
        dst.network()
            .add_tag(TaggedResource::FloatingIp, &fip.id, &job.state.tag())
            .map_err(job.cloud_err(Side::Dst, format!("tagging floating IP {}", fip.id)))?;
        job.log(&format!(
            "allocated floating IP {} for port {}",
            fip.floating_ip_address, port.id
        ));
        given.push(fip.floating_ip_address);
    }
    Ok(given)
}

/// Takes the transfer marks off what the migrated server keeps (volumes, ports, floating IPs, the
/// server), so that the leftovers tool does not report them.
fn unmark(job: &mut Job, dst: &Connection, server_id: &str) -> Result<(), ImportError> {
    let tag = job.state.tag();
    for c in job
        .state
        .created
        .clone()
        .iter()
        .filter(|c| c.side == Side::Dst && !c.deleted)
    {
        let Some(id) = c.id.as_deref() else { continue };
        let r = match c.kind {
            Kind::Volume => dst.block_storage().delete_volume_metadata(id, TRANSFER_KEY),
            Kind::Port => dst
                .network()
                .remove_tag(TaggedResource::Port, id, &tag)
                .and_then(|()| {
                    dst.network()
                        .update_port(id, serde_json::json!({"name": ""}))
                        .map(drop)
                }),
            Kind::FloatingIp => dst
                .network()
                .remove_tag(TaggedResource::FloatingIp, id, &tag),
            Kind::Server => dst.compute().delete_server_metadata(id, TRANSFER_KEY),
            Kind::Snapshot | Kind::Image => Ok(()),
        };
        match r {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                return Err(job.cloud_err(
                    Side::Dst,
                    format!("removing the transfer mark of {} {id}", c.kind.as_str()),
                )(e))
            }
        }
    }
    job.log(&format!(
        "server {server_id} migrated; transfer marks removed from what it keeps"
    ));
    Ok(())
}
