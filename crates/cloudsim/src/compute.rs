//! Nova v2.1: servers (create from image or volumes, lifecycle actions, createImage, volume and
//! interface attachments, metadata, tags), flavors, keypairs, availability zones, limits.
//!
//! A server's status is derived from its `vm_state` and `task_state`, as in Nova. Requests only
//! validate and record intent (`task_state`), and `crate::jobs` completes the transition later.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::error::ApiError;
use crate::http::{self, CloudCtx, Ctx, JsonBody, Mv, COMPUTE_MAX, COMPUTE_MIN, Q};
use crate::image::{Image, ImagePending};
use crate::jobs;
use crate::network::{self, AddrIndex, PortRequest};
use crate::sim::Sim;
use crate::state::{Cloud, State};
use crate::util::{self, Ts};
use crate::volume::{self, VolAttachment};

/// The one compute host every server lands on.
pub const HOST: &str = "cloudsim-compute";

/// A flavor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flavor {
    /// Flavor id (any string).
    pub id: String,
    /// Creation order.
    pub seq: u64,
    /// Name.
    pub name: String,
    /// MiB.
    pub ram: u64,
    /// vCPUs.
    pub vcpus: u64,
    /// Root disk GiB.
    pub disk: u64,
    /// Ephemeral GiB.
    pub ephemeral: u64,
    /// Swap MiB.
    pub swap: u64,
    /// rxtx_factor.
    pub rxtx_factor: f64,
    /// Public.
    pub is_public: bool,
    /// Description (2.55).
    pub description: Option<String>,
    /// Extra specs.
    pub extra_specs: BTreeMap<String, String>,
}

/// A keypair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keypair {
    /// Name, unique per user.
    pub name: String,
    /// Owner.
    pub user_id: String,
    /// Public key text.
    pub public_key: String,
    /// MD5 fingerprint.
    pub fingerprint: String,
    /// ssh or x509.
    pub kind: String,
    /// Created.
    pub created: Ts,
    /// Numeric id (shown by Nova).
    pub num: u64,
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

/// One cloud's Nova data.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ComputeData {
    /// Servers.
    pub servers: BTreeMap<String, Server>,
    /// Flavors.
    pub flavors: BTreeMap<String, Flavor>,
    /// Keypairs by `user_id/name`.
    pub keypairs: BTreeMap<String, Keypair>,
    /// Counter for instance names and keypair ids.
    pub counter: u64,
}

fn server_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Instance {id} could not be found."))
}

fn conflict_state(action: &str, s: &Server) -> ApiError {
    match &s.task_state {
        Some(t) => ApiError::conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {t}",
            s.id
        )),
        None => ApiError::conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {}",
            s.id, s.vm_state
        )),
    }
}

/// Nova routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/compute", get(versions))
        .route("/compute/v2.1", get(version))
        .route(
            "/compute/v2.1/servers",
            get(list_servers).post(create_server),
        )
        .route("/compute/v2.1/servers/detail", get(list_servers_detail))
        .route(
            "/compute/v2.1/servers/{id}",
            get(show_server).put(update_server).delete(delete_server),
        )
        .route("/compute/v2.1/servers/{id}/action", post(server_action))
        .route(
            "/compute/v2.1/servers/{id}/os-volume_attachments",
            get(list_attachments).post(attach_volume),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-volume_attachments/{vol}",
            get(show_attachment).delete(detach_volume),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-interface",
            get(list_interfaces).post(attach_interface),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-interface/{port}",
            get(show_interface).delete(detach_interface),
        )
        .route("/compute/v2.1/servers/{id}/ips", get(server_ips))
        .route(
            "/compute/v2.1/servers/{id}/metadata",
            get(get_metadata).post(merge_metadata).put(replace_metadata),
        )
        .route(
            "/compute/v2.1/servers/{id}/metadata/{key}",
            get(get_meta_item)
                .put(put_meta_item)
                .delete(delete_meta_item),
        )
        .route(
            "/compute/v2.1/servers/{id}/tags",
            get(get_tags).put(replace_tags).delete(clear_tags),
        )
        .route(
            "/compute/v2.1/servers/{id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(remove_tag),
        )
        .route(
            "/compute/v2.1/servers/{id}/os-instance-actions",
            get(instance_actions),
        )
        .route(
            "/compute/v2.1/flavors",
            get(list_flavors).post(create_flavor),
        )
        .route("/compute/v2.1/flavors/detail", get(list_flavors_detail))
        .route(
            "/compute/v2.1/flavors/{id}",
            get(show_flavor).put(update_flavor).delete(delete_flavor),
        )
        .route(
            "/compute/v2.1/flavors/{id}/os-extra_specs",
            get(flavor_extra_specs).post(set_flavor_extra_specs),
        )
        .route(
            "/compute/v2.1/flavors/{id}/os-flavor-access",
            get(flavor_access),
        )
        .route(
            "/compute/v2.1/os-keypairs",
            get(list_keypairs).post(create_keypair),
        )
        .route(
            "/compute/v2.1/os-keypairs/{name}",
            get(show_keypair).delete(delete_keypair),
        )
        .route(
            "/compute/v2.1/os-availability-zone",
            get(availability_zones),
        )
        .route(
            "/compute/v2.1/os-availability-zone/detail",
            get(availability_zones_detail),
        )
        .route("/compute/v2.1/limits", get(limits))
        .route("/compute/v2.1/os-quota-sets/{project}", get(quota_set))
        .route(
            "/compute/v2.1/os-quota-sets/{project}/detail",
            get(quota_set_detail),
        )
        .route("/compute/v2.1/extensions", get(extensions))
}

fn version_doc(sim: &Sim, cloud: &str) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT", "version": COMPUTE_MAX.to_string(), "min_version": COMPUTE_MIN.to_string(),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/{}/compute/v2.1/", sim.base_url, cloud)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    })
}

async fn versions(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    http::ok(json!({"versions": [version_doc(&sim, &cc.cloud)]}))
}

async fn version(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    cc: CloudCtx,
) -> Response {
    http::ok(json!({"version": version_doc(&sim, &cc.cloud)}))
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn links(ctx: &Ctx, kind: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": ctx.url(&format!("/compute/v2.1/{kind}/{id}"))},
        {"rel": "bookmark", "href": ctx.url(&format!("/compute/{kind}/{id}"))},
    ])
}

fn host_id(project: &str) -> String {
    let mut h = sha2::Sha224::new();
    h.update(format!("{project}{HOST}").as_bytes());
    hex::encode(h.finalize())
}

/// Renders a server in detail at microversion `mv`.
pub fn render_server(ctx: &Ctx, cloud: &Cloud, idx: &AddrIndex, s: &Server) -> Value {
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

fn render_flavor(ctx: &Ctx, f: &Flavor) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(f.id));
    m.insert("name".into(), json!(f.name));
    m.insert("ram".into(), json!(f.ram));
    m.insert("disk".into(), json!(f.disk));
    m.insert("vcpus".into(), json!(f.vcpus));
    m.insert("OS-FLV-EXT-DATA:ephemeral".into(), json!(f.ephemeral));
    m.insert("OS-FLV-DISABLED:disabled".into(), json!(false));
    m.insert(
        "swap".into(),
        if f.swap == 0 && !ctx.mv.ge(2, 75) {
            json!("")
        } else {
            json!(f.swap)
        },
    );
    m.insert("rxtx_factor".into(), json!(f.rxtx_factor));
    m.insert("os-flavor-access:is_public".into(), json!(f.is_public));
    m.insert("links".into(), links(ctx, "flavors", &f.id));
    if ctx.mv.ge(2, 55) {
        m.insert("description".into(), json!(f.description));
    }
    if ctx.mv.ge(2, 61) {
        m.insert("extra_specs".into(), json!(f.extra_specs));
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------------------------
// Servers: list / show

fn visible_server(ctx: &Ctx, s: &Server) -> bool {
    s.project_id == ctx.project_id || ctx.is_admin()
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
    let mut body = json!({"servers": items});
    if let Some(m) = page.next_marker {
        let path = if detail { "servers/detail" } else { "servers" };
        body["servers_links"] = json!([{"rel": "next", "href": ctx.url(&format!("/compute/v2.1/{path}?{}", http::next_query(q, &m)))}]);
    }
    Ok(http::ok(body))
}

async fn list_servers(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    list_filtered(&ctx, &q, false)
}

async fn list_servers_detail(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    list_filtered(&ctx, &q, true)
}

fn with_server<R>(
    ctx: &Ctx,
    id: &str,
    f: impl FnOnce(&Cloud, &Server) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    ctx.read(|c| {
        let s = c
            .compute
            .servers
            .get(id)
            .filter(|s| visible_server(ctx, s))
            .ok_or_else(|| server_not_found(id))?;
        f(c, s)
    })
}

async fn show_server(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, s| {
        let idx = AddrIndex::new(&c.network);
        Ok(http::ok(json!({"server": render_server(&ctx, c, &idx, s)})))
    })
}

// ---------------------------------------------------------------------------------------------
// Servers: create

/// A parsed block device mapping from the request.
struct BdmReq {
    source: String,
    dest: String,
    uuid: Option<String>,
    boot_index: Option<i64>,
    size: Option<u64>,
    delete_on_termination: bool,
    volume_type: Option<String>,
    tag: Option<String>,
    device_name: Option<String>,
}

