use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::util::Sim;

#[test]
fn http_fault_fails_nth_request_with_service_body() {
    let sim = Sim::start();
    let s = sim.login("src");
    let (st, f) = sim.admin(Method::POST, "/faults", Some(json!({"kind": "http", "method": "GET", "path": "^/compute/v2.1/servers/detail$", "cloud": "src", "nth": 2, "count": 2, "status": 503, "message": "nova is down"})));
    assert_eq!(st, 201, "{f}");
    let (a, _) = s.req(Method::GET, "compute", "/servers/detail", None);
    let (b, body) = s.req(Method::GET, "compute", "/servers/detail", None);
    let (c, _) = s.req(Method::GET, "compute", "/servers/detail", None);
    let (d, _) = s.req(Method::GET, "compute", "/servers/detail", None);
    assert_eq!((a, b, c, d), (200, 503, 503, 200));
    assert_eq!(body["serviceUnavailable"]["message"], "nova is down");
    assert_eq!(body["serviceUnavailable"]["code"], 503);
    // Neutron and Cinder shapes.
    sim.admin(
        Method::POST,
        "/faults",
        Some(json!({"kind": "http", "path": "^/network/v2.0/networks", "status": 409})),
    );
    let (st, body) = s.req(Method::GET, "network", "/networks", None);
    assert_eq!(st, 409);
    assert_eq!(body["NeutronError"]["type"], "Conflict");
    sim.admin(
        Method::POST,
        "/faults",
        Some(json!({"kind": "http", "path": "^/volume/v3/volumes", "status": 500})),
    );
    let (st, body) = s.req(Method::GET, "volume", "/volumes", None);
    assert_eq!(st, 500);
    assert!(body["computeFault"]["message"].is_string());
    let (_, list) = sim.admin(Method::GET, "/faults", None);
    assert_eq!(list["faults"][0]["fired"], 2);
    assert_eq!(list["faults"][0]["matched"], 4);
    assert_eq!(sim.admin(Method::DELETE, "/faults", None).0, 204);
    assert_eq!(s.req(Method::GET, "network", "/networks", None).0, 200);
    let (st, _) = sim.admin(
        Method::POST,
        "/faults",
        Some(json!({"kind": "http", "path": "("})),
    );
    assert_eq!(st, 400);
}

#[test]
fn stuck_detaching_until_fault_removed_and_request_counts() {
    let sim = Sim::start();
    let s = sim.login("src");
    let b = s.basics(json!({}), b"x");
    let id = s.boot(&b, "vm", json!({}));
    s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
    let vol = s.post(
        "volume",
        "/volumes",
        json!({"volume": {"size": 1, "name": "osm-data"}}),
    )["volume"]["id"]
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
    let (_, f) = sim.admin(Method::POST, "/faults", Some(json!({"kind": "stuck", "resource": "volume", "match": {"name": "^osm-"}, "status": "detaching"})));
    let fid = f["fault"]["id"].as_u64().unwrap();
    s.req(
        Method::DELETE,
        "compute",
        &format!("/servers/{id}/os-volume_attachments/{vol}"),
        None,
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        s.get("volume", &format!("/volumes/{vol}"))["volume"]["status"],
        "detaching"
    );
    assert_eq!(
        sim.admin(Method::DELETE, &format!("/faults/{fid}"), None).0,
        204
    );
    s.wait_status("volume", &format!("/volumes/{vol}"), "volume", "available");

    sim.admin(Method::POST, "/requests/reset", None);
    s.get("compute", &format!("/servers/{id}"));
    s.get("compute", &format!("/servers/{id}"));
    s.get("volume", "/volumes/detail");
    let (_, counts) = sim.admin(Method::GET, "/requests", None);
    assert_eq!(
        counts["src"]["GET /compute/v2.1/servers/{id}"], 2,
        "{counts}"
    );
    assert_eq!(
        counts["src"]["GET /volume/v3/volumes/detail"], 1,
        "{counts}"
    );
}

#[test]
fn slow_and_error_transitions() {
    let sim = Sim::start();
    let s = sim.login("dst");
    let b = s.basics(json!({}), b"x");
    sim.admin(Method::POST, "/faults", Some(json!({"kind": "error", "resource": "server", "match": {"name": "^doomed$"}, "message": "No valid host was found."})));
    let id = s.boot(&b, "doomed", json!({}));
    let v = s.wait_status("compute", &format!("/servers/{id}"), "server", "ERROR");
    assert_eq!(v["server"]["fault"]["message"], "No valid host was found.");
    assert_eq!(v["server"]["fault"]["code"], 500);
    // An ERROR server can still be deleted.
    s.req(Method::DELETE, "compute", &format!("/servers/{id}"), None);
    s.wait_gone("compute", &format!("/servers/{id}"));

    sim.admin(
        Method::POST,
        "/faults",
        Some(json!({"kind": "slow", "resource": "volume", "seconds": 1.0})),
    );
    let start = Instant::now();
    let vol = s.post("volume", "/volumes", json!({"volume": {"size": 1}}))["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status("volume", &format!("/volumes/{vol}"), "volume", "available");
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );

    // A failing volume makes a boot-from-volume server fail as Nova reports it.
    sim.admin(Method::DELETE, "/faults", None);
    sim.admin(
        Method::POST,
        "/faults",
        Some(json!({"kind": "error", "resource": "volume", "status": "downloading"})),
    );
    let id = s.boot(&b, "bfv", json!({"imageRef": "", "block_device_mapping_v2": [{"boot_index": 0, "uuid": b.image, "source_type": "image", "destination_type": "volume", "volume_size": 1}]}));
    let v = s.wait_status("compute", &format!("/servers/{id}"), "server", "ERROR");
    assert!(
        v["server"]["fault"]["message"]
            .as_str()
            .unwrap()
            .contains("did not finish being created"),
        "{v}"
    );
    // Cinder says why in its user messages.
    let root = v["server"]["os-extended-volumes:volumes_attached"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let msgs = s.get("volume", &format!("/messages?resource_uuid={root}"));
    assert_eq!(msgs["messages"][0]["resource_type"], "VOLUME");
    assert!(
        msgs["messages"][0]["user_message"]
            .as_str()
            .unwrap()
            .starts_with("create volume from image: "),
        "{msgs}"
    );
}
