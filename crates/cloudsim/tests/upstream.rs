//! What upstream OS Migrate's tooling asks of a cloud beyond what osm does (issue 18): a server's
//! security groups through Nova, QoS policies and floating IPs that carry one, an attachment's
//! `delete_on_termination` changed after the fact, and disks on virtio-scsi (`/dev/sdX`, and
//! `scsi-0QEMU_QEMU_HARDDISK_<id>` links on a conversion host).

use reqwest::Method;
use serde_json::json;

use crate::util::Sim;

#[test]
fn nova_lists_a_servers_security_groups() {
    let sim = Sim::start();
    let s = sim.login("src");
    let b = s.basics(json!({}), b"x");
    let sg = s.post(
        "network",
        "/security-groups",
        json!({"security_group": {"name": "web", "description": "web servers"}}),
    )["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post("network", "/security-group-rules", json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "10.0.0.0/8"}}));
    let id = s.boot(&b, "web-1", json!({"security_groups": [{"name": "web"}]}));
    s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    let v = s.get("compute", &format!("/servers/{id}/os-security-groups"));
    let groups = v["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{v}");
    assert_eq!(groups[0]["id"], sg.as_str());
    assert_eq!(groups[0]["name"], "web");
    assert_eq!(groups[0]["tenant_id"], s.project_id.as_str());
    let rule = &groups[0]["rules"][0];
    assert_eq!(
        (
            &rule["ip_protocol"],
            &rule["from_port"],
            &rule["to_port"],
            &rule["ip_range"]["cidr"],
            &rule["parent_group_id"]
        ),
        (
            &json!("tcp"),
            &json!(80),
            &json!(80),
            &json!("10.0.0.0/8"),
            &json!(sg)
        )
    );
    let (st, _) = s.req(
        Method::GET,
        "compute",
        "/servers/nope/os-security-groups",
        None,
    );
    assert_eq!(st, 404);
}

#[test]
fn qos_policies_and_floating_ips_that_carry_one() {
    let sim = Sim::start();
    let s = sim.login("src");
    let other = sim.login("dst");
    let q = s.post(
        "network",
        "/qos/policies",
        json!({"policy": {"name": "gold", "description": "fast"}}),
    )["policy"]
        .clone();
    let qid = q["id"].as_str().unwrap().to_string();
    assert_eq!(
        (q["shared"].clone(), q["rules"].clone()),
        (json!(false), json!([]))
    );
    let listed = s.get("network", "/qos/policies?name=gold");
    assert_eq!(listed["policies"][0]["id"], qid.as_str());
    let ext = s.get("network", "/extensions");
    assert!(ext["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["alias"] == "qos-fip"));
    let public = s.post(
        "network",
        "/networks",
        json!({"network": {"name": "pub", "router:external": true}}),
    )["network"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        "network",
        "/subnets",
        json!({"subnet": {"network_id": public, "cidr": "172.24.0.0/24", "ip_version": 4}}),
    );
    let fip = s.post(
        "network",
        "/floatingips",
        json!({"floatingip": {"floating_network_id": public, "qos_policy_id": qid, "dns_name": "web", "dns_domain": "example.org."}}),
    )["floatingip"]
        .clone();
    assert_eq!(fip["qos_policy_id"], qid.as_str());
    assert_eq!(
        (fip["dns_name"].clone(), fip["dns_domain"].clone()),
        (json!("web"), json!("example.org."))
    );
    let fid = fip["id"].as_str().unwrap().to_string();
    let (st, v) = s.req(
        Method::DELETE,
        "network",
        &format!("/qos/policies/{qid}"),
        None,
    );
    assert_eq!(st, 409, "a policy in use stays: {v}");
    let (st, v) = s.req(
        Method::PUT,
        "network",
        &format!("/floatingips/{fid}"),
        Some(json!({"floatingip": {"qos_policy_id": null}})),
    );
    assert_eq!(
        (st, v["floatingip"]["qos_policy_id"].clone()),
        (200, json!(null))
    );
    // Another project's private policy is not there for it.
    let (st, _) = other.req(
        Method::GET,
        "network",
        &format!("/qos/policies/{qid}"),
        None,
    );
    assert_eq!(st, 404);
    let (st, v) = s.req(
        Method::PUT,
        "network",
        &format!("/floatingips/{fid}"),
        Some(json!({"floatingip": {"qos_policy_id": "no-such-policy"}})),
    );
    assert_eq!(st, 404, "{v}");
    let (st, _) = s.req(
        Method::DELETE,
        "network",
        &format!("/qos/policies/{qid}"),
        None,
    );
    assert_eq!(st, 204);
}

#[test]
fn delete_on_termination_of_an_attachment_changes_at_2_85() {
    let sim = Sim::start();
    let s = sim.login("src");
    let b = s.basics(json!({}), b"x");
    let id = s.boot(&b, "srv", json!({}));
    s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
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
    let path = format!("/servers/{id}/os-volume_attachments/{vol}");
    let body = json!({"volumeAttachment": {"volumeId": vol, "delete_on_termination": true}});
    let (st, v, _) = s.req_h(
        Method::PUT,
        "compute",
        &path,
        Some(body.clone()),
        &[("OpenStack-API-Version", "compute 2.84")],
    );
    assert_eq!(st, 400, "{v}");
    let (st, _, _) = s.req_h(
        Method::PUT,
        "compute",
        &path,
        Some(body),
        &[("OpenStack-API-Version", "compute 2.85")],
    );
    assert_eq!(st, 202);
    let (_, v, _) = s.req_h(
        Method::GET,
        "compute",
        &path,
        None,
        &[("OpenStack-API-Version", "compute 2.85")],
    );
    assert_eq!(v["volumeAttachment"]["delete_on_termination"], true);
    let swap = json!({"volumeAttachment": {"volumeId": "another"}});
    let (st, _, _) = s.req_h(
        Method::PUT,
        "compute",
        &path,
        Some(swap),
        &[("OpenStack-API-Version", "compute 2.85")],
    );
    assert_eq!(st, 403, "swapping volumes is an admin's");
}

#[test]
fn disks_on_virtio_scsi_are_sd_and_named_by_serial_on_conversion_hosts() {
    let sim = Sim::start_with(30);
    let s = sim.login("src");
    let b = s.basics(
        json!({"osm_sim_conversion_host": "true", "hw_disk_bus": "scsi", "hw_scsi_model": "virtio-scsi"}),
        b"host",
    );
    let id = s.boot(&b, "conv-scsi", json!({}));
    s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
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
    let v = s.wait_status("volume", &format!("/volumes/{vol}"), "volume", "in-use");
    assert_eq!(v["volume"]["attachments"][0]["device"], "/dev/sdb");
    let by_id = sim
        .state_dir()
        .join("hosts")
        .join(&id)
        .join("dev/disk/by-id");
    let link = by_id.join(format!("scsi-0QEMU_QEMU_HARDDISK_{vol}"));
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        sim.state_dir().join(format!("clouds/src/volumes/{vol}"))
    );
    assert!(!by_id.join(format!("virtio-{}", &vol[..20])).exists());
    s.req(
        Method::DELETE,
        "compute",
        &format!("/servers/{id}/os-volume_attachments/{vol}"),
        None,
    );
    s.wait_status("volume", &format!("/volumes/{vol}"), "volume", "available");
    assert!(std::fs::symlink_metadata(&link).is_err());
    // A server booted from a volume whose image metadata says scsi, with device names as upstream
    // gives them (no /dev/ prefix).
    let boot = s.post(
        "volume",
        "/volumes",
        json!({"volume": {"size": 1, "imageRef": b.image}}),
    )["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status("volume", &format!("/volumes/{boot}"), "volume", "available");
    let server = json!({"server": {"name": "bfv", "flavorRef": b.flavor, "networks": "none",
        "block_device_mapping_v2": [{"boot_index": 0, "uuid": boot, "source_type": "volume", "destination_type": "volume", "device_name": "sda"}]}});
    let created = s.post("compute", "/servers", server)["server"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status(
        "compute",
        &format!("/servers/{created}"),
        "server",
        "ACTIVE",
    );
    let atts = s.get(
        "compute",
        &format!("/servers/{created}/os-volume_attachments"),
    );
    assert_eq!(atts["volumeAttachments"][0]["device"], "/dev/sda");
}
