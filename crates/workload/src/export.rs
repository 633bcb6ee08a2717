//! Export: serializing source servers into the workloads file (DESIGN.md sections 1 and 5).
//!
//! An [`Exporter`] fetches what servers refer to (flavors, networks, subnets, security groups, ports,
//! floating IPs, volumes, projects) once, so exporting N servers costs a few list calls, not N
//! times every list.

use std::collections::{BTreeMap, HashMap};

use osm_openstack::{self as os, Connection, Query};
use serde_json::Value;

use crate::file::{FileError, WorkloadsFile};
use crate::filter::{Filter, FilterError};
use crate::model::{
    Extra, FixedIpRef, FloatingIpParams, MigrationParams, PortParams, Ref, Server,
    ServerFloatingIp, ServerInfo, ServerParams, ServerPort, ServerVolume, VolumeInfo, VolumeParams,
    VolumeUuid, AUTH_PROJECT, FLOATING_IP_TYPE, PORT_TYPE, SERVER_TYPE, VOLUME_TYPE,
};

/// What failed during an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A call to the source cloud failed.
    #[error("source cloud: {doing}: {source}")]
    Cloud {
        /// What was being done.
        doing: String,
        /// The client's error.
        source: os::Error,
    },
    /// No source server has the requested name or ID.
    #[error("source cloud: no server named or with ID {0:?}")]
    ServerNotFound(String),
    /// The workloads file is unusable.
    #[error(transparent)]
    File(#[from] FileError),
    /// The filter is unusable.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// Two servers would have one name in the workloads file; the destination could not tell them apart.
    #[error("servers {first} and {second} are both named '{name}'; rename one in the source cloud (or remove one from workloads.yml) so that each workload has its own name")]
    DuplicateName {
        /// The name.
        name: String,
        /// One server ID.
        first: String,
        /// The other.
        second: String,
    },
}

fn cloud(doing: impl FnOnce() -> String) -> impl FnOnce(os::Error) -> ExportError {
    move |source| ExportError::Cloud {
        doing: doing(),
        source,
    }
}

/// Export settings.
#[derive(Debug, Clone, Default)]
pub struct ExportSettings {
    /// `os_migrate_workloads_boot_disk_copy`, as upstream: `None` lets each server decide (false
    /// for a server booted from an image, true for one booted from a volume, and an existing entry
    /// keeps its value); a value is applied to every exported server booted from an image, over
    /// what its entry held. A server booted from a volume keeps `true`: it has no image to boot from.
    pub boot_disk_copy: Option<bool>,
}

/// Which servers to export.
#[derive(Debug, Clone)]
pub enum Selection {
    /// One server, by name or ID.
    One(String),
    /// Every server whose name passes the filter.
    Matching(Filter),
}

/// What an export did to the workloads file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportReport {
    /// Whether the file changed (or would, in check mode).
    pub changed: bool,
    /// Names of the exported servers.
    pub exported: Vec<String>,
    /// Names of servers added to the file.
    pub added: Vec<String>,
    /// Names of servers whose entry changed.
    pub updated: Vec<String>,
    /// The file's text before and after (for `--diff`).
    #[serde(skip)]
    pub before: String,
    /// The file's text after.
    #[serde(skip)]
    pub after: String,
    /// Things the operator should know (an image that no longer exists, ...).
    pub warnings: Vec<String>,
}

/// Serializes source servers, with every lookup done once.
pub struct Exporter<'a> {
    conn: &'a Connection,
    projects: HashMap<String, (Option<String>, Option<String>)>,
    flavors: Vec<os::Flavor>,
    networks: HashMap<String, os::Network>,
    subnets: HashMap<String, os::Subnet>,
    security_groups: HashMap<String, os::SecurityGroup>,
    ports_by_device: HashMap<String, Vec<os::Port>>,
    fips_by_port: HashMap<String, Vec<os::FloatingIp>>,
    volumes: HashMap<String, os::Volume>,
    images: HashMap<String, Option<os::Image>>,
    qos_policies: Option<HashMap<String, os::QosPolicy>>,
    warnings: Vec<String>,
}

