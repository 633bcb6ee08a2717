//! The HTTP layer shared by every service: URL layout, the request pipeline (request ids,
//! microversions, fault injection, request counting, error rendering), extractors and pagination.
//!
//! URL layout: `http://127.0.0.1:PORT/<cloud>/<service>/<service path>`, for example
//! `/src/compute/v2.1/servers/detail` or `/dst/volume/v3/<project id>/volumes`. The pipeline
//! checks the cloud, strips `/<cloud>` (and the project id of Cinder and legacy Nova URLs), so
//! the routers see `/compute/v2.1/servers/detail` and the handlers get the cloud from [`Ctx`].
//! `/_sim/...` is the simulator's admin endpoint (see `crate::admin`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

use crate::error::{self, ApiError, PendingError, Service};
use crate::sim::Sim;
use crate::state::{Cloud, State};

/// Highest and lowest Nova microversions served.
pub const COMPUTE_MIN: Mv = Mv(2, 1);
/// Highest Nova microversion served.
pub const COMPUTE_MAX: Mv = Mv(2, 96);
/// Lowest Cinder v3 microversion served.
pub const VOLUME_MIN: Mv = Mv(3, 0);
/// Highest Cinder v3 microversion served.
pub const VOLUME_MAX: Mv = Mv(3, 70);

/// A microversion `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mv(pub u16, pub u16);

impl Mv {
    /// Whether this is at least `major.minor`.
    pub fn ge(self, major: u16, minor: u16) -> bool {
        self >= Mv(major, minor)
    }

    fn parse(s: &str) -> Option<Mv> {
        let (a, b) = s.trim().split_once('.')?;
        Some(Mv(a.parse().ok()?, b.parse().ok()?))
    }
}

impl std::fmt::Display for Mv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// What the pipeline learned about a request before routing it; handlers read it through [`Ctx`].
#[derive(Debug, Clone)]
pub struct CloudCtx {
    /// Cloud name (first URL segment).
    pub cloud: String,
    /// Service addressed.
    pub service: Service,
    /// Negotiated microversion (Nova and Cinder; `0.0` elsewhere).
    pub mv: Mv,
    /// The request id sent back in `x-openstack-request-id`.
    pub request_id: String,
}

/// The route template that served a request, copied into the response for request counting.
#[derive(Debug, Clone)]
struct Template(String);

/// Builds the whole HTTP application: every service's routes behind the pipeline.
pub fn app(
    sim: Arc<Sim>,
) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<
    impl tower::Service<
            Request,
            Response = Response,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone
        + Send,
    SocketAddr,
> {
    let router: Router<Arc<Sim>> = Router::new()
        .merge(crate::identity::routes())
        .merge(crate::compute::routes())
        .merge(crate::volume::routes())
        .merge(crate::image::routes())
        .merge(crate::network::routes())
        .merge(crate::admin::routes())
        .route_layer(axum::middleware::from_fn(record_template))
        .fallback(|| async { ApiError::not_found("The resource could not be found.") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "The method is not allowed for the requested URL.",
            )
        });
    let router = router.with_state(sim.clone());
    let svc = tower::Layer::layer(&axum::middleware::from_fn_with_state(sim, pipeline), router);
    axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(svc)
}

async fn record_template(req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut resp = next.run(req).await;
    if let Some(t) = template {
        resp.extensions_mut().insert(Template(t));
    }
    resp
}

/// Splits `/<cloud>/<service>/<rest>`.
fn split_cloud_path(path: &str) -> Option<(&str, &str, &str)> {
    let p = path.strip_prefix('/')?;
    let (cloud, rest) = p.split_once('/').unwrap_or((p, ""));
    let (service, rest) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Some((cloud, service, rest))
}

/// Removes the project id segment Cinder (and legacy Nova) URLs carry after the version.
fn strip_project(rest: &str, cloud: &Cloud) -> String {
    let segs: Vec<&str> = rest.split('/').collect();
    // rest = "/v3/<pid>/volumes" -> ["", "v3", "<pid>", "volumes"]
    if segs.len() >= 3 && cloud.identity.projects.contains_key(segs[2]) {
        let mut out: Vec<&str> = segs.clone();
        out.remove(2);
        return out.join("/");
    }
    rest.to_string()
}

