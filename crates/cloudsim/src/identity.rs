//! Keystone v3: password, token and application-credential authentication, the service catalog,
//! projects, domains, users, roles and application credentials.
//!
//! Each cloud has its own Keystone under `/<cloud>/identity`. Tokens are random strings kept in
//! the state (so they survive a restart) and expire after [`TOKEN_LIFETIME_SECS`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, CloudCtx, Ctx, JsonBody, Q};
use crate::sim::Sim;
use crate::state::Cloud;
use crate::util::{self, Ts};

/// How long a token is valid.
pub const TOKEN_LIFETIME_SECS: i64 = 3600;

/// A Keystone domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Domain {
    /// `default` for the Default domain.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

/// A Keystone project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    /// Hex id.
    pub id: String,
    /// Name, unique in its domain.
    pub name: String,
    /// Owning domain.
    pub domain_id: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

/// A Keystone user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Hex id.
    pub id: String,
    /// Name, unique in its domain.
    pub name: String,
    /// Owning domain.
    pub domain_id: String,
    /// Password (kept in clear: the state directory belongs to the test that made it).
    pub password: String,
    /// Default project.
    pub default_project_id: Option<String>,
}

/// A role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    /// Hex id.
    pub id: String,
    /// `admin`, `member`, `reader`.
    pub name: String,
}

/// A role of a user on a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    /// The user.
    pub user_id: String,
    /// The project.
    pub project_id: String,
    /// The role.
    pub role_id: String,
}

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
    /// Secret (clear, see [`User::password`]).
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

/// One cloud's Keystone data.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IdentityData {
    /// Domains by id.
    pub domains: BTreeMap<String, Domain>,
    /// Projects by id.
    pub projects: BTreeMap<String, Project>,
    /// Users by id.
    pub users: BTreeMap<String, User>,
    /// Roles by id.
    pub roles: BTreeMap<String, Role>,
    /// Role assignments.
    pub assignments: Vec<Assignment>,
    /// Application credentials by id.
    pub app_creds: BTreeMap<String, AppCred>,
    /// Tokens by token string.
    pub tokens: BTreeMap<String, Token>,
    /// The project and user written to clouds.yaml.
    pub main_project: String,
    /// See `main_project`.
    pub main_user: String,
}

impl IdentityData {
    /// The Default domain, project `<cloud>-project`, user `<cloud>-user` (admin, member and
    /// reader of it) with a random password.
    pub fn bootstrap(cloud: &str) -> IdentityData {
        let mut d = IdentityData::default();
        d.domains.insert(
            "default".into(),
            Domain {
                id: "default".into(),
                name: "Default".into(),
                description: "The default domain".into(),
            },
        );
        let project = Project {
            id: util::hex_id(),
            name: format!("{cloud}-project"),
            domain_id: "default".into(),
            description: format!("The project of cloud {cloud}"),
        };
        let user = User {
            id: util::hex_id(),
            name: format!("{cloud}-user"),
            domain_id: "default".into(),
            password: util::random_string(20),
            default_project_id: Some(project.id.clone()),
        };
        for name in ["admin", "member", "reader"] {
            let role = Role {
                id: util::hex_id(),
                name: name.into(),
            };
            d.assignments.push(Assignment {
                user_id: user.id.clone(),
                project_id: project.id.clone(),
                role_id: role.id.clone(),
            });
            d.roles.insert(role.id.clone(), role);
        }
        d.main_project = project.id.clone();
        d.main_user = user.id.clone();
        d.projects.insert(project.id.clone(), project);
        d.users.insert(user.id.clone(), user);
        d
    }

    /// The project written to clouds.yaml.
    pub fn main_project_id(&self) -> &str {
        &self.main_project
    }

    /// The user and project written to clouds.yaml.
    pub fn main_user_and_project(&self) -> (&User, &Project) {
        // Both are created at bootstrap and never deleted.
        (
            &self.users[&self.main_user],
            &self.projects[&self.main_project],
        )
    }

    /// A token that exists and has not expired.
    pub fn valid_token(&self, id: &str) -> Option<&Token> {
        self.tokens.get(id).filter(|t| t.expires_at > util::now())
    }

    /// Names of the user's roles on the project.
    pub fn role_names(&self, user_id: &str, project_id: &str) -> Vec<String> {
        self.assignments
            .iter()
            .filter(|a| a.user_id == user_id && a.project_id == project_id)
            .filter_map(|a| self.roles.get(&a.role_id).map(|r| r.name.clone()))
            .collect()
    }

    fn find_domain(&self, spec: &Value) -> Option<&Domain> {
        if let Some(id) = spec.get("id").and_then(Value::as_str) {
            return self.domains.get(id);
        }
        let name = spec.get("name").and_then(Value::as_str)?;
        self.domains.values().find(|d| d.name == name)
    }

