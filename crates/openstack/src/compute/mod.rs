//! Compute (Nova v2.1): servers, actions, volume attachments, interfaces, flavors, keypairs.
//!
//! The calls are here; the server model and the create request are in [`server`], the other
//! models in [`types`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::catalog::Service;
use crate::common::{Query, ResourceKind};
use crate::connection::{seg, Call, Connection};
use crate::error::{Error, Result};
use crate::microversion as mv;
use crate::resource::{FLAVORS, KEYPAIRS, SERVERS};

mod server;
mod types;

pub use server::{
    Addresses, AttachedVolume, BlockDeviceMapping, IdRef, NameRef, NewServer, Server,
    ServerAddress, ServerFault, ServerFlavor, ServerNetwork, UserData,
};
pub use types::{
    AvailabilityZone, FixedIp, Flavor, InterfaceAttachment, Keypair, NewFlavor, VolumeAttachment,
};

/// Compute calls; from [`Connection::compute`].
#[derive(Clone, Copy)]
pub struct ComputeApi<'a> {
    conn: &'a Connection,
}

const S: Service = Service::Compute;

impl<'a> ComputeApi<'a> {
    pub(crate) fn new(conn: &'a Connection) -> ComputeApi<'a> {
        ComputeApi { conn }
    }

    // ---- servers ----

    /// All servers of the project (`GET /servers/detail`, every page).
    pub fn list_servers(&self) -> Result<Vec<Server>> {
        self.list_servers_with(&Query::new())
    }

    /// Servers matching Nova's filters (`name` is a regular expression to Nova, `status`,
    /// `all_tenants`, `tags`, ...), every page.
    pub fn list_servers_with(&self, filters: &Query) -> Result<Vec<Server>> {
        self.conn.list(&SERVERS, filters)
    }

    /// A server by ID; [`crate::Error::NotFound`] if there is none.
    pub fn get_server(&self, id: &str) -> Result<Server> {
        self.conn.get(&SERVERS, id)
    }

    /// A server by ID or exact name.
    pub fn find_server(&self, name_or_id: &str) -> Result<Option<Server>> {
        self.conn.find(
            &SERVERS,
            name_or_id,
            &name_filter(name_or_id),
            |s: &Server| &s.name,
        )
    }

    /// Creates a server and returns it as Nova shows it right after (usually `BUILD`). The
    /// microversion is the negotiated ceiling, at least [`NewServer::needed_microversion`].
    pub fn create_server(&self, new: &NewServer) -> Result<Server> {
        let feature = if !new.tags.is_empty() {
            "server tags at create"
        } else {
            "server create"
        };
        let version = self
            .conn
            .microversion(S, new.needed_microversion(), feature)?;
        let call = Call::post(S, "/servers")
            .microversion(version)
            .json(&new.to_body(version))?;
        let reply = self.conn.call(call)?;
        let v: Value = reply.json()?;
        let id = v
            .get("server")
            .and_then(|s| s.get("id"))
            .and_then(|i| i.as_str())
            .ok_or_else(|| reply.decode_error("no server.id in the answer".into()))?
            .to_string();
        self.get_server(&id)
    }

    /// Deletes a server (`DELETE /servers/{id}`); returns at once, see [`ComputeApi::wait_for_server_deleted`].
    pub fn delete_server(&self, id: &str) -> Result<()> {
        self.conn.delete(&SERVERS, id)
    }

    fn action(&self, id: &str, body: Value) -> Result<crate::connection::Reply> {
        self.conn
            .call(Call::post(S, format!("/servers/{}/action", seg("server", id)?)).json(&body)?)
            .map_err(|e| e.not_found_as("server", id))
    }

    /// Stops a server (`os-stop`); wait for `SHUTOFF` with [`ComputeApi::wait_for_server`].
    pub fn stop_server(&self, id: &str) -> Result<()> {
        self.action(id, json!({"os-stop": null})).map(drop)
    }

    /// Starts a server (`os-start`); wait for `ACTIVE` with [`ComputeApi::wait_for_server`].
    pub fn start_server(&self, id: &str) -> Result<()> {
        self.action(id, json!({"os-start": null})).map(drop)
    }

    /// Creates an image of a server (`createImage`) and returns the image ID (from the body at
    /// 2.45+, from the `Location` header before). Of a volume-backed server, Nova snapshots the
    /// volumes and makes an image that refers to the snapshots.
    pub fn create_server_image(
        &self,
        id: &str,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String> {
        let version = self.conn.microversion(S, mv::COMPUTE_BASE, "createImage")?;
        let call = Call::post(S, format!("/servers/{}/action", seg("server", id)?))
            .microversion(version)
            .json(&json!({"createImage": {"name": name, "metadata": metadata}}))?;
        let reply = self
            .conn
            .call(call)
            .map_err(|e| e.not_found_as("server", id))?;
        if let Ok(v) = reply.json::<Value>() {
            if let Some(i) = v.get("image_id").and_then(|i| i.as_str()) {
                return Ok(i.to_string());
            }
        }
        reply
            .header("location")
            .and_then(|l| {
                l.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .map(str::to_string)
            })
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                reply.decode_error(
                    "createImage answered neither image_id nor a Location header".into(),
                )
            })
    }

