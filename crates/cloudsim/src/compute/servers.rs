//! Servers: the record, its rendering at each microversion, list (Nova's filters and sorting),
//! show, update and delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::jobs;
use crate::network::AddrIndex;
use crate::sim::Sim;
use crate::state::Cloud;
use crate::util::{self, Ts};

use super::create::create_server;
use super::{links, list_page, server_mut, with_server, HOST};

/// A server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    /// UUID.
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// Name.
    pub name: String,
    /// Owner.
    pub project_id: String,
    /// Creator.
    pub user_id: String,
    /// building, active, stopped, error, deleted.
    pub vm_state: String,
    /// scheduling, powering-off, powering-on, rebooting, deleting, image_snapshot, ...
    pub task_state: Option<String>,
    /// 0 no state, 1 running, 4 shutdown.
    pub power_state: u8,
    /// Flavor copy.
    pub flavor: FlavorCopy,
    /// Image of an image-booted server (None when booted from a volume).
    pub image_id: Option<String>,
    /// Key name.
    pub key_name: Option<String>,
    /// Public key text of the keypair at boot.
    pub key_data: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Base64 user data.
    pub user_data: Option<String>,
    /// AZ.
    pub availability_zone: String,
    /// Config drive.
    pub config_drive: bool,
    /// AUTO / MANUAL.
    pub disk_config: String,
    /// Description.
    pub description: Option<String>,
    /// os:scheduler_hints.
    pub scheduler_hints: Value,
    /// accessIPv4.
    pub access_ipv4: String,
    /// accessIPv6.
    pub access_ipv6: String,
    /// Created.
    pub created: Ts,
    /// Updated.
    pub updated: Ts,
    /// Launched.
    pub launched_at: Option<Ts>,
    /// Terminated.
    pub terminated_at: Option<Ts>,
    /// Loopback address of a conversion host's sshd.
    pub host_addr: Option<String>,
    /// Simulated conversion host.
    pub is_host: bool,
    /// Ports Nova created (deleted with the server).
    pub created_ports: Vec<String>,
    /// Every port in the order the server asked for them (the order of `addresses`).
    #[serde(default)]
    pub port_order: Vec<String>,
    /// Volumes.
    pub bdms: Vec<Bdm>,
    /// Fault (ERROR).
    pub fault: Option<ServerFault>,
    /// instance-%08x.
    pub instance_index: u64,
    /// Locked.
    pub locked: bool,
    /// Security group names asked for (servers without ports still report them).
    pub security_groups: Vec<String>,
    /// `hw_disk_bus` of its image or boot volume: `scsi` (virtio-scsi), `sata` and `usb` disks are
    /// `/dev/sdX`, `ide` ones `/dev/hdX`, the rest (virtio-blk) `/dev/vdX`; on a conversion host, a
    /// SCSI disk's by-id link is `scsi-0QEMU_QEMU_HARDDISK_<serial>`.
    #[serde(default)]
    pub disk_bus: Option<String>,
    /// Hostname.
    pub hostname: String,
    /// Reservation id.
    pub reservation_id: String,
}

impl Server {
    /// Nova's status from vm_state and task_state.
    pub fn status(&self) -> &'static str {
        match self.vm_state.as_str() {
            "building" => "BUILD",
            "active" => match self.task_state.as_deref() {
                Some("rebooting") | Some("reboot_started") => "REBOOT",
                Some("rebooting_hard") | Some("reboot_started_hard") => "HARD_REBOOT",
                _ => "ACTIVE",
            },
            "stopped" => "SHUTOFF",
            "error" => "ERROR",
            "deleted" => "DELETED",
            "paused" => "PAUSED",
            "suspended" => "SUSPENDED",
            _ => "UNKNOWN",
        }
    }

    /// Root disk file of an image-booted server.
    pub fn has_root_disk(&self) -> bool {
        self.image_id.is_some()
    }
}

/// The flavor as recorded in the server (Nova embeds a copy).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlavorCopy {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// MiB.
    pub ram: u64,
    /// vCPUs.
    pub vcpus: u64,
    /// GiB.
    pub disk: u64,
    /// GiB.
    pub ephemeral: u64,
    /// MiB.
    pub swap: u64,
    /// Extra specs.
    pub extra_specs: BTreeMap<String, String>,
}

/// One volume of a server (Nova's block device mapping).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bdm {
    /// Volume.
    pub volume_id: String,
    /// 0 for the boot volume.
    pub boot_index: Option<i64>,
    /// `/dev/vda`.
    pub device: String,
    /// Delete the volume with the server.
    pub delete_on_termination: bool,
    /// Cinder attachment id.
    pub attachment_id: String,
    /// BDM uuid (2.89).
    pub bdm_id: String,
    /// Device tag.
    pub tag: Option<String>,
    /// Whether the volume was created for this server at boot (waits for it).
    pub created_for_boot: bool,
}