/// Reads the requested microversion of `service_name` from the headers.
fn requested_mv(headers: &HeaderMap, service_name: &str, legacy: Option<&str>) -> Option<String> {
    for v in headers.get_all("openstack-api-version") {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(',') {
            let mut it = part.split_whitespace();
            if let (Some(svc), Some(ver)) = (it.next(), it.next()) {
                if svc.eq_ignore_ascii_case(service_name) {
                    return Some(ver.to_string());
                }
            }
        }
    }
    legacy
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn negotiate(requested: Option<String>, min: Mv, max: Mv) -> Result<Mv, ApiError> {
    let Some(r) = requested else { return Ok(min) };
    if r.eq_ignore_ascii_case("latest") {
        return Ok(max);
    }
    let v = Mv::parse(&r).ok_or_else(|| {
        ApiError::bad_request(format!(
            "API Version String {r} is of invalid format. Must be of format MajorNum.MinorNum."
        ))
    })?;
    if v < min || v > max {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Version {v} is not supported by the API. Minimum is {min} and maximum is {max}."
            ),
        ));
    }
    Ok(v)
}

/// The request pipeline; see the module docs.
async fn pipeline(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    mut req: Request,
    next: Next,
) -> Response {
    let request_id = crate::util::request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let verbose = sim.cfg.verbose;

    if path == "/_sim" || path.starts_with("/_sim/") {
        let peer_ok = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().is_loopback())
            .unwrap_or(true);
        let mut resp = if peer_ok {
            next.run(req).await
        } else {
            ApiError::forbidden("The admin endpoint answers loopback clients only.").into_response()
        };
        finish(&mut resp, Service::Admin, &request_id, None);
        return resp;
    }

    let Some((cloud, service_seg, rest)) = split_cloud_path(&path) else {
        return not_found_plain();
    };
    let cloud = cloud.to_string();
    let Some(service) = Service::from_segment(service_seg) else {
        return not_found_plain();
    };
    // Normalize: no trailing slash, no project id segment.
    let rest = {
        let st = sim.lock();
        let Some(c) = st.clouds.get(&cloud) else {
            return not_found_plain();
        };
        let mut r = rest.trim_end_matches('/').to_string();
        if matches!(service, Service::Volume | Service::Compute) {
            r = strip_project(&r, c);
        }
        r
    };
    let inner_path = format!("/{}{}", service.name(), rest);

    // Microversions.
    let mv = match service {
        Service::Compute => negotiate(
            requested_mv(
                req.headers(),
                "compute",
                Some("x-openstack-nova-api-version"),
            ),
            COMPUTE_MIN,
            COMPUTE_MAX,
        ),
        Service::Volume => negotiate(
            requested_mv(req.headers(), "volume", None),
            VOLUME_MIN,
            VOLUME_MAX,
        ),
        _ => Ok(Mv(0, 0)),
    };
    let mv = match mv {
        Ok(v) => v,
        Err(e) => {
            let mut resp = e.into_response();
            finish(&mut resp, service, &request_id, None);
            return resp;
        }
    };
    let mv_header = match service {
        Service::Compute | Service::Volume => Some(mv),
        _ => None,
    };

    // Injected HTTP faults fire before any handler runs, as a failing service would.
    let query = req.uri().query().unwrap_or("").to_string();
    if let Some(fault) = sim
        .faults
        .http_fault(&cloud, method.as_str(), &inner_path, &query)
    {
        let mut resp = ApiError::new(
            StatusCode::from_u16(fault.0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            fault.1,
        )
        .into_response();
        finish(&mut resp, service, &request_id, mv_header);
        count(
            &sim,
            &cloud,
            method.as_str(),
            "(injected fault) ",
            &inner_path,
        );
        if verbose {
            eprintln!("{method} {path} -> {} (injected)", resp.status());
        }
        return resp;
    }

    let new_uri = match req.uri().query() {
        Some(q) => format!("{inner_path}?{q}"),
        None => inner_path.clone(),
    };
    if let Ok(u) = new_uri.parse::<Uri>() {
        *req.uri_mut() = u;
    }
    req.extensions_mut().insert(CloudCtx {
        cloud: cloud.clone(),
        service,
        mv,
        request_id: request_id.clone(),
    });
    let mut resp = next.run(req).await;
    let template = resp.extensions().get::<Template>().map(|t| t.0.clone());
    match &template {
        Some(t) => count(&sim, &cloud, method.as_str(), "", t),
        None => count(&sim, &cloud, method.as_str(), "(unmatched) ", &inner_path),
    }
    finish(&mut resp, service, &request_id, mv_header);
    if verbose {
        eprintln!("{method} {path} -> {}", resp.status());
    }
    resp
}

