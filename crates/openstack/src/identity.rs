//! Identity (Keystone v3): the token's user and project, projects, domains.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::{DomainRef, TokenEntity};
use crate::catalog::Service;
use crate::common::{find_one, Query};
use crate::connection::{Call, Connection};
use crate::de::null_default;
use crate::error::{Error, Result};
use crate::resource::{DOMAINS, PROJECTS};

/// A project.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Project {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Domain ID.
    #[serde(default)]
    pub domain_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Parent project.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A domain.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Domain {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn project_from_token(p: &TokenEntity) -> Project {
    Project {
        id: p.id.clone(),
        name: p.name.clone(),
        domain_id: p.domain.as_ref().and_then(|d| d.id.clone()),
        ..Default::default()
    }
}

fn domain_from_ref(d: &DomainRef) -> Option<Domain> {
    Some(Domain {
        id: d.id.clone()?,
        name: d.name.clone().unwrap_or_default(),
        ..Default::default()
    })
}

/// Identity calls; from [`Connection::identity`].
#[derive(Clone, Copy)]
pub struct IdentityApi<'a> {
    conn: &'a Connection,
}

const S: Service = Service::Identity;

impl<'a> IdentityApi<'a> {
    pub(crate) fn new(conn: &'a Connection) -> IdentityApi<'a> {
        IdentityApi { conn }
    }

    /// The token's user.
    pub fn current_user(&self) -> Result<TokenEntity> {
        Ok(self.conn.authenticate()?.user)
    }

    /// The token's project; fails for a token without a project scope.
    pub fn current_project(&self) -> Result<Project> {
        let info = self.conn.authenticate()?;
        info.project
            .as_ref()
            .map(project_from_token)
            .ok_or_else(|| {
                Error::config(format!(
                    "the token of cloud {} is not scoped to a project",
                    self.conn.config().label()
                ))
            })
    }

    /// A project by ID. A 403 for the token's own project is answered from the token.
    pub fn get_project(&self, id: &str) -> Result<Project> {
        match self.conn.get::<Project>(&PROJECTS, id) {
            Ok(p) => Ok(p),
            Err(e) if e.status() == Some(403) => {
                let info = self.conn.authenticate()?;
                match info.project.as_ref().filter(|p| p.id == id) {
                    Some(p) => Ok(project_from_token(p)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A project by ID or exact name, among [`IdentityApi::list_projects`].
    pub fn find_project(&self, name_or_id: &str) -> Result<Option<Project>> {
        find_one(
            PROJECTS.kind,
            name_or_id,
            || self.get_project(name_or_id),
            || self.list_projects(),
            |p| Some(p.name.as_str()),
        )
    }

    /// Every project the token may see: `GET /projects` (admins); on 403 the projects of the
    /// user (`GET /auth/projects`); if that fails too, the token's own project.
    pub fn list_projects(&self) -> Result<Vec<Project>> {
        match self.conn.list(&PROJECTS, &Query::new()) {
            Ok(p) => return Ok(p),
            Err(e) if e.status() != Some(403) => return Err(e),
            Err(_) => {}
        }
        if let Ok(p) = self
            .conn
            .list_all(Call::get(S, "/auth/projects"), "projects")
        {
            return Ok(p);
        }
        Ok(self
            .conn
            .authenticate()?
            .project
            .as_ref()
            .map(project_from_token)
            .into_iter()
            .collect())
    }

    /// A domain by ID. A 403 for the domain of the token's user or project is answered from the
    /// token.
    pub fn get_domain(&self, id: &str) -> Result<Domain> {
        match self.conn.get::<Domain>(&DOMAINS, id) {
            Ok(d) => Ok(d),
            Err(e) if e.status() == Some(403) => {
                let info = self.conn.authenticate()?;
                let known = [
                    info.user.domain.as_ref(),
                    info.project.as_ref().and_then(|p| p.domain.as_ref()),
                    info.domain.as_ref(),
                ];
                let found = known
                    .into_iter()
                    .flatten()
                    .filter(|d| d.id.as_deref() == Some(id))
                    .find_map(domain_from_ref);
                found.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_model() {
        let p: Project = serde_json::from_value(serde_json::json!({
            "id": "p", "name": "demo", "domain_id": "default", "enabled": true, "is_domain": false, "parent_id": "default", "tags": [], "links": {}
        }))
        .unwrap();
        assert_eq!(p.domain_id.as_deref(), Some("default"));
        assert!(p.extra.contains_key("is_domain"));
    }
}
