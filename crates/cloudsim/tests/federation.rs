//! Keystone auth beyond passwords (issue 21): the OpenID Connect provider each cloud has, Keystone's
//! federation endpoint, TOTP and multi-method token requests; first on the wire, then through
//! osm's own client (`osm-openstack`) with every auth type it offers.

use std::sync::{Arc, Mutex};

use osm_openstack::{AuthType, CloudConfig, ConfigLoader, Connection, Error, RequestRecord};
use reqwest::Method;
use serde_json::{json, Value};

use crate::util::Sim;

/// The `auth` of a clouds.yaml entry, as JSON.
fn auth_of(sim: &Sim, cloud: &str) -> Value {
    let v = &sim.clouds_yaml()["clouds"][cloud]["auth"];
    serde_json::to_value(v).unwrap()
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_string()
}

/// POST to the provider's token endpoint with `form`, the client's secret as HTTP basic auth.
fn grant(sim: &Sim, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = sim
        .client
        .post(format!("{}/src/idp/token", sim.base))
        .basic_auth("osm", Some(secret))
        .form(form)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn provider_discovery_and_grants() {
    let sim = Sim::start();
    let a = auth_of(&sim, "src-oidc");
    let doc: Value = sim
        .raw(
            Method::GET,
            "/src/idp/.well-known/openid-configuration",
            None,
        )
        .json()
        .unwrap();
    assert_eq!(doc["token_endpoint"], format!("{}/src/idp/token", sim.base));
    assert_eq!(
        doc["grant_types_supported"],
        json!(["password", "client_credentials"])
    );
    assert_eq!(
        s(&a, "discovery_endpoint"),
        format!("{}/src/idp/.well-known/openid-configuration", sim.base)
    );
    let (user, pass, secret) = (s(&a, "username"), s(&a, "password"), s(&a, "client_secret"));
    assert_eq!(user, "src-oidc-user");

    let pw = [
        ("grant_type", "password"),
        ("scope", "openid profile"),
        ("username", user.as_str()),
        ("password", pass.as_str()),
    ];
    let (st, v) = grant(&sim, &secret, &pw);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["access_token"].as_str().is_some() && v["id_token"].as_str().is_some());

    let wrong = [pw[0], pw[1], pw[2], ("password", "not-it")];
    assert_eq!(
        grant(&sim, &secret, &wrong),
        (
            401,
            json!({"error": "invalid_grant", "error_description": "Invalid user credentials"})
        )
    );
    let (st, v) = grant(&sim, "wrong-secret", &pw);
    assert_eq!((st, &v["error"]), (401, &json!("invalid_client")));
    let (st, v) = grant(&sim, &secret, &[pw[0], ("scope", "profile"), pw[2], pw[3]]);
    assert_eq!((st, &v["error"]), (400, &json!("invalid_scope")));
    let (st, v) = grant(&sim, &secret, &[("grant_type", "implicit"), pw[1]]);
    assert_eq!((st, &v["error"]), (400, &json!("unsupported_grant_type")));
    let (st, v) = grant(
        &sim,
        &secret,
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    );
    assert_eq!(st, 200, "{v}");
    // client_secret_post works too.
    let r = sim
        .client
        .post(format!("{}/src/idp/token", sim.base))
        .form(&[
            ("client_id", "osm"),
            ("client_secret", secret.as_str()),
            pw[0],
            pw[1],
            pw[2],
            pw[3],
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn federation_endpoint_gives_an_unscoped_token_that_rescopes() {
    let sim = Sim::start();
    let a = auth_of(&sim, "src-oidc");
    let form = [
        ("grant_type", "password"),
        ("scope", "openid"),
        ("username", &*s(&a, "username")),
        ("password", &*s(&a, "password")),
    ]
    .map(|(k, v)| (k, v.to_string()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, v) = grant(&sim, &s(&a, "client_secret"), &form);
    let access = s(&v, "access_token");
    let fed = |idp: &str, bearer: &str| {
        sim.client
            .post(format!(
                "{}/src/identity/v3/OS-FEDERATION/identity_providers/{idp}/protocols/openid/auth",
                sim.base
            ))
            .bearer_auth(bearer)
            .send()
            .unwrap()
    };
    let r = fed("sso", &access);
    assert_eq!(r.status().as_u16(), 201);
    let unscoped = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    let v: Value = r.json().unwrap();
    assert_eq!(v["token"]["methods"], json!(["openid"]));
    assert_eq!(v["token"]["user"]["name"], "src-oidc-user");
    assert_eq!(v["token"]["user"]["domain"]["name"], "sso");
    assert!(v["token"].get("project").is_none() && v["token"].get("catalog").is_none());

    let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"name": "src-project", "domain": {"name": "Default"}}}}});
    let r = sim.raw(Method::POST, "/src/identity/v3/auth/tokens", Some(body));
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().unwrap();
    assert_eq!(v["token"]["project"]["name"], "src-project");
    assert_eq!(v["token"]["methods"], json!(["token", "openid"]));
    let roles: Vec<&str> = v["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"member") && roles.contains(&"admin"),
        "{roles:?}"
    );

    // A second login maps to the same Keystone user.
    let (_, v2) = grant(&sim, &s(&a, "client_secret"), &form);
    let again: Value = fed("sso", &s(&v2, "access_token")).json().unwrap();
    assert_eq!(again["token"]["user"]["id"], v["token"]["user"]["id"]);

    assert_eq!(fed("sso", "forged").status().as_u16(), 401);
    let r = fed("other", &access);
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["error"]["message"],
        "Could not find Identity Provider: other."
    );
}

