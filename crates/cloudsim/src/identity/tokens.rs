//! Tokens: issue (password, token, application credential, TOTP, several methods at once),
//! validate, revoke, and the projects and domains a token may be scoped to.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, CloudCtx, Ctx, JsonBody};
use crate::sim::Sim;
use crate::state::Cloud;
use crate::util::{self, Ts};

use super::catalog::catalog;
use super::resources::render_project;
use super::{links, TOKEN_LIFETIME_SECS};

/// An issued token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    /// The token string (`X-Subject-Token`).
    pub id: String,
    /// Whose.
    pub user_id: String,
    /// Project scope, if scoped.
    pub project_id: Option<String>,
    /// Authentication methods used.
    pub methods: Vec<String>,
    /// Issue time.
    pub issued_at: Ts,
    /// Expiry.
    pub expires_at: Ts,
    /// The application credential it came from.
    pub app_cred_id: Option<String>,
    /// Audit id.
    pub audit_id: String,
}

fn render_token(sim: &Sim, cloud: &Cloud, t: &Token) -> Value {
    let d = &cloud.identity;
    let user = d.users.get(&t.user_id);
    let user_domain = user.and_then(|u| d.domains.get(&u.domain_id));
    let mut token = json!({
        "methods": t.methods,
        "user": {
            "id": t.user_id,
            "name": user.map(|u| u.name.clone()).unwrap_or_default(),
            "domain": {"id": user_domain.map(|x| x.id.clone()).unwrap_or_default(), "name": user_domain.map(|x| x.name.clone()).unwrap_or_default()},
            "password_expires_at": null,
        },
        "audit_ids": [t.audit_id],
        "expires_at": util::iso_micro_z(&t.expires_at),
        "issued_at": util::iso_micro_z(&t.issued_at),
    });
    if let Some(pid) = &t.project_id {
        if let Some(p) = d.projects.get(pid) {
            let pd = d.domains.get(&p.domain_id);
            let roles: Vec<Value> = d
                .assignments
                .iter()
                .filter(|a| a.user_id == t.user_id && a.project_id == *pid)
                .filter_map(|a| d.roles.get(&a.role_id))
                .filter(
                    |r| match t.app_cred_id.as_ref().and_then(|c| d.app_creds.get(c)) {
                        Some(c) => c.roles.contains(&r.name),
                        None => true,
                    },
                )
                .map(|r| json!({"id": r.id, "name": r.name}))
                .collect();
            token["project"] = json!({"id": p.id, "name": p.name, "domain": {"id": p.domain_id, "name": pd.map(|x| x.name.clone()).unwrap_or_default()}});
            token["is_domain"] = json!(false);
            token["roles"] = Value::Array(roles);
            token["catalog"] = catalog(sim, cloud, pid);
        }
    }
    if let Some(c) = t.app_cred_id.as_ref().and_then(|c| d.app_creds.get(c)) {
        token["application_credential"] =
            json!({"id": c.id, "name": c.name, "restricted": !c.unrestricted});
    }
    json!({"token": token})
}

fn auth_failed(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message)
}

/// Who one method of a token request proves, and the scope it implies (application
/// credentials and rescoped tokens carry one).
struct Proof {
    user_id: String,
    implied_project: Option<String>,
    app_cred_id: Option<String>,
    /// The methods of the token a `token` method re-scopes.
    earlier_methods: Vec<String>,
}

const GENERIC: &str = "The request you have made requires authentication.";

fn prove(
    d: &super::IdentityData,
    identity: &Value,
    method: &str,
    now: Ts,
) -> Result<Proof, ApiError> {
    let user_only = |user_id: &str| Proof {
        user_id: user_id.to_string(),
        implied_project: None,
        app_cred_id: None,
        earlier_methods: Vec::new(),
    };
    match method {
        "password" => {
            let pw = identity
                .get("password")
                .and_then(|p| p.get("user"))
                .ok_or_else(|| auth_failed(GENERIC))?;
            let user = d.find_user(pw).ok_or_else(|| auth_failed(GENERIC))?;
            let given = pw.get("password").and_then(Value::as_str).unwrap_or("");
            if given != user.password {
                return Err(auth_failed(GENERIC));
            }
            Ok(user_only(&user.id))
        }
        "totp" => {
            let spec = identity
                .get("totp")
                .and_then(|p| p.get("user"))
                .ok_or_else(|| auth_failed(GENERIC))?;
            let user = d.find_user(spec).ok_or_else(|| auth_failed(GENERIC))?;
            let given = spec.get("passcode").and_then(Value::as_str).unwrap_or("");
            match &user.totp_passcode {
                Some(p) if p == given => Ok(user_only(&user.id)),
                _ => Err(auth_failed(GENERIC)),
            }
        }
        "token" => {
            let id = identity
                .get("token")
                .and_then(|t| t.get("id"))
                .and_then(Value::as_str)
                .ok_or_else(|| auth_failed(GENERIC))?;
            let t = d.valid_token(id).ok_or_else(|| auth_failed(GENERIC))?;
            Ok(Proof {
                user_id: t.user_id.clone(),
                implied_project: t.project_id.clone(),
                app_cred_id: t.app_cred_id.clone(),
                earlier_methods: t.methods.clone(),
            })
        }
        "application_credential" => {
            let ac = identity
                .get("application_credential")
                .ok_or_else(|| auth_failed(GENERIC))?;
            let secret = ac.get("secret").and_then(Value::as_str).unwrap_or("");
            let cred = if let Some(id) = ac.get("id").and_then(Value::as_str) {
                d.app_creds.get(id)
            } else {
                let name = ac.get("name").and_then(Value::as_str).unwrap_or("");
                let user = ac
                    .get("user")
                    .and_then(|u| d.find_user(u))
                    .ok_or_else(|| auth_failed(GENERIC))?;
                d.app_creds
                    .values()
                    .find(|c| c.name == name && c.user_id == user.id)
            }
            .ok_or_else(|| auth_failed(GENERIC))?;
            if cred.secret != secret || cred.expires_at.is_some_and(|e| e <= now) {
                return Err(auth_failed(GENERIC));
            }
            Ok(Proof {
                user_id: cred.user_id.clone(),
                implied_project: Some(cred.project_id.clone()),
                app_cred_id: Some(cred.id.clone()),
                earlier_methods: Vec::new(),
            })
        }
        other => Err(auth_failed(&format!(
            "Attempted to authenticate with an unsupported method: {other}"
        ))),
    }
}