/// A server fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFault {
    /// HTTP-like code.
    pub code: u16,
    /// Message.
    pub message: String,
    /// When.
    pub created: Ts,
}

fn host_id(project: &str) -> String {
    let mut h = sha2::Sha224::new();
    h.update(format!("{project}{HOST}").as_bytes());
    hex::encode(h.finalize())
}

/// Renders a server in detail at microversion `mv`.
fn render_server(ctx: &Ctx, cloud: &Cloud, idx: &AddrIndex, s: &Server) -> Value {
    let mv = ctx.mv;
    let status = s.status();
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id));
    m.insert("name".into(), json!(s.name));
    m.insert("status".into(), json!(status));
    m.insert("tenant_id".into(), json!(s.project_id));
    m.insert("user_id".into(), json!(s.user_id));
    m.insert("metadata".into(), json!(s.metadata));
    m.insert(
        "hostId".into(),
        json!(if s.vm_state == "building" {
            String::new()
        } else {
            host_id(&s.project_id)
        }),
    );
    m.insert(
        "image".into(),
        match &s.image_id {
            Some(i) => json!({"id": i, "links": [{"rel": "bookmark", "href": ctx.url(&format!("/compute/images/{i}"))}]}),
            None => json!(""),
        },
    );
    let f = &s.flavor;
    m.insert(
        "flavor".into(),
        if mv.ge(2, 47) {
            let mut fl = json!({"vcpus": f.vcpus, "ram": f.ram, "disk": f.disk, "ephemeral": f.ephemeral, "swap": f.swap, "original_name": f.name});
            if mv.ge(2, 47) {
                fl["extra_specs"] = json!(f.extra_specs);
            }
            fl
        } else {
            json!({"id": f.id, "links": [{"rel": "bookmark", "href": ctx.url(&format!("/compute/flavors/{}", f.id))}]})
        },
    );
    m.insert("created".into(), json!(util::iso(&s.created)));
    m.insert("updated".into(), json!(util::iso(&s.updated)));
    let (addresses, nic_order) = idx.addresses(&s.id, &s.port_order, s.host_addr.as_deref());
    m.insert("addresses".into(), addresses);
    m.insert(http::KEY_ORDER.into(), json!({ "addresses": nic_order }));
    m.insert("accessIPv4".into(), json!(s.access_ipv4));
    m.insert("accessIPv6".into(), json!(s.access_ipv6));
    m.insert("links".into(), links(ctx, "servers", &s.id));
    m.insert("OS-DCF:diskConfig".into(), json!(s.disk_config));
    m.insert(
        "progress".into(),
        json!(if status == "ACTIVE" || status == "SHUTOFF" {
            100
        } else {
            0
        }),
    );
    m.insert(
        "OS-EXT-AZ:availability_zone".into(),
        json!(if s.vm_state == "building" {
            String::new()
        } else {
            s.availability_zone.clone()
        }),
    );
    m.insert(
        "config_drive".into(),
        json!(if s.config_drive { "True" } else { "" }),
    );
    m.insert("key_name".into(), json!(s.key_name));
    m.insert(
        "OS-SRV-USG:launched_at".into(),
        json!(s.launched_at.as_ref().map(util::iso_micro)),
    );
    m.insert(
        "OS-SRV-USG:terminated_at".into(),
        json!(s.terminated_at.as_ref().map(util::iso_micro)),
    );
    let placed = s.vm_state != "building" || s.task_state.as_deref() != Some("scheduling");
    m.insert("OS-EXT-SRV-ATTR:host".into(), json!(placed.then_some(HOST)));
    m.insert(
        "OS-EXT-SRV-ATTR:instance_name".into(),
        json!(format!("instance-{:08x}", s.instance_index)),
    );
    m.insert(
        "OS-EXT-SRV-ATTR:hypervisor_hostname".into(),
        json!(placed.then(|| format!("{HOST}.{}", cloud.name))),
    );
    m.insert("OS-EXT-STS:task_state".into(), json!(s.task_state));
    m.insert("OS-EXT-STS:vm_state".into(), json!(s.vm_state));
    m.insert("OS-EXT-STS:power_state".into(), json!(s.power_state));
    let vols: Vec<Value> = s
        .bdms
        .iter()
        .map(|b| {
            if mv.ge(2, 3) {
                json!({"id": b.volume_id, "delete_on_termination": b.delete_on_termination})
            } else {
                json!({"id": b.volume_id})
            }
        })
        .collect();
    m.insert("os-extended-volumes:volumes_attached".into(), json!(vols));
    let mut sg_names = idx.security_group_names(&s.id);
    if sg_names.is_empty() && idx.ports(&s.id).is_empty() {
        sg_names = s.security_groups.clone();
    }
    if !sg_names.is_empty() {
        m.insert(
            "security_groups".into(),
            json!(sg_names
                .iter()
                .map(|n| json!({"name": n}))
                .collect::<Vec<_>>()),
        );
    }
    if mv.ge(2, 3) {
        m.insert(
            "OS-EXT-SRV-ATTR:reservation_id".into(),
            json!(s.reservation_id),
        );
        m.insert("OS-EXT-SRV-ATTR:launch_index".into(), json!(0));
        m.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(s.hostname));
        m.insert("OS-EXT-SRV-ATTR:kernel_id".into(), json!(""));
        m.insert("OS-EXT-SRV-ATTR:ramdisk_id".into(), json!(""));
        m.insert("OS-EXT-SRV-ATTR:root_device_name".into(), json!("/dev/vda"));
        m.insert("OS-EXT-SRV-ATTR:user_data".into(), json!(s.user_data));
    }
    if mv.ge(2, 9) {
        m.insert("locked".into(), json!(s.locked));
    }
    if mv.ge(2, 16) && s.vm_state != "building" {
        m.insert("host_status".into(), json!("UP"));
    }
    if mv.ge(2, 19) {
        m.insert("description".into(), json!(s.description));
    }
    if mv.ge(2, 26) {
        m.insert("tags".into(), json!(s.tags));
    }
    if mv.ge(2, 63) {
        m.insert("trusted_image_certificates".into(), Value::Null);
    }
    if mv.ge(2, 71) {
        m.insert("server_groups".into(), json!([]));
    }
    if mv.ge(2, 73) {
        m.insert("locked_reason".into(), Value::Null);
    }
    if mv.ge(2, 96) {
        m.insert("pinned_availability_zone".into(), Value::Null);
    }
    if let (Some(f), "error") = (&s.fault, s.vm_state.as_str()) {
        m.insert("fault".into(), json!({"code": f.code, "created": util::iso(&f.created), "message": f.message, "details": ""}));
    }
    Value::Object(m)
}

