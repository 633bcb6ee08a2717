//! The service catalog: service types and their aliases, endpoint selection, and the versioned
//! base URL of each API.

use std::fmt;

use serde::Deserialize;

use crate::config::Interface;

/// The APIs this crate talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Keystone v3.
    Identity,
    /// Nova v2.1.
    Compute,
    /// Cinder v3.
    BlockStorage,
    /// Glance v2.
    Image,
    /// Neutron v2.0.
    Network,
}

impl Service {
    /// The official service type.
    pub fn service_type(&self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::BlockStorage => "block-storage",
            Service::Image => "image",
            Service::Network => "network",
        }
    }

    /// Catalog types that mean this service, most preferred first.
    pub fn aliases(&self) -> &'static [&'static str] {
        match self {
            Service::Identity => &["identity"],
            Service::Compute => &["compute"],
            Service::BlockStorage => &[
                "block-storage",
                "volumev3",
                "volumev2",
                "volume",
                "block-store",
            ],
            Service::Image => &["image"],
            Service::Network => &["network"],
        }
    }

    /// The URL path segment of the API version this crate speaks.
    pub fn version_segment(&self) -> &'static str {
        match self {
            Service::Identity => "v3",
            Service::Compute => "v2.1",
            Service::BlockStorage => "v3",
            Service::Image => "v2",
            Service::Network => "v2.0",
        }
    }

    /// Older version segments that are replaced by [`Service::version_segment`].
    fn replaceable_versions(&self) -> &'static [&'static str] {
        match self {
            Service::Identity => &["v2.0"],
            Service::Compute => &["v2"],
            Service::BlockStorage => &["v2", "v1"],
            Service::Image => &["v1"],
            Service::Network => &[],
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.service_type())
    }
}

/// `volumev3` -> `block-storage`, etc.; unknown types pass unchanged.
pub(crate) fn canonical_service_type(t: &str) -> String {
    for s in [
        Service::Identity,
        Service::Compute,
        Service::BlockStorage,
        Service::Image,
        Service::Network,
    ] {
        if s.aliases().contains(&t) {
            return s.service_type().to_string();
        }
    }
    t.to_string()
}

/// One service of the token's catalog.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct CatalogService {
    /// Service type as registered (`compute`, `volumev3`, ...).
    #[serde(rename = "type")]
    pub service_type: String,
    /// Service name (`nova`, ...).
    #[serde(default)]
    pub name: Option<String>,
    /// Its endpoints.
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// One endpoint of a catalog service.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct CatalogEndpoint {
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// Region name (`region`, or `region_id` when only that is given).
    #[serde(default)]
    pub region: Option<String>,
    /// Region ID.
    #[serde(default)]
    pub region_id: Option<String>,
    /// The URL.
    pub url: String,
}

/// Picks the endpoint URL of `service` for `interface` and `region` (any region when `None`).
/// The error lists what the catalog offers.
pub(crate) fn select_endpoint(
    catalog: &[CatalogService],
    service: Service,
    interface: Interface,
    region: Option<&str>,
) -> Result<String, String> {
    for alias in service.aliases() {
        for entry in catalog.iter().filter(|e| e.service_type == *alias) {
            for ep in &entry.endpoints {
                let iface_ok = ep
                    .interface
                    .trim_end_matches("URL")
                    .eq_ignore_ascii_case(interface.as_str());
                let region_ok = match region {
                    None => true,
                    Some(r) => {
                        ep.region.as_deref() == Some(r) || ep.region_id.as_deref() == Some(r)
                    }
                };
                if iface_ok && region_ok {
                    return Ok(ep.url.clone());
                }
            }
        }
    }
    let mut offered: Vec<String> = Vec::new();
    for entry in catalog
        .iter()
        .filter(|e| service.aliases().contains(&e.service_type.as_str()))
    {
        for ep in &entry.endpoints {
            offered.push(format!(
                "{}/{}/{}",
                entry.service_type,
                ep.interface,
                ep.region
                    .as_deref()
                    .or(ep.region_id.as_deref())
                    .unwrap_or("(no region)")
            ));
        }
    }
    Err(format!(
        "the service catalog has no {service} endpoint for interface {interface}{}{}",
        region
            .map(|r| format!(" in region {r:?}"))
            .unwrap_or_default(),
        if offered.is_empty() {
            format!(" (no service of type {})", service.aliases().join("/"))
        } else {
            format!(" (it has: {})", offered.join(", "))
        }
    ))
}

