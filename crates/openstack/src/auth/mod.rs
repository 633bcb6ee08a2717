//! Keystone v3 authentication: what a token says ([`TokenInfo`]), the request bodies of Keystone's
//! methods ([`body`]), and the OpenID Connect side of federated Keystone ([`oidc`]).

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogService;

pub(crate) mod body;
pub(crate) mod oidc;

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

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-11-25T21:46:00.000000Z"), Some(1795643160));
        assert_eq!(parse_time("2026-11-25T22:46:00+01:00"), Some(1795643160));
        assert_eq!(parse_time("2000-02-29T00:00:01"), Some(951782401));
        assert_eq!(parse_time("garbage"), None);
    }
}
