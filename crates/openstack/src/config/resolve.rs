//! Resolution: a merged cloud entry becomes a checked [`CloudConfig`], what a connection is
//! built from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::secret::{Secret, MASK};

use super::types::{AuthMethod, AuthOptions, AuthType, CloudEntry, Interface};

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
        let idp = || {
            a.identity_provider
                .as_deref()
                .map(|i| format!(" of identity provider {i:?}"))
                .unwrap_or_default()
        };
        match self.auth_type {
            AuthType::Password => self.user(),
            AuthType::Token => "a token".to_string(),
            AuthType::ApplicationCredential => {
                match (&a.application_credential_id, &a.application_credential_name) {
                    (Some(id), _) => format!("application credential id {id:?}"),
                    (None, Some(n)) => format!("application credential {n:?} of {}", self.user()),
                    (None, None) => "an application credential".to_string(),
                }
            }
            AuthType::OidcPassword => match &a.username {
                Some(n) => format!("user {n:?}{}", idp()),
                None => format!("no user{}", idp()),
            },
            AuthType::OidcClientCredentials => match &a.client_id {
                Some(c) => format!("OIDC client {c:?}{}", idp()),
                None => format!("an OIDC client{}", idp()),
            },
            AuthType::OidcAccessToken => format!("an OIDC access token{}", idp()),
            AuthType::Totp => format!("{} with a TOTP passcode", self.user()),
            AuthType::MultiFactor => format!(
                "{} with methods {}",
                self.user(),
                a.auth_methods.as_deref().unwrap_or_default().join(", ")
            ),
        }
    }

    /// `user "name" (domain ...)` or `user id "..."`.
    fn user(&self) -> String {
        let a = &self.auth;
        let domain = a
            .user_domain_name
            .as_ref()
            .map(|d| format!(" (domain {d:?})"))
            .or_else(|| {
                a.user_domain_id
                    .as_ref()
                    .map(|d| format!(" (domain id {d:?})"))
            })
            .or_else(|| a.domain_name.as_ref().map(|d| format!(" (domain {d:?})")))
            .or_else(|| a.domain_id.as_ref().map(|d| format!(" (domain id {d:?})")))
            .unwrap_or_else(|| " (domain id \"default\")".to_string());
        match (&a.username, &a.user_id) {
            (Some(n), _) => format!("user {n:?}{domain}"),
            (None, Some(id)) => format!("user id {id:?}"),
            (None, None) => "no user".to_string(),
        }
    }

    /// `text` with every secret of the configuration, and the `extra` secrets learnt while
    /// authenticating (an access token, an unscoped token), replaced by [`MASK`]: for the messages
    /// of identity providers and Keystone, which this crate does not write and cannot vouch for.
    pub(crate) fn scrub(&self, text: &str, extra: &[&str]) -> String {
        let mut secrets: Vec<&str> = self
            .auth
            .secrets()
            .map(Secret::expose)
            .chain(extra.iter().copied())
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in secrets {
            out = out.replace(s, MASK);
        }
        out
    }

    /// The methods of a `v3multifactor` configuration, parsed.
    pub fn auth_methods(&self) -> Result<Vec<AuthMethod>> {
        self.auth
            .auth_methods
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| AuthMethod::parse(m))
            .collect()
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
        let t = self.auth_type.name();
        let user = a.username.is_some() || a.user_id.is_some();
        match self.auth_type {
            AuthType::Password => {
                if !user {
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
                if let Some(m) = app_cred_missing(a) {
                    return missing(m);
                }
            }
            AuthType::Totp => {
                if !user {
                    return missing("v3totp auth needs auth.username or auth.user_id");
                }
                if a.passcode.is_none() {
                    return missing("v3totp auth needs auth.passcode");
                }
            }
            AuthType::MultiFactor => {
                let methods = self.auth_methods().map_err(|e| {
                    Error::config(format!(
                        "{cloud}{}",
                        e.to_string().trim_start_matches("cloud configuration: ")
                    ))
                })?;
                if methods.is_empty() {
                    return missing(&format!(
                        "v3multifactor auth needs auth_methods (a list of {})",
                        AuthMethod::SUPPORTED.join(", ")
                    ));
                }
                for (i, m) in methods.iter().enumerate() {
                    if methods[..i].contains(m) {
                        return missing(&format!("auth_methods lists {} twice", m.keystone_name()));
                    }
                    let need = match m {
                        AuthMethod::Password if !user => {
                            Some("auth.username or auth.user_id for v3password")
                        }
                        AuthMethod::Password if a.password.is_none() => {
                            Some("auth.password for v3password")
                        }
                        AuthMethod::Totp if !user => {
                            Some("auth.username or auth.user_id for v3totp")
                        }
                        AuthMethod::Totp if a.passcode.is_none() => {
                            Some("auth.passcode for v3totp")
                        }
                        AuthMethod::Token if a.token.is_none() => Some("auth.token for v3token"),
                        AuthMethod::ApplicationCredential => app_cred_missing(a),
                        _ => None,
                    };
                    if let Some(need) = need {
                        return missing(&format!("v3multifactor auth needs {need}"));
                    }
                }
            }
            AuthType::OidcPassword
            | AuthType::OidcClientCredentials
            | AuthType::OidcAccessToken => {
                for (value, key) in [
                    (&a.identity_provider, "identity_provider"),
                    (&a.protocol, "protocol"),
                ] {
                    if value.as_deref().unwrap_or("").is_empty() {
                        return missing(&format!("{t} auth needs auth.{key} (the identity provider and federation protocol names in Keystone)"));
                    }
                }
                if let Some(kind) = a.access_token_type.as_deref() {
                    if !matches!(kind, "access_token" | "id_token") {
                        return missing(&format!(
                            "auth.access_token_type {kind:?} is not one of access_token, id_token"
                        ));
                    }
                }
                if self.auth_type == AuthType::OidcAccessToken {
                    if a.access_token.is_none() {
                        return missing("v3oidcaccesstoken auth needs auth.access_token");
                    }
                    return Ok(());
                }
                if a.access_token_endpoint.is_none() && a.discovery_endpoint.is_none() {
                    return missing(&format!("{t} auth needs auth.access_token_endpoint or auth.discovery_endpoint (the OpenID Connect provider's token endpoint, or its .well-known/openid-configuration document)"));
                }
                if a.client_id.is_none() {
                    return missing(&format!("{t} auth needs auth.client_id"));
                }
                if self.auth_type == AuthType::OidcClientCredentials {
                    if a.client_secret.is_none() {
                        return missing("v3oidcclientcredentials auth needs auth.client_secret");
                    }
                } else {
                    if a.username.is_none() {
                        return missing("v3oidcpassword auth needs auth.username (the user at the OpenID Connect provider)");
                    }
                    if a.password.is_none() {
                        return missing("v3oidcpassword auth needs auth.password");
                    }
                }
            }
        }
        Ok(())
    }
}