#[test]
fn totp_and_multi_method_requests() {
    let sim = Sim::start();
    let a = auth_of(&sim, "src-mfa");
    assert_eq!(
        sim.clouds_yaml()["clouds"]["src-mfa"]["auth_methods"],
        serde_yaml::from_str::<serde_yaml::Value>("[v3password, v3totp]").unwrap()
    );
    let passcode = s(&a, "passcode");
    assert_eq!(passcode.len(), 6, "{passcode}");
    let user = json!({"name": "src-user", "domain": {"name": "Default"}});
    let mut with_passcode = user.clone();
    with_passcode["passcode"] = json!(passcode);
    let mut with_password = user.clone();
    with_password["password"] = json!(sim.password("src"));
    let login = |identity: Value| {
        let body = json!({"auth": {"identity": identity,
            "scope": {"project": {"name": "src-project", "domain": {"id": "default"}}}}});
        let r = sim.raw(Method::POST, "/src/identity/v3/auth/tokens", Some(body));
        let st = r.status().as_u16();
        (st, r.json::<Value>().unwrap_or(Value::Null))
    };
    let (st, v) = login(json!({"methods": ["totp"], "totp": {"user": with_passcode}}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["token"]["methods"], json!(["totp"]));
    let mut wrong = with_passcode.clone();
    wrong["passcode"] = json!("000000x");
    assert_eq!(
        login(json!({"methods": ["totp"], "totp": {"user": wrong}})).0,
        401
    );

    let (st, v) = login(json!({"methods": ["password", "totp"],
        "password": {"user": with_password}, "totp": {"user": with_passcode}}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["token"]["methods"], json!(["password", "totp"]));
    // Every method must pass, and for one user.
    assert_eq!(
        login(json!({"methods": ["password", "totp"], "password": {"user": with_password}, "totp": {"user": wrong}})).0,
        401
    );
    // A token of another user (the provider's, federated) with src-user's password: refused.
    let (st, _) = login(json!({"methods": ["password", "token"],
        "password": {"user": with_password}, "token": {"id": federated_token(&sim)}}));
    assert_eq!(st, 401);
}

/// An unscoped token of the provider's user, through the federation endpoint.
fn federated_token(sim: &Sim) -> String {
    let a = auth_of(sim, "src-oidc");
    let (user, pass) = (s(&a, "username"), s(&a, "password"));
    let form = [
        ("grant_type", "password"),
        ("scope", "openid"),
        ("username", user.as_str()),
        ("password", pass.as_str()),
    ];
    let (_, v) = grant(sim, &s(&a, "client_secret"), &form);
    let r = sim
        .client
        .post(format!(
            "{}/src/identity/v3/OS-FEDERATION/identity_providers/sso/protocols/openid/auth",
            sim.base
        ))
        .bearer_auth(s(&v, "access_token"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.headers()["x-subject-token"].to_str().unwrap().to_string()
}

type Log = Arc<Mutex<Vec<String>>>;

/// A connection to `cloud` of the simulator's clouds.yaml, its configuration changed by `edit`,
/// logging its requests into `log`.
fn connect(sim: &Sim, cloud: &str, log: &Log, edit: &dyn Fn(&mut CloudConfig)) -> Connection {
    let path = sim.state_dir().join("clouds.yaml");
    let mut cfg = ConfigLoader::with_env(Vec::<(String, String)>::new(), sim.state_dir())
        .with_search_path(vec![path], vec![])
        .cloud(cloud)
        .unwrap();
    edit(&mut cfg);
    let mut conn = Connection::new(cfg).unwrap();
    let sink = log.clone();
    conn.set_request_log(Box::new(move |r: &RequestRecord<'_>| {
        let auth = r.url.contains("/idp/") || r.url.contains("/auth");
        assert!(
            !(auth && r.body.is_some()),
            "an auth request logged with its body"
        );
        sink.lock()
            .unwrap()
            .push(format!("{} {} {:?}", r.method, r.url, r.status));
    }));
    conn
}

/// Authenticates, lists the project's servers, and returns the project name.
fn works(conn: &Connection) -> String {
    let info = conn.authenticate().unwrap_or_else(|e| panic!("{e}"));
    conn.compute().list_servers().unwrap();
    info.project.unwrap().name
}

#[test]
fn osm_openstack_authenticates_with_every_auth_type() {
    let sim = Sim::start();
    let a = auth_of(&sim, "src-oidc");
    let mfa = auth_of(&sim, "src-mfa");
    let log: Log = Arc::default();

    // v3oidcpassword through the discovery document, as clouds.yaml has it.
    let conn = connect(&sim, "src-oidc", &log, &|_| {});
    assert_eq!(works(&conn), "src-project");
    let routes: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("/idp/") || l.contains("/identity/"))
        .map(|l| {
            l.split(' ')
                .nth(1)
                .unwrap()
                .rsplit("/src/")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        routes,
        [
            "idp/.well-known/openid-configuration",
            "idp/token",
            "identity/v3/OS-FEDERATION/identity_providers/sso/protocols/openid/auth",
            "identity/v3/auth/tokens"
        ]
    );

    // v3oidcclientcredentials with the token endpoint given, and the ID token sent to Keystone.
    let endpoint = format!("{}/src/idp/token", sim.base);
    let conn = connect(&sim, "src-oidc", &log, &|c| {
        c.auth_type = AuthType::OidcClientCredentials;
        c.auth.discovery_endpoint = None;
        c.auth.access_token_endpoint = Some(endpoint.clone());
        c.auth.access_token_type = Some("id_token".into());
        c.auth.username = None;
        c.auth.password = None;
    });
    assert_eq!(works(&conn), "src-project");
    assert_eq!(conn.token_info().unwrap().user.name, "service-account-osm");

    // v3oidcaccesstoken with a token the test gets from the provider: no provider request.
    let (_, v) = grant(
        &sim,
        &s(&a, "client_secret"),
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    );
    let access = s(&v, "access_token");
    let before = log.lock().unwrap().len();
    let conn = connect(&sim, "src-oidc", &log, &|c| {
        c.auth_type = AuthType::OidcAccessToken;
        c.auth.access_token = Some(access.as_str().into());
    });
    assert_eq!(works(&conn), "src-project");
    assert!(!log.lock().unwrap()[before..]
        .iter()
        .any(|l| l.contains("/idp/")));

    // No project: the unscoped token is used as it is.
    let conn = connect(&sim, "src-oidc", &log, &|c| {
        c.auth.project_name = None;
        c.auth.project_domain_name = None;
    });
    assert!(conn.authenticate().unwrap().project.is_none());

    // v3totp, and v3multifactor as clouds.yaml has it.
    let conn = connect(&sim, "src-mfa", &log, &|c| {
        c.auth_type = AuthType::Totp;
        c.auth.password = None;
    });
    assert_eq!(works(&conn), "src-project");
    let conn = connect(&sim, "src-mfa", &log, &|_| {});
    assert_eq!(works(&conn), "src-project");

    let secrets = [
        s(&a, "password"),
        s(&a, "client_secret"),
        s(&mfa, "password"),
        s(&mfa, "passcode"),
        access,
    ];
    for line in log.lock().unwrap().iter() {
        for secret in &secrets {
            assert!(!line.contains(secret.as_str()), "a secret in {line}");
        }
    }
}

#[test]
fn failures_name_what_refused_and_never_a_secret() {
    let sim = Sim::start();
    let a = auth_of(&sim, "src-oidc");
    let mfa = auth_of(&sim, "src-mfa");
    let fail = |cloud: &str, edit: &dyn Fn(&mut CloudConfig)| -> (Error, String) {
        let log: Log = Arc::default();
        let conn = connect(&sim, cloud, &log, edit);
        let e = conn.authenticate().expect_err("authentication fails");
        let text = format!("{e} {e:?} {}", log.lock().unwrap().join("\n"));
        (e, text)
    };
    let no_leak = |text: &str, secrets: &[&str]| {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    };

    let (e, text) = fail("src-oidc", &|c| {
        c.auth.client_secret = Some("wrong-client-secret".into())
    });
    assert!(matches!(e, Error::Oidc { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!("the OIDC token endpoint {}/src/idp/token of identity provider \"sso\" refused the password grant for user \"src-oidc-user\": HTTP 401: invalid_client", sim.base)),
        "{e}"
    );
    no_leak(&text, &["wrong-client-secret", &s(&a, "password")]);

    let (e, text) = fail("src-oidc", &|c| {
        c.auth.password = Some("wrong-idp-password".into())
    });
    assert!(
        e.to_string()
            .contains("invalid_grant: Invalid user credentials"),
        "{e}"
    );
    no_leak(&text, &["wrong-idp-password", &s(&a, "client_secret")]);

    let nowhere = format!("{}/src/idp/nowhere", sim.base);
    let (e, _) = fail("src-oidc", &|c| {
        c.auth.discovery_endpoint = Some(nowhere.clone())
    });
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("the OIDC discovery document {nowhere}")) && msg.contains("HTTP 404"),
        "{msg}"
    );

    let (e, text) = fail("src-oidc", &|c| {
        c.auth_type = AuthType::OidcAccessToken;
        c.auth.access_token = Some("expired-or-forged-token".into());
    });
    assert!(matches!(e, Error::Federation { status: 401, .. }), "{e:?}");
    assert!(
        e.to_string().contains("Keystone's federation endpoint"),
        "{e}"
    );
    no_leak(&text, &["expired-or-forged-token"]);

    let (e, _) = fail("src-oidc", &|c| {
        c.auth.identity_provider = Some("nope".into())
    });
    let msg = e.to_string();
    assert!(
        msg.contains("HTTP 404") && msg.contains("Could not find Identity Provider: nope."),
        "{msg}"
    );
    assert!(
        !e.is_not_found(),
        "a misnamed identity provider is no missing resource"
    );

    let (e, text) = fail("src-mfa", &|c| c.auth.passcode = Some("999999x".into()));
    assert!(matches!(e, Error::Auth { status: 401, .. }), "{e:?}");
    assert!(
        e.to_string().contains("with methods v3password, v3totp"),
        "{e}"
    );
    no_leak(&text, &["999999x", &s(&mfa, "password")]);
}
