//! The serialized workload (DESIGN.md section 5), compatible with upstream OS Migrate's 1.x format.
//!
//! Every struct keeps the keys it does not model in `extra`, so a file written by another version
//! round-trips without losing anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `type` of a server resource.
pub const SERVER_TYPE: &str = "openstack.compute.Server";
/// `type` of a port inside a server.
pub const PORT_TYPE: &str = "openstack.network.ServerPort";
/// `type` of a floating IP inside a server.
pub const FLOATING_IP_TYPE: &str = "openstack.network.ServerFloatingIP";
/// `type` of a volume inside a server (upstream's spelling, `network` included).
pub const VOLUME_TYPE: &str = "openstack.network.ServerVolume";

/// The project and domain name meaning "the project the migration authenticates to".
pub const AUTH_PROJECT: &str = "%auth%";

/// Unknown keys, kept as they were.
pub type Extra = BTreeMap<String, Value>;

/// A null in the file means the same as an absent key for collections.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A reference to a resource by name, never by ID: IDs differ between clouds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// The resource's name.
    pub name: String,
    /// Its project's name, or `%auth%`.
    #[serde(default)]
    pub project_name: Option<String>,
    /// Its project's domain name, or `%auth%`.
    #[serde(default)]
    pub domain_name: Option<String>,
}

impl Ref {
    /// A reference to a resource of the authenticated project.
    pub fn in_auth_project(name: impl Into<String>) -> Ref {
        Ref {
            name: name.into(),
            project_name: Some(AUTH_PROJECT.into()),
            domain_name: Some(AUTH_PROJECT.into()),
        }
    }

    /// True when the reference points into the project the migration authenticates to (or does not
    /// say, which upstream treats the same way).
    pub fn is_auth_project(&self) -> bool {
        self.project_name
            .as_deref()
            .is_none_or(|p| p == AUTH_PROJECT)
    }
}

/// One server: what is recreated (`params`), facts about the source (`_info`) and how to migrate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// Always [`SERVER_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// What is recreated in the destination.
    pub params: ServerParams,
    /// Facts about the source server.
    #[serde(rename = "_info")]
    pub info: ServerInfo,
    /// How to migrate it.
    #[serde(
        rename = "_migration_params",
        default,
        deserialize_with = "null_default"
    )]
    pub migration_params: MigrationParams,
}

impl Server {
    /// The server's name.
    pub fn name(&self) -> &str {
        &self.params.name
    }

    /// The source server's ID.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// True when the source server was booted from a volume (no image reference).
    pub fn boots_from_volume(&self) -> bool {
        self.params.image_ref.is_none()
    }

    /// The volume the server boots from, when it boots from a volume: the one attached as the root
    /// device (vda/sda/xvda), or the first bootable one.
    pub fn boot_volume(&self) -> Option<&ServerVolume> {
        if !self.boots_from_volume() {
            return None;
        }
        let root = |v: &&ServerVolume| {
            v.info.attachments.iter().any(|a| {
                a.get("device").and_then(Value::as_str).is_some_and(|d| {
                    matches!(d, "/dev/vda" | "/dev/sda" | "/dev/xvda" | "/dev/hda")
                })
            })
        };
        self.params
            .volumes
            .iter()
            .find(root)
            .or_else(|| self.params.volumes.iter().find(|v| v.info.is_bootable))
    }

    /// The source IDs of the serialized volumes: the ones this workload owns and migrates.
    pub fn volume_ids(&self) -> impl Iterator<Item = &str> {
        self.params.volumes.iter().map(|v| v.info.id.as_str())
    }

    /// The volumes other than the boot volume.
    pub fn additional_volumes(&self) -> Vec<&ServerVolume> {
        let boot = self.boot_volume().map(|v| v.info.id.as_str());
        self.params
            .volumes
            .iter()
            .filter(|v| Some(v.info.id.as_str()) != boot)
            .collect()
    }

