//! Keeping secrets out of module output.
//!
//! Ansible's Python modules replace every occurrence of a `no_log` value in their output, wherever it
//! appears (a message quoting it, a result field echoing it). This does the same for binary modules.

use serde_json::{Map, Value};

use crate::spec::{Secret, Spec};

/// What a secret is replaced with.
pub const MASK: &str = "********";

/// Keys of a cloud connection (clouds.yaml's cloud entry and its `auth`) whose values name rather
/// than prove. In a [`Secret::Credentials`] option every other value is masked: a credential field
/// this list does not know (`passcode`, `client_secret`, `access_token`, a plugin's own) is secret
/// by default.
const PUBLIC_KEYS: &[&str] = &[
    "cloud",
    "auth_type",
    "region_name",
    "interface",
    "endpoint_type",
    "validate_certs",
    "verify",
    "ca_cert",
    "cacert",
    "client_cert",
    "cert",
    "client_key",
    "key",
    "api_timeout",
    "wait",
    "timeout",
    "sdk_log_path",
    "sdk_log_level",
    "identity_api_version",
    "compute_api_version",
    "volume_api_version",
    "image_api_version",
    "network_api_version",
    "auth_url",
    "username",
    "user_id",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "tenant_name",
    "tenant_id",
    "default_domain_id",
    "default_domain_name",
    "application_credential_id",
    "application_credential_name",
    "system_scope",
    "auth_methods",
    "identity_provider",
    "protocol",
    "client_id",
    "discovery_endpoint",
    "access_token_endpoint",
    "openid_scope",
    "access_token_type",
];

/// Public keys whose value is a list of names (`auth_methods: [v3password, v3totp]`).
const PUBLIC_LISTS: &[&str] = &["auth_methods"];

/// Keys that hold a secret inside any dictionary of an option not declared secret (a workload's
/// data, say): a second line of defence behind the declared secrets.
const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "application_credential_secret",
    "secret",
    "private_key",
    "passphrase",
    "auth_token",
    "passcode",
    "client_secret",
    "access_token",
    "refresh_token",
];

/// Whether `item`, the value of connection key `k`, names rather than proves.
fn is_public(k: &str, item: &Value) -> bool {
    let list_of_names = PUBLIC_LISTS.contains(&k)
        && item
            .as_array()
            .is_some_and(|items| items.iter().all(|i| !i.is_object() && !i.is_array()));
    PUBLIC_KEYS.contains(&k) && (list_of_names || !(item.is_object() || item.is_array()))
}

/// The set of secret strings of one module run.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    values: Vec<String>,
}

impl Secrets {
    /// Collects the secrets from validated parameters: every string in a secret option, and the
    /// values of secret-looking keys inside dictionaries.
    pub fn from_params(spec: &Spec, params: &Map<String, Value>) -> Secrets {
        let mut s = Secrets::default();
        for (name, value) in params {
            s.collect_option(value, spec.find(name).and_then(|o| o.secret));
        }
        s.finish();
        s
    }

    /// Collects from raw arguments, before validation, so that an error about them is masked too.
    pub fn from_raw(spec: &Spec, raw: &Map<String, Value>) -> Secrets {
        let mut s = Secrets::default();
        for (name, value) in raw {
            s.collect_option(value, spec.find(name).and_then(|o| o.secret));
        }
        s.finish();
        s
    }

