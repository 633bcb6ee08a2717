//! The Keystone token of a connection: obtained on first use, renewed shortly before it
//! expires, dropped when a service rejects it. The federated login is in `federation.rs`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::HeaderMap;

use crate::auth::body::{auth_body, direct_methods};
use crate::auth::{parse_time, TokenInfo};
use crate::catalog::{versioned_endpoint, Service};
use crate::error::{fault_message, Error, Result};
use crate::secret::Secret;

use super::call::url_path;
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

    pub(super) fn identity_base(&self) -> Result<String> {
        let url = self.config.auth.auth_url.as_deref().unwrap_or_default();
        versioned_endpoint(Service::Identity, url, None)
            .map(|v| v.base)
            .map_err(Error::config)
    }

    /// A new token: one `POST /v3/auth/tokens`, or the federated dance of the OpenID Connect types.
    fn login(&self) -> Result<Session> {
        match direct_methods(&self.config)? {
            Some(methods) => self.post_tokens(&auth_body(&self.config, &methods), &[]),
            None => self.federated_login(),
        }
    }

    /// Sends a request that carries its own credentials (no `X-Auth-Token`), built anew by `build`
    /// for each attempt, and logs it without its body. Like every POST it is retried only when the
    /// connection could not be made. Fails with the transport failure's message.
    pub(super) fn send_unauthenticated(
        &self,
        method: &str,
        url: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> std::result::Result<Answer, String> {
        let mut attempt = 0;
        loop {
            let rb = build().timeout(self.config.api_timeout.unwrap_or(DEFAULT_API_TIMEOUT));
            let started = std::time::Instant::now();
            let sent = rb.send();
            self.log_request(method, url, &sent, started, None);
            match sent {
                Ok(r) => return Ok(Answer::read(r)),
                Err(e) => {
                    let (message, tls) = transport_message(&e);
                    if e.is_connect() && !tls && attempt < self.config.retry.max_retries {
                        std::thread::sleep(self.config.retry.delay(attempt));
                        attempt += 1;
                        continue;
                    }
                    return Err(message);
                }
            }
        }
    }

    /// A POST to Keystone that carries its own credentials; a transport failure is the identity
    /// service's.
    pub(super) fn identity_post(
        &self,
        url: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Answer> {
        self.send_unauthenticated("POST", url, build)
            .map_err(|message| Error::Transport {
                service: "identity",
                method: "POST",
                url: url.to_string(),
                message,
            })
    }

    /// `POST /v3/auth/tokens` with `body`. `learnt` are secrets obtained on the way (a federated
    /// login's access token and unscoped token), masked in error messages with the configured ones.
    pub(super) fn post_tokens(&self, body: &serde_json::Value, learnt: &[&str]) -> Result<Session> {
        let url = format!("{}/auth/tokens", self.identity_base()?);
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::config(format!("cannot encode the auth request: {e}")))?;
        let path = url_path(&url).unwrap_or_else(|| url.clone());
        let answer = self.identity_post(&url, || {
            self.fresh
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .body(body.clone())
        })?;
        let (status, headers) = (answer.status, &answer.headers);
        if !answer.ok() {
            let mut message = self.config.scrub(&answer.fault(), learnt);
            if status == 401 {
                return Err(Error::Auth {
                    cloud: self.config.label(),
                    principal: self.config.principal(),
                    status,
                    message,
                    request_id: request_id(headers),
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
                request_id: request_id(headers),
            });
        }
        read_token(headers, &answer.bytes, path)
    }
}

/// What an unauthenticated request got back, read whole: these answers are small, and each caller
/// wants the status, the headers and the body together.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) bytes: Vec<u8>,
}

impl Answer {
    fn read(resp: Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    pub(super) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The service's own words for a failure, or the status's reason phrase.
    pub(super) fn fault(&self) -> String {
        fault_message(&self.bytes).unwrap_or_else(|| reason(self.status))
    }
}

/// The token of a 2xx answer of Keystone: `X-Subject-Token` and the body's `token`.
pub(super) fn read_token(headers: &HeaderMap, bytes: &[u8], path: String) -> Result<Session> {
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
    let info = serde_json::from_slice::<Wrap>(bytes)
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
