//! Keystone v3 authentication: the request body for each auth type and the token it returns.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog::CatalogService;
use crate::config::{AuthType, CloudConfig};

/// A `{id, name}` reference to a domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct DomainRef {
    /// Domain ID.
    #[serde(default)]
    pub id: Option<String>,
    /// Domain name.
    #[serde(default)]
    pub name: Option<String>,
}

/// The user or project a token names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TokenEntity {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Its domain.
    #[serde(default)]
    pub domain: Option<DomainRef>,
}

/// A role granted by the token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TokenRole {
    /// Role ID.
    #[serde(default)]
    pub id: String,
    /// Role name.
    #[serde(default)]
    pub name: String,
}

/// What Keystone says about the token: who, which project, which roles, until when, and the
/// service catalog.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct TokenInfo {
    /// The authenticated user.
    pub user: TokenEntity,
    /// The project the token is scoped to.
    #[serde(default)]
    pub project: Option<TokenEntity>,
    /// The domain the token is scoped to (domain-scoped tokens).
    #[serde(default)]
    pub domain: Option<DomainRef>,
    /// Roles on the scope.
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub roles: Vec<TokenRole>,
    /// Expiry, as Keystone wrote it (`2026-11-25T21:46:00.000000Z`).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The service catalog.
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub catalog: Vec<CatalogService>,
}

impl TokenInfo {
    /// Whether the token carries the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r.name.eq_ignore_ascii_case("admin"))
    }
}

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

/// The body of `POST /v3/auth/tokens`. This is the one place secrets are exposed; the value goes
/// straight into the request body.
pub(crate) fn auth_body(cfg: &CloudConfig) -> Value {
    let a = &cfg.auth;
    let expose = |s: &Option<crate::Secret>| {
        s.as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default()
    };
    let (identity, scoped) = match cfg.auth_type {
        AuthType::Password => {
            let mut u = user(cfg);
            u["password"] = Value::String(expose(&a.password));
            (
                json!({"methods": ["password"], "password": {"user": u}}),
                true,
            )
        }
        AuthType::Token => (
            json!({"methods": ["token"], "token": {"id": expose(&a.token)}}),
            true,
        ),
        AuthType::ApplicationCredential => {
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
            ac.insert(
                "secret".into(),
                Value::String(expose(&a.application_credential_secret)),
            );
            // An application credential carries its own scope; Keystone rejects another one.
            (
                json!({"methods": ["application_credential"], "application_credential": ac}),
                false,
            )
        }
    };
    let mut auth = json!({"identity": identity});
    if scoped {
        if let Some(s) = scope(cfg) {
            auth["scope"] = s;
        }
    }
    json!({"auth": auth})
}

/// Seconds since the Unix epoch of an RFC 3339 / ISO 8601 UTC time such as
/// `2026-11-25T21:46:00.000000Z` or `2026-11-25T21:46:00+01:00`. `None` if unparseable.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (time, offset) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        (
            t,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    } else {
        (rest, 0)
    };
    let mut t = time.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let ss: i64 = t.next().unwrap_or("0").split('.').next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthOptions;
    use crate::Secret;

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
            auth_body(&c),
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
        let b = auth_body(&c);
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
        let b = auth_body(&c);
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
        let b = auth_body(&c);
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
            auth_body(&c),
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
            auth_body(&c),
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
            auth_body(&c)["auth"]["identity"]["application_credential"],
            json!({"name": "n", "user": {"name": "u", "domain": {"id": "d"}}, "secret": "s"})
        );
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-11-25T21:46:00.000000Z"), Some(1795643160));
        assert_eq!(parse_time("2026-11-25T22:46:00+01:00"), Some(1795643160));
        assert_eq!(parse_time("2000-02-29T00:00:01"), Some(951782401));
        assert_eq!(parse_time("garbage"), None);
    }
}
