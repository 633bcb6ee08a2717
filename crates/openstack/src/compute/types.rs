//! Flavors, keypairs, volume and port attachments, and availability zones as Nova sends them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::de::{lenient_bool, null_default, opt_lenient_bool};

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

/// What [`ComputeApi::create_flavor`](crate::ComputeApi::create_flavor) sends.
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
