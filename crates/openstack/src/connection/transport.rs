//! The HTTP clients (TLS, client certificates, timeouts) and the request loop: token and
//! microversion headers, retries of transient failures, one re-authentication on 401, and the
//! mapping of failures to [`Error`].

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::HeaderMap;
use reqwest::Method;

use crate::config::CloudConfig;
use crate::error::{fault_message, Error, Result};
use crate::microversion;

use super::call::{method_str, url_path, Body};
use super::{Call, Connection, CONNECT_TIMEOUT, DEFAULT_API_TIMEOUT};

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE
    )
}

fn is_retryable_status(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

/// The error chain of a transport failure in one line, with a hint for TLS problems.
pub(super) fn transport_message(e: &reqwest::Error) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        src = s.source();
    }
    let mut msg = parts.join(": ");
    let lower = msg.to_ascii_lowercase();
    let tls = lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("tls handshake")
        || lower.contains("invalid peer");
    if tls {
        msg.push_str(
            " (TLS verification failed: give the cloud's CA bundle as cacert/ca_cert/OS_CACERT, or set verify/validate_certs to false to skip verification)",
        );
    } else if e.is_timeout() {
        msg.push_str(" (timed out)");
    }
    (msg, tls)
}

pub(super) fn request_id(headers: &HeaderMap) -> Option<String> {
    for h in [
        "x-openstack-request-id",
        "x-compute-request-id",
        "x-request-id",
    ] {
        if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok()) {
            return Some(v.to_string());
        }
    }
    None
}

pub(super) fn reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

pub(super) fn build_client(cfg: &CloudConfig, pooled: bool) -> Result<Client> {
    let mut b = Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("osm-openstack/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(None::<Duration>);
    if pooled {
        b = b.pool_idle_timeout(Duration::from_secs(20));
    } else {
        b = b.pool_max_idle_per_host(0);
    }
    if !cfg.verify {
        b = b.danger_accept_invalid_certs(true);
    } else if let Some(path) = &cfg.cacert {
        let pem = std::fs::read(path)
            .map_err(|e| Error::config(format!("cannot read cacert {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::config(format!(
                "cacert {} is not a PEM bundle: {e}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(Error::config(format!(
                "cacert {} holds no certificate",
                path.display()
            )));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some(cert) = &cfg.client_cert {
        let mut pem = std::fs::read(cert).map_err(|e| {
            Error::config(format!("cannot read client cert {}: {e}", cert.display()))
        })?;
        if let Some(key) = &cfg.client_key {
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(|e| {
                Error::config(format!("cannot read client key {}: {e}", key.display()))
            })?);
        }
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
            Error::config(format!(
                "client cert {} (+ key) is not a PEM certificate and key: {e}",
                cert.display()
            ))
        })?;
        b = b.identity(id);
    }
    b.build().map_err(|e| {
        Error::config(format!(
            "cannot set up the HTTP client: {}",
            transport_message(&e).0
        ))
    })
}