    /// Adds a secret learnt at run time (a token issued by a cloud, a generated password).
    pub fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if !secret.is_empty() {
            self.values.push(secret);
            self.finish();
        }
    }

    fn collect_option(&mut self, v: &Value, secret: Option<Secret>) {
        match secret {
            Some(Secret::Value) => self.collect(v, true),
            Some(Secret::Credentials) => self.collect_credentials(v),
            None => self.collect(v, false),
        }
    }

    /// A connection mapping: `auth` is walked as one too; a public key's plain value is a name;
    /// anything else is secret. Not a mapping: a cloud's name.
    fn collect_credentials(&mut self, v: &Value) {
        let Value::Object(m) = v else {
            return self.collect(v, false);
        };
        for (k, item) in m {
            let k = k.to_ascii_lowercase();
            if k == "auth" {
                self.collect_credentials(item);
            } else if !is_public(&k, item) {
                self.collect(item, true);
            }
        }
    }

    fn collect(&mut self, v: &Value, secret: bool) {
        match v {
            Value::String(s) if secret && !s.is_empty() => self.values.push(s.clone()),
            Value::Number(n) if secret => self.values.push(n.to_string()),
            Value::Array(items) => items.iter().for_each(|i| self.collect(i, secret)),
            Value::Object(m) => {
                for (k, item) in m {
                    let key_secret = SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str());
                    self.collect(item, secret || key_secret);
                }
            }
            _ => {}
        }
    }

    /// Longest first, so that a secret containing another is masked whole.
    fn finish(&mut self) {
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        self.values.dedup();
    }

    /// Masks a string.
    pub fn mask_str(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.values {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// Masks every string (keys included) in a JSON value.
    pub fn mask(&self, v: Value) -> Value {
        if self.values.is_empty() {
            return v;
        }
        match v {
            Value::String(s) => Value::String(self.mask_str(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|i| self.mask(i)).collect()),
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| (self.mask_str(&k), self.mask(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Opt, Type};
    use serde_json::json;

    #[test]
    fn masks_secret_options_and_secret_keys_in_dicts() {
        let spec = Spec::new("m")
            .opt(Opt::new("auth", Type::Dict).secret())
            .opt(Opt::new("cloud", Type::Raw))
            .opt(Opt::new("name", Type::Str));
        let params = json!({"auth": {"username": "alice", "password": "s3cret"},
            "cloud": {"auth": {"application_credential_secret": "appsecret", "project_name": "p"}},
            "name": "web"});
        let Value::Object(params) = params else {
            unreachable!("object literal")
        };
        let s = Secrets::from_params(&spec, &params);
        let out = s.mask(
            json!({"msg": "login s3cret failed for alice (appsecret)", "name": "web",
            "nested": [{"s3cret": "p"}]}),
        );
        assert_eq!(
            out["msg"],
            json!("login ******** failed for ******** (********)")
        );
        assert_eq!(out["name"], json!("web"));
        assert_eq!(out["nested"][0], json!({"********": "p"}));
    }

    #[test]
    fn credentials_mask_all_but_the_names() {
        let spec = Spec::new("m")
            .opt(Opt::new("auth", Type::Dict).credentials())
            .opt(Opt::new("cloud", Type::Raw).credentials());
        let params = json!({
            "auth": {"auth_url": "http://keystone:5000/v3", "username": "alice", "password": "pw-1",
                     "passcode": "otp-2", "project_name": "migration", "token": "tok-3"},
            "cloud": {"cloud": "src", "region_name": "r1", "auth_type": "v3applicationcredential",
                      "auth": {"application_credential_id": "cred-id", "application_credential_secret": "acs-4"},
                      "unknown_field": "u-5"}});
        let Value::Object(params) = params else {
            unreachable!("object literal")
        };
        let s = Secrets::from_params(&spec, &params);
        let text =
            "pw-1 otp-2 tok-3 acs-4 u-5 | alice migration src r1 cred-id http://keystone:5000/v3";
        assert_eq!(
            s.mask_str(text),
            "******** ******** ******** ******** ******** | alice migration src r1 cred-id http://keystone:5000/v3"
        );
        let bare = json!({"cloud": "src"});
        let Value::Object(bare) = bare else {
            unreachable!("object literal")
        };
        assert_eq!(Secrets::from_params(&spec, &bare).mask_str("src"), "src");
    }

    #[test]
    fn federated_and_multifactor_credentials() {
        let spec = Spec::new("m")
            .opt(Opt::new("cloud", Type::Raw).credentials())
            .opt(Opt::new("data", Type::Dict));
        let params = json!({
            "cloud": {"auth_type": "v3multifactor", "auth_methods": ["v3password", "v3totp"],
                      "auth": {"auth_url": "http://k/v3", "username": "alice", "password": "pw-1",
                               "passcode": "482913", "identity_provider": "sso", "protocol": "openid",
                               "client_id": "osm", "client_secret": "cs-2", "access_token": "at-3",
                               "discovery_endpoint": "https://idp/.well-known/openid-configuration",
                               "openid_scope": "openid profile", "access_token_type": "access_token"}},
            "data": {"nested": {"refresh_token": "rt-4", "client_secret": "cs-5", "passcode": "111999"}}});
        let Value::Object(params) = params else {
            unreachable!("object literal")
        };
        let s = Secrets::from_params(&spec, &params);
        assert_eq!(
            s.mask_str("pw-1 482913 cs-2 at-3 rt-4 cs-5 111999"),
            ["********"; 7].join(" ")
        );
        let names = "v3password v3totp sso openid osm alice https://idp/.well-known/openid-configuration openid profile access_token";
        assert_eq!(s.mask_str(names), names);
    }

    #[test]
    fn longer_secret_masked_whole() {
        let mut s = Secrets::default();
        s.add("abc");
        s.add("abcdef");
        assert_eq!(s.mask_str("x abcdef y abc"), "x ******** y ********");
    }
}