fn parse_bdms(server: &Value) -> Result<Vec<BdmReq>, ApiError> {
    let Some(list) = server.get("block_device_mapping_v2") else {
        return Ok(vec![]);
    };
    let list = list.as_array().ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute block_device_mapping_v2. Value must be a list.",
        )
    })?;
    let mut out = Vec::new();
    for b in list {
        let source = util::opt_str(b, "source_type")?.unwrap_or_else(|| "blank".into());
        if !["image", "volume", "snapshot", "blank"].contains(&source.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute source_type. Value: {source}."
            )));
        }
        let dest = util::opt_str(b, "destination_type")?.unwrap_or_else(|| {
            if source == "blank" {
                "local".into()
            } else {
                "volume".into()
            }
        });
        let boot_index = match b.get("boot_index") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("none") => None,
            Some(Value::String(s)) => Some(
                s.parse()
                    .map_err(|_| ApiError::bad_request(format!("Invalid boot_index: {s}")))?,
            ),
            Some(_) => return Err(ApiError::bad_request("Invalid boot_index")),
        };
        out.push(BdmReq {
            uuid: util::opt_str(b, "uuid")?,
            boot_index,
            size: util::opt_u64(b, "volume_size")?,
            delete_on_termination: util::opt_bool(b, "delete_on_termination")?.unwrap_or(false),
            volume_type: util::opt_str(b, "volume_type")?,
            tag: util::opt_str(b, "tag")?,
            device_name: util::opt_str(b, "device_name")?,
            source,
            dest,
        });
    }
    Ok(out)
}

fn bdm_invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Block Device Mapping is Invalid: {msg}"))
}

/// A parsed entry of `networks`.
enum NetReq {
    Net {
        uuid: String,
        fixed_ip: Option<String>,
    },
    Port {
        id: String,
    },
}

fn parse_networks(server: &Value, mv: Mv) -> Result<Option<Result<Vec<NetReq>, String>>, ApiError> {
    match server.get("networks") {
        None => {
            if mv.ge(2, 37) {
                return Err(ApiError::bad_request("Invalid input for field/attribute networks. Value: None. 'networks' is a required property"));
            }
            Ok(None)
        }
        Some(Value::String(s)) if s == "auto" || s == "none" => Ok(Some(Err(s.clone()))),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for n in items {
                if let Some(p) = util::opt_str(n, "port")? {
                    out.push(NetReq::Port { id: p });
                } else if let Some(u) = util::opt_str(n, "uuid")? {
                    let fixed = util::opt_str(n, "fixed_ip")?.or(util::opt_str(n, "fixed")?);
                    if let Some(ip) = &fixed {
                        if ip.parse::<IpAddr>().is_err() {
                            return Err(ApiError::bad_request(format!("Invalid input for field/attribute fixed_ip. Value: {ip}. '{ip}' is not a 'ip-address'")));
                        }
                    }
                    out.push(NetReq::Net {
                        uuid: u,
                        fixed_ip: fixed,
                    });
                } else {
                    return Err(ApiError::bad_request(
                        "Bad networks format: network uuid is not in proper format ()",
                    ));
                }
            }
            Ok(Some(Ok(out)))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute networks. Value: {other}."
        ))),
    }
}

fn device_letter(i: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    if i < 26 {
        format!("/dev/vd{}", letters[i] as char)
    } else {
        format!(
            "/dev/vd{}{}",
            letters[(i / 26 - 1) % 26] as char,
            letters[i % 26] as char
        )
    }
}

/// The next free device name of a server.
pub fn next_device(s: &Server) -> String {
    let used: Vec<&str> = s.bdms.iter().map(|b| b.device.as_str()).collect();
    // vda is the root disk of image-booted servers too.
    let start = if s.bdms.iter().any(|b| b.boot_index == Some(0)) || s.image_id.is_some() {
        1
    } else {
        0
    };
    (start..702)
        .map(device_letter)
        .find(|d| !used.contains(&d.as_str()))
        .unwrap_or_else(|| "/dev/vdzz".into())
}

/// Picks a loopback address for a new conversion host: `127.(200+cloud index).y.z`, skipping
/// addresses in use in any cloud (hosts and floating IPs) or bound by another process.
pub fn allocate_host_addr(st: &State, cloud_index: u8, port: u16) -> Option<String> {
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    for c in st.clouds.values() {
        used.extend(
            c.compute
                .servers
                .values()
                .filter_map(|s| s.host_addr.clone()),
        );
        used.extend(network::all_fip_addresses(&c.network));
    }
    let x = 200u16 + cloud_index as u16;
    let x = x.min(254) as u8;
    for n in 0u32..(250 * 250) {
        let addr = format!("127.{x}.{}.{}", n / 250, 2 + n % 250);
        if used.contains(&addr) {
            continue;
        }
        if let Ok(ip) = addr.parse::<IpAddr>() {
            if crate::hosts::addr_free(ip, port) {
                return Some(addr);
            }
        }
    }
    None
}

