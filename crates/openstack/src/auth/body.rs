//! The bodies of `POST /v3/auth/tokens`: one part per Keystone method (password, token,
//! application credential, TOTP), several at once for `v3multifactor`, and the scope.

use serde_json::{json, Value};

use crate::config::{AuthMethod, AuthType, CloudConfig};
use crate::error::Result;
use crate::Secret;

/// Domain reference for a user or project name: the specific id/name, else the generic
/// `domain_id`/`domain_name`, else id `default`.
fn domain(
    specific_id: &Option<String>,
    specific_name: &Option<String>,
    cfg: &CloudConfig,
) -> Value {
    let a = &cfg.auth;
    if let Some(id) = specific_id {
        json!({"id": id})
    } else if let Some(name) = specific_name {
        json!({"name": name})
    } else if let Some(id) = &a.domain_id {
        json!({"id": id})
    } else if let Some(name) = &a.domain_name {
        json!({"name": name})
    } else {
        json!({"id": "default"})
    }
}

fn user(cfg: &CloudConfig) -> Value {
    let a = &cfg.auth;
    match (&a.user_id, &a.username) {
        (Some(id), _) => json!({"id": id}),
        (None, Some(name)) => {
            json!({"name": name, "domain": domain(&a.user_domain_id, &a.user_domain_name, cfg)})
        }
        (None, None) => json!({}),
    }
}

fn scope(cfg: &CloudConfig) -> Option<Value> {
    let a = &cfg.auth;
    if let Some(id) = &a.project_id {
        Some(json!({"project": {"id": id}}))
    } else if let Some(name) = &a.project_name {
        Some(
            json!({"project": {"name": name, "domain": domain(&a.project_domain_id, &a.project_domain_name, cfg)}}),
        )
    } else if let Some(id) = &a.domain_id {
        Some(json!({"domain": {"id": id}}))
    } else {
        a.domain_name
            .as_ref()
            .map(|name| json!({"domain": {"name": name}}))
    }
}

/// The Keystone methods an auth type sends in one `POST /v3/auth/tokens`; `None` for the OpenID
/// Connect types, whose token comes from Keystone's federation endpoint.
pub(crate) fn direct_methods(cfg: &CloudConfig) -> Result<Option<Vec<AuthMethod>>> {
    Ok(Some(match cfg.auth_type {
        AuthType::Password => vec![AuthMethod::Password],
        AuthType::Token => vec![AuthMethod::Token],
        AuthType::ApplicationCredential => vec![AuthMethod::ApplicationCredential],
        AuthType::Totp => vec![AuthMethod::Totp],
        AuthType::MultiFactor => cfg.auth_methods()?,
        AuthType::OidcPassword | AuthType::OidcClientCredentials | AuthType::OidcAccessToken => {
            return Ok(None)
        }
    }))
}

fn expose(s: &Option<Secret>) -> Value {
    Value::String(
        s.as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default(),
    )
}

/// One method's part of `identity`.
fn method_body(m: AuthMethod, cfg: &CloudConfig) -> Value {
    let a = &cfg.auth;
    match m {
        AuthMethod::Password => {
            let mut u = user(cfg);
            u["password"] = expose(&a.password);
            json!({"user": u})
        }
        AuthMethod::Totp => {
            let mut u = user(cfg);
            u["passcode"] = expose(&a.passcode);
            json!({"user": u})
        }
        AuthMethod::Token => json!({"id": expose(&a.token)}),
        AuthMethod::ApplicationCredential => {
            let mut ac = serde_json::Map::new();
            match &a.application_credential_id {
                Some(id) => {
                    ac.insert("id".into(), json!(id));
                }
                None => {
                    ac.insert(
                        "name".into(),
                        json!(a.application_credential_name.clone().unwrap_or_default()),
                    );
                    ac.insert("user".into(), user(cfg));
                }
            }
            ac.insert("secret".into(), expose(&a.application_credential_secret));
            Value::Object(ac)
        }
    }
}

/// The body of `POST /v3/auth/tokens` with `methods` (all in one request, as `v3multifactor`
/// sends them). This is where secrets are exposed; the value goes straight into the request body.
pub(crate) fn auth_body(cfg: &CloudConfig, methods: &[AuthMethod]) -> Value {
    let mut identity =
        json!({"methods": methods.iter().map(|m| m.keystone_name()).collect::<Vec<_>>()});
    for m in methods {
        identity[m.keystone_name()] = method_body(*m, cfg);
    }
    let mut auth = json!({"identity": identity});
    // An application credential carries its own scope; Keystone rejects another one.
    if !methods.contains(&AuthMethod::ApplicationCredential) {
        if let Some(s) = scope(cfg) {
            auth["scope"] = s;
        }
    }
    json!({"auth": auth})
}

