//! A full create/use/delete cycle of every call the workflow needs, against one cloud of a
//! clouds.yaml: `cargo run -p osm-openstack --example cloud_smoke -- DIR/clouds.yaml src` after
//! `osm-cloudsim serve --state-dir DIR`. Needs admin rights (flavor, external network). Meant for
//! cloudsim or a test cloud, never a production one.

use std::collections::BTreeMap;
use std::time::Duration;

use osm_openstack::*;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(cloud)) = (args.next(), args.next()) else {
        eprintln!("usage: cloud_smoke CLOUDS_YAML CLOUD");
        std::process::exit(2);
    };
    let conn = Connection::from_clouds_yaml(std::path::Path::new(&path), &cloud)?;
    let t = Duration::from_secs(60);
    let info = conn.authenticate()?;
    println!(
        "user {} project {:?} admin {}",
        info.user.name,
        info.project.as_ref().map(|p| &p.name),
        info.is_admin()
    );
    for s in [
        Service::Compute,
        Service::BlockStorage,
        Service::Image,
        Service::Network,
        Service::Identity,
    ] {
        println!(
            "{s}: {} {:?}",
            conn.endpoint_url(s)?,
            conn.microversion_range(s)?
        );
    }
    println!(
        "projects {:?}",
        conn.identity()
            .list_projects()?
            .iter()
            .map(|p| &p.name)
            .collect::<Vec<_>>()
    );
    println!(
        "project {:?}",
        conn.identity().get_project(&conn.project_id()?)?.name
    );
    println!(
        "domain {:?}",
        conn.identity().get_domain("default").map(|d| d.name)
    );
    let c = conn.compute();
    let flavor = match c.find_flavor("smoke.small")? {
        Some(f) => f,
        None => c.create_flavor(&NewFlavor {
            name: "smoke.small".into(),
            vcpus: 1,
            ram: 512,
            disk: 1,
            description: Some("d".into()),
            ..Default::default()
        })?,
    };
    println!("flavor {} {}", flavor.id, flavor.name);
    println!("flavors {}", c.list_flavors()?.len());
    let img = conn.image();
    let mut props = serde_json::Map::new();
    props.insert("os_distro".into(), "cirros".into());
    let image = img.create_image(&NewImage {
        name: "smoke-img".into(),
        disk_format: Some("raw".into()),
        container_format: Some("bare".into()),
        properties: props,
        ..Default::default()
    })?;
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 7) as u8).collect();
    img.upload_image_data(
        &image.id,
        std::io::Cursor::new(data.clone()),
        Some(data.len() as u64),
    )?;
    let image = img.wait_for_image(&image.id, &["active"], t)?;
    let mut out = Vec::new();
    img.download_image_data(&image.id, &mut out)?;
    assert_eq!(out, data);
    let mut set = serde_json::Map::new();
    set.insert("os_distro".into(), "ubuntu".into());
    set.insert("x".into(), "y".into());
    let image = img.update_image_properties(&image.id, &set, &[])?;
    println!(
        "image {} {:?} {:?}",
        image.id,
        image.property("os_distro"),
        image.property("x")
    );
    println!(
        "find image {:?}",
        img.find_image("smoke-img")?.map(|i| i.id)
    );
    let n = conn.network();
    let net = n.create_network(&NewNetwork {
        name: "smoke-net".into(),
        ..Default::default()
    })?;
    let sub = n.create_subnet(&NewSubnet {
        network_id: net.id.clone(),
        cidr: "10.9.0.0/24".into(),
        ip_version: 4,
        name: Some("smoke-sub".into()),
        ..Default::default()
    })?;
    let port = n.create_port(&NewPort {
        network_id: net.id.clone(),
        name: Some("smoke-port".into()),
        fixed_ips: vec![PortFixedIp {
            subnet_id: Some(sub.id.clone()),
            ip_address: Some("10.9.0.50".into()),
        }],
        ..Default::default()
    })?;
    n.add_tag(TaggedResource::Port, &port.id, "osm-smoke")?;
    println!(
        "port {} {:?} {:?}",
        port.id,
        port.mac_address,
        n.get_port(&port.id)?.tags
    );
    println!(
        "ports by ip {}",
        n.list_ports(&Query::new().with("fixed_ips", "ip_address=10.9.0.50"))?
            .len()
    );
    let sg = n.create_security_group("smoke-sg", Some("x"))?;
    let rule = n.create_security_group_rule(&NewSecurityGroupRule {
        security_group_id: sg.id.clone(),
        direction: "ingress".into(),
        protocol: Some("tcp".into()),
        port_range_min: Some(22),
        port_range_max: Some(22),
        remote_ip_prefix: Some("0.0.0.0/0".into()),
        ..Default::default()
    })?;
    println!(
        "sg {} rule {} default {:?}",
        sg.id,
        rule.id,
        n.find_security_group(
            "default",
            &Query::new().with("project_id", conn.project_id()?)
        )?
        .map(|g| g.id)
    );
    let ext: Vec<_> = n.list_networks(&Query::new().with("router:external", "true"))?;
    println!(
        "external nets {:?}",
        ext.iter().map(|x| &x.name).collect::<Vec<_>>()
    );
    let router = n.create_router(&NewRouter {
        name: "smoke-r".into(),
        external_gateway_info: ext.first().map(|e| ExternalGateway {
            network_id: e.id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    })?;
    n.add_router_interface(&router.id, &sub.id)?;
    let kp = c.create_keypair(
        "smoke-kp",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGz0mvMIfLJNgGZ8xHmX3IhFjkO5HOCOK5Em6u4HpzH8 smoke",
        None,
    )?;
    println!("keypair {} {:?}", kp.name, kp.fingerprint);
    let bs = conn.block_storage();
    let mut md = BTreeMap::new();
    md.insert("osm_transfer".to_string(), "t1".to_string());
    let vol = bs.create_volume(&NewVolume {
        size: 1,
        name: Some("smoke-vol".into()),
        metadata: md.clone(),
        ..Default::default()
    })?;
    let vol = bs.wait_for_volume(&vol.id, &["available"], t)?;
    println!(
        "volume {} {} by metadata {}",
        vol.id,
        vol.status,
        bs.list_volumes_with(&Query::new().with("metadata", metadata_filter(&md)))?
            .len()
    );
    let snap = bs.create_snapshot(&vol.id, "smoke-snap", None, false, &BTreeMap::new())?;
    let snap = bs.wait_for_snapshot(&snap.id, &["available"], t)?;
    let vol2 = bs.create_volume(&NewVolume {
        size: 1,
        name: Some("smoke-vol2".into()),
        snapshot_id: Some(snap.id.clone()),
        ..Default::default()
    })?;
    bs.wait_for_volume(&vol2.id, &["available"], t)?;
    bs.set_volume_bootable(&vol2.id, true)?;
    let mut im = BTreeMap::new();
    im.insert("hw_disk_bus".to_string(), "virtio".to_string());
    bs.set_volume_image_metadata(&vol2.id, &im)?;
    let v2 = bs.get_volume(&vol2.id)?;
    println!(
        "vol2 bootable {} image md {:?}",
        v2.is_bootable, v2.volume_image_metadata
    );
    println!(
        "volume types {:?}",
        bs.list_volume_types()?
            .iter()
            .map(|t| &t.name)
            .collect::<Vec<_>>()
    );
    let srv = c.create_server(&NewServer {
        name: "smoke-srv".into(),
        flavor_ref: flavor.id.clone(),
        image_ref: Some(image.id.clone()),
        networks: vec![ServerNetwork::Port(port.id.clone())],
        key_name: Some(kp.name.clone()),
        tags: vec!["osm".into()],
        metadata: md.clone(),
        user_data: Some(UserData::Plain(b"#cloud-config\n".to_vec())),
        description: Some("smoke".into()),
        ..Default::default()
    })?;
    println!("server {} {}", srv.id, srv.status);
    let srv = c.wait_for_server(&srv.id, &["ACTIVE"], t)?;
    println!(
        "server {} flavor {:?} image {:?} tags {:?} addrs {:?} ud {:?}",
        srv.status,
        srv.flavor_name_or_id(),
        srv.image.as_ref().map(|i| &i.id),
        srv.tags,
        srv.addresses,
        srv.user_data
    );
    println!(
        "find server {:?}",
        c.find_server("smoke-srv")?.map(|s| s.id)
    );
    c.stop_server(&srv.id)?;
    c.wait_for_server(&srv.id, &["SHUTOFF"], t)?;
    let att = c.attach_volume(&srv.id, &vol.id, None, None)?;
    println!("attach {:?}", att);
    bs.wait_for_volume(&vol.id, &["in-use"], t)?;
    println!(
        "attachments {:?} on volume {:?}",
        c.list_volume_attachments(&srv.id)?
            .iter()
            .map(|a| &a.volume_id)
            .collect::<Vec<_>>(),
        bs.get_volume(&vol.id)?.attachments
    );
    println!(
        "interfaces {:?}",
        c.list_interfaces(&srv.id)?
            .iter()
            .map(|i| (&i.port_id, &i.fixed_ips))
            .collect::<Vec<_>>()
    );
    c.detach_volume(&srv.id, &vol.id)?;
    bs.wait_for_volume(&vol.id, &["available"], t)?;
    let snap_img = c.create_server_image(&srv.id, "smoke-srv-img", &BTreeMap::new())?;
    let si = img.wait_for_image(&snap_img, &["active"], t)?;
    println!("server image {} {}", si.id, si.status);
    c.start_server(&srv.id)?;
    c.wait_for_server(&srv.id, &["ACTIVE"], t)?;
    // external network, floating IP, boot from volume with network uuid + fixed ip
    let extnet = n.create_network(&NewNetwork {
        name: "smoke-ext".into(),
        is_router_external: Some(true),
        ..Default::default()
    })?;
    let extsub = n.create_subnet(&NewSubnet {
        network_id: extnet.id.clone(),
        cidr: "172.30.0.0/24".into(),
        ip_version: 4,
        ..Default::default()
    })?;
    let r2 = n.create_router(&NewRouter {
        name: "smoke-r2".into(),
        external_gateway_info: Some(ExternalGateway {
            network_id: extnet.id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    })?;
    println!("r2 gw {:?}", r2.external_gateway_info);
    n.remove_router_interface(&router.id, &sub.id)?;
    n.add_router_interface(&r2.id, &sub.id)?;
    let fip = n.create_floating_ip(&NewFloatingIp {
        floating_network_id: extnet.id.clone(),
        port_id: Some(port.id.clone()),
        ..Default::default()
    })?;
    println!(
        "fip {} -> {:?} {:?}",
        fip.floating_ip_address, fip.fixed_ip_address, fip.port_id
    );
    let fip = n.update_floating_ip_port(&fip.id, None, None)?;
    println!(
        "fip disassociated {:?}; by port {}",
        fip.port_id,
        n.list_floating_ips(&Query::new().with("port_id", port.id.clone()))?
            .len()
    );
    println!(
        "find fip {:?}",
        n.find_floating_ip(&fip.floating_ip_address)?.map(|f| f.id)
    );
    n.delete_floating_ip(&fip.id)?;
    let bfv = c.create_server(&NewServer {
        name: "smoke-bfv".into(),
        flavor_ref: flavor.id.clone(),
        block_device_mapping_v2: vec![BlockDeviceMapping::volume(&vol2.id, Some(0))],
        networks: vec![ServerNetwork::Network {
            uuid: net.id.clone(),
            fixed_ip: Some("10.9.0.60".into()),
        }],
        ..Default::default()
    })?;
    let bfv = c.wait_for_server(&bfv.id, &["ACTIVE"], t)?;
    println!(
        "bfv image {:?} volumes {:?} volume-backed {}",
        bfv.image,
        bfv.volumes_attached,
        bfv.is_volume_backed()
    );
    c.delete_server(&bfv.id)?;
    c.wait_for_server_deleted(&bfv.id, t)?;
    bs.wait_for_volume(&vol2.id, &["available"], t)?;
    n.remove_router_interface(&r2.id, &sub.id)?;
    n.delete_router(&r2.id)?;
    n.delete_subnet(&extsub.id)?;
    n.delete_network(&extnet.id)?;
    // cleanup
    c.delete_server(&srv.id)?;
    c.wait_for_server_deleted(&srv.id, t)?;
    img.delete_image(&snap_img)?;
    img.delete_image(&image.id)?;
    img.wait_for_image_deleted(&image.id, t)?;
    bs.delete_volume(&vol2.id, false)?;
    bs.wait_for_volume_deleted(&vol2.id, t)?;
    bs.delete_snapshot(&snap.id)?;
    bs.wait_for_snapshot_deleted(&snap.id, t)?;
    bs.delete_volume(&vol.id, true)?;
    bs.wait_for_volume_deleted(&vol.id, t)?;
    c.delete_keypair(&kp.name)?;
    n.delete_router(&router.id)?;
    n.delete_security_group_rule(&rule.id)?;
    n.delete_security_group(&sg.id)?;
    n.delete_port(&port.id)?;
    n.delete_subnet(&sub.id)?;
    n.delete_network(&net.id)?;
    c.delete_flavor(&flavor.id)?;
    println!("get deleted server: {}", c.get_server(&srv.id).unwrap_err());
    println!("OK");
    Ok(())
}
