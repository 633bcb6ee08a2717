//! The resource table: one [`Resource`] per REST resource type (where it lives, how its JSON is
//! wrapped, what errors call it), and the plain list, get, find, create, update and delete
//! calls every service makes through it. Calls that are not plain CRUD (actions, attachments,
//! tags, data upload) stay explicit in the service modules.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::block_storage::{Snapshot, Volume};
use crate::catalog::Service;
use crate::common::{find_one, wait_deleted, wait_status, Observed, Query, ResourceKind};
use crate::compute::Server;
use crate::connection::{seg, Call, Connection};
use crate::error::Result;
use crate::image::Image;
use crate::microversion::Microversion;

/// One REST resource type of one service.
pub(crate) struct Resource {
    /// The service it belongs to.
    pub service: Service,
    /// The collection (`/servers`); one item is `{path}/{id}`.
    pub path: &'static str,
    /// What lists the collection with every attribute (`/servers/detail`; often `path`).
    pub list_path: &'static str,
    /// The key of a list answer (`servers`).
    pub plural: &'static str,
    /// The key one item is wrapped in (`server`); `None` where the API sends and takes the bare
    /// object (Glance).
    pub singular: Option<&'static str>,
    /// What errors call it (`security group`).
    pub kind: &'static str,
}

impl Resource {
    fn item(&self, id: &str) -> Result<String> {
        Ok(format!("{}/{}", self.path, seg(self.kind, id)?))
    }

    /// `call` with `body` as its JSON, wrapped in `{singular: body}` where the API wants that.
    fn with_body(&self, call: Call, body: &impl Serialize) -> Result<Call> {
        match self.singular {
            Some(key) => call.json(&Wrapped { key, body }),
            None => call.json(body),
        }
    }

    /// Reads one item from an answer, unwrapping it where the API wraps it.
    fn one<T: DeserializeOwned>(&self, conn: &Connection, call: Call) -> Result<T> {
        match self.singular {
            Some(key) => conn.call_key(call, key),
            None => conn.call_json(call),
        }
    }
}

/// Nova servers.
pub(crate) const SERVERS: Resource = Resource {
    service: Service::Compute,
    path: "/servers",
    list_path: "/servers/detail",
    plural: "servers",
    singular: Some("server"),
    kind: "server",
};

/// Nova flavors.
pub(crate) const FLAVORS: Resource = Resource {
    service: Service::Compute,
    path: "/flavors",
    list_path: "/flavors/detail",
    plural: "flavors",
    singular: Some("flavor"),
    kind: "flavor",
};

/// Nova keypairs (a list wraps each one again in `keypair`; see `ComputeApi::list_keypairs`).
pub(crate) const KEYPAIRS: Resource = Resource {
    service: Service::Compute,
    path: "/os-keypairs",
    list_path: "/os-keypairs",
    plural: "keypairs",
    singular: Some("keypair"),
    kind: "keypair",
};

/// Cinder volumes.
pub(crate) const VOLUMES: Resource = Resource {
    service: Service::BlockStorage,
    path: "/volumes",
    list_path: "/volumes/detail",
    plural: "volumes",
    singular: Some("volume"),
    kind: "volume",
};

/// Cinder snapshots.
pub(crate) const SNAPSHOTS: Resource = Resource {
    service: Service::BlockStorage,
    path: "/snapshots",
    list_path: "/snapshots/detail",
    plural: "snapshots",
    singular: Some("snapshot"),
    kind: "snapshot",
};

/// Cinder volume types.
pub(crate) const VOLUME_TYPES: Resource = Resource {
    service: Service::BlockStorage,
    path: "/types",
    list_path: "/types",
    plural: "volume_types",
    singular: Some("volume_type"),
    kind: "volume type",
};

/// Glance images (bare objects).
pub(crate) const IMAGES: Resource = Resource {
    service: Service::Image,
    path: "/images",
    list_path: "/images",
    plural: "images",
    singular: None,
    kind: "image",
};

/// Keystone projects.
pub(crate) const PROJECTS: Resource = Resource {
    service: Service::Identity,
    path: "/projects",
    list_path: "/projects",
    plural: "projects",
    singular: Some("project"),
    kind: "project",
};

/// Keystone domains.
pub(crate) const DOMAINS: Resource = Resource {
    service: Service::Identity,
    path: "/domains",
    list_path: "/domains",
    plural: "domains",
    singular: Some("domain"),
    kind: "domain",
};

/// Neutron networks.
pub(crate) const NETWORKS: Resource = Resource {
    service: Service::Network,
    path: "/networks",
    list_path: "/networks",
    plural: "networks",
    singular: Some("network"),
    kind: "network",
};

/// Neutron subnets.
pub(crate) const SUBNETS: Resource = Resource {
    service: Service::Network,
    path: "/subnets",
    list_path: "/subnets",
    plural: "subnets",
    singular: Some("subnet"),
    kind: "subnet",
};

