//! Cloud configuration: clouds.yaml (+ secure.yaml), `OS_*` environment variables, and the
//! common options of the openstack.cloud Ansible modules.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::de::{opt_lenient_bool, opt_scalar_string, parse_bool};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Which endpoint of a service the catalog lookup picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    /// `public` (the default).
    #[default]
    Public,
    /// `internal`.
    Internal,
    /// `admin`.
    Admin,
}

impl Interface {
    /// `public`, `internal` or `admin`, as the catalog spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interface {
    type Err = Error;

    /// Accepts `public`, `internal`, `admin`, and the v2 spellings `publicURL`, `internalURL`,
    /// `adminURL`, in any case.
    fn from_str(s: &str) -> Result<Interface> {
        let l = s.trim().to_ascii_lowercase();
        match l.strip_suffix("url").unwrap_or(&l) {
            "public" => Ok(Interface::Public),
            "internal" => Ok(Interface::Internal),
            "admin" => Ok(Interface::Admin),
            _ => Err(Error::config(format!(
                "interface {s:?} is not one of public, internal, admin"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Interface {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Interface, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How to authenticate against Keystone v3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    /// `password` / `v3password`: user (name or id) and password.
    Password,
    /// `token` / `v3token`: an existing token, re-scoped to the project.
    Token,
    /// `v3applicationcredential` / `applicationcredential`: id, or name + user, and secret.
    ApplicationCredential,
}

impl AuthType {
    /// Parses the auth plugin names openstacksdk/keystoneauth use.
    pub fn parse(s: &str) -> Result<AuthType> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "password" | "v3password" => Ok(AuthType::Password),
            "token" | "v3token" => Ok(AuthType::Token),
            "v3applicationcredential" | "applicationcredential" | "application_credential" | "v3_application_credential" => {
                Ok(AuthType::ApplicationCredential)
            }
            _ => Err(Error::config(format!(
                "auth_type {s:?} is not supported (supported: password, v3password, token, v3token, v3applicationcredential)"
            ))),
        }
    }
}

/// The `auth` dict of clouds.yaml and of the openstack.cloud modules (keystoneauth's option names).
///
/// Unknown keys are ignored. `tenant_name`/`tenant_id` are accepted for `project_name`/`project_id`.
#[derive(Clone, Default, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AuthOptions {
    /// Keystone URL, with or without `/v3`.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub auth_url: Option<String>,
    /// User name (needs a user domain; `default` if none is given).
    #[serde(
        alias = "user_name",
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub username: Option<String>,
    /// User ID.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_id: Option<String>,
    /// Password (secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Project name (needs a project domain; `default` if none is given).
    #[serde(
        alias = "tenant_name",
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub project_name: Option<String>,
    /// Project ID.
    #[serde(
        alias = "tenant_id",
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub project_id: Option<String>,
    /// Domain of the user, by name.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_domain_name: Option<String>,
    /// Domain of the user, by ID.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_domain_id: Option<String>,
    /// Domain of the project, by name.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub project_domain_name: Option<String>,
    /// Domain of the project, by ID.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub project_domain_id: Option<String>,
    /// Default for the user and project domains; a domain scope when no project is given.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub domain_name: Option<String>,
    /// Default for the user and project domains; a domain scope when no project is given.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub domain_id: Option<String>,
    /// An existing token (secret), for `auth_type: token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Application credential ID.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub application_credential_id: Option<String>,
    /// Application credential name (with `username`/`user_id`).
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub application_credential_name: Option<String>,
    /// Application credential secret (secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_credential_secret: Option<Secret>,
}

impl AuthOptions {
    /// Sets every field that `other` sets (openstacksdk's `_auth_update`).
    pub fn merge_from(&mut self, other: &AuthOptions) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(
            auth_url,
            username,
            user_id,
            password,
            project_name,
            project_id,
            user_domain_name,
            user_domain_id,
            project_domain_name,
            project_domain_id,
            domain_name,
            domain_id,
            token,
            application_credential_id,
            application_credential_name,
            application_credential_secret
        );
    }
}

/// One region of a clouds.yaml `regions:` list (a name or `{name: ...}`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RegionEntry {
    /// `- RegionOne`
    Name(String),
    /// `- name: RegionOne` (other keys are ignored).
    Dict {
        /// The region name.
        name: String,
    },
}

impl RegionEntry {
    fn name(&self) -> &str {
        match self {
            RegionEntry::Name(n) | RegionEntry::Dict { name: n } => n,
        }
    }
}

/// A cloud as clouds.yaml describes it under `clouds: <name>:`, or a `cloud` dict module option.
///
/// Keys the crate does not use (`identity_api_version`, `profile`, ...) land in `extra`;
/// `<service>_endpoint_override` keys there are honoured.
#[derive(Clone, Default, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct CloudEntry {
    /// The `auth` dict.
    pub auth: Option<AuthOptions>,
    /// Auth plugin name.
    #[serde(deserialize_with = "opt_scalar_string")]
    pub auth_type: Option<String>,
    /// Region.
    #[serde(deserialize_with = "opt_scalar_string")]
    pub region_name: Option<String>,
    /// Regions; the first is used when `region_name` is not set.
    #[serde(deserialize_with = "crate::de::null_default")]
    pub regions: Vec<RegionEntry>,
    /// Endpoint interface (`public`, `internal`, `admin`); alias `endpoint_type`.
    #[serde(alias = "endpoint_type", deserialize_with = "opt_scalar_string")]
    pub interface: Option<String>,
    /// `false` disables TLS verification.
    #[serde(deserialize_with = "opt_lenient_bool")]
    pub verify: Option<bool>,
    /// `true` disables TLS verification (the opposite of `verify`).
    #[serde(deserialize_with = "opt_lenient_bool")]
    pub insecure: Option<bool>,
    /// PEM bundle of CAs to trust, in addition to the system's.
    #[serde(deserialize_with = "opt_scalar_string")]
    pub cacert: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[serde(deserialize_with = "opt_scalar_string")]
    pub cert: Option<String>,
    /// Client key (PEM) for mutual TLS.
    #[serde(deserialize_with = "opt_scalar_string")]
    pub key: Option<String>,
    /// Timeout of one API call, in seconds.
    #[serde(deserialize_with = "opt_scalar_string")]
    pub api_timeout: Option<String>,
    /// Every other key.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The `cloud` module option: a clouds.yaml cloud name or a cloud dict.
#[derive(Clone, Debug, PartialEq)]
pub enum CloudRef {
    /// A cloud name looked up in clouds.yaml.
    Name(String),
    /// A clouds.yaml-style cloud entry.
    Config(Box<CloudEntry>),
}

impl<'de> Deserialize<'de> for CloudRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<CloudRef, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(s) => Ok(CloudRef::Name(s)),
            serde_json::Value::Object(_) => serde_json::from_value::<CloudEntry>(v)
                .map(|e| CloudRef::Config(Box::new(e)))
                .map_err(|e| D::Error::custom(format!("cloud: {e}"))),
            other => Err(D::Error::custom(format!(
                "cloud must be a cloud name or a dict, not {other}"
            ))),
        }
    }
}