fn is_version_segment(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.splitn(2, '.');
    let major_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let minor_ok = parts
        .next()
        .is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    major_ok && minor_ok
}

/// Where a service's calls go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionedEndpoint {
    /// Base URL calls are appended to, without a trailing slash
    /// (`http://h:8774/v2.1`, `http://h:8776/v3/<project>`).
    pub base: String,
    /// URL of the version document (`http://h:8774/v2.1/`), for microversion discovery.
    pub version_url: String,
}

/// Makes the catalog URL of a service point at the API version this crate speaks, as
/// openstacksdk ends up doing: compute `/v2.1` (a `/v2` is replaced; a project ID after it is
/// kept), block-storage `/v3/{project_id}` (added when missing), image `/v2`, network `/v2.0`,
/// identity `/v3`. A URL without a version gets the version appended to its path.
pub(crate) fn versioned_endpoint(
    service: Service,
    url: &str,
    project_id: Option<&str>,
) -> Result<VersionedEndpoint, String> {
    let mut parsed = url::Url::parse(url)
        .map_err(|e| format!("{service} endpoint {url:?} is not a URL: {e}"))?;
    if parsed.cannot_be_a_base() {
        return Err(format!("{service} endpoint {url:?} is not an http(s) URL"));
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    let mut segs: Vec<String> = parsed
        .path_segments()
        .map(|s| s.filter(|x| !x.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let want = service.version_segment();
    let idx = match segs.iter().position(|s| is_version_segment(s)) {
        Some(i) => {
            if segs[i] != want && service.replaceable_versions().contains(&segs[i].as_str()) {
                segs[i] = want.to_string();
            }
            i
        }
        None => {
            segs.push(want.to_string());
            segs.len() - 1
        }
    };
    if service == Service::BlockStorage && segs.len() == idx + 1 {
        if let Some(p) = project_id {
            segs.push(p.to_string());
        }
    }
    let build = |segs: &[String], trailing: bool| {
        let mut u = parsed.clone();
        let mut path = String::new();
        for s in segs {
            path.push('/');
            path.push_str(s);
        }
        if trailing || path.is_empty() {
            path.push('/');
        }
        u.set_path(&path);
        u.to_string()
    };
    let base = build(&segs, false).trim_end_matches('/').to_string();
    let version_url = build(&segs[..=idx], true);
    Ok(VersionedEndpoint { base, version_url })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ve(service: Service, url: &str) -> (String, String) {
        let v = versioned_endpoint(service, url, Some("P1")).unwrap();
        (v.base, v.version_url)
    }

    #[test]
    fn compute_urls() {
        assert_eq!(
            ve(Service::Compute, "http://h:8774/v2.1"),
            ("http://h:8774/v2.1".into(), "http://h:8774/v2.1/".into())
        );
        assert_eq!(
            ve(Service::Compute, "http://h:8774/v2.1/P1"),
            ("http://h:8774/v2.1/P1".into(), "http://h:8774/v2.1/".into())
        );
        assert_eq!(
            ve(Service::Compute, "http://h:8774/v2/P1"),
            ("http://h:8774/v2.1/P1".into(), "http://h:8774/v2.1/".into())
        );
        assert_eq!(
            ve(Service::Compute, "http://h:8774/"),
            ("http://h:8774/v2.1".into(), "http://h:8774/v2.1/".into())
        );
        assert_eq!(
            ve(Service::Compute, "https://c.example/compute/v2.1/"),
            (
                "https://c.example/compute/v2.1".into(),
                "https://c.example/compute/v2.1/".into()
            )
        );
    }

    #[test]
    fn block_storage_urls() {
        assert_eq!(
            ve(Service::BlockStorage, "http://h:8776/v3/P1"),
            ("http://h:8776/v3/P1".into(), "http://h:8776/v3/".into())
        );
        assert_eq!(
            ve(Service::BlockStorage, "http://h:8776/v3"),
            ("http://h:8776/v3/P1".into(), "http://h:8776/v3/".into())
        );
        assert_eq!(
            ve(Service::BlockStorage, "http://h:8776"),
            ("http://h:8776/v3/P1".into(), "http://h:8776/v3/".into())
        );
        assert_eq!(
            ve(Service::BlockStorage, "http://h:8776/v2/P1"),
            ("http://h:8776/v3/P1".into(), "http://h:8776/v3/".into())
        );
        assert_eq!(
            ve(Service::BlockStorage, "http://h/volume/v3/P1"),
            ("http://h/volume/v3/P1".into(), "http://h/volume/v3/".into())
        );
    }

    #[test]
    fn image_network_identity_urls() {
        assert_eq!(ve(Service::Image, "http://h:9292").0, "http://h:9292/v2");
        assert_eq!(
            ve(Service::Image, "http://h:9292/v2/").0,
            "http://h:9292/v2"
        );
        assert_eq!(ve(Service::Image, "http://h/image").0, "http://h/image/v2");
        assert_eq!(
            ve(Service::Network, "http://h:9696/").0,
            "http://h:9696/v2.0"
        );
        assert_eq!(
            ve(Service::Network, "http://h:9696/v2.0").0,
            "http://h:9696/v2.0"
        );
        assert_eq!(ve(Service::Identity, "http://h:5000").0, "http://h:5000/v3");
        assert_eq!(
            ve(Service::Identity, "http://h:5000/v3/").0,
            "http://h:5000/v3"
        );
        assert_eq!(
            ve(Service::Identity, "http://h:5000/v2.0").0,
            "http://h:5000/v3"
        );
        assert_eq!(
            ve(Service::Identity, "http://h/identity").0,
            "http://h/identity/v3"
        );
        assert!(versioned_endpoint(Service::Image, "not a url", None).is_err());
    }

    fn catalog() -> Vec<CatalogService> {
        serde_json::from_value(serde_json::json!([
            {"type": "volumev3", "name": "cinderv3", "endpoints": [
                {"interface": "public", "region": "R1", "region_id": "R1", "url": "http://c1/v3/P"},
                {"interface": "internal", "region": "R1", "region_id": "R1", "url": "http://c1-int/v3/P"}]},
            {"type": "compute", "endpoints": [
                {"interface": "public", "region_id": "R2", "url": "http://n2/v2.1"},
                {"interface": "public", "region": "R1", "url": "http://n1/v2.1"}]},
            {"type": "network", "endpoints": null}
        ]))
        .unwrap()
    }

    #[test]
    fn endpoint_selection() {
        let c = catalog();
        assert_eq!(
            select_endpoint(&c, Service::BlockStorage, Interface::Public, None).unwrap(),
            "http://c1/v3/P"
        );
        assert_eq!(
            select_endpoint(&c, Service::BlockStorage, Interface::Internal, Some("R1")).unwrap(),
            "http://c1-int/v3/P"
        );
        assert_eq!(
            select_endpoint(&c, Service::Compute, Interface::Public, Some("R1")).unwrap(),
            "http://n1/v2.1"
        );
        assert_eq!(
            select_endpoint(&c, Service::Compute, Interface::Public, Some("R2")).unwrap(),
            "http://n2/v2.1"
        );
        let e = select_endpoint(&c, Service::Compute, Interface::Admin, None).unwrap_err();
        assert!(
            e.contains("no compute endpoint for interface admin")
                && e.contains("compute/public/R1"),
            "{e}"
        );
        let e = select_endpoint(&c, Service::Image, Interface::Public, None).unwrap_err();
        assert!(e.contains("no service of type image"), "{e}");
        assert_eq!(canonical_service_type("volumev3"), "block-storage");
        assert_eq!(canonical_service_type("block-storage"), "block-storage");
        assert_eq!(canonical_service_type("baremetal"), "baremetal");
    }
}