/// Neutron ports.
pub(crate) const PORTS: Resource = Resource {
    service: Service::Network,
    path: "/ports",
    list_path: "/ports",
    plural: "ports",
    singular: Some("port"),
    kind: "port",
};

/// Neutron security groups.
pub(crate) const SECURITY_GROUPS: Resource = Resource {
    service: Service::Network,
    path: "/security-groups",
    list_path: "/security-groups",
    plural: "security_groups",
    singular: Some("security_group"),
    kind: "security group",
};

/// Neutron security group rules.
pub(crate) const SECURITY_GROUP_RULES: Resource = Resource {
    service: Service::Network,
    path: "/security-group-rules",
    list_path: "/security-group-rules",
    plural: "security_group_rules",
    singular: Some("security_group_rule"),
    kind: "security group rule",
};

/// Neutron routers.
pub(crate) const ROUTERS: Resource = Resource {
    service: Service::Network,
    path: "/routers",
    list_path: "/routers",
    plural: "routers",
    singular: Some("router"),
    kind: "router",
};

/// Neutron floating IPs.
pub(crate) const FLOATING_IPS: Resource = Resource {
    service: Service::Network,
    path: "/floatingips",
    list_path: "/floatingips",
    plural: "floatingips",
    singular: Some("floatingip"),
    kind: "floating IP",
};

/// Neutron QoS policies (the `qos` extension).
pub(crate) const QOS_POLICIES: Resource = Resource {
    service: Service::Network,
    path: "/qos/policies",
    list_path: "/qos/policies",
    plural: "policies",
    singular: Some("policy"),
    kind: "QoS policy",
};

/// A resource with a status that callers wait on.
pub(crate) trait Status {
    /// The status (`ACTIVE`, `available`, ...).
    fn status(&self) -> &str;

    /// Why it is in an error status, when the resource itself says (a server's fault).
    fn fault(&self) -> Option<String> {
        None
    }

    /// The status while a delete is under way; a server keeps the status it had (ERROR, say)
    /// and only its task state tells that the delete goes on.
    fn deletion_status(&self) -> &str {
        self.status()
    }
}

impl Connection {
    /// Every item of `r` matching `filters`, every page.
    pub(crate) fn list<T: DeserializeOwned>(
        &self,
        r: &Resource,
        filters: &Query,
    ) -> Result<Vec<T>> {
        self.list_all(Call::get(r.service, r.list_path).queries(filters), r.plural)
    }

    /// One item by ID; [`crate::Error::NotFound`] if there is none.
    pub(crate) fn get<T: DeserializeOwned>(&self, r: &Resource, id: &str) -> Result<T> {
        r.one(self, Call::get(r.service, r.item(id)?))
            .map_err(|e| e.not_found_as(r.kind, id))
    }

    /// One item by ID, else by exact name among those `by_name` lists (a name query, or every
    /// item where the API cannot filter by name).
    pub(crate) fn find<T: DeserializeOwned>(
        &self,
        r: &Resource,
        name_or_id: &str,
        by_name: &Query,
        name_of: impl Fn(&T) -> &str,
    ) -> Result<Option<T>> {
        find_one(
            r.kind,
            name_or_id,
            || self.get(r, name_or_id),
            || self.list(r, by_name),
            |t| Some(name_of(t)),
        )
    }

    /// Creates an item (`POST {path}`), at microversion `version` when the request needs one.
    pub(crate) fn create<T: DeserializeOwned>(
        &self,
        r: &Resource,
        body: &impl Serialize,
        version: Option<Microversion>,
    ) -> Result<T> {
        let mut call = r.with_body(Call::post(r.service, r.path), body)?;
        call.microversion = version;
        r.one(self, call)
    }

    /// Changes attributes of an item (`PUT {path}/{id}`).
    pub(crate) fn update<T: DeserializeOwned>(
        &self,
        r: &Resource,
        id: &str,
        changes: &impl Serialize,
    ) -> Result<T> {
        let call = r.with_body(Call::put(r.service, r.item(id)?), changes)?;
        r.one(self, call).map_err(|e| e.not_found_as(r.kind, id))
    }

    /// Deletes an item (`DELETE {path}/{id}`).
    pub(crate) fn delete(&self, r: &Resource, id: &str) -> Result<()> {
        self.delete_with(r, id, &Query::new())
    }

    /// Deletes an item with query parameters (Cinder's `cascade`).
    pub(crate) fn delete_with(&self, r: &Resource, id: &str, query: &Query) -> Result<()> {
        self.call(Call::delete(r.service, r.item(id)?).queries(query))
            .map(drop)
            .map_err(|e| e.not_found_as(r.kind, id))
    }