    /// What the destination server boots from, as upstream decides it: with `data_copy`, the copied
    /// boot volume when `boot_disk_copy`, else the image; without, the volume named by
    /// `boot_volume.uuid` when given (whatever the source booted from), else the image.
    pub fn boot_source(&self) -> BootSource<'_> {
        let mp = &self.migration_params;
        if mp.data_copy && mp.boot_disk_copy {
            return BootSource::CopiedVolume;
        }
        if !mp.data_copy {
            if let Some(id) = mp.reused_boot_volume() {
                return BootSource::ReusedVolume(id);
            }
        }
        match &self.params.image_ref {
            Some(r) => BootSource::Image(r),
            None => BootSource::Nothing,
        }
    }

    /// The device the source server had a volume at (`/dev/sda`), from its serialized attachment.
    pub fn device_of(&self, volume: &ServerVolume) -> Option<String> {
        volume
            .info
            .attachments
            .iter()
            .filter(|a| {
                a.get("server_id")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s == self.info.id)
            })
            .find_map(|a| a.get("device").and_then(Value::as_str))
            .filter(|d| !d.is_empty())
            .map(str::to_string)
    }

    /// The device name prefix of the source server's disks (`vd` virtio-blk, `sd` SCSI or SATA,
    /// `xvd`, `hd`): its boot volume's, else any volume's; `vd` when none says.
    pub fn disk_prefix(&self) -> &'static str {
        let devices = self
            .boot_volume()
            .into_iter()
            .chain(self.params.volumes.iter())
            .filter_map(|v| self.device_of(v));
        for d in devices {
            let name = d.trim_start_matches("/dev/");
            for p in ["xvd", "vd", "sd", "hd"] {
                if name.starts_with(p) {
                    return p;
                }
            }
        }
        "vd"
    }
}

/// What the destination server boots from ([`Server::boot_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootSource<'a> {
    /// The boot disk copied by this migration.
    CopiedVolume,
    /// An existing destination volume (`data_copy: false` with `boot_volume.uuid`).
    ReusedVolume(&'a str),
    /// The image of that name in the destination.
    Image(&'a Ref),
    /// Nothing: a server booted from a volume with neither the copy nor a volume to reuse.
    Nothing,
}

/// The recreated part of a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerParams {
    /// Server name.
    pub name: String,
    /// Server description.
    #[serde(default)]
    pub description: Option<String>,
    /// Availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Config drive (a boolean, or a string as some clouds return).
    #[serde(default)]
    pub config_drive: Option<Value>,
    /// `AUTO` or `MANUAL`.
    #[serde(default)]
    pub disk_config: Option<String>,
    /// Keypair name.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Server metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, Value>,
    /// Server tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// User data, base64 as Nova returns it.
    #[serde(default)]
    pub user_data: Option<String>,
    /// Scheduler hints.
    #[serde(default)]
    pub scheduler_hints: Option<Value>,
    /// The flavor, by name.
    pub flavor_ref: Ref,
    /// The image, by name; null when the server boots from a volume.
    #[serde(default)]
    pub image_ref: Option<Ref>,
    /// Security groups, by name.
    #[serde(default, deserialize_with = "null_default")]
    pub security_group_refs: Vec<Ref>,
    /// Ports in the server's NIC order.
    #[serde(default, deserialize_with = "null_default")]
    pub ports: Vec<ServerPort>,
    /// Floating IPs of those ports.
    #[serde(default, deserialize_with = "null_default")]
    pub floating_ips: Vec<ServerFloatingIp>,
    /// Attached volumes.
    #[serde(default, deserialize_with = "null_default")]
    pub volumes: Vec<ServerVolume>,
    /// Keys not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Facts about the source server, not recreated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Source server ID: the identity of the workload in the file.
    pub id: String,
    /// Source status when exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Source project ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Source user ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Source flavor ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_id: Option<String>,
    /// Source security group IDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<String>>,
    /// Size in GiB of the source flavor's local ephemeral disk, when it has one (osm; upstream files
    /// lack it, and then the destination flavor of the same name tells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_ephemeral_gb: Option<u64>,
    /// Size in MiB of the source flavor's swap disk, when it has one (osm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor_swap_mb: Option<u64>,
    /// Keys not modelled here (created_at, launched_at, hypervisor_hostname, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A port of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerPort {
    /// Always [`PORT_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// What is recreated.
    pub params: PortParams,
    /// Source facts.
    #[serde(rename = "_info", default)]
    pub info: Extra,
    /// Per-port migration parameters.
    #[serde(
        rename = "_migration_params",
        default,
        deserialize_with = "null_default"
    )]
    pub migration_params: Extra,
}