async fn create_server(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "server")?.clone();
    let name = util::opt_str(&spec, "name")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute server. Value: 'name' is a required property",
        )
    })?;
    if name.trim().is_empty() || name.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute name. Value: {name}."
        )));
    }
    let flavor_ref = util::opt_str(&spec, "flavorRef")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute server. Value: 'flavorRef' is a required property",
        )
    })?;
    let image_ref = util::opt_str(&spec, "imageRef")?
        .filter(|s| !s.is_empty())
        .map(|s| util::ref_id(&s).to_string());
    let key_name = util::opt_str(&spec, "key_name")?;
    let metadata = util::opt_str_map(&spec, "metadata")?.unwrap_or_default();
    let tags = util::opt_str_list(&spec, "tags")?.unwrap_or_default();
    if !tags.is_empty() && !ctx.mv.ge(2, 52) {
        return Err(ApiError::bad_request("Invalid input for field/attribute server. Additional properties are not allowed ('tags' was unexpected)"));
    }
    let user_data = util::opt_str(&spec, "user_data")?;
    if let Some(u) = &user_data {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(u.trim())
            .map_err(|_| ApiError::bad_request("User data needs to be valid base 64."))?;
    }
    let az = util::opt_str(&spec, "availability_zone")?;
    if let Some(a) = &az {
        if a.split(':').next() != Some("nova") {
            return Err(ApiError::bad_request(
                "The requested availability zone is not available",
            ));
        }
    }
    let config_drive = match spec.get("config_drive") {
        None | Some(Value::Null) => false,
        Some(v) => util::parse_bool(v).unwrap_or(false),
    };
    let disk_config = util::opt_str(&spec, "OS-DCF:diskConfig")?.unwrap_or_else(|| "MANUAL".into());
    if disk_config != "AUTO" && disk_config != "MANUAL" {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute OS-DCF:diskConfig. Value: {disk_config}."
        )));
    }
    let description = util::opt_str(&spec, "description")?;
    let hostname = util::opt_str(&spec, "hostname")?;
    let hints = body
        .get("os:scheduler_hints")
        .or(body.get("OS-SCH-HNT:scheduler_hints"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let sg_names: Vec<String> = match spec.get("security_groups") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "Invalid input for field/attribute security_groups.",
            ))
        }
    };
    let min_count = util::opt_u64(&spec, "min_count")?.unwrap_or(1);
    let max_count = util::opt_u64(&spec, "max_count")?.unwrap_or(min_count);
    if min_count != 1 || max_count != 1 {
        return Err(ApiError::bad_request(
            "min_count/max_count other than 1 are not simulated.",
        ));
    }
    let access_ipv4 = util::opt_str(&spec, "accessIPv4")?;
    let access_ipv6 = util::opt_str(&spec, "accessIPv6")?.unwrap_or_default();
    let admin_pass = util::opt_str(&spec, "adminPass")?.unwrap_or_else(|| util::random_string(12));
    let mut bdm_reqs = parse_bdms(&spec)?;
    let nets = parse_networks(&spec, ctx.mv)?;

    let mut st = ctx.sim.lock();
    let ssh_port = ctx.sim.cfg.ssh_port;
    // Host address allocation looks at every cloud, so it happens before borrowing one.
    let cloud_index = st.clouds.get(&ctx.cloud).map(|c| c.index).unwrap_or(0);
    let (cloud, seq) = http::cloud_and_seq(&mut st, &ctx.cloud);

    // Flavor, image, keypair.
    let fid = util::ref_id(&flavor_ref).to_string();
    let flavor = cloud
        .compute
        .flavors
        .get(&fid)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("Flavor {fid} could not be found.")))?;
    let find_image = |iid: &str| -> Result<Image, ApiError> {
        let img = cloud
            .image
            .images
            .get(iid)
            .filter(|i| i.visible_to(&ctx.project_id, ctx.is_admin()))
            .ok_or_else(|| ApiError::bad_request(format!("Image {iid} could not be found.")))?;
        if img.status != "active" {
            return Err(ApiError::bad_request(format!("Image {iid} is not active.")));
        }
        Ok(img.clone())
    };
    let mut image = match &image_ref {
        Some(i) => Some(find_image(i)?),
        None => None,
    };
    let keypair = match &key_name {
        Some(k) => Some(
            cloud
                .compute
                .keypairs
                .get(&format!("{}/{k}", ctx.user_id))
                .cloned()
                .ok_or_else(|| ApiError::bad_request("Invalid key_name provided."))?,
        ),
        None => None,
    };

    // A Nova snapshot image of a volume-backed server boots from its snapshots.
    if let Some(img) = &image {
        if let Some(bdm_json) = img.properties.get("block_device_mapping") {
            let parsed: Vec<Value> = serde_json::from_str(bdm_json)
                .map_err(|_| bdm_invalid("the image's block_device_mapping is not valid JSON"))?;
            let wrapper = json!({"block_device_mapping_v2": parsed});
            let mut from_image = parse_bdms(&wrapper)?;
            // The snapshot id is under "snapshot_id" in Nova's stored mappings.
            for (b, raw) in from_image.iter_mut().zip(parsed.iter()) {
                if b.uuid.is_none() {
                    b.uuid = raw
                        .get("snapshot_id")
                        .or(raw.get("volume_id"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
            }
            bdm_reqs.retain(|b| !(b.source == "image" && b.dest == "local"));
            bdm_reqs.extend(from_image);
            image = None;
        }
    }
    // Nova's boot sequence rule: once block_device_mapping_v2 is given, the boot indexes (image and
    // volume mappings alike) must run 0, 1, 2... An imageRef alone does not count: clients add an
    // image->local mapping with boot index 0 for it, as OSC and novaclient do.
    if !bdm_reqs.is_empty() {
        let mut idx: Vec<i64> = bdm_reqs
            .iter()
            .filter_map(|b| b.boot_index)
            .filter(|i| *i >= 0)
            .collect();
        idx.sort_unstable();
        if idx.is_empty() || idx.iter().enumerate().any(|(n, i)| *i != n as i64) {
            return Err(bdm_invalid("Boot sequence for the instance and image/block device mapping combination is not valid."));
        }
    }
    let image_local_root = bdm_reqs
        .iter()
        .position(|b| b.source == "image" && b.dest == "local" && b.boot_index == Some(0));
    if let Some(i) = image_local_root {
        let b = bdm_reqs.remove(i);
        if image.is_none() {
            let iid = b
                .uuid
                .ok_or_else(|| bdm_invalid("image mapping without uuid"))?;
            image = Some(find_image(&iid)?);
        }
    }
    bdm_reqs.retain(|b| b.dest == "volume");
    let volume_boot = bdm_reqs.iter().any(|b| b.boot_index == Some(0));
    if volume_boot {
        image = None;
    } else if image.is_none() {
        return Err(bdm_invalid("Boot sequence for the instance and image/block device mapping combination is not valid."));
    }
    if let Some(img) = &image {
        if flavor.disk > 0 && volume::gib_ceil(img.size.unwrap_or(0)) > flavor.disk {
            return Err(ApiError::bad_request(
                "Flavor's disk is too small for requested image.",
            ));
        }
        if flavor.disk > 0 && flavor.disk < img.min_disk {
            return Err(ApiError::bad_request(format!(
                "Flavor's disk is smaller than the minimum size specified in image metadata. Flavor disk is {} bytes, minimum size is {} bytes.",
                flavor.disk << 30,
                img.min_disk << 30
            )));
        }
        if flavor.ram < img.min_ram {
            return Err(ApiError::bad_request(
                "Flavor's memory is too small for requested image.",
            ));
        }
    }

    // Validate block device mappings before creating anything.
    for b in &bdm_reqs {
        match b.source.as_str() {
            "volume" => {
                let vid = b
                    .uuid
                    .as_deref()
                    .ok_or_else(|| bdm_invalid("volume mapping without uuid"))?;
                let v = cloud
                    .volume
                    .volumes
                    .get(vid)
                    .filter(|v| v.project_id == ctx.project_id || ctx.is_admin())
                    .ok_or_else(|| bdm_invalid(format!("failed to get volume {vid}.")))?;
                if v.status != "available" {
                    return Err(ApiError::bad_request(format!("Invalid volume: volume '{vid}' status must be 'available'. Currently in '{}'", v.status)));
                }
            }
            "snapshot" => {
                let sid = b
                    .uuid
                    .as_deref()
                    .ok_or_else(|| bdm_invalid("snapshot mapping without uuid"))?;
                let s = cloud
                    .volume
                    .snapshots
                    .get(sid)
                    .ok_or_else(|| bdm_invalid(format!("failed to get snapshot {sid}.")))?;
                if s.status != "available" {
                    return Err(bdm_invalid(format!(
                        "snapshot {sid} is not available (status {}).",
                        s.status
                    )));
                }
            }
            "image" => {
                let iid = b
                    .uuid
                    .as_deref()
                    .ok_or_else(|| bdm_invalid("image mapping without uuid"))?;
                find_image(iid)?;
                if b.size.is_none() {
                    return Err(bdm_invalid("Images with destination_type 'volume' need to have a non-zero size specified"));
                }
            }
            _ => {
                if b.size.is_none() {
                    return Err(bdm_invalid("Blank volumes need a volume_size."));
                }
            }
        }
    }

    // Networks.
    let net_reqs: Vec<NetReq> =
        match nets {
            Some(Ok(list)) => list,
            Some(Err(kind)) if kind == "none" => vec![],
            // "auto", or no networks before 2.37: the project's only network, if there is one.
            _ => {
                let candidates: Vec<&network::Network> = cloud
                    .network
                    .networks
                    .values()
                    .filter(|n| !n.external && (n.c.project_id == ctx.project_id || n.shared))
                    .collect();
                match candidates.len() {
                    0 if nets.is_none() => vec![],
                    0 => {
                        return Err(ApiError::bad_request(format!(
                            "Unable to automatically allocate a network for project {}",
                            ctx.project_id
                        )))
                    }
                    1 => vec![NetReq::Net {
                        uuid: candidates[0].c.id.clone(),
                        fixed_ip: None,
                    }],
                    _ => return Err(ApiError::conflict(
                        "Multiple possible networks found, use a Network ID to be more specific.",
                    )),
                }
            }
        };
    for n in &net_reqs {
        match n {
            NetReq::Net { uuid, fixed_ip, .. } => {
                let net = cloud.network.networks.get(uuid).ok_or_else(|| {
                    ApiError::bad_request(format!("Network {uuid} could not be found."))
                })?;
                if !net.shared
                    && !net.external
                    && net.c.project_id != ctx.project_id
                    && !ctx.is_admin()
                {
                    return Err(ApiError::bad_request(format!(
                        "Network {uuid} could not be found."
                    )));
                }
                if let Some(ip) = fixed_ip {
                    let in_use = cloud.network.ports.values().any(|p| {
                        p.network_id == *uuid && p.fixed_ips.iter().any(|f| f.ip_address == *ip)
                    });
                    if in_use {
                        return Err(ApiError::bad_request(format!(
                            "Fixed IP address {ip} is already in use on instance ."
                        )));
                    }
                }
            }
            NetReq::Port { id } => {
                let p = cloud
                    .network
                    .ports
                    .get(id)
                    .ok_or_else(|| ApiError::bad_request(format!("Port id {id} not found.")))?;
                if !p.device_id.is_empty() {
                    return Err(ApiError::conflict(format!("Port {id} is still in use.")));
                }
            }
        }
    }
    let mut sg_ids = Vec::new();
    for g in &sg_names {
        let sg =
            network::find_security_group(&cloud.network, &ctx.project_id, g).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Security group {g} not found for project {}.",
                    ctx.project_id
                ))
            })?;
        if !sg_ids.contains(&sg.c.id) {
            sg_ids.push(sg.c.id.clone());
        }
    }

    // Record the server.
    *seq += 1;
    cloud.compute.counter += 1;
    let now = util::now();
    let id = util::new_id();
    let boot_image_props = match &image {
        Some(img) => img.properties.clone(),
        None => {
            // A volume booted from a conversion-host image keeps the property in its image metadata.
            let root = bdm_reqs.iter().find(|b| b.boot_index == Some(0));
            match root {
                Some(b) if b.source == "image" => b
                    .uuid
                    .as_ref()
                    .and_then(|i| cloud.image.images.get(i))
                    .map(|i| i.properties.clone())
                    .unwrap_or_default(),
                Some(b) if b.source == "volume" => b
                    .uuid
                    .as_ref()
                    .and_then(|v| cloud.volume.volumes.get(v))
                    .map(|v| v.image_metadata.clone())
                    .unwrap_or_default(),
                _ => BTreeMap::new(),
            }
        }
    };
    let truthy = |m: &BTreeMap<String, String>| {
        m.get("osm_sim_conversion_host")
            .is_some_and(|v| util::parse_bool_str(v) == Some(true))
    };
    let is_host = truthy(&boot_image_props) || truthy(&metadata);
    let mut server = Server {
        id: id.clone(),
        seq: *seq,
        name: name.clone(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        vm_state: "building".into(),
        task_state: Some("scheduling".into()),
        power_state: 0,
        flavor: FlavorCopy {
            id: flavor.id.clone(),
            name: flavor.name.clone(),
            ram: flavor.ram,
            vcpus: flavor.vcpus,
            disk: flavor.disk,
            ephemeral: flavor.ephemeral,
            swap: flavor.swap,
            extra_specs: flavor.extra_specs.clone(),
        },
        image_id: image.as_ref().map(|i| i.id.clone()),
        key_name: key_name.clone(),
        key_data: keypair.map(|k| k.public_key),
        metadata,
        tags,
        user_data,
        availability_zone: "nova".into(),
        config_drive,
        disk_config: disk_config.clone(),
        description,
        scheduler_hints: hints,
        access_ipv4: access_ipv4.clone().unwrap_or_default(),
        access_ipv6,
        created: now,
        updated: now,
        launched_at: None,
        terminated_at: None,
        host_addr: None,
        is_host,
        created_ports: vec![],
        port_order: vec![],
        bdms: vec![],
        fault: None,
        instance_index: cloud.compute.counter,
        locked: false,
        security_groups: if sg_names.is_empty() {
            vec!["default".into()]
        } else {
            sg_names.clone()
        },
        hostname: hostname.unwrap_or_else(|| sanitize_hostname(&name)),
        reservation_id: format!("r-{}", &util::random_string(8).to_lowercase()),
    };

    // Ports.
    let mut created_ports = Vec::new();
    let mut port_order = Vec::new();
    let mut port_err = None;
    for n in &net_reqs {
        let r = match n {
            NetReq::Net { uuid, fixed_ip } => network::create_port(
                &mut cloud.network,
                seq,
                PortRequest {
                    network_id: uuid.clone(),
                    project_id: ctx.project_id.clone(),
                    fixed_ips: fixed_ip.as_ref().map(|ip| vec![(None, Some(ip.clone()))]),
                    security_groups: if sg_ids.is_empty() {
                        None
                    } else {
                        Some(sg_ids.clone())
                    },
                    device_id: id.clone(),
                    device_owner: "compute:nova".into(),
                    ..Default::default()
                },
            )
            .map(|pid| {
                port_order.push(pid.clone());
                created_ports.push(pid);
            }),
            NetReq::Port { id: pid } => {
                port_order.push(pid.clone());
                if let Some(p) = cloud.network.ports.get_mut(pid) {
                    p.device_id = id.clone();
                    p.device_owner = "compute:nova".into();
                    p.c.updated = util::now();
                }
                Ok(())
            }
        };
        if let Err(e) = r {
            port_err = Some(e);
            break;
        }
    }
    if let Some(e) = port_err {
        network::release_server_ports(&mut cloud.network, &id, &created_ports);
        return Err(e);
    }
    server.created_ports = created_ports;
    server.port_order = port_order;

    // Volumes: new ones are created now and attached when the server goes ACTIVE.
    let mut new_volumes = Vec::new();
    let mut dev_i = 0usize;
    let mut sorted_bdms: Vec<&BdmReq> = bdm_reqs.iter().collect();
    sorted_bdms.sort_by_key(|b| match b.boot_index {
        Some(0) => 0,
        Some(i) if i > 0 => i,
        _ => i64::MAX,
    });
    for b in sorted_bdms {
        let device = b.device_name.clone().unwrap_or_else(|| {
            let d = device_letter(dev_i + usize::from(image.is_some()));
            dev_i += 1;
            d
        });
        let (volume_id, created) = if b.source == "volume" {
            let vid = b.uuid.clone().unwrap_or_default();
            if let Some(v) = cloud.volume.volumes.get_mut(&vid) {
                v.status = "attaching".into();
                v.updated = util::now();
            }
            (vid, false)
        } else {
            let (snap, img) = match b.source.as_str() {
                "snapshot" => (b.uuid.clone(), None),
                "image" => (None, b.uuid.clone()),
                _ => (None, None),
            };
            let mut v = volume::build_volume(
                cloud,
                seq,
                &ctx.project_id,
                &ctx.user_id,
                b.size,
                snap,
                None,
                img,
                b.volume_type.clone(),
                None,
            )?;
            v.name = Some(String::new());
            let vid = v.id.clone();
            cloud.volume.volumes.insert(vid.clone(), v);
            new_volumes.push(vid.clone());
            (vid, true)
        };
        server.bdms.push(Bdm {
            volume_id,
            boot_index: b.boot_index,
            device,
            delete_on_termination: b.delete_on_termination,
            attachment_id: util::new_id(),
            bdm_id: util::new_id(),
            tag: b.tag.clone(),
            created_for_boot: created,
        });
    }
    cloud.compute.servers.insert(id.clone(), server);

    if is_host {
        let addr = allocate_host_addr(&st, cloud_index, ssh_port);
        let (cloud, _) = http::cloud_and_seq(&mut st, &ctx.cloud);
        if let Some(s) = cloud.compute.servers.get_mut(&id) {
            match addr {
                Some(a) => {
                    if access_ipv4.is_none() {
                        s.access_ipv4 = a.clone();
                    }
                    s.host_addr = Some(a);
                }
                None => {
                    s.vm_state = "error".into();
                    s.task_state = None;
                    s.fault = Some(ServerFault {
                        code: 500,
                        message: "No free loopback address for the conversion host's sshd".into(),
                        created: util::now(),
                    });
                }
            }
        }
    }
    drop(st);
    ctx.sim.changed();
    for v in &new_volumes {
        jobs::spawn_volume(&ctx.sim, &ctx.cloud, v);
    }
    jobs::spawn_server(&ctx.sim, &ctx.cloud, &id);

    let mut resp = http::json(
        StatusCode::ACCEPTED,
        json!({"server": {
            "id": id, "links": links(&ctx, "servers", &id), "OS-DCF:diskConfig": disk_config,
            "security_groups": if sg_names.is_empty() { vec![json!({"name": "default"})] } else { sg_names.iter().map(|n| json!({"name": n})).collect() },
            "adminPass": admin_pass,
        }}),
    );
    if let Ok(v) = HeaderValue::from_str(&ctx.url(&format!("/compute/v2.1/servers/{id}"))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn sanitize_hostname(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "server".into()
    } else {
        s.chars().take(63).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Servers: update, delete, actions

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
        let s = c
            .compute
            .servers
            .get_mut(&id)
            .filter(|s| s.project_id == ctx.project_id || ctx.is_admin())
            .ok_or_else(|| server_not_found(&id))?;
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

fn start_delete(ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    let spawn = ctx.write(|c, _| {
        let s = c
            .compute
            .servers
            .get_mut(id)
            .filter(|s| s.project_id == ctx.project_id || ctx.is_admin())
            .ok_or_else(|| server_not_found(id))?;
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

async fn server_action(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    let (action, args) = obj
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    match action.as_str() {
        "os-stop" => lifecycle(&ctx, &id, "stop", &["active", "error"], "powering-off").await,
        "os-start" => lifecycle(&ctx, &id, "start", &["stopped"], "powering-on").await,
        "reboot" => {
            let hard = args
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("HARD"));
            if hard {
                lifecycle(
                    &ctx,
                    &id,
                    "reboot",
                    &["active", "stopped", "error"],
                    "rebooting_hard",
                )
                .await
            } else {
                lifecycle(&ctx, &id, "reboot", &["active"], "rebooting").await
            }
        }
        "createImage" => create_image(&ctx, &id, &args).await,
        "forceDelete" => {
            start_delete(&ctx, &id)?;
            Ok(http::empty(StatusCode::ACCEPTED))
        }
        "lock" | "unlock" => ctx.write(|c, _| {
            let s = c
                .compute
                .servers
                .get_mut(&id)
                .ok_or_else(|| server_not_found(&id))?;
            s.locked = action == "lock";
            s.updated = util::now();
            Ok(http::empty(StatusCode::ACCEPTED))
        }),
        "os-resetState" => {
            if !ctx.is_admin() {
                return Err(ApiError::forbidden("Policy doesn't allow os_compute_api:os-admin-actions:reset_state to be performed."));
            }
            let state = args
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_string();
            if state != "active" && state != "error" {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute state. Value: {state}."
                )));
            }
            ctx.write(|c, _| {
                let s = c
                    .compute
                    .servers
                    .get_mut(&id)
                    .ok_or_else(|| server_not_found(&id))?;
                s.vm_state = state;
                s.task_state = None;
                s.updated = util::now();
                Ok(http::empty(StatusCode::ACCEPTED))
            })
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            let g = args
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("Missing parameter name"))?
                .to_string();
            ctx.write(|c, _| {
                let s = c
                    .compute
                    .servers
                    .get(&id)
                    .filter(|s| visible_server(&ctx, s))
                    .ok_or_else(|| server_not_found(&id))?
                    .clone();
                let sg = network::find_security_group(&c.network, &s.project_id, &g)
                    .map(|x| x.c.id.clone())
                    .ok_or_else(|| {
                        ApiError::not_found(format!(
                            "Security group {g} not found for project {}.",
                            s.project_id
                        ))
                    })?;
                let ports: Vec<String> = c
                    .network
                    .ports
                    .values()
                    .filter(|p| p.device_id == id)
                    .map(|p| p.c.id.clone())
                    .collect();
                if action == "removeSecurityGroup"
                    && !ports
                        .iter()
                        .any(|p| c.network.ports[p].security_groups.contains(&sg))
                {
                    return Err(ApiError::not_found(format!(
                        "Security group {g} not associated with the instance {id}"
                    )));
                }
                for p in ports {
                    if let Some(port) = c.network.ports.get_mut(&p) {
                        if action == "addSecurityGroup" {
                            if !port.security_groups.contains(&sg) {
                                port.security_groups.push(sg.clone());
                            }
                        } else {
                            port.security_groups.retain(|x| *x != sg);
                        }
                    }
                }
                Ok(http::empty(StatusCode::ACCEPTED))
            })
        }
        "os-getConsoleOutput" => with_server(&ctx, &id, |_, s| {
            let text = format!(
                "[    0.000000] Linux version 6.1.0 (osm-cloudsim)\n{} login: \n",
                s.hostname
            );
            Ok(http::ok(json!({"output": text})))
        }),
        other => Err(ApiError::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

async fn lifecycle(
    ctx: &Ctx,
    id: &str,
    action: &str,
    from: &[&str],
    task: &str,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = c
            .compute
            .servers
            .get_mut(id)
            .filter(|s| s.project_id == ctx.project_id || ctx.is_admin())
            .ok_or_else(|| server_not_found(id))?;
        if s.locked && !ctx.is_admin() {
            return Err(ApiError::conflict(format!("Instance {id} is locked")));
        }
        if s.task_state.is_some() || !from.contains(&s.vm_state.as_str()) {
            return Err(conflict_state(action, s));
        }
        s.task_state = Some(task.to_string());
        s.updated = util::now();
        Ok(())
    })?;
    jobs::spawn_server(&ctx.sim, &ctx.cloud, id);
    Ok(http::empty(StatusCode::ACCEPTED))
}

async fn create_image(ctx: &Ctx, id: &str, args: &Value) -> Result<Response, ApiError> {
    let name = util::opt_str(args, "name")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute createImage. Value: 'name' is a required property",
        )
    })?;
    let extra = util::opt_str_map(args, "metadata")?.unwrap_or_default();
    let (image_id, snaps) = ctx.write(|c, seq| {
        let s = c.compute.servers.get(id).filter(|s| visible_server(ctx, s)).ok_or_else(|| server_not_found(id))?.clone();
        if s.task_state.is_some() || !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str()) {
            return Err(conflict_state("createImage", &s));
        }
        let user_name = c.identity.users.get(&s.user_id).map(|u| u.name.clone()).unwrap_or_default();
        let project_name = c.identity.projects.get(&s.project_id).map(|p| p.name.clone()).unwrap_or_default();
        *seq += 1;
        let mut img = Image::new(*seq, &ctx.project_id, Some(name.clone()));
        img.visibility = "private".into();
        img.min_ram = 0;
        // Nova copies the base image's properties and records where the snapshot came from.
        let base = s.image_id.as_ref().and_then(|i| c.image.images.get(i)).cloned();
        let mut props: BTreeMap<String, String> = base.as_ref().map(|b| b.properties.clone()).unwrap_or_default();
        if s.image_id.is_none() {
            if let Some(root) = s.bdms.iter().find(|b| b.boot_index == Some(0)).and_then(|b| c.volume.volumes.get(&b.volume_id)) {
                for (k, v) in &root.image_metadata {
                    if !["image_id", "image_name", "checksum", "container_format", "disk_format", "min_disk", "min_ram", "size"].contains(&k.as_str()) {
                        props.insert(k.clone(), v.clone());
                    }
                }
                img.disk_format = root.image_metadata.get("disk_format").cloned().filter(|x| !x.is_empty()).or(Some("raw".into()));
                img.container_format = root.image_metadata.get("container_format").cloned().filter(|x| !x.is_empty()).or(Some("bare".into()));
            }
        } else {
            img.disk_format = base.as_ref().and_then(|b| b.disk_format.clone()).or(Some("raw".into()));
            img.container_format = base.as_ref().and_then(|b| b.container_format.clone()).or(Some("bare".into()));
        }
        props.extend(extra.clone());
        props.insert("image_type".into(), "snapshot".into());
        props.insert("instance_uuid".into(), s.id.clone());
        props.insert("user_id".into(), s.user_id.clone());
        props.insert("owner_user_name".into(), user_name);
        props.insert("owner_project_name".into(), project_name);
        props.insert("image_location".into(), "snapshot".into());
        props.insert("base_image_ref".into(), s.image_id.clone().unwrap_or_default());
        props.insert("boot_roles".into(), "admin,member,reader".into());
        img.min_disk = s.flavor.disk.max(base.as_ref().map(|b| b.min_disk).unwrap_or(0));
        img.min_ram = base.as_ref().map(|b| b.min_ram).unwrap_or(0);
        let mut snaps = Vec::new();
        if s.image_id.is_some() {
            img.pending = Some(ImagePending::ServerDisk { server_id: s.id.clone() });
        } else {
            // Volume-backed: a Cinder snapshot per volume and an image that maps them.
            let mut mappings = Vec::new();
            for b in &s.bdms {
                let mut snap = volume::build_snapshot(c, seq, &s.project_id, &s.user_id, &b.volume_id, Some(true), Mv(3, 0))?;
                snap.name = Some(format!("snapshot for {name}"));
                let size = snap.size;
                mappings.push(json!({
                    "source_type": "snapshot", "destination_type": "volume", "snapshot_id": snap.id,
                    "boot_index": b.boot_index, "volume_size": size, "delete_on_termination": b.delete_on_termination,
                    "device_name": b.device, "tag": b.tag, "disk_bus": "virtio", "device_type": "disk",
                    "guest_format": null, "volume_type": null, "image_id": null, "no_device": null, "volume_id": null,
                }));
                snaps.push(snap.id.clone());
                c.volume.snapshots.insert(snap.id.clone(), snap);
            }
            props.insert("block_device_mapping".into(), serde_json::to_string(&mappings).unwrap_or_else(|_| "[]".into()));
            props.insert("bdm_v2".into(), "True".into());
            props.insert("root_device_name".into(), "/dev/vda".into());
            img.pending = Some(ImagePending::VolumeSnapshots { server_id: s.id.clone(), snapshot_ids: snaps.clone() });
        }
        img.properties = props;
        let image_id = img.id.clone();
        c.image.images.insert(image_id.clone(), img);
        if let Some(srv) = c.compute.servers.get_mut(id) {
            srv.task_state = Some("image_snapshot".into());
            srv.updated = util::now();
        }
        Ok((image_id, snaps))
    })?;
    for s in &snaps {
        jobs::spawn_snapshot(&ctx.sim, &ctx.cloud, s);
    }
    jobs::spawn_image(&ctx.sim, &ctx.cloud, &image_id);
    let mut resp = if ctx.mv.ge(2, 45) {
        http::json(StatusCode::ACCEPTED, json!({"image_id": image_id}))
    } else {
        http::empty(StatusCode::ACCEPTED)
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.url(&format!("/image/v2/images/{image_id}"))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Volume attachments

fn render_attachment(ctx: &Ctx, server_id: &str, b: &Bdm) -> Value {
    let mut m = Map::new();
    if !ctx.mv.ge(2, 89) {
        m.insert("id".into(), json!(b.volume_id));
    }
    m.insert("serverId".into(), json!(server_id));
    m.insert("volumeId".into(), json!(b.volume_id));
    m.insert("device".into(), json!(b.device));
    if ctx.mv.ge(2, 70) {
        m.insert("tag".into(), json!(b.tag));
    }
    if ctx.mv.ge(2, 79) {
        m.insert(
            "delete_on_termination".into(),
            json!(b.delete_on_termination),
        );
    }
    if ctx.mv.ge(2, 89) {
        m.insert("attachment_id".into(), json!(b.attachment_id));
        m.insert("bdm_uuid".into(), json!(b.bdm_id));
    }
    Value::Object(m)
}

async fn list_attachments(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        let items: Vec<Value> = s
            .bdms
            .iter()
            .map(|b| render_attachment(&ctx, &s.id, b))
            .collect();
        Ok(http::ok(json!({"volumeAttachments": items})))
    })
}

