//! Resolving the workload's references (by name) to IDs in the destination cloud.
//!
//! A reference matches a resource of that name visible to the destination project. When several
//! match, the one in the referenced project wins (`%auth%`: the project the migration authenticates
//! to); project names often differ between clouds, so the project is a tie-breaker, not a filter.

use std::collections::HashMap;

use osm_openstack::{self as os, Connection, Query};

use crate::model::Ref;

/// Looks references up in the destination, each kind listed once.
pub struct Resolver<'a> {
    conn: &'a Connection,
    project_id: String,
    project_names: HashMap<String, String>,
    networks: Option<Vec<os::Network>>,
    subnets: Option<Vec<os::Subnet>>,
    security_groups: Option<Vec<os::SecurityGroup>>,
    flavors: Option<Vec<os::Flavor>>,
    qos_policies: Option<Vec<os::QosPolicy>>,
}

/// Why a reference did not resolve.
#[derive(Debug)]
pub enum Miss {
    /// Nothing of that name.
    Missing(String),
    /// Several, none in the referenced project.
    Ambiguous(String),
    /// The cloud call failed.
    Cloud(os::Error),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Missing(m) | Miss::Ambiguous(m) => f.write_str(m),
            Miss::Cloud(e) => write!(f, "{e}"),
        }
    }
}

impl From<os::Error> for Miss {
    fn from(e: os::Error) -> Miss {
        Miss::Cloud(e)
    }
}

fn describe(kind: &str, r: &Ref) -> String {
    match r
        .project_name
        .as_deref()
        .filter(|p| *p != crate::model::AUTH_PROJECT)
    {
        Some(p) => format!("{kind} '{}' (project {p})", r.name),
        None => format!("{kind} '{}'", r.name),
    }
}

impl<'a> Resolver<'a> {
    /// A resolver for the destination `conn`.
    pub fn new(conn: &'a Connection) -> Result<Resolver<'a>, os::Error> {
        let project_id = conn.project_id()?;
        Ok(Resolver {
            conn,
            project_id,
            project_names: HashMap::new(),
            networks: None,
            subnets: None,
            security_groups: None,
            flavors: None,
            qos_policies: None,
        })
    }

    /// The destination project's ID.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    fn project_name(&mut self, id: &str) -> Option<String> {
        if let Some(n) = self.project_names.get(id) {
            return Some(n.clone());
        }
        let name = self.conn.identity().get_project(id).ok()?.name;
        self.project_names.insert(id.to_string(), name.clone());
        Some(name)
    }

    /// Picks among candidates of one name by project.
    fn pick<T: Clone>(
        &mut self,
        kind: &str,
        r: &Ref,
        candidates: Vec<T>,
        project_of: impl Fn(&T) -> Option<String>,
    ) -> Result<T, Miss> {
        match candidates.len() {
            0 => Err(Miss::Missing(format!("{} not found", describe(kind, r)))),
            1 => Ok(candidates
                .into_iter()
                .next()
                .ok_or_else(|| Miss::Missing(describe(kind, r)))?),
            n => {
                let wanted_auth = r.is_auth_project();
                let mut preferred = Vec::new();
                for c in &candidates {
                    let pid = project_of(c);
                    let matches = match (&pid, wanted_auth) {
                        (Some(p), true) => *p == self.project_id,
                        (Some(p), false) => {
                            self.project_name(p).as_deref() == r.project_name.as_deref()
                        }
                        (None, _) => false,
                    };
                    if matches {
                        preferred.push(c.clone());
                    }
                }
                if preferred.len() == 1 {
                    Ok(preferred.remove(0))
                } else {
                    Err(Miss::Ambiguous(format!(
                        "{} is ambiguous: {n} of that name",
                        describe(kind, r)
                    )))
                }
            }
        }
    }

    /// A flavor ID.
    pub fn flavor(&mut self, r: &Ref) -> Result<os::Flavor, Miss> {
        if self.flavors.is_none() {
            self.flavors = Some(self.conn.compute().list_flavors()?);
        }
        let c: Vec<os::Flavor> = self
            .flavors
            .iter()
            .flatten()
            .filter(|f| f.name == r.name)
            .cloned()
            .collect();
        self.pick("flavor", r, c, |_| None)
    }

    /// An image.
    pub fn image(&mut self, r: &Ref) -> Result<os::Image, Miss> {
        let c: Vec<os::Image> = self
            .conn
            .image()
            .list_images_with(&Query::new().with("name", r.name.clone()))?
            .into_iter()
            .filter(|i| i.name == r.name && i.status == "active")
            .collect();
        self.pick("image", r, c, |i| i.owner.clone())
    }

    /// A network.
    pub fn network(&mut self, r: &Ref) -> Result<os::Network, Miss> {
        if self.networks.is_none() {
            self.networks = Some(self.conn.network().list_networks(&Query::new())?);
        }
        let c: Vec<os::Network> = self
            .networks
            .iter()
            .flatten()
            .filter(|n| n.name == r.name)
            .cloned()
            .collect();
        self.pick("network", r, c, |n| n.project_id.clone())
    }

    /// A subnet, on `network_id` when given.
    pub fn subnet(&mut self, r: &Ref, network_id: Option<&str>) -> Result<os::Subnet, Miss> {
        if self.subnets.is_none() {
            self.subnets = Some(self.conn.network().list_subnets(&Query::new())?);
        }
        let c: Vec<os::Subnet> = self
            .subnets
            .iter()
            .flatten()
            .filter(|s| s.name == r.name && network_id.is_none_or(|n| s.network_id == n))
            .cloned()
            .collect();
        self.pick("subnet", r, c, |s| s.project_id.clone())
    }

    /// A security group.
    pub fn security_group(&mut self, r: &Ref) -> Result<os::SecurityGroup, Miss> {
        if self.security_groups.is_none() {
            let mine = Query::new().with("project_id", self.project_id.clone());
            self.security_groups = Some(self.conn.network().list_security_groups(&mine)?);
        }
        let c: Vec<os::SecurityGroup> = self
            .security_groups
            .iter()
            .flatten()
            .filter(|s| s.name == r.name)
            .cloned()
            .collect();
        self.pick("security group", r, c, |s| s.project_id.clone())
    }

    /// A QoS policy (the project's own and the shared ones).
    pub fn qos_policy(&mut self, r: &Ref) -> Result<os::QosPolicy, Miss> {
        if self.qos_policies.is_none() {
            self.qos_policies = Some(self.conn.network().list_qos_policies(&Query::new())?);
        }
        let c: Vec<os::QosPolicy> = self
            .qos_policies
            .iter()
            .flatten()
            .filter(|q| q.name == r.name)
            .cloned()
            .collect();
        self.pick("QoS policy", r, c, |q| q.project_id.clone())
    }
}
