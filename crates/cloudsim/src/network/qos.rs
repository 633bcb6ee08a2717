//! QoS policies (the `qos` extension): the record, list, show, create, update, delete. Floating
//! IPs refer to one by `qos_policy_id`; rules are not simulated (a policy has none).

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::sim::Sim;

use super::listing::{list_response, sorted};
use super::{b, body_of, conflict, not_found, owner, s, Common, NetworkData};

/// A QoS policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QosPolicy {
    /// Common fields.
    #[serde(flatten)]
    pub c: Common,
    /// Other projects may use it.
    pub shared: bool,
    /// The project's default policy.
    pub is_default: bool,
}

fn render(p: &QosPolicy) -> Value {
    let mut m = p.c.render();
    m.insert("shared".into(), json!(p.shared));
    m.insert("is_default".into(), json!(p.is_default));
    m.insert("rules".into(), json!([]));
    Value::Object(m)
}

/// Whether the caller may use (see, refer to) the policy: its own, a shared one, or any for an admin.
fn usable(ctx: &Ctx, p: &QosPolicy) -> bool {
    ctx.is_admin() || p.shared || p.c.project_id == ctx.project_id
}

/// The ID of a policy the caller may attach to a resource, or the error Neutron gives.
pub(super) fn check_usable(ctx: &Ctx, net: &NetworkData, id: &str) -> Result<(), ApiError> {
    match net.qos_policies.get(id) {
        Some(p) if usable(ctx, p) => Ok(()),
        _ => Err(not_found("QosPolicy", id)),
    }
}

async fn list(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.read(|c| {
        sorted(
            c.network.qos_policies.values().filter(|p| usable(&ctx, p)),
            |p| p.c.seq,
        )
        .into_iter()
        .map(render)
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "policies", items)
}

async fn show(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let p = c
            .network
            .qos_policies
            .get(&id)
            .filter(|p| usable(&ctx, p))
            .ok_or_else(|| not_found("QosPolicy", &id))?;
        Ok(http::ok(json!({"policy": render(p)})))
    })
}

async fn create(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "policy")?.clone();
    let name = s(&spec, "name")?.unwrap_or_default();
    let description = s(&spec, "description")?.unwrap_or_default();
    let shared = b(&spec, "shared")?.unwrap_or(false);
    let is_default = b(&spec, "is_default")?.unwrap_or(false);
    let project = owner(&ctx, &spec)?;
    if shared && !ctx.is_admin() {
        return Err(ApiError::neutron(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "rule:create_policy:shared is disallowed by policy",
        ));
    }
    ctx.write(|c, seq| {
        let p = QosPolicy {
            c: Common::new(seq, &project, name, description),
            shared,
            is_default,
        };
        let v = render(&p);
        c.network.qos_policies.insert(p.c.id.clone(), p);
        Ok(http::json(StatusCode::CREATED, json!({"policy": v})))
    })
}

async fn update(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = body_of(&body, "policy")?.clone();
    ctx.write(|c, _| {
        let p = c
            .network
            .qos_policies
            .get_mut(&id)
            .filter(|p| ctx.is_admin() || p.c.project_id == ctx.project_id)
            .ok_or_else(|| not_found("QosPolicy", &id))?;
        if let Some(n) = s(&spec, "name")? {
            p.c.name = n;
        }
        if let Some(d) = s(&spec, "description")? {
            p.c.description = d;
        }
        if let Some(x) = b(&spec, "shared")? {
            p.shared = x;
        }
        p.c.touch();
        Ok(http::ok(json!({"policy": render(p)})))
    })
}

async fn delete(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let net = &mut c.network;
        net.qos_policies
            .get(&id)
            .filter(|p| ctx.is_admin() || p.c.project_id == ctx.project_id)
            .ok_or_else(|| not_found("QosPolicy", &id))?;
        if let Some(f) = net
            .floating_ips
            .values()
            .find(|f| f.qos_policy_id.as_deref() == Some(id.as_str()))
        {
            return Err(conflict(
                "QosPolicyInUse",
                format!("QoS Policy {id} is used by floatingip {}.", f.c.id),
            ));
        }
        net.qos_policies.remove(&id);
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/network/v2.0/qos/policies", get(list).post(create))
        .route(
            "/network/v2.0/qos/policies/{id}",
            get(show).put(update).delete(delete),
        )
}
