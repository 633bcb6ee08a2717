//! The OpenID Connect side of federated Keystone, as keystoneauth's `v3oidc*` plugins do it: the
//! token request to the provider (grant, scope, client authentication), its discovery document,
//! the access token in its answer, and Keystone's federation URL. No I/O here: the connection sends
//! what this builds.

use serde_json::Value;

use crate::config::{AuthType, CloudConfig};
use crate::connection::seg;
use crate::error::Result;

/// The scope asked of the provider when `openid_scope` is not given (keystoneauth's default).
pub(crate) const DEFAULT_SCOPE: &str = "openid profile";

/// The OAuth 2.0 grant of an auth type that asks the provider for an access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Resource owner password credentials (`v3oidcpassword`).
    Password,
    /// Client credentials (`v3oidcclientcredentials`).
    ClientCredentials,
}

impl Grant {
    /// The grant of `auth_type`; `None` for `v3oidcaccesstoken` and the non-federated types.
    pub(crate) fn of(auth_type: AuthType) -> Option<Grant> {
        match auth_type {
            AuthType::OidcPassword => Some(Grant::Password),
            AuthType::OidcClientCredentials => Some(Grant::ClientCredentials),
            _ => None,
        }
    }

    /// `grant_type` as OAuth 2.0 spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::ClientCredentials => "client_credentials",
        }
    }
}

/// A token request: the form fields, and the client's HTTP basic credentials when it has a secret
/// (otherwise `client_id` is a form field, as for a public client).
pub(crate) struct TokenRequest {
    pub form: Vec<(&'static str, String)>,
    pub basic: Option<(String, String)>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields: Vec<&str> = self.form.iter().map(|(k, _)| *k).collect();
        f.debug_struct("TokenRequest")
            .field("fields", &fields)
            .field("basic", &self.basic.is_some())
            .finish()
    }
}

/// What is sent to the provider's token endpoint. Exposes the password and client secret.
pub(crate) fn token_request(cfg: &CloudConfig, grant: Grant) -> TokenRequest {
    let a = &cfg.auth;
    let mut form = vec![
        ("grant_type", grant.name().to_string()),
        (
            "scope",
            a.openid_scope
                .clone()
                .unwrap_or_else(|| DEFAULT_SCOPE.to_string()),
        ),
    ];
    if grant == Grant::Password {
        form.push(("username", a.username.clone().unwrap_or_default()));
        form.push((
            "password",
            a.password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
        ));
    }
    let client_id = a.client_id.clone().unwrap_or_default();
    let basic = match a.client_secret.as_ref().filter(|s| !s.is_empty()) {
        Some(secret) => Some((client_id, secret.expose().to_string())),
        None => {
            form.push(("client_id", client_id));
            None
        }
    };
    TokenRequest { form, basic }
}

/// The token endpoint a discovery document names, after checking that the provider offers
/// `grant` (when it lists its grant types). The error says what is wrong with the document.
pub(crate) fn endpoint_from_discovery(
    doc: &Value,
    grant: Grant,
) -> std::result::Result<String, String> {
    if let Some(types) = doc.get("grant_types_supported").and_then(Value::as_array) {
        let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
        if !types.is_empty() && !types.contains(&grant.name()) {
            return Err(format!(
                "does not offer the {} grant (grant_types_supported: {})",
                grant.name(),
                types.join(", ")
            ));
        }
    }
    doc.get("token_endpoint")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "names no token_endpoint".to_string())
}

/// The token Keystone gets from the provider's answer: `access_token`, or what
/// `access_token_type` names.
pub(crate) fn token_from_answer(
    answer: &Value,
    kind: Option<&str>,
) -> std::result::Result<String, String> {
    let kind = kind.unwrap_or("access_token");
    answer
        .get(kind)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("answered without an {kind}"))
}

/// The message of an OAuth 2.0 error answer (`{"error": "invalid_grant", "error_description":
/// "..."}`, RFC 6749 section 5.2); `None` for another body.
pub(crate) fn oauth_error(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("error").and_then(Value::as_str)?;
    Some(match v.get("error_description").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => format!("{code}: {d}"),
        _ => code.to_string(),
    })
}

