//! What clouds.yaml, secure.yaml, `OS_*` variables and the openstack.cloud module options say,
//! as types: the parsing, with openstacksdk's aliases and loose values.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::de::{opt_lenient_bool, opt_scalar_string, opt_string_list};
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

/// How to authenticate against Keystone v3 (keystoneauth's plugin names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    /// `password` / `v3password`: user (name or id) and password.
    Password,
    /// `token` / `v3token`: an existing token, re-scoped to the project.
    Token,
    /// `v3applicationcredential` / `applicationcredential`: id, or name + user, and secret.
    ApplicationCredential,
    /// `v3oidcpassword`: federated Keystone; the OpenID Connect provider's resource-owner password
    /// grant gives an access token, exchanged at Keystone's federation endpoint for a token.
    OidcPassword,
    /// `v3oidcclientcredentials`: as [`AuthType::OidcPassword`] with the client credentials
    /// grant (the OIDC client authenticates as itself).
    OidcClientCredentials,
    /// `v3oidcaccesstoken`: an access token already obtained from the OpenID Connect provider.
    OidcAccessToken,
    /// `v3totp`: user and a time-based one-time passcode.
    Totp,
    /// `v3multifactor`: several methods in one request (`auth_methods`, e.g. password and TOTP).
    MultiFactor,
}

impl AuthType {
    /// Every `auth_type` accepted, as keystoneauth spells them.
    pub const SUPPORTED: &'static [&'static str] = &[
        "password",
        "v3password",
        "token",
        "v3token",
        "v3applicationcredential",
        "v3oidcpassword",
        "v3oidcclientcredentials",
        "v3oidcaccesstoken",
        "v3totp",
        "v3multifactor",
    ];

    /// Parses the auth plugin names openstacksdk/keystoneauth use; anything else fails listing
    /// [`AuthType::SUPPORTED`].
    pub fn parse(s: &str) -> Result<AuthType> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "password" | "v3password" => Ok(AuthType::Password),
            "token" | "v3token" => Ok(AuthType::Token),
            "v3applicationcredential"
            | "applicationcredential"
            | "application_credential"
            | "v3_application_credential" => Ok(AuthType::ApplicationCredential),
            "v3oidcpassword" => Ok(AuthType::OidcPassword),
            "v3oidcclientcredentials" => Ok(AuthType::OidcClientCredentials),
            "v3oidcaccesstoken" => Ok(AuthType::OidcAccessToken),
            "v3totp" => Ok(AuthType::Totp),
            "v3multifactor" => Ok(AuthType::MultiFactor),
            _ => Err(Error::config(format!(
                "auth_type {s:?} is not supported (supported: {})",
                AuthType::SUPPORTED.join(", ")
            ))),
        }
    }

    /// keystoneauth's name of the type (`v3oidcpassword`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            AuthType::Password => "password",
            AuthType::Token => "token",
            AuthType::ApplicationCredential => "v3applicationcredential",
            AuthType::OidcPassword => "v3oidcpassword",
            AuthType::OidcClientCredentials => "v3oidcclientcredentials",
            AuthType::OidcAccessToken => "v3oidcaccesstoken",
            AuthType::Totp => "v3totp",
            AuthType::MultiFactor => "v3multifactor",
        }
    }

    /// Whether the token comes through Keystone's OS-FEDERATION endpoint with an OpenID Connect
    /// access token.
    pub fn is_oidc(&self) -> bool {
        matches!(
            self,
            AuthType::OidcPassword | AuthType::OidcClientCredentials | AuthType::OidcAccessToken
        )
    }
}

/// One method of a `v3multifactor` request (an item of `auth_methods`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// `v3password` (or Keystone's `password`).
    Password,
    /// `v3totp` (or `totp`).
    Totp,
    /// `v3token` (or `token`).
    Token,
    /// `v3applicationcredential` (or `application_credential`).
    ApplicationCredential,
}

impl AuthMethod {
    /// The `auth_methods` items accepted: keystoneauth's plugin names, which openstacksdk passes.
    pub const SUPPORTED: &'static [&'static str] =
        &["v3password", "v3totp", "v3token", "v3applicationcredential"];

    /// Parses an `auth_methods` item: a keystoneauth v3 plugin name, or Keystone's method name.
    pub fn parse(s: &str) -> Result<AuthMethod> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v3password" | "password" => Ok(AuthMethod::Password),
            "v3totp" | "totp" => Ok(AuthMethod::Totp),
            "v3token" | "token" => Ok(AuthMethod::Token),
            "v3applicationcredential" | "application_credential" => {
                Ok(AuthMethod::ApplicationCredential)
            }
            _ => Err(Error::config(format!(
                "auth_methods item {s:?} is not supported (supported: {})",
                AuthMethod::SUPPORTED.join(", ")
            ))),
        }
    }

    /// Keystone's name of the method, as it stands in `identity.methods`.
    pub fn keystone_name(&self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Totp => "totp",
            AuthMethod::Token => "token",
            AuthMethod::ApplicationCredential => "application_credential",
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
    /// TOTP passcode (secret), for `v3totp` and `v3multifactor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passcode: Option<Secret>,
    /// The methods of a `v3multifactor` request (`[v3password, v3totp]`, or comma-separated).
    #[serde(
        deserialize_with = "opt_string_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub auth_methods: Option<Vec<String>>,
    /// OIDC: the identity provider's name in Keystone (`OS-FEDERATION`).
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub identity_provider: Option<String>,
    /// OIDC: the federation protocol's name in Keystone (often `openid`).
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub protocol: Option<String>,
    /// OIDC: the OAuth 2.0 client ID.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id: Option<String>,
    /// OIDC: the OAuth 2.0 client secret (secret); sent with HTTP basic authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// OIDC: the scope asked of the provider (default `openid profile`).
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub openid_scope: Option<String>,
    /// OIDC: the provider's token endpoint; overrides the discovery document's.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_token_endpoint: Option<String>,
    /// OIDC: the provider's discovery document (`.../.well-known/openid-configuration`).
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub discovery_endpoint: Option<String>,
    /// OIDC: which token of the provider's answer goes to Keystone: `access_token` (default) or
    /// `id_token`.
    #[serde(
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_token_type: Option<String>,
    /// OIDC: an access token already obtained from the provider (secret), for
    /// `v3oidcaccesstoken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
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
            application_credential_secret,
            passcode,
            auth_methods,
            identity_provider,
            protocol,
            client_id,
            client_secret,
            openid_scope,
            access_token_endpoint,
            discovery_endpoint,
            access_token_type,
            access_token
        );
    }

    /// Every secret value set (password, token, secrets, passcode, access token).
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &Secret> {
        [
            &self.password,
            &self.token,
            &self.application_credential_secret,
            &self.passcode,
            &self.client_secret,
            &self.access_token,
        ]
        .into_iter()
        .flatten()
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
    pub(super) fn name(&self) -> &str {
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
/// Resolution ([`ConfigLoader::load`](crate::ConfigLoader::load)) follows openstack.cloud and openstacksdk:
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
    /// Auth plugin name (one of [`AuthType::SUPPORTED`]).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
