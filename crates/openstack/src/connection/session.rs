//! The Keystone token of a connection: obtained on first use, renewed shortly before it
//! expires, dropped when a service rejects it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::{auth_body, parse_time, TokenInfo};
use crate::catalog::{versioned_endpoint, Service};
use crate::error::{fault_message, Error, Result};
use crate::secret::Secret;

use super::transport::{reason, request_id, transport_message};
use super::{Connection, DEFAULT_API_TIMEOUT, TOKEN_RENEW_MARGIN_SECS};

pub(super) struct Session {
    pub(super) token: Secret,
    pub(super) info: TokenInfo,
    expires_at: Option<i64>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Connection {
    pub(super) fn session(&self) -> Result<Arc<Session>> {
        let mut guard = Self::lock(&self.session);
        if let Some(s) = guard.as_ref() {
            let fresh = s
                .expires_at
                .is_none_or(|t| t - now_unix() > TOKEN_RENEW_MARGIN_SECS);
            if fresh {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(self.login()?);
        *guard = Some(s.clone());
        Ok(s)
    }

    pub(super) fn drop_session(&self, old: &Arc<Session>) {
        let mut guard = Self::lock(&self.session);
        if guard.as_ref().is_some_and(|s| Arc::ptr_eq(s, old)) {
            *guard = None;
        }
    }

    fn identity_base(&self) -> Result<String> {
        let url = self.config.auth.auth_url.as_deref().unwrap_or_default();
        versioned_endpoint(Service::Identity, url, None)
            .map(|v| v.base)
            .map_err(Error::config)
    }

    /// `POST /v3/auth/tokens`.
    fn login(&self) -> Result<Session> {
        let url = format!("{}/auth/tokens", self.identity_base()?);
        let body = serde_json::to_vec(&auth_body(&self.config))
            .map_err(|e| Error::config(format!("cannot encode the auth request: {e}")))?;
        let path = url::Url::parse(&url)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| url.clone());
        let mut attempt = 0;
        let resp = loop {
            let rb = self
                .fresh
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .timeout(self.config.api_timeout.unwrap_or(DEFAULT_API_TIMEOUT))
                .body(body.clone());
            let started = std::time::Instant::now();
            let sent = rb.send();
            self.log_request("POST", &url, &sent, started, None);
            match sent {
                Ok(r) => break r,
                Err(e) => {
                    let (message, tls) = transport_message(&e);
                    if e.is_connect() && !tls && attempt < self.config.retry.max_retries {
                        std::thread::sleep(self.config.retry.delay(attempt));
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::Transport {
                        service: "identity",
                        method: "POST",
                        url,
                        message,
                    });
                }
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
        if !(200..300).contains(&status) {
            let mut message = fault_message(&bytes).unwrap_or_else(|| reason(status));
            if status == 401 {
                return Err(Error::Auth {
                    cloud: self.config.label(),
                    principal: self.config.principal(),
                    status,
                    message,
                    request_id: request_id(&headers),
                });
            }
            if status == 404 {
                message.push_str(" (is auth_url the Keystone endpoint?)");
            }
            return Err(Error::Api {
                service: "identity",
                method: "POST",
                path,
                status,
                message,
                request_id: request_id(&headers),
            });
        }
        let Some(token) = headers.get("x-subject-token").and_then(|v| v.to_str().ok()) else {
            return Err(Error::Decode {
                service: "identity",
                method: "POST",
                path,
                message: "no X-Subject-Token header in the answer".into(),
            });
        };
        #[derive(serde::Deserialize)]
        struct Wrap {
            token: TokenInfo,
        }
        let info = serde_json::from_slice::<Wrap>(&bytes)
            .map_err(|e| Error::Decode {
                service: "identity",
                method: "POST",
                path,
                message: format!("token body: {e}"),
            })?
            .token;
        let expires_at = info.expires_at.as_deref().and_then(parse_time);
        Ok(Session {
            token: Secret::new(token),
            info,
            expires_at,
        })
    }
}
