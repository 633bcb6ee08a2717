//! Keystone v3: password, token, application-credential, TOTP and multi-method authentication,
//! federation with an OpenID Connect provider, the service catalog, projects, domains, users, roles
//! and application credentials. One file per family: `tokens.rs` (issue, validate, revoke, the
//! token's scope), `federation.rs` (the provider and Keystone's `OS-FEDERATION` endpoint),
//! `catalog.rs` (services, endpoints, regions), `resources.rs` (projects, domains, users, roles,
//! assignments) and `app_creds.rs`; this module holds the records, the bootstrap of a cloud's
//! Keystone, the route table and the version documents.
//!
//! Each cloud has its own Keystone under `/<cloud>/identity`. Tokens are random strings kept in
//! the state (so they survive a restart) and expire after [`TOKEN_LIFETIME_SECS`].
//!
//! **TOTP.** The main user (`<cloud>-user`) has a TOTP credential whose passcode is fixed: six
//! random digits chosen at bootstrap and kept in the state, accepted at any time, so that tests can
//! authenticate with `v3totp` and `v3multifactor` without a clock. clouds.yaml holds it in cloud
//! `<cloud>-mfa` (`auth_methods: [v3password, v3totp]`, `auth.passcode`).
//!
//! **Federation.** Each cloud has an OpenID Connect provider at `/<cloud>/idp` (discovery document
//! `/<cloud>/idp/.well-known/openid-configuration`, token endpoint `/<cloud>/idp/token`) with one
//! confidential client ([`CLIENT_ID`], random secret) and one user (`<cloud>-oidc-user`, random
//! password). Keystone knows it as identity provider [`IDENTITY_PROVIDER`] with protocol
//! [`PROTOCOL`]: `POST /<cloud>/identity/v3/OS-FEDERATION/identity_providers/sso/protocols/openid/auth`
//! with `Authorization: Bearer <access token>` answers an unscoped token. Its mapping makes the
//! subject (the user's name, or `service-account-osm` for the client credentials grant) a user of
//! domain `sso` with the main user's roles on the main project. clouds.yaml holds cloud
//! `<cloud>-oidc` (`v3oidcpassword` through the discovery document).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{self, CloudCtx, Ctx};
use crate::sim::Sim;
use crate::util;

mod app_creds;
mod catalog;
mod federation;
mod resources;
mod tokens;

pub use app_creds::AppCred;
pub use federation::{Federation, IdpToken, CLIENT_ID, IDENTITY_PROVIDER, PROTOCOL};
pub use tokens::Token;

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
    /// The passcode the `totp` method accepts for this user, fixed rather than time-based (see
    /// the module docs); `None`: the user has no TOTP credential.
    #[serde(default)]
    pub totp_passcode: Option<String>,
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
    /// The OpenID Connect provider in front of this Keystone, and the users it federated.
    #[serde(default)]
    pub federation: Federation,
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
            totp_passcode: Some(federation::passcode()),
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
        d.federation = Federation::bootstrap(cloud);
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
        .merge(tokens::routes())
        .merge(catalog::routes())
        .merge(resources::routes())
        .merge(app_creds::routes())
        .merge(federation::routes())
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

fn links(ctx: &Ctx, path: &str) -> Value {
    json!({"self": ctx.url(&format!("/identity/v3{path}")), "previous": null, "next": null})
}