    /// Waits until the server has one of `statuses` (e.g. `["ACTIVE"]`); fails fast on `ERROR`
    /// with the server's fault message.
    pub fn wait_for_server(
        &self,
        id: &str,
        statuses: &[&str],
        timeout: Duration,
    ) -> Result<Server> {
        self.conn.wait_for(
            &SERVERS,
            id,
            statuses,
            ResourceKind::Server.error_statuses(),
            timeout,
            || None,
        )
    }

    /// Waits until the server is gone (404).
    pub fn wait_for_server_deleted(&self, id: &str, timeout: Duration) -> Result<()> {
        self.conn.wait_for_gone::<Server>(
            &SERVERS,
            id,
            ResourceKind::Server.delete_error_statuses(),
            timeout,
            || None,
        )
    }

    /// Sets metadata keys of a server (others are kept).
    pub fn set_server_metadata(
        &self,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        self.conn.set_metadata(&SERVERS, id, metadata)
    }

    /// Removes one metadata key of a server; a missing key is not an error.
    pub fn delete_server_metadata(&self, id: &str, key: &str) -> Result<()> {
        self.conn.delete_metadata(&SERVERS, id, key)
    }

    /// Adds a tag to a server (2.26+).
    pub fn add_server_tag(&self, id: &str, tag: &str) -> Result<()> {
        let version = self
            .conn
            .microversion(S, mv::Microversion::new(2, 26), "server tags")?;
        self.conn
            .call(
                Call::put(
                    S,
                    format!("/servers/{}/tags/{}", seg("server", id)?, seg("tag", tag)?),
                )
                .microversion(version),
            )
            .map(drop)
    }

    // ---- volume attachments and interfaces ----

    /// Volumes attached to a server.
    pub fn list_volume_attachments(&self, server_id: &str) -> Result<Vec<VolumeAttachment>> {
        self.conn
            .list_all(
                Call::get(
                    S,
                    format!(
                        "/servers/{}/os-volume_attachments",
                        seg("server", server_id)?
                    ),
                ),
                "volumeAttachments",
            )
            .map_err(|e| e.not_found_as("server", server_id))
    }

    /// Attaches a volume to a server. `device` is a hint Nova may ignore;
    /// `delete_on_termination` needs 2.79. Wait for the volume's `in-use` on the Cinder side.
    pub fn attach_volume(
        &self,
        server_id: &str,
        volume_id: &str,
        device: Option<&str>,
        delete_on_termination: Option<bool>,
    ) -> Result<VolumeAttachment> {
        let needed = if delete_on_termination.is_some() {
            mv::COMPUTE_ATTACH_DELETE_ON_TERMINATION
        } else {
            mv::COMPUTE_BASE
        };
        let version =
            self.conn
                .microversion(S, needed, "volume attach with delete_on_termination")?;
        let mut va = json!({"volumeId": volume_id});
        if let Some(d) = device {
            va["device"] = json!(d);
        }
        if let Some(d) = delete_on_termination {
            va["delete_on_termination"] = json!(d);
        }
        self.conn.call_key(
            Call::post(
                S,
                format!(
                    "/servers/{}/os-volume_attachments",
                    seg("server", server_id)?
                ),
            )
            .microversion(version)
            .json(&json!({"volumeAttachment": va}))?,
            "volumeAttachment",
        )
    }