fn name_filter(pattern: &str) -> Box<dyn Fn(&str) -> bool + Send> {
    // Nova matches names with a regex search (MySQL's REGEXP, case-insensitive).
    match regex::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
    {
        Ok(re) => Box::new(move |n: &str| re.is_match(n)),
        Err(_) => {
            let p = pattern.to_lowercase();
            Box::new(move |n: &str| n.to_lowercase().contains(&p))
        }
    }
}

fn list_filtered(ctx: &Ctx, q: &Q, detail: bool) -> Result<Response, ApiError> {
    let all_tenants = q
        .get("all_tenants")
        .is_some_and(|v| util::parse_bool_str(v) != Some(false))
        && ctx.is_admin();
    let want_deleted = q
        .get("deleted")
        .and_then(util::parse_bool_str)
        .unwrap_or(false);
    let name = q.get("name").map(name_filter);
    let status = q.get("status").map(|s| s.to_ascii_uppercase());
    let ip = q.get("ip").map(name_filter);
    let changes_since = match q.get("changes-since").or(q.get("changes_since")) {
        None => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|n| n.and_utc())
                })
                .map_err(|_| ApiError::bad_request(format!("Invalid changes-since value: {s}")))?,
        ),
    };
    let split = |k: &str| -> Vec<String> {
        q.get(k)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (tags, tags_any, not_tags, not_tags_any) = (
        split("tags"),
        split("tags-any"),
        split("not-tags"),
        split("not-tags-any"),
    );
    let project_filter = q
        .get("project_id")
        .or(q.get("tenant_id"))
        .map(str::to_string);
    let st = ctx.sim.lock();
    let cloud = st
        .clouds
        .get(&ctx.cloud)
        .ok_or_else(|| ApiError::internal("cloud vanished"))?;
    let idx = AddrIndex::new(&cloud.network);
    let mut servers: Vec<&Server> = cloud
        .compute
        .servers
        .values()
        .filter(|s| {
            if all_tenants {
                project_filter.as_ref().is_none_or(|p| &s.project_id == p)
            } else {
                s.project_id == ctx.project_id
            }
        })
        .filter(|s| {
            (s.vm_state == "deleted") == want_deleted || (want_deleted && changes_since.is_some())
        })
        .filter(|s| name.as_ref().is_none_or(|f| f(&s.name)))
        .filter(|s| status.as_ref().is_none_or(|st| s.status() == st))
        .filter(|s| {
            q.get("image")
                .is_none_or(|i| s.image_id.as_deref() == Some(util::ref_id(i)))
        })
        .filter(|s| {
            q.get("flavor")
                .is_none_or(|f| s.flavor.id == util::ref_id(f))
        })
        .filter(|s| {
            q.get("availability_zone")
                .is_none_or(|a| s.availability_zone == a)
        })
        .filter(|s| {
            q.get("key_name")
                .is_none_or(|k| s.key_name.as_deref() == Some(k))
        })
        .filter(|s| q.get("user_id").is_none_or(|u| s.user_id == u))
        .filter(|_| q.get("host").is_none_or(|h| h == HOST))
        .filter(|s| {
            q.get("locked")
                .and_then(util::parse_bool_str)
                .is_none_or(|l| s.locked == l)
        })
        .filter(|s| changes_since.is_none_or(|t| s.updated >= t))
        .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
        .filter(|s| tags_any.is_empty() || tags_any.iter().any(|t| s.tags.contains(t)))
        .filter(|s| not_tags.is_empty() || !not_tags.iter().all(|t| s.tags.contains(t)))
        .filter(|s| !not_tags_any.iter().any(|t| s.tags.contains(t)))
        .filter(|s| {
            ip.as_ref().is_none_or(|f| {
                idx.ports(&s.id)
                    .iter()
                    .any(|p| p.fixed_ips.iter().any(|x| f(&x.ip_address)))
                    || s.host_addr.as_deref().is_some_and(&f)
            })
        })
        .collect();
    // Default order: newest first (created_at desc, then id desc).
    let key = q.get("sort_key").unwrap_or("created_at");
    let asc = q
        .get("sort_dir")
        .is_some_and(|d| d.eq_ignore_ascii_case("asc"));
    servers.sort_by(|a, b| {
        let o = match key {
            "display_name" | "name" => a.name.cmp(&b.name),
            "updated_at" => a.updated.cmp(&b.updated),
            _ => a.seq.cmp(&b.seq),
        }
        .then(a.seq.cmp(&b.seq));
        if asc {
            o
        } else {
            o.reverse()
        }
    });
    let page = http::paginate(servers, |s| s.id.clone(), q, 1000)?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|s| {
            if detail {
                render_server(ctx, cloud, &idx, s)
            } else {
                json!({"id": s.id, "name": s.name, "links": links(ctx, "servers", &s.id)})
            }
        })
        .collect();
    let path = if detail { "servers/detail" } else { "servers" };
    Ok(list_page(ctx, q, "servers", path, items, page.next_marker))
}

