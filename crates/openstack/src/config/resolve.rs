//! Resolution: a merged cloud entry becomes a checked [`CloudConfig`], what a connection is
//! built from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::secret::Secret;

use super::types::{AuthOptions, AuthType, CloudEntry, Interface};

/// Bounded retries of transient failures.
///
/// GET, PUT, DELETE and HEAD are retried on HTTP 500, 502, 503, 504 and on transport failures
/// (reset, refused, closed connection); POST only when the connection could not be made. The
/// delay before retry `n` (0-based) is `base_delay * 2^n`: 0.5, 1, 2 s by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a request is retried (0 disables retries).
    pub max_retries: u32,
    /// Delay before the first retry.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.base_delay.saturating_mul(1u32 << attempt.min(16))
    }
}

/// A fully resolved cloud: what [`crate::Connection`] needs.
#[derive(Clone, Debug)]
pub struct CloudConfig {
    /// The clouds.yaml name, when the cloud came from one.
    pub name: Option<String>,
    /// Credentials and scope.
    pub auth: AuthOptions,
    /// How to authenticate.
    pub auth_type: AuthType,
    /// Region; `None` takes the first endpoint of the wanted interface.
    pub region_name: Option<String>,
    /// Endpoint interface.
    pub interface: Interface,
    /// Verify TLS certificates.
    pub verify: bool,
    /// Extra CA bundle (PEM).
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM).
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM).
    pub client_key: Option<PathBuf>,
    /// Timeout of one API call (default 180 s). Image data transfers have no overall timeout.
    pub api_timeout: Option<Duration>,
    /// Service type (`compute`, `block-storage`, `image`, `network`, `identity`) -> endpoint URL
    /// used instead of the catalog's (`<service>_endpoint_override` in clouds.yaml).
    pub endpoint_overrides: BTreeMap<String, String>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl CloudConfig {
    /// A password-authenticated cloud: user and project by name in domain `default`.
    ///
    /// ```
    /// let cfg = osm_openstack::CloudConfig::password("http://127.0.0.1:5000/v3", "admin", "secret", "admin");
    /// assert_eq!(cfg.label(), "http://127.0.0.1:5000/v3");
    /// ```
    pub fn password(
        auth_url: &str,
        username: &str,
        password: &str,
        project_name: &str,
    ) -> CloudConfig {
        CloudConfig {
            name: None,
            auth: AuthOptions {
                auth_url: Some(auth_url.to_string()),
                username: Some(username.to_string()),
                password: Some(Secret::new(password)),
                project_name: Some(project_name.to_string()),
                ..AuthOptions::default()
            },
            auth_type: AuthType::Password,
            region_name: None,
            interface: Interface::Public,
            verify: true,
            cacert: None,
            client_cert: None,
            client_key: None,
            api_timeout: None,
            endpoint_overrides: BTreeMap::new(),
            retry: RetryPolicy::default(),
        }
    }

    /// How errors name this cloud: its clouds.yaml name if known, else its auth URL.
    pub fn label(&self) -> String {
        match (&self.name, &self.auth.auth_url) {
            (Some(n), _) => format!("{n:?}"),
            (None, Some(u)) => u.clone(),
            (None, None) => "(unnamed cloud)".to_string(),
        }
    }

    /// Who authenticates, for error messages (never the secret).
    pub fn principal(&self) -> String {
        let a = &self.auth;
        let domain = || {
            a.user_domain_name
                .as_ref()
                .map(|d| format!(" (domain {d:?})"))
                .or_else(|| {
                    a.user_domain_id
                        .as_ref()
                        .map(|d| format!(" (domain id {d:?})"))
                })
                .or_else(|| a.domain_name.as_ref().map(|d| format!(" (domain {d:?})")))
                .or_else(|| a.domain_id.as_ref().map(|d| format!(" (domain id {d:?})")))
                .unwrap_or_else(|| " (domain id \"default\")".to_string())
        };
        let user = || match (&a.username, &a.user_id) {
            (Some(n), _) => format!("user {n:?}{}", domain()),
            (None, Some(id)) => format!("user id {id:?}"),
            (None, None) => "no user".to_string(),
        };
        match self.auth_type {
            AuthType::Password => user(),
            AuthType::Token => "a token".to_string(),
            AuthType::ApplicationCredential => {
                match (&a.application_credential_id, &a.application_credential_name) {
                    (Some(id), _) => format!("application credential id {id:?}"),
                    (None, Some(n)) => format!("application credential {n:?} of {}", user()),
                    (None, None) => "an application credential".to_string(),
                }
            }
        }
    }

    /// Checks that the auth options fit the auth type.
    pub fn validate(&self) -> Result<()> {
        let a = &self.auth;
        let cloud = self
            .name
            .as_ref()
            .map(|n| format!("cloud {n:?}: "))
            .unwrap_or_default();
        let missing = |what: &str| Err(Error::config(format!("{cloud}{what}")));
        if a.auth_url.as_deref().unwrap_or("").is_empty() {
            return missing("auth.auth_url is missing");
        }
        match self.auth_type {
            AuthType::Password => {
                if a.username.is_none() && a.user_id.is_none() {
                    return missing("password auth needs auth.username or auth.user_id");
                }
                if a.password.is_none() {
                    return missing("password auth needs auth.password");
                }
            }
            AuthType::Token => {
                if a.token.is_none() {
                    return missing("token auth needs auth.token");
                }
            }
            AuthType::ApplicationCredential => {
                if a.application_credential_secret.is_none() {
                    return missing(
                        "application credential auth needs auth.application_credential_secret",
                    );
                }
                if a.application_credential_id.is_none() {
                    if a.application_credential_name.is_none() {
                        return missing(
                            "application credential auth needs auth.application_credential_id or auth.application_credential_name",
                        );
                    }
                    if a.username.is_none() && a.user_id.is_none() {
                        return missing("an application credential given by name needs auth.username or auth.user_id");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Turns a cloud entry into a checked configuration.
pub(super) fn resolve(name: Option<String>, entry: CloudEntry) -> Result<CloudConfig> {
    let ctx = |m: String| {
        Error::config(match &name {
            Some(n) => format!("cloud {n:?}: {m}"),
            None => m,
        })
    };
    let auth = entry.auth.unwrap_or_default();
    let auth_type = match entry.auth_type.as_deref() {
        Some(t) => AuthType::parse(t).map_err(|e| {
            ctx(e
                .to_string()
                .trim_start_matches("cloud configuration: ")
                .to_string())
        })?,
        None if auth.application_credential_secret.is_some() => AuthType::ApplicationCredential,
        None if auth.token.is_some() && auth.password.is_none() => AuthType::Token,
        None => AuthType::Password,
    };
    let interface = match entry.interface.as_deref() {
        Some(i) => i.parse().map_err(|_| {
            ctx(format!(
                "interface {i:?} is not one of public, internal, admin"
            ))
        })?,
        None => Interface::Public,
    };
    let verify = match (entry.verify, entry.insecure) {
        (Some(v), _) => v,
        (None, Some(insecure)) => !insecure,
        (None, None) => true,
    };
    let api_timeout = match entry
        .api_timeout
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(t) => {
            let secs: f64 = t
                .parse()
                .map_err(|_| ctx(format!("api_timeout {t:?} is not a number of seconds")))?;
            if !(secs > 0.0 && secs.is_finite()) {
                return Err(ctx(format!("api_timeout {t:?} must be positive")));
            }
            Some(Duration::from_secs_f64(secs))
        }
        None => None,
    };
    let region_name = entry
        .region_name
        .clone()
        .or_else(|| entry.regions.first().map(|r| r.name().to_string()));
    let mut endpoint_overrides = BTreeMap::new();
    for (k, v) in &entry.extra {
        if let (Some(service), Some(url)) = (k.strip_suffix("_endpoint_override"), v.as_str()) {
            endpoint_overrides.insert(
                crate::catalog::canonical_service_type(&service.replace('_', "-")),
                url.to_string(),
            );
        }
    }
    let cfg = CloudConfig {
        name,
        auth,
        auth_type,
        region_name,
        interface,
        verify,
        cacert: entry.cacert.map(PathBuf::from),
        client_cert: entry.cert.map(PathBuf::from),
        client_key: entry.key.map(PathBuf::from),
        api_timeout,
        endpoint_overrides,
        retry: RetryPolicy::default(),
    };
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays() {
        let r = RetryPolicy::default();
        assert_eq!(r.delay(0), Duration::from_millis(500));
        assert_eq!(r.delay(1), Duration::from_secs(1));
        assert_eq!(r.delay(2), Duration::from_secs(2));
    }
}
