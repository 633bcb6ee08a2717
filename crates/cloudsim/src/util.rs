//! Small helpers shared by the services: ids, timestamps, JSON accessors, IP arithmetic.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::Value;
use std::net::IpAddr;

use crate::error::ApiError;

/// A timestamp as stored in the state file.
pub type Ts = DateTime<Utc>;

/// The current time.
pub fn now() -> Ts {
    Utc::now()
}

/// `2024-05-01T10:00:00Z`: what Nova, Neutron and Glance print.
pub fn iso(ts: &Ts) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2024-05-01T10:00:00.000000`: Cinder prints microseconds and no zone.
pub fn iso_micro(ts: &Ts) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// `2024-05-01T10:00:00.000000Z`: Keystone's token timestamps.
pub fn iso_micro_z(ts: &Ts) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A UUID with dashes, as Nova, Cinder, Glance and Neutron use.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A UUID without dashes, as Keystone uses for projects, users and roles.
pub fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `req-<uuid>`, the shape of `x-openstack-request-id`.
pub fn request_id() -> String {
    format!("req-{}", new_id())
}

/// A random alphanumeric string (passwords, token ids, secrets).
pub fn random_string(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// A MAC address in OpenStack's `fa:16:3e` range.
pub fn random_mac() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "fa:16:3e:{:02x}:{:02x}:{:02x}",
        rng.gen::<u8>(),
        rng.gen::<u8>(),
        rng.gen::<u8>()
    )
}

/// The last path segment of a reference that may be an id or a URL (Nova accepts both for
/// `imageRef` and `flavorRef`).
pub fn ref_id(value: &str) -> &str {
    value
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(value)
}

/// Reads an optional string field; a non-string value is a client error.
pub fn opt_str(obj: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_request(format!("Invalid input for field/attribute {key}. Value: {other}. {other} is not of type 'string'"))),
    }
}

/// Reads an optional integer field that clients send as a number or a numeric string.
pub fn opt_u64(obj: &Value, key: &str) -> Result<Option<u64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid input for field/attribute {key}. Value: {n}. {n} is not a valid non-negative integer"))),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("Invalid input for field/attribute {key}. Value: {s}. '{s}' is not a valid integer"))),
        Some(other) => Err(ApiError::bad_request(format!("Invalid input for field/attribute {key}. Value: {other}. Not an integer"))),
    }
}

/// Reads an optional boolean that clients send as a JSON bool or as a string ("true", "True", "1").
pub fn opt_bool(obj: &Value, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_bool(v).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {v}. Not a boolean"
            ))
        }),
    }
}

/// Interprets the loose booleans OpenStack APIs accept.
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool_str(s),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// Interprets a boolean given as text (query strings, metadata).
pub fn parse_bool_str(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" | "" => Some(false),
        _ => None,
    }
}

/// Reads a `{"k": "v"}` object of strings (metadata, properties).
pub fn opt_str_map(
    obj: &Value,
    key: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let mut out = std::collections::BTreeMap::new();
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    Value::Bool(_) | Value::Number(_) => v.to_string(),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid input for field/attribute {key}. Value of {k} is not a string"
                        )))
                    }
                };
                out.insert(k.clone(), s);
            }
            Ok(Some(out))
        }
        Some(_) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {key}. Not an object"
        ))),
    }
}

/// The `metadata` object of a Nova or Cinder metadata request (`POST`/`PUT .../metadata`).
pub fn metadata_body(body: &Value) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    opt_str_map(body, "metadata")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: metadata missing"))
}

/// The `meta` object of a one-key metadata request (`PUT .../metadata/{key}`), and its value for
/// `key`, the key the URL names.
pub fn meta_item_body(
    body: &Value,
    key: &str,
) -> Result<(std::collections::BTreeMap<String, String>, String), ApiError> {
    let m = opt_str_map(body, "meta")?
        .ok_or_else(|| ApiError::bad_request("Malformed request body: meta missing"))?;
    let v = m
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("Request body and URI mismatch"))?;
    Ok((m, v))
}

/// Reads a list of strings (tags).
pub fn opt_str_list(obj: &Value, key: &str) -> Result<Option<Vec<String>>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid input for field/attribute {key}. {i} is not of type 'string'"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {key}. Not a list"
        ))),
    }
}

/// Takes the single top-level object of a request body, e.g. `{"server": {...}}`.
pub fn body_object<'a>(body: &'a Value, key: &str) -> Result<&'a Value, ApiError> {
    match body.get(key) {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "Missing or invalid '{key}' in request body."
        ))),
    }
}

/// An IPv4 or IPv6 network in CIDR form, with integer arithmetic for address allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/24` or `fd00::/64`; the host bits are cleared as Neutron does.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.trim().parse().ok()?;
        let prefix: u8 = p.trim().parse().ok()?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return None;
        }
        let c = Cidr { addr, prefix };
        Some(Cidr {
            addr: c.from_int(c.to_int(addr) & c.mask()),
            prefix,
        })
    }

    /// 4 or 6.
    pub fn version(&self) -> u8 {
        if self.addr.is_ipv4() {
            4
        } else {
            6
        }
    }

    fn bits(&self) -> u32 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn mask(&self) -> u128 {
        let host = self.bits() - self.prefix as u32;
        let all = if self.bits() == 32 {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    /// The address as an integer.
    pub fn to_int(&self, ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v) => u32::from(v) as u128,
            IpAddr::V6(v) => u128::from(v),
        }
    }

    /// The integer as an address of this network's family.
    pub fn from_int(&self, n: u128) -> IpAddr {
        if self.addr.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::from(n as u32))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(n))
        }
    }

    /// First and last address of the network.
    pub fn range(&self) -> (u128, u128) {
        let first = self.to_int(self.addr);
        let host = self.bits() - self.prefix as u32;
        let size = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        (first, first.saturating_add(size))
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (a, b) = self.range();
        let n = self.to_int(ip);
        n >= a && n <= b
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_arithmetic() {
        let c = Cidr::parse("10.1.2.77/24").unwrap();
        assert_eq!(c.to_string(), "10.1.2.0/24");
        let (a, b) = c.range();
        assert_eq!(c.from_int(a).to_string(), "10.1.2.0");
        assert_eq!(c.from_int(b).to_string(), "10.1.2.255");
        assert!(c.contains("10.1.2.5".parse().unwrap()));
        assert!(!c.contains("10.1.3.5".parse().unwrap()));
        let v6 = Cidr::parse("fd00:1::/64").unwrap();
        assert_eq!(v6.version(), 6);
        assert!(v6.contains("fd00:1::5".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
    }

    #[test]
    fn loose_values() {
        let v = serde_json::json!({"a": "12", "b": 3, "c": "True", "d": "x"});
        assert_eq!(opt_u64(&v, "a").unwrap(), Some(12));
        assert_eq!(opt_u64(&v, "b").unwrap(), Some(3));
        assert_eq!(opt_bool(&v, "c").unwrap(), Some(true));
        assert!(opt_u64(&v, "d").is_err());
        assert_eq!(ref_id("http://x/v2/images/abc"), "abc");
    }
}
