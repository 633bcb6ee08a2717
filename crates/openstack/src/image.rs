//! Image (Glance v2): images, their data, properties and tags.

use std::io::{Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::catalog::Service;
use crate::common::{Query, ResourceKind};
use crate::connection::{seg, Body, Call, Connection};
use crate::de::{lenient_bool, null_default};
use crate::error::{Error, Result};
use crate::resource::{Status, IMAGES};

/// A Glance image. Custom properties are top-level keys in the API; here they are in
/// `properties`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Image {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// `queued`, `saving`, `active`, `killed`, `deleted`, `pending_delete`, `deactivated`, `uploading`, `importing`.
    #[serde(default)]
    pub status: String,
    /// `public`, `private`, `shared`, `community`.
    #[serde(default)]
    pub visibility: Option<String>,
    /// `qcow2`, `raw`, ...
    #[serde(default)]
    pub disk_format: Option<String>,
    /// `bare`, ...
    #[serde(default)]
    pub container_format: Option<String>,
    /// Size of the data in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Virtual size in bytes.
    #[serde(default)]
    pub virtual_size: Option<u64>,
    /// Minimum disk in GiB.
    #[serde(default)]
    pub min_disk: u64,
    /// Minimum RAM in MiB.
    #[serde(default)]
    pub min_ram: u64,
    /// MD5 of the data.
    #[serde(default)]
    pub checksum: Option<String>,
    /// Hash algorithm of `os_hash_value`.
    #[serde(default)]
    pub os_hash_algo: Option<String>,
    /// Multihash of the data.
    #[serde(default)]
    pub os_hash_value: Option<String>,
    /// Owner project.
    #[serde(default)]
    pub owner: Option<String>,
    /// Protected from deletion.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub protected: bool,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Updated.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Custom properties and every other key (`file`, `schema`, `self`, `os_distro`, ...).
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

impl Status for Image {
    fn status(&self) -> &str {
        &self.status
    }
}

impl Image {
    /// A custom property as a string.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(|v| v.as_str())
    }
}

/// What [`ImageApi::create_image`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewImage {
    /// Name.
    pub name: String,
    /// `raw`, `qcow2`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<String>,
    /// `bare`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_format: Option<String>,
    /// `private` (Glance's default), `public` (admin), `shared`, `community`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    /// Minimum disk in GiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_disk: Option<u64>,
    /// Minimum RAM in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ram: Option<u64>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Custom properties (string values).
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

/// Image calls; from [`Connection::image`].
#[derive(Clone, Copy)]
pub struct ImageApi<'a> {
    conn: &'a Connection,
}

const S: Service = Service::Image;
const PATCH_CONTENT_TYPE: &str = "application/openstack-images-v2.1-json-patch";

/// The JSON patch that turns `current` properties into `current + set - remove`: `add` for new
/// keys, `replace` for existing ones, `remove` for existing ones to drop.
pub fn properties_patch(current: &Image, set: &Map<String, Value>, remove: &[&str]) -> Vec<Value> {
    let has = |k: &str| {
        current.properties.contains_key(k)
            || match k {
                "name" | "visibility" | "min_disk" | "min_ram" | "protected" | "tags" => true,
                "disk_format" => current.disk_format.is_some(),
                "container_format" => current.container_format.is_some(),
                _ => false,
            }
    };
    let mut ops = Vec::new();
    for (k, v) in set {
        let op = if has(k) { "replace" } else { "add" };
        ops.push(json!({"op": op, "path": format!("/{}", pointer_escape(k)), "value": v}));
    }
    for k in remove {
        if current.properties.contains_key(*k) && !set.contains_key(*k) {
            ops.push(json!({"op": "remove", "path": format!("/{}", pointer_escape(k))}));
        }
    }
    ops
}

fn pointer_escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

impl<'a> ImageApi<'a> {
    pub(crate) fn new(conn: &'a Connection) -> ImageApi<'a> {
        ImageApi { conn }
    }

    /// Every image the project sees, every page.
    pub fn list_images(&self) -> Result<Vec<Image>> {
        self.list_images_with(&Query::new())
    }

    /// Images matching Glance's filters (`name`, `visibility`, `status`, `owner`, `tag` —
    /// repeat it for several —, and `<property>=<value>`), every page.
    pub fn list_images_with(&self, filters: &Query) -> Result<Vec<Image>> {
        self.conn.list(&IMAGES, filters)
    }

    /// An image by ID.
    pub fn get_image(&self, id: &str) -> Result<Image> {
        self.conn.get(&IMAGES, id)
    }

    /// An image by ID or exact name.
    pub fn find_image(&self, name_or_id: &str) -> Result<Option<Image>> {
        let by_name = Query::new().with("name", name_or_id);
        self.conn
            .find(&IMAGES, name_or_id, &by_name, |i: &Image| &i.name)
    }

    /// Creates an image record (status `queued`); upload data with [`ImageApi::upload_image_data`].
    pub fn create_image(&self, new: &NewImage) -> Result<Image> {
        self.conn.create(&IMAGES, new, None)
    }

    /// Uploads the image data (`PUT /images/{id}/file`), streamed from `data`. With `size` the
    /// request has a Content-Length, else it is chunked. Not retried (the stream is consumed).
    pub fn upload_image_data<R: Read + Send + 'static>(
        &self,
        id: &str,
        data: R,
        size: Option<u64>,
    ) -> Result<()> {
        let body = match size {
            Some(n) => reqwest::blocking::Body::sized(data, n),
            None => reqwest::blocking::Body::new(data),
        };
        let mut call = Call::put(S, format!("/images/{}/file", seg("image", id)?));
        call.body = Body::Stream(Some(body));
        call.data_transfer = true;
        self.conn
            .call(call)
            .map(drop)
            .map_err(|e| e.not_found_as("image", id))
    }

