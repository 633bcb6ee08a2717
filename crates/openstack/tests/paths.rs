//! Names are data in request paths too: a name that a URL parser would resolve (`.`, `..`) never
//! becomes a path segment.

use osm_openstack::{Connection, Error, Query};
use serde_json::json;

use crate::util::{config, fake_cloud, Response, Server, PROJECT};

#[test]
fn a_volume_named_dot_dot_is_looked_up_by_name_not_by_path() {
    let list = format!("/volume/v3/{PROJECT}/volumes/detail");
    let srv = Server::start(fake_cloud("2.104", move |r| {
        r.is("GET", &list).then(|| {
            Response::json(200, json!({"volumes": [{"id": "v1", "name": "..", "status": "available", "size": 1, "bootable": "false"}]}))
        })
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let found = conn.block_storage().find_volume("..").unwrap();
    assert_eq!(found.map(|v| v.id).as_deref(), Some("v1"));
    let volume_paths: Vec<String> = srv
        .requests()
        .into_iter()
        .filter(|r| r.path().contains("/volumes"))
        .map(|r| r.target)
        .collect();
    assert_eq!(
        volume_paths,
        vec![format!("/volume/v3/{PROJECT}/volumes/detail?name=..")],
        "only the list by name was requested"
    );
}

#[test]
fn an_id_of_dot_or_dot_dot_is_refused_before_any_request() {
    let srv = Server::start(fake_cloud("2.104", |_| None));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let before = srv.requests().len();
    for bad in [".", ".."] {
        let e = conn.block_storage().delete_volume(bad, false).unwrap_err();
        assert!(matches!(e, Error::BadSegment { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("volume {bad:?}")), "{e}");
        let e = conn
            .network()
            .remove_router_interface(bad, "s")
            .unwrap_err();
        assert!(matches!(e, Error::BadSegment { .. }), "{e:?}");
        let e = conn.compute().get_server(bad).unwrap_err();
        assert!(matches!(e, Error::BadSegment { .. }), "{e:?}");
    }
    let e = conn
        .network()
        .find_network("..", &Query::new())
        .map(|_| ())
        .unwrap_err();
    // The name lookup lists (the scripted cloud answers nothing) but never asks for `/networks/..`.
    assert!(!matches!(e, Error::BadSegment { .. }), "{e:?}");
    assert!(
        srv.requests()[before..]
            .iter()
            .all(|r| !r.path().ends_with("/..") && !r.path().ends_with("/.")),
        "no request on a dot path"
    );
}
