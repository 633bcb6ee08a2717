//! The crate's error type and the parsing of OpenStack fault bodies.

use std::time::Duration;

/// What can go wrong talking to a cloud. Every message says what failed and on which resource;
/// none contains a password, token, application credential secret, TOTP passcode, OIDC client
/// secret or access token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cloud answered a request with an error status.
    #[error(
        "{service} {method} {path} failed: HTTP {status}: {message}{}",
        rid(request_id)
    )]
    Api {
        /// Service type (`compute`, `block-storage`, `image`, `network`, `identity`).
        service: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Path and query of the request, without scheme and host.
        path: String,
        /// HTTP status code.
        status: u16,
        /// The cloud's fault message (from its fault body), or the reason phrase.
        message: String,
        /// `x-openstack-request-id` (or `x-compute-request-id`) of the answer.
        request_id: Option<String>,
    },

    /// Keystone rejected the credentials (HTTP 401), or a service rejected the token twice.
    #[error(
        "authentication failed on cloud {cloud} for {principal}: HTTP {status}: {message}{}",
        rid(request_id)
    )]
    Auth {
        /// The cloud's name if known, else its auth URL.
        cloud: String,
        /// Who tried: `user "admin" (domain "default")`, `application credential ...`, `a token`.
        principal: String,
        /// HTTP status code.
        status: u16,
        /// Keystone's fault message.
        message: String,
        /// Request id of the answer.
        request_id: Option<String>,
    },

    /// The OpenID Connect provider of a federated cloud failed: its discovery document or token
    /// endpoint did not answer, answered something unusable, or refused the grant.
    #[error(
        "cloud {cloud}: the OIDC {what} {url} of identity provider {identity_provider:?} {message}"
    )]
    Oidc {
        /// The cloud's name if known, else its auth URL.
        cloud: String,
        /// The identity provider's name in Keystone.
        identity_provider: String,
        /// `token endpoint` or `discovery document`.
        what: &'static str,
        /// The URL requested.
        url: String,
        /// What happened, with the provider's OAuth error and the principal (never a secret).
        message: String,
    },

    /// Keystone's federation endpoint refused the access token of the OpenID Connect provider. (Its
    /// URL names the identity provider and the protocol; the request id, when Keystone rather than
    /// the web server's OpenID Connect module answered, is in the message.)
    #[error(
        "cloud {cloud}: Keystone's federation endpoint {url} refused the access token of {principal}: HTTP {status}: {message}"
    )]
    Federation {
        /// The cloud's name if known, else its auth URL.
        cloud: String,
        /// The federated token URL.
        url: String,
        /// Who the token stands for (`user "alice" of identity provider "sso"`, ...).
        principal: String,
        /// HTTP status code.
        status: u16,
        /// Keystone's fault message, and the answer's request id.
        message: String,
    },

    /// No resource of this kind has this name or ID.
    #[error("{kind} {name_or_id:?} not found")]
    NotFound {
        /// Resource kind (`server`, `volume`, `flavor`, ...).
        kind: String,
        /// What was looked up.
        name_or_id: String,
    },

    /// Several resources of this kind have this name.
    #[error("{count} {kind}s are named {name:?}; give an ID instead")]
    Ambiguous {
        /// Resource kind.
        kind: String,
        /// The name looked up.
        name: String,
        /// How many matched.
        count: usize,
    },

    /// A resource did not reach the wanted status in time.
    #[error("timed out after {:.1} s waiting for {kind} {id} to become {wanted} (last status: {last_status})", waited.as_secs_f64())]
    Timeout {
        /// Resource kind.
        kind: String,
        /// Resource ID (or name).
        id: String,
        /// The wanted status(es), e.g. `ACTIVE` or `deleted`.
        wanted: String,
        /// The last status seen.
        last_status: String,
        /// How long was waited.
        waited: Duration,
    },

    /// A resource went to an error status while being waited for.
    #[error("{kind} {id} went to status {status}{}", fault.as_ref().map(|f| format!(": {f}")).unwrap_or_default())]
    ErrorState {
        /// Resource kind.
        kind: String,
        /// Resource ID.
        id: String,
        /// The error status (`ERROR`, `error`, `killed`, ...).
        status: String,
        /// The resource's fault message, when the cloud gives one.
        fault: Option<String>,
    },

    /// The cloud configuration is missing, unreadable or inconsistent.
    #[error("cloud configuration: {message}")]
    Config {
        /// What is wrong, naming the file, cloud and key where known.
        message: String,
    },

    /// The request did not get an HTTP answer (DNS, connect, TLS, reset, timeout).
    #[error("{service} {method} {url}: {message}")]
    Transport {
        /// Service type.
        service: &'static str,
        /// HTTP method.
        method: &'static str,
        /// The URL requested.
        url: String,
        /// The cause chain, with a hint for TLS failures.
        message: String,
    },

    /// The cloud does not support the microversion a feature needs.
    #[error(
        "{service}: {feature} needs API microversion {needed}, the cloud supports at most {max}"
    )]
    Unsupported {
        /// Service type.
        service: &'static str,
        /// What was asked for.
        feature: String,
        /// The microversion the feature needs.
        needed: String,
        /// The cloud's maximum microversion.
        max: String,
    },

    /// A 2xx answer whose body was not what the API documents.
    #[error("{service} {method} {path}: unexpected response: {message}")]
    Decode {
        /// Service type.
        service: &'static str,
        /// HTTP method.
        method: &'static str,
        /// Path and query.
        path: String,
        /// What was wrong with it.
        message: String,
    },

    /// A name or ID that cannot stand in a request path (`.`, `..` or empty): sent, it would
    /// address another resource than the one named.
    #[error("{kind} {value:?} cannot be named in a request path (it would address another resource); nothing was sent")]
    BadSegment {
        /// What it names (`volume`, `server`, `tag`, ...).
        kind: String,
        /// The value refused.
        value: String,
    },

    /// Reading the data to upload or writing downloaded data failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn rid(request_id: &Option<String>) -> String {
    match request_id {
        Some(id) => format!(" (request-id {id})"),
        None => String::new(),
    }
}