async fn show_attachment(
    ctx: Ctx,
    Path((id, vol)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        let b = s.bdms.iter().find(|b| b.volume_id == vol).ok_or_else(|| {
            ApiError::not_found(format!("Volume {vol} is not attached to instance {id}"))
        })?;
        Ok(http::ok(
            json!({"volumeAttachment": render_attachment(&ctx, &s.id, b)}),
        ))
    })
}

async fn attach_volume(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "volumeAttachment")?.clone();
    let vol = util::opt_str(&spec, "volumeId")?.ok_or_else(|| ApiError::bad_request("Invalid input for field/attribute volumeAttachment. Value: 'volumeId' is a required property"))?;
    let tag = util::opt_str(&spec, "tag")?;
    let dot = util::opt_bool(&spec, "delete_on_termination")?.unwrap_or(false);
    let device_req = util::opt_str(&spec, "device")?;
    let resp = ctx.write(|c, _| {
        let s = c
            .compute
            .servers
            .get(&id)
            .filter(|s| visible_server(&ctx, s))
            .ok_or_else(|| server_not_found(&id))?
            .clone();
        if s.task_state.is_some()
            || !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str())
        {
            return Err(conflict_state("attach_volume", &s));
        }
        let v = c
            .volume
            .volumes
            .get(&vol)
            .filter(|v| v.project_id == ctx.project_id || ctx.is_admin())
            .ok_or_else(|| ApiError::not_found(format!("Volume {vol} could not be found.")))?;
        if s.bdms.iter().any(|b| b.volume_id == vol) {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: volume {vol} already attached"
            )));
        }
        if v.status != "available" {
            return Err(ApiError::bad_request(format!(
                "Invalid volume: volume '{vol}' status must be 'available'. Currently in '{}'",
                v.status
            )));
        }
        let device = match device_req {
            Some(d) if !s.bdms.iter().any(|b| b.device == d) && d.starts_with("/dev/") => d,
            _ => next_device(&s),
        };
        let bdm = Bdm {
            volume_id: vol.clone(),
            boot_index: None,
            device: device.clone(),
            delete_on_termination: dot,
            attachment_id: util::new_id(),
            bdm_id: util::new_id(),
            tag,
            created_for_boot: false,
        };
        let v = c
            .volume
            .volumes
            .get_mut(&vol)
            .ok_or_else(|| ApiError::not_found(format!("Volume {vol} could not be found.")))?;
        v.status = "attaching".into();
        v.pending_attach = Some(VolAttachment {
            id: bdm.attachment_id.clone(),
            server_id: id.clone(),
            device,
            host_name: HOST.into(),
            attached_at: util::now(),
        });
        v.updated = util::now();
        let out = render_attachment(&ctx, &id, &bdm);
        if let Some(srv) = c.compute.servers.get_mut(&id) {
            srv.bdms.push(bdm);
            srv.updated = util::now();
        }
        Ok(http::ok(json!({"volumeAttachment": out})))
    })?;
    jobs::spawn_volume(&ctx.sim, &ctx.cloud, &vol);
    Ok(resp)
}

