//! User messages (3.3+): why an asynchronous operation failed.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, Q};
use crate::sim::Sim;
use crate::util::{self, Ts};

/// A user message (Cinder's messages API, 3.3+): why a volume or snapshot went to error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// UUID.
    pub id: String,
    /// The volume or snapshot.
    pub resource_uuid: String,
    /// VOLUME or SNAPSHOT.
    pub resource_type: String,
    /// Text for the user.
    pub user_message: String,
    /// Cinder event id.
    pub event_id: String,
    /// Owner.
    pub project_id: String,
    /// When.
    pub created: Ts,
}

fn need_messages(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.mv.ge(3, 3) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

fn render_message(ctx: &Ctx, m: &Message) -> Value {
    json!({
        "id": m.id, "resource_uuid": m.resource_uuid, "resource_type": m.resource_type,
        "user_message": m.user_message, "event_id": m.event_id, "message_level": "ERROR",
        "request_id": ctx.request_id, "created_at": util::iso_micro(&m.created),
        "guaranteed_until": util::iso_micro(&(m.created + chrono::Duration::days(30))),
        "links": [{"rel": "self", "href": ctx.url(&format!("/volume/v3/{}/messages/{}", m.project_id, m.id))}],
    })
}

async fn list_messages(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    need_messages(&ctx)?;
    let items: Vec<Value> = ctx.read(|c| {
        c.volume
            .messages
            .iter()
            .rev()
            .filter(|m| m.project_id == ctx.project_id || ctx.is_admin())
            .filter(|m| q.get("resource_uuid").is_none_or(|r| m.resource_uuid == r))
            .filter(|m| {
                q.get("resource_type")
                    .is_none_or(|r| m.resource_type.eq_ignore_ascii_case(r))
            })
            .filter(|m| q.get("event_id").is_none_or(|e| m.event_id == e))
            .map(|m| render_message(&ctx, m))
            .collect()
    });
    Ok(http::ok(json!({"messages": items})))
}

async fn show_message(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    need_messages(&ctx)?;
    ctx.read(|c| {
        let m = c
            .volume
            .messages
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ApiError::not_found(format!("Message {id} could not be found.")))?;
        Ok(http::ok(json!({"message": render_message(&ctx, m)})))
    })
}

async fn delete_message(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    need_messages(&ctx)?;
    ctx.write(|c, _| {
        let before = c.volume.messages.len();
        c.volume.messages.retain(|m| m.id != id);
        if c.volume.messages.len() == before {
            return Err(ApiError::not_found(format!(
                "Message {id} could not be found."
            )));
        }
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/volume/v3/messages", get(list_messages))
        .route(
            "/volume/v3/messages/{id}",
            get(show_message).delete(delete_message),
        )
}
