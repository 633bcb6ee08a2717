//! TLS against a local HTTPS Keystone with a self-signed CA: `cacert` works, no `cacert` fails
//! with a clear TLS error, `verify: false` works.

use std::sync::{Arc, OnceLock};

use osm_openstack::{CloudOptions, ConfigLoader, Connection, Error};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::util::{fake_cloud, Server};

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "osm test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();

        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .unwrap();
        Pki {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    })
}

fn https_keystone() -> Server {
    Server::start_tls(pki().server.clone(), fake_cloud("2.1", |_| None))
}

/// Module options with an `auth` dict, as a playbook would pass them.
fn options(url: &str, extra: serde_json::Value) -> CloudOptions {
    let mut v = serde_json::json!({
        "auth": {"auth_url": format!("{url}/identity"), "username": "alice", "password": "pw", "project_name": "demo"}
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn connect(opts: &CloudOptions) -> Result<Connection, Error> {
    let dir = tempfile::tempdir().unwrap();
    let loader = ConfigLoader::with_env([("HOME", dir.path().to_str().unwrap())], dir.path());
    let mut cfg = loader.load(opts)?;
    cfg.retry.base_delay = std::time::Duration::from_millis(10);
    Connection::new(cfg)
}

#[test]
fn cacert_makes_it_work() {
    let srv = https_keystone();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki().ca_pem).unwrap();
    let conn = connect(&options(
        &srv.url(),
        serde_json::json!({"ca_cert": ca.to_str().unwrap()}),
    ))
    .unwrap();
    let info = conn.authenticate().unwrap();
    assert_eq!(info.user.name, "alice");
    assert_eq!(srv.count("POST", "/identity/v3/auth/tokens"), 1);
}

#[test]
fn without_cacert_fails_with_a_clear_tls_error() {
    let srv = https_keystone();
    let conn = connect(&options(&srv.url(), serde_json::json!({}))).unwrap();
    let err = conn.authenticate().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Transport { .. }), "{msg}");
    assert!(msg.contains("certificate"), "{msg}");
    assert!(
        msg.contains("TLS verification failed") && msg.contains("cacert"),
        "{msg}"
    );
    assert!(
        !msg.contains("after"),
        "a certificate error is not retried: {msg}"
    );
    assert!(!msg.contains("pw\""), "{msg}");
}

#[test]
fn verify_false_skips_verification() {
    let srv = https_keystone();
    let conn = connect(&options(
        &srv.url(),
        serde_json::json!({"validate_certs": false}),
    ))
    .unwrap();
    assert_eq!(conn.authenticate().unwrap().user.name, "alice");
    // The `verify` alias, in a clouds.yaml-like cloud dict.
    let opts: CloudOptions = serde_json::from_value(serde_json::json!({"cloud": {
        "auth": {"auth_url": format!("{}/identity", srv.url()), "username": "alice", "password": "pw", "project_name": "demo"},
        "verify": false
    }}))
    .unwrap();
    assert_eq!(
        connect(&opts)
            .unwrap()
            .authenticate()
            .unwrap()
            .project
            .unwrap()
            .name,
        "demo"
    );
}

#[test]
fn bad_cacert_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("not-a-ca.pem");
    std::fs::write(&ca, "hello").unwrap();
    let err = connect(&options(
        "https://localhost:1",
        serde_json::json!({"ca_cert": ca.to_str().unwrap()}),
    ))
    .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("not-a-ca.pem"), "{err}");
    let err = connect(&options(
        "https://localhost:1",
        serde_json::json!({"ca_cert": "/nonexistent/ca.pem"}),
    ))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read cacert /nonexistent/ca.pem"),
        "{err}"
    );
}