async fn detach_volume(
    ctx: Ctx,
    Path((id, vol)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = c.compute.servers.get(&id).filter(|s| visible_server(&ctx, s)).ok_or_else(|| server_not_found(&id))?.clone();
        let b = s.bdms.iter().find(|b| b.volume_id == vol).ok_or_else(|| ApiError::not_found(format!("volume_id not found: {vol}")))?;
        if b.boot_index == Some(0) {
            return Err(ApiError::bad_request("Cannot detach a root device volume"));
        }
        if s.task_state.is_some() || !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str()) {
            return Err(conflict_state("detach_volume", &s));
        }
        let v = c.volume.volumes.get_mut(&vol).ok_or_else(|| ApiError::not_found(format!("Volume {vol} could not be found.")))?;
        if v.status != "in-use" {
            return Err(ApiError::bad_request(format!("Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach. Currently: status: '{}', attach_status: '{}.'", v.status, v.attach_status())));
        }
        v.status = "detaching".into();
        v.pending_detach = Some(id.clone());
        v.updated = util::now();
        Ok(())
    })?;
    jobs::spawn_volume(&ctx.sim, &ctx.cloud, &vol);
    Ok(http::empty(StatusCode::ACCEPTED))
}

// ---------------------------------------------------------------------------------------------
// Interfaces, ips, metadata, tags

