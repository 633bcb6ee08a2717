//! Application credentials: create (with secret, roles and expiry), list, show, delete.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::sim::Sim;
use crate::util::{self, Ts};

use super::links;

/// An application credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppCred {
    /// Hex id.
    pub id: String,
    /// Name, unique per user.
    pub name: String,
    /// Owner.
    pub user_id: String,
    /// Project its tokens are scoped to.
    pub project_id: String,
    /// Secret (clear, see [`User::password`](super::User::password)).
    pub secret: String,
    /// Description.
    pub description: Option<String>,
    /// Expiry.
    pub expires_at: Option<Ts>,
    /// Role names it carries.
    pub roles: Vec<String>,
    /// Whether it may create other credentials.
    pub unrestricted: bool,
}

fn render_app_cred(c: &AppCred, with_secret: bool) -> Value {
    let mut v = json!({
        "id": c.id, "name": c.name, "user_id": c.user_id, "project_id": c.project_id,
        "description": c.description, "expires_at": c.expires_at.as_ref().map(util::iso_micro),
        "roles": c.roles.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "unrestricted": c.unrestricted, "access_rules": [],
    });
    if with_secret {
        v["secret"] = json!(c.secret);
    }
    v
}

fn own_user(ctx: &Ctx, user: &str) -> Result<(), ApiError> {
    if user != ctx.user_id && !ctx.is_admin() {
        return Err(ApiError::forbidden(
            "You are not authorized to perform the requested action.",
        ));
    }
    Ok(())
}

async fn list_app_creds(ctx: Ctx, Path(user): Path<String>, q: Q) -> Result<Response, ApiError> {
    own_user(&ctx, &user)?;
    let items = ctx.read(|c| {
        c.identity
            .app_creds
            .values()
            .filter(|a| a.user_id == user && q.get("name").is_none_or(|n| a.name == n))
            .map(|a| render_app_cred(a, false))
            .collect::<Vec<_>>()
    });
    Ok(http::ok(
        json!({"application_credentials": items, "links": links(&ctx, &format!("/users/{user}/application_credentials"))}),
    ))
}

async fn show_app_cred(
    ctx: Ctx,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    own_user(&ctx, &user)?;
    ctx.read(|c| {
        c.identity
            .app_creds
            .get(&id)
            .filter(|a| a.user_id == user)
            .map(|a| http::ok(json!({"application_credential": render_app_cred(a, false)})))
            .ok_or_else(|| {
                ApiError::not_found(format!("Could not find application credential: {id}."))
            })
    })
}

async fn delete_app_cred(
    ctx: Ctx,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    own_user(&ctx, &user)?;
    ctx.write(|c, _| {
        if c.identity
            .app_creds
            .get(&id)
            .is_none_or(|a| a.user_id != user)
        {
            return Err(ApiError::not_found(format!(
                "Could not find application credential: {id}."
            )));
        }
        c.identity.app_creds.remove(&id);
        c.identity
            .tokens
            .retain(|_, t| t.app_cred_id.as_deref() != Some(id.as_str()));
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn create_app_cred(
    ctx: Ctx,
    Path(user): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    own_user(&ctx, &user)?;
    let spec = util::body_object(&body, "application_credential")?;
    let name = util::opt_str(spec, "name")?
        .ok_or_else(|| ApiError::bad_request("'name' is a required property"))?;
    let secret = util::opt_str(spec, "secret")?.unwrap_or_else(|| util::random_string(40));
    let description = util::opt_str(spec, "description")?;
    let expires_at = match util::opt_str(spec, "expires_at")? {
        None => None,
        Some(s) => Some(
            parse_time(&s)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid expires_at: {s}")))?,
        ),
    };
    let unrestricted = util::opt_bool(spec, "unrestricted")?.unwrap_or(false);
    if ctx.project_id.is_empty() {
        return Err(ApiError::bad_request(
            "Application credentials need a project-scoped token.",
        ));
    }
    let mut roles: Vec<String> = ctx.roles.clone();
    if let Some(Value::Array(rs)) = spec.get("roles") {
        let wanted: Vec<String> = rs
            .iter()
            .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        if !wanted.is_empty() {
            roles.retain(|r| wanted.contains(r));
        }
    }
    ctx.write(|c, _| {
        if c.identity.app_creds.values().any(|a| a.user_id == user && a.name == name) {
            return Err(ApiError::conflict(format!("Conflict occurred attempting to store application_credential - Duplicate entry found with name {name}.")));
        }
        let cred = AppCred {
            id: util::hex_id(),
            name: name.clone(),
            user_id: user.clone(),
            project_id: ctx.project_id.clone(),
            secret,
            description,
            expires_at,
            roles,
            unrestricted,
        };
        let v = render_app_cred(&cred, true);
        c.identity.app_creds.insert(cred.id.clone(), cred);
        Ok(http::json(StatusCode::CREATED, json!({"application_credential": v})))
    })
}

fn parse_time(s: &str) -> Option<Ts> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/identity/v3/users/{id}/application_credentials",
            get(list_app_creds).post(create_app_cred),
        )
        .route(
            "/identity/v3/users/{id}/application_credentials/{cred}",
            get(show_app_cred).delete(delete_app_cred),
        )
}
