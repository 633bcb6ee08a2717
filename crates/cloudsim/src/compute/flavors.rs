//! Flavors: list with Nova's filters, show, create, update, delete, extra specs, access.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::sim::Sim;
use crate::util;

use super::{links, list_page};

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
    let path = if detail { "flavors/detail" } else { "flavors" };
    Ok(list_page(ctx, q, "flavors", path, items, page.next_marker))
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

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
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
}