    /// Sets whether an attached volume is deleted with the server (microversion 2.85).
    pub fn set_delete_on_termination(
        &self,
        server_id: &str,
        volume_id: &str,
        delete_on_termination: bool,
    ) -> Result<()> {
        let version = self.conn.microversion(
            S,
            mv::COMPUTE_UPDATE_DELETE_ON_TERMINATION,
            "changing delete_on_termination of an attached volume",
        )?;
        self.conn
            .call(
                Call::put(
                    S,
                    format!(
                        "/servers/{}/os-volume_attachments/{}",
                        seg("server", server_id)?,
                        seg("volume", volume_id)?
                    ),
                )
                .microversion(version)
                .json(&json!({"volumeAttachment": {
                    "volumeId": volume_id,
                    "delete_on_termination": delete_on_termination,
                }}))?,
            )
            .map(drop)
            .map_err(|e| {
                e.not_found_as(
                    "volume attachment",
                    &format!("{volume_id} on server {server_id}"),
                )
            })
    }

    /// Detaches a volume from a server; wait for the volume's `available` on the Cinder side.
    pub fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<()> {
        self.conn
            .call(Call::delete(
                S,
                format!(
                    "/servers/{}/os-volume_attachments/{}",
                    seg("server", server_id)?,
                    seg("volume", volume_id)?
                ),
            ))
            .map(drop)
            .map_err(|e| {
                e.not_found_as(
                    "volume attachment",
                    &format!("{volume_id} on server {server_id}"),
                )
            })
    }

    /// Ports attached to a server.
    pub fn list_interfaces(&self, server_id: &str) -> Result<Vec<InterfaceAttachment>> {
        self.conn
            .list_all(
                Call::get(
                    S,
                    format!("/servers/{}/os-interface", seg("server", server_id)?),
                ),
                "interfaceAttachments",
            )
            .map_err(|e| e.not_found_as("server", server_id))
    }

    // ---- flavors ----

    /// Every flavor the project may use, public and private (`is_public=None`), every page.
    pub fn list_flavors(&self) -> Result<Vec<Flavor>> {
        self.list_flavors_with(&every_flavor())
    }

    /// Flavors matching Nova's filters (`is_public`, `minRam`, `minDisk`), every page.
    pub fn list_flavors_with(&self, filters: &Query) -> Result<Vec<Flavor>> {
        self.conn.list(&FLAVORS, filters)
    }

    /// A flavor by ID.
    pub fn get_flavor(&self, id: &str) -> Result<Flavor> {
        self.conn.get(&FLAVORS, id)
    }

    /// A flavor by ID or exact name (Nova cannot filter flavors by name: every flavor is listed).
    pub fn find_flavor(&self, name_or_id: &str) -> Result<Option<Flavor>> {
        self.conn
            .find(&FLAVORS, name_or_id, &every_flavor(), |f: &Flavor| &f.name)
    }

    /// Creates a flavor (admin).
    pub fn create_flavor(&self, new: &NewFlavor) -> Result<Flavor> {
        let needed = if new.description.is_some() {
            mv::COMPUTE_FLAVOR_DESCRIPTION
        } else {
            mv::COMPUTE_BASE
        };
        let version = self.conn.microversion(S, needed, "flavor description")?;
        self.conn.create(&FLAVORS, new, Some(version))
    }

