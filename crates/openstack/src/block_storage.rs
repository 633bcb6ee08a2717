//! Block Storage (Cinder v3): volumes, volume actions, snapshots, volume types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::catalog::Service;
use crate::common::{Query, ResourceKind};
use crate::connection::{seg, Call, Connection};
use crate::de::{lenient_bool, null_default};
use crate::error::Result;
use crate::microversion as mv;
use crate::resource::{Status, SNAPSHOTS, VOLUMES, VOLUME_TYPES};

/// An attachment as the volume reports it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct VolumeAttachmentInfo {
    /// Server the volume is attached to.
    #[serde(default)]
    pub server_id: Option<String>,
    /// Cinder attachment ID.
    #[serde(default)]
    pub attachment_id: Option<String>,
    /// Device inside the guest, as Nova guessed it.
    #[serde(default)]
    pub device: Option<String>,
    /// Compute host.
    #[serde(default)]
    pub host_name: Option<String>,
    /// When.
    #[serde(default)]
    pub attached_at: Option<String>,
    /// Other keys (`id`, `volume_id`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A Cinder volume.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Volume {
    /// ID.
    pub id: String,
    /// Name (may be empty).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `creating`, `available`, `in-use`, `error`, ...
    #[serde(default)]
    pub status: String,
    /// Size in GiB.
    #[serde(default)]
    pub size: u64,
    /// Volume type name.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Bootable (`"true"` in the API).
    #[serde(rename = "bootable", default, deserialize_with = "lenient_bool")]
    pub is_bootable: bool,
    /// Metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, String>,
    /// Image metadata (`volume_image_metadata`) of a volume made from an image.
    #[serde(default, deserialize_with = "null_default")]
    pub volume_image_metadata: BTreeMap<String, String>,
    /// Attachments.
    #[serde(default, deserialize_with = "null_default")]
    pub attachments: Vec<VolumeAttachmentInfo>,
    /// Source snapshot.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Source volume.
    #[serde(default)]
    pub source_volid: Option<String>,
    /// Owner project (`os-vol-tenant-attr:tenant_id`).
    #[serde(rename = "os-vol-tenant-attr:tenant_id", default)]
    pub project_id: Option<String>,
    /// Owner user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Backend host (admins).
    #[serde(rename = "os-vol-host-attr:host", default)]
    pub host: Option<String>,
    /// Encrypted.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub encrypted: bool,
    /// Multi-attach.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub multiattach: bool,
    /// Migration status.
    #[serde(default)]
    pub migration_status: Option<String>,
    /// Created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Updated.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Status for Volume {
    fn status(&self) -> &str {
        &self.status
    }
}

/// What [`BlockStorageApi::create_volume`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewVolume {
    /// Size in GiB (may be omitted with a snapshot or source volume; give it anyway).
    pub size: u64,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Volume type name or ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Availability zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Create from this snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Create from this image.
    #[serde(rename = "imageRef", skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    /// Clone this volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_volid: Option<String>,
    /// Metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Other keys of the `volume` object.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A Cinder snapshot.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Snapshot {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `creating`, `available`, `error`, ...
    #[serde(default)]
    pub status: String,
    /// Size in GiB.
    #[serde(default)]
    pub size: u64,
    /// Source volume.
    #[serde(default)]
    pub volume_id: String,
    /// Metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, String>,
    /// Progress (`os-extended-snapshot-attributes:progress`).
    #[serde(rename = "os-extended-snapshot-attributes:progress", default)]
    pub progress: Option<String>,
    /// Owner project.
    #[serde(rename = "os-extended-snapshot-attributes:project_id", default)]
    pub project_id: Option<String>,
    /// Created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Updated.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Status for Snapshot {
    fn status(&self) -> &str {
        &self.status
    }
}

/// A volume type.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct VolumeType {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Public.
    #[serde(
        rename = "os-volume-type-access:is_public",
        default = "yes",
        deserialize_with = "lenient_bool"
    )]
    pub is_public: bool,
    /// Extra specs (admins).
    #[serde(default, deserialize_with = "null_default")]
    pub extra_specs: BTreeMap<String, String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

/// Block storage calls; from [`Connection::block_storage`].
#[derive(Clone, Copy)]
pub struct BlockStorageApi<'a> {
    conn: &'a Connection,
}

const S: Service = Service::BlockStorage;

/// The value of Cinder's `metadata` filter for `metadata` (a JSON object).
pub fn metadata_filter(metadata: &BTreeMap<String, String>) -> String {
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".into())
}