    /// Downloads the image data (`GET /images/{id}/file`) into `out`; returns the byte count
    /// (0 for an image without data).
    pub fn download_image_data(&self, id: &str, out: &mut dyn Write) -> Result<u64> {
        let mut call = Call::get(S, format!("/images/{}/file", seg("image", id)?));
        call.data_transfer = true;
        let mut resp = self
            .conn
            .send(call)
            .map_err(|e| e.not_found_as("image", id))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("reading the data of image {id} after {total} bytes"),
                        source: e,
                    })
                }
            };
            out.write_all(&buf[..n]).map_err(|e| Error::Io {
                context: format!("writing the data of image {id}"),
                source: e,
            })?;
            total += n as u64;
        }
        out.flush().map_err(|e| Error::Io {
            context: format!("writing the data of image {id}"),
            source: e,
        })?;
        Ok(total)
    }

    /// Deletes an image.
    pub fn delete_image(&self, id: &str) -> Result<()> {
        self.conn.delete(&IMAGES, id)
    }

    /// Sets properties (and top-level attributes such as `name`, `min_disk`) and removes
    /// properties, with one JSON patch. Returns the updated image.
    pub fn update_image_properties(
        &self,
        id: &str,
        set: &Map<String, Value>,
        remove: &[&str],
    ) -> Result<Image> {
        let current = self.get_image(id)?;
        let ops = properties_patch(&current, set, remove);
        if ops.is_empty() {
            return Ok(current);
        }
        let bytes = serde_json::to_vec(&ops).map_err(|e| Error::Io {
            context: "encoding an image patch".into(),
            source: e.into(),
        })?;
        let mut call = Call::new(
            S,
            reqwest::Method::PATCH,
            format!("/images/{}", seg("image", id)?),
        );
        call.body = Body::Bytes(bytes, PATCH_CONTENT_TYPE);
        self.conn
            .call_json(call)
            .map_err(|e| e.not_found_as("image", id))
    }

    /// Adds a tag.
    pub fn add_image_tag(&self, id: &str, tag: &str) -> Result<()> {
        self.conn
            .call(Call::put(
                S,
                format!("/images/{}/tags/{}", seg("image", id)?, seg("tag", tag)?),
            ))
            .map(drop)
            .map_err(|e| e.not_found_as("image", id))
    }

    /// Waits until the image has one of `statuses` (e.g. `["active"]`); fails fast on `killed`.
    pub fn wait_for_image(&self, id: &str, statuses: &[&str], timeout: Duration) -> Result<Image> {
        self.conn.wait_for(
            &IMAGES,
            id,
            statuses,
            ResourceKind::Image.error_statuses(),
            timeout,
            || None,
        )
    }

    /// Waits until the image is gone (404 or `deleted`).
    pub fn wait_for_image_deleted(&self, id: &str, timeout: Duration) -> Result<()> {
        self.conn.wait_for_gone::<Image>(
            &IMAGES,
            id,
            ResourceKind::Image.delete_error_statuses(),
            timeout,
            || None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_model_keeps_properties() {
        let i: Image = serde_json::from_value(json!({
            "id": "i1", "name": "cirros", "status": "active", "visibility": "public", "disk_format": "qcow2",
            "container_format": "bare", "size": 1000, "virtual_size": null, "min_disk": 0, "min_ram": 0,
            "protected": false, "tags": ["t"], "owner": "p", "os_distro": "cirros", "osm_sim_conversion_host": "true",
            "file": "/v2/images/i1/file", "schema": "/v2/schemas/image"
        }))
        .unwrap();
        assert_eq!(i.property("os_distro"), Some("cirros"));
        assert_eq!(i.property("osm_sim_conversion_host"), Some("true"));
        let back = serde_json::to_value(&i).unwrap();
        assert_eq!(back["os_distro"], "cirros");
        assert_eq!(back["name"], "cirros");
    }

    #[test]
    fn new_image_body_is_flat() {
        let mut n = NewImage {
            name: "x".into(),
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            ..Default::default()
        };
        n.properties.insert("hw_disk_bus".into(), json!("scsi"));
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"name": "x", "disk_format": "raw", "container_format": "bare", "hw_disk_bus": "scsi"})
        );
    }

    #[test]
    fn patch_ops() {
        let i: Image = serde_json::from_value(json!({"id": "i", "name": "n", "status": "active", "os_distro": "x", "a/b": "1", "gone": "1"})).unwrap();
        let mut set = Map::new();
        set.insert("os_distro".into(), json!("y"));
        set.insert("new_key".into(), json!("v"));
        set.insert("name".into(), json!("n2"));
        let ops = properties_patch(&i, &set, &["gone", "a/b", "missing"]);
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "path": "/name", "value": "n2"}),
                json!({"op": "add", "path": "/new_key", "value": "v"}),
                json!({"op": "replace", "path": "/os_distro", "value": "y"}),
                json!({"op": "remove", "path": "/gone"}),
                json!({"op": "remove", "path": "/a~1b"}),
            ]
        );
    }
}
