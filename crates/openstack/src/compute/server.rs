//! Servers as Nova shows them (addresses in NIC order, the embedded flavor, faults) and what a
//! server create sends (block device mappings, networks, user data).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::de::null_default;
use crate::microversion as mv;
use crate::resource::Status;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// One address of a server on a network (`addresses: {net: [..]}`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ServerAddress {
    /// The IP address.
    pub addr: String,
    /// 4 or 6.
    #[serde(default)]
    pub version: u8,
    /// `fixed` or `floating`.
    #[serde(
        rename = "OS-EXT-IPS:type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_type: Option<String>,
    /// MAC address of the port.
    #[serde(
        rename = "OS-EXT-IPS-MAC:mac_addr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mac_addr: Option<String>,
}

/// Nova's `addresses` (network name -> addresses) in the order Nova sent them: its network info
/// order, which is the server's NIC order. A map type would sort the networks by name and lose it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Addresses(Vec<(String, Vec<ServerAddress>)>);

impl Addresses {
    /// Networks and their addresses, in NIC order.
    pub fn networks(&self) -> impl Iterator<Item = (&str, &[ServerAddress])> {
        self.0.iter().map(|(n, a)| (n.as_str(), a.as_slice()))
    }

    /// Every address, in NIC order.
    pub fn all(&self) -> impl Iterator<Item = &ServerAddress> {
        self.0.iter().flat_map(|(_, a)| a)
    }

    /// The MAC addresses of the server's ports in NIC order, each once. A port without an IP
    /// address has no entry in `addresses` and so is not here.
    pub fn macs(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for mac in self.all().filter_map(|a| a.mac_addr.as_deref()) {
            if !out.iter().any(|m| m.eq_ignore_ascii_case(mac)) {
                out.push(mac);
            }
        }
        out
    }

    /// True when the server has no address.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Addresses {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (net, addrs) in &self.0 {
            m.serialize_entry(net, addrs)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Addresses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = Addresses;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of network name to addresses")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Addresses, A::Error> {
                let mut out = Vec::new();
                while let Some((net, addrs)) = map.next_entry::<String, Vec<ServerAddress>>()? {
                    out.push((net, addrs));
                }
                Ok(Addresses(out))
            }
        }
        d.deserialize_map(InOrder)
    }
}

/// The flavor of a server: `{id, links}` before microversion 2.47, the embedded flavor
/// (`original_name`, `vcpus`, `ram`, ...) from 2.47 on.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ServerFlavor {
    /// Flavor ID (before 2.47).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Flavor name (2.47+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_name: Option<String>,
    /// vCPUs (2.47+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u64>,
    /// RAM in MiB (2.47+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<u64>,
    /// Root disk in GiB (2.47+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u64>,
    /// Ephemeral disk in GiB (2.47+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<u64>,
    /// Swap in MiB (2.47+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<u64>,
    /// Extra specs (2.47+).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub extra_specs: BTreeMap<String, String>,
    /// Other keys (`links`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `{id, ...}` reference (a server's `image`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct IdRef {
    /// The ID.
    pub id: String,
    /// Other keys (`links`, and image `properties` from 2.98).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `{name}` reference (a server's security groups).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct NameRef {
    /// The name.
    pub name: String,
}

/// A volume attached to a server, as the server reports it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct AttachedVolume {
    /// Volume ID.
    pub id: String,
    /// Whether the volume is deleted with the server (2.3+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_termination: Option<bool>,
}

/// Why a server is in ERROR.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ServerFault {
    /// HTTP-like code.
    #[serde(default)]
    pub code: Option<u16>,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// Details (admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