impl<'a> BlockStorageApi<'a> {
    pub(crate) fn new(conn: &'a Connection) -> BlockStorageApi<'a> {
        BlockStorageApi { conn }
    }

    fn volume_action(&self, id: &str, body: Value) -> Result<()> {
        self.conn
            .call(Call::post(S, format!("/volumes/{}/action", seg("volume", id)?)).json(&body)?)
            .map(drop)
            .map_err(|e| e.not_found_as("volume", id))
    }

    // ---- volumes ----

    /// All volumes of the project (`GET /volumes/detail`, every page).
    pub fn list_volumes(&self) -> Result<Vec<Volume>> {
        self.list_volumes_with(&Query::new())
    }

    /// Volumes matching Cinder's filters (`name`, `status`, `metadata` as a JSON object — see
    /// [`metadata_filter`] —, `all_tenants`, ...), every page.
    pub fn list_volumes_with(&self, filters: &Query) -> Result<Vec<Volume>> {
        self.conn.list(&VOLUMES, filters)
    }

    /// A volume by ID.
    pub fn get_volume(&self, id: &str) -> Result<Volume> {
        self.conn.get(&VOLUMES, id)
    }

    /// A volume by ID or exact name.
    pub fn find_volume(&self, name_or_id: &str) -> Result<Option<Volume>> {
        let by_name = Query::new().with("name", name_or_id);
        self.conn
            .find(&VOLUMES, name_or_id, &by_name, |v: &Volume| &v.name)
    }

    /// Creates a volume (status `creating`; wait for `available`).
    pub fn create_volume(&self, new: &NewVolume) -> Result<Volume> {
        self.conn.create(&VOLUMES, new, None)
    }

    /// Deletes a volume; `cascade` also deletes its snapshots.
    pub fn delete_volume(&self, id: &str, cascade: bool) -> Result<()> {
        let query = Query::new().with_opt("cascade", cascade.then_some("true"));
        self.conn.delete_with(&VOLUMES, id, &query)
    }

    /// Sets metadata keys (others are kept); returns all metadata.
    pub fn set_volume_metadata(
        &self,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        self.conn.set_metadata(&VOLUMES, id, metadata)
    }

    /// Removes one metadata key of a volume; a missing key is not an error.
    pub fn delete_volume_metadata(&self, id: &str, key: &str) -> Result<()> {
        self.conn.delete_metadata(&VOLUMES, id, key)
    }

    /// Sets the name and/or description.
    pub fn update_volume(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Volume> {
        let mut v = Map::new();
        if let Some(n) = name {
            v.insert("name".into(), json!(n));
        }
        if let Some(d) = description {
            v.insert("description".into(), json!(d));
        }
        self.conn.update(&VOLUMES, id, &v)
    }

    /// `os-set_bootable`.
    pub fn set_volume_bootable(&self, id: &str, bootable: bool) -> Result<()> {
        self.volume_action(id, json!({"os-set_bootable": {"bootable": bootable}}))
    }

    /// `os-set_image_metadata`: sets keys of the volume's image metadata.
    pub fn set_volume_image_metadata(
        &self,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.volume_action(id, json!({"os-set_image_metadata": {"metadata": metadata}}))
    }

    /// `os-reset_status` (admin): forces `status` (and `attach_status`, `migration_status`).
    pub fn reset_volume_status(
        &self,
        id: &str,
        status: &str,
        attach_status: Option<&str>,
        migration_status: Option<&str>,
    ) -> Result<()> {
        let mut r = json!({"status": status});
        if let Some(a) = attach_status {
            r["attach_status"] = json!(a);
        }
        if let Some(m) = migration_status {
            r["migration_status"] = json!(m);
        }
        self.volume_action(id, json!({"os-reset_status": r}))
    }

    /// Waits until the volume has one of `statuses`; fails fast on `error*` statuses, with
    /// Cinder's latest user message about the volume as the fault.
    pub fn wait_for_volume(
        &self,
        id: &str,
        statuses: &[&str],
        timeout: Duration,
    ) -> Result<Volume> {
        self.conn.wait_for(
            &VOLUMES,
            id,
            statuses,
            ResourceKind::Volume.error_statuses(),
            timeout,
            || self.latest_message(id),
        )
    }

    /// Waits until the volume is gone (404); fails fast on `error_deleting`.
    pub fn wait_for_volume_deleted(&self, id: &str, timeout: Duration) -> Result<()> {
        self.conn.wait_for_gone::<Volume>(
            &VOLUMES,
            id,
            ResourceKind::Volume.delete_error_statuses(),
            timeout,
            || self.latest_message(id),
        )
    }

    /// The newest Cinder user message about a resource (microversion 3.3+), if any. Best effort:
    /// any failure gives `None`.
    pub fn latest_message(&self, resource_id: &str) -> Option<String> {
        let version = self
            .conn
            .microversion(S, mv::BLOCK_STORAGE_MESSAGES, "user messages")
            .ok()?;
        let call = Call::get(S, "/messages")
            .query("resource_uuid", resource_id)
            .microversion(version);
        let v: Value = self.conn.call_json(call).ok()?;
        let msgs = v.get("messages")?.as_array()?;
        msgs.iter()
            .max_by_key(|m| {
                m.get("created_at")
                    .and_then(|c| c.as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .and_then(|m| {
                m.get("user_message")
                    .and_then(|u| u.as_str())
                    .map(str::to_string)
            })
    }

    // ---- snapshots ----

    /// All snapshots of the project, every page.
    pub fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        self.list_snapshots_with(&Query::new())
    }

    /// Snapshots matching Cinder's filters (`name`, `volume_id`, `status`, ...), every page.
    pub fn list_snapshots_with(&self, filters: &Query) -> Result<Vec<Snapshot>> {
        self.conn.list(&SNAPSHOTS, filters)
    }

    /// A snapshot by ID.
    pub fn get_snapshot(&self, id: &str) -> Result<Snapshot> {
        self.conn.get(&SNAPSHOTS, id)
    }

    /// A snapshot by ID or exact name.
    pub fn find_snapshot(&self, name_or_id: &str) -> Result<Option<Snapshot>> {
        let by_name = Query::new().with("name", name_or_id);
        self.conn
            .find(&SNAPSHOTS, name_or_id, &by_name, |s: &Snapshot| &s.name)
    }

    /// Creates a snapshot of a volume. `force` allows an in-use volume before microversion 3.66
    /// (from 3.66 on that needs no flag, and `force: true` is ignored); it is sent only when true.
    pub fn create_snapshot(
        &self,
        volume_id: &str,
        name: &str,
        description: Option<&str>,
        force: bool,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Snapshot> {
        let mut s = json!({"volume_id": volume_id, "name": name});
        if let Some(d) = description {
            s["description"] = json!(d);
        }
        if force {
            s["force"] = json!(true);
        }
        if !metadata.is_empty() {
            s["metadata"] = json!(metadata);
        }
        self.conn.create(&SNAPSHOTS, &s, None)
    }

    /// Deletes a snapshot.
    pub fn delete_snapshot(&self, id: &str) -> Result<()> {
        self.conn.delete(&SNAPSHOTS, id)
    }

    /// Waits until the snapshot has one of `statuses`; fails fast on `error`.
    pub fn wait_for_snapshot(
        &self,
        id: &str,
        statuses: &[&str],
        timeout: Duration,
    ) -> Result<Snapshot> {
        self.conn.wait_for(
            &SNAPSHOTS,
            id,
            statuses,
            ResourceKind::Snapshot.error_statuses(),
            timeout,
            || self.latest_message(id),
        )
    }

    /// Waits until the snapshot is gone (404); fails fast on `error_deleting`.
    pub fn wait_for_snapshot_deleted(&self, id: &str, timeout: Duration) -> Result<()> {
        self.conn.wait_for_gone::<Snapshot>(
            &SNAPSHOTS,
            id,
            ResourceKind::Snapshot.delete_error_statuses(),
            timeout,
            || None,
        )
    }

    // ---- volume types ----

    /// Volume types the project may use.
    pub fn list_volume_types(&self) -> Result<Vec<VolumeType>> {
        self.conn.list(&VOLUME_TYPES, &Query::new())
    }

    /// A volume type by ID.
    pub fn get_volume_type(&self, id: &str) -> Result<VolumeType> {
        self.conn.get(&VOLUME_TYPES, id)
    }

    /// A volume type by ID or exact name.
    pub fn find_volume_type(&self, name_or_id: &str) -> Result<Option<VolumeType>> {
        // Cinder cannot filter types by name: every type is listed.
        self.conn.find(
            &VOLUME_TYPES,
            name_or_id,
            &Query::new(),
            |t: &VolumeType| &t.name,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_model() {
        let v: Volume = serde_json::from_value(json!({
            "id": "v1", "name": null, "status": "in-use", "size": 10, "bootable": "true",
            "volume_type": "lvmdriver-1", "availability_zone": "nova",
            "attachments": [{"id": "v1", "attachment_id": "a1", "volume_id": "v1", "server_id": "s1", "host_name": "h", "device": "/dev/vdb", "attached_at": "2026-01-01T00:00:00.000000"}],
            "metadata": {"osm_transfer": "t1"},
            "volume_image_metadata": {"image_id": "i", "min_disk": "1"},
            "os-vol-tenant-attr:tenant_id": "p1", "encrypted": false, "multiattach": false,
            "links": []
        }))
        .unwrap();
        assert!(v.is_bootable);
        assert_eq!(v.name, "");
        assert_eq!(v.attachments[0].server_id.as_deref(), Some("s1"));
        assert_eq!(v.volume_image_metadata["min_disk"], "1");
        assert_eq!(v.project_id.as_deref(), Some("p1"));
        assert!(v.extra.contains_key("links"));
    }

    #[test]
    fn new_volume_body() {
        let n = NewVolume {
            size: 20,
            name: Some("x".into()),
            image_ref: Some("i".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"size": 20, "name": "x", "imageRef": "i"})
        );
        let mut m = BTreeMap::new();
        m.insert("osm_transfer".to_string(), "t 1".to_string());
        assert_eq!(metadata_filter(&m), r#"{"osm_transfer":"t 1"}"#);
    }
}
