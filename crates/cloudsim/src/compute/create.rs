//! Server create: validation of the request (block device mappings, networks, flavor, image,
//! keypair, security groups), the volumes and ports Nova makes for it, and the loopback address
//! of a simulated conversion host.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody};
use crate::image::Image;
use crate::jobs;
use crate::network::{self, PortRequest};
use crate::state::State;
use crate::util;
use crate::volume;

use super::attachments::{device_name, full_device_name};
use super::links;
use super::requests::{bdm_invalid, parse_bdms, parse_networks, BdmReq, NetReq};
use super::servers::{Bdm, FlavorCopy, Server, ServerFault};

/// The first loopback IPv4 fixed address of a new conversion host's ports, if any.
fn loopback_fixed_addr(st: &State, cloud: &str, server_id: &str) -> Option<String> {
    st.clouds
        .get(cloud)?
        .network
        .ports
        .values()
        .filter(|p| p.device_id == server_id)
        .flat_map(|p| p.fixed_ips.iter())
        .find(|f| {
            f.ip_address
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| a.is_loopback())
        })
        .map(|f| f.ip_address.clone())
}

/// Picks a loopback address for a new conversion host: `127.(200+cloud index).y.z`, skipping
/// addresses in use in any cloud (hosts and floating IPs) or bound by another process.
fn allocate_host_addr(st: &State, cloud_index: u8, port: u16) -> Option<String> {
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    for c in st.clouds.values() {
        used.extend(
            c.compute
                .servers
                .values()
                .filter_map(|s| s.host_addr.clone()),
        );
        used.extend(network::all_fip_addresses(&c.network));
    }
    let x = 200u16 + cloud_index as u16;
    let x = x.min(254) as u8;
    for n in 0u32..(250 * 250) {
        let addr = format!("127.{x}.{}.{}", n / 250, 2 + n % 250);
        if used.contains(&addr) {
            continue;
        }
        if let Ok(ip) = addr.parse::<IpAddr>() {
            if crate::hosts::addr_free(ip, port) {
                return Some(addr);
            }
        }
    }
    None
}