/// What an application credential lacks, if anything.
fn app_cred_missing(a: &AuthOptions) -> Option<&'static str> {
    if a.application_credential_secret.is_none() {
        return Some("application credential auth needs auth.application_credential_secret");
    }
    if a.application_credential_id.is_none() {
        if a.application_credential_name.is_none() {
            return Some("application credential auth needs auth.application_credential_id or auth.application_credential_name");
        }
        if a.username.is_none() && a.user_id.is_none() {
            return Some(
                "an application credential given by name needs auth.username or auth.user_id",
            );
        }
    }
    None
}

/// Turns a cloud entry into a checked configuration.
pub(super) fn resolve(name: Option<String>, entry: CloudEntry) -> Result<CloudConfig> {
    let ctx = |m: String| {
        Error::config(match &name {
            Some(n) => format!("cloud {n:?}: {m}"),
            None => m,
        })
    };
    let mut auth = entry.auth.unwrap_or_default();
    // openstacksdk moves an auth option written beside `auth` into it; `auth_methods` is written
    // so in its documentation.
    if auth.auth_methods.is_none() {
        if let Some(v) = entry.extra.get("auth_methods") {
            auth.auth_methods = match v {
                serde_json::Value::String(s) => Some(crate::de::split_csv(s)),
                serde_json::Value::Array(items) => Some(
                    items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(String::from)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect(),
                ),
                _ => return Err(ctx("auth_methods must be a list of method names".into())),
            };
        }
    }
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
    use crate::config::ConfigLoader;

    /// The cloud `name` of a clouds.yaml with `text`, with `env` as the process environment.
    fn load(text: &str, name: &str, env: &[(&str, &str)]) -> Result<CloudConfig> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("clouds.yaml");
        std::fs::write(&path, text).expect("clouds.yaml written");
        let loader = ConfigLoader::with_env(env.iter().copied(), dir.path())
            .with_search_path(vec![path], vec![]);
        if name.is_empty() {
            loader.default_cloud()
        } else {
            loader.cloud(name)
        }
    }

    const OIDC: &str = r#"