fn render_interface(p: &network::Port, mv: Mv) -> Value {
    let mut v = json!({
        "port_state": p.status, "port_id": p.c.id, "net_id": p.network_id, "mac_addr": p.mac_address,
        "fixed_ips": p.fixed_ips.iter().map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address})).collect::<Vec<_>>(),
    });
    if mv.ge(2, 70) {
        v["tag"] = Value::Null;
    }
    v
}

/// Real Nova answers with Neutron's port listing, which is not the server's NIC order (only
/// `addresses` is). The simulator lists the ports in reverse NIC order so that code taking this
/// list for NIC order fails here every time, not by chance as on a real cloud.
async fn list_interfaces(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, s| {
        let idx = AddrIndex::new(&c.network);
        let items: Vec<Value> = idx
            .ports_in(&s.id, &s.port_order)
            .iter()
            .rev()
            .map(|p| render_interface(p, ctx.mv))
            .collect();
        Ok(http::ok(json!({"interfaceAttachments": items})))
    })
}

async fn show_interface(
    ctx: Ctx,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, _| {
        let p = c
            .network
            .ports
            .get(&port)
            .filter(|p| p.device_id == id)
            .ok_or_else(|| ApiError::not_found(format!("Port {port} is not attached")))?;
        Ok(http::ok(
            json!({"interfaceAttachment": render_interface(p, ctx.mv)}),
        ))
    })
}

async fn attach_interface(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "interfaceAttachment")?.clone();
    let port_id = util::opt_str(&spec, "port_id")?;
    let net_id = util::opt_str(&spec, "net_id")?;
    let fixed: Option<Vec<(Option<String>, Option<String>)>> =
        spec.get("fixed_ips").and_then(Value::as_array).map(|a| {
            a.iter()
                .map(|f| {
                    (
                        None,
                        f.get("ip_address")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    )
                })
                .collect()
        });
    let resp = ctx.write(|c, seq| {
        let s = c
            .compute
            .servers
            .get(&id)
            .filter(|s| visible_server(&ctx, s))
            .ok_or_else(|| server_not_found(&id))?
            .clone();
        if s.task_state.is_some() || !["active", "stopped"].contains(&s.vm_state.as_str()) {
            return Err(conflict_state("attach_interface", &s));
        }
        let pid = match (port_id, net_id) {
            (Some(p), _) => {
                let port =
                    c.network.ports.get_mut(&p).ok_or_else(|| {
                        ApiError::not_found(format!("Port {p} could not be found."))
                    })?;
                if !port.device_id.is_empty() {
                    return Err(ApiError::conflict(format!("Port {p} is still in use.")));
                }
                port.device_id = id.clone();
                port.device_owner = "compute:nova".into();
                p
            }
            (None, Some(n)) => {
                let p = network::create_port(
                    &mut c.network,
                    seq,
                    PortRequest {
                        network_id: n,
                        project_id: s.project_id.clone(),
                        fixed_ips: fixed,
                        device_id: id.clone(),
                        device_owner: "compute:nova".into(),
                        ..Default::default()
                    },
                )?;
                if let Some(srv) = c.compute.servers.get_mut(&id) {
                    srv.created_ports.push(p.clone());
                }
                p
            }
            (None, None) => return Err(ApiError::bad_request("Must input network_id or port_id")),
        };
        if let Some(srv) = c.compute.servers.get_mut(&id) {
            srv.port_order.push(pid.clone());
        }
        network::bind_server_ports(&mut c.network, &id, HOST);
        let p = c
            .network
            .ports
            .get(&pid)
            .ok_or_else(|| ApiError::internal("port vanished"))?;
        Ok(http::ok(
            json!({"interfaceAttachment": render_interface(p, ctx.mv)}),
        ))
    })?;
    jobs::refresh_host(&ctx.sim, &ctx.cloud, &id).await;
    Ok(resp)
}

async fn detach_interface(
    ctx: Ctx,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = c
            .compute
            .servers
            .get(&id)
            .filter(|s| visible_server(&ctx, s))
            .ok_or_else(|| server_not_found(&id))?
            .clone();
        if c.network.ports.get(&port).is_none_or(|p| p.device_id != id) {
            return Err(ApiError::not_found(format!("Port {port} is not attached")));
        }
        let created: Vec<String> = s
            .created_ports
            .iter()
            .filter(|p| **p == port)
            .cloned()
            .collect();
        if created.is_empty() {
            if let Some(p) = c.network.ports.get_mut(&port) {
                p.device_id.clear();
                p.device_owner.clear();
                p.binding_host_id.clear();
                p.status = "DOWN".into();
            }
        } else {
            network::delete_port_record(&mut c.network, &port);
        }
        if let Some(srv) = c.compute.servers.get_mut(&id) {
            srv.created_ports.retain(|p| *p != port);
        }
        Ok(())
    })?;
    jobs::refresh_host(&ctx.sim, &ctx.cloud, &id).await;
    Ok(http::empty(StatusCode::ACCEPTED))
}

async fn server_ips(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |c, s| {
        let idx = AddrIndex::new(&c.network);
        let (addrs, nic_order) = idx.addresses(&s.id, &s.port_order, s.host_addr.as_deref());
        let stripped: Map<String, Value> = addrs
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            json!(v
                                .as_array()
                                .map(|a| a
                                    .iter()
                                    .map(|x| json!({"addr": x["addr"], "version": x["version"]}))
                                    .collect::<Vec<_>>())
                                .unwrap_or_default()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(http::ok(
            json!({"addresses": stripped, http::KEY_ORDER: {"addresses": nic_order}}),
        ))
    })
}

fn server_mut<'a>(ctx: &Ctx, c: &'a mut Cloud, id: &str) -> Result<&'a mut Server, ApiError> {
    c.compute
        .servers
        .get_mut(id)
        .filter(|s| s.project_id == ctx.project_id || ctx.is_admin())
        .ok_or_else(|| server_not_found(id))
}

async fn get_metadata(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        Ok(http::ok(json!({"metadata": s.metadata})))
    })
}

async fn merge_metadata(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::opt_str_map(&body, "metadata")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: metadata missing"))?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.metadata.extend(m);
        s.updated = util::now();
        Ok(http::ok(json!({"metadata": s.metadata})))
    })
}