fn image_ref<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<IdRef>, D::Error> {
    // `""` when the server booted from a volume.
    let v = Value::deserialize(d)?;
    match v {
        Value::Object(_) => serde_json::from_value(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

/// A Nova server (`GET /servers/{id}`), field names as the API (and openstacksdk) has them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Server {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `ACTIVE`, `BUILD`, `SHUTOFF`, `ERROR`, ...
    #[serde(default)]
    pub status: String,
    /// Network name -> addresses, in NIC order.
    #[serde(default, deserialize_with = "null_default")]
    pub addresses: Addresses,
    /// The flavor (embedded from 2.47, `{id}` before).
    #[serde(default, deserialize_with = "null_default")]
    pub flavor: ServerFlavor,
    /// The image; `None` when booted from a volume.
    #[serde(default, deserialize_with = "image_ref")]
    pub image: Option<IdRef>,
    /// Keypair name.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, String>,
    /// Tags (2.26+).
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Security group names.
    #[serde(default, deserialize_with = "null_default")]
    pub security_groups: Vec<NameRef>,
    /// Attached volumes.
    #[serde(
        rename = "os-extended-volumes:volumes_attached",
        default,
        deserialize_with = "null_default"
    )]
    pub volumes_attached: Vec<AttachedVolume>,
    /// Availability zone.
    #[serde(rename = "OS-EXT-AZ:availability_zone", default)]
    pub availability_zone: Option<String>,
    /// Hypervisor hostname (admins).
    #[serde(rename = "OS-EXT-SRV-ATTR:hypervisor_hostname", default)]
    pub hypervisor_hostname: Option<String>,
    /// Compute host (admins).
    #[serde(rename = "OS-EXT-SRV-ATTR:host", default)]
    pub compute_host: Option<String>,
    /// Owner user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Owner project (`tenant_id` in the API).
    #[serde(rename = "tenant_id", default)]
    pub project_id: Option<String>,
    /// Creation time.
    #[serde(rename = "created", default)]
    pub created_at: Option<String>,
    /// Last update.
    #[serde(rename = "updated", default)]
    pub updated_at: Option<String>,
    /// Launch time.
    #[serde(rename = "OS-SRV-USG:launched_at", default)]
    pub launched_at: Option<String>,
    /// `accessIPv4`.
    #[serde(rename = "accessIPv4", default)]
    pub access_ipv4: Option<String>,
    /// `accessIPv6`.
    #[serde(rename = "accessIPv6", default)]
    pub access_ipv6: Option<String>,
    /// Config drive (`""`, `"True"`); see [`Server::has_config_drive`].
    #[serde(default)]
    pub config_drive: Value,
    /// `AUTO` or `MANUAL`.
    #[serde(rename = "OS-DCF:diskConfig", default)]
    pub disk_config: Option<String>,
    /// Description (2.19+).
    #[serde(default)]
    pub description: Option<String>,
    /// User data, base64 as Nova returns it (2.3+, admins or owner depending on policy).
    #[serde(rename = "OS-EXT-SRV-ATTR:user_data", default)]
    pub user_data: Option<String>,
    /// Scheduler hints the server was created with (2.100+).
    #[serde(default)]
    pub scheduler_hints: Option<Map<String, Value>>,
    /// Fault of a server in ERROR.
    #[serde(default)]
    pub fault: Option<ServerFault>,
    /// `OS-EXT-STS:vm_state`.
    #[serde(rename = "OS-EXT-STS:vm_state", default)]
    pub vm_state: Option<String>,
    /// `OS-EXT-STS:task_state`.
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    /// `OS-EXT-STS:power_state`.
    #[serde(rename = "OS-EXT-STS:power_state", default)]
    pub power_state: Option<Value>,
    /// Every other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Server {
    /// Whether the server has a config drive.
    pub fn has_config_drive(&self) -> bool {
        match &self.config_drive {
            Value::Bool(b) => *b,
            Value::String(s) => crate::de::parse_bool(s).unwrap_or(!s.is_empty()),
            _ => false,
        }
    }

    /// The flavor's name (2.47+) or ID (before).
    pub fn flavor_name_or_id(&self) -> Option<&str> {
        self.flavor
            .original_name
            .as_deref()
            .or(self.flavor.id.as_deref())
    }

    /// Whether the server booted from a volume (no image).
    pub fn is_volume_backed(&self) -> bool {
        self.image.is_none()
    }
}

impl Status for Server {
    fn status(&self) -> &str {
        &self.status
    }