clouds:
  fed:
    auth_type: v3oidcpassword
    auth:
      auth_url: https://keystone.example/v3
      identity_provider: sso
      protocol: openid
      discovery_endpoint: https://idp.example/.well-known/openid-configuration
      client_id: osm
      client_secret: client-s3cret
      username: alice
      password: alice-pw
      openid_scope: openid email
      access_token_type: id_token
      project_name: migration
      project_domain_name: Default
"#;

    #[test]
    fn every_supported_auth_type_is_named_when_one_is_not() {
        let err = load(
            "clouds:\n  c:\n    auth_type: v3samlpassword\n    auth: {auth_url: http://x}\n",
            "c",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cloud \"c\"") && err.contains("v3samlpassword"),
            "{err}"
        );
        for t in AuthType::SUPPORTED {
            assert!(err.contains(t), "{t} missing from: {err}");
            assert!(!AuthType::parse(t).unwrap().name().is_empty());
        }
    }

    #[test]
    fn oidc_password_from_clouds_yaml() {
        let cfg = load(OIDC, "fed", &[]).unwrap();
        assert_eq!(cfg.auth_type, AuthType::OidcPassword);
        assert!(cfg.auth_type.is_oidc());
        let a = &cfg.auth;
        assert_eq!(a.identity_provider.as_deref(), Some("sso"));
        assert_eq!(a.protocol.as_deref(), Some("openid"));
        assert_eq!(a.client_id.as_deref(), Some("osm"));
        assert_eq!(
            a.client_secret.as_ref().map(Secret::expose),
            Some("client-s3cret")
        );
        assert_eq!(a.openid_scope.as_deref(), Some("openid email"));
        assert_eq!(a.access_token_type.as_deref(), Some("id_token"));
        assert_eq!(
            cfg.principal(),
            "user \"alice\" of identity provider \"sso\""
        );
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("client-s3cret") && !dbg.contains("alice-pw"),
            "{dbg}"
        );
    }

    #[test]
    fn oidc_missing_options_are_named() {
        for (drop, named) in [
            ("identity_provider", "auth.identity_provider"),
            ("protocol", "auth.protocol"),
            ("discovery_endpoint", "auth.discovery_endpoint"),
            ("client_id", "auth.client_id"),
            ("password", "auth.password"),
        ] {
            let text: String = OIDC
                .lines()
                .filter(|l| !l.trim_start().starts_with(&format!("{drop}:")))
                .collect::<Vec<_>>()
                .join("\n");
            let err = load(&text, "fed", &[]).unwrap_err().to_string();
            assert!(
                err.contains(named) && err.contains("cloud \"fed\""),
                "{drop}: {err}"
            );
            assert!(
                !err.contains("client-s3cret") && !err.contains("alice-pw"),
                "{err}"
            );
        }
        let text = OIDC.replace("id_token", "refresh_token");
        let err = load(&text, "fed", &[]).unwrap_err().to_string();
        assert!(err.contains("access_token_type"), "{err}");
        let text = OIDC.replace("v3oidcpassword", "v3oidcclientcredentials");
        let cfg = load(&text, "fed", &[]).unwrap();
        assert_eq!(
            cfg.principal(),
            "OIDC client \"osm\" of identity provider \"sso\""
        );
        let text = text.replace("      client_secret: client-s3cret\n", "");
        let err = load(&text, "fed", &[]).unwrap_err().to_string();
        assert!(err.contains("auth.client_secret"), "{err}");
    }

    #[test]
    fn oidc_access_token_needs_no_provider_endpoint() {
        let text = "clouds:\n  t:\n    auth_type: v3oidcaccesstoken\n    auth: {auth_url: http://k/v3, identity_provider: sso, protocol: openid, access_token: at-123, project_id: p}\n";
        let cfg = load(text, "t", &[]).unwrap();
        assert_eq!(cfg.auth_type, AuthType::OidcAccessToken);
        assert_eq!(
            cfg.scrub("bearer at-123 refused", &[]),
            format!("bearer {MASK} refused")
        );
        let err = load(&text.replace(", access_token: at-123", ""), "t", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.access_token"), "{err}");
    }

    #[test]
    fn multifactor_methods_beside_auth_as_list_or_commas() {
        let text = "clouds:\n  m:\n    auth_type: v3multifactor\n    auth_methods: [v3password, v3totp]\n    auth: {auth_url: http://k/v3, username: u, password: pw, passcode: '012345', project_name: p}\n";
        let cfg = load(text, "m", &[]).unwrap();
        assert_eq!(
            cfg.auth_methods().unwrap(),
            [AuthMethod::Password, AuthMethod::Totp]
        );
        assert_eq!(
            cfg.auth.passcode.as_ref().map(Secret::expose),
            Some("012345")
        );
        assert!(
            cfg.principal().contains("methods v3password, v3totp"),
            "{}",
            cfg.principal()
        );
        assert!(!format!("{cfg:?}").contains("012345"));
        let cfg = load(
            &text.replace("[v3password, v3totp]", "v3password,v3totp"),
            "m",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.auth_methods().unwrap().len(), 2);
        for (bad, named) in [
            ("[v3password, v3samlpassword]", "v3samlpassword"),
            ("[v3password, password]", "password twice"),
            ("[]", "auth_methods"),
        ] {
            let err = load(&text.replace("[v3password, v3totp]", bad), "m", &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(named) && err.contains("cloud \"m\""),
                "{bad}: {err}"
            );
        }
        let err = load(&text.replace(", passcode: '012345'", ""), "m", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.passcode for v3totp"), "{err}");
    }

    #[test]
    fn totp_and_oidc_from_os_variables() {
        let cfg = load(
            "clouds: {}\n",
            "",
            &[
                ("OS_AUTH_URL", "http://k/v3"),
                ("OS_AUTH_TYPE", "v3totp"),
                ("OS_USERNAME", "u"),
                ("OS_PASSCODE", "123456"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.auth_type, AuthType::Totp);
        assert_eq!(
            cfg.principal(),
            "user \"u\" (domain id \"default\") with a TOTP passcode"
        );
        let cfg = load(
            "clouds: {}\n",
            "",
            &[
                ("OS_AUTH_URL", "http://k/v3"),
                ("OS_AUTH_TYPE", "v3oidcclientcredentials"),
                ("OS_IDENTITY_PROVIDER", "sso"),
                ("OS_PROTOCOL", "openid"),
                ("OS_CLIENT_ID", "svc"),
                ("OS_CLIENT_SECRET", "cs"),
                ("OS_ACCESS_TOKEN_ENDPOINT", "https://idp/token"),
                ("OS_OPENID_SCOPE", "openid"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.auth_type, AuthType::OidcClientCredentials);
        assert_eq!(
            cfg.auth.access_token_endpoint.as_deref(),
            Some("https://idp/token")
        );
        let cfg = load(
            "clouds: {}\n",
            "",
            &[
                ("OS_AUTH_URL", "http://k/v3"),
                ("OS_AUTH_TYPE", "v3multifactor"),
                ("OS_AUTH_METHODS", "v3password,v3totp"),
                ("OS_USER_ID", "u1"),
                ("OS_PASSWORD", "pw"),
                ("OS_PASSCODE", "1"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.auth_methods().unwrap().len(), 2);
    }

    #[test]
    fn scrub_masks_every_secret_longest_first() {
        let mut cfg = load(OIDC, "fed", &[]).unwrap();
        cfg.auth.passcode = Some(Secret::new("987654"));
        let text = "pw alice-pw client-s3cret 987654 tok-abc tok";
        assert_eq!(
            cfg.scrub(text, &["tok-abc", ""]),
            format!("pw {MASK} {MASK} {MASK} {MASK} tok")
        );
    }

    #[test]
    fn retry_delays() {
        let r = RetryPolicy::default();
        assert_eq!(r.delay(0), Duration::from_millis(500));
        assert_eq!(r.delay(1), Duration::from_secs(1));
        assert_eq!(r.delay(2), Duration::from_secs(2));
    }
}