    /// Finds a user or project given as `{"id"}` or `{"name", "domain": {"id"|"name"}}`.
    fn find_user(&self, spec: &Value) -> Option<&User> {
        if let Some(id) = spec.get("id").and_then(Value::as_str) {
            return self.users.get(id);
        }
        let name = spec.get("name").and_then(Value::as_str)?;
        let domain = self.find_domain(spec.get("domain")?)?;
        self.users
            .values()
            .find(|u| u.name == name && u.domain_id == domain.id)
    }

    fn find_project(&self, spec: &Value) -> Option<&Project> {
        if let Some(id) = spec.get("id").and_then(Value::as_str) {
            return self.projects.get(id);
        }
        let name = spec.get("name").and_then(Value::as_str)?;
        let domain = self.find_domain(spec.get("domain")?)?;
        self.projects
            .values()
            .find(|p| p.name == name && p.domain_id == domain.id)
    }
}

/// Keystone routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/identity", get(versions))
        .route("/identity/v3", get(version))
        .route(
            "/identity/v3/auth/tokens",
            get(validate_token).post(issue_token).delete(revoke_token),
        )
        .route("/identity/v3/auth/catalog", get(auth_catalog))
        .route("/identity/v3/auth/projects", get(auth_projects))
        .route("/identity/v3/auth/domains", get(auth_domains))
        .route("/identity/v3/projects", get(list_projects))
        .route("/identity/v3/projects/{id}", get(show_project))
        .route("/identity/v3/domains", get(list_domains))
        .route("/identity/v3/domains/{id}", get(show_domain))
        .route("/identity/v3/users", get(list_users))
        .route("/identity/v3/users/{id}", get(show_user))
        .route("/identity/v3/users/{id}/projects", get(user_projects))
        .route(
            "/identity/v3/users/{id}/application_credentials",
            get(list_app_creds).post(create_app_cred),
        )
        .route(
            "/identity/v3/users/{id}/application_credentials/{cred}",
            get(show_app_cred).delete(delete_app_cred),
        )
        .route("/identity/v3/roles", get(list_roles))
        .route("/identity/v3/roles/{id}", get(show_role))
        .route("/identity/v3/role_assignments", get(list_role_assignments))
        .route("/identity/v3/services", get(list_services))
        .route("/identity/v3/endpoints", get(list_endpoints))
        .route("/identity/v3/regions", get(list_regions))
}

fn base(sim: &Sim, cloud: &str) -> String {
    format!("{}/{}", sim.base_url, cloud)
}

