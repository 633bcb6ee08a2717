//! HTTP-level behaviour against a scripted local server: auth and token reuse, microversion
//! headers, retries, errors, pagination, waiting, data transfer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use osm_openstack::{
    Connection, Error, Interface, NewServer, NewVolume, Query, ResourceKind, Service, MASK,
};
use serde_json::json;

use crate::util::{config, fake_cloud, server_json, Response, Server, PROJECT};

#[test]
fn one_auth_per_connection_and_headers() {
    let srv = Server::start(fake_cloud("2.104", |r| {
        r.is("GET", "/compute/v2.1/servers/detail").then(|| {
            Response::json(
                200,
                json!({"servers": [server_json("s1", "web", "ACTIVE")]}),
            )
        })
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    assert_eq!(conn.compute().list_servers().unwrap().len(), 1);
    assert_eq!(conn.compute().list_servers().unwrap()[0].name, "web");
    assert_eq!(
        srv.count("POST", "/identity/v3/auth/tokens"),
        1,
        "the token is reused"
    );

    let reqs = srv.requests();
    let auth = reqs
        .iter()
        .find(|r| r.is("POST", "/identity/v3/auth/tokens"))
        .unwrap();
    assert_eq!(
        auth.json(),
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": "alice", "domain": {"id": "default"}, "password": "s3cr3t-pw"}}},
            "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}})
    );
    let list = reqs
        .iter()
        .find(|r| r.is("GET", "/compute/v2.1/servers/detail"))
        .unwrap();
    assert_eq!(list.header("x-auth-token"), Some("tok-1"));
    // Ceiling 2.100 is below the cloud's 2.104.
    assert_eq!(list.header("openstack-api-version"), Some("compute 2.100"));
    assert_eq!(list.header("x-openstack-nova-api-version"), Some("2.100"));
    assert_eq!(conn.project_id().unwrap(), PROJECT);
    assert!(!format!("{conn:?}").contains("s3cr3t-pw"));
}

#[test]
fn microversion_negotiated_down_and_required_features_fail_early() {
    let srv = Server::start(fake_cloud("2.40", |r| {
        if r.is("GET", "/compute/v2.1/servers/detail") {
            return Some(Response::json(200, json!({"servers": []})));
        }
        if r.is("POST", "/compute/v2.1/servers") {
            return Some(Response::json(202, json!({"server": {"id": "new"}})));
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    conn.compute().list_servers().unwrap();
    let list = srv
        .requests()
        .into_iter()
        .find(|r| r.is("GET", "/compute/v2.1/servers/detail"))
        .unwrap();
    assert_eq!(list.header("openstack-api-version"), Some("compute 2.40"));
    let new = NewServer {
        name: "x".into(),
        flavor_ref: "f".into(),
        image_ref: Some("i".into()),
        tags: vec!["t".into()],
        ..Default::default()
    };
    let err = conn.compute().create_server(&new).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert_eq!(err.to_string(), "compute: server tags at create needs API microversion 2.52, the cloud supports at most 2.40");
    assert_eq!(
        srv.count("POST", "/compute/v2.1/servers"),
        0,
        "no request was made"
    );
}

#[test]
fn block_storage_endpoint_and_volume_microversion() {
    let srv = Server::start(fake_cloud("2.104", |r| {
        r.is("POST", &format!("/volume/v3/{PROJECT}/volumes")).then(|| Response::json(202, json!({"volume": {"id": "v1", "status": "creating", "size": 1, "bootable": "false"}})))
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let v = conn
        .block_storage()
        .create_volume(&NewVolume {
            size: 1,
            name: Some("d".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(v.status, "creating");
    let post = srv
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path().ends_with("/volumes"))
        .unwrap();
    assert_eq!(post.header("openstack-api-version"), Some("volume 3.66"));
    assert_eq!(post.json(), json!({"volume": {"size": 1, "name": "d"}}));
    assert_eq!(
        conn.endpoint_url(Service::BlockStorage).unwrap(),
        format!("{}/volume/v3/{PROJECT}", srv.url())
    );
    assert_eq!(
        conn.endpoint_url(Service::Image).unwrap(),
        format!("{}/image/v2", srv.url())
    );
    assert_eq!(
        conn.endpoint_url(Service::Network).unwrap(),
        format!("{}/network/v2.0", srv.url())
    );
}

#[test]
fn interface_selects_endpoint() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        r.is("GET", "/internal/v2.0/networks")
            .then(|| Response::json(200, json!({"networks": [{"id": "n1", "name": "private"}]})))
    }));
    let mut cfg = config(&srv.url());
    cfg.interface = Interface::Internal;
    let conn = Connection::new(cfg).unwrap();
    let nets = conn.network().list_networks(&Query::new()).unwrap();
    assert_eq!(nets[0].name, "private");
}

#[test]
fn nova_pagination_follows_links_and_keeps_filters() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        if !r.is("GET", "/compute/v2.1/servers/detail") {
            return None;
        }
        let q = r.query();
        let marker = q
            .iter()
            .find(|(k, _)| k == "marker")
            .map(|(_, v)| v.clone());
        Some(match marker.as_deref() {
            None => Response::json(
                200,
                json!({
                    "servers": [server_json("s1", "web-1", "ACTIVE"), server_json("s2", "web-2", "ACTIVE")],
                    // A next link with the wrong host (behind a proxy): only its query is used.
                    "servers_links": [{"rel": "next", "href": "http://internal-host:8774/v2.1/servers/detail?name=web&limit=2&marker=s2"}]
                }),
            ),
            Some("s2") => Response::json(
                200,
                json!({
                    "servers": [server_json("s3", "web-3", "ACTIVE")],
                    "servers_links": [{"rel": "next", "href": "http://internal-host:8774/v2.1/servers/detail?name=web&limit=2&marker=s3"}]
                }),
            ),
            Some(_) => Response::json(200, json!({"servers": []})),
        })
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let servers = conn
        .compute()
        .list_servers_with(&Query::new().with("name", "web"))
        .unwrap();
    let ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2", "s3"]);
    let targets: Vec<String> = srv
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/compute/v2.1/servers/detail")
        .map(|r| r.target)
        .collect();
    assert_eq!(
        targets,
        [
            "/compute/v2.1/servers/detail?name=web",
            "/compute/v2.1/servers/detail?name=web&limit=2&marker=s2",
            "/compute/v2.1/servers/detail?name=web&limit=2&marker=s3",
        ]
    );
}

#[test]
fn glance_and_neutron_pagination() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        let marker = r
            .query()
            .into_iter()
            .find(|(k, _)| k == "marker")
            .map(|(_, v)| v);
        if r.is("GET", "/image/v2/images") {
            return Some(match marker.as_deref() {
                None => Response::json(
                    200,
                    json!({"images": [{"id": "i1", "name": "a", "status": "active"}], "next": "/v2/images?marker=i1"}),
                ),
                _ => Response::json(
                    200,
                    json!({"images": [{"id": "i2", "name": "b", "status": "active"}], "first": "/v2/images"}),
                ),
            });
        }
        if r.is("GET", "/network/v2.0/ports") {
            return Some(match marker.as_deref() {
                None => Response::json(
                    200,
                    json!({"ports": [{"id": "p1", "network_id": "n"}], "ports_links": [{"rel": "next", "href": "http://x/v2.0/ports?device_id=d&marker=p1"}]}),
                ),
                _ => Response::json(
                    200,
                    json!({"ports": [{"id": "p2", "network_id": "n"}], "ports_links": [{"rel": "previous", "href": "http://x/v2.0/ports?marker=p2&page_reverse=True"}]}),
                ),
            });
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let images = conn.image().list_images().unwrap();
    assert_eq!(
        images.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["i1", "i2"]
    );
    let ports = conn
        .network()
        .list_ports(&Query::new().with("device_id", "d"))
        .unwrap();
    assert_eq!(
        ports.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["p1", "p2"]
    );
}

#[test]
fn find_and_get_semantics() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        if r.path().starts_with("/compute/v2.1/servers/")
            && r.path() != "/compute/v2.1/servers/detail"
        {
            return Some(Response::json(
                404,
                json!({"itemNotFound": {"message": "Instance could not be found.", "code": 404}}),
            ));
        }
        if r.is("GET", "/compute/v2.1/servers/detail") {
            // Nova's name filter is a regex: "web" also matches "web-2".
            return Some(Response::json(
                200,
                json!({"servers": [server_json("a", "web", "ACTIVE"), server_json("b", "web-2", "ACTIVE"), server_json("c", "dup", "ACTIVE"), server_json("d", "dup", "ACTIVE")]}),
            ));
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    assert_eq!(conn.compute().find_server("web").unwrap().unwrap().id, "a");
    assert!(conn.compute().find_server("nothing").unwrap().is_none());
    let err = conn.compute().find_server("dup").unwrap_err();
    assert_eq!(
        err.to_string(),
        "2 servers are named \"dup\"; give an ID instead"
    );
    let err = conn.compute().get_server("zzz").unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert_eq!(err.to_string(), "server \"zzz\" not found");
}

#[test]
fn fault_bodies_end_to_end() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        if r.is("POST", "/compute/v2.1/servers/s1/action") {
            return Some(
                Response::json(409, json!({"conflictingRequest": {"message": "Cannot 'os-stop' instance s1 while it is in vm_state stopped", "code": 409}}))
                    .with_header("x-compute-request-id", "req-c1"),
            );
        }
        if r.is("POST", "/network/v2.0/ports") {
            return Some(Response::json(
                409,
                json!({"NeutronError": {"type": "IpAddressAlreadyAllocated", "message": "IP address 10.0.0.5 already allocated in subnet s", "detail": ""}}),
            ));
        }
        if r.is("DELETE", "/image/v2/images/i1") {
            return Some(Response::Reply {
                status: 403,
                headers: vec![("Content-Type".into(), "text/html".into())],
                body: b"<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1>Image i1 is protected and cannot be deleted.<br /><br /></body></html>".to_vec(),
            });
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let e = conn.compute().stop_server("s1").unwrap_err();
    assert!(e.is_conflict());
    assert_eq!(
        e.to_string(),
        "compute POST /compute/v2.1/servers/s1/action failed: HTTP 409: Cannot 'os-stop' instance s1 while it is in vm_state stopped (request-id req-c1)"
    );
    let e = conn
        .network()
        .create_port(&osm_openstack::NewPort {
            network_id: "n".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "network POST /network/v2.0/ports failed: HTTP 409: IpAddressAlreadyAllocated: IP address 10.0.0.5 already allocated in subnet s"
    );
    let e = conn.image().delete_image("i1").unwrap_err();
    assert_eq!(e.to_string(), "image DELETE /image/v2/images/i1 failed: HTTP 403: 403 Forbidden: Image i1 is protected and cannot be deleted.");
}

#[test]
fn waiting_for_status() {
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let srv = Server::start(fake_cloud("2.1", move |r| {
        if r.is("GET", "/compute/v2.1/servers/ok") {
            let n = p.fetch_add(1, Ordering::SeqCst);
            return Some(Response::json(
                200,
                json!({"server": server_json("ok", "a", if n < 2 { "BUILD" } else { "ACTIVE" })}),
            ));
        }
        if r.is("GET", "/compute/v2.1/servers/bad") {
            let mut s = server_json("bad", "b", "ERROR");
            s["fault"] = json!({"code": 500, "message": "No valid host was found. There are not enough hosts available."});
            return Some(Response::json(200, json!({"server": s})));
        }
        if r.is("GET", &format!("/volume/v3/{PROJECT}/volumes/v1")) {
            return Some(Response::json(
                200,
                json!({"volume": {"id": "v1", "status": "creating", "size": 1}}),
            ));
        }
        if r.is("GET", &format!("/volume/v3/{PROJECT}/volumes/gone")) {
            return Some(Response::json(
                404,
                json!({"itemNotFound": {"message": "Volume gone could not be found.", "code": 404}}),
            ));
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let s = conn
        .compute()
        .wait_for_server("ok", &["ACTIVE"], Duration::from_secs(10))
        .unwrap();
    assert_eq!(s.status, "ACTIVE");
    let e = conn
        .compute()
        .wait_for_server("bad", &["ACTIVE"], Duration::from_secs(10))
        .unwrap_err();
    assert_eq!(e.to_string(), "server bad went to status ERROR: No valid host was found. There are not enough hosts available.");
    let e = conn
        .wait_for_status(
            ResourceKind::Volume,
            "v1",
            &["available"],
            ResourceKind::Volume.error_statuses(),
            Duration::from_millis(500),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }));
    assert!(
        e.to_string().starts_with("timed out after 0.")
            && e.to_string()
                .ends_with("waiting for volume v1 to become available (last status: creating)"),
        "{e}"
    );
    conn.wait_for_deleted(ResourceKind::Volume, "gone", Duration::from_secs(1))
        .unwrap();
}

#[test]
fn create_server_image_both_microversions() {
    for (max, expect_header) in [("2.60", "compute 2.60"), ("2.40", "compute 2.40")] {
        let srv = Server::start(fake_cloud(max, move |r| {
            if r.is("POST", "/compute/v2.1/servers/s1/action") {
                let v = r
                    .header("x-openstack-nova-api-version")
                    .unwrap_or("")
                    .to_string();
                return Some(if v == "2.60" {
                    Response::json(202, json!({"image_id": "img-new"}))
                } else {
                    Response::empty(202)
                        .with_header("Location", "http://glance:9292/v2/images/img-old")
                });
            }
            None
        }));
        let conn = Connection::new(config(&srv.url())).unwrap();
        let id = conn
            .compute()
            .create_server_image("s1", "snap", &BTreeMap::new())
            .unwrap();
        assert_eq!(id, if max == "2.60" { "img-new" } else { "img-old" });
        let post = srv
            .requests()
            .into_iter()
            .find(|r| r.is("POST", "/compute/v2.1/servers/s1/action"))
            .unwrap();
        assert_eq!(post.header("openstack-api-version"), Some(expect_header));
        assert_eq!(
            post.json(),
            json!({"createImage": {"name": "snap", "metadata": {}}})
        );
    }
}

#[test]
fn create_server_sends_the_body_and_returns_the_server() {
    let srv = Server::start(fake_cloud("2.104", |r| {
        if r.is("POST", "/compute/v2.1/servers") {
            return Some(Response::json(
                202,
                json!({"server": {"id": "new", "adminPass": "x"}}),
            ));
        }
        if r.is("GET", "/compute/v2.1/servers/new") {
            return Some(Response::json(
                200,
                json!({"server": server_json("new", "web", "BUILD")}),
            ));
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let new = NewServer {
        name: "web".into(),
        flavor_ref: "f".into(),
        image_ref: Some("i".into()),
        tags: vec!["osm".into()],
        ..Default::default()
    };
    let s = conn.compute().create_server(&new).unwrap();
    assert_eq!(s.status, "BUILD");
    let post = srv
        .requests()
        .into_iter()
        .find(|r| r.is("POST", "/compute/v2.1/servers"))
        .unwrap();
    assert_eq!(post.header("openstack-api-version"), Some("compute 2.100"));
    assert_eq!(
        post.json(),
        json!({"server": {"name": "web", "flavorRef": "f", "imageRef": "i", "networks": "none", "tags": ["osm"]}})
    );
}

#[test]
fn image_data_up_and_down() {
    let stored = Arc::new(std::sync::Mutex::new(Vec::new()));
    let st = stored.clone();
    let srv = Server::start(fake_cloud("2.1", move |r| {
        if r.is("PUT", "/image/v2/images/i1/file") {
            *st.lock().unwrap() = r.body.clone();
            return Some(Response::empty(204));
        }
        if r.is("GET", "/image/v2/images/i1/file") {
            return Some(Response::bytes(200, st.lock().unwrap().clone()));
        }
        if r.is("GET", "/image/v2/images/i1") {
            return Some(Response::json(
                200,
                json!({"id": "i1", "name": "x", "status": "active", "os_distro": "old"}),
            ));
        }
        if r.method == "PATCH" && r.path() == "/image/v2/images/i1" {
            assert_eq!(
                r.header("content-type"),
                Some("application/openstack-images-v2.1-json-patch")
            );
            return Some(Response::json(
                200,
                json!({"id": "i1", "name": "x", "status": "active", "os_distro": "new", "k": "v"}),
            ));
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    conn.image()
        .upload_image_data(
            "i1",
            std::io::Cursor::new(data.clone()),
            Some(data.len() as u64),
        )
        .unwrap();
    let put = srv
        .requests()
        .into_iter()
        .find(|r| r.is("PUT", "/image/v2/images/i1/file"))
        .unwrap();
    assert_eq!(put.header("content-type"), Some("application/octet-stream"));
    assert_eq!(*stored.lock().unwrap(), data);
    // Unsized: chunked.
    conn.image()
        .upload_image_data("i1", std::io::Cursor::new(data.clone()), None)
        .unwrap();
    assert_eq!(*stored.lock().unwrap(), data);
    let mut out = Vec::new();
    assert_eq!(
        conn.image().download_image_data("i1", &mut out).unwrap(),
        data.len() as u64
    );
    assert_eq!(out, data);
    let mut set = serde_json::Map::new();
    set.insert("os_distro".into(), json!("new"));
    set.insert("k".into(), json!("v"));
    let img = conn
        .image()
        .update_image_properties("i1", &set, &[])
        .unwrap();
    assert_eq!(img.property("os_distro"), Some("new"));
    let patch = srv
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        patch.json(),
        json!([{"op": "add", "path": "/k", "value": "v"}, {"op": "replace", "path": "/os_distro", "value": "new"}])
    );
}

#[test]
fn secrets_never_leak_into_errors() {
    // A token-auth cloud whose Keystone fails: neither the token nor any password shows.
    let srv = Server::start(|_| {
        Box::new(|_r: &crate::util::Request| {
            Response::json(500, json!({"error": {"message": "db down", "code": 500}}))
        })
    });
    let mut cfg = config(&srv.url());
    cfg.auth_type = osm_openstack::AuthType::Token;
    cfg.auth.token = Some(osm_openstack::Secret::new("gAAAA-secret-token"));
    let conn = Connection::new(cfg.clone()).unwrap();
    let err = conn.authenticate().unwrap_err();
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{cfg:?}"),
        format!("{conn:?}"),
    ] {
        assert!(
            !text.contains("gAAAA-secret-token") && !text.contains("s3cr3t-pw"),
            "{text}"
        );
    }
    assert!(format!("{cfg:?}").contains(MASK));
    let req = srv.requests().into_iter().next().unwrap();
    assert_eq!(
        req.json()["auth"]["identity"]["token"]["id"],
        "gAAAA-secret-token"
    );
}

#[test]
fn project_listing_falls_back_when_forbidden() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        if r.is("GET", "/identity/v3/projects") {
            return Some(Response::json(
                403,
                json!({"error": {"code": 403, "title": "Forbidden", "message": "You are not authorized"}}),
            ));
        }
        if r.is("GET", "/identity/v3/auth/projects") {
            return Some(Response::json(
                200,
                json!({"projects": [{"id": "p1", "name": "demo", "domain_id": "default"}, {"id": "p2", "name": "other", "domain_id": "default"}], "links": {"next": null}}),
            ));
        }
        if r.is("GET", "/identity/v3/projects/p1") || r.is("GET", "/identity/v3/domains/default") {
            return Some(Response::json(
                403,
                json!({"error": {"code": 403, "title": "Forbidden", "message": "no"}}),
            ));
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let projects = conn.identity().list_projects().unwrap();
    assert_eq!(projects.len(), 2);
    assert_eq!(
        conn.identity().find_project("other").unwrap().unwrap().id,
        "p2"
    );
    // Forbidden, but it is the token's own project / domain.
    assert_eq!(conn.identity().get_project("p1").unwrap().name, "demo");
    assert_eq!(
        conn.identity().get_domain("default").unwrap().name,
        "Default"
    );
    assert_eq!(conn.identity().current_project().unwrap().id, PROJECT);
    assert_eq!(conn.identity().current_user().unwrap().name, "alice");
}

#[test]
fn volume_error_state_carries_cinder_user_message() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        if r.is("GET", &format!("/volume/v3/{PROJECT}/volumes/v1")) {
            return Some(Response::json(
                200,
                json!({"volume": {"id": "v1", "status": "error", "size": 1}}),
            ));
        }
        if r.is("GET", &format!("/volume/v3/{PROJECT}/messages")) {
            assert_eq!(r.header("openstack-api-version"), Some("volume 3.66"));
            return Some(Response::json(
                200,
                json!({"messages": [
                {"id": "m1", "created_at": "2026-01-01T00:00:00", "user_message": "schedule allocate volume: Could not find any available weighted backend."},
                {"id": "m0", "created_at": "2025-01-01T00:00:00", "user_message": "older"}]}),
            ));
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let e = conn
        .block_storage()
        .wait_for_volume("v1", &["available"], Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(e.to_string(), "volume v1 went to status error: schedule allocate volume: Could not find any available weighted backend.");
    let q = srv
        .requests()
        .into_iter()
        .find(|r| r.path().ends_with("/messages"))
        .unwrap()
        .query();
    assert_eq!(q, vec![("resource_uuid".to_string(), "v1".to_string())]);
}

#[test]
fn connection_from_a_clouds_yaml_file() {
    let srv = Server::start(fake_cloud("2.1", |_| None));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clouds.yaml");
    std::fs::write(&path, format!("clouds:\n  src:\n    auth:\n      auth_url: {}/identity\n      username: alice\n      project_name: demo\n    region_name: RegionOne\n", srv.url())).unwrap();
    std::fs::write(
        dir.path().join("secure.yaml"),
        "clouds:\n  src:\n    auth:\n      password: pw\n",
    )
    .unwrap();
    let conn = Connection::from_clouds_yaml(&path, "src").unwrap();
    assert_eq!(conn.config().name.as_deref(), Some("src"));
    assert_eq!(conn.authenticate().unwrap().user.name, "alice");
    let err = Connection::from_clouds_yaml(&path, "dst")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cloud \"dst\" is not in") && err.contains("it has: src"),
        "{err}"
    );
}

#[test]
fn server_addresses_keep_nova_order_in_get_and_list() {
    // Nova sends `addresses` in NIC order; here that is not the networks' name order, and one
    // network has two ports. Written as text: a JSON value type would sort the keys.
    let server = r#"{"id": "s1", "name": "web", "status": "ACTIVE", "image": "", "flavor": {"original_name": "m1"},
        "addresses": {
            "zeta-net": [{"addr": "10.0.9.5", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:09"},
                         {"addr": "203.0.113.7", "version": 4, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:09"}],
            "alpha-net": [{"addr": "10.0.1.5", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"},
                          {"addr": "10.0.1.6", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "FA:16:3E:00:00:03"}],
            "mid-net": [{"addr": "10.0.5.5", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]
        }}"#;
    let raw = |body: String| Response::Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into_bytes(),
    };
    let srv = Server::start(fake_cloud("2.1", move |r| {
        if r.is("GET", "/compute/v2.1/servers/s1") {
            Some(raw(format!(r#"{{"server": {server}}}"#)))
        } else if r.is("GET", "/compute/v2.1/servers/detail") {
            Some(raw(format!(
                r#"{{"servers": [{server}], "servers_links": []}}"#
            )))
        } else {
            None
        }
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let got = conn.compute().get_server("s1").unwrap();
    let listed = conn.compute().list_servers().unwrap();
    for s in [&got, &listed[0]] {
        let nets: Vec<&str> = s.addresses.networks().map(|(n, _)| n).collect();
        assert_eq!(nets, ["zeta-net", "alpha-net", "mid-net"]);
        assert_eq!(
            s.addresses.macs(),
            [
                "fa:16:3e:00:00:09",
                "fa:16:3e:00:00:01",
                "FA:16:3E:00:00:03"
            ]
        );
        assert_eq!(s.addresses.all().count(), 5);
    }
    let back = serde_json::to_string(&got.addresses).unwrap();
    assert!(back.find("zeta-net") < back.find("alpha-net"), "{back}");
}
