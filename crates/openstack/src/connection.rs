//! `Connection`: HTTP clients, Keystone session, endpoints, retries, errors, pagination.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::auth::{auth_body, parse_time, TokenInfo};
use crate::catalog::{select_endpoint, versioned_endpoint, Service};
use crate::config::{CloudConfig, CloudOptions, ConfigLoader};
use crate::error::{fault_message, Error, Result};
use crate::microversion::{self, Microversion, Range};
use crate::secret::Secret;

/// Timeout of one API call when the configuration gives none.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(180);
/// Timeout of establishing a TCP + TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A token this close to its expiry is renewed before the next call.
const TOKEN_RENEW_MARGIN_SECS: i64 = 120;
/// Most pages a `list_*` follows before it gives up (a cloud sending the same `next` forever).
const MAX_PAGES: usize = 100_000;

/// A connection to one cloud: one Keystone token, reused for every call (and renewed shortly before
/// it expires or when a service rejects it), and the endpoints of the services.
///
/// Cheap to share between threads (`&Connection` is `Send + Sync`). Authentication happens on the
/// first call, or explicitly with [`Connection::authenticate`].
pub struct Connection {
    config: CloudConfig,
    /// Keeps connections alive; used for idempotent requests, which are retried on resets.
    pooled: Client,
    /// Opens a new connection per request; used for POST and PATCH, which cannot be retried once
    /// sent, so that they never go out on a kept-alive connection the server has already dropped.
    fresh: Client,
    session: Mutex<Option<Arc<Session>>>,
    endpoints: Mutex<HashMap<Service, Arc<Endpoint>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("cloud", &self.config.label())
            .finish_non_exhaustive()
    }
}

struct Session {
    token: Secret,
    info: TokenInfo,
    expires_at: Option<i64>,
}

struct Endpoint {
    base: String,
    range: Option<Range>,
}

/// Request body of a [`Call`].
pub(crate) enum Body {
    None,
    Json(Vec<u8>),
    Bytes(Vec<u8>, &'static str),
    /// Sent once: a streamed body is never retried.
    Stream(Option<reqwest::blocking::Body>),
}

/// One API request, relative to a service's versioned base URL.
pub(crate) struct Call {
    pub service: Service,
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    /// Exact microversion; `None` negotiates the ceiling (compute and block-storage only).
    pub microversion: Option<Microversion>,
    pub headers: Vec<(&'static str, String)>,
    /// Image data up or down: no overall timeout.
    pub data_transfer: bool,
}

impl Call {
    pub fn new(service: Service, method: Method, path: impl Into<String>) -> Call {
        Call {
            service,
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
            microversion: None,
            headers: Vec::new(),
            data_transfer: false,
        }
    }
    pub fn get(service: Service, path: impl Into<String>) -> Call {
        Call::new(service, Method::GET, path)
    }
    pub fn post(service: Service, path: impl Into<String>) -> Call {
        Call::new(service, Method::POST, path)
    }
    pub fn put(service: Service, path: impl Into<String>) -> Call {
        Call::new(service, Method::PUT, path)
    }
    pub fn delete(service: Service, path: impl Into<String>) -> Call {
        Call::new(service, Method::DELETE, path)
    }
    pub fn query(mut self, k: impl Into<String>, v: impl Into<String>) -> Call {
        self.query.push((k.into(), v.into()));
        self
    }
    pub fn queries(mut self, q: &crate::Query) -> Call {
        self.query.extend(q.pairs().iter().cloned());
        self
    }
    pub fn json(mut self, body: &impl Serialize) -> Result<Call> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Decode {
            service: self.service.service_type(),
            method: method_str(&self.method),
            path: self.path.clone(),
            message: format!("cannot encode the request body: {e}"),
        })?;
        self.body = Body::Json(bytes);
        Ok(self)
    }
    pub fn microversion(mut self, v: Microversion) -> Call {
        self.microversion = Some(v);
        self
    }
}