/// The recreated part of a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortParams {
    /// The port's network.
    pub network_ref: Ref,
    /// Its fixed IPs with their subnets.
    #[serde(default, deserialize_with = "null_default")]
    pub fixed_ips_refs: Vec<FixedIpRef>,
    /// MAC address (kept in neutron port creation mode).
    #[serde(default)]
    pub mac_address: Option<String>,
    /// `binding:profile`.
    #[serde(default)]
    pub binding_profile: Option<Value>,
    /// `binding:vnic_type`.
    #[serde(default)]
    pub binding_vnic_type: Option<String>,
    /// Keys not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A fixed IP and its subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIpRef {
    /// The address.
    #[serde(default)]
    pub ip_address: Option<String>,
    /// The subnet, by name.
    #[serde(default)]
    pub subnet_ref: Option<Ref>,
}

/// A floating IP of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerFloatingIp {
    /// Always [`FLOATING_IP_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// What is recreated.
    pub params: FloatingIpParams,
    /// Source facts.
    #[serde(rename = "_info", default)]
    pub info: Extra,
    /// Per-IP migration parameters.
    #[serde(
        rename = "_migration_params",
        default,
        deserialize_with = "null_default"
    )]
    pub migration_params: Extra,
}

/// The recreated part of a floating IP. Every key is written, null when unset: upstream's
/// deserializer indexes `floating_network_ref` and `qos_policy_ref` directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatingIpParams {
    /// The external network, by name.
    #[serde(default)]
    pub floating_network_ref: Option<Ref>,
    /// The floating address.
    #[serde(default)]
    pub floating_ip_address: Option<String>,
    /// The fixed address it maps to.
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// DNS domain.
    #[serde(default)]
    pub dns_domain: Option<String>,
    /// DNS name.
    #[serde(default)]
    pub dns_name: Option<String>,
    /// QoS policy, by name.
    #[serde(default)]
    pub qos_policy_ref: Option<Ref>,
    /// Keys not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A volume attached to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerVolume {
    /// Always [`VOLUME_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// What is recreated.
    pub params: VolumeParams,
    /// Source facts.
    #[serde(rename = "_info")]
    pub info: VolumeInfo,
    /// Per-volume migration parameters.
    #[serde(
        rename = "_migration_params",
        default,
        deserialize_with = "null_default"
    )]
    pub migration_params: Extra,
}

/// The recreated part of a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeParams {
    /// Volume name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Volume type.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Glance metadata of a volume made from an image (`hw_disk_bus`, `hw_scsi_model`, ...).
    #[serde(default)]
    pub volume_image_metadata: Option<BTreeMap<String, Value>>,
    /// Keys not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Facts about the source volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// Source volume ID.
    pub id: String,
    /// Size in GiB.
    pub size: u64,
    /// Bootable flag.
    #[serde(default)]
    pub is_bootable: bool,
    /// Attachments as Cinder reports them (device, server_id, ...).
    #[serde(default, deserialize_with = "null_default")]
    pub attachments: Vec<BTreeMap<String, Value>>,
    /// Keys not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How a floating IP is recreated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FloatingIpMode {
    /// The same address when it is free, else a new one.
    #[default]
    Auto,
    /// No floating IP.
    Skip,
    /// Always a new address.
    New,
    /// Only the same address, which must already exist in the destination project, unassociated.
    Existing,
}

/// How ports are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PortCreationMode {
    /// Nova creates the ports from networks and fixed IPs.
    #[default]
    Nova,
    /// Ports are created in Neutron first, keeping the MAC address.
    Neutron,
}

/// Parameters of the boot volume created in the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BootVolumeParams {
    /// Name; default derived from the server's.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Volume type.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
}

/// A destination volume to reuse instead of copying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VolumeUuid {
    /// The destination volume's ID.
    #[serde(default)]
    pub uuid: Option<String>,
}

fn default_true() -> bool {
    true
}