impl<'a> Exporter<'a> {
    /// Fetches everything servers refer to, once.
    pub fn new(conn: &'a Connection) -> Result<Exporter<'a>, ExportError> {
        let project_id = conn
            .project_id()
            .map_err(cloud(|| "finding the authenticated project".into()))?;
        let mine = Query::new().with("project_id", project_id.clone());
        let net = conn.network();
        let flavors = conn
            .compute()
            .list_flavors()
            .map_err(cloud(|| "listing flavors".into()))?;
        let networks = net
            .list_networks(&Query::new())
            .map_err(cloud(|| "listing networks".into()))?;
        let subnets = net
            .list_subnets(&Query::new())
            .map_err(cloud(|| "listing subnets".into()))?;
        let security_groups = net
            .list_security_groups(&mine)
            .map_err(cloud(|| "listing security groups".into()))?;
        let ports = net
            .list_ports(&mine)
            .map_err(cloud(|| "listing ports".into()))?;
        let fips = net
            .list_floating_ips(&mine)
            .map_err(cloud(|| "listing floating IPs".into()))?;
        let volumes = conn
            .block_storage()
            .list_volumes()
            .map_err(cloud(|| "listing volumes".into()))?;

        let mut ports_by_device: HashMap<String, Vec<os::Port>> = HashMap::new();
        for p in ports {
            if let Some(dev) = p.device_id.clone().filter(|d| !d.is_empty()) {
                ports_by_device.entry(dev).or_default().push(p);
            }
        }
        let mut fips_by_port: HashMap<String, Vec<os::FloatingIp>> = HashMap::new();
        for f in fips {
            if let Some(port) = f.port_id.clone() {
                fips_by_port.entry(port).or_default().push(f);
            }
        }
        let mut exporter = Exporter {
            conn,
            projects: HashMap::new(),
            flavors,
            networks: networks.into_iter().map(|n| (n.id.clone(), n)).collect(),
            subnets: subnets.into_iter().map(|s| (s.id.clone(), s)).collect(),
            security_groups: security_groups
                .into_iter()
                .map(|s| (s.id.clone(), s))
                .collect(),
            ports_by_device,
            fips_by_port,
            volumes: volumes.into_iter().map(|v| (v.id.clone(), v)).collect(),
            images: HashMap::new(),
            qos_policies: None,
            warnings: Vec::new(),
        };
        exporter.projects.insert(
            project_id,
            (Some(AUTH_PROJECT.into()), Some(AUTH_PROJECT.into())),
        );
        Ok(exporter)
    }

    /// Warnings gathered so far.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The project and domain names of a project ID, `%auth%` for the authenticated project; None
    /// where the cloud does not let us see them.
    fn project_names(&mut self, project_id: Option<&str>) -> (Option<String>, Option<String>) {
        let Some(id) = project_id.filter(|p| !p.is_empty()) else {
            return (None, None);
        };
        if let Some(names) = self.projects.get(id) {
            return names.clone();
        }
        let names = match self.conn.identity().get_project(id) {
            Ok(p) => {
                let domain = p
                    .domain_id
                    .as_deref()
                    .and_then(|d| self.conn.identity().get_domain(d).ok())
                    .map(|d| d.name);
                (Some(p.name), domain)
            }
            Err(_) => (None, None),
        };
        self.projects.insert(id.to_string(), names.clone());
        names
    }

    fn reference(&mut self, name: &str, project_id: Option<&str>) -> Ref {
        let (project_name, domain_name) = self.project_names(project_id);
        Ref {
            name: name.to_string(),
            project_name,
            domain_name,
        }
    }

    fn image(&mut self, id: &str) -> Result<Option<os::Image>, ExportError> {
        if let Some(i) = self.images.get(id) {
            return Ok(i.clone());
        }
        let image = match self.conn.image().get_image(id) {
            Ok(i) => Some(i),
            Err(e) if e.status() == Some(404) || matches!(e, os::Error::NotFound { .. }) => None,
            Err(e) => {
                return Err(ExportError::Cloud {
                    doing: format!("reading image {id}"),
                    source: e,
                })
            }
        };
        self.images.insert(id.to_string(), image.clone());
        Ok(image)
    }

    /// Serializes one server.
    pub fn serialize(
        &mut self,
        s: &os::Server,
        settings: &ExportSettings,
    ) -> Result<Server, ExportError> {
        let flavor = self.flavor_of(s);
        let flavor_ref = Ref {
            name: flavor
                .as_ref()
                .map(|f| f.name.clone())
                .or_else(|| s.flavor.original_name.clone())
                .unwrap_or_default(),
            project_name: None,
            domain_name: None,
        };
        let mut migration = MigrationParams {
            boot_disk_copy: settings.boot_disk_copy.unwrap_or(false),
            ..MigrationParams::default()
        };

        let image_ref = match s
            .image
            .as_ref()
            .map(|i| i.id.as_str())
            .filter(|id| !id.is_empty())
        {
            None => {
                if settings.boot_disk_copy == Some(false) {
                    self.warnings.push(format!(
                        "server '{}' boots from a volume: its boot_disk_copy stays true (os_migrate_workloads_boot_disk_copy is false), since there is no image to boot it from",
                        s.name
                    ));
                }
                migration.boot_disk_copy = true;
                None
            }
            Some(id) => match self.image(id)? {
                Some(img) => Some(self.reference(&img.name, img.owner.as_deref())),
                None => {
                    self.warnings.push(format!(
                        "server '{}': its image {id} no longer exists; boot_disk_copy is set so the boot disk is copied",
                        s.name
                    ));
                    migration.boot_disk_copy = true;
                    Some(Ref::in_auth_project(format!("deleted-image-{id}")))
                }
            },
        };

        let ports = self.ports_in_nic_order(s);
        let mut sg_ids: Vec<String> = Vec::new();
        for p in &ports {
            for sg in &p.security_groups {
                if !sg_ids.contains(sg) {
                    sg_ids.push(sg.clone());
                }
            }
        }
        let mut security_group_refs: Vec<Ref> = Vec::new();
        for id in &sg_ids {
            if let Some(sg) = self.security_groups.get(id).cloned() {
                security_group_refs.push(self.reference(&sg.name, sg.project_id.as_deref()));
            }
        }
        if sg_ids.is_empty() {
            for sg in &s.security_groups {
                security_group_refs.push(Ref::in_auth_project(sg.name.clone()));
            }
        }
        security_group_refs.sort_by(|a, b| a.name.cmp(&b.name));
        security_group_refs.dedup();

        let mut ser_ports = Vec::new();
        let mut ser_fips = Vec::new();
        for p in &ports {
            ser_ports.push(self.port(p));
            for f in self.fips_by_port.get(&p.id).cloned().unwrap_or_default() {
                ser_fips.push(self.floating_ip(&f)?);
            }
        }
        let volumes = s
            .volumes_attached
            .iter()
            .filter_map(|a| self.volumes.get(&a.id).cloned())
            .collect::<Vec<_>>();
        let ser_volumes: Vec<ServerVolume> = volumes.iter().map(|v| volume(v, &s.id)).collect();

        let config_drive = match &s.config_drive {
            Value::String(x) if x.is_empty() => None,
            Value::Null => None,
            v => Some(v.clone()),
        };
        let mut info_extra = Extra::new();
        for (k, v) in [
            ("created_at", &s.created_at),
            ("updated_at", &s.updated_at),
            ("launched_at", &s.launched_at),
            ("hypervisor_hostname", &s.hypervisor_hostname),
        ] {
            if let Some(v) = v {
                info_extra.insert(k.into(), Value::String(v.clone()));
            }
        }
        let (ephemeral, swap) = match &flavor {
            Some(f) if s.flavor.ephemeral.is_none() => (f.ephemeral, f.swap),
            _ => (s.flavor.ephemeral.unwrap_or(0), s.flavor.swap.unwrap_or(0)),
        };
        if ephemeral > 0 {
            self.warnings.push(format!(
                "server '{}': its flavor has a local ephemeral disk ({ephemeral} GiB) on the hypervisor, whose data no API can read: the import refuses it unless its _migration_params.local_disks is recreate (a new, empty disk)",
                s.name
            ));
        }
        let mut server = Server {
            kind: SERVER_TYPE.into(),
            params: ServerParams {
                name: s.name.clone(),
                description: s.description.clone(),
                availability_zone: s.availability_zone.clone(),
                config_drive,
                disk_config: s.disk_config.clone(),
                key_name: s.key_name.clone(),
                metadata: s
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
                tags: s.tags.clone(),
                user_data: s.user_data.clone(),
                scheduler_hints: s.scheduler_hints.clone().map(Value::Object),
                flavor_ref,
                image_ref,
                security_group_refs,
                ports: ser_ports,
                floating_ips: ser_fips,
                volumes: ser_volumes,
                extra: Extra::new(),
            },
            info: ServerInfo {
                id: s.id.clone(),
                status: Some(s.status.clone()),
                project_id: s.project_id.clone(),
                user_id: s.user_id.clone(),
                flavor_id: flavor.map(|f| f.id).or_else(|| s.flavor.id.clone()),
                security_group_ids: Some(sg_ids),
                flavor_ephemeral_gb: Some(ephemeral).filter(|e| *e > 0),
                flavor_swap_mb: Some(swap).filter(|w| *w > 0),
                extra: info_extra,
            },
            migration_params: migration,
        };
        // One slot per additional volume for the operator to fill when data_copy is false (upstream
        // writes a single one whatever the server has).
        server.migration_params.additional_volumes =
            vec![VolumeUuid::default(); server.additional_volumes().len()];
        Ok(server)
    }

    fn flavor_of(&self, s: &os::Server) -> Option<os::Flavor> {
        if let Some(id) = &s.flavor.id {
            if let Some(f) = self.flavors.iter().find(|f| &f.id == id) {
                return Some(f.clone());
            }
        }
        let name = s.flavor.original_name.as_deref()?;
        let same_name: Vec<&os::Flavor> = self.flavors.iter().filter(|f| f.name == name).collect();
        let exact = same_name.iter().find(|f| {
            Some(f.vcpus) == s.flavor.vcpus
                && Some(f.ram) == s.flavor.ram
                && Some(f.disk) == s.flavor.disk
        });
        exact.or(same_name.first()).map(|f| (*f).clone())
    }

    /// The server's ports owned by Nova (`compute:*`), in NIC order: the order of their MACs in
    /// the server's `addresses`. Nova's interface list is not that order on a real cloud (it is
    /// Neutron's port listing). Ports without an address come last, by ID.
    fn ports_in_nic_order(&self, s: &os::Server) -> Vec<os::Port> {
        let mut ports: Vec<os::Port> = self
            .ports_by_device
            .get(&s.id)
            .map(|ps| {
                ps.iter()
                    .filter(|p| {
                        p.device_owner
                            .as_deref()
                            .is_some_and(|o| o.starts_with("compute:"))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let macs = s.addresses.macs();
        let pos = |p: &os::Port| {
            p.mac_address
                .as_deref()
                .and_then(|m| macs.iter().position(|x| x.eq_ignore_ascii_case(m)))
                .unwrap_or(usize::MAX)
        };
        ports.sort_by(|a, b| pos(a).cmp(&pos(b)).then(a.id.cmp(&b.id)));
        ports
    }

    fn port(&mut self, p: &os::Port) -> ServerPort {
        let network = self.networks.get(&p.network_id).cloned();
        let network_ref = match &network {
            Some(n) => self.reference(&n.name, n.project_id.as_deref()),
            None => Ref::in_auth_project(p.network_id.clone()),
        };
        let mut fixed_ips_refs = Vec::new();
        for ip in &p.fixed_ips {
            let subnet = ip
                .subnet_id
                .as_ref()
                .and_then(|id| self.subnets.get(id))
                .cloned();
            let subnet_ref = subnet.map(|sn| self.reference(&sn.name, sn.project_id.as_deref()));
            fixed_ips_refs.push(FixedIpRef {
                ip_address: ip.ip_address.clone(),
                subnet_ref,
            });
        }
        let mut info = Extra::new();
        info.insert("id".into(), Value::String(p.id.clone()));
        info.insert(
            "device_owner".into(),
            p.device_owner.clone().map_or(Value::Null, Value::String),
        );
        info.insert(
            "device_id".into(),
            p.device_id.clone().map_or(Value::Null, Value::String),
        );
        ServerPort {
            kind: PORT_TYPE.into(),
            params: PortParams {
                network_ref,
                fixed_ips_refs,
                mac_address: p.mac_address.clone(),
                binding_profile: Some(Value::Object(p.binding_profile.clone())),
                binding_vnic_type: p.binding_vnic_type.clone(),
                extra: Extra::new(),
            },
            info,
            migration_params: Extra::new(),
        }
    }

    /// The QoS policy of `id` (listed once, on the first floating IP that has one).
    fn qos_policy(&mut self, id: &str) -> Result<Option<os::QosPolicy>, ExportError> {
        if self.qos_policies.is_none() {
            let list = self
                .conn
                .network()
                .list_qos_policies(&Query::new())
                .map_err(cloud(|| "listing QoS policies".into()))?;
            self.qos_policies = Some(list.into_iter().map(|q| (q.id.clone(), q)).collect());
        }
        Ok(self.qos_policies.as_ref().and_then(|m| m.get(id)).cloned())
    }

    fn floating_ip(&mut self, f: &os::FloatingIp) -> Result<ServerFloatingIp, ExportError> {
        let floating_network_ref = self
            .networks
            .get(&f.floating_network_id)
            .cloned()
            .map(|n| self.reference(&n.name, n.project_id.as_deref()));
        let qos_policy_ref = match f.qos_policy_id.as_deref().filter(|q| !q.is_empty()) {
            Some(id) => match self.qos_policy(id)? {
                Some(q) => Some(self.reference(&q.name, q.project_id.as_deref())),
                None => {
                    self.warnings.push(format!(
                        "floating IP {}: its QoS policy {id} is not visible to the project; the floating IP is exported without it",
                        f.floating_ip_address
                    ));
                    None
                }
            },
            None => None,
        };
        // The keys upstream's serializer writes under _info.
        let mut info = Extra::new();
        for (k, v) in [
            ("id", Some(&f.id)),
            ("floating_network_id", Some(&f.floating_network_id)),
            ("port_id", f.port_id.as_ref()),
            ("qos_policy_id", f.qos_policy_id.as_ref()),
            ("router_id", f.router_id.as_ref()),
        ] {
            info.insert(k.into(), v.cloned().map_or(Value::Null, Value::String));
        }
        for k in ["created_at", "updated_at"] {
            info.insert(k.into(), f.extra.get(k).cloned().unwrap_or(Value::Null));
        }
        info.insert("tags".into(), Value::from(f.tags.clone()));
        Ok(ServerFloatingIp {
            kind: FLOATING_IP_TYPE.into(),
            params: FloatingIpParams {
                floating_network_ref,
                floating_ip_address: Some(f.floating_ip_address.clone()),
                fixed_ip_address: f.fixed_ip_address.clone(),
                description: f.description.clone().filter(|d| !d.is_empty()),
                dns_domain: f.dns_domain.clone().filter(|d| !d.is_empty()),
                dns_name: f.dns_name.clone().filter(|d| !d.is_empty()),
                qos_policy_ref,
                extra: Extra::new(),
            },
            info,
            migration_params: Extra::new(),
        })
    }
}

fn volume(v: &os::Volume, server_id: &str) -> ServerVolume {
    let attachments = v
        .attachments
        .iter()
        .filter(|a| a.server_id.as_deref() == Some(server_id))
        .map(|a| {
            let mut m: BTreeMap<String, Value> = BTreeMap::new();
            let s = |x: &Option<String>| x.clone().map_or(Value::Null, Value::String);
            m.insert("attached_at".into(), s(&a.attached_at));
            m.insert("attachment_id".into(), s(&a.attachment_id));
            m.insert("device".into(), s(&a.device));
            m.insert("host_name".into(), s(&a.host_name));
            m.insert("id".into(), Value::String(v.id.clone()));
            m.insert("server_id".into(), s(&a.server_id));
            m.insert("volume_id".into(), Value::String(v.id.clone()));
            m
        })
        .collect();
    ServerVolume {
        kind: VOLUME_TYPE.into(),
        params: VolumeParams {
            name: Some(v.name.clone()).filter(|n| !n.is_empty()),
            description: v.description.clone().filter(|d| !d.is_empty()),
            volume_type: v.volume_type.clone(),
            availability_zone: v.availability_zone.clone(),
            volume_image_metadata: if v.volume_image_metadata.is_empty() {
                None
            } else {
                Some(
                    v.volume_image_metadata
                        .iter()
                        .map(|(k, x)| (k.clone(), Value::String(x.clone())))
                        .collect(),
                )
            },
            extra: Extra::new(),
        },
        info: VolumeInfo {
            id: v.id.clone(),
            size: v.size,
            is_bootable: v.is_bootable,
            attachments,
            extra: Extra::new(),
        },
        migration_params: Extra::new(),
    }
}

/// Lists the source servers that `filter` selects.
pub fn list_servers(conn: &Connection, filter: &Filter) -> Result<Vec<os::Server>, ExportError> {
    let servers = conn
        .compute()
        .list_servers()
        .map_err(cloud(|| "listing servers".into()))?;
    let mut servers = filter.select(servers, |s| &s.name)?;
    servers.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(servers)
}

/// Exports the selected servers into the workloads file at `path`. The file is only written when its
/// content changes, and never in check mode. An operator's edits of an entry's `_migration_params`
/// survive a re-export, except `boot_disk_copy`: forced for servers booted from a volume, and set by
/// `settings.boot_disk_copy` when given (upstream applies it on every export).
pub fn export(
    conn: &Connection,
    path: &std::path::Path,
    selection: &Selection,
    settings: &ExportSettings,
    check_mode: bool,
) -> Result<ExportReport, ExportError> {
    let servers = match selection {
        Selection::One(name_or_id) => {
            let s = conn
                .compute()
                .find_server(name_or_id)
                .map_err(cloud(|| format!("looking up server {name_or_id:?}")))?
                .ok_or_else(|| ExportError::ServerNotFound(name_or_id.clone()))?;
            vec![s]
        }
        Selection::Matching(filter) => list_servers(conn, filter)?,
    };
    let mut file = WorkloadsFile::load_or_new(path)?;
    let before = if path.exists() {
        file.to_yaml(path)?
    } else {
        String::new()
    };
    let mut exporter = Exporter::new(conn)?;
    let mut report = ExportReport::default();
    for s in &servers {
        let mut ser = exporter.serialize(s, settings)?;
        if let Some(existing) = file.resources.iter().find(|r| r.info.id == ser.info.id) {
            let forced = ser.params.image_ref.is_none() || settings.boot_disk_copy.is_some();
            let boot_disk_copy = ser.migration_params.boot_disk_copy;
            ser.migration_params = existing.migration_params.clone();
            if forced {
                ser.migration_params.boot_disk_copy = boot_disk_copy;
            }
        }
        if let Some(other) = file
            .resources
            .iter()
            .find(|r| r.params.name == ser.params.name && r.info.id != ser.info.id)
        {
            return Err(ExportError::DuplicateName {
                name: ser.params.name.clone(),
                first: other.info.id.clone(),
                second: ser.info.id.clone(),
            });
        }
        let known = file.resources.iter().any(|r| r.info.id == ser.info.id);
        let name = ser.params.name.clone();
        if file.add_or_replace(ser) {
            if known {
                report.updated.push(name.clone())
            } else {
                report.added.push(name.clone())
            }
        }
        report.exported.push(name);
    }
    report.warnings = exporter.take_warnings();
    let after = file.to_yaml(path)?;
    report.changed = after != before;
    if report.changed && !check_mode {
        file.save(path)?;
    }
    report.before = before;
    report.after = after;
    Ok(report)
}
