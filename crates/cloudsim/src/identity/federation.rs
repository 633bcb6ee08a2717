//! Federation with an OpenID Connect provider: the provider itself (its discovery document and
//! token endpoint, with the password and client credentials grants), and Keystone's
//! `OS-FEDERATION` endpoint, which exchanges the provider's access token for an unscoped token.
//! The module docs of [`crate::identity`] say what each cloud's provider holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::http::{self, CloudCtx};
use crate::sim::Sim;
use crate::util::{self, Ts};

use super::tokens::{respond_with_token, Token};
use super::{Domain, IdentityData, User};

/// Keystone's name of each cloud's identity provider.
pub const IDENTITY_PROVIDER: &str = "sso";
/// Keystone's name of the federation protocol of [`IDENTITY_PROVIDER`].
pub const PROTOCOL: &str = "openid";
/// The provider's one (confidential) OAuth 2.0 client.
pub const CLIENT_ID: &str = "osm";
/// How long the provider's access and ID tokens are valid.
const PROVIDER_TOKEN_LIFETIME_SECS: i64 = 300;
/// The grants the token endpoint serves, as the discovery document lists them.
const GRANTS: [&str; 2] = ["password", "client_credentials"];

/// A cloud's OpenID Connect provider and what Keystone made of its users.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Federation {
    /// The secret of client [`CLIENT_ID`].
    pub client_secret: String,
    /// The provider's users: name -> password.
    pub users: BTreeMap<String, String>,
    /// Access and ID tokens the provider issued, by token string.
    pub tokens: BTreeMap<String, IdpToken>,
}

/// A token the provider issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdpToken {
    /// Whom it vouches for: a user's name, or `service-account-<client>`.
    pub subject: String,
    /// Expiry.
    pub expires_at: Ts,
}

impl Federation {
    /// The client's secret and user `<cloud>-oidc-user`, both random.
    pub fn bootstrap(cloud: &str) -> Federation {
        Federation {
            client_secret: util::random_string(32),
            users: BTreeMap::from([(format!("{cloud}-oidc-user"), util::random_string(20))]),
            tokens: BTreeMap::new(),
        }
    }

    /// The user name and password of the provider's user.
    pub fn user(&self) -> Option<(&str, &str)> {
        self.users
            .iter()
            .next()
            .map(|(n, p)| (n.as_str(), p.as_str()))
    }
}

/// A six-digit TOTP passcode. Never with a leading zero: YAML 1.1 readers (PyYAML) would take an
/// unquoted `012345` for an octal number.
pub(super) fn passcode() -> String {
    rand::thread_rng().gen_range(100_000..1_000_000).to_string()
}

/// Routes of the provider (`/<cloud>/idp/...`) and of Keystone's federation endpoint.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/idp/.well-known/openid-configuration", get(discovery))
        .route("/idp/token", post(token_endpoint))
        .route(
            "/identity/v3/OS-FEDERATION/identity_providers/{idp}/protocols/{protocol}/auth",
            get(federated_auth).post(federated_auth),
        )
}

fn idp_base(sim: &Sim, cloud: &str) -> String {
    format!("{}/{}/idp", sim.base_url, cloud)
}

async fn discovery(State(sim): State<Arc<Sim>>, cc: CloudCtx) -> Response {
    let base = idp_base(&sim, &cc.cloud);
    http::ok(json!({
        "issuer": base,
        "token_endpoint": format!("{base}/token"),
        "authorization_endpoint": format!("{base}/auth"),
        "grant_types_supported": GRANTS,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email"],
    }))
}

fn invalid_client() -> ApiError {
    ApiError::oauth(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Invalid client or Invalid client credentials",
    )
}

/// The client's credentials: HTTP basic (`client_secret_basic`), else the form's `client_id` and
/// `client_secret` (`client_secret_post`).
fn client_credentials(
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<(String, Option<String>), ApiError> {
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(h) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let encoded = h.strip_prefix("Basic ").ok_or_else(invalid_client)?.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(invalid_client)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(invalid_client)?;
        return Ok((id.to_string(), Some(secret.to_string())));
    }
    let id = field("client_id").ok_or_else(invalid_client)?;
    Ok((id, field("client_secret")))
}