async fn replace_metadata(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::opt_str_map(&body, "metadata")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: metadata missing"))?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.metadata = m;
        s.updated = util::now();
        Ok(http::ok(json!({"metadata": s.metadata})))
    })
}

async fn get_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        let v = s
            .metadata
            .get(&key)
            .ok_or_else(|| ApiError::not_found("Metadata item was not found"))?;
        Ok(http::ok(json!({"meta": {key.clone(): v}})))
    })
}

async fn put_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let m = util::opt_str_map(&body, "meta")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: meta missing"))?;
    let v = m
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("Request body and URI mismatch"))?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.metadata.insert(key.clone(), v.clone());
        s.updated = util::now();
        Ok(http::ok(json!({"meta": {key.clone(): v}})))
    })
}

async fn delete_meta_item(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.metadata
            .remove(&key)
            .ok_or_else(|| ApiError::not_found("Metadata item was not found"))?;
        s.updated = util::now();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

fn need_tags(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.mv.ge(2, 26) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

async fn get_tags(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    with_server(&ctx, &id, |_, s| Ok(http::ok(json!({"tags": s.tags}))))
}

async fn replace_tags(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    let tags = util::opt_str_list(&body, "tags")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: tags missing"))?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.tags.clear();
        for t in tags {
            if !s.tags.contains(&t) {
                s.tags.push(t);
            }
        }
        s.updated = util::now();
        Ok(http::ok(json!({"tags": s.tags})))
    })
}

async fn clear_tags(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        s.tags.clear();
        s.updated = util::now();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn check_tag(
    ctx: Ctx,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    with_server(&ctx, &id, |_, s| {
        if s.tags.contains(&tag) {
            Ok(http::empty(StatusCode::NO_CONTENT))
        } else {
            Err(ApiError::not_found(format!(
                "Tag '{tag}' could not be found."
            )))
        }
    })
}

async fn add_tag(ctx: Ctx, Path((id, tag)): Path<(String, String)>) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        if s.tags.contains(&tag) {
            return Ok(http::empty(StatusCode::NO_CONTENT));
        }
        s.tags.push(tag);
        s.updated = util::now();
        Ok(http::empty(StatusCode::CREATED))
    })
}

async fn remove_tag(
    ctx: Ctx,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    need_tags(&ctx)?;
    ctx.write(|c, _| {
        let s = server_mut(&ctx, c, &id)?;
        if !s.tags.contains(&tag) {
            return Err(ApiError::not_found(format!(
                "Tag '{tag}' could not be found."
            )));
        }
        s.tags.retain(|t| *t != tag);
        s.updated = util::now();
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn instance_actions(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    with_server(&ctx, &id, |_, s| {
        Ok(http::ok(
            json!({"instanceActions": [{"action": "create", "instance_uuid": s.id, "request_id": ctx.request_id, "user_id": s.user_id, "project_id": s.project_id, "start_time": util::iso_micro(&s.created), "message": null}]}),
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Flavors

fn flavor_filter(ctx: &Ctx, q: &Q) -> Result<Vec<Flavor>, ApiError> {
    // Nova: everyone sees public flavors; an admin sees all with is_public=None.
    let is_public = match q.get("is_public").map(|s| s.to_ascii_lowercase()) {
        None => Some(true),
        Some(s) if s == "none" => None,
        Some(s) => Some(
            util::parse_bool_str(&s)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid is_public filter [{s}]")))?,
        ),
    };
    let is_public = if ctx.is_admin() {
        is_public
    } else {
        Some(true)
    };
    let min_ram = q
        .get("minRam")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let min_disk = q
        .get("minDisk")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let mut fl: Vec<Flavor> = ctx.read(|c| {
        c.compute
            .flavors
            .values()
            .filter(|f| is_public.is_none_or(|p| f.is_public == p))
            .filter(|f| f.ram >= min_ram && f.disk >= min_disk)
            .cloned()
            .collect()
    });
    let key = q.get("sort_key").unwrap_or("flavorid");
    let desc = q
        .get("sort_dir")
        .is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    fl.sort_by(|a, b| {
        let o = match key {
            "name" => a.name.cmp(&b.name),
            "memory_mb" | "ram" => a.ram.cmp(&b.ram),
            "vcpus" => a.vcpus.cmp(&b.vcpus),
            "root_gb" | "disk" => a.disk.cmp(&b.disk),
            "created_at" | "id" => a.seq.cmp(&b.seq),
            _ => a.id.cmp(&b.id),
        };
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    Ok(fl)
}

fn flavor_list(ctx: &Ctx, q: &Q, detail: bool) -> Result<Response, ApiError> {
    let fl = flavor_filter(ctx, q)?;
    let page = http::paginate(fl, |f| f.id.clone(), q, 1000)?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|f| {
            if detail {
                render_flavor(ctx, f)
            } else {
                let mut v =
                    json!({"id": f.id, "name": f.name, "links": links(ctx, "flavors", &f.id)});
                if ctx.mv.ge(2, 55) {
                    v["description"] = json!(f.description);
                }
                v
            }
        })
        .collect();
    let mut body = json!({"flavors": items});
    if let Some(m) = page.next_marker {
        let path = if detail { "flavors/detail" } else { "flavors" };
        body["flavors_links"] = json!([{"rel": "next", "href": ctx.url(&format!("/compute/v2.1/{path}?{}", http::next_query(q, &m)))}]);
    }
    Ok(http::ok(body))
}

async fn list_flavors(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    flavor_list(&ctx, &q, false)
}

async fn list_flavors_detail(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    flavor_list(&ctx, &q, true)
}

fn flavor_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Flavor {id} could not be found."))
}

async fn show_flavor(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let f = c
            .compute
            .flavors
            .get(&id)
            .ok_or_else(|| flavor_not_found(&id))?;
        Ok(http::ok(json!({"flavor": render_flavor(&ctx, f)})))
    })
}

async fn create_flavor(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    if !ctx.is_admin() {
        return Err(ApiError::forbidden(
            "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.",
        ));
    }
    let spec = util::body_object(&body, "flavor")?;
    let name = util::opt_str(spec, "name")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute flavor. Value: 'name' is a required property",
        )
    })?;
    let req = |k: &str| -> Result<u64, ApiError> {
        util::opt_u64(spec, k)?.ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute flavor. Value: '{k}' is a required property"
            ))
        })
    };
    let ram = req("ram")?;
    let vcpus = req("vcpus")?;
    let disk = req("disk")?;
    if ram == 0 || vcpus == 0 {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute ram/vcpus: must be >= 1",
        ));
    }
    let id = match util::opt_str(spec, "id")? {
        None => util::new_id(),
        Some(s) if s == "auto" => util::new_id(),
        Some(s) => s,
    };
    let ephemeral = util::opt_u64(spec, "OS-FLV-EXT-DATA:ephemeral")?.unwrap_or(0);
    let swap = util::opt_u64(spec, "swap")?.unwrap_or(0);
    let rxtx = spec
        .get("rxtx_factor")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    let is_public = util::opt_bool(spec, "os-flavor-access:is_public")?.unwrap_or(true);
    let description = util::opt_str(spec, "description")?;
    ctx.write(|c, seq| {
        if c.compute.flavors.contains_key(&id) {
            return Err(ApiError::conflict(format!(
                "Flavor with ID {id} already exists."
            )));
        }
        if c.compute.flavors.values().any(|f| f.name == name) {
            return Err(ApiError::conflict(format!(
                "Flavor with name {name} already exists."
            )));
        }
        *seq += 1;
        let f = Flavor {
            id: id.clone(),
            seq: *seq,
            name,
            ram,
            vcpus,
            disk,
            ephemeral,
            swap,
            rxtx_factor: rxtx,
            is_public,
            description,
            extra_specs: BTreeMap::new(),
        };
        let v = render_flavor(&ctx, &f);
        c.compute.flavors.insert(id, f);
        Ok(http::ok(json!({"flavor": v})))
    })
}

async fn update_flavor(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "flavor")?;
    let description = util::opt_str(spec, "description")?;
    ctx.write(|c, _| {
        let f = c
            .compute
            .flavors
            .get_mut(&id)
            .ok_or_else(|| flavor_not_found(&id))?;
        f.description = description;
        let f = f.clone();
        Ok(http::ok(json!({"flavor": render_flavor(&ctx, &f)})))
    })
}

async fn delete_flavor(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    if !ctx.is_admin() {
        return Err(ApiError::forbidden(
            "Policy doesn't allow os_compute_api:os-flavor-manage:delete to be performed.",
        ));
    }
    ctx.write(|c, _| {
        c.compute
            .flavors
            .remove(&id)
            .ok_or_else(|| flavor_not_found(&id))?;
        Ok(http::empty(StatusCode::ACCEPTED))
    })
}

async fn flavor_extra_specs(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let f = c
            .compute
            .flavors
            .get(&id)
            .ok_or_else(|| flavor_not_found(&id))?;
        Ok(http::ok(json!({"extra_specs": f.extra_specs})))
    })
}

async fn set_flavor_extra_specs(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let specs = util::opt_str_map(&body, "extra_specs")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: extra_specs missing"))?;
    ctx.write(|c, _| {
        let f = c
            .compute
            .flavors
            .get_mut(&id)
            .ok_or_else(|| flavor_not_found(&id))?;
        f.extra_specs.extend(specs.clone());
        Ok(http::ok(json!({"extra_specs": specs})))
    })
}