async fn issue_token(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let auth = body
        .get("auth")
        .ok_or_else(|| ApiError::bad_request("Expecting to find auth in request body."))?;
    let identity = auth
        .get("identity")
        .ok_or_else(|| ApiError::bad_request("Expecting to find identity in auth."))?;
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if methods.is_empty() {
        return Err(ApiError::bad_request(
            "Expecting to find methods in identity.",
        ));
    }
    let now = util::now();
    let mut st = sim.lock();
    let (cloud, _) = http::cloud_and_seq(&mut st, &cc.cloud);
    let d = &cloud.identity;

    // Every method must prove the same user, as Keystone requires of a multi-factor request.
    let mut proofs = Vec::new();
    for m in &methods {
        proofs.push(prove(d, identity, m, now)?);
    }
    let user_id = proofs[0].user_id.clone();
    if proofs.iter().any(|p| p.user_id != user_id) {
        return Err(auth_failed(
            "The methods of the request authenticate different users.",
        ));
    }
    let implied_project = proofs.iter().find_map(|p| p.implied_project.clone());
    let app_cred_id = proofs.iter().find_map(|p| p.app_cred_id.clone());

    let scoped_project = match auth.get("scope").and_then(|s| s.get("project")) {
        Some(spec) if app_cred_id.is_none() => {
            let p = d.find_project(spec).ok_or_else(|| auth_failed(GENERIC))?;
            if d.role_names(&user_id, &p.id).is_empty() {
                return Err(auth_failed(&format!(
                    "User {user_id} has no access to project {}",
                    p.id
                )));
            }
            Some(p.id.clone())
        }
        _ => implied_project,
    };
    if auth
        .get("scope")
        .and_then(|s| s.get("domain").or_else(|| s.get("system")))
        .is_some()
    {
        return Err(auth_failed(
            "Domain and system scoped tokens are not simulated.",
        ));
    }

    // A re-scoped token names the methods of the token it came from.
    let mut token_methods = methods.clone();
    for p in &proofs {
        for m in &p.earlier_methods {
            if !token_methods.contains(m) {
                token_methods.push(m.clone());
            }
        }
    }
    let token = Token::new(user_id, scoped_project, token_methods, app_cred_id, now);
    Ok(respond_with_token(&sim, cloud, token))
}

impl Token {
    /// A token valid for [`TOKEN_LIFETIME_SECS`] from `now`.
    pub(super) fn new(
        user_id: String,
        project_id: Option<String>,
        methods: Vec<String>,
        app_cred_id: Option<String>,
        now: Ts,
    ) -> Token {
        Token {
            id: format!("gAAAAAB{}", util::random_string(176)),
            user_id,
            project_id,
            methods,
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(TOKEN_LIFETIME_SECS),
            app_cred_id,
            audit_id: util::random_string(22),
        }
    }
}

/// Keeps a new token and answers 201 with it in `X-Subject-Token` and the body.
pub(super) fn respond_with_token(sim: &Sim, cloud: &mut Cloud, token: Token) -> Response {
    let body = render_token(sim, cloud, &token);
    let id = token.id.clone();
    cloud.identity.tokens.insert(id.clone(), token);
    sim.changed();
    let mut resp = http::json(StatusCode::CREATED, body);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}

fn subject(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .ok_or_else(|| ApiError::not_found("Could not find token: (none)."))
}

async fn validate_token(ctx: Ctx, headers: HeaderMap) -> Result<Response, ApiError> {
    let sub = subject(&headers)?;
    ctx.read(|c| {
        let t = c
            .identity
            .valid_token(&sub)
            .ok_or_else(|| ApiError::not_found(format!("Could not find token: {sub}.")))?;
        let mut resp = http::ok(render_token(&ctx.sim, c, t));
        if let Ok(v) = HeaderValue::from_str(&sub) {
            resp.headers_mut().insert("x-subject-token", v);
        }
        Ok(resp)
    })
}

async fn revoke_token(ctx: Ctx, headers: HeaderMap) -> Result<Response, ApiError> {
    let sub = subject(&headers)?;
    ctx.write(|c, _| c.identity.tokens.remove(&sub))
        .ok_or_else(|| ApiError::not_found(format!("Could not find token: {sub}.")))?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

async fn auth_projects(ctx: Ctx) -> Response {
    let items = ctx.read(|c| {
        c.identity
            .projects
            .values()
            .filter(|p| !c.identity.role_names(&ctx.user_id, &p.id).is_empty())
            .map(|p| render_project(&ctx, p))
            .collect::<Vec<_>>()
    });
    http::ok(json!({"projects": items, "links": links(&ctx, "/auth/projects")}))
}

async fn auth_domains(ctx: Ctx) -> Response {
    http::ok(json!({"domains": [], "links": links(&ctx, "/auth/domains")}))
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/identity/v3/auth/tokens",
            get(validate_token).post(issue_token).delete(revoke_token),
        )
        .route("/identity/v3/auth/projects", get(auth_projects))
        .route("/identity/v3/auth/domains", get(auth_domains))
}
