//! One API call: what it sends ([`Call`]), what comes back ([`Reply`]), and the pages of a
//! list.

use std::collections::HashMap;

use reqwest::blocking::Response;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::catalog::Service;
use crate::error::{Error, Result};
use crate::microversion::{self, Microversion};

use super::transport::transport_message;
use super::{Connection, MAX_PAGES};

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

impl Connection {
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
}

/// Path and query of a URL.
pub(super) fn url_path(url: &str) -> Option<String> {
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

/// Percent-encodes one URL path segment: the name or ID `s` of a `kind` of resource. Refuses `.`,
/// `..` and the empty string, which no encoding keeps a segment: a URL parser resolves them, so
/// `/volumes/..` would address the parent path and `/volumes/` the collection.
pub(crate) fn seg(kind: &str, s: &str) -> Result<String> {
    if matches!(s, "" | "." | "..") {
        return Err(Error::BadSegment {
            kind: kind.to_string(),
            value: s.to_string(),
        });
    }
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    Ok(percent_encoding::utf8_percent_encode(s, SET).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let s = |v| seg("volume", v).expect("a usable segment");
        assert_eq!(s("abc-123_x.y~"), "abc-123_x.y~");
        assert_eq!(s("my server/1"), "my%20server%2F1");
        assert_eq!(s("ä?"), "%C3%A4%3F");
        assert_eq!(s("..."), "...");
        assert_eq!(s("../x"), "..%2Fx");
    }

    #[test]
    fn dot_segments_are_refused_naming_the_resource() {
        for bad in ["", ".", ".."] {
            let e = seg("volume", bad).expect_err("refused");
            assert!(matches!(e, Error::BadSegment { .. }), "{e:?}");
            assert!(
                e.to_string().starts_with(&format!("volume {bad:?} ")),
                "{e}"
            );
        }
    }
}