fn count(sim: &Sim, cloud: &str, method: &str, prefix: &str, template: &str) {
    let mut reqs = sim.requests.lock().unwrap_or_else(|e| e.into_inner());
    *reqs
        .entry(cloud.to_string())
        .or_default()
        .entry(format!("{prefix}{method} {template}"))
        .or_insert(0) += 1;
}

fn not_found_plain() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({"error": "no such cloud or service"})),
    )
        .into_response()
}

/// Renders a pending error for the service and adds the common headers.
fn finish(resp: &mut Response, service: Service, request_id: &str, mv: Option<Mv>) {
    if let Some(PendingError(e)) = resp.extensions_mut().remove::<PendingError>() {
        let mut rendered = error::render(service, &e);
        for (k, v) in resp.headers() {
            if !rendered.headers().contains_key(k)
                && k != header::CONTENT_LENGTH
                && k != header::CONTENT_TYPE
            {
                rendered.headers_mut().insert(k.clone(), v.clone());
            }
        }
        *resp = rendered;
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-openstack-request-id", v.clone());
        if service == Service::Compute {
            h.insert("x-compute-request-id", v);
        }
    }
    if let Some(mv) = mv {
        let name = if service == Service::Compute {
            "compute"
        } else {
            "volume"
        };
        if let Ok(v) = HeaderValue::from_str(&format!("{name} {mv}")) {
            h.insert("openstack-api-version", v);
        }
        if service == Service::Compute {
            if let Ok(v) = HeaderValue::from_str(&mv.to_string()) {
                h.insert("x-openstack-nova-api-version", v);
            }
            h.insert(
                header::VARY,
                HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
            );
        } else {
            h.insert(
                header::VARY,
                HeaderValue::from_static("OpenStack-API-Version"),
            );
        }
    }
}

/// An authenticated request: who is calling, on which cloud, at which microversion.
pub struct Ctx {
    /// The simulator.
    pub sim: Arc<Sim>,
    /// Cloud name.
    pub cloud: String,
    /// Negotiated microversion.
    pub mv: Mv,
    /// Project the token is scoped to (empty for unscoped tokens).
    pub project_id: String,
    /// The user.
    pub user_id: String,
    /// Role names on the project.
    pub roles: Vec<String>,
    /// The request id.
    pub request_id: String,
}

impl Ctx {
    /// Whether the caller has the admin role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }

    /// An absolute URL on this cloud: `ctx.url("/compute/v2.1/servers/x")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}{}", self.sim.base_url, self.cloud, path)
    }

    /// Runs `f` on this cloud's state (and the sequence counter) under the lock, and marks the
    /// state changed.
    pub fn write<R>(&self, f: impl FnOnce(&mut Cloud, &mut u64) -> R) -> R {
        let r = {
            let mut st = self.sim.lock();
            let (cloud, seq) = cloud_and_seq(&mut st, &self.cloud);
            f(cloud, seq)
        };
        self.sim.changed();
        r
    }

    /// Runs `f` on this cloud's state under the lock, read-only.
    pub fn read<R>(&self, f: impl FnOnce(&Cloud) -> R) -> R {
        let st = self.sim.lock();
        match st.clouds.get(&self.cloud) {
            Some(c) => f(c),
            // The pipeline only routes requests for existing clouds, and clouds are never removed.
            None => unreachable!("cloud {} vanished", self.cloud),
        }
    }
}

/// Splits the state into one cloud and the sequence counter (disjoint borrows).
pub fn cloud_and_seq<'a>(st: &'a mut State, cloud: &str) -> (&'a mut Cloud, &'a mut u64) {
    let State { clouds, seq, .. } = st;
    match clouds.get_mut(cloud) {
        Some(c) => (c, seq),
        None => unreachable!("cloud {cloud} vanished"),
    }
}

impl FromRequestParts<Arc<Sim>> for CloudCtx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _sim: &Arc<Sim>) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<CloudCtx>()
            .cloned()
            .ok_or_else(|| ApiError::internal("request reached a handler without the pipeline"))
    }
}