/// The common options of the openstack.cloud modules (`cloud`, `auth`, `auth_type`,
/// `region_name`, `interface`, `validate_certs`, `ca_cert`, `client_cert`, `client_key`,
/// `api_timeout`), ready to be flattened into a module's options.
///
/// Resolution ([`ConfigLoader::load`]) follows openstack.cloud and openstacksdk:
/// - `cloud` is a dict: it is the whole configuration; giving any other option too is an error.
/// - `cloud` is a name: that cloud from clouds.yaml (+ secure.yaml), with the other options
///   overriding it (`auth` key by key).
/// - no `cloud` but `auth`: the options alone.
/// - neither: the cloud named by `OS_CLOUD`, else the `OS_*` environment variables.
#[derive(Clone, Default, Debug, Deserialize)]
#[serde(default)]
pub struct CloudOptions {
    /// A clouds.yaml cloud name or a cloud dict.
    pub cloud: Option<CloudRef>,
    /// The `auth` dict.
    pub auth: Option<AuthOptions>,
    /// Auth plugin name (`password`, `token`, `v3applicationcredential`, ...).
    pub auth_type: Option<String>,
    /// Region.
    pub region_name: Option<String>,
    /// Endpoint interface; alias `endpoint_type`.
    #[serde(alias = "endpoint_type")]
    pub interface: Option<Interface>,
    /// Verify TLS certificates; alias `verify`.
    #[serde(alias = "verify", deserialize_with = "opt_lenient_bool")]
    pub validate_certs: Option<bool>,
    /// CA bundle (PEM file); alias `cacert`.
    #[serde(alias = "cacert")]
    pub ca_cert: Option<String>,
    /// Client certificate (PEM file); alias `cert`.
    #[serde(alias = "cert")]
    pub client_cert: Option<String>,
    /// Client key (PEM file); alias `key`.
    #[serde(alias = "key")]
    pub client_key: Option<String>,
    /// Timeout of one API call, in seconds.
    #[serde(deserialize_with = "opt_scalar_string")]
    pub api_timeout: Option<String>,
}

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

