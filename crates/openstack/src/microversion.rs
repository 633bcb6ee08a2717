//! API microversions: parsing, negotiation and headers.
//!
//! Every Compute and Block Storage call is sent with an explicit microversion: the crate's ceiling
//! for the service ([`COMPUTE_CEILING`], [`BLOCK_STORAGE_CEILING`]) negotiated down to the cloud's
//! maximum (from the version document, fetched once per connection), but never below what the call
//! needs (e.g. [`COMPUTE_TAGS_AT_CREATE`] when a server is created with tags). When the cloud's
//! maximum is below what a call needs, the call fails with [`crate::Error::Unsupported`] before any
//! request is made. When the version document cannot be read, the ceiling is sent and the cloud
//! decides.

use std::fmt;

use crate::catalog::Service;

/// An API microversion `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    /// Major version (2 for compute, 3 for block-storage).
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

impl Microversion {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Microversion {
        Microversion { major, minor }
    }

    /// Parses `2.52` (also `v2.52`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Microversion> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let (a, b) = s.split_once('.')?;
        Some(Microversion {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Highest compute microversion the crate asks for: 2.100 returns `scheduler_hints` in server
/// details. On the way: 2.3 extended server attributes (`OS-EXT-SRV-ATTR:*`, `user_data`), 2.19
/// description, 2.26 tags, 2.45 createImage returning `image_id`, 2.47 flavor embedded in the
/// server, 2.52 tags at create, 2.55/2.61 flavor description and extra_specs, 2.79
/// `delete_on_termination` of volume attachments, 2.89 attachment IDs, 2.96 pinned AZ. At 2.37+
/// a server created without networks is sent `networks: "none"`.
pub const COMPUTE_CEILING: Microversion = Microversion::new(2, 100);
/// Highest block-storage microversion the crate asks for: 3.66 lets a snapshot of an in-use
/// volume be taken without `force`. On the way: 3.3 user messages (why a volume went to
/// `error`), 3.63 `volume_type_id`.
pub const BLOCK_STORAGE_CEILING: Microversion = Microversion::new(3, 66);

/// The base compute microversion.
pub const COMPUTE_BASE: Microversion = Microversion::new(2, 1);
/// Server description.
pub const COMPUTE_DESCRIPTION: Microversion = Microversion::new(2, 19);
/// Tags given at server create.
pub const COMPUTE_TAGS_AT_CREATE: Microversion = Microversion::new(2, 52);
/// Networks must be given (`"none"`/`"auto"`/list) at server create from here on.
pub const COMPUTE_NETWORKS_REQUIRED: Microversion = Microversion::new(2, 37);
/// createImage answers with `{"image_id": ...}` instead of a `Location` header.
pub const COMPUTE_CREATE_IMAGE_ID: Microversion = Microversion::new(2, 45);
/// Flavor description at create.
pub const COMPUTE_FLAVOR_DESCRIPTION: Microversion = Microversion::new(2, 55);
/// Keypair `type` (ssh/x509).
pub const COMPUTE_KEYPAIR_TYPE: Microversion = Microversion::new(2, 2);
/// `delete_on_termination` when attaching a volume.
pub const COMPUTE_ATTACH_DELETE_ON_TERMINATION: Microversion = Microversion::new(2, 79);
/// `delete_on_termination` of an existing volume attachment (PUT os-volume_attachments).
pub const COMPUTE_UPDATE_DELETE_ON_TERMINATION: Microversion = Microversion::new(2, 85);
/// The base block-storage microversion.
pub const BLOCK_STORAGE_BASE: Microversion = Microversion::new(3, 0);
/// Cinder's user messages API.
pub const BLOCK_STORAGE_MESSAGES: Microversion = Microversion::new(3, 3);

/// A service's supported range, from its version document.
pub(crate) type Range = (Microversion, Microversion);

/// The version a call is sent with: `ceiling` capped at the cloud's max, at least `needed`.
/// `Err((needed, max))` when the cloud's max is below `needed`. An unknown range sends `ceiling`.
pub(crate) fn negotiate(
    range: Option<Range>,
    needed: Microversion,
    ceiling: Microversion,
) -> Result<Microversion, (Microversion, Microversion)> {
    let Some((min, max)) = range else {
        return Ok(ceiling.max(needed));
    };
    if max < needed {
        return Err((needed, max));
    }
    Ok(ceiling.min(max).max(needed).max(min))
}

/// The headers that request `version` of `service`.
pub(crate) fn headers(service: Service, version: Microversion) -> Vec<(&'static str, String)> {
    match service {
        Service::Compute => vec![
            ("OpenStack-API-Version", format!("compute {version}")),
            ("X-OpenStack-Nova-API-Version", version.to_string()),
        ],
        Service::BlockStorage => vec![("OpenStack-API-Version", format!("volume {version}"))],
        _ => Vec::new(),
    }
}

/// Reads the microversion range from a version document: `{"version": {...}}` (Nova at `/v2.1/`)
/// or `{"versions": [...]}` / `{"versions": {"values": [...]}}` (roots, Cinder at `/v3/`). The
/// entry whose `id` starts with `want_id` (`v2.1`, `v3`) is used. A version without microversions
/// (`"version": ""`) gives `(base, base)`.
pub(crate) fn parse_version_document(
    body: &serde_json::Value,
    want_id: &str,
    base: Microversion,
) -> Option<Range> {
    let entries: Vec<&serde_json::Value> =
        if let Some(v) = body.get("version").filter(|v| v.is_object()) {
            vec![v]
        } else {
            match body.get("versions") {
                Some(serde_json::Value::Array(a)) => a.iter().collect(),
                Some(serde_json::Value::Object(o)) => o
                    .get("values")
                    .and_then(|v| v.as_array())
                    .map(|a| a.iter().collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            }
        };
    let entry = entries.into_iter().find(|e| {
        e.get("id")
            .and_then(|i| i.as_str())
            .is_some_and(|i| i.starts_with(want_id))
    })?;
    let get = |k: &str| {
        entry
            .get(k)
            .and_then(|v| v.as_str())
            .and_then(Microversion::parse)
    };
    match (get("min_version"), get("version")) {
        (Some(min), Some(max)) => Some((min, max)),
        (None, Some(max)) => Some((base, max)),
        _ => Some((base, base)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_order() {
        assert_eq!(
            Microversion::parse("2.100"),
            Some(Microversion::new(2, 100))
        );
        assert_eq!(Microversion::parse("v3.71"), Some(Microversion::new(3, 71)));
        assert_eq!(Microversion::parse(""), None);
        assert_eq!(Microversion::parse("2"), None);
        assert!(Microversion::new(2, 100) > Microversion::new(2, 99));
        assert!(Microversion::new(2, 9) < Microversion::new(2, 10));
        assert_eq!(Microversion::new(2, 52).to_string(), "2.52");
    }

    #[test]
    fn negotiation() {
        let mv = Microversion::new;
        // Unknown range: the ceiling.
        assert_eq!(negotiate(None, mv(2, 1), mv(2, 100)), Ok(mv(2, 100)));
        // Down to the cloud's max.
        assert_eq!(
            negotiate(Some((mv(2, 1), mv(2, 60))), mv(2, 1), mv(2, 100)),
            Ok(mv(2, 60))
        );
        assert_eq!(
            negotiate(Some((mv(2, 1), mv(2, 104))), mv(2, 1), mv(2, 100)),
            Ok(mv(2, 100))
        );
        // Needed above the cloud's max fails.
        assert_eq!(
            negotiate(Some((mv(2, 1), mv(2, 40))), mv(2, 52), mv(2, 100)),
            Err((mv(2, 52), mv(2, 40)))
        );
        assert_eq!(
            negotiate(Some((mv(2, 1), mv(2, 52))), mv(2, 52), mv(2, 100)),
            Ok(mv(2, 52))
        );
    }

    #[test]
    fn header_building() {
        let h = headers(Service::Compute, Microversion::new(2, 52));
        assert_eq!(
            h,
            vec![
                ("OpenStack-API-Version", "compute 2.52".to_string()),
                ("X-OpenStack-Nova-API-Version", "2.52".to_string())
            ]
        );
        let h = headers(Service::BlockStorage, Microversion::new(3, 66));
        assert_eq!(
            h,
            vec![("OpenStack-API-Version", "volume 3.66".to_string())]
        );
        assert!(headers(Service::Network, Microversion::new(2, 0)).is_empty());
    }

    #[test]
    fn version_documents() {
        let nova = serde_json::json!({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.104", "min_version": "2.1"}});
        assert_eq!(
            parse_version_document(&nova, "v2.1", COMPUTE_BASE),
            Some((Microversion::new(2, 1), Microversion::new(2, 104)))
        );
        let cinder = serde_json::json!({"versions": [{"id": "v3.0", "status": "CURRENT", "version": "3.71", "min_version": "3.0"}]});
        assert_eq!(
            parse_version_document(&cinder, "v3", BLOCK_STORAGE_BASE),
            Some((Microversion::new(3, 0), Microversion::new(3, 71)))
        );
        let root = serde_json::json!({"versions": {"values": [{"id": "v2.0", "version": ""}, {"id": "v2.1", "version": "2.90", "min_version": "2.1"}]}});
        assert_eq!(
            parse_version_document(&root, "v2.1", COMPUTE_BASE),
            Some((Microversion::new(2, 1), Microversion::new(2, 90)))
        );
        let legacy =
            serde_json::json!({"version": {"id": "v2.1", "version": "", "min_version": ""}});
        assert_eq!(
            parse_version_document(&legacy, "v2.1", COMPUTE_BASE),
            Some((COMPUTE_BASE, COMPUTE_BASE))
        );
        assert_eq!(
            parse_version_document(&serde_json::json!({}), "v2.1", COMPUTE_BASE),
            None
        );
    }
}