impl FromRequestParts<Arc<Sim>> for Ctx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, sim: &Arc<Sim>) -> Result<Self, ApiError> {
        let cc = CloudCtx::from_request_parts(parts, sim).await?;
        let token = parts
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?
            .trim()
            .to_string();
        let st = sim.lock();
        let cloud = st
            .clouds
            .get(&cc.cloud)
            .ok_or_else(ApiError::unauthorized)?;
        let t = cloud
            .identity
            .valid_token(&token)
            .ok_or_else(ApiError::unauthorized)?;
        let project_id = t.project_id.clone().unwrap_or_default();
        let roles = cloud.identity.role_names(&t.user_id, &project_id);
        Ok(Ctx {
            sim: sim.clone(),
            cloud: cc.cloud,
            mv: cc.mv,
            project_id,
            user_id: t.user_id.clone(),
            roles,
            request_id: cc.request_id,
        })
    }
}

/// Query parameters in order, repeated keys kept (Neutron's `id=a&id=b`, `fields=`).
#[derive(Debug, Default, Clone)]
pub struct Q(pub Vec<(String, String)>);

impl Q {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `limit` as a number, or a 400.
    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| Some(n as usize))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid limit value: {s}. limit must be a non-negative integer"
                    ))
                }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _s: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = url_decode_pairs(q);
        Ok(Q(pairs))
    }
}

/// Decodes `a=1&b=x%20y` (with `+` as space), keeping order and repeats.
pub fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A request body parsed as JSON; an empty body is `null`.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, s: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, s)
            .await
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("Malformed request body: {e}")))
    }
}

/// One page of a listing.
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Marker for the next page, when more items follow.
    pub next_marker: Option<String>,
}

/// Cuts a sorted listing at `marker` (exclusive) and `limit` (capped at `max`).
pub fn paginate<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> String,
    q: &Q,
    max: usize,
) -> Result<Page<T>, ApiError> {
    let limit = q.limit()?.map(|l| l.min(max)).unwrap_or(max);
    let start = match q.get("marker") {
        None | Some("") => 0,
        Some(m) => match items.iter().position(|i| id(i) == m) {
            Some(p) => p + 1,
            None => return Err(ApiError::bad_request(format!("marker [{m}] not found"))),
        },
    };
    let total = items.len();
    let items: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next_marker = if start + items.len() < total && !items.is_empty() {
        items.last().map(&id)
    } else {
        None
    };
    Ok(Page { items, next_marker })
}

/// Rebuilds the current request's query with a new marker (for `*_links` / `next`).
pub fn next_query(q: &Q, marker: &str) -> String {
    let mut parts: Vec<String> =
        q.0.iter()
            .filter(|(k, _)| k != "marker")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
    parts.push(format!("marker={}", encode(marker)));
    parts.join("&")
}

/// A JSON response with a status.
pub fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(Ordered(&body, None))).into_response()
}

/// A key a handler puts into an object to give some of its maps a key order: `{KEY_ORDER:
/// {"addresses": ["db-net", "app-net"]}, "addresses": {...}}`. A `Value` map is sorted by key, but
/// some answers have an order clients may rely on (Nova's `addresses` are in NIC order). The body's
/// serializer writes such a map's keys in the listed order (unlisted keys after them) and never
/// writes this key.
pub const KEY_ORDER: &str = "\u{0}key order";

/// A JSON value written with the key orders of [`KEY_ORDER`].
struct Ordered<'a>(&'a Value, Option<&'a [Value]>);

impl serde::Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            Value::Object(m) => {
                let orders = m.get(KEY_ORDER).and_then(Value::as_object);
                let mut keys: Vec<&String> = m.keys().filter(|k| *k != KEY_ORDER).collect();
                if let Some(order) = self.1 {
                    keys.sort_by_key(|k| {
                        order
                            .iter()
                            .position(|o| o.as_str() == Some(k.as_str()))
                            .unwrap_or(usize::MAX)
                    });
                }
                let mut out = s.serialize_map(Some(keys.len()))?;
                for k in keys {
                    let sub = orders
                        .and_then(|o| o.get(k))
                        .and_then(Value::as_array)
                        .map(Vec::as_slice);
                    out.serialize_entry(k, &Ordered(&m[k], sub))?;
                }
                out.end()
            }
            Value::Array(a) => s.collect_seq(a.iter().map(|v| Ordered(v, None))),
            other => other.serialize(s),
        }
    }
}

/// 200 with a JSON body.
pub fn ok(body: Value) -> Response {
    json(StatusCode::OK, body)
}

/// An empty response with a status (202, 204).
pub fn empty(status: StatusCode) -> Response {
    status.into_response()
}
