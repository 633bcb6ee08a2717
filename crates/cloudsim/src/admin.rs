//! The simulator's admin endpoint, `/_sim/...` (loopback clients only, no token):
//!
//! | request | does |
//! |---|---|
//! | `GET /_sim` | base URL, state dir, ssh port, transition delay, dirty-volume clouds, clouds with their auth URLs |
//! | `POST /_sim/faults` | adds a fault (see `crate::faults::FaultSpec`), answers 201 with it and its id |
//! | `GET /_sim/faults` | lists faults with their `matched`/`fired` counters |
//! | `DELETE /_sim/faults` | removes every fault |
//! | `DELETE /_sim/faults/<id>` | removes one fault |
//! | `GET /_sim/requests` | `{cloud: {"METHOD /route/template": count}}` |
//! | `POST /_sim/requests/reset` | zeroes the counts |
//! | `GET /_sim/hosts` | conversion hosts: server, cloud, address, directory, status |
//! | `GET /_sim/dirty-volumes` | `{"clouds": [...]}`: clouds whose new empty volumes read as garbage |
//! | `PUT /_sim/dirty-volumes` | `{"clouds": [...]}` replaces that set (see [`Sim::dirty_volumes`]) |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, JsonBody};
use crate::sim::Sim;

/// Admin routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim", get(info))
        .route(
            "/_sim/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sim/faults/{id}", delete(remove_fault))
        .route("/_sim/requests", get(requests))
        .route("/_sim/requests/reset", post(reset_requests))
        .route("/_sim/hosts", get(hosts))
        .route(
            "/_sim/dirty-volumes",
            get(dirty_volumes).put(set_dirty_volumes),
        )
}

async fn info(State(sim): State<Arc<Sim>>) -> Response {
    let clouds: serde_json::Map<String, Value> = {
        let st = sim.lock();
        st.clouds
            .iter()
            .map(|(name, c)| {
                let (user, project) = c.identity.main_user_and_project();
                (
                    name.clone(),
                    json!({
                        "auth_url": format!("{}/{}/identity/v3", sim.base_url, name),
                        "project_id": project.id, "project_name": project.name,
                        "user_id": user.id, "username": user.name, "region": c.region,
                        "host_address_range": format!("127.{}.0.0/16", 200 + c.index as u16),
                    }),
                )
            })
            .collect()
    };
    http::ok(json!({
        "base_url": sim.base_url,
        "state_dir": sim.cfg.state_dir,
        "clouds_yaml": sim.cfg.state_dir.join("clouds.yaml"),
        "ssh_port": sim.cfg.ssh_port,
        "transition_ms": sim.cfg.transition.as_millis() as u64,
        "dirty_volumes": sim.dirty_clouds(),
        "clouds": clouds,
    }))
}

async fn list_faults(State(sim): State<Arc<Sim>>) -> Response {
    http::ok(json!({"faults": sim.faults.list()}))
}

async fn add_fault(
    State(sim): State<Arc<Sim>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let f = sim.faults.add(body)?;
    Ok(http::json(StatusCode::CREATED, json!({"fault": f})))
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Response {
    sim.faults.clear();
    http::empty(StatusCode::NO_CONTENT)
}

async fn remove_fault(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let n: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid fault id {id}")))?;
    if sim.faults.remove(n) {
        Ok(http::empty(StatusCode::NO_CONTENT))
    } else {
        Err(ApiError::not_found(format!("no fault {n}")))
    }
}

async fn requests(State(sim): State<Arc<Sim>>) -> Response {
    let r = sim
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    http::ok(json!(r))
}

async fn reset_requests(State(sim): State<Arc<Sim>>) -> Response {
    sim.requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    http::empty(StatusCode::NO_CONTENT)
}

async fn hosts(State(sim): State<Arc<Sim>>) -> Response {
    let st = sim.lock();
    let mut out = Vec::new();
    for (cname, c) in &st.clouds {
        for s in c.compute.servers.values().filter(|s| s.is_host) {
            out.push(json!({
                "cloud": cname, "server_id": s.id, "name": s.name, "address": s.host_addr,
                "floating_ips": crate::network::loopback_fips_of_server(&c.network, &s.id),
                "dir": sim.host_dir(&s.id), "status": s.status(), "ssh_port": sim.cfg.ssh_port,
            }));
        }
    }
    http::ok(json!({"hosts": out}))
}

async fn dirty_volumes(State(sim): State<Arc<Sim>>) -> Response {
    http::ok(json!({"clouds": sim.dirty_clouds()}))
}

async fn set_dirty_volumes(
    State(sim): State<Arc<Sim>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let clouds = crate::util::opt_str_list(&body, "clouds")?
        .ok_or_else(|| ApiError::bad_request("give the clouds as {\"clouds\": [...]}"))?;
    sim.set_dirty_clouds(&clouds)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(http::ok(json!({"clouds": sim.dirty_clouds()})))
}
