use reqwest::Method;
use serde_json::{json, Value};

use crate::util::Sim;

#[test]
fn server_build_stop_start_delete() {
    let sim = Sim::start_with(200);
    let s = sim.login("src");
    let b = s.basics(json!({}), b"bootable bytes");
    // A pre-created port is kept (unbound) when the server goes; Nova's own port is deleted.
    let port = s.post("network", "/ports", json!({"port": {"network_id": b.net, "name": "keep", "fixed_ips": [{"ip_address": "10.0.0.77"}], "mac_address": "fa:16:3e:00:00:77"}}))["port"]["id"].as_str().unwrap().to_string();
    let id = s.boot(&b, "vm1", json!({"networks": [{"uuid": b.net, "fixed_ip": "10.0.0.10"}, {"port": port}], "metadata": {"a": "b"}, "tags": ["t1"]}));
    let v = s.get("compute", &format!("/servers/{id}"));
    assert_eq!(v["server"]["status"], "BUILD");
    let v = s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    let srv = &v["server"];
    assert_eq!(srv["OS-EXT-STS:vm_state"], "active");
    assert_eq!(srv["OS-EXT-STS:power_state"], 1);
    assert_eq!(srv["tags"], json!(["t1"]));
    assert_eq!(srv["metadata"]["a"], "b");
    assert_eq!(srv["flavor"]["original_name"], "m1.small");
    assert_eq!(srv["image"]["id"], b.image.as_str());
    let addrs = srv["addresses"]["net1"].as_array().unwrap();
    let ips: Vec<&str> = addrs.iter().map(|a| a["addr"].as_str().unwrap()).collect();
    assert_eq!(ips, vec!["10.0.0.10", "10.0.0.77"]);
    assert_eq!(addrs[1]["OS-EXT-IPS-MAC:mac_addr"], "fa:16:3e:00:00:77");
    assert_eq!(addrs[0]["OS-EXT-IPS:type"], "fixed");
    let ports = s.get("network", &format!("/ports?device_id={id}"));
    assert_eq!(ports["ports"].as_array().unwrap().len(), 2);
    assert!(ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] == "ACTIVE" && p["device_owner"] == "compute:nova"));
    // Old microversions show the flavor by id.
    let (_, v, h) = s.req_h(
        Method::GET,
        "compute",
        &format!("/servers/{id}"),
        None,
        &[("X-OpenStack-Nova-API-Version", "2.1")],
    );
    assert_eq!(v["server"]["flavor"]["id"], b.flavor.as_str());
    assert_eq!(h["x-openstack-nova-api-version"], "2.1");

    let (st, _) = s.req(
        Method::POST,
        "compute",
        &format!("/servers/{id}/action"),
        Some(json!({"os-start": null})),
    );
    assert_eq!(st, 409);
    let (st, _) = s.req(
        Method::POST,
        "compute",
        &format!("/servers/{id}/action"),
        Some(json!({"os-stop": null})),
    );
    assert_eq!(st, 202);
    let v = s.get("compute", &format!("/servers/{id}"));
    assert_eq!(v["server"]["OS-EXT-STS:task_state"], "powering-off");
    assert_eq!(v["server"]["status"], "ACTIVE");
    let v = s.wait_status("compute", &format!("/servers/{id}"), "server", "SHUTOFF");
    assert_eq!(v["server"]["OS-EXT-STS:power_state"], 4);
    s.req(
        Method::POST,
        "compute",
        &format!("/servers/{id}/action"),
        Some(json!({"os-start": null})),
    );
    s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");

    let (st, _) = s.req(Method::DELETE, "compute", &format!("/servers/{id}"), None);
    assert_eq!(st, 204);
    s.wait_status("compute", &format!("/servers/{id}"), "server", "DELETED");
    s.wait_gone("compute", &format!("/servers/{id}"));
    let kept = s.get("network", &format!("/ports/{port}"));
    assert_eq!(kept["port"]["device_id"], "");
    assert_eq!(kept["port"]["status"], "DOWN");
    assert_eq!(
        s.get("network", "/ports?fixed_ips=ip_address=10.0.0.10")["ports"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn boot_from_volume_attach_detach_and_delete_on_termination() {
    let sim = Sim::start_with(50);
    let s = sim.login("dst");
    let data = vec![7u8; 3 << 20];
    let b = s.basics(json!({"hw_disk_bus": "virtio"}), &data);
    let id = s.boot(&b, "bfv", json!({"imageRef": "", "block_device_mapping_v2": [{"boot_index": 0, "uuid": b.image, "source_type": "image", "destination_type": "volume", "volume_size": 1, "delete_on_termination": true}]}));
    let v = s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    assert_eq!(v["server"]["image"], "");
    let root = v["server"]["os-extended-volumes:volumes_attached"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vol = s.get("volume", &format!("/volumes/{root}"))["volume"].clone();
    assert_eq!(vol["status"], "in-use");
    assert_eq!(vol["bootable"], "true");
    assert_eq!(vol["attachments"][0]["server_id"], id.as_str());
    assert_eq!(vol["attachments"][0]["device"], "/dev/vda");
    assert_eq!(vol["volume_image_metadata"]["hw_disk_bus"], "virtio");
    let file = std::fs::read(sim.state_dir().join(format!("clouds/dst/volumes/{root}"))).unwrap();
    assert_eq!(file.len(), 1 << 30);
    assert_eq!(&file[..data.len()], &data[..]);

    // A data volume: attaching -> in-use, detaching -> available.
    let dv = s.post(
        "volume",
        "/volumes",
        json!({"volume": {"size": 2, "name": "data"}}),
    )["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status("volume", &format!("/volumes/{dv}"), "volume", "available");
    let a = s.post(
        "compute",
        &format!("/servers/{id}/os-volume_attachments"),
        json!({"volumeAttachment": {"volumeId": dv}}),
    );
    assert_eq!(a["volumeAttachment"]["device"], "/dev/vdb");
    assert_eq!(
        s.get("volume", &format!("/volumes/{dv}"))["volume"]["status"],
        "attaching"
    );
    s.wait_status("volume", &format!("/volumes/{dv}"), "volume", "in-use");
    let (st, v) = s.req(Method::DELETE, "volume", &format!("/volumes/{dv}"), None);
    assert_eq!(st, 400, "{v}");
    assert!(v["badRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("attached"));
    let (st, _) = s.req(
        Method::DELETE,
        "compute",
        &format!("/servers/{id}/os-volume_attachments/{root}"),
        None,
    );
    assert_eq!(st, 400, "root volume cannot be detached");
    let (st, _) = s.req(
        Method::DELETE,
        "compute",
        &format!("/servers/{id}/os-volume_attachments/{dv}"),
        None,
    );
    assert_eq!(st, 202);
    assert_eq!(
        s.get("volume", &format!("/volumes/{dv}"))["volume"]["status"],
        "detaching"
    );
    s.wait_status("volume", &format!("/volumes/{dv}"), "volume", "available");

    // createImage of a volume-backed server: snapshots plus a mapping image of size 0.
    let (st, v) = s.req(
        Method::POST,
        "compute",
        &format!("/servers/{id}/action"),
        Some(json!({"createImage": {"name": "snap"}})),
    );
    assert_eq!(st, 202);
    let image = v["image_id"].as_str().unwrap().to_string();
    let img = s.wait(" snapshot image", || {
        let (_, v) = s.req(Method::GET, "image", &format!("/images/{image}"), None);
        (v["status"] == "active").then_some(v)
    });
    assert_eq!(img["size"], 0);
    let bdm: serde_json::Value =
        serde_json::from_str(img["block_device_mapping"].as_str().unwrap()).unwrap();
    let snap = bdm[0]["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(
        s.get("volume", &format!("/snapshots/{snap}"))["snapshot"]["status"],
        "available"
    );
    // ... and booting from that image makes a volume from the snapshot.
    let id2 = s.boot(&b, "from-snap", json!({"imageRef": image}));
    let v = s.wait_status("compute", &format!("/servers/{id2}"), "server", "ACTIVE");
    let root2 = v["server"]["os-extended-volumes:volumes_attached"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.get("volume", &format!("/volumes/{root2}"))["volume"]["snapshot_id"],
        snap.as_str()
    );

    // Deleting the server deletes the root volume (delete_on_termination).
    s.req(Method::DELETE, "compute", &format!("/servers/{id}"), None);
    s.wait_gone("compute", &format!("/servers/{id}"));
    s.wait_gone("volume", &format!("/volumes/{root}"));
    assert!(!sim
        .state_dir()
        .join(format!("clouds/dst/volumes/{root}"))
        .exists());
}

#[test]
fn create_image_copies_the_root_disk_and_volumes_copy_bytes() {
    let sim = Sim::start_with(30);
    let s = sim.login("src");
    let mut data = vec![0u8; 5 << 20];
    data[1 << 20..(1 << 20) + 11].copy_from_slice(b"hello world");
    let b = s.basics(json!({"os_distro": "debian"}), &data);
    let id = s.boot(&b, "vm", json!({}));
    s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    let (st, v) = s.req(
        Method::POST,
        "compute",
        &format!("/servers/{id}/action"),
        Some(json!({"createImage": {"name": "vm-snap", "metadata": {"k": "v"}}})),
    );
    assert_eq!(st, 202);
    let image = v["image_id"].as_str().unwrap().to_string();
    let (_, first) = s.req(Method::GET, "image", &format!("/images/{image}"), None);
    assert!(
        ["queued", "saving"].contains(&first["status"].as_str().unwrap()),
        "{first}"
    );
    let img = s.wait("image active", || {
        let (_, v) = s.req(Method::GET, "image", &format!("/images/{image}"), None);
        (v["status"] == "active").then_some(v)
    });
    assert_eq!(img["size"], data.len() as u64);
    assert_eq!(img["os_distro"], "debian");
    assert_eq!(img["k"], "v");
    assert_eq!(img["image_type"], "snapshot");
    assert_eq!(img["instance_uuid"], id.as_str());
    assert_eq!(img["os_hash_algo"], "sha512");
    let server = s.get("compute", &format!("/servers/{id}"));
    assert_eq!(
        server["server"]["OS-EXT-STS:task_state"],
        serde_json::Value::Null
    );
    // Download returns the same bytes.
    let bytes = sim
        .client
        .get(s.url("image", &format!("/images/{image}/file")))
        .header("X-Auth-Token", &s.token)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(&bytes[..], &data[..]);
    // A volume from it, a snapshot of that, a volume from the snapshot and a clone: same bytes.
    let v1 = s.post(
        "volume",
        "/volumes",
        json!({"volume": {"size": 1, "imageRef": image}}),
    )["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status("volume", &format!("/volumes/{v1}"), "volume", "available");
    let snap = s.post(
        "volume",
        "/snapshots",
        json!({"snapshot": {"volume_id": v1, "name": "s"}}),
    )["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status(
        "volume",
        &format!("/snapshots/{snap}"),
        "snapshot",
        "available",
    );
    let v2 = s.post(
        "volume",
        "/volumes",
        json!({"volume": {"snapshot_id": snap}}),
    )["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v3 = s.post(
        "volume",
        "/volumes",
        json!({"volume": {"source_volid": v1}}),
    )["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for v in [&v2, &v3] {
        let vol = s.wait_status("volume", &format!("/volumes/{v}"), "volume", "available");
        assert_eq!(vol["volume"]["size"], 1);
        assert_eq!(vol["volume"]["bootable"], "true");
        let f = std::fs::read(sim.state_dir().join(format!("clouds/src/volumes/{v}"))).unwrap();
        assert_eq!(&f[..data.len()], &data[..]);
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(sim.state_dir().join(format!("clouds/src/volumes/{v}")))
            .unwrap()
            .blocks();
        assert!(
            blocks * 512 < 4 << 20,
            "volume copy is not sparse: {} bytes allocated",
            blocks * 512
        );
    }
    let (st, v) = s.req(Method::DELETE, "volume", &format!("/volumes/{v1}"), None);
    assert_eq!(st, 400, "volume with snapshots: {v}");
    let (st, _) = s.req(
        Method::DELETE,
        "volume",
        &format!("/volumes/{v1}?cascade=true"),
        None,
    );
    assert_eq!(st, 202);
    s.wait_gone("volume", &format!("/volumes/{v1}"));
    s.wait_gone("volume", &format!("/snapshots/{snap}"));
}

#[test]
fn conversion_host_sshd_and_device_links() {
    let sim = Sim::start_with(30);
    let s = sim.login("src");
    let b = s.basics(json!({"osm_sim_conversion_host": "true"}), b"host");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    s.post(
        "compute",
        "/os-keypairs",
        json!({"keypair": {"name": "k", "public_key": pubkey}}),
    );
    let id = s.boot(&b, "conv", json!({"key_name": "k"}));
    let v = s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    let addr = v["server"]["accessIPv4"].as_str().unwrap().to_string();
    assert!(addr.starts_with("127.201."), "{addr}");
    let hostdir = sim.state_dir().join("hosts").join(&id);
    assert_eq!(
        std::fs::read_to_string(hostdir.join("home/.ssh/authorized_keys"))
            .unwrap()
            .trim(),
        pubkey.trim()
    );
    std::net::TcpStream::connect((addr.as_str(), sim.ssh_port))
        .expect("sshd listens on the host address");
    let vol = s.post("volume", "/volumes", json!({"volume": {"size": 1}}))["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status("volume", &format!("/volumes/{vol}"), "volume", "available");
    s.post(
        "compute",
        &format!("/servers/{id}/os-volume_attachments"),
        json!({"volumeAttachment": {"volumeId": vol}}),
    );
    s.wait_status("volume", &format!("/volumes/{vol}"), "volume", "in-use");
    let link = hostdir
        .join("dev/disk/by-id")
        .join(format!("virtio-{}", &vol[..20]));
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        sim.state_dir().join(format!("clouds/src/volumes/{vol}"))
    );
    s.req(
        Method::DELETE,
        "compute",
        &format!("/servers/{id}/os-volume_attachments/{vol}"),
        None,
    );
    s.wait_status("volume", &format!("/volumes/{vol}"), "volume", "available");
    assert!(std::fs::symlink_metadata(&link).is_err());
    // Stopping the server stops its sshd; starting brings it back.
    s.req(
        Method::POST,
        "compute",
        &format!("/servers/{id}/action"),
        Some(json!({"os-stop": null})),
    );
    s.wait_status("compute", &format!("/servers/{id}"), "server", "SHUTOFF");
    assert!(std::net::TcpStream::connect((addr.as_str(), sim.ssh_port)).is_err());
    s.req(
        Method::POST,
        "compute",
        &format!("/servers/{id}/action"),
        Some(json!({"os-start": null})),
    );
    s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    std::net::TcpStream::connect((addr.as_str(), sim.ssh_port)).expect("sshd back after start");
    s.req(Method::DELETE, "compute", &format!("/servers/{id}"), None);
    s.wait_gone("compute", &format!("/servers/{id}"));
    assert!(!hostdir.exists());
    assert!(std::net::TcpStream::connect((addr.as_str(), sim.ssh_port)).is_err());
}

#[test]
fn image_boot_with_a_volume_mapping_needs_the_image_at_boot_index_0() {
    let sim = Sim::start_with(50);
    let s = sim.login("dst");
    let b = s.basics(json!({}), &[1u8; 4096]);
    let data = s.post(
        "volume",
        "/volumes",
        json!({"volume": {"size": 1, "name": "extra"}}),
    )["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status("volume", &format!("/volumes/{data}"), "volume", "available");
    let volume_only = json!({"boot_index": -1, "uuid": data, "source_type": "volume", "destination_type": "volume"});
    let server = json!({"server": {"name": "x", "flavorRef": b.flavor, "imageRef": b.image, "networks": "none",
        "block_device_mapping_v2": [volume_only.clone()]}});
    let (st, v) = s.req(Method::POST, "compute", "/servers", Some(server));
    assert_eq!(st, 400, "{v}");
    assert!(
        v["badRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("Boot sequence"),
        "{v}"
    );

    let image_local = json!({"boot_index": 0, "uuid": b.image, "source_type": "image", "destination_type": "local", "delete_on_termination": true});
    let id = s.boot(
        &b,
        "ok",
        json!({"block_device_mapping_v2": [image_local, volume_only]}),
    );
    let v = s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    assert_eq!(v["server"]["image"]["id"], b.image.as_str());
    assert_eq!(
        v["server"]["os-extended-volumes:volumes_attached"][0]["id"],
        data.as_str()
    );
}

#[test]
fn addresses_are_in_nic_order_and_the_interface_list_is_not() {
    let sim = Sim::start_with(50);
    let s = sim.login("src");
    let b = s.basics(json!({}), &[1u8; 4096]);
    // A second network whose name sorts before the first NIC's: NIC order is not name order.
    let alpha = s.post(
        "network",
        "/networks",
        json!({"network": {"name": "alpha"}}),
    )["network"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post("network", "/subnets", json!({"subnet": {"name": "alpha-sub", "network_id": alpha, "cidr": "10.9.0.0/24", "ip_version": 4}}));
    let id = s.boot(
        &b,
        "two-nics",
        json!({"networks": [{"uuid": b.net}, {"uuid": alpha}]}),
    );
    s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    for path in [
        format!("/servers/{id}"),
        format!("/servers/{id}/ips"),
        "/servers/detail".to_string(),
    ] {
        let text = s.get_text("compute", &path);
        let (net1, alpha) = (text.find("\"net1\""), text.find("\"alpha\""));
        assert!(
            net1.is_some() && net1 < alpha,
            "{path}: addresses in NIC order: {text}"
        );
        assert!(!text.contains("key order"), "{path}: {text}");
    }
    let srv = s.get("compute", &format!("/servers/{id}"));
    let mac_of = |net: &str| srv["server"]["addresses"][net][0]["OS-EXT-IPS-MAC:mac_addr"].clone();
    let listed = s.get("compute", &format!("/servers/{id}/os-interface"));
    let macs: Vec<Value> = listed["interfaceAttachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["mac_addr"].clone())
        .collect();
    assert_eq!(macs, vec![mac_of("alpha"), mac_of("net1")]);
}