    /// Sets extra specs of a flavor (admin).
    pub fn set_flavor_extra_specs(
        &self,
        id: &str,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        self.conn
            .call_key(
                Call::post(S, format!("/flavors/{}/os-extra_specs", seg("flavor", id)?))
                    .json(&json!({"extra_specs": specs}))?,
                "extra_specs",
            )
            .map_err(|e| e.not_found_as("flavor", id))
    }

    /// Deletes a flavor (admin).
    pub fn delete_flavor(&self, id: &str) -> Result<()> {
        self.conn.delete(&FLAVORS, id)
    }

    // ---- keypairs ----

    /// The user's keypairs, every page.
    pub fn list_keypairs(&self) -> Result<Vec<Keypair>> {
        #[derive(Deserialize)]
        struct Wrap {
            keypair: Keypair,
        }
        let wrapped: Vec<Wrap> = self.conn.list(&KEYPAIRS, &Query::new())?;
        Ok(wrapped.into_iter().map(|w| w.keypair).collect())
    }

    /// A keypair by name.
    pub fn get_keypair(&self, name: &str) -> Result<Keypair> {
        self.conn.get(&KEYPAIRS, name)
    }

    /// A keypair by name, `None` if there is none.
    pub fn find_keypair(&self, name: &str) -> Result<Option<Keypair>> {
        match self.get_keypair(name) {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
            // Nova allows `.` and `..` as keypair names, which no path can hold: list instead.
            Err(Error::BadSegment { .. }) => {
                Ok(self.list_keypairs()?.into_iter().find(|k| k.name == name))
            }
            Err(e) => Err(e),
        }
    }

    /// Imports a public key as a keypair. `key_type` (`ssh`, `x509`) needs 2.2.
    pub fn create_keypair(
        &self,
        name: &str,
        public_key: &str,
        key_type: Option<&str>,
    ) -> Result<Keypair> {
        let needed = if key_type.is_some() {
            mv::COMPUTE_KEYPAIR_TYPE
        } else {
            mv::COMPUTE_BASE
        };
        let version = self.conn.microversion(S, needed, "keypair type")?;
        let mut kp = json!({"name": name, "public_key": public_key});
        if let Some(t) = key_type {
            kp["type"] = json!(t);
        }
        self.conn.create(&KEYPAIRS, &kp, Some(version))
    }

    /// Deletes a keypair.
    pub fn delete_keypair(&self, name: &str) -> Result<()> {
        self.conn.delete(&KEYPAIRS, name)
    }

    // ---- availability zones ----

    /// Compute availability zones.
    pub fn list_availability_zones(&self) -> Result<Vec<AvailabilityZone>> {
        self.conn.call_key(
            Call::get(S, "/os-availability-zone"),
            "availabilityZoneInfo",
        )
    }
}

/// Nova lists only public flavors unless asked for `is_public=None`.
fn every_flavor() -> Query {
    Query::new().with("is_public", "None")
}

/// Nova's `name` filter is a regular expression (a substring match for plain names): filter by
/// the plain name, or not at all when the name has regex metacharacters. Callers then keep exact
/// matches only.
fn name_filter(name: &str) -> Query {
    if name.chars().any(|c| "\\.^$|?*+()[]{}".contains(c)) {
        Query::new()
    } else {
        Query::new().with("name", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn other_models() {
        let f: Flavor = serde_json::from_value(json!({"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1, "swap": "", "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": true})).unwrap();
        assert_eq!(f.swap, 0);
        assert!(f.is_public);
        let a: VolumeAttachment = serde_json::from_value(json!({"volumeId": "v", "serverId": "s", "device": "/dev/vdb", "attachment_id": "a", "bdm_uuid": "b", "delete_on_termination": false})).unwrap();
        assert_eq!(a.attachment_id.as_deref(), Some("a"));
        let k: Keypair = serde_json::from_value(json!({"name": "k", "public_key": "ssh-ed25519 AAA", "fingerprint": "f", "type": "ssh"})).unwrap();
        assert_eq!(k.key_type.as_deref(), Some("ssh"));
        assert_eq!(name_filter("a.b(1)"), Query::new());
        assert_eq!(name_filter("web-1"), Query::new().with("name", "web-1"));
    }
}
