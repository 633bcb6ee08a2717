use reqwest::Method;
use serde_json::json;

use crate::util::Sim;

#[test]
fn password_token_and_wrong_password() {
    let sim = Sim::start();
    let s = sim.login("src");
    assert!(!s.token.is_empty());
    // Both clouds are separate Keystones: src's token means nothing to dst.
    let r = sim
        .client
        .get(format!("{}/dst/compute/v2.1/servers", sim.base))
        .header("X-Auth-Token", &s.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "src-user", "domain": {"id": "default"}, "password": "wrong"}}}}});
    let r = sim.raw(Method::POST, "/src/identity/v3/auth/tokens", Some(body));
    assert_eq!(r.status().as_u16(), 401);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], 401);
    assert_eq!(v["error"]["title"], "Unauthorized");
    // By ids, and the catalog lists every service with the cloud's prefix.
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": s.user_id, "password": sim.password("src")}}}, "scope": {"project": {"id": s.project_id}}}});
    let r = sim.raw(Method::POST, "/src/identity/v3/auth/tokens", Some(body));
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().unwrap();
    let types: Vec<&str> = v["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for t in [
        "identity",
        "compute",
        "volumev3",
        "block-storage",
        "image",
        "network",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let compute = v["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "compute")
        .unwrap();
    assert!(compute["endpoints"][0]["url"]
        .as_str()
        .unwrap()
        .ends_with("/src/compute/v2.1"));
    assert_eq!(compute["endpoints"][0]["region_id"], "RegionOne");
}

#[test]
fn token_method_and_validation() {
    let sim = Sim::start();
    let s = sim.login("dst");
    let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": s.token}}, "scope": {"project": {"name": "dst-project", "domain": {"name": "Default"}}}}});
    let r = sim.raw(Method::POST, "/dst/identity/v3/auth/tokens", Some(body));
    assert_eq!(r.status().as_u16(), 201);
    let new = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    let r = sim
        .client
        .get(format!("{}/dst/identity/v3/auth/tokens", sim.base))
        .header("X-Auth-Token", &s.token)
        .header("X-Subject-Token", &new)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = sim
        .client
        .delete(format!("{}/dst/identity/v3/auth/tokens", sim.base))
        .header("X-Auth-Token", &s.token)
        .header("X-Subject-Token", &new)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = sim
        .client
        .get(format!("{}/dst/compute/v2.1/servers", sim.base))
        .header("X-Auth-Token", &new)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn application_credentials() {
    let sim = Sim::start();
    let s = sim.login("src");
    let v = s.post(
        "identity",
        &format!("/users/{}/application_credentials", s.user_id),
        json!({"application_credential": {"name": "ci", "secret": "s3cret"}}),
    );
    let id = v["application_credential"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["application_credential"]["secret"], "s3cret");
    let by_id = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": id, "secret": "s3cret"}}}});
    let r = sim.raw(
        Method::POST,
        "/src/identity/v3/auth/tokens",
        Some(by_id.clone()),
    );
    assert_eq!(r.status().as_u16(), 201);
    let t: serde_json::Value = r.json().unwrap();
    assert_eq!(t["token"]["project"]["id"], s.project_id.as_str());
    assert_eq!(t["token"]["application_credential"]["name"], "ci");
    let by_name = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"name": "ci", "secret": "s3cret", "user": {"name": "src-user", "domain": {"name": "Default"}}}}}});
    assert_eq!(
        sim.raw(Method::POST, "/src/identity/v3/auth/tokens", Some(by_name))
            .status()
            .as_u16(),
        201
    );
    let bad = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": id, "secret": "nope"}}}});
    assert_eq!(
        sim.raw(Method::POST, "/src/identity/v3/auth/tokens", Some(bad))
            .status()
            .as_u16(),
        401
    );
    let list = s.get(
        "identity",
        &format!("/users/{}/application_credentials", s.user_id),
    );
    assert_eq!(list["application_credentials"].as_array().unwrap().len(), 1);
    assert!(list["application_credentials"][0].get("secret").is_none());
    let (st, _) = s.req(
        Method::DELETE,
        "identity",
        &format!("/users/{}/application_credentials/{id}", s.user_id),
        None,
    );
    assert_eq!(st, 204);
    assert_eq!(
        sim.raw(Method::POST, "/src/identity/v3/auth/tokens", Some(by_id))
            .status()
            .as_u16(),
        401
    );
}