async fn flavor_access(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let f = c
            .compute
            .flavors
            .get(&id)
            .ok_or_else(|| flavor_not_found(&id))?;
        if f.is_public {
            return Err(ApiError::not_found(
                "Access list not available for public flavors.",
            ));
        }
        Ok(http::ok(json!({"flavor_access": []})))
    })
}

// ---------------------------------------------------------------------------------------------
// Keypairs

/// Nova's fingerprint of an OpenSSH public key: MD5 of the key blob, colon-separated hex.
pub fn fingerprint(public_key: &str) -> Option<String> {
    use base64::Engine;
    use md5::Digest as _;
    let blob = public_key.split_whitespace().nth(1)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = md5::Md5::digest(&raw);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

fn render_keypair(ctx: &Ctx, k: &Keypair, full: bool) -> Value {
    let mut v = json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
    if ctx.mv.ge(2, 2) {
        v["type"] = json!(k.kind);
    }
    if full {
        v["user_id"] = json!(k.user_id);
        v["created_at"] = json!(util::iso_micro(&k.created));
        v["deleted"] = json!(false);
        v["deleted_at"] = Value::Null;
        v["updated_at"] = Value::Null;
        v["id"] = json!(k.num);
    }
    v
}

fn generate_keypair(name: &str) -> Result<(String, String), ApiError> {
    let dir = tempdir_for_key()?;
    let path = dir.join("key");
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            &format!("Generated-by-Nova ({name})"),
            "-f",
        ])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ApiError::internal(format!("ssh-keygen: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let private = std::fs::read_to_string(&path)?;
    let public = std::fs::read_to_string(path.with_extension("pub"))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((private, public.trim().to_string()))
}

fn tempdir_for_key() -> Result<std::path::PathBuf, ApiError> {
    let d = std::env::temp_dir().join(format!("osm-cloudsim-key-{}", util::new_id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

async fn create_keypair(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = util::body_object(&body, "keypair")?;
    let name = util::opt_str(spec, "name")?.ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute keypair. Value: 'name' is a required property",
        )
    })?;
    if name.is_empty()
        || name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-.@".contains(c))
    {
        return Err(ApiError::bad_request(format!("Invalid input for field/attribute name. Value: {name}. '{name}' does not match the keypair name pattern")));
    }
    let kind = util::opt_str(spec, "type")?.unwrap_or_else(|| "ssh".into());
    if kind != "ssh" && kind != "x509" {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute type. Value: {kind}."
        )));
    }
    let user_id = match util::opt_str(spec, "user_id")? {
        Some(u) if ctx.mv.ge(2, 10) && ctx.is_admin() => u,
        _ => ctx.user_id.clone(),
    };
    let (public_key, private_key) = match util::opt_str(spec, "public_key")? {
        Some(k) => {
            let k = k.trim().to_string();
            if fingerprint(&k).is_none() {
                return Err(ApiError::bad_request(
                    "Keypair data is invalid: failed to generate fingerprint",
                ));
            }
            (k, None)
        }
        None if ctx.mv.ge(2, 92) => {
            return Err(ApiError::bad_request("Invalid input for field/attribute keypair. Value: 'public_key' is a required property"));
        }
        None => {
            let (private, public) = generate_keypair(&name)?;
            (public, Some(private))
        }
    };
    let fp = fingerprint(&public_key).unwrap_or_default();
    ctx.write(|c, _| {
        let key = format!("{user_id}/{name}");
        if c.compute.keypairs.contains_key(&key) {
            return Err(ApiError::conflict(format!(
                "Key pair '{name}' already exists."
            )));
        }
        c.compute.counter += 1;
        let k = Keypair {
            name: name.clone(),
            user_id: user_id.clone(),
            public_key,
            fingerprint: fp,
            kind,
            created: util::now(),
            num: c.compute.counter,
        };
        let mut v = render_keypair(&ctx, &k, false);
        v["user_id"] = json!(k.user_id);
        if let Some(p) = private_key {
            v["private_key"] = json!(p);
        }
        c.compute.keypairs.insert(key, k);
        let status = if ctx.mv.ge(2, 2) {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(http::json(status, json!({"keypair": v})))
    })
}

async fn list_keypairs(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let user = match q.get("user_id") {
        Some(u) if ctx.is_admin() => u.to_string(),
        _ => ctx.user_id.clone(),
    };
    let mut kps: Vec<Keypair> = ctx.read(|c| {
        c.compute
            .keypairs
            .values()
            .filter(|k| k.user_id == user)
            .cloned()
            .collect()
    });
    kps.sort_by(|a, b| a.name.cmp(&b.name));
    let page = if ctx.mv.ge(2, 35) {
        http::paginate(kps, |k| k.name.clone(), &q, 1000)?
    } else {
        http::Page {
            items: kps,
            next_marker: None,
        }
    };
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|k| json!({"keypair": render_keypair(&ctx, k, false)}))
        .collect();
    let mut body = json!({"keypairs": items});
    if let Some(m) = page.next_marker {
        body["keypairs_links"] = json!([{"rel": "next", "href": ctx.url(&format!("/compute/v2.1/os-keypairs?{}", http::next_query(&q, &m)))}]);
    }
    Ok(http::ok(body))
}

fn keypair_key(ctx: &Ctx, q: &Q, name: &str) -> String {
    let user = match q.get("user_id") {
        Some(u) if ctx.is_admin() => u.to_string(),
        _ => ctx.user_id.clone(),
    };
    format!("{user}/{name}")
}

async fn show_keypair(ctx: Ctx, Path(name): Path<String>, q: Q) -> Result<Response, ApiError> {
    let key = keypair_key(&ctx, &q, &name);
    ctx.read(|c| {
        let k = c.compute.keypairs.get(&key).ok_or_else(|| {
            ApiError::not_found(format!("Keypair {name} not found for user {}", ctx.user_id))
        })?;
        Ok(http::ok(json!({"keypair": render_keypair(&ctx, k, true)})))
    })
}

async fn delete_keypair(ctx: Ctx, Path(name): Path<String>, q: Q) -> Result<Response, ApiError> {
    let key = keypair_key(&ctx, &q, &name);
    ctx.write(|c, _| {
        c.compute.keypairs.remove(&key).ok_or_else(|| {
            ApiError::not_found(format!("Keypair {name} not found for user {}", ctx.user_id))
        })?;
        Ok(http::empty(if ctx.mv.ge(2, 2) {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::ACCEPTED
        }))
    })
}

// ---------------------------------------------------------------------------------------------
// AZs, limits, quotas

async fn availability_zones(_ctx: Ctx) -> Response {
    http::ok(
        json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": true}, "hosts": null}]}),
    )
}

async fn availability_zones_detail(_ctx: Ctx) -> Response {
    let now = util::iso_micro(&util::now());
    http::ok(json!({"availabilityZoneInfo": [
        {"zoneName": "nova", "zoneState": {"available": true}, "hosts": {HOST: {"nova-compute": {"available": true, "active": true, "updated_at": now}}}},
        {"zoneName": "internal", "zoneState": {"available": true}, "hosts": {"cloudsim-controller": {"nova-conductor": {"available": true, "active": true, "updated_at": now}, "nova-scheduler": {"available": true, "active": true, "updated_at": now}}}},
    ]}))
}

async fn limits(ctx: Ctx) -> Response {
    let (n, cores, ram) = ctx.read(|c| {
        let own: Vec<&Server> = c
            .compute
            .servers
            .values()
            .filter(|s| s.project_id == ctx.project_id && s.vm_state != "deleted")
            .collect();
        (
            own.len(),
            own.iter().map(|s| s.flavor.vcpus).sum::<u64>(),
            own.iter().map(|s| s.flavor.ram).sum::<u64>(),
        )
    });
    http::ok(json!({"limits": {"rate": [], "absolute": {
        "maxServerMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240, "maxImageMeta": 128,
        "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
        "maxTotalCores": -1, "maxTotalInstances": -1, "maxTotalRAMSize": -1,
        "totalCoresUsed": cores, "totalInstancesUsed": n, "totalRAMUsed": ram, "totalServerGroupsUsed": 0,
    }}}))
}

fn quota_body(project: &str, detail: bool) -> Value {
    let keys = [
        "instances",
        "cores",
        "ram",
        "key_pairs",
        "metadata_items",
        "server_groups",
        "server_group_members",
        "injected_files",
        "injected_file_content_bytes",
        "injected_file_path_bytes",
    ];
    let mut m = Map::new();
    m.insert("id".into(), json!(project));
    for k in keys {
        m.insert(
            k.into(),
            if detail {
                json!({"limit": -1, "in_use": 0, "reserved": 0})
            } else {
                json!(-1)
            },
        );
    }
    json!({"quota_set": m})
}

async fn quota_set(_ctx: Ctx, Path(project): Path<String>) -> Response {
    http::ok(quota_body(&project, false))
}

async fn quota_set_detail(_ctx: Ctx, Path(project): Path<String>) -> Response {
    http::ok(quota_body(&project, true))
}

async fn extensions(_ctx: Ctx) -> Response {
    http::ok(json!({"extensions": []}))
}