impl Connection {
    /// The retry loop: token, microversion headers, retries of transient failures, one re-auth on
    /// 401, error mapping.
    pub(super) fn execute_url(&self, mut call: Call, url: String) -> Result<Response> {
        let mut full =
            url::Url::parse(&url).map_err(|e| Error::config(format!("bad URL {url:?}: {e}")))?;
        if !call.query.is_empty() {
            let mut qp = full.query_pairs_mut();
            for (k, v) in &call.query {
                qp.append_pair(k, v);
            }
        }
        let path = url_path(full.as_str()).unwrap_or_else(|| call.path.clone());
        let idempotent = is_idempotent(&call.method);
        let client = if idempotent {
            &self.pooled
        } else {
            &self.fresh
        };
        let mut attempt: u32 = 0;
        let mut reauthed = false;
        let retry = self.config.retry;
        loop {
            let session = self.session()?;
            let mut rb: RequestBuilder = client
                .request(call.method.clone(), full.clone())
                .header("Accept", "application/json");
            rb = rb.header("X-Auth-Token", session.token.expose());
            if let Some(v) = call.microversion {
                for (k, val) in microversion::headers(call.service, v) {
                    rb = rb.header(k, val);
                }
            }
            for (k, v) in &call.headers {
                rb = rb.header(*k, v);
            }
            if !call.data_transfer {
                rb = rb.timeout(self.config.api_timeout.unwrap_or(DEFAULT_API_TIMEOUT));
            }
            let mut streamed = false;
            rb =
                match &mut call.body {
                    Body::None => rb,
                    Body::Json(b) => rb
                        .header("Content-Type", "application/json")
                        .body(b.clone()),
                    Body::Bytes(b, ct) => rb.header("Content-Type", *ct).body(b.clone()),
                    Body::Stream(s) => {
                        streamed = true;
                        match s.take() {
                            Some(body) => rb
                                .header("Content-Type", "application/octet-stream")
                                .body(body),
                            None => return Err(Error::Io {
                                context: format!("{} {} {path}", call.service, call.method),
                                source: std::io::Error::other(
                                    "the upload stream was already consumed by an earlier attempt",
                                ),
                            }),
                        }
                    }
                };
            let can_retry = attempt < retry.max_retries && !streamed;
            let started = std::time::Instant::now();
            let sent = rb.send();
            let logged_body = match &call.body {
                Body::Json(b) => Some(b.as_slice()),
                _ => None,
            };
            self.log_request(
                call.method.as_str(),
                full.as_str(),
                &sent,
                started,
                logged_body,
            );
            match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if (200..300).contains(&status) {
                        return Ok(resp);
                    }
                    if status == 401 {
                        // The token may have been revoked or expired early: drop it, and (once)
                        // get a new one and repeat the request.
                        self.drop_session(&session);
                        if !reauthed && !streamed {
                            reauthed = true;
                            continue;
                        }
                    }
                    if idempotent && is_retryable_status(status) && can_retry {
                        drop(resp);
                        std::thread::sleep(retry.delay(attempt));
                        attempt += 1;
                        continue;
                    }
                    let headers = resp.headers().clone();
                    let bytes = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
                    let message = fault_message(&bytes).unwrap_or_else(|| reason(status));
                    if status == 401 {
                        let what = if reauthed {
                            "rejected a new token too"
                        } else {
                            "rejected the token"
                        };
                        return Err(Error::Auth {
                            cloud: self.config.label(),
                            principal: self.config.principal(),
                            status,
                            message: format!(
                                "{} {} {path} {what}: {message}",
                                call.service, call.method
                            ),
                            request_id: request_id(&headers),
                        });
                    }
                    return Err(Error::Api {
                        service: call.service.service_type(),
                        method: method_str(&call.method),
                        path,
                        status,
                        message,
                        request_id: request_id(&headers),
                    });
                }
                Err(e) => {
                    let (message, tls) = transport_message(&e);
                    let transient = if idempotent {
                        !e.is_timeout() && !e.is_builder() && !tls
                    } else {
                        e.is_connect() && !tls
                    };
                    if transient && can_retry {
                        std::thread::sleep(retry.delay(attempt));
                        attempt += 1;
                        continue;
                    }
                    let message = if attempt > 0 {
                        format!("{message} (after {attempt} retries)")
                    } else {
                        message
                    };
                    return Err(Error::Transport {
                        service: call.service.service_type(),
                        method: method_str(&call.method),
                        url: full.to_string(),
                        message,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        assert!(
            is_idempotent(&Method::GET)
                && is_idempotent(&Method::DELETE)
                && is_idempotent(&Method::PUT)
                && is_idempotent(&Method::HEAD)
        );
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
        for s in [500, 502, 503, 504] {
            assert!(is_retryable_status(s));
        }
        for s in [400, 401, 404, 409, 501] {
            assert!(!is_retryable_status(s));
        }
    }
}