/// How one server is migrated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationParams {
    /// Copy the boot disk (forced true for servers booted from a volume).
    #[serde(default)]
    pub boot_disk_copy: bool,
    /// Copy volume data; false reuses destination volumes named by `boot_volume`/`additional_volumes`.
    #[serde(default = "default_true")]
    pub data_copy: bool,
    /// Parameters of the destination boot volume.
    #[serde(default, deserialize_with = "null_default")]
    pub boot_volume_params: BootVolumeParams,
    /// The destination boot volume to reuse when `data_copy` is false.
    #[serde(default, deserialize_with = "null_default")]
    pub boot_volume: VolumeUuid,
    /// The destination volumes to reuse when `data_copy` is false, in the order of the source's
    /// additional volumes.
    #[serde(default, deserialize_with = "null_default")]
    pub additional_volumes: Vec<VolumeUuid>,
    /// Upstream's newer spelling of `boot_volume.uuid`, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_volume_id: Option<String>,
    /// Upstream's newer spelling of `additional_volumes`, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_volume_ids: Option<Vec<String>>,
    /// How floating IPs are recreated.
    #[serde(default)]
    pub floating_ip_mode: FloatingIpMode,
    /// How ports are created.
    #[serde(default)]
    pub port_creation_mode: PortCreationMode,
    /// Skip free filesystem space during the copy (osm only; absent means true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparsify: Option<bool>,
    /// Read back each synced volume and prove it equal to the source (osm only; absent means true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    /// Compress data that compresses on the link (osm only; absent means true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
    /// Upstream's direct read of the source disks through nbdkit on the hypervisor; osm copies
    /// through the conversion hosts, so `true` is refused by `import_workload_dst_check`.
    #[serde(default)]
    pub use_nbdkit_direct: bool,
    /// Upstream's nbdkit socket for `use_nbdkit_direct` (written null, kept as found).
    #[serde(default)]
    pub nbdkit_socket_uri: Option<String>,
    /// Upstream's nbdkit export name for `use_nbdkit_direct` (written null, kept as found).
    #[serde(default)]
    pub nbdkit_export_name: Option<String>,
    /// What becomes of the data on the flavor's local ephemeral disk (osm only; absent: the import
    /// is refused when the server has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_disks: Option<LocalDisks>,
    /// Keys not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a migration does about a flavor's local (hypervisor) ephemeral disk, whose data no
/// OpenStack API can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalDisks {
    /// The destination server gets a new, empty ephemeral disk from its flavor; what the source's
    /// held is lost (the operator moved it, or does not need it).
    Recreate,
}

impl Default for MigrationParams {
    fn default() -> MigrationParams {
        MigrationParams {
            boot_disk_copy: false,
            data_copy: true,
            boot_volume_params: BootVolumeParams::default(),
            boot_volume: VolumeUuid::default(),
            additional_volumes: Vec::new(),
            boot_volume_id: None,
            additional_volume_ids: None,
            floating_ip_mode: FloatingIpMode::Auto,
            port_creation_mode: PortCreationMode::Nova,
            sparsify: None,
            verify: None,
            compression: None,
            use_nbdkit_direct: false,
            nbdkit_socket_uri: None,
            nbdkit_export_name: None,
            local_disks: None,
            extra: Extra::new(),
        }
    }
}

impl MigrationParams {
    /// The destination boot volume to reuse, in either spelling.
    pub fn reused_boot_volume(&self) -> Option<&str> {
        self.boot_volume
            .uuid
            .as_deref()
            .or(self.boot_volume_id.as_deref())
    }

    /// The destination volumes attached to the new server when `data_copy` is false, in order: as
    /// upstream, every non-null `additional_volumes[].uuid` (null slots are skipped), whatever the
    /// number of the source's additional volumes; else the newer spelling `additional_volume_ids`.
    pub fn reused_additional_volumes(&self) -> Vec<&str> {
        let ids: Vec<&str> = self
            .additional_volumes
            .iter()
            .filter_map(|v| v.uuid.as_deref())
            .collect();
        if !ids.is_empty() {
            return ids;
        }
        self.additional_volume_ids
            .iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// Whether free filesystem space is skipped during the copy.
    pub fn sparsify(&self) -> bool {
        self.sparsify.unwrap_or(true)
    }
}