    /// Sets metadata keys of an item, keeping the others (`POST {path}/{id}/metadata`, as Nova
    /// and Cinder have it); returns all of its metadata.
    pub(crate) fn set_metadata(
        &self,
        r: &Resource,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        let call = Call::post(r.service, format!("{}/metadata", r.item(id)?)).json(&Wrapped {
            key: "metadata",
            body: metadata,
        })?;
        self.call_key(call, "metadata")
            .map_err(|e| e.not_found_as(r.kind, id))
    }

    /// Removes one metadata key of an item; a key that is already gone is not an error.
    pub(crate) fn delete_metadata(&self, r: &Resource, id: &str, key: &str) -> Result<()> {
        let path = format!("{}/metadata/{}", r.item(id)?, seg("metadata key", key)?);
        match self.call(Call::delete(r.service, path)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() && self.get::<IgnoredAny>(r, id).is_ok() => Ok(()),
            Err(e) => Err(e.not_found_as(r.kind, id)),
        }
    }
}

impl Connection {
    /// Waits until item `id` has one of `targets`; fails fast on `errors` with the item's fault,
    /// or else what `fault_on_error` finds (Cinder's user messages).
    pub(crate) fn wait_for<T: DeserializeOwned + Status>(
        &self,
        r: &Resource,
        id: &str,
        targets: &[&str],
        errors: &[&str],
        timeout: Duration,
        mut fault_on_error: impl FnMut() -> Option<String>,
    ) -> Result<T> {
        wait_status(
            r.kind,
            id,
            targets,
            errors,
            timeout,
            || {
                let value: T = self.get(r, id)?;
                Ok(Observed {
                    status: value.status().to_string(),
                    fault: value.fault(),
                    value,
                })
            },
            |_| fault_on_error(),
        )
    }

    /// Waits until item `id` is gone (404, or status `deleted`); fails fast when it goes to one
    /// of `errors` instead, with its fault as [`Connection::wait_for`] finds it.
    pub(crate) fn wait_for_gone<T: DeserializeOwned + Status>(
        &self,
        r: &Resource,
        id: &str,
        errors: &[&str],
        timeout: Duration,
        mut fault_on_error: impl FnMut() -> Option<String>,
    ) -> Result<()> {
        wait_deleted(r.kind, id, errors, timeout, || {
            let value: T = self.get(r, id)?;
            let status = value.deletion_status().to_string();
            let failed = errors.iter().any(|e| e.eq_ignore_ascii_case(&status));
            let fault = value
                .fault()
                .or_else(|| failed.then(&mut fault_on_error).flatten());
            Ok((status, fault))
        })
    }

    /// Waits until a server, volume, snapshot or image has one of `targets` (compared without
    /// case); fails fast on `errors` (pass `kind.error_statuses()` for the usual ones) with the
    /// resource's fault message, and with [`crate::Error::Timeout`] after `timeout`. Returns the status
    /// reached. Polls with backoff: 0.1 s growing to 2 s.
    pub fn wait_for_status(
        &self,
        kind: ResourceKind,
        id: &str,
        targets: &[&str],
        errors: &[&str],
        timeout: Duration,
    ) -> Result<String> {
        let messages = || self.block_storage().latest_message(id);
        Ok(match kind {
            ResourceKind::Server => {
                self.wait_for::<Server>(&SERVERS, id, targets, errors, timeout, || None)?
                    .status
            }
            ResourceKind::Volume => {
                self.wait_for::<Volume>(&VOLUMES, id, targets, errors, timeout, messages)?
                    .status
            }
            ResourceKind::Snapshot => {
                self.wait_for::<Snapshot>(&SNAPSHOTS, id, targets, errors, timeout, messages)?
                    .status
            }
            ResourceKind::Image => {
                self.wait_for::<Image>(&IMAGES, id, targets, errors, timeout, || None)?
                    .status
            }
        })
    }

    /// Waits until a server, volume, snapshot or image is gone (404); fails fast when it goes to
    /// an error status instead, and with [`crate::Error::Timeout`] after `timeout`.
    pub fn wait_for_deleted(&self, kind: ResourceKind, id: &str, timeout: Duration) -> Result<()> {
        match kind {
            ResourceKind::Server => self.compute().wait_for_server_deleted(id, timeout),
            ResourceKind::Volume => self.block_storage().wait_for_volume_deleted(id, timeout),
            ResourceKind::Snapshot => self.block_storage().wait_for_snapshot_deleted(id, timeout),
            ResourceKind::Image => self.image().wait_for_image_deleted(id, timeout),
        }
    }
}

/// `{key: body}`, serialized without an intermediate `Value` so the body keeps its field order.
struct Wrapped<'a, B> {
    key: &'static str,
    body: &'a B,
}

impl<B: Serialize> Serialize for Wrapped<'_, B> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.key, self.body)?;
        m.end()
    }
}
