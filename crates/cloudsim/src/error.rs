//! Errors: the API errors handlers return (rendered per service the way each OpenStack service
//! renders its faults) and the simulator's own errors.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which OpenStack service a request was addressed to; it decides the shape of error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Keystone: `{"error": {"code", "message", "title"}}`.
    Identity,
    /// Nova: `{"itemNotFound": {"message", "code"}}` and friends.
    Compute,
    /// Cinder: same fault names as Nova.
    Volume,
    /// Glance: plain text bodies in webob's style.
    Image,
    /// Neutron: `{"NeutronError": {"type", "message", "detail"}}`.
    Network,
    /// The OpenID Connect provider in front of a cloud's Keystone: OAuth 2.0's `{"error",
    /// "error_description"}`.
    Idp,
    /// The simulator's own `/_sim` endpoint: `{"error": "..."}`.
    Admin,
}

impl Service {
    /// Parses the path segment after the cloud name.
    pub fn from_segment(s: &str) -> Option<Service> {
        Some(match s {
            "identity" => Service::Identity,
            "compute" => Service::Compute,
            "volume" => Service::Volume,
            "image" => Service::Image,
            "network" => Service::Network,
            "idp" => Service::Idp,
            _ => return None,
        })
    }

    /// The lower-case name used in URLs, catalogs and fault selectors.
    pub fn name(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::Volume => "volume",
            Service::Image => "image",
            Service::Network => "network",
            Service::Idp => "idp",
            Service::Admin => "admin",
        }
    }
}

/// An error answer of the API. Handlers return it; the HTTP pipeline renders it in the body format
/// of the service that was called (see [`render`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human readable message, as the real service words it where we know the wording.
    pub message: String,
    /// Neutron's exception type name (`NetworkNotFound`, `IpAddressAlreadyAllocated`, ...), or the
    /// OAuth 2.0 error code of the OpenID Connect provider (`invalid_grant`, ...).
    pub kind: Option<String>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 with Keystone's wording.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 500, for failures of the simulator itself (I/O on the state directory).
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Unexpected error in the simulator: {message}"),
        )
    }

    /// An error of the OpenID Connect provider: an OAuth 2.0 error code (RFC 6749 section 5.2)
    /// and its description.
    pub fn oauth(status: StatusCode, code: &str, description: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: description.into(),
            kind: Some(code.to_string()),
        }
    }

    /// A Neutron error with its exception type.
    pub fn neutron(status: StatusCode, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind: Some(kind.to_string()),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(e)
    }
}

/// Marker put into a response's extensions so the pipeline renders the body for the right service.
#[derive(Debug, Clone)]
pub struct PendingError(pub ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.status.into_response();
        resp.extensions_mut().insert(PendingError(self));
        resp
    }
}

/// Nova's (and Cinder's) fault wrapper key for a status.
fn nova_fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

/// Neutron's exception type for a status when the handler named none.
fn neutron_default_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "HTTPUnauthorized",
        403 => "HTTPForbidden",
        404 => "HTTPNotFound",
        405 => "HTTPMethodNotAllowed",
        409 => "Conflict",
        503 => "ServiceUnavailable",
        _ => "HTTPInternalServerError",
    }
}

/// Renders an error the way `service` would, with the request id header added by the caller.
pub fn render(service: Service, err: &ApiError) -> Response {
    let status = err.status;
    let reason = status.canonical_reason().unwrap_or("Error");
    // keystonemiddleware answers 401 for every service, with Keystone's body.
    if status == StatusCode::UNAUTHORIZED && !matches!(service, Service::Image | Service::Idp) {
        let body = json!({"error": {"code": 401, "title": "Unauthorized", "message": err.message}});
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Keystone uri=\"keystone\""),
        );
        return resp;
    }
    match service {
        Service::Identity => {
            let body = json!({"error": {"code": status.as_u16(), "message": err.message, "title": reason}});
            (status, axum::Json(body)).into_response()
        }
        Service::Compute | Service::Volume => {
            let body =
                json!({nova_fault_name(status): {"message": err.message, "code": status.as_u16()}});
            (status, axum::Json(body)).into_response()
        }
        Service::Network => {
            let kind = err
                .kind
                .clone()
                .unwrap_or_else(|| neutron_default_type(status).to_string());
            let body =
                json!({"NeutronError": {"type": kind, "message": err.message, "detail": ""}});
            (status, axum::Json(body)).into_response()
        }
        Service::Image => {
            // webob's plain-text rendering, which Glance uses when the client accepts JSON.
            let body = format!("{} {}\n\n{}\n\n   ", status.as_u16(), reason, err.message);
            let mut resp = (status, body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=UTF-8"),
            );
            resp
        }
        Service::Idp => {
            let code = err.kind.as_deref().unwrap_or(match status.as_u16() {
                401 => "invalid_client",
                404 => "not_found",
                _ => "invalid_request",
            });
            let body = json!({"error": code, "error_description": err.message});
            (status, axum::Json(body)).into_response()
        }
        Service::Admin => (status, axum::Json(json!({"error": err.message}))).into_response(),
    }
}

/// Errors of the simulator process itself (start-up, state directory, sshd).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An I/O error with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What failed, with the path.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file exists but cannot be read back.
    #[error("state file {path} is not valid: {source}")]
    BadState {
        /// The file.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// A cloud name that is not one of the simulator's.
    #[error("there is no cloud {cloud:?} (clouds: {known})")]
    UnknownCloud {
        /// The name given.
        cloud: String,
        /// The clouds there are, comma-separated.
        known: String,
    },
    /// sshd for a conversion host could not be started.
    #[error("sshd for host {server}: {message}")]
    Sshd {
        /// Server id.
        server: String,
        /// What went wrong.
        message: String,
    },
}

impl SimError {
    /// Wraps an I/O error with context.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> SimError {
        SimError::Io {
            what: what.into(),
            source,
        }
    }
}