/// Keystone's federated token URL:
/// `<identity v3>/OS-FEDERATION/identity_providers/<idp>/protocols/<protocol>/auth`.
pub(crate) fn federation_url(identity_base: &str, idp: &str, protocol: &str) -> Result<String> {
    Ok(format!(
        "{}/OS-FEDERATION/identity_providers/{}/protocols/{}/auth",
        identity_base.trim_end_matches('/'),
        seg("identity provider", idp)?,
        seg("federation protocol", protocol)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthOptions;
    use crate::Secret;
    use serde_json::json;

    fn cfg(auth_type: AuthType, auth: AuthOptions) -> CloudConfig {
        let mut c = CloudConfig::password("http://k/v3", "x", "x", "x");
        c.auth_type = auth_type;
        c.auth = auth;
        c
    }

    #[test]
    fn password_grant_with_a_confidential_client() {
        let c = cfg(
            AuthType::OidcPassword,
            AuthOptions {
                username: Some("alice".into()),
                password: Some(Secret::new("pw")),
                client_id: Some("osm".into()),
                client_secret: Some(Secret::new("cs")),
                ..Default::default()
            },
        );
        let r = token_request(&c, Grant::Password);
        assert_eq!(
            r.form,
            vec![
                ("grant_type", "password".to_string()),
                ("scope", "openid profile".to_string()),
                ("username", "alice".to_string()),
                ("password", "pw".to_string()),
            ]
        );
        assert_eq!(r.basic, Some(("osm".to_string(), "cs".to_string())));
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("pw") && !dbg.contains("cs\""), "{dbg}");
    }

    #[test]
    fn client_credentials_and_a_public_client() {
        let c = cfg(
            AuthType::OidcClientCredentials,
            AuthOptions {
                client_id: Some("svc".into()),
                openid_scope: Some("openid".into()),
                ..Default::default()
            },
        );
        let r = token_request(&c, Grant::ClientCredentials);
        assert_eq!(
            r.form,
            vec![
                ("grant_type", "client_credentials".to_string()),
                ("scope", "openid".to_string()),
                ("client_id", "svc".to_string()),
            ]
        );
        assert!(r.basic.is_none());
        assert_eq!(Grant::of(AuthType::OidcAccessToken), None);
    }

    #[test]
    fn discovery_documents() {
        let doc = json!({"token_endpoint": "https://idp/token", "grant_types_supported": ["password", "client_credentials"]});
        assert_eq!(
            endpoint_from_discovery(&doc, Grant::Password).unwrap(),
            "https://idp/token"
        );
        let doc = json!({"token_endpoint": "https://idp/token", "grant_types_supported": ["authorization_code"]});
        let e = endpoint_from_discovery(&doc, Grant::ClientCredentials).unwrap_err();
        assert!(
            e.contains("client_credentials") && e.contains("authorization_code"),
            "{e}"
        );
        let e = endpoint_from_discovery(&json!({"issuer": "x"}), Grant::Password).unwrap_err();
        assert!(e.contains("token_endpoint"), "{e}");
    }

    #[test]
    fn answers_and_errors() {
        let a = json!({"access_token": "at", "id_token": "it", "token_type": "Bearer"});
        assert_eq!(token_from_answer(&a, None).unwrap(), "at");
        assert_eq!(token_from_answer(&a, Some("id_token")).unwrap(), "it");
        assert!(token_from_answer(&json!({}), None)
            .unwrap_err()
            .contains("access_token"));
        assert_eq!(
            oauth_error(
                br#"{"error": "invalid_grant", "error_description": "Invalid user credentials"}"#
            )
            .as_deref(),
            Some("invalid_grant: Invalid user credentials")
        );
        assert_eq!(
            oauth_error(br#"{"error": "invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(oauth_error(b"<html>"), None);
    }

    #[test]
    fn federation_urls_encode_the_names() {
        assert_eq!(
            federation_url("http://k/identity/v3/", "my idp", "openid").unwrap(),
            "http://k/identity/v3/OS-FEDERATION/identity_providers/my%20idp/protocols/openid/auth"
        );
        assert!(federation_url("http://k/v3", "..", "openid").is_err());
    }
}
