//! Keypairs: import or generate (ssh-keygen), list, show, delete; one namespace per user.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::sim::Sim;
use crate::util::{self, Ts};

use super::list_page;

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

/// Nova's fingerprint of an OpenSSH public key: MD5 of the key blob, colon-separated hex.
fn fingerprint(public_key: &str) -> Option<String> {
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
    Ok(list_page(
        &ctx,
        &q,
        "keypairs",
        "os-keypairs",
        items,
        page.next_marker,
    ))
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

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/compute/v2.1/os-keypairs",
            get(list_keypairs).post(create_keypair),
        )
        .route(
            "/compute/v2.1/os-keypairs/{name}",
            get(show_keypair).delete(delete_keypair),
        )
}