async fn token_endpoint(
    State(sim): State<Arc<Sim>>,
    cc: CloudCtx,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = http::url_decode_pairs(&String::from_utf8_lossy(&body));
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let (client_id, client_secret) = client_credentials(&headers, &form)?;
    let grant = field("grant_type").unwrap_or("");
    let scope = field("scope").unwrap_or("").to_string();
    let now = util::now();
    let mut st = sim.lock();
    let (cloud, _) = http::cloud_and_seq(&mut st, &cc.cloud);
    let fed = &mut cloud.identity.federation;
    // The one client is confidential: it must prove itself, whatever the grant.
    if client_id != CLIENT_ID || client_secret.as_deref() != Some(fed.client_secret.as_str()) {
        return Err(invalid_client());
    }
    if !scope.split_whitespace().any(|s| s == "openid") {
        return Err(ApiError::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The scope must include openid",
        ));
    }
    let subject = match grant {
        "password" => {
            let user = field("username").unwrap_or("");
            let pass = field("password").unwrap_or("");
            if fed.users.get(user).is_none_or(|p| p != pass) {
                return Err(ApiError::oauth(
                    StatusCode::UNAUTHORIZED,
                    "invalid_grant",
                    "Invalid user credentials",
                ));
            }
            user.to_string()
        }
        "client_credentials" => format!("service-account-{client_id}"),
        other => {
            return Err(ApiError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("Unsupported grant_type {other:?}"),
            ))
        }
    };
    let expires_at = now + chrono::Duration::seconds(PROVIDER_TOKEN_LIFETIME_SECS);
    let access = util::random_string(64);
    let id_token = util::random_string(64);
    for t in [&access, &id_token] {
        fed.tokens.insert(
            t.clone(),
            IdpToken {
                subject: subject.clone(),
                expires_at,
            },
        );
    }
    drop(st);
    sim.changed();
    Ok(http::ok(json!({
        "access_token": access,
        "id_token": id_token,
        "token_type": "Bearer",
        "expires_in": PROVIDER_TOKEN_LIFETIME_SECS,
        "scope": scope,
    })))
}

/// Keystone's user for a subject of the provider (created at its first login, as Keystone's
/// shadow users are): in domain [`IDENTITY_PROVIDER`], with the main user's roles on the main
/// project, as the simulated mapping grants.
fn shadow_user(d: &mut IdentityData, subject: &str) -> String {
    let domain_id = match d.domains.values().find(|x| x.name == IDENTITY_PROVIDER) {
        Some(x) => x.id.clone(),
        None => {
            let x = Domain {
                id: util::hex_id(),
                name: IDENTITY_PROVIDER.to_string(),
                description: format!("Users of identity provider {IDENTITY_PROVIDER}"),
            };
            let id = x.id.clone();
            d.domains.insert(id.clone(), x);
            id
        }
    };
    if let Some(u) = d
        .users
        .values()
        .find(|u| u.name == subject && u.domain_id == domain_id)
    {
        return u.id.clone();
    }
    let user = User {
        id: util::hex_id(),
        name: subject.to_string(),
        domain_id,
        // Federated users have no password; a random one keeps the password method shut.
        password: util::random_string(32),
        default_project_id: Some(d.main_project.clone()),
        totp_passcode: None,
    };
    let id = user.id.clone();
    let roles: Vec<String> = d
        .assignments
        .iter()
        .filter(|a| a.user_id == d.main_user && a.project_id == d.main_project)
        .map(|a| a.role_id.clone())
        .collect();
    for role_id in roles {
        d.assignments.push(super::Assignment {
            user_id: id.clone(),
            project_id: d.main_project.clone(),
            role_id,
        });
    }
    d.users.insert(id.clone(), user);
    id
}

async fn federated_auth(
    State(sim): State<Arc<Sim>>,
    cc: CloudCtx,
    Path((idp, protocol)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if idp != IDENTITY_PROVIDER {
        return Err(ApiError::not_found(format!(
            "Could not find Identity Provider: {idp}."
        )));
    }
    if protocol != PROTOCOL {
        return Err(ApiError::not_found(format!(
            "Could not find federated protocol {protocol} for Identity Provider: {idp}."
        )));
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    let now = util::now();
    let mut st = sim.lock();
    let (cloud, _) = http::cloud_and_seq(&mut st, &cc.cloud);
    // What the provider's introspection would say of the token.
    let subject = cloud
        .identity
        .federation
        .tokens
        .get(bearer)
        .filter(|t| t.expires_at > now)
        .map(|t| t.subject.clone())
        .ok_or_else(ApiError::unauthorized)?;
    let user_id = shadow_user(&mut cloud.identity, &subject);
    let token = Token::new(user_id, None, vec![PROTOCOL.to_string()], None, now);
    Ok(respond_with_token(&sim, cloud, token))
}