/// The body that scopes the unscoped token of a federated login to the configured project (or
/// domain), as keystoneauth's federation plugins do; `None` when no scope is configured (the
/// unscoped token is used as it is).
pub(crate) fn rescope_body(cfg: &CloudConfig, unscoped: &str) -> Option<Value> {
    let scope = scope(cfg)?;
    Some(
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}}, "scope": scope}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthOptions;

    fn body(c: &CloudConfig) -> Value {
        auth_body(c, &direct_methods(c).unwrap().unwrap())
    }

    fn cfg(auth_type: AuthType, auth: AuthOptions) -> CloudConfig {
        let mut c = CloudConfig::password("http://k/v3", "x", "x", "x");
        c.auth_type = auth_type;
        c.auth = auth;
        c
    }

    #[test]
    fn password_by_name_defaults_to_domain_default() {
        let c = CloudConfig::password("http://k/v3", "alice", "pw", "proj");
        assert_eq!(
            body(&c),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"name": "alice", "domain": {"id": "default"}, "password": "pw"}}},
                "scope": {"project": {"name": "proj", "domain": {"id": "default"}}}
            }})
        );
    }

    #[test]
    fn password_with_domains_and_ids() {
        let c = cfg(
            AuthType::Password,
            AuthOptions {
                username: Some("bob".into()),
                password: Some(Secret::new("pw")),
                user_domain_name: Some("Users".into()),
                project_name: Some("p".into()),
                project_domain_id: Some("d9".into()),
                ..Default::default()
            },
        );
        let b = body(&c);
        assert_eq!(
            b["auth"]["identity"]["password"]["user"]["domain"],
            json!({"name": "Users"})
        );
        assert_eq!(b["auth"]["scope"]["project"]["domain"], json!({"id": "d9"}));

        let c = cfg(
            AuthType::Password,
            AuthOptions {
                user_id: Some("u1".into()),
                password: Some(Secret::new("pw")),
                project_id: Some("p1".into()),
                ..Default::default()
            },
        );
        let b = body(&c);
        assert_eq!(
            b["auth"]["identity"]["password"]["user"],
            json!({"id": "u1", "password": "pw"})
        );
        assert_eq!(b["auth"]["scope"], json!({"project": {"id": "p1"}}));

        // domain_name is the default for both, and a domain scope without a project.
        let c = cfg(
            AuthType::Password,
            AuthOptions {
                username: Some("u".into()),
                password: Some(Secret::new("pw")),
                domain_name: Some("D".into()),
                ..Default::default()
            },
        );
        let b = body(&c);
        assert_eq!(
            b["auth"]["identity"]["password"]["user"]["domain"],
            json!({"name": "D"})
        );
        assert_eq!(b["auth"]["scope"], json!({"domain": {"name": "D"}}));
    }

    #[test]
    fn token_and_application_credentials() {
        let c = cfg(
            AuthType::Token,
            AuthOptions {
                token: Some(Secret::new("tok")),
                project_id: Some("p".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            body(&c),
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "tok"}}, "scope": {"project": {"id": "p"}}}})
        );
        let c = cfg(
            AuthType::ApplicationCredential,
            AuthOptions {
                application_credential_id: Some("ac".into()),
                application_credential_secret: Some(Secret::new("s")),
                project_name: Some("ignored".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            body(&c),
            json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "ac", "secret": "s"}}}})
        );
        let c = cfg(
            AuthType::ApplicationCredential,
            AuthOptions {
                application_credential_name: Some("n".into()),
                username: Some("u".into()),
                user_domain_id: Some("d".into()),
                application_credential_secret: Some(Secret::new("s")),
                ..Default::default()
            },
        );
        assert_eq!(
            body(&c)["auth"]["identity"]["application_credential"],
            json!({"name": "n", "user": {"name": "u", "domain": {"id": "d"}}, "secret": "s"})
        );
    }

    #[test]
    fn totp_and_multifactor() {
        let c = cfg(
            AuthType::Totp,
            AuthOptions {
                username: Some("u".into()),
                user_domain_name: Some("Users".into()),
                passcode: Some(Secret::new("123456")),
                project_id: Some("p".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            body(&c),
            json!({"auth": {"identity": {"methods": ["totp"], "totp": {"user": {"name": "u", "domain": {"name": "Users"}, "passcode": "123456"}}}, "scope": {"project": {"id": "p"}}}})
        );
        let c = cfg(
            AuthType::MultiFactor,
            AuthOptions {
                user_id: Some("u1".into()),
                password: Some(Secret::new("pw")),
                passcode: Some(Secret::new("654321")),
                auth_methods: Some(vec!["v3password".into(), "v3totp".into()]),
                project_name: Some("p".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            body(&c),
            json!({"auth": {"identity": {"methods": ["password", "totp"],
                "password": {"user": {"id": "u1", "password": "pw"}},
                "totp": {"user": {"id": "u1", "passcode": "654321"}}},
                "scope": {"project": {"name": "p", "domain": {"id": "default"}}}}})
        );
    }

    #[test]
    fn federated_types_rescope_their_unscoped_token() {
        let mut c = cfg(
            AuthType::OidcPassword,
            AuthOptions {
                project_name: Some("p".into()),
                project_domain_name: Some("D".into()),
                ..Default::default()
            },
        );
        assert_eq!(direct_methods(&c).unwrap(), None);
        assert_eq!(
            rescope_body(&c, "unscoped"),
            Some(
                json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "unscoped"}}, "scope": {"project": {"name": "p", "domain": {"name": "D"}}}}})
            )
        );
        c.auth.project_name = None;
        assert_eq!(rescope_body(&c, "unscoped"), None);
    }
}