/// A read answer.
pub(crate) struct Reply {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub method: Method,
    pub path: String,
    pub service: Service,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| self.decode_error(format!("{e}")))
    }
    pub fn decode_error(&self, message: String) -> Error {
        Error::Decode {
            service: self.service.service_type(),
            method: method_str(&self.method),
            path: self.path.clone(),
            message,
        }
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// The method's name, for errors.
pub(crate) fn method_str(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

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
fn transport_message(e: &reqwest::Error) -> (String, bool) {
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

fn request_id(headers: &HeaderMap) -> Option<String> {
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

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn build_client(cfg: &CloudConfig, pooled: bool) -> Result<Client> {
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
    /// Resolves the openstack.cloud common options (with the process environment and
    /// openstacksdk's clouds.yaml search path) and prepares a connection. Does not authenticate yet.
    pub fn from_options(opts: &CloudOptions) -> Result<Connection> {
        Connection::new(ConfigLoader::from_process().load(opts)?)
    }

    /// A cloud from clouds.yaml (+ secure.yaml), by name.
    pub fn from_cloud(name: &str) -> Result<Connection> {
        Connection::new(ConfigLoader::from_process().cloud(name)?)
    }

    /// A cloud from the given clouds.yaml (and the `secure.yaml` beside it, if any), e.g. the one
    /// `osm-cloudsim serve --state-dir DIR` writes to `DIR/clouds.yaml`.
    pub fn from_clouds_yaml(path: &std::path::Path, name: &str) -> Result<Connection> {
        let secure = path.with_file_name("secure.yaml");
        let loader =
            ConfigLoader::from_process().with_search_path(vec![path.to_path_buf()], vec![secure]);
        if !path.is_file() {
            return Err(Error::config(format!("{} does not exist", path.display())));
        }
        Connection::new(loader.cloud(name)?)
    }

    /// The cloud named by `OS_CLOUD`, else the one the `OS_*` variables describe.
    pub fn from_env() -> Result<Connection> {
        Connection::new(ConfigLoader::from_process().default_cloud()?)
    }

    /// A connection to a resolved cloud. Checks the configuration and reads the TLS files; does
    /// not authenticate yet.
    pub fn new(config: CloudConfig) -> Result<Connection> {
        config.validate()?;
        let pooled = build_client(&config, true)?;
        let fresh = build_client(&config, false)?;
        Ok(Connection {
            config,
            pooled,
            fresh,
            session: Mutex::new(None),
            endpoints: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration this connection uses.
    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    /// Authenticates now (if not yet) and returns what the token says.
    pub fn authenticate(&self) -> Result<TokenInfo> {
        Ok(self.session()?.info.clone())
    }

    /// The token's project ID; fails for a token without a project scope.
    pub fn project_id(&self) -> Result<String> {
        let s = self.session()?;
        s.info.project.as_ref().map(|p| p.id.clone()).ok_or_else(|| {
            Error::config(format!("the token of cloud {} is not scoped to a project; give project_name or project_id", self.config.label()))
        })
    }

    /// The microversion a call of `service` is sent with when it needs at least `needed` for
    /// `feature`: the crate's ceiling, capped at the cloud's maximum. Fails with
    /// [`Error::Unsupported`] when the cloud's maximum is below `needed`.
    pub fn microversion(
        &self,
        service: Service,
        needed: Microversion,
        feature: &str,
    ) -> Result<Microversion> {
        let ceiling = match service {
            Service::Compute => microversion::COMPUTE_CEILING,
            Service::BlockStorage => microversion::BLOCK_STORAGE_CEILING,
            _ => return Ok(needed),
        };
        let ep = self.endpoint(service)?;
        microversion::negotiate(ep.range, needed, ceiling).map_err(|(needed, max)| {
            Error::Unsupported {
                service: service.service_type(),
                feature: feature.to_string(),
                needed: needed.to_string(),
                max: max.to_string(),
            }
        })
    }

    /// The cloud's supported microversion range for `service` (`None` when it is not a
    /// microversioned API or the version document could not be read).
    pub fn microversion_range(
        &self,
        service: Service,
    ) -> Result<Option<(Microversion, Microversion)>> {
        Ok(self.endpoint(service)?.range)
    }

    /// The versioned base URL calls to `service` go to.
    pub fn endpoint_url(&self, service: Service) -> Result<String> {
        Ok(self.endpoint(service)?.base.clone())
    }

    fn lock<'a, T>(m: &'a Mutex<T>) -> MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn session(&self) -> Result<Arc<Session>> {
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

    fn drop_session(&self, old: &Arc<Session>) {
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
            match rb.send() {
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

    fn endpoint(&self, service: Service) -> Result<Arc<Endpoint>> {
        let mut guard = Self::lock(&self.endpoints);
        if let Some(e) = guard.get(&service) {
            return Ok(e.clone());
        }
        let session = self.session()?;
        let url = match self.config.endpoint_overrides.get(service.service_type()) {
            Some(u) => u.clone(),
            None => match select_endpoint(
                &session.info.catalog,
                service,
                self.config.interface,
                self.config.region_name.as_deref(),
            ) {
                Ok(u) => u,
                Err(_) if service == Service::Identity => {
                    self.config.auth.auth_url.clone().unwrap_or_default()
                }
                Err(m) => return Err(Error::config(format!("cloud {}: {m}", self.config.label()))),
            },
        };
        let project = session.info.project.as_ref().map(|p| p.id.as_str());
        if service == Service::BlockStorage && project.is_none() {
            return Err(Error::config(format!(
                "cloud {}: block-storage needs a project-scoped token",
                self.config.label()
            )));
        }
        let ve = versioned_endpoint(service, &url, project)
            .map_err(|m| Error::config(format!("cloud {}: {m}", self.config.label())))?;
        let range = match service {
            Service::Compute => {
                self.discover(service, &ve.version_url, "v2.1", microversion::COMPUTE_BASE)
            }
            Service::BlockStorage => self.discover(
                service,
                &ve.version_url,
                "v3",
                microversion::BLOCK_STORAGE_BASE,
            ),
            _ => None,
        };
        let ep = Arc::new(Endpoint {
            base: ve.base,
            range,
        });
        guard.insert(service, ep.clone());
        Ok(ep)
    }

    /// Reads the microversion range from the version document; `None` if that fails.
    fn discover(
        &self,
        service: Service,
        version_url: &str,
        want: &str,
        base: Microversion,
    ) -> Option<Range> {
        let call = Call::get(service, String::new());
        let reply = self.execute_url(call, version_url.to_string()).ok()?;
        let body: Value = serde_json::from_slice(&reply.bytes().ok()?).ok()?;
        microversion::parse_version_document(&body, want, base)
    }

    /// Sends a call and returns the 2xx response unread (for downloads).
    pub(crate) fn send(&self, call: Call) -> Result<Response> {
        let ep = self.endpoint(call.service)?;
        let mut call = call;
        if call.microversion.is_none() {
            call.microversion = match call.service {
                Service::Compute => Some(
                    microversion::negotiate(
                        ep.range,
                        microversion::COMPUTE_BASE,
                        microversion::COMPUTE_CEILING,
                    )
                    .unwrap_or(microversion::COMPUTE_BASE),
                ),
                Service::BlockStorage => Some(
                    microversion::negotiate(
                        ep.range,
                        microversion::BLOCK_STORAGE_BASE,
                        microversion::BLOCK_STORAGE_CEILING,
                    )
                    .unwrap_or(microversion::BLOCK_STORAGE_BASE),
                ),
                _ => None,
            };
        }
        let url = format!("{}{}", ep.base, call.path);
        self.execute_url(call, url)
    }

    /// Sends a call, reads the whole answer.
    pub(crate) fn call(&self, call: Call) -> Result<Reply> {
        let (service, method) = (call.service, call.method.clone());
        let mut path_for_errors = call.path.clone();
        let resp = self.send(call)?;
        path_for_errors = url_path(resp.url().as_str()).unwrap_or(path_for_errors);
        let headers = resp.headers().clone();
        let body = resp.bytes().map_err(|e| Error::Transport {
            service: service.service_type(),
            method: method_str(&method),
            url: path_for_errors.clone(),
            message: format!("reading the answer: {}", transport_message(&e).0),
        })?;
        Ok(Reply {
            headers,
            body: body.to_vec(),
            method,
            path: path_for_errors,
            service,
        })
    }

    /// Sends a call and parses the JSON answer.
    pub(crate) fn call_json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        self.call(call)?.json()
    }

    /// Sends a call and parses `{key: T}`.
    pub(crate) fn call_key<T: DeserializeOwned>(&self, call: Call, key: &str) -> Result<T> {
        let reply = self.call(call)?;
        let body: HashMap<String, Box<RawValue>> = reply.json()?;
        let inner = body
            .get(key)
            .ok_or_else(|| reply.decode_error(format!("no {key:?} in the answer")))?;
        serde_json::from_str(inner.get()).map_err(|e| reply.decode_error(format!("{key}: {e}")))
    }

    /// Lists every page of a collection: follows `<key>_links` `next` (Nova, Cinder, Neutron) and
    /// `next` (Glance) with the query of the link applied to the same path.
    pub(crate) fn list_all<T: DeserializeOwned>(&self, call: Call, key: &str) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut query = call.query.clone();
        let mut seen: Vec<Vec<(String, String)>> = vec![query.clone()];
        let (service, path, microversion, headers) = (
            call.service,
            call.path.clone(),
            call.microversion,
            call.headers.clone(),
        );
        for _ in 0..MAX_PAGES {
            let mut c = Call::get(service, path.clone());
            c.query = query.clone();
            c.microversion = microversion;
            c.headers = headers.clone();
            let reply = self.call(c)?;
            // Items are decoded from their own text, not through `Value`, whose map sorts keys
            // and would lose an order the cloud gives (a server's `addresses` are in NIC order).
            let body: HashMap<String, Box<RawValue>> = reply.json()?;
            let items: Vec<Box<RawValue>> = body
                .get(key)
                .and_then(|v| serde_json::from_str(v.get()).ok())
                .ok_or_else(|| reply.decode_error(format!("no {key:?} list in the answer")))?;
            let n = items.len();
            for (i, item) in items.iter().enumerate() {
                out.push(
                    serde_json::from_str(item.get())
                        .map_err(|e| reply.decode_error(format!("{key}[{i}]: {e}")))?,
                );
            }
            let links: Value = [format!("{key}_links"), "next".to_string()]
                .into_iter()
                .filter_map(|k| {
                    let v = serde_json::from_str(body.get(&k)?.get()).ok()?;
                    Some((k, v))
                })
                .collect::<serde_json::Map<String, Value>>()
                .into();
            match next_page_query(&links, key) {
                Some(next) if n > 0 => {
                    if seen.contains(&next) {
                        return Err(reply.decode_error(format!("the {key} pagination links loop")));
                    }
                    seen.push(next.clone());
                    query = next;
                }
                _ => return Ok(out),
            }
        }
        Err(Error::Decode {
            service: service.service_type(),
            method: "GET",
            path,
            message: format!("more than {MAX_PAGES} pages of {key}"),
        })
    }

    /// The retry loop: token, microversion headers, retries of transient failures, one re-auth on
    /// 401, error mapping.
    fn execute_url(&self, mut call: Call, url: String) -> Result<Response> {
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
            match rb.send() {
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

    /// The user and project of the token.
    pub fn token_info(&self) -> Result<TokenInfo> {
        self.authenticate()
    }

    /// Identity (Keystone v3) calls.
    pub fn identity(&self) -> crate::identity::IdentityApi<'_> {
        crate::identity::IdentityApi::new(self)
    }

    /// Compute (Nova v2.1) calls.
    pub fn compute(&self) -> crate::compute::ComputeApi<'_> {
        crate::compute::ComputeApi::new(self)
    }

    /// Block Storage (Cinder v3) calls.
    pub fn block_storage(&self) -> crate::block_storage::BlockStorageApi<'_> {
        crate::block_storage::BlockStorageApi::new(self)
    }

    /// Image (Glance v2) calls.
    pub fn image(&self) -> crate::image::ImageApi<'_> {
        crate::image::ImageApi::new(self)
    }

    /// Network (Neutron v2.0) calls.
    pub fn network(&self) -> crate::network::NetworkApi<'_> {
        crate::network::NetworkApi::new(self)
    }
}

fn reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// Path and query of a URL.
fn url_path(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(match u.query() {
        Some(q) => format!("{}?{}", u.path(), q),
        None => u.path().to_string(),
    })
}

/// The query of the next page, from `<key>_links: [{rel: next, href}]` or Glance's `next`.
pub(crate) fn next_page_query(body: &Value, key: &str) -> Option<Vec<(String, String)>> {
    let href = body
        .get(format!("{key}_links"))
        .and_then(|l| l.as_array())
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("rel").and_then(|r| r.as_str()) == Some("next"))
        })
        .and_then(|l| l.get("href"))
        .and_then(|h| h.as_str())
        .or_else(|| body.get("next").and_then(|n| n.as_str()))?;
    let base = url::Url::parse("http://placeholder.invalid/").ok()?;
    let u = base.join(href).ok()?;
    Some(
        u.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

/// Percent-encodes one URL path segment.
pub(crate) fn seg(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// Polls `fetch` with backoff (0.2 s growing by 1.5x to 5 s) until `done` or the deadline.
pub(crate) fn poll_until<T>(
    timeout: Duration,
    mut step: impl FnMut() -> Result<Option<T>>,
) -> Result<std::result::Result<T, Duration>> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        if let Some(v) = step()? {
            return Ok(Ok(v));
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Ok(Err(waited));
        }
        std::thread::sleep(delay.min(timeout - waited));
        delay = (delay.mul_f64(1.5)).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connection_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Connection>();
    }

    #[test]
    fn next_page_links() {
        let nova = json!({"servers": [{"id": "a"}], "servers_links": [{"rel": "next", "href": "http://other-host:8774/v2.1/servers/detail?limit=1&marker=a&name=web"}]});
        assert_eq!(
            next_page_query(&nova, "servers"),
            Some(vec![
                ("limit".into(), "1".into()),
                ("marker".into(), "a".into()),
                ("name".into(), "web".into())
            ])
        );
        let glance = json!({"images": [], "next": "/v2/images?marker=x%20y&limit=20"});
        assert_eq!(
            next_page_query(&glance, "images"),
            Some(vec![
                ("marker".into(), "x y".into()),
                ("limit".into(), "20".into())
            ])
        );
        let neutron = json!({"ports": [], "ports_links": [{"rel": "previous", "href": "http://n/v2.0/ports?marker=p&page_reverse=True"}]});
        assert_eq!(next_page_query(&neutron, "ports"), None);
        assert_eq!(next_page_query(&json!({"volumes": []}), "volumes"), None);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("abc-123_x.y~"), "abc-123_x.y~");
        assert_eq!(seg("my server/1"), "my%20server%2F1");
        assert_eq!(seg("ä?"), "%C3%A4%3F");
    }

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

    #[test]
    fn polling_backs_off_and_times_out() {
        let mut n = 0;
        let r = poll_until(Duration::from_secs(5), || {
            n += 1;
            Ok(if n == 3 { Some(n) } else { None })
        })
        .unwrap();
        assert_eq!(r, Ok(3));
        let t = Instant::now();
        let r: std::result::Result<(), Duration> =
            poll_until(Duration::from_millis(300), || Ok(None)).unwrap();
        assert!(r.is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
