//! Compute (Nova v2.1): servers, actions, volume attachments, interfaces, flavors, keypairs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::catalog::Service;
use crate::common::{base64, find_one, wait_deleted, wait_status, Observed, Query, ResourceKind};
use crate::connection::{seg, Call, Connection};
use crate::de::{lenient_bool, null_default, opt_lenient_bool};
use crate::error::Result;
use crate::microversion as mv;

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

/// What [`ComputeApi::create_server`] sends.
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
                s.insert("user_data".into(), json!(base64(b)));
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

/// A flavor.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Flavor {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// vCPUs.
    #[serde(default)]
    pub vcpus: u64,
    /// RAM in MiB.
    #[serde(default)]
    pub ram: u64,
    /// Root disk in GiB.
    #[serde(default)]
    pub disk: u64,
    /// Ephemeral disk in GiB.
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral", default)]
    pub ephemeral: u64,
    /// Swap in MiB (`""` is 0).
    #[serde(default, deserialize_with = "swap")]
    pub swap: u64,
    /// Whether every project sees it.
    #[serde(
        rename = "os-flavor-access:is_public",
        default = "yes",
        deserialize_with = "lenient_bool"
    )]
    pub is_public: bool,
    /// Description (2.55+).
    #[serde(default)]
    pub description: Option<String>,
    /// Extra specs (2.61+).
    #[serde(default, deserialize_with = "null_default")]
    pub extra_specs: BTreeMap<String, String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

fn swap<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    })
}

/// What [`ComputeApi::create_flavor`] sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NewFlavor {
    /// Name.
    pub name: String,
    /// vCPUs.
    pub vcpus: u64,
    /// RAM in MiB.
    pub ram: u64,
    /// Root disk in GiB.
    pub disk: u64,
    /// ID (`None`: Nova picks a UUID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Ephemeral disk in GiB.
    #[serde(
        rename = "OS-FLV-EXT-DATA:ephemeral",
        skip_serializing_if = "Option::is_none"
    )]
    pub ephemeral: Option<u64>,
    /// Swap in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<u64>,
    /// Public flavor (default true).
    #[serde(
        rename = "os-flavor-access:is_public",
        skip_serializing_if = "Option::is_none"
    )]
    pub is_public: Option<bool>,
    /// Description (needs 2.55).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A keypair.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Keypair {
    /// Name (its identifier).
    pub name: String,
    /// Public key.
    #[serde(default)]
    pub public_key: String,
    /// Fingerprint.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// `ssh` or `x509` (2.2+).
    #[serde(rename = "type", default)]
    pub key_type: Option<String>,
    /// Owner.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A volume attachment (`os-volume_attachments`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct VolumeAttachment {
    /// Attachment ID (before 2.89; the volume ID).
    #[serde(default)]
    pub id: Option<String>,
    /// Volume ID.
    #[serde(rename = "volumeId")]
    pub volume_id: String,
    /// Server ID.
    #[serde(rename = "serverId", default)]
    pub server_id: Option<String>,
    /// Device inside the guest (`/dev/vdb`), as Nova guesses it.
    #[serde(default)]
    pub device: Option<String>,
    /// Device tag (2.70+).
    #[serde(default)]
    pub tag: Option<String>,
    /// Delete with the server (2.79+).
    #[serde(default, deserialize_with = "opt_lenient_bool")]
    pub delete_on_termination: Option<bool>,
    /// Cinder attachment ID (2.89+).
    #[serde(default)]
    pub attachment_id: Option<String>,
    /// Block device mapping UUID (2.89+).
    #[serde(default)]
    pub bdm_uuid: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A fixed IP of an interface attachment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct FixedIp {
    /// Subnet ID.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// IP address.
    #[serde(default)]
    pub ip_address: Option<String>,
}

/// A port attached to a server (`os-interface`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct InterfaceAttachment {
    /// Port ID.
    pub port_id: String,
    /// Network ID.
    #[serde(default)]
    pub net_id: Option<String>,
    /// MAC address.
    #[serde(default)]
    pub mac_addr: Option<String>,
    /// Port status.
    #[serde(default)]
    pub port_state: Option<String>,
    /// Fixed IPs.
    #[serde(default, deserialize_with = "null_default")]
    pub fixed_ips: Vec<FixedIp>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An availability zone.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct AvailabilityZone {
    /// Name.
    #[serde(rename = "zoneName")]
    pub name: String,
    /// `{available: bool}`.
    #[serde(rename = "zoneState", default)]
    pub state: Option<Map<String, Value>>,
}

