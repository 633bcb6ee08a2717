//! Projects, domains, users, roles and role assignments.

use std::sync::Arc;

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, Q};
use crate::sim::Sim;

use super::{links, Domain, Project, User};

pub(super) fn render_project(ctx: &Ctx, p: &Project) -> Value {
    json!({
        "id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description,
        "enabled": true, "parent_id": p.domain_id, "is_domain": false, "tags": [], "options": {},
        "links": {"self": ctx.url(&format!("/identity/v3/projects/{}", p.id))},
    })
}

fn render_domain(ctx: &Ctx, d: &Domain) -> Value {
    json!({
        "id": d.id, "name": d.name, "description": d.description, "enabled": true, "tags": [], "options": {},
        "links": {"self": ctx.url(&format!("/identity/v3/domains/{}", d.id))},
    })
}

fn render_user(ctx: &Ctx, u: &User) -> Value {
    json!({
        "id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": true,
        "default_project_id": u.default_project_id, "password_expires_at": null, "options": {},
        "links": {"self": ctx.url(&format!("/identity/v3/users/{}", u.id))},
    })
}

async fn list_projects(ctx: Ctx, q: Q) -> Response {
    let items = ctx.read(|c| {
        c.identity
            .projects
            .values()
            .filter(|p| q.get("name").is_none_or(|n| p.name == n))
            .filter(|p| q.get("domain_id").is_none_or(|d| p.domain_id == d))
            .map(|p| render_project(&ctx, p))
            .collect::<Vec<_>>()
    });
    http::ok(json!({"projects": items, "links": links(&ctx, "/projects")}))
}

async fn show_project(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        c.identity
            .projects
            .get(&id)
            .map(|p| http::ok(json!({"project": render_project(&ctx, p)})))
            .ok_or_else(|| ApiError::not_found(format!("Could not find project: {id}.")))
    })
}

async fn list_domains(ctx: Ctx, q: Q) -> Response {
    let items = ctx.read(|c| {
        c.identity
            .domains
            .values()
            .filter(|d| q.get("name").is_none_or(|n| d.name == n))
            .map(|d| render_domain(&ctx, d))
            .collect::<Vec<_>>()
    });
    http::ok(json!({"domains": items, "links": links(&ctx, "/domains")}))
}

async fn show_domain(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        c.identity
            .domains
            .get(&id)
            .map(|d| http::ok(json!({"domain": render_domain(&ctx, d)})))
            .ok_or_else(|| ApiError::not_found(format!("Could not find domain: {id}.")))
    })
}

async fn list_users(ctx: Ctx, q: Q) -> Response {
    let items = ctx.read(|c| {
        c.identity
            .users
            .values()
            .filter(|u| q.get("name").is_none_or(|n| u.name == n))
            .filter(|u| q.get("domain_id").is_none_or(|d| u.domain_id == d))
            .map(|u| render_user(&ctx, u))
            .collect::<Vec<_>>()
    });
    http::ok(json!({"users": items, "links": links(&ctx, "/users")}))
}

async fn show_user(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        c.identity
            .users
            .get(&id)
            .map(|u| http::ok(json!({"user": render_user(&ctx, u)})))
            .ok_or_else(|| ApiError::not_found(format!("Could not find user: {id}.")))
    })
}

async fn user_projects(ctx: Ctx, Path(id): Path<String>) -> Response {
    let items = ctx.read(|c| {
        c.identity
            .projects
            .values()
            .filter(|p| !c.identity.role_names(&id, &p.id).is_empty())
            .map(|p| render_project(&ctx, p))
            .collect::<Vec<_>>()
    });
    http::ok(json!({"projects": items, "links": links(&ctx, &format!("/users/{id}/projects"))}))
}

async fn list_roles(ctx: Ctx, q: Q) -> Response {
    let items = ctx.read(|c| {
        c.identity
            .roles
            .values()
            .filter(|r| q.get("name").is_none_or(|n| r.name == n))
            .map(|r| json!({"id": r.id, "name": r.name, "domain_id": null, "description": null, "options": {}, "links": {"self": ctx.url(&format!("/identity/v3/roles/{}", r.id))}}))
            .collect::<Vec<_>>()
    });
    http::ok(json!({"roles": items, "links": links(&ctx, "/roles")}))
}

async fn show_role(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        c.identity
            .roles
            .get(&id)
            .map(|r| http::ok(json!({"role": {"id": r.id, "name": r.name, "domain_id": null, "description": null, "options": {}, "links": {"self": ctx.url(&format!("/identity/v3/roles/{}", r.id))}}})))
            .ok_or_else(|| ApiError::not_found(format!("Could not find role: {id}.")))
    })
}

async fn list_role_assignments(ctx: Ctx, q: Q) -> Response {
    let items = ctx.read(|c| {
        c.identity
            .assignments
            .iter()
            .filter(|a| q.get("user.id").is_none_or(|u| a.user_id == u))
            .filter(|a| q.get("scope.project.id").is_none_or(|p| a.project_id == p))
            .filter(|a| q.get("role.id").is_none_or(|r| a.role_id == r))
            .map(|a| json!({"user": {"id": a.user_id}, "scope": {"project": {"id": a.project_id}}, "role": {"id": a.role_id}, "links": {"assignment": ctx.url(&format!("/identity/v3/projects/{}/users/{}/roles/{}", a.project_id, a.user_id, a.role_id))}}))
            .collect::<Vec<_>>()
    });
    http::ok(json!({"role_assignments": items, "links": links(&ctx, "/role_assignments")}))
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/identity/v3/projects", get(list_projects))
        .route("/identity/v3/projects/{id}", get(show_project))
        .route("/identity/v3/domains", get(list_domains))
        .route("/identity/v3/domains/{id}", get(show_domain))
        .route("/identity/v3/users", get(list_users))
        .route("/identity/v3/users/{id}", get(show_user))
        .route("/identity/v3/users/{id}/projects", get(user_projects))
        .route("/identity/v3/roles", get(list_roles))
        .route("/identity/v3/roles/{id}", get(show_role))
        .route("/identity/v3/role_assignments", get(list_role_assignments))
}