async fn list_servers(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    list_filtered(&ctx, &q, false)
}

async fn list_servers_detail(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    list_filtered(&ctx, &q, true)
}

async fn show_server(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, s| {
        let idx = AddrIndex::new(&c.network);
        Ok(http::ok(json!({"server": render_server(&ctx, c, &idx, s)})))
    })
}

async fn update_server(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "server")?.clone();
    let name = util::opt_str(&spec, "name")?;
    let description = util::opt_str(&spec, "description")?;
    let ipv4 = util::opt_str(&spec, "accessIPv4")?;
    let ipv6 = util::opt_str(&spec, "accessIPv6")?;
    let disk_config = util::opt_str(&spec, "OS-DCF:diskConfig")?;
    let hostname = util::opt_str(&spec, "hostname")?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        if let Some(n) = name {
            s.name = n;
        }
        if spec.get("description").is_some() {
            s.description = description;
        }
        if let Some(v) = ipv4 {
            s.access_ipv4 = v;
        }
        if let Some(v) = ipv6 {
            s.access_ipv6 = v;
        }
        if let Some(v) = disk_config {
            s.disk_config = v;
        }
        if let Some(h) = hostname {
            s.hostname = h;
        }
        s.updated = util::now();
        let s = s.clone();
        let idx = AddrIndex::new(&c.network);
        Ok(http::ok(
            json!({"server": render_server(&ctx, c, &idx, &s)}),
        ))
    })
}

async fn delete_server(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    start_delete(&ctx, &id)?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub(super) fn start_delete(ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    let spawn = ctx.write(|c, _| {
        let s = server_mut(ctx, c, id)?;
        if s.locked && !ctx.is_admin() {
            return Err(ApiError::conflict(format!("Instance {id} is locked")));
        }
        if s.vm_state == "deleted" || s.task_state.as_deref() == Some("deleting") {
            return Ok(false);
        }
        s.task_state = Some("deleting".into());
        s.updated = util::now();
        Ok(true)
    })?;
    if spawn {
        jobs::spawn_server(&ctx.sim, &ctx.cloud, id);
    }
    Ok(())
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/compute/v2.1/servers",
            get(list_servers).post(create_server),
        )
        .route("/compute/v2.1/servers/detail", get(list_servers_detail))
        .route(
            "/compute/v2.1/servers/{id}",
            get(show_server).put(update_server).delete(delete_server),
        )
}