    fn fault(&self) -> Option<String> {
        self.fault
            .as_ref()
            .map(|f| f.message.clone())
            .filter(|m| !m.is_empty())
    }

    fn deletion_status(&self) -> &str {
        if self.task_state.as_deref() == Some("deleting") {
            "deleting"
        } else {
            &self.status
        }
    }
}

/// A block device of a server create (`block_device_mapping_v2`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct BlockDeviceMapping {
    /// 0 for the boot disk; `None` (-1 on the wire is also fine) for others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_index: Option<i32>,
    /// ID of the volume, snapshot or image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// `volume`, `snapshot`, `image` or `blank`.
    pub source_type: String,
    /// `volume` or `local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_type: Option<String>,
    /// Size in GiB of a volume to create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<u64>,
    /// Delete the volume with the server.
    #[serde(default)]
    pub delete_on_termination: bool,
    /// Device name hint (`vda`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Volume type of a volume to create (2.67+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Other keys (`disk_bus`, `device_type`, `tag`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BlockDeviceMapping {
    /// The image a server boots from, on its local disk: boot index 0, as Nova requires next to
    /// `imageRef` when other mappings are given.
    pub fn image_local(image_id: &str) -> BlockDeviceMapping {
        BlockDeviceMapping {
            boot_index: Some(0),
            uuid: Some(image_id.to_string()),
            source_type: "image".into(),
            destination_type: Some("local".into()),
            delete_on_termination: true,
            ..Default::default()
        }
    }

    /// An existing volume, attached at `boot_index` (0 = boot disk).
    pub fn volume(volume_id: &str, boot_index: Option<i32>) -> BlockDeviceMapping {
        BlockDeviceMapping {
            boot_index,
            uuid: Some(volume_id.to_string()),
            source_type: "volume".into(),
            destination_type: Some("volume".into()),
            ..Default::default()
        }
    }
}

/// A network of a server create: a network (optionally with a fixed IP) or an existing port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerNetwork {
    /// A new port on network `uuid`, with `fixed_ip` if given.
    Network {
        /// Network ID.
        uuid: String,
        /// Fixed IP to request.
        fixed_ip: Option<String>,
    },
    /// An existing port.
    Port(String),
}

/// User data of a server create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserData {
    /// Raw bytes; the crate base64-encodes them.
    Plain(Vec<u8>),
    /// Already base64 (as Nova returns it); sent unchanged.
    Base64(String),
}

/// What [`ComputeApi::create_server`](crate::ComputeApi::create_server) sends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewServer {
    /// Name.
    pub name: String,
    /// Flavor ID.
    pub flavor_ref: String,
    /// Image ID to boot from; `None` to boot from `block_device_mapping_v2`.
    pub image_ref: Option<String>,
    /// Block devices (boot index 0 = boot disk when booting from a volume).
    pub block_device_mapping_v2: Vec<BlockDeviceMapping>,
    /// Networks/ports; empty sends `"none"` at microversion 2.37+.
    pub networks: Vec<ServerNetwork>,
    /// Keypair name.
    pub key_name: Option<String>,
    /// Security group names (or IDs).
    pub security_groups: Vec<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Tags (needs microversion 2.52).
    pub tags: Vec<String>,
    /// User data.
    pub user_data: Option<UserData>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Config drive.
    pub config_drive: Option<bool>,
    /// `AUTO` or `MANUAL`.
    pub disk_config: Option<String>,
    /// Description (needs microversion 2.19).
    pub description: Option<String>,
    /// Scheduler hints (`os:scheduler_hints`).
    pub scheduler_hints: Map<String, Value>,
    /// Other keys of the `server` object.
    pub extra: Map<String, Value>,
}

impl NewServer {
    /// The microversion the request needs.
    pub fn needed_microversion(&self) -> mv::Microversion {
        if !self.tags.is_empty() {
            mv::COMPUTE_TAGS_AT_CREATE
        } else if self.description.is_some() {
            mv::COMPUTE_DESCRIPTION
        } else {
            mv::COMPUTE_BASE
        }
    }