pub(super) async fn create_server(
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "server")?.clone();
    let name = util::opt_str(&spec, "name")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute server. Value: 'name' is a required property",
        )
    })?;
    if name.trim().is_empty() || name.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute name. Value: {name}."
        )));
    }
    let flavor_ref = util::opt_str(&spec, "flavorRef")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute server. Value: 'flavorRef' is a required property",
        )
    })?;
    let image_ref = util::opt_str(&spec, "imageRef")?
        .filter(|s| !s.is_empty())
        .map(|s| util::ref_id(&s).to_string());
    let key_name = util::opt_str(&spec, "key_name")?;
    let metadata = util::opt_str_map(&spec, "metadata")?.unwrap_or_default();
    let tags = util::opt_str_list(&spec, "tags")?.unwrap_or_default();
    if !tags.is_empty() && !ctx.mv.ge(2, 52) {
        return Err(ApiError::bad_request("Invalid input for field/attribute server. Additional properties are not allowed ('tags' was unexpected)"));
    }
    let user_data = util::opt_str(&spec, "user_data")?;
    if let Some(u) = &user_data {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(u.trim())
            .map_err(|_| ApiError::bad_request("User data needs to be valid base 64."))?;
    }
    let az = util::opt_str(&spec, "availability_zone")?;
    if let Some(a) = &az {
        if a.split(':').next() != Some("nova") {
            return Err(ApiError::bad_request(
                "The requested availability zone is not available",
            ));
        }
    }
    let config_drive = match spec.get("config_drive") {
        None | Some(Value::Null) => false,
        Some(v) => util::parse_bool(v).unwrap_or(false),
    };
    let disk_config = util::opt_str(&spec, "OS-DCF:diskConfig")?.unwrap_or_else(|| "MANUAL".into());
    if disk_config != "AUTO" && disk_config != "MANUAL" {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute OS-DCF:diskConfig. Value: {disk_config}."
        )));
    }
    let description = util::opt_str(&spec, "description")?;
    let hostname = util::opt_str(&spec, "hostname")?;
    let hints = body
        .get("os:scheduler_hints")
        .or(body.get("OS-SCH-HNT:scheduler_hints"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let sg_names: Vec<String> = match spec.get("security_groups") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "Invalid input for field/attribute security_groups.",
            ))
        }
    };
    let min_count = util::opt_u64(&spec, "min_count")?.unwrap_or(1);
    let max_count = util::opt_u64(&spec, "max_count")?.unwrap_or(min_count);
    if min_count != 1 || max_count != 1 {
        return Err(ApiError::bad_request(
            "min_count/max_count other than 1 are not simulated.",
        ));
    }
    let access_ipv4 = util::opt_str(&spec, "accessIPv4")?;
    let access_ipv6 = util::opt_str(&spec, "accessIPv6")?.unwrap_or_default();
    let admin_pass = util::opt_str(&spec, "adminPass")?.unwrap_or_else(|| util::random_string(12));
    let mut bdm_reqs = parse_bdms(&spec)?;
    let nets = parse_networks(&spec, ctx.mv)?;

    let mut st = ctx.sim.lock();
    let ssh_port = ctx.sim.cfg.ssh_port;
    // Host address allocation looks at every cloud, so it happens before borrowing one.
    let cloud_index = st.clouds.get(&ctx.cloud).map(|c| c.index).unwrap_or(0);
    let (cloud, seq) = http::cloud_and_seq(&mut st, &ctx.cloud);

    // Flavor, image, keypair.
    let fid = util::ref_id(&flavor_ref).to_string();
    let flavor = cloud
        .compute
        .flavors
        .get(&fid)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("Flavor {fid} could not be found.")))?;
    let find_image = |iid: &str| -> Result<Image, ApiError> {
        let img = cloud
            .image
            .images
            .get(iid)
            .filter(|i| i.visible_to(&ctx.project_id, ctx.is_admin()))
            .ok_or_else(|| ApiError::bad_request(format!("Image {iid} could not be found.")))?;
        if img.status != "active" {
            return Err(ApiError::bad_request(format!("Image {iid} is not active.")));
        }
        Ok(img.clone())
    };
    let mut image = match &image_ref {
        Some(i) => Some(find_image(i)?),
        None => None,
    };
    let keypair = match &key_name {
        Some(k) => Some(
            cloud
                .compute
                .keypairs
                .get(&format!("{}/{k}", ctx.user_id))
                .cloned()
                .ok_or_else(|| ApiError::bad_request("Invalid key_name provided."))?,
        ),
        None => None,
    };

    // A Nova snapshot image of a volume-backed server boots from its snapshots.
    if let Some(img) = &image {
        if let Some(bdm_json) = img.properties.get("block_device_mapping") {
            let parsed: Vec<Value> = serde_json::from_str(bdm_json)
                .map_err(|_| bdm_invalid("the image's block_device_mapping is not valid JSON"))?;
            let wrapper = json!({"block_device_mapping_v2": parsed});
            let mut from_image = parse_bdms(&wrapper)?;
            // The snapshot id is under "snapshot_id" in Nova's stored mappings.
            for (b, raw) in from_image.iter_mut().zip(parsed.iter()) {
                if b.uuid.is_none() {
                    b.uuid = raw
                        .get("snapshot_id")
                        .or(raw.get("volume_id"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
            }
            bdm_reqs.retain(|b| !(b.source == "image" && b.dest == "local"));
            bdm_reqs.extend(from_image);
            image = None;
        }
    }
    // Nova's boot sequence rule: once block_device_mapping_v2 is given, the boot indexes (image and
    // volume mappings alike) must run 0, 1, 2... An imageRef alone does not count: clients add an
    // image->local mapping with boot index 0 for it, as OSC and novaclient do.
    if !bdm_reqs.is_empty() {
        let mut idx: Vec<i64> = bdm_reqs
            .iter()
            .filter_map(|b| b.boot_index)
            .filter(|i| *i >= 0)
            .collect();
        idx.sort_unstable();
        if idx.is_empty() || idx.iter().enumerate().any(|(n, i)| *i != n as i64) {
            return Err(bdm_invalid("Boot sequence for the instance and image/block device mapping combination is not valid."));
        }
    }
    let image_local_root = bdm_reqs
        .iter()
        .position(|b| b.source == "image" && b.dest == "local" && b.boot_index == Some(0));
    if let Some(i) = image_local_root {
        let b = bdm_reqs.remove(i);
        if image.is_none() {
            let iid = b
                .uuid
                .ok_or_else(|| bdm_invalid("image mapping without uuid"))?;
            image = Some(find_image(&iid)?);
        }
    }
    bdm_reqs.retain(|b| b.dest == "volume");
    let volume_boot = bdm_reqs.iter().any(|b| b.boot_index == Some(0));
    // Nova's libvirt driver takes the bus from the image metadata: the image's, or the boot volume's
    // volume_image_metadata.
    let disk_bus = match (&image, bdm_reqs.iter().find(|b| b.boot_index == Some(0))) {
        (Some(img), _) if !volume_boot => img.properties.get("hw_disk_bus").cloned(),
        (_, Some(b)) if b.source == "volume" => b
            .uuid
            .as_ref()
            .and_then(|v| cloud.volume.volumes.get(v))
            .and_then(|v| v.image_metadata.get("hw_disk_bus").cloned()),
        (_, Some(b)) if b.source == "image" => b
            .uuid
            .as_ref()
            .and_then(|i| cloud.image.images.get(i))
            .and_then(|i| i.properties.get("hw_disk_bus").cloned()),
        _ => None,
    };
    if volume_boot {
        image = None;
    } else if image.is_none() {
        return Err(bdm_invalid("Boot sequence for the instance and image/block device mapping combination is not valid."));
    }
    if let Some(img) = &image {
        if flavor.disk > 0 && volume::gib_ceil(img.size.unwrap_or(0)) > flavor.disk {
            return Err(ApiError::bad_request(
                "Flavor's disk is too small for requested image.",
            ));
        }
        if flavor.disk > 0 && flavor.disk < img.min_disk {
            return Err(ApiError::bad_request(format!(
                "Flavor's disk is smaller than the minimum size specified in image metadata. Flavor disk is {} bytes, minimum size is {} bytes.",
                flavor.disk << 30,
                img.min_disk << 30
            )));
        }
        if flavor.ram < img.min_ram {
            return Err(ApiError::bad_request(
                "Flavor's memory is too small for requested image.",
            ));
        }
    }

    // Validate block device mappings before creating anything.
    for b in &bdm_reqs {
        match b.source.as_str() {
            "volume" => {
                let vid = b
                    .uuid
                    .as_deref()
                    .ok_or_else(|| bdm_invalid("volume mapping without uuid"))?;
                let v = cloud
                    .volume
                    .volumes
                    .get(vid)
                    .filter(|v| v.project_id == ctx.project_id || ctx.is_admin())
                    .ok_or_else(|| bdm_invalid(format!("failed to get volume {vid}.")))?;
                if v.status != "available" {
                    return Err(ApiError::bad_request(format!("Invalid volume: volume '{vid}' status must be 'available'. Currently in '{}'", v.status)));
                }
            }
            "snapshot" => {
                let sid = b
                    .uuid
                    .as_deref()
                    .ok_or_else(|| bdm_invalid("snapshot mapping without uuid"))?;
                let s = cloud
                    .volume
                    .snapshots
                    .get(sid)
                    .ok_or_else(|| bdm_invalid(format!("failed to get snapshot {sid}.")))?;
                if s.status != "available" {
                    return Err(bdm_invalid(format!(
                        "snapshot {sid} is not available (status {}).",
                        s.status
                    )));
                }
            }
            "image" => {
                let iid = b
                    .uuid
                    .as_deref()
                    .ok_or_else(|| bdm_invalid("image mapping without uuid"))?;
                find_image(iid)?;
                if b.size.is_none() {
                    return Err(bdm_invalid("Images with destination_type 'volume' need to have a non-zero size specified"));
                }
            }
            _ => {
                if b.size.is_none() {
                    return Err(bdm_invalid("Blank volumes need a volume_size."));
                }
            }
        }
    }

    // Networks.
    let net_reqs: Vec<NetReq> =
        match nets {
            Some(Ok(list)) => list,
            Some(Err(kind)) if kind == "none" => vec![],
            // "auto", or no networks before 2.37: the project's only network, if there is one.
            _ => {
                let candidates: Vec<&network::Network> = cloud
                    .network
                    .networks
                    .values()
                    .filter(|n| !n.external && (n.c.project_id == ctx.project_id || n.shared))
                    .collect();
                match candidates.len() {
                    0 if nets.is_none() => vec![],
                    0 => {
                        return Err(ApiError::bad_request(format!(
                            "Unable to automatically allocate a network for project {}",
                            ctx.project_id
                        )))
                    }
                    1 => vec![NetReq::Net {
                        uuid: candidates[0].c.id.clone(),
                        fixed_ip: None,
                    }],
                    _ => return Err(ApiError::conflict(
                        "Multiple possible networks found, use a Network ID to be more specific.",
                    )),
                }
            }
        };
    for n in &net_reqs {
        match n {
            NetReq::Net { uuid, fixed_ip, .. } => {
                let net = cloud.network.networks.get(uuid).ok_or_else(|| {
                    ApiError::bad_request(format!("Network {uuid} could not be found."))
                })?;
                if !net.shared
                    && !net.external
                    && net.c.project_id != ctx.project_id
                    && !ctx.is_admin()
                {
                    return Err(ApiError::bad_request(format!(
                        "Network {uuid} could not be found."
                    )));
                }
                if let Some(ip) = fixed_ip {
                    let in_use = cloud.network.ports.values().any(|p| {
                        p.network_id == *uuid && p.fixed_ips.iter().any(|f| f.ip_address == *ip)
                    });
                    if in_use {
                        return Err(ApiError::bad_request(format!(
                            "Fixed IP address {ip} is already in use on instance ."
                        )));
                    }
                }
            }
            NetReq::Port { id } => {
                let p = cloud
                    .network
                    .ports
                    .get(id)
                    .ok_or_else(|| ApiError::bad_request(format!("Port id {id} not found.")))?;
                if !p.device_id.is_empty() {
                    return Err(ApiError::conflict(format!("Port {id} is still in use.")));
                }
            }
        }
    }
    let mut sg_ids = Vec::new();
    for g in &sg_names {
        let sg =
            network::find_security_group(&cloud.network, &ctx.project_id, g).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Security group {g} not found for project {}.",
                    ctx.project_id
                ))
            })?;
        if !sg_ids.contains(&sg.c.id) {
            sg_ids.push(sg.c.id.clone());
        }
    }

    // Record the server.
    *seq += 1;
    cloud.compute.counter += 1;
    let now = util::now();
    let id = util::new_id();
    let boot_image_props = match &image {
        Some(img) => img.properties.clone(),
        None => {
            // A volume booted from a conversion-host image keeps the property in its image metadata.
            let root = bdm_reqs.iter().find(|b| b.boot_index == Some(0));
            match root {
                Some(b) if b.source == "image" => b
                    .uuid
                    .as_ref()
                    .and_then(|i| cloud.image.images.get(i))
                    .map(|i| i.properties.clone())
                    .unwrap_or_default(),
                Some(b) if b.source == "volume" => b
                    .uuid
                    .as_ref()
                    .and_then(|v| cloud.volume.volumes.get(v))
                    .map(|v| v.image_metadata.clone())
                    .unwrap_or_default(),
                _ => BTreeMap::new(),
            }
        }
    };
    let truthy = |m: &BTreeMap<String, String>| {
        m.get("osm_sim_conversion_host")
            .is_some_and(|v| util::parse_bool_str(v) == Some(true))
    };
    let is_host = truthy(&boot_image_props) || truthy(&metadata);
    let mut server = Server {
        id: id.clone(),
        seq: *seq,
        name: name.clone(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        vm_state: "building".into(),
        task_state: Some("scheduling".into()),
        power_state: 0,
        flavor: FlavorCopy {
            id: flavor.id.clone(),
            name: flavor.name.clone(),
            ram: flavor.ram,
            vcpus: flavor.vcpus,
            disk: flavor.disk,
            ephemeral: flavor.ephemeral,
            swap: flavor.swap,
            extra_specs: flavor.extra_specs.clone(),
        },
        image_id: image.as_ref().map(|i| i.id.clone()),
        key_name: key_name.clone(),
        key_data: keypair.map(|k| k.public_key),
        metadata,
        tags,
        user_data,
        availability_zone: "nova".into(),
        config_drive,
        disk_config: disk_config.clone(),
        description,
        scheduler_hints: hints,
        access_ipv4: access_ipv4.clone().unwrap_or_default(),
        access_ipv6,
        created: now,
        updated: now,
        launched_at: None,
        terminated_at: None,
        host_addr: None,
        is_host,
        created_ports: vec![],
        port_order: vec![],
        bdms: vec![],
        fault: None,
        instance_index: cloud.compute.counter,
        locked: false,
        security_groups: if sg_names.is_empty() {
            vec!["default".into()]
        } else {
            sg_names.clone()
        },
        disk_bus: disk_bus.clone(),
        hostname: hostname.unwrap_or_else(|| sanitize_hostname(&name)),
        reservation_id: format!("r-{}", &util::random_string(8).to_lowercase()),
    };

    // Ports.
    let mut created_ports = Vec::new();
    let mut port_order = Vec::new();
    let mut port_err = None;
    for n in &net_reqs {
        let r = match n {
            NetReq::Net { uuid, fixed_ip } => network::create_port(
                &mut cloud.network,
                seq,
                PortRequest {
                    network_id: uuid.clone(),
                    project_id: ctx.project_id.clone(),
                    fixed_ips: fixed_ip.as_ref().map(|ip| vec![(None, Some(ip.clone()))]),
                    security_groups: if sg_ids.is_empty() {
                        None
                    } else {
                        Some(sg_ids.clone())
                    },
                    device_id: id.clone(),
                    device_owner: "compute:nova".into(),
                    ..Default::default()
                },
            )
            .map(|pid| {
                port_order.push(pid.clone());
                created_ports.push(pid);
            }),
            NetReq::Port { id: pid } => {
                port_order.push(pid.clone());
                if let Some(p) = cloud.network.ports.get_mut(pid) {
                    p.device_id = id.clone();
                    p.device_owner = "compute:nova".into();
                    p.c.updated = util::now();
                }
                Ok(())
            }
        };
        if let Err(e) = r {
            port_err = Some(e);
            break;
        }
    }
    if let Some(e) = port_err {
        network::release_server_ports(&mut cloud.network, &id, &created_ports);
        return Err(e);
    }
    server.created_ports = created_ports;
    server.port_order = port_order;

    // Volumes: new ones are created now and attached when the server goes ACTIVE.
    let mut new_volumes = Vec::new();
    let mut dev_i = 0usize;
    let mut sorted_bdms: Vec<&BdmReq> = bdm_reqs.iter().collect();
    sorted_bdms.sort_by_key(|b| match b.boot_index {
        Some(0) => 0,
        Some(i) if i > 0 => i,
        _ => i64::MAX,
    });
    for b in sorted_bdms {
        let device = b
            .device_name
            .as_deref()
            .map(full_device_name)
            .unwrap_or_else(|| {
                let d = device_name(disk_bus.as_deref(), dev_i + usize::from(image.is_some()));
                dev_i += 1;
                d
            });
        let (volume_id, created) = if b.source == "volume" {
            let vid = b.uuid.clone().unwrap_or_default();
            if let Some(v) = cloud.volume.volumes.get_mut(&vid) {
                v.status = "attaching".into();
                v.updated = util::now();
            }
            (vid, false)
        } else {
            let (snap, img) = match b.source.as_str() {
                "snapshot" => (b.uuid.clone(), None),
                "image" => (None, b.uuid.clone()),
                _ => (None, None),
            };
            let mut v = volume::build_volume(
                cloud,
                seq,
                &ctx.project_id,
                &ctx.user_id,
                b.size,
                snap,
                None,
                img,
                b.volume_type.clone(),
                None,
            )?;
            v.name = Some(String::new());
            let vid = v.id.clone();
            cloud.volume.volumes.insert(vid.clone(), v);
            new_volumes.push(vid.clone());
            (vid, true)
        };
        server.bdms.push(Bdm {
            volume_id,
            boot_index: b.boot_index,
            device,
            delete_on_termination: b.delete_on_termination,
            attachment_id: util::new_id(),
            bdm_id: util::new_id(),
            tag: b.tag.clone(),
            created_for_boot: created,
        });
    }
    cloud.compute.servers.insert(id.clone(), server);

    if is_host {
        // A host on a network of loopback addresses (a provider network, in the tests) is reached by
        // its fixed address, as a real one is: no accessIPv4 stands in for it.
        let fixed = loopback_fixed_addr(&st, &ctx.cloud, &id);
        let addr = fixed
            .clone()
            .or_else(|| allocate_host_addr(&st, cloud_index, ssh_port));
        let (cloud, _) = http::cloud_and_seq(&mut st, &ctx.cloud);
        if let Some(s) = cloud.compute.servers.get_mut(&id) {
            match addr {
                Some(a) => {
                    if access_ipv4.is_none() && fixed.is_none() {
                        s.access_ipv4 = a.clone();
                    }
                    s.host_addr = Some(a);
                }
                None => {
                    s.vm_state = "error".into();
                    s.task_state = None;
                    s.fault = Some(ServerFault {
                        code: 500,
                        message: "No free loopback address for the conversion host's sshd".into(),
                        created: util::now(),
                    });
                }
            }
        }
    }
    drop(st);
    ctx.sim.changed();
    for v in &new_volumes {
        jobs::spawn_volume(&ctx.sim, &ctx.cloud, v);
    }
    jobs::spawn_server(&ctx.sim, &ctx.cloud, &id);

    let mut resp = http::json(
        StatusCode::ACCEPTED,
        json!({"server": {
            "id": id, "links": links(&ctx, "servers", &id), "OS-DCF:diskConfig": disk_config,
            "security_groups": if sg_names.is_empty() { vec![json!({"name": "default"})] } else { sg_names.iter().map(|n| json!({"name": n})).collect() },
            "adminPass": admin_pass,
        }}),
    );
    if let Ok(v) = HeaderValue::from_str(&ctx.url(&format!("/compute/v2.1/servers/{id}"))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn sanitize_hostname(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "server".into()
    } else {
        s.chars().take(63).collect()
    }
}