/// Finds and reads cloud configuration. The environment and the search path are injectable, so
/// tests never read the real `HOME`.
#[derive(Clone, Debug)]
pub struct ConfigLoader {
    env: BTreeMap<String, String>,
    config_files: Vec<PathBuf>,
    secure_files: Vec<PathBuf>,
}

const CONFIG_NAMES: [&str; 3] = ["clouds.yaml", "clouds.yml", "clouds.json"];
const SECURE_NAMES: [&str; 3] = ["secure.yaml", "secure.yml", "secure.json"];

impl ConfigLoader {
    /// The process environment, the current directory, and openstacksdk's search path.
    pub fn from_process() -> ConfigLoader {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        ConfigLoader::with_env(std::env::vars(), &cwd)
    }

    /// The given environment and current directory. The search path is openstacksdk's:
    /// `$OS_CLIENT_CONFIG_FILE`, then `clouds.yaml`/`.yml`/`.json` in `cwd`,
    /// `$XDG_CONFIG_HOME/openstack` (default `$HOME/.config/openstack`) and `/etc/openstack`;
    /// secure.yaml likewise, starting with `$OS_CLIENT_SECURE_FILE`.
    pub fn with_env<I, K, V>(env: I, cwd: &Path) -> ConfigLoader
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env: BTreeMap<String, String> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let mut dirs = vec![cwd.to_path_buf()];
        let user_dir = match (
            env.get("XDG_CONFIG_HOME").filter(|s| !s.is_empty()),
            env.get("HOME").filter(|s| !s.is_empty()),
        ) {
            (Some(x), _) => Some(PathBuf::from(x).join("openstack")),
            (None, Some(h)) => Some(PathBuf::from(h).join(".config").join("openstack")),
            (None, None) => None,
        };
        dirs.extend(user_dir);
        dirs.push(PathBuf::from("/etc/openstack"));
        let files = |first: Option<&String>, names: &[&str]| {
            let mut v: Vec<PathBuf> = first
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .into_iter()
                .collect();
            for d in &dirs {
                for n in names {
                    v.push(d.join(n));
                }
            }
            v
        };
        let config_files = files(env.get("OS_CLIENT_CONFIG_FILE"), &CONFIG_NAMES);
        let secure_files = files(env.get("OS_CLIENT_SECURE_FILE"), &SECURE_NAMES);
        ConfigLoader {
            env,
            config_files,
            secure_files,
        }
    }

    /// Replaces the search path (first existing file wins).
    pub fn with_search_path(
        mut self,
        config_files: Vec<PathBuf>,
        secure_files: Vec<PathBuf>,
    ) -> ConfigLoader {
        self.config_files = config_files;
        self.secure_files = secure_files;
        self
    }

    /// Candidate clouds.yaml files, in search order.
    pub fn config_files(&self) -> &[PathBuf] {
        &self.config_files
    }

    /// Candidate secure.yaml files, in search order.
    pub fn secure_files(&self) -> &[PathBuf] {
        &self.secure_files
    }

    /// Resolves module options into a cloud (see [`CloudOptions`] for the rules).
    pub fn load(&self, opts: &CloudOptions) -> Result<CloudConfig> {
        let (name, mut entry) = match &opts.cloud {
            Some(CloudRef::Config(entry)) => {
                let given = [
                    ("auth", opts.auth.is_some()),
                    ("auth_type", opts.auth_type.is_some()),
                    ("region_name", opts.region_name.is_some()),
                    ("validate_certs", opts.validate_certs.is_some()),
                    ("ca_cert", opts.ca_cert.is_some()),
                    ("client_cert", opts.client_cert.is_some()),
                    ("client_key", opts.client_key.is_some()),
                    ("api_timeout", opts.api_timeout.is_some()),
                    (
                        "interface",
                        opts.interface.is_some_and(|i| i != Interface::Public),
                    ),
                ];
                if let Some((param, _)) = given.iter().find(|(_, g)| *g) {
                    return Err(Error::config(format!(
                        "a cloud config dict was given as `cloud` and also `{param}`; with a cloud dict, put {param} into the dict"
                    )));
                }
                (None, (**entry).clone())
            }
            Some(CloudRef::Name(name)) => (Some(name.clone()), self.named_entry(name)?),
            None if opts.auth.is_some() => (None, CloudEntry::default()),
            None => match self.env.get("OS_CLOUD").filter(|s| !s.is_empty()) {
                Some(name) => (Some(name.clone()), self.named_entry(name)?),
                None => (None, self.env_entry()?),
            },
        };
        if let Some(auth) = &opts.auth {
            entry
                .auth
                .get_or_insert_with(AuthOptions::default)
                .merge_from(auth);
        }
        let set = |slot: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                *slot = v.clone();
            }
        };
        set(&mut entry.auth_type, &opts.auth_type);
        set(&mut entry.region_name, &opts.region_name);
        set(&mut entry.cacert, &opts.ca_cert);
        set(&mut entry.cert, &opts.client_cert);
        set(&mut entry.key, &opts.client_key);
        set(&mut entry.api_timeout, &opts.api_timeout);
        if let Some(i) = opts.interface {
            entry.interface = Some(i.as_str().to_string());
        }
        if let Some(v) = opts.validate_certs {
            entry.verify = Some(v);
            entry.insecure = None;
        }
        resolve(name, entry)
    }

    /// The cloud named `OS_CLOUD`, else the one the `OS_*` variables describe.
    pub fn default_cloud(&self) -> Result<CloudConfig> {
        self.load(&CloudOptions::default())
    }

    /// A cloud from clouds.yaml (merged with secure.yaml).
    pub fn cloud(&self, name: &str) -> Result<CloudConfig> {
        resolve(Some(name.to_string()), self.named_entry(name)?)
    }

    fn first_existing<'a>(&self, files: &'a [PathBuf]) -> Option<&'a PathBuf> {
        files.iter().find(|p| p.is_file())
    }

    fn named_entry(&self, name: &str) -> Result<CloudEntry> {
        let Some(path) = self.first_existing(&self.config_files) else {
            let searched: Vec<String> = self
                .config_files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(Error::config(format!(
                "cloud {name:?} was asked for, but no clouds.yaml was found (searched: {})",
                searched.join(", ")
            )));
        };
        let mut doc = read_yaml(path)?;
        if let Some(secure_path) = self.first_existing(&self.secure_files) {
            let secure = read_yaml(secure_path)?;
            merge_yaml(&mut doc, secure);
        }
        let clouds = doc.get("clouds").and_then(|c| c.as_mapping());
        let Some(clouds) = clouds else {
            return Err(Error::config(format!(
                "{} has no `clouds:` mapping",
                path.display()
            )));
        };
        let Some(entry) = clouds.get(name) else {
            let mut names: Vec<String> = clouds
                .keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect();
            names.sort();
            return Err(Error::config(format!(
                "cloud {name:?} is not in {} (it has: {})",
                path.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        serde_yaml::from_value::<CloudEntry>(entry.clone())
            .map_err(|e| Error::config(format!("cloud {name:?} in {}: {}", path.display(), e)))
    }

    fn env_entry(&self) -> Result<CloudEntry> {
        let get = |k: &str| self.env.get(k).filter(|v| !v.is_empty()).cloned();
        let auth = AuthOptions {
            auth_url: get("OS_AUTH_URL"),
            username: get("OS_USERNAME").or_else(|| get("OS_USER_NAME")),
            user_id: get("OS_USER_ID"),
            password: get("OS_PASSWORD").map(Secret::from),
            project_name: get("OS_PROJECT_NAME").or_else(|| get("OS_TENANT_NAME")),
            project_id: get("OS_PROJECT_ID").or_else(|| get("OS_TENANT_ID")),
            user_domain_name: get("OS_USER_DOMAIN_NAME"),
            user_domain_id: get("OS_USER_DOMAIN_ID"),
            project_domain_name: get("OS_PROJECT_DOMAIN_NAME"),
            project_domain_id: get("OS_PROJECT_DOMAIN_ID"),
            domain_name: get("OS_DOMAIN_NAME"),
            domain_id: get("OS_DOMAIN_ID"),
            token: get("OS_TOKEN").map(Secret::from),
            application_credential_id: get("OS_APPLICATION_CREDENTIAL_ID"),
            application_credential_name: get("OS_APPLICATION_CREDENTIAL_NAME"),
            application_credential_secret: get("OS_APPLICATION_CREDENTIAL_SECRET")
                .map(Secret::from),
        };
        if auth.auth_url.is_none() {
            return Err(Error::config(
                "no cloud given: pass `cloud` or `auth`, set OS_CLOUD to a clouds.yaml cloud, or set OS_AUTH_URL and the other OS_* variables",
            ));
        }
        let insecure = match get("OS_INSECURE") {
            Some(v) => Some(
                parse_bool(&v)
                    .ok_or_else(|| Error::config(format!("OS_INSECURE={v:?} is not a boolean")))?,
            ),
            None => None,
        };
        Ok(CloudEntry {
            auth: Some(auth),
            auth_type: get("OS_AUTH_TYPE"),
            region_name: get("OS_REGION_NAME"),
            interface: get("OS_INTERFACE").or_else(|| get("OS_ENDPOINT_TYPE")),
            insecure,
            cacert: get("OS_CACERT"),
            cert: get("OS_CERT"),
            key: get("OS_KEY"),
            api_timeout: get("OS_API_TIMEOUT"),
            ..CloudEntry::default()
        })
    }
}

fn read_yaml(path: &Path) -> Result<serde_yaml::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
    serde_yaml::from_str(&text)
        .map_err(|e| Error::config(format!("cannot parse {}: {e}", path.display())))
}

/// Deep-merges `over` into `base`: mappings key by key, anything else replaced.
fn merge_yaml(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_yaml(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Turns a cloud entry into a checked configuration.
fn resolve(name: Option<String>, entry: CloudEntry) -> Result<CloudConfig> {
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
    use std::fs;

    const CLOUDS: &str = r#"
clouds:
  src:
    auth:
      auth_url: https://src.example:5000/v3
      username: alice
      project_name: proj
      user_domain_name: Default
      project_domain_id: default
    region_name: RegionOne
    interface: internal
    cacert: /etc/ssl/src.pem
  dst:
    auth:
      auth_url: https://dst.example:5000
      application_credential_id: ac1
    auth_type: v3applicationcredential
    verify: false
    regions: [R2, R3]
    compute_endpoint_override: https://nova.dst.example/v2.1
    block_storage_endpoint_override: https://cinder.dst.example/v3
"#;
    const SECURE: &str = r#"
clouds:
  src:
    auth:
      password: s3cret
  dst:
    auth:
      application_credential_secret: acsecret
"#;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.path(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, text).unwrap();
            p
        }
        /// Environment with HOME inside the temp dir; cwd is `<tmp>/cwd`.
        fn loader(&self, extra: &[(&str, &str)]) -> ConfigLoader {
            let home = self.path("home");
            let cwd = self.path("cwd");
            fs::create_dir_all(&cwd).unwrap();
            let mut env: Vec<(String, String)> = vec![("HOME".into(), home.display().to_string())];
            env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let mut l = ConfigLoader::with_env(env, &cwd);
            // Keep the host's /etc/openstack out of tests.
            l.config_files.retain(|p| p.starts_with(self.dir.path()));
            l.secure_files.retain(|p| p.starts_with(self.dir.path()));
            l
        }
    }

    #[test]
    fn search_path_order() {
        let l = ConfigLoader::with_env(
            [("HOME", "/h"), ("OS_CLIENT_CONFIG_FILE", "/x/my.yaml")],
            Path::new("/cwd"),
        );
        let files: Vec<String> = l
            .config_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            files,
            [
                "/x/my.yaml",
                "/cwd/clouds.yaml",
                "/cwd/clouds.yml",
                "/cwd/clouds.json",
                "/h/.config/openstack/clouds.yaml",
                "/h/.config/openstack/clouds.yml",
                "/h/.config/openstack/clouds.json",
                "/etc/openstack/clouds.yaml",
                "/etc/openstack/clouds.yml",
                "/etc/openstack/clouds.json",
            ]
        );
        assert_eq!(l.secure_files()[0], PathBuf::from("/cwd/secure.yaml"));
        let l = ConfigLoader::with_env(
            [("HOME", "/h"), ("XDG_CONFIG_HOME", "/xdg")],
            Path::new("/cwd"),
        );
        assert_eq!(
            l.config_files()[3],
            PathBuf::from("/xdg/openstack/clouds.yaml")
        );
    }

    #[test]
    fn clouds_yaml_in_home_merged_with_secure_yaml() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("home/.config/openstack/secure.yaml", SECURE);
        let l = f.loader(&[]);
        let src = l.cloud("src").unwrap();
        assert_eq!(src.name.as_deref(), Some("src"));
        assert_eq!(
            src.auth.password.as_ref().map(|p| p.expose()),
            Some("s3cret")
        );
        assert_eq!(src.auth.username.as_deref(), Some("alice"));
        assert_eq!(src.auth_type, AuthType::Password);
        assert_eq!(src.interface, Interface::Internal);
        assert_eq!(src.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(src.cacert, Some(PathBuf::from("/etc/ssl/src.pem")));
        assert!(src.verify);

        let dst = l.cloud("dst").unwrap();
        assert_eq!(dst.auth_type, AuthType::ApplicationCredential);
        assert!(!dst.verify);
        assert_eq!(dst.region_name.as_deref(), Some("R2"));
        assert_eq!(
            dst.endpoint_overrides["compute"],
            "https://nova.dst.example/v2.1"
        );
        assert_eq!(
            dst.endpoint_overrides["block-storage"],
            "https://cinder.dst.example/v3"
        );
    }

    #[test]
    fn cwd_wins_over_home_and_env_file_wins_over_cwd() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("cwd/clouds.yaml", "clouds:\n  only_cwd:\n    auth: {auth_url: http://cwd:5000, username: u, password: p}\n");
        let l = f.loader(&[]);
        assert!(l.cloud("only_cwd").is_ok());
        let err = l.cloud("src").unwrap_err().to_string();
        assert!(err.contains("cloud \"src\" is not in"), "{err}");
        assert!(err.contains("only_cwd"), "{err}");

        let explicit = f.write(
            "elsewhere/c.yaml",
            "clouds:\n  e:\n    auth: {auth_url: http://e:5000, username: u, password: p}\n",
        );
        let l = f.loader(&[("OS_CLIENT_CONFIG_FILE", explicit.to_str().unwrap())]);
        assert!(l.cloud("e").is_ok());
    }

    #[test]
    fn os_cloud_and_missing_file() {
        let f = Fixture::new();
        let l = f.loader(&[("OS_CLOUD", "src")]);
        let err = l.default_cloud().unwrap_err().to_string();
        assert!(err.contains("no clouds.yaml was found"), "{err}");
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("home/.config/openstack/secure.yaml", SECURE);
        let cfg = f.loader(&[("OS_CLOUD", "src")]).default_cloud().unwrap();
        assert_eq!(cfg.name.as_deref(), Some("src"));
    }

    #[test]
    fn os_env_vars() {
        let f = Fixture::new();
        let l = f.loader(&[
            ("OS_AUTH_URL", "https://k:5000/v3"),
            ("OS_USERNAME", "bob"),
            ("OS_PASSWORD", "pw"),
            ("OS_PROJECT_ID", "p1"),
            ("OS_USER_DOMAIN_ID", "d1"),
            ("OS_REGION_NAME", "R"),
            ("OS_INTERFACE", "internalURL"),
            ("OS_INSECURE", "true"),
            ("OS_CACERT", "/ca.pem"),
        ]);
        let cfg = l.default_cloud().unwrap();
        assert_eq!(cfg.name, None);
        assert_eq!(cfg.auth.username.as_deref(), Some("bob"));
        assert_eq!(cfg.auth.project_id.as_deref(), Some("p1"));
        assert_eq!(cfg.auth.user_domain_id.as_deref(), Some("d1"));
        assert_eq!(cfg.interface, Interface::Internal);
        assert!(!cfg.verify);
        assert_eq!(cfg.cacert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(cfg.label(), "https://k:5000/v3");

        let l = f.loader(&[
            ("OS_AUTH_URL", "https://k:5000/v3"),
            ("OS_TOKEN", "tok"),
            ("OS_PROJECT_NAME", "p"),
        ]);
        assert_eq!(l.default_cloud().unwrap().auth_type, AuthType::Token);
        let l = f.loader(&[
            ("OS_AUTH_URL", "https://k:5000/v3"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_NAME", "ac"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
            ("OS_USERNAME", "u"),
        ]);
        assert_eq!(
            l.default_cloud().unwrap().auth_type,
            AuthType::ApplicationCredential
        );

        let err = f.loader(&[]).default_cloud().unwrap_err().to_string();
        assert!(err.contains("OS_CLOUD"), "{err}");
    }

    #[test]
    fn module_options() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("home/.config/openstack/secure.yaml", SECURE);
        let l = f.loader(&[("OS_AUTH_URL", "https://ignored:5000")]);

        // A name, overridden by auth (key by key) and other options.
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "cloud": "src",
            "auth": {"project_name": "other"},
            "region_name": "R9",
            "validate_certs": false,
            "interface": "admin",
            "api_timeout": 30,
        }))
        .unwrap();
        let cfg = l.load(&opts).unwrap();
        assert_eq!(cfg.auth.project_name.as_deref(), Some("other"));
        assert_eq!(cfg.auth.username.as_deref(), Some("alice"));
        assert_eq!(cfg.region_name.as_deref(), Some("R9"));
        assert!(!cfg.verify);
        assert_eq!(cfg.interface, Interface::Admin);
        assert_eq!(cfg.api_timeout, Some(Duration::from_secs(30)));

        // A dict.
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "cloud": {"auth": {"auth_url": "http://d:5000", "username": "u", "password": 1234, "project_id": 42},
                      "region_name": "RD", "verify": "no", "cacert": "/c.pem"},
        }))
        .unwrap();
        let cfg = l.load(&opts).unwrap();
        assert_eq!(cfg.auth.password.as_ref().unwrap().expose(), "1234");
        assert_eq!(cfg.auth.project_id.as_deref(), Some("42"));
        assert!(!cfg.verify);
        assert_eq!(cfg.region_name.as_deref(), Some("RD"));

        // A dict plus another option fails, naming it.
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "cloud": {"auth": {"auth_url": "http://d:5000", "username": "u", "password": "p"}},
            "region_name": "x",
        }))
        .unwrap();
        assert!(l
            .load(&opts)
            .unwrap_err()
            .to_string()
            .contains("`region_name`"));

        // auth alone, with aliases.
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "auth": {"auth_url": "http://a:5000/v3", "username": "u", "password": "p", "tenant_name": "t"},
            "verify": true, "cacert": "/x.pem", "endpoint_type": "internal",
        }))
        .unwrap();
        let cfg = l.load(&opts).unwrap();
        assert_eq!(cfg.auth.project_name.as_deref(), Some("t"));
        assert_eq!(cfg.cacert, Some(PathBuf::from("/x.pem")));
        assert_eq!(cfg.interface, Interface::Internal);

        // Missing pieces are named.
        let opts: CloudOptions = serde_json::from_value(
            serde_json::json!({"auth": {"auth_url": "http://a", "username": "u"}}),
        )
        .unwrap();
        assert!(l
            .load(&opts)
            .unwrap_err()
            .to_string()
            .contains("auth.password"));
        assert!(serde_json::from_value::<CloudOptions>(serde_json::json!({"cloud": 3})).is_err());
        assert!(serde_json::from_value::<CloudOptions>(
            serde_json::json!({"interface": "privateURL"})
        )
        .is_err());
    }

    #[test]
    fn ansible_passes_every_option_with_null_defaults() {
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "cloud": null, "auth": null, "auth_type": null, "region_name": null, "interface": null,
            "validate_certs": null, "ca_cert": null, "client_cert": null, "client_key": null, "api_timeout": null,
        }))
        .unwrap();
        assert!(opts.cloud.is_none() && opts.auth.is_none() && opts.validate_certs.is_none());
        // Flattened into a module's own options.
        #[derive(Deserialize)]
        struct ModuleOpts {
            name: String,
            #[serde(flatten)]
            cloud: CloudOptions,
        }
        let m: ModuleOpts =
            serde_json::from_value(serde_json::json!({"name": "x", "cloud": "src", "interface": "internal", "verify": "no"})).unwrap();
        assert_eq!(m.name, "x");
        assert_eq!(m.cloud.cloud, Some(CloudRef::Name("src".into())));
        assert_eq!(m.cloud.interface, Some(Interface::Internal));
        assert_eq!(m.cloud.validate_certs, Some(false));
    }

    #[test]
    fn secrets_never_in_debug_or_errors() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("home/.config/openstack/secure.yaml", SECURE);
        let l = f.loader(&[]);
        let cfg = l.cloud("src").unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains(crate::secret::MASK));
        let dst = l.cloud("dst").unwrap();
        assert!(!format!("{dst:?}").contains("acsecret"));
        assert!(!dst.principal().contains("acsecret"));
        // An invalid entry's error does not echo the password.
        f.write(
            "cwd/clouds.yaml",
            "clouds:\n  bad:\n    auth: {password: topsecret, auth_url: [1]}\n",
        );
        let err = f.loader(&[]).cloud("bad").unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }

    #[test]
    fn unknown_auth_type_and_interface() {
        let f = Fixture::new();
        f.write("cwd/clouds.yaml", "clouds:\n  c:\n    auth_type: saml2\n    auth: {auth_url: http://x}\n  i:\n    interface: private\n    auth: {auth_url: http://x, username: u, password: p}\n");
        let err = f.loader(&[]).cloud("c").unwrap_err().to_string();
        assert!(
            err.contains("cloud \"c\"") && err.contains("saml2"),
            "{err}"
        );
        let err = f.loader(&[]).cloud("i").unwrap_err().to_string();
        assert!(err.contains("private"), "{err}");
    }

    #[test]
    fn retry_delays() {
        let r = RetryPolicy::default();
        assert_eq!(r.delay(0), Duration::from_millis(500));
        assert_eq!(r.delay(1), Duration::from_secs(1));
        assert_eq!(r.delay(2), Duration::from_secs(2));
    }
}