    /// The request body for microversion `version`.
    pub fn to_body(&self, version: mv::Microversion) -> Value {
        let mut s = Map::new();
        s.insert("name".into(), json!(self.name));
        s.insert("flavorRef".into(), json!(self.flavor_ref));
        if let Some(i) = &self.image_ref {
            s.insert("imageRef".into(), json!(i));
        }
        if !self.block_device_mapping_v2.is_empty() {
            s.insert(
                "block_device_mapping_v2".into(),
                json!(self.block_device_mapping_v2),
            );
        }
        if self.networks.is_empty() {
            if version >= mv::COMPUTE_NETWORKS_REQUIRED {
                s.insert("networks".into(), json!("none"));
            }
        } else {
            let nets: Vec<Value> = self
                .networks
                .iter()
                .map(|n| match n {
                    ServerNetwork::Network {
                        uuid,
                        fixed_ip: Some(ip),
                    } => json!({"uuid": uuid, "fixed_ip": ip}),
                    ServerNetwork::Network {
                        uuid,
                        fixed_ip: None,
                    } => json!({"uuid": uuid}),
                    ServerNetwork::Port(p) => json!({"port": p}),
                })
                .collect();
            s.insert("networks".into(), Value::Array(nets));
        }
        if let Some(k) = &self.key_name {
            s.insert("key_name".into(), json!(k));
        }
        if !self.security_groups.is_empty() {
            s.insert(
                "security_groups".into(),
                Value::Array(
                    self.security_groups
                        .iter()
                        .map(|n| json!({"name": n}))
                        .collect(),
                ),
            );
        }
        if !self.metadata.is_empty() {
            s.insert("metadata".into(), json!(self.metadata));
        }
        if !self.tags.is_empty() {
            s.insert("tags".into(), json!(self.tags));
        }
        match &self.user_data {
            Some(UserData::Plain(b)) => {
                s.insert("user_data".into(), json!(STANDARD.encode(b)));
            }
            Some(UserData::Base64(b)) => {
                s.insert("user_data".into(), json!(b));
            }
            None => {}
        }
        if let Some(az) = &self.availability_zone {
            s.insert("availability_zone".into(), json!(az));
        }
        if let Some(cd) = self.config_drive {
            s.insert("config_drive".into(), json!(cd));
        }
        if let Some(dc) = &self.disk_config {
            s.insert("OS-DCF:diskConfig".into(), json!(dc));
        }
        if let Some(d) = &self.description {
            s.insert("description".into(), json!(d));
        }
        for (k, v) in &self.extra {
            s.insert(k.clone(), v.clone());
        }
        let mut body = json!({"server": s});
        if !self.scheduler_hints.is_empty() {
            body["os:scheduler_hints"] = Value::Object(self.scheduler_hints.clone());
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_from_nova_2_100() {
        let s: Server = serde_json::from_value(json!({
            "id": "s1", "name": "web", "status": "SHUTOFF",
            "addresses": {"private": [{"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]},
            "flavor": {"original_name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20, "ephemeral": 0, "swap": 0, "extra_specs": {"hw:cpu_policy": "shared"}},
            "image": "",
            "key_name": null,
            "metadata": {"k": "v"},
            "tags": ["a"],
            "security_groups": [{"name": "default"}],
            "os-extended-volumes:volumes_attached": [{"id": "v1", "delete_on_termination": false}],
            "OS-EXT-AZ:availability_zone": "nova",
            "OS-EXT-SRV-ATTR:hypervisor_hostname": "hv1",
            "OS-EXT-SRV-ATTR:user_data": "I2Nsb3VkLWNvbmZpZw==",
            "tenant_id": "p1", "user_id": "u1",
            "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:01:00Z", "OS-SRV-USG:launched_at": "2026-01-01T00:00:30.000000",
            "accessIPv4": "", "config_drive": "True", "OS-DCF:diskConfig": "MANUAL", "description": null,
            "scheduler_hints": {"group": "g1"},
            "locked": false, "hostId": "abc"
        }))
        .unwrap();
        assert!(s.is_volume_backed());
        assert_eq!(s.flavor_name_or_id(), Some("m1.small"));
        assert_eq!(s.flavor.extra_specs["hw:cpu_policy"], "shared");
        assert_eq!(s.volumes_attached[0].id, "v1");
        assert_eq!(s.project_id.as_deref(), Some("p1"));
        assert!(s.has_config_drive());
        assert_eq!(s.extra["hostId"], "abc");
        assert_eq!(s.scheduler_hints.as_ref().unwrap()["group"], "g1");
        // Round trip keeps the API names.
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["tenant_id"], "p1");
        assert_eq!(back["os-extended-volumes:volumes_attached"][0]["id"], "v1");
        assert_eq!(back["hostId"], "abc");
    }

    #[test]
    fn addresses_null_and_absent_are_empty() {
        let s: Server = serde_json::from_str(r#"{"id": "s1", "addresses": null}"#).unwrap();
        assert!(s.addresses.is_empty());
        let s: Server = serde_json::from_str(r#"{"id": "s1"}"#).unwrap();
        assert!(s.addresses.macs().is_empty());
        let bad = serde_json::from_str::<Server>(r#"{"id": "s1", "addresses": [1]}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn server_from_old_nova_and_partial() {
        let s: Server = serde_json::from_value(json!({
            "id": "s2", "name": "db", "status": "ACTIVE",
            "flavor": {"id": "42", "links": []},
            "image": {"id": "img1", "links": []},
            "config_drive": "", "security_groups": null, "metadata": null
        }))
        .unwrap();
        assert_eq!(s.flavor_name_or_id(), Some("42"));
        assert_eq!(s.image.as_ref().unwrap().id, "img1");
        assert!(!s.has_config_drive());
        let s: Server = serde_json::from_value(json!({"id": "s3", "status": "UNKNOWN"})).unwrap();
        assert_eq!(s.name, "");
    }

    #[test]
    fn create_body() {
        let mut new = NewServer {
            name: "web".into(),
            flavor_ref: "f1".into(),
            image_ref: Some("i1".into()),
            networks: vec![
                ServerNetwork::Network {
                    uuid: "n1".into(),
                    fixed_ip: Some("10.0.0.5".into()),
                },
                ServerNetwork::Port("p1".into()),
            ],
            key_name: Some("k".into()),
            security_groups: vec!["default".into()],
            tags: vec!["osm-transfer-1".into()],
            user_data: Some(UserData::Plain(b"#cloud-config\n".to_vec())),
            config_drive: Some(true),
            disk_config: Some("AUTO".into()),
            ..Default::default()
        };
        new.scheduler_hints.insert("group".into(), json!("g"));
        assert_eq!(new.needed_microversion(), mv::COMPUTE_TAGS_AT_CREATE);
        let b = new.to_body(mv::Microversion::new(2, 100));
        assert_eq!(
            b,
            json!({"server": {
                "name": "web", "flavorRef": "f1", "imageRef": "i1",
                "networks": [{"uuid": "n1", "fixed_ip": "10.0.0.5"}, {"port": "p1"}],
                "key_name": "k", "security_groups": [{"name": "default"}], "tags": ["osm-transfer-1"],
                "user_data": "I2Nsb3VkLWNvbmZpZwo=", "config_drive": true, "OS-DCF:diskConfig": "AUTO"},
              "os:scheduler_hints": {"group": "g"}})
        );
        let vol = NewServer {
            name: "v".into(),
            flavor_ref: "f".into(),
            block_device_mapping_v2: vec![BlockDeviceMapping::volume("vol1", Some(0))],
            ..Default::default()
        };
        assert_eq!(vol.needed_microversion(), mv::COMPUTE_BASE);
        let b = vol.to_body(mv::Microversion::new(2, 60));
        assert_eq!(b["server"]["networks"], "none");
        assert_eq!(
            b["server"]["block_device_mapping_v2"],
            json!([{"boot_index": 0, "uuid": "vol1", "source_type": "volume", "destination_type": "volume", "delete_on_termination": false}])
        );
        assert!(b["server"].get("imageRef").is_none());
        assert!(vol.to_body(mv::Microversion::new(2, 36))["server"]
            .get("networks")
            .is_none());
    }
}