impl AvailabilityZone {
    /// Whether the zone is available.
    pub fn is_available(&self) -> bool {
        self.state
            .as_ref()
            .and_then(|s| s.get("available"))
            .and_then(|a| a.as_bool())
            .unwrap_or(false)
    }
}

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
        self.conn
            .list_all(Call::get(S, "/servers/detail").queries(filters), "servers")
    }

    /// A server by ID; [`crate::Error::NotFound`] if there is none.
    pub fn get_server(&self, id: &str) -> Result<Server> {
        self.conn
            .call_key(Call::get(S, format!("/servers/{}", seg(id))), "server")
            .map_err(|e| e.not_found_as("server", id))
    }

    /// A server by ID or exact name.
    pub fn find_server(&self, name_or_id: &str) -> Result<Option<Server>> {
        find_one(
            "server",
            name_or_id,
            || self.get_server(name_or_id),
            || self.list_servers_with(&name_filter(name_or_id)),
            |s| Some(s.name.as_str()),
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
        self.conn
            .call(Call::delete(S, format!("/servers/{}", seg(id))))
            .map(drop)
            .map_err(|e| e.not_found_as("server", id))
    }

    fn action(&self, id: &str, body: Value) -> Result<crate::connection::Reply> {
        self.conn
            .call(Call::post(S, format!("/servers/{}/action", seg(id))).json(&body)?)
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
        let call = Call::post(S, format!("/servers/{}/action", seg(id)))
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
        wait_status(
            "server",
            id,
            statuses,
            ResourceKind::Server.error_statuses(),
            timeout,
            || {
                let s = self.get_server(id)?;
                Ok(Observed {
                    status: s.status.clone(),
                    fault: s
                        .fault
                        .as_ref()
                        .map(|f| f.message.clone())
                        .filter(|m| !m.is_empty()),
                    value: s,
                })
            },
            |_| None,
        )
    }

    /// Waits until the server is gone (404).
    pub fn wait_for_server_deleted(&self, id: &str, timeout: Duration) -> Result<()> {
        wait_deleted(
            "server",
            id,
            ResourceKind::Server.delete_error_statuses(),
            timeout,
            || {
                let s = self.get_server(id)?;
                // A server that was in ERROR before the delete keeps that status while Nova deletes
                // it; only an ERROR with the delete no longer under way means the delete failed.
                if s.task_state.as_deref() == Some("deleting") {
                    return Ok(("deleting".to_string(), None));
                }
                Ok((s.status, s.fault.map(|f| f.message)))
            },
        )
    }

    /// Sets metadata keys of a server (others are kept).
    pub fn set_server_metadata(
        &self,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        self.conn
            .call_key(
                Call::post(S, format!("/servers/{}/metadata", seg(id)))
                    .json(&json!({"metadata": metadata}))?,
                "metadata",
            )
            .map_err(|e| e.not_found_as("server", id))
    }

    /// Removes one metadata key of a server; a missing key is not an error.
    pub fn delete_server_metadata(&self, id: &str, key: &str) -> Result<()> {
        match self.conn.call(Call::delete(
            S,
            format!("/servers/{}/metadata/{}", seg(id), seg(key)),
        )) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() && self.get_server(id).is_ok() => Ok(()),
            Err(e) => Err(e.not_found_as("server", id)),
        }
    }

    /// Adds a tag to a server (2.26+).
    pub fn add_server_tag(&self, id: &str, tag: &str) -> Result<()> {
        let version = self
            .conn
            .microversion(S, mv::Microversion::new(2, 26), "server tags")?;
        self.conn
            .call(
                Call::put(S, format!("/servers/{}/tags/{}", seg(id), seg(tag)))
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
                    format!("/servers/{}/os-volume_attachments", seg(server_id)),
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
                format!("/servers/{}/os-volume_attachments", seg(server_id)),
            )
            .microversion(version)
            .json(&json!({"volumeAttachment": va}))?,
            "volumeAttachment",
        )
    }

    /// Detaches a volume from a server; wait for the volume's `available` on the Cinder side.
    pub fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<()> {
        self.conn
            .call(Call::delete(
                S,
                format!(
                    "/servers/{}/os-volume_attachments/{}",
                    seg(server_id),
                    seg(volume_id)
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
                Call::get(S, format!("/servers/{}/os-interface", seg(server_id))),
                "interfaceAttachments",
            )
            .map_err(|e| e.not_found_as("server", server_id))
    }

    // ---- flavors ----

    /// Every flavor the project may use, public and private (`is_public=None`), every page.
    pub fn list_flavors(&self) -> Result<Vec<Flavor>> {
        self.list_flavors_with(&Query::new().with("is_public", "None"))
    }

    /// Flavors matching Nova's filters (`is_public`, `minRam`, `minDisk`), every page.
    pub fn list_flavors_with(&self, filters: &Query) -> Result<Vec<Flavor>> {
        self.conn
            .list_all(Call::get(S, "/flavors/detail").queries(filters), "flavors")
    }

    /// A flavor by ID.
    pub fn get_flavor(&self, id: &str) -> Result<Flavor> {
        self.conn
            .call_key(Call::get(S, format!("/flavors/{}", seg(id))), "flavor")
            .map_err(|e| e.not_found_as("flavor", id))
    }

    /// A flavor by ID or exact name.
    pub fn find_flavor(&self, name_or_id: &str) -> Result<Option<Flavor>> {
        find_one(
            "flavor",
            name_or_id,
            || self.get_flavor(name_or_id),
            || self.list_flavors(),
            |f| Some(f.name.as_str()),
        )
    }

    /// Creates a flavor (admin).
    pub fn create_flavor(&self, new: &NewFlavor) -> Result<Flavor> {
        let needed = if new.description.is_some() {
            mv::COMPUTE_FLAVOR_DESCRIPTION
        } else {
            mv::COMPUTE_BASE
        };
        let version = self.conn.microversion(S, needed, "flavor description")?;
        self.conn.call_key(
            Call::post(S, "/flavors")
                .microversion(version)
                .json(&json!({"flavor": new}))?,
            "flavor",
        )
    }

    /// Sets extra specs of a flavor (admin).
    pub fn set_flavor_extra_specs(
        &self,
        id: &str,
        specs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        self.conn
            .call_key(
                Call::post(S, format!("/flavors/{}/os-extra_specs", seg(id)))
                    .json(&json!({"extra_specs": specs}))?,
                "extra_specs",
            )
            .map_err(|e| e.not_found_as("flavor", id))
    }

    /// Deletes a flavor (admin).
    pub fn delete_flavor(&self, id: &str) -> Result<()> {
        self.conn
            .call(Call::delete(S, format!("/flavors/{}", seg(id))))
            .map(drop)
            .map_err(|e| e.not_found_as("flavor", id))
    }

    // ---- keypairs ----

    /// The user's keypairs, every page.
    pub fn list_keypairs(&self) -> Result<Vec<Keypair>> {
        #[derive(Deserialize)]
        struct Wrap {
            keypair: Keypair,
        }
        let wrapped: Vec<Wrap> = self
            .conn
            .list_all(Call::get(S, "/os-keypairs"), "keypairs")?;
        Ok(wrapped.into_iter().map(|w| w.keypair).collect())
    }

    /// A keypair by name.
    pub fn get_keypair(&self, name: &str) -> Result<Keypair> {
        self.conn
            .call_key(
                Call::get(S, format!("/os-keypairs/{}", seg(name))),
                "keypair",
            )
            .map_err(|e| e.not_found_as("keypair", name))
    }

    /// A keypair by name, `None` if there is none.
    pub fn find_keypair(&self, name: &str) -> Result<Option<Keypair>> {
        match self.get_keypair(name) {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
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
        self.conn.call_key(
            Call::post(S, "/os-keypairs")
                .microversion(version)
                .json(&json!({"keypair": kp}))?,
            "keypair",
        )
    }

    /// Deletes a keypair.
    pub fn delete_keypair(&self, name: &str) -> Result<()> {
        self.conn
            .call(Call::delete(S, format!("/os-keypairs/{}", seg(name))))
            .map(drop)
            .map_err(|e| e.not_found_as("keypair", name))
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
