//! The OpenID Connect auth types on the wire, against a scripted provider and Keystone: the token
//! request (grant, scope, client authentication), the bearer token at the federation endpoint,
//! and the rescoping of the unscoped token.

use osm_openstack::{AuthType, CloudConfig, Connection, Error};
use serde_json::json;

use crate::util::{config, fake_cloud, token_body, Request, Response, Server};

const FEDERATION: &str = "/identity/v3/OS-FEDERATION/identity_providers/sso/protocols/openid/auth";

/// A fake cloud with a provider at `/idp` that issues `at-1` (and `it-1` as ID token).
fn federated_cloud(grants: serde_json::Value) -> Server {
    Server::start(move |base: String| {
        let base2 = base.clone();
        fake_cloud("2.90", move |r: &Request| {
            if r.is("GET", "/idp/.well-known/openid-configuration") {
                return Some(Response::json(
                    200,
                    json!({"token_endpoint": format!("{base2}/idp/token"), "grant_types_supported": grants.clone()}),
                ));
            }
            if r.is("POST", "/idp/token") {
                return Some(Response::json(
                    200,
                    json!({"access_token": "at-1", "id_token": "it-1", "token_type": "Bearer"}),
                ));
            }
            if r.is("POST", FEDERATION) {
                let mut unscoped = token_body(&base2);
                if let Some(t) = unscoped["token"].as_object_mut() {
                    t.remove("project");
                }
                return Some(
                    Response::json(201, unscoped).with_header("X-Subject-Token", "unscoped-1"),
                );
            }
            None
        })(base)
    })
}

fn oidc(srv: &Server, auth_type: AuthType) -> CloudConfig {
    let mut c = config(&srv.url());
    c.auth_type = auth_type;
    c.auth.user_domain_name = None;
    c.auth.identity_provider = Some("sso".into());
    c.auth.protocol = Some("openid".into());
    c.auth.discovery_endpoint = Some(format!(
        "{}/idp/.well-known/openid-configuration",
        srv.url()
    ));
    c.auth.client_id = Some("osm".into());
    c.auth.client_secret = Some("cs-1".into());
    c
}

#[test]
fn oidc_password_grant_bearer_and_rescope() {
    let srv = federated_cloud(json!(["password", "client_credentials"]));
    let conn = Connection::new(oidc(&srv, AuthType::OidcPassword)).unwrap();
    let info = conn.authenticate().unwrap();
    assert_eq!(info.project.unwrap().name, "demo");
    let reqs = srv.requests();
    let paths: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /idp/.well-known/openid-configuration".to_string(),
            "POST /idp/token".to_string(),
            format!("POST {FEDERATION}"),
            "POST /identity/v3/auth/tokens".to_string(),
        ]
    );
    let grant = &reqs[1];
    assert_eq!(grant.header("authorization"), Some("Basic b3NtOmNzLTE="));
    assert_eq!(
        grant.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        String::from_utf8_lossy(&grant.body),
        "grant_type=password&scope=openid+profile&username=alice&password=s3cr3t-pw"
    );
    assert_eq!(reqs[2].header("authorization"), Some("Bearer at-1"));
    assert!(reqs[2].body.is_empty());
    assert_eq!(
        reqs[3].json(),
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "unscoped-1"}},
            "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}})
    );
    // Service calls carry the scoped token, not the unscoped one.
    conn.compute().list_servers().ok();
    let last = srv.requests().into_iter().last().unwrap();
    assert_eq!(last.header("x-auth-token"), Some("tok-1"));
}

#[test]
fn a_public_client_and_the_id_token() {
    let srv = federated_cloud(json!([]));
    let mut cfg = oidc(&srv, AuthType::OidcClientCredentials);
    // A public client: client_id in the form, no basic auth (as keystoneauth sends it).
    cfg.auth.client_secret = None;
    cfg.auth.access_token_type = Some("id_token".into());
    cfg.auth.openid_scope = Some("openid".into());
    cfg.auth.discovery_endpoint = None;
    cfg.auth.access_token_endpoint = Some(format!("{}/idp/token", srv.url()));
    // Validation wants a secret for the client credentials grant.
    assert!(Connection::new(cfg.clone()).is_err());
    cfg.auth_type = AuthType::OidcPassword;
    let conn = Connection::new(cfg).unwrap();
    conn.authenticate().unwrap();
    let reqs = srv.requests();
    assert_eq!(
        reqs[0].path(),
        "/idp/token",
        "no discovery with a token endpoint"
    );
    assert_eq!(reqs[0].header("authorization"), None);
    assert_eq!(
        String::from_utf8_lossy(&reqs[0].body),
        "grant_type=password&scope=openid&username=alice&password=s3cr3t-pw&client_id=osm"
    );
    assert_eq!(reqs[1].header("authorization"), Some("Bearer it-1"));
}

#[test]
fn access_token_goes_straight_to_keystone() {
    let srv = federated_cloud(json!([]));
    let mut cfg = oidc(&srv, AuthType::OidcAccessToken);
    cfg.auth.access_token = Some("given-at".into());
    Connection::new(cfg).unwrap().authenticate().unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs[0].path(), FEDERATION);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer given-at"));
}

#[test]
fn a_provider_without_the_grant_is_named() {
    let srv = federated_cloud(json!(["authorization_code"]));
    let err = Connection::new(oidc(&srv, AuthType::OidcPassword))
        .unwrap()
        .authenticate()
        .unwrap_err();
    assert!(matches!(err, Error::Oidc { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cloud {0}/identity: the OIDC discovery document {0}/idp/.well-known/openid-configuration of identity provider \"sso\" does not offer the password grant (grant_types_supported: authorization_code)",
            srv.url()
        )
    );
    assert_eq!(
        srv.requests().len(),
        1,
        "nothing sent to the token endpoint"
    );
}
