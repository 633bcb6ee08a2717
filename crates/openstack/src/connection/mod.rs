//! `Connection`: one authenticated session with one cloud. This module builds it and hands out
//! the service APIs; [`session`] keeps the Keystone token (with [`federation`] for the OpenID
//! Connect types), [`call`] sends a call and reads its answer and pages, [`transport`] owns the
//! HTTP clients, retries and error mapping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::Value;

use crate::auth::TokenInfo;
use crate::catalog::{select_endpoint, versioned_endpoint, Service};
use crate::config::{CloudConfig, CloudOptions, ConfigLoader};
use crate::error::{Error, Result};
use crate::microversion::{self, Microversion, Range};

mod call;
mod federation;
mod session;
mod transport;

pub(crate) use call::{seg, Body, Call, Reply};
use session::Session;
use transport::build_client;

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
    request_log: Option<RequestLog>,
}

/// One API request as a [`RequestLog`] sees it, once its answer (or transport failure) is in.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The full URL, query included. Tokens never appear in it (they travel in a header).
    pub url: &'a str,
    /// The HTTP status; `None` when no answer came.
    pub status: Option<u16>,
    /// From sending to the answer's headers.
    pub elapsed: Duration,
    /// The cloud's request id (`x-openstack-request-id` and kin).
    pub request_id: Option<String>,
    /// The JSON request body; never that of an authentication request (Keystone's token and
    /// federation endpoints, an OpenID Connect provider), which holds credentials.
    pub body: Option<&'a [u8]>,
    /// Why no answer came.
    pub error: Option<String>,
}

/// Called after every API request of a [`Connection`] (openstack.cloud's `sdk_log_path`).
pub type RequestLog = Box<dyn Fn(&RequestRecord<'_>) + Send + Sync>;

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("cloud", &self.config.label())
            .finish_non_exhaustive()
    }
}

struct Endpoint {
    base: String,
    range: Option<Range>,
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
            request_log: None,
        })
    }

    /// Calls `log` after every API request this connection makes, Keystone's included.
    pub fn set_request_log(&mut self, log: RequestLog) {
        self.request_log = Some(log);
    }

    pub(crate) fn log_request(
        &self,
        method: &str,
        url: &str,
        sent: &reqwest::Result<reqwest::blocking::Response>,
        started: std::time::Instant,
        body: Option<&[u8]>,
    ) {
        let Some(log) = &self.request_log else { return };
        let (status, request_id, error) = match sent {
            Ok(r) => (
                Some(r.status().as_u16()),
                transport::request_id(r.headers()),
                None,
            ),
            Err(e) => (None, None, Some(transport::transport_message(e).0)),
        };
        log(&RequestRecord {
            method,
            url,
            status,
            elapsed: started.elapsed(),
            request_id,
            body,
            error,
        });
    }

    /// The configuration this connection uses.
    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    /// Authenticates now (if not yet) and returns what the token says.
    pub fn authenticate(&self) -> Result<TokenInfo> {
        Ok(self.session()?.info.clone())
    }

    /// The user and project of the token.
    pub fn token_info(&self) -> Result<TokenInfo> {
        self.authenticate()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Connection>();
    }
}
