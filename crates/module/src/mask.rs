//! Keeping secrets out of module output.
//!
//! Ansible's Python modules replace every occurrence of a `no_log` value in their output, wherever it
//! appears (a message quoting it, a result field echoing it). This does the same for binary modules.

use serde_json::{Map, Value};

use crate::spec::Spec;

/// What a secret is replaced with.
pub const MASK: &str = "********";

/// Keys that hold a secret inside any dictionary option (a `cloud` or `auth` dict given inline).
const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "application_credential_secret",
    "secret",
    "private_key",
    "passphrase",
    "auth_token",
];

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
            let secret = spec.find(name).is_some_and(|o| o.secret);
            s.collect(value, secret);
        }
        s.finish();
        s
    }

    /// Collects from raw arguments, before validation, so that an error about them is masked too.
    pub fn from_raw(spec: &Spec, raw: &Map<String, Value>) -> Secrets {
        let mut s = Secrets::default();
        for (name, value) in raw {
            let secret = spec.find(name).is_some_and(|o| o.secret);
            s.collect(value, secret);
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
    fn longer_secret_masked_whole() {
        let mut s = Secrets::default();
        s.add("abc");
        s.add("abcdef");
        assert_eq!(s.mask_str("x abcdef y abc"), "x ******** y ********");
    }
}