impl Error {
    /// The HTTP status of an [`Error::Api`] or [`Error::Auth`]. (Not of an [`Error::Federation`]:
    /// a 404 there is a misnamed identity provider, never a missing resource.)
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Auth { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is [`Error::NotFound`] or an HTTP 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. }) || self.status() == Some(404)
    }

    /// Whether this is an HTTP 409 (conflict, e.g. a resource in the wrong state).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// The request id of the failed request, if the cloud sent one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api { request_id, .. } | Error::Auth { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Turns an HTTP 404 into [`Error::NotFound`] for `kind` `name_or_id`; other errors pass.
    pub(crate) fn not_found_as(self, kind: &str, name_or_id: &str) -> Error {
        if self.status() == Some(404) {
            Error::NotFound {
                kind: kind.to_string(),
                name_or_id: name_or_id.to_string(),
            }
        } else {
            self
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::Config {
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest fault message kept from an unrecognised body.
const MAX_BODY_MESSAGE: usize = 500;

/// Extracts the human message from an OpenStack error body.
///
/// Understands Nova/Cinder (`{"itemNotFound": {"message": ..., "code": 404}}`, `badRequest`,
/// `conflictingRequest`, `forbidden`, ...), Neutron (`{"NeutronError": {"type", "message",
/// "detail"}}`), Keystone (`{"error": {"message", "code", "title"}}`), Placement-style
/// (`{"errors": [{"title", "detail"}]}`), `{"message": ...}`, `{"faultstring": ...}`, and Glance's
/// plain-text or HTML bodies. Falls back to the (shortened) body, or `None` for an empty one.
pub fn fault_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(m) = json_fault(&value) {
            return Some(m);
        }
        return Some(shorten(text));
    }
    if text.starts_with('<') || text.contains("</") {
        return Some(shorten(&html_text(text)));
    }
    Some(shorten(&plain_text(text)))
}

fn json_fault(value: &serde_json::Value) -> Option<String> {
    let obj = value.as_object()?;
    fn s(v: Option<&serde_json::Value>) -> Option<&str> {
        v.and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
    if let Some(ne) = obj.get("NeutronError") {
        if let Some(ne_str) = ne.as_str() {
            return Some(ne_str.to_string());
        }
        let message = s(ne.get("message"));
        let kind = s(ne.get("type"));
        let detail = s(ne.get("detail"));
        let mut out = match (kind, message) {
            (Some(k), Some(m)) => format!("{k}: {m}"),
            (None, Some(m)) => m.to_string(),
            (Some(k), None) => k.to_string(),
            (None, None) => return None,
        };
        if let Some(d) = detail {
            out.push_str(&format!(" ({d})"));
        }
        return Some(out);
    }
    if let Some(err) = obj.get("error").and_then(|e| e.as_object()) {
        // Keystone
        let message = s(err.get("message"));
        let title = s(err.get("title"));
        return match (title, message) {
            (Some(t), Some(m)) => Some(format!("{t}: {m}")),
            (None, Some(m)) => Some(m.to_string()),
            (Some(t), None) => Some(t.to_string()),
            (None, None) => None,
        };
    }
    if let Some(errors) = obj.get("errors").and_then(|e| e.as_array()) {
        let parts: Vec<String> = errors
            .iter()
            .filter_map(|e| s(e.get("detail")).or(s(e.get("title"))).map(collapse))
            .collect();
        if !parts.is_empty() {
            return Some(parts.join("; "));
        }
    }
    for key in ["message", "faultstring", "description"] {
        if let Some(m) = s(obj.get(key)) {
            return Some(m.to_string());
        }
    }
    // Nova / Cinder: one key (the fault name) whose value holds the message.
    if obj.len() == 1 {
        let (name, inner) = obj.iter().next()?;
        if let Some(m) = s(inner.get("message")) {
            return Some(m.to_string());
        }
        if let Some(m) = inner.as_str() {
            return Some(format!("{name}: {m}"));
        }
    }
    None
}

/// Text of an HTML error page (Glance, proxies): tags removed, the repeated `<title>` dropped.
fn html_text(html: &str) -> String {
    let mut title = String::new();
    if let (Some(a), Some(b)) = (html.find("<title>"), html.find("</title>")) {
        if a + 7 <= b {
            title = html[a + 7..b].trim().to_string();
        }
    }
    let mut body = html;
    if let Some(i) = html.find("</head>") {
        body = &html[i + 7..];
    }
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let mut text = collapse(&out);
    if !title.is_empty() {
        if let Some(rest) = text.strip_prefix(title.as_str()) {
            text = rest.trim().to_string();
        }
        if text.is_empty() {
            return title;
        }
        return format!("{title}: {text}");
    }
    text
}

/// Glance's plain-text form: `"404 Not Found\n\nNo image found with ID x\n\n   "`.
fn plain_text(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() >= 2
        && lines[0]
            .split_whitespace()
            .next()
            .is_some_and(|w| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()))
    {
        return format!("{}: {}", lines[0], lines[1..].join(" "));
    }
    lines.join(" ")
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(s: &str) -> String {
    let s = collapse(s);
    if s.chars().count() <= MAX_BODY_MESSAGE {
        return s;
    }
    let mut out: String = s.chars().take(MAX_BODY_MESSAGE).collect();
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(s: &str) -> String {
        fault_message(s.as_bytes()).unwrap()
    }

    #[test]
    fn nova_and_cinder_faults() {
        assert_eq!(
            fm(r#"{"itemNotFound": {"message": "Instance abc could not be found.", "code": 404}}"#),
            "Instance abc could not be found."
        );
        assert_eq!(
            fm(r#"{"badRequest": {"code": 400, "message": "Invalid flavorRef provided."}}"#),
            "Invalid flavorRef provided."
        );
        assert_eq!(
            fm(
                r#"{"conflictingRequest": {"message": "Cannot 'stop' instance x while it is in vm_state stopped", "code": 409}}"#
            ),
            "Cannot 'stop' instance x while it is in vm_state stopped"
        );
        assert_eq!(
            fm(r#"{"overLimit": {"message": "VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded for quota 'volumes'.", "code": 413, "retryAfter": "0"}}"#),
            "VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded for quota 'volumes'."
        );
    }

    #[test]
    fn neutron_fault() {
        assert_eq!(
            fm(
                r#"{"NeutronError": {"type": "IpAddressAlreadyAllocated", "message": "IP address 10.0.0.5 already allocated in subnet s1", "detail": ""}}"#
            ),
            "IpAddressAlreadyAllocated: IP address 10.0.0.5 already allocated in subnet s1"
        );
        assert_eq!(
            fm(
                r#"{"NeutronError": {"type": "HTTPBadRequest", "message": "Bad", "detail": "more"}}"#
            ),
            "HTTPBadRequest: Bad (more)"
        );
    }

    #[test]
    fn keystone_fault() {
        assert_eq!(
            fm(
                r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#
            ),
            "Unauthorized: The request you have made requires authentication."
        );
    }

    #[test]
    fn glance_html_and_text() {
        assert_eq!(
            fm("<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID 1234<br /><br />\n\n\n\n </body>\n</html>"),
            "404 Not Found: No image found with ID 1234"
        );
        assert_eq!(fm("409 Conflict\n\nImage status transition from active to queued is not allowed\n\n   "),
            "409 Conflict: Image status transition from active to queued is not allowed");
    }

    #[test]
    fn other_bodies() {
        assert_eq!(
            fm(
                r#"{"errors": [{"status": 409, "title": "Conflict", "detail": "There was a conflict.\n\n Details."}]}"#
            ),
            "There was a conflict. Details."
        );
        assert_eq!(fm(r#"{"message": "boom"}"#), "boom");
        assert_eq!(fm(r#"{"weird": 1, "x": 2}"#), r#"{"weird": 1, "x": 2}"#);
        assert_eq!(fault_message(b"   "), None);
        let long = "x".repeat(2000);
        assert!(fm(&long).len() < 510);
    }

    #[test]
    fn error_messages() {
        let e = Error::Api {
            service: "compute",
            method: "GET",
            path: "/v2.1/servers/abc".into(),
            status: 404,
            message: "Instance abc could not be found.".into(),
            request_id: Some("req-1".into()),
        };
        assert_eq!(
            e.to_string(),
            "compute GET /v2.1/servers/abc failed: HTTP 404: Instance abc could not be found. (request-id req-1)"
        );
        assert!(e.is_not_found());
        let e = e.not_found_as("server", "abc");
        assert_eq!(e.to_string(), "server \"abc\" not found");
        let e = Error::Timeout {
            kind: "volume".into(),
            id: "v1".into(),
            wanted: "available".into(),
            last_status: "creating".into(),
            waited: Duration::from_millis(1500),
        };
        assert_eq!(e.to_string(), "timed out after 1.5 s waiting for volume v1 to become available (last status: creating)");
        let e = Error::ErrorState {
            kind: "server".into(),
            id: "s".into(),
            status: "ERROR".into(),
            fault: Some("No valid host".into()),
        };
        assert_eq!(
            e.to_string(),
            "server s went to status ERROR: No valid host"
        );
    }
}
