//! Retries and re-authentication against a scripted local server: which requests are retried on
//! which failures and how often, and what a rejected token leads to (never the password).

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use osm_openstack::{Connection, Error};
use serde_json::json;

use crate::util::{config, fake_cloud, free_port, server_json, Response, Server};

#[test]
fn get_retried_on_503_then_succeeds() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let srv = Server::start(fake_cloud("2.1", move |r| {
        r.is("GET", "/compute/v2.1/servers/s1").then(|| {
            if h.fetch_add(1, Ordering::SeqCst) < 2 {
                Response::text(503, "Service Unavailable")
            } else {
                Response::json(200, json!({"server": server_json("s1", "web", "ACTIVE")}))
            }
        })
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    assert_eq!(conn.compute().get_server("s1").unwrap().name, "web");
    assert_eq!(srv.count("GET", "/compute/v2.1/servers/s1"), 3);
}

#[test]
fn get_gives_up_after_bounded_retries() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        r.is("GET", "/compute/v2.1/servers/s1").then(|| {
            Response::json(
                502,
                json!({"computeFault": {"message": "upstream down", "code": 502}}),
            )
            .with_header("x-openstack-request-id", "req-9")
        })
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let err = conn.compute().get_server("s1").unwrap_err();
    assert_eq!(
        srv.count("GET", "/compute/v2.1/servers/s1"),
        4,
        "1 try + 3 retries"
    );
    assert_eq!(err.status(), Some(502));
    assert_eq!(
        err.to_string(),
        "compute GET /compute/v2.1/servers/s1 failed: HTTP 502: upstream down (request-id req-9)"
    );
}

#[test]
fn post_not_retried_on_500() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        r.is("POST", "/compute/v2.1/servers/s1/action").then(|| {
            Response::json(
                500,
                json!({"computeFault": {"message": "boom", "code": 500}}),
            )
        })
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let err = conn.compute().stop_server("s1").unwrap_err();
    assert_eq!(srv.count("POST", "/compute/v2.1/servers/s1/action"), 1);
    assert_eq!(
        err.to_string(),
        "compute POST /compute/v2.1/servers/s1/action failed: HTTP 500: boom"
    );
}

#[test]
fn get_retried_after_connection_reset_post_is_not() {
    let gets = Arc::new(AtomicUsize::new(0));
    let g = gets.clone();
    let srv = Server::start(fake_cloud("2.1", move |r| {
        if r.is("GET", "/compute/v2.1/servers/s1") {
            return Some(if g.fetch_add(1, Ordering::SeqCst) == 0 {
                Response::Drop
            } else {
                Response::json(200, json!({"server": server_json("s1", "a", "ACTIVE")}))
            });
        }
        if r.is("POST", "/compute/v2.1/servers/s1/action") {
            return Some(Response::Drop);
        }
        None
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    assert_eq!(conn.compute().get_server("s1").unwrap().id, "s1");
    assert_eq!(srv.count("GET", "/compute/v2.1/servers/s1"), 2);
    let err = conn.compute().start_server("s1").unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert_eq!(
        srv.count("POST", "/compute/v2.1/servers/s1/action"),
        1,
        "a POST that reached the server is not repeated"
    );
    assert!(err.to_string().starts_with("compute POST http://"), "{err}");
}

#[test]
fn post_retried_when_the_connection_is_refused() {
    // Nothing listens on the port at first; the server starts after the first attempt failed.
    let port = free_port();
    let mut cfg = config(&format!("http://127.0.0.1:{port}"));
    cfg.retry.base_delay = Duration::from_millis(100);
    let conn = Connection::new(cfg).unwrap();
    let t = Instant::now();
    let starter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        Server::start_on(listener, fake_cloud("2.1", |_| None))
    });
    let info = conn.authenticate().unwrap();
    assert_eq!(info.user.name, "alice");
    assert!(t.elapsed() >= Duration::from_millis(100));
    let srv = starter.join().unwrap();
    assert_eq!(srv.count("POST", "/identity/v3/auth/tokens"), 1);
}

#[test]
fn connection_refused_gives_transport_error_after_retries() {
    let port = free_port();
    let conn = Connection::new(config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let err = conn.authenticate().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Transport { .. }), "{msg}");
    assert!(
        msg.contains("identity POST") && msg.contains("/identity/v3/auth/tokens"),
        "{msg}"
    );
    assert!(!msg.contains("s3cr3t-pw"));
}

#[test]
fn keystone_401_names_cloud_and_user_never_the_password() {
    let srv = Server::start(|_base| {
        Box::new(|r: &crate::util::Request| {
            if r.method == "POST" {
                Response::json(401, json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}))
                    .with_header("x-openstack-request-id", "req-401")
            } else {
                Response::empty(404)
            }
        })
    });
    let mut cfg = config(&srv.url());
    cfg.auth.user_domain_name = Some("Users".into());
    let conn = Connection::new(cfg.clone()).unwrap();
    let err = conn.compute().list_servers().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Auth { .. }));
    assert_eq!(
        msg,
        format!(
            "authentication failed on cloud {}/identity for user \"alice\" (domain \"Users\"): HTTP 401: Unauthorized: The request you have made requires authentication. (request-id req-401)",
            srv.url()
        )
    );
    assert!(!msg.contains("s3cr3t-pw") && !format!("{err:?}").contains("s3cr3t-pw"));
    // With a cloud name, the name is used.
    cfg.name = Some("src".into());
    let err = Connection::new(cfg)
        .unwrap()
        .authenticate()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("authentication failed on cloud \"src\" for user \"alice\""),
        "{err}"
    );
}

#[test]
fn service_401_reauthenticates_once() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let srv = Server::start(fake_cloud("2.1", move |r| {
        r.is("GET", "/compute/v2.1/servers/s1").then(|| {
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                Response::json(
                    401,
                    json!({"error": {"message": "token expired", "code": 401}}),
                )
            } else {
                Response::json(200, json!({"server": server_json("s1", "a", "ACTIVE")}))
            }
        })
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    conn.compute().get_server("s1").unwrap();
    assert_eq!(srv.count("POST", "/identity/v3/auth/tokens"), 2);
    let gets: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|r| r.is("GET", "/compute/v2.1/servers/s1"))
        .collect();
    assert_eq!(gets[0].header("x-auth-token"), Some("tok-1"));
    assert_eq!(gets[1].header("x-auth-token"), Some("tok-2"));
}

#[test]
fn service_rejecting_new_tokens_too_is_an_auth_error() {
    let srv = Server::start(fake_cloud("2.1", |r| {
        r.is("GET", "/compute/v2.1/servers/s1").then(|| Response::json(401, json!({"error": {"message": "The request you have made requires authentication.", "code": 401}})))
    }));
    let conn = Connection::new(config(&srv.url())).unwrap();
    let err = conn.compute().get_server("s1").unwrap_err();
    assert!(matches!(err, Error::Auth { .. }));
    assert!(
        err.to_string()
            .contains("compute GET /compute/v2.1/servers/s1 rejected a new token too"),
        "{err}"
    );
    assert!(err.to_string().contains("user \"alice\""), "{err}");
    assert_eq!(srv.count("POST", "/identity/v3/auth/tokens"), 2);
    assert_eq!(srv.count("GET", "/compute/v2.1/servers/s1"), 2);
}