fn version_doc(href: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{href}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

async fn versions(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    let href = format!("{}/identity", base(&sim, &cc.cloud));
    http::json(
        StatusCode::MULTIPLE_CHOICES,
        json!({"versions": {"values": [version_doc(&href)]}}),
    )
}

async fn version(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    let href = format!("{}/identity", base(&sim, &cc.cloud));
    http::ok(json!({"version": version_doc(&href)}))
}

/// The service catalog of a cloud, as it appears in tokens and `GET /auth/catalog`.
pub fn catalog(sim: &Sim, cloud: &Cloud, project_id: &str) -> Value {
    let b = base(sim, &cloud.name);
    let services: [(&str, &str, String); 7] = [
        ("identity", "keystone", format!("{b}/identity")),
        ("compute", "nova", format!("{b}/compute/v2.1")),
        (
            "block-storage",
            "cinder",
            format!("{b}/volume/v3/{project_id}"),
        ),
        (
            "volumev3",
            "cinderv3",
            format!("{b}/volume/v3/{project_id}"),
        ),
        ("image", "glance", format!("{b}/image")),
        ("network", "neutron", format!("{b}/network")),
        ("placement", "placement", format!("{b}/placement")),
    ];
    let entries: Vec<Value> = services
        .iter()
        // Placement is not simulated; leaving it out keeps clients from trying it.
        .filter(|(t, _, _)| *t != "placement")
        .enumerate()
        .map(|(i, (stype, name, url))| {
            let endpoints: Vec<Value> = ["public", "internal", "admin"]
                .iter()
                .enumerate()
                .map(|(j, iface)| {
                    json!({
                        "id": format!("{:032x}", (i * 3 + j + 1) as u128 + ((cloud.index as u128) << 64)),
                        "interface": iface,
                        "region_id": cloud.region,
                        "region": cloud.region,
                        "url": url,
                    })
                })
                .collect();
            json!({"id": format!("{:032x}", (i + 1) as u128 + ((cloud.index as u128) << 96)), "type": stype, "name": name, "endpoints": endpoints})
        })
        .collect();
    Value::Array(entries)
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
    let method = methods
        .first()
        .cloned()
        .ok_or_else(|| ApiError::bad_request("Expecting to find methods in identity."))?;
    let now = util::now();
    let mut st = sim.lock();
    let (cloud, _) = http::cloud_and_seq(&mut st, &cc.cloud);
    let d = &cloud.identity;
    let generic = "The request you have made requires authentication.";

    // Who, and the scope implied by the method (application credentials and rescoped tokens).
    let (user_id, implied_project, app_cred_id): (String, Option<String>, Option<String>) =
        match method.as_str() {
            "password" => {
                let pw = identity
                    .get("password")
                    .and_then(|p| p.get("user"))
                    .ok_or_else(|| auth_failed(generic))?;
                let user = d.find_user(pw).ok_or_else(|| auth_failed(generic))?;
                let given = pw.get("password").and_then(Value::as_str).unwrap_or("");
                if given != user.password {
                    return Err(auth_failed(generic));
                }
                (user.id.clone(), None, None)
            }
            "token" => {
                let id = identity
                    .get("token")
                    .and_then(|t| t.get("id"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| auth_failed(generic))?;
                let t = d.valid_token(id).ok_or_else(|| auth_failed(generic))?;
                (
                    t.user_id.clone(),
                    t.project_id.clone(),
                    t.app_cred_id.clone(),
                )
            }
            "application_credential" => {
                let ac = identity
                    .get("application_credential")
                    .ok_or_else(|| auth_failed(generic))?;
                let secret = ac.get("secret").and_then(Value::as_str).unwrap_or("");
                let cred = if let Some(id) = ac.get("id").and_then(Value::as_str) {
                    d.app_creds.get(id)
                } else {
                    let name = ac.get("name").and_then(Value::as_str).unwrap_or("");
                    let user = ac
                        .get("user")
                        .and_then(|u| d.find_user(u))
                        .ok_or_else(|| auth_failed(generic))?;
                    d.app_creds
                        .values()
                        .find(|c| c.name == name && c.user_id == user.id)
                }
                .ok_or_else(|| auth_failed(generic))?;
                if cred.secret != secret || cred.expires_at.is_some_and(|e| e <= now) {
                    return Err(auth_failed(generic));
                }
                (
                    cred.user_id.clone(),
                    Some(cred.project_id.clone()),
                    Some(cred.id.clone()),
                )
            }
            other => {
                return Err(auth_failed(&format!(
                    "Attempted to authenticate with an unsupported method: {other}"
                )))
            }
        };

    let scoped_project = match auth.get("scope").and_then(|s| s.get("project")) {
        Some(spec) if app_cred_id.is_none() => {
            let p = d.find_project(spec).ok_or_else(|| auth_failed(generic))?;
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

    let token = Token {
        id: format!("gAAAAAB{}", util::random_string(176)),
        user_id,
        project_id: scoped_project,
        methods: if method == "token" {
            vec!["token".into(), "password".into()]
        } else {
            vec![method]
        },
        issued_at: now,
        expires_at: now + chrono::Duration::seconds(TOKEN_LIFETIME_SECS),
        app_cred_id,
        audit_id: util::random_string(22),
    };
    let body = render_token(&sim, cloud, &token);
    let id = token.id.clone();
    cloud.identity.tokens.insert(id.clone(), token);
    drop(st);
    sim.changed();
    let mut resp = http::json(StatusCode::CREATED, body);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
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

fn links(ctx: &Ctx, path: &str) -> Value {
    json!({"self": ctx.url(&format!("/identity/v3{path}")), "previous": null, "next": null})
}

async fn auth_catalog(ctx: Ctx) -> Response {
    let cat = ctx.read(|c| catalog(&ctx.sim, c, &ctx.project_id));
    http::ok(json!({"catalog": cat, "links": links(&ctx, "/auth/catalog")}))
}

fn render_project(ctx: &Ctx, p: &Project) -> Value {
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

async fn list_services(ctx: Ctx) -> Response {
    let cat = ctx.read(|c| catalog(&ctx.sim, c, &ctx.project_id));
    let items: Vec<Value> = cat
        .as_array()
        .map(|a| a.iter().map(|s| json!({"id": s["id"], "type": s["type"], "name": s["name"], "enabled": true, "description": null})).collect())
        .unwrap_or_default();
    http::ok(json!({"services": items, "links": links(&ctx, "/services")}))
}

async fn list_endpoints(ctx: Ctx) -> Response {
    let cat = ctx.read(|c| catalog(&ctx.sim, c, &ctx.project_id));
    let mut items = Vec::new();
    for s in cat.as_array().into_iter().flatten() {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            items.push(json!({"id": e["id"], "interface": e["interface"], "region_id": e["region_id"], "region": e["region"], "url": e["url"], "service_id": s["id"], "enabled": true}));
        }
    }
    http::ok(json!({"endpoints": items, "links": links(&ctx, "/endpoints")}))
}

async fn list_regions(ctx: Ctx) -> Response {
    let region = ctx.read(|c| c.region.clone());
    http::ok(
        json!({"regions": [{"id": region, "description": "", "parent_region_id": null}], "links": links(&ctx, "/regions")}),
    )
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
