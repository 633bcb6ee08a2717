//! Image data: streamed upload (with checksum and multihash) and download.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use md5::Digest;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::http::{self, Ctx};
use crate::sim::Sim;
use crate::util;

use super::{not_found, visible_image, visible_image_mut};

async fn upload(ctx: Ctx, Path(id): Path<String>, body: Body) -> Result<Response, ApiError> {
    let path = ctx.sim.data_path(&ctx.cloud, "images", &id);
    ctx.write(|c, _| {
        let img = visible_image_mut(&ctx, c, &id)?;
        if img.status != "queued" {
            return Err(ApiError::conflict(format!(
                "Image status transition from {} to saving is not allowed",
                img.status
            )));
        }
        img.status = "saving".into();
        img.updated = util::now();
        Ok(())
    })?;
    let result = receive(&path, body).await;
    match result {
        Ok((size, md5, sha512)) => ctx.write(|c, _| {
            let img = c.image.images.get_mut(&id).ok_or_else(|| not_found(&id))?;
            img.size = Some(size);
            img.checksum = Some(md5);
            img.os_hash_value = Some(sha512);
            img.status = "active".into();
            img.updated = util::now();
            Ok(http::empty(StatusCode::NO_CONTENT))
        }),
        Err(e) => {
            crate::files::remove(&path);
            ctx.write(|c, _| {
                if let Some(img) = c.image.images.get_mut(&id) {
                    img.status = "queued".into();
                }
            });
            Err(e)
        }
    }
}

/// Streams a request body into a file, hashing it; returns `(size, md5, sha512)`.
async fn receive(path: &std::path::Path, body: Body) -> Result<(u64, String, String), ApiError> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut file = tokio::fs::File::create(path).await?;
    let mut md5 = md5::Md5::new();
    let mut sha = sha2::Sha512::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("Error receiving image data: {e}")))?;
        md5.update(&chunk);
        sha.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok((
        size,
        hex::encode(md5.finalize()),
        hex::encode(sha.finalize()),
    ))
}

/// Hashes a file the way an upload does (createImage data).
pub fn hash_file(path: &std::path::Path) -> std::io::Result<(u64, String, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut md5 = md5::Md5::new();
    let mut sha = sha2::Sha512::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok((
        size,
        hex::encode(md5.finalize()),
        hex::encode(sha.finalize()),
    ))
}

async fn download(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (checksum, status) = ctx.read(|c| {
        let img = visible_image(&ctx, c, &id)?;
        Ok::<_, ApiError>((img.checksum.clone(), img.status.clone()))
    })?;
    if status == "deactivated" {
        return Err(ApiError::forbidden(
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    let path = ctx.sim.data_path(&ctx.cloud, "images", &id);
    let Some(checksum) = checksum else {
        return Ok(http::empty(StatusCode::NO_CONTENT));
    };
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("Image {id} has no data.")))?;
    let len = file.metadata().await?.len();
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&checksum) {
        h.insert("content-md5", v);
    }
    Ok(resp)
}

/// Routes of this resource family.
pub(super) fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/image/v2/images/{id}/file", get(download).put(upload))
}
