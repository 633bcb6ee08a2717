//! Fault injection: failing HTTP requests, resources stuck in a status, slow transitions, and
//! transitions that end in an error status. Faults are set through `/_sim/faults` (see
//! `crate::admin`) and live in memory only: a restart clears them.

use std::sync::Mutex;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// Kinds of resources whose transitions can be affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// Nova server.
    Server,
    /// Cinder volume.
    Volume,
    /// Cinder snapshot.
    Snapshot,
    /// Glance image.
    Image,
}

/// Which resources a transition fault applies to: by id, by name regex, or all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Matcher {
    /// Exact id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Regex searched in the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A fault as posted (and listed, with its counters).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FaultSpec {
    /// Fail HTTP requests: the `nth` matching request and the `count - 1` after it answer
    /// `status` with a service-shaped error body.
    Http {
        /// Method to match (any when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// Regex searched in the path after the cloud prefix, e.g. `^/compute/v2.1/servers$`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Regex searched in the query string as sent (percent-encoded), e.g. `name=web`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
        /// Cloud name or `*`.
        #[serde(default = "star")]
        cloud: String,
        /// Which matching request fails first (1 = the next one).
        #[serde(default = "one")]
        nth: u64,
        /// How many consecutive matching requests fail.
        #[serde(default = "one")]
        count: u64,
        /// HTTP status to answer.
        #[serde(default = "five_hundred")]
        status: u16,
        /// Error message.
        #[serde(default = "default_message")]
        message: String,
    },
    /// Resources matching stop transitioning out of `status` (any transitional status when
    /// absent) until the fault is removed.
    Stuck {
        /// Resource kind.
        resource: ResourceKind,
        /// Which resources.
        #[serde(default, rename = "match")]
        matcher: Matcher,
        /// Status (or Nova task state) to stick in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// Cloud name or `*`.
        #[serde(default = "star")]
        cloud: String,
    },
    /// Transitions of matching resources take `seconds` instead of the configured delay.
    Slow {
        /// Resource kind.
        resource: ResourceKind,
        /// Which resources.
        #[serde(default, rename = "match")]
        matcher: Matcher,
        /// Only transitions out of this status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// Cloud name or `*`.
        #[serde(default = "star")]
        cloud: String,
        /// Duration of each transition.
        seconds: f64,
    },
    /// Transitions of matching resources end in the error status (`ERROR`, `error`, `killed`).
    Error {
        /// Resource kind.
        resource: ResourceKind,
        /// Which resources.
        #[serde(default, rename = "match")]
        matcher: Matcher,
        /// Only transitions out of this status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
        /// Cloud name or `*`.
        #[serde(default = "star")]
        cloud: String,
        /// Fault message (a server's `fault.message`).
        #[serde(default = "default_message")]
        message: String,
        /// How many transitions fail (unlimited when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
}

fn star() -> String {
    "*".into()
}
fn one() -> u64 {
    1
}
fn five_hundred() -> u16 {
    500
}
fn default_message() -> String {
    "Fault injected by osm-cloudsim".into()
}

/// A registered fault.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Id for `DELETE /_sim/faults/<id>`.
    pub id: u64,
    /// The spec.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Requests or transitions that matched so far.
    pub matched: u64,
    /// Times the fault acted.
    pub fired: u64,
    #[serde(skip)]
    path_re: Option<Regex>,
    #[serde(skip)]
    query_re: Option<Regex>,
    #[serde(skip)]
    name_re: Option<Regex>,
}

/// What a transition should do, after consulting the faults.
#[derive(Debug, Clone, PartialEq)]
pub enum TransitionFault {
    /// Nothing applies.
    None,
    /// Stay in the status for now; ask again later.
    Stuck,
    /// End in the error status with this message.
    Error(String),
}

/// The registry of faults.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<(u64, Vec<Fault>)>,
}

fn cloud_matches(pattern: &str, cloud: &str) -> bool {
    pattern == "*" || pattern.is_empty() || pattern == cloud
}

fn compile(s: &Option<String>, what: &str) -> Result<Option<Regex>, ApiError> {
    s.as_ref()
        .map(|p| {
            Regex::new(p).map_err(|e| ApiError::bad_request(format!("invalid {what} regex: {e}")))
        })
        .transpose()
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Vec<Fault>)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a fault given as JSON; returns it with its id.
    pub fn add(&self, body: Value) -> Result<Fault, ApiError> {
        let spec: FaultSpec = serde_json::from_value(body)
            .map_err(|e| ApiError::bad_request(format!("invalid fault: {e}")))?;
        let (path_re, query_re, name_re) = match &spec {
            FaultSpec::Http {
                path,
                query,
                nth,
                count,
                status,
                ..
            } => {
                if *nth == 0 || *count == 0 {
                    return Err(ApiError::bad_request("nth and count start at 1"));
                }
                if !(400..=599).contains(status) {
                    return Err(ApiError::bad_request(
                        "status must be an HTTP error status (400-599)",
                    ));
                }
                (compile(path, "path")?, compile(query, "query")?, None)
            }
            FaultSpec::Stuck { matcher, .. }
            | FaultSpec::Slow { matcher, .. }
            | FaultSpec::Error { matcher, .. } => (None, None, compile(&matcher.name, "name")?),
        };
        let mut g = self.lock();
        g.0 += 1;
        let fault = Fault {
            id: g.0,
            spec,
            matched: 0,
            fired: 0,
            path_re,
            query_re,
            name_re,
        };
        g.1.push(fault.clone());
        Ok(fault)
    }

    /// Every fault.
    pub fn list(&self) -> Vec<Fault> {
        self.lock().1.clone()
    }

    /// Removes one fault; false if there was none with that id.
    pub fn remove(&self, id: u64) -> bool {
        let mut g = self.lock();
        let before = g.1.len();
        g.1.retain(|f| f.id != id);
        g.1.len() != before
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.lock().1.clear();
    }

    /// Counts the request against every HTTP fault; returns `(status, message)` if one fires.
    pub fn http_fault(
        &self,
        cloud: &str,
        method: &str,
        path: &str,
        query: &str,
    ) -> Option<(u16, String)> {
        let mut g = self.lock();
        let mut result = None;
        for f in g.1.iter_mut() {
            let FaultSpec::Http {
                method: m,
                cloud: c,
                nth,
                count,
                status,
                message,
                ..
            } = &f.spec
            else {
                continue;
            };
            if !cloud_matches(c, cloud)
                || m.as_ref().is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || f.path_re.as_ref().is_some_and(|re| !re.is_match(path))
                || f.query_re.as_ref().is_some_and(|re| !re.is_match(query))
            {
                continue;
            }
            f.matched += 1;
            if result.is_none() && f.matched >= *nth && f.matched < nth + count {
                f.fired += 1;
                result = Some((*status, message.clone()));
            }
        }
        result
    }

    /// Whether a transition fault applies to this resource leaving one of `statuses`.
    fn resource_matches(
        f: &Fault,
        resource: ResourceKind,
        cloud: &str,
        id: &str,
        name: &str,
        statuses: &[&str],
    ) -> bool {
        let (r, matcher, status, cloud_pat) = match &f.spec {
            FaultSpec::Stuck {
                resource,
                matcher,
                status,
                cloud,
            }
            | FaultSpec::Slow {
                resource,
                matcher,
                status,
                cloud,
                ..
            }
            | FaultSpec::Error {
                resource,
                matcher,
                status,
                cloud,
                ..
            } => (resource, matcher, status, cloud),
            FaultSpec::Http { .. } => return false,
        };
        *r == resource
            && cloud_matches(cloud_pat, cloud)
            && matcher.id.as_ref().is_none_or(|i| i == id)
            && f.name_re.as_ref().is_none_or(|re| re.is_match(name))
            && status
                .as_ref()
                .is_none_or(|s| statuses.iter().any(|x| x.eq_ignore_ascii_case(s)))
    }

    /// The delay of a transition of this resource out of `statuses` (status and task state).
    pub fn delay(
        &self,
        default: Duration,
        resource: ResourceKind,
        cloud: &str,
        id: &str,
        name: &str,
        statuses: &[&str],
    ) -> Duration {
        let mut g = self.lock();
        for f in g.1.iter_mut() {
            let FaultSpec::Slow { seconds, .. } = &f.spec else {
                continue;
            };
            let secs = *seconds;
            if Faults::resource_matches(f, resource, cloud, id, name, statuses) {
                f.matched += 1;
                f.fired += 1;
                return Duration::from_secs_f64(secs.max(0.0));
            }
        }
        default
    }

    /// Whether a transition of this resource out of `statuses` is stuck or fails.
    pub fn check(
        &self,
        resource: ResourceKind,
        cloud: &str,
        id: &str,
        name: &str,
        statuses: &[&str],
    ) -> TransitionFault {
        let mut g = self.lock();
        for f in g.1.iter_mut() {
            if matches!(f.spec, FaultSpec::Http { .. } | FaultSpec::Slow { .. })
                || !Faults::resource_matches(f, resource, cloud, id, name, statuses)
            {
                continue;
            }
            match &f.spec {
                FaultSpec::Stuck { .. } => {
                    // Counted once per fault, not once per poll of the stuck resource.
                    if f.matched == 0 {
                        f.matched = 1;
                        f.fired = 1;
                    }
                    return TransitionFault::Stuck;
                }
                FaultSpec::Error { message, count, .. } => {
                    if count.is_some_and(|c| f.fired >= c) {
                        continue;
                    }
                    let message = message.clone();
                    f.matched += 1;
                    f.fired += 1;
                    return TransitionFault::Error(message);
                }
                _ => {}
            }
        }
        TransitionFault::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn http_fault_fires_on_nth_for_count() {
        let f = Faults::default();
        f.add(json!({"kind": "http", "method": "POST", "path": "^/compute/v2.1/servers$", "nth": 2, "count": 2, "status": 503})).unwrap();
        assert_eq!(
            f.http_fault("src", "GET", "/compute/v2.1/servers", ""),
            None
        );
        assert_eq!(
            f.http_fault("src", "POST", "/compute/v2.1/servers", ""),
            None
        );
        assert_eq!(
            f.http_fault("dst", "POST", "/compute/v2.1/servers", "")
                .map(|x| x.0),
            Some(503)
        );
        assert_eq!(
            f.http_fault("src", "POST", "/compute/v2.1/servers", "")
                .map(|x| x.0),
            Some(503)
        );
        assert_eq!(
            f.http_fault("src", "POST", "/compute/v2.1/servers", ""),
            None
        );
        assert_eq!(f.list()[0].fired, 2);
    }

    #[test]
    fn cloud_selector() {
        let f = Faults::default();
        f.add(json!({"kind": "http", "cloud": "dst"})).unwrap();
        assert_eq!(f.http_fault("src", "GET", "/x", ""), None);
        assert!(f.http_fault("dst", "GET", "/x", "").is_some());
    }

    #[test]
    fn http_fault_can_match_the_query() {
        let f = Faults::default();
        f.add(json!({"kind": "http", "path": "^/compute/v2.1/servers/detail$", "query": "name=%5Eweb", "count": 5, "status": 500}))
            .unwrap();
        assert_eq!(
            f.http_fault("src", "GET", "/compute/v2.1/servers/detail", "name=%5Edb"),
            None
        );
        assert!(f
            .http_fault(
                "src",
                "GET",
                "/compute/v2.1/servers/detail",
                "name=%5Eweb-01%24"
            )
            .is_some());
    }

    #[test]
    fn stuck_and_error_by_name_and_status() {
        let f = Faults::default();
        f.add(json!({"kind": "stuck", "resource": "volume", "match": {"name": "^osm-"}, "status": "detaching"})).unwrap();
        assert_eq!(
            f.check(ResourceKind::Volume, "src", "1", "osm-a", &["detaching"]),
            TransitionFault::Stuck
        );
        assert_eq!(
            f.check(ResourceKind::Volume, "src", "1", "osm-a", &["attaching"]),
            TransitionFault::None
        );
        assert_eq!(
            f.check(ResourceKind::Volume, "src", "1", "other", &["detaching"]),
            TransitionFault::None
        );
        let e = f
            .add(json!({"kind": "error", "resource": "server", "match": {"id": "s1"}, "count": 1}))
            .unwrap();
        assert!(matches!(
            f.check(ResourceKind::Server, "src", "s1", "", &["BUILD"]),
            TransitionFault::Error(_)
        ));
        assert_eq!(
            f.check(ResourceKind::Server, "src", "s1", "", &["BUILD"]),
            TransitionFault::None
        );
        assert!(f.remove(e.id));
        f.add(json!({"kind": "slow", "resource": "image", "seconds": 2.5}))
            .unwrap();
        assert_eq!(
            f.delay(
                Duration::from_millis(5),
                ResourceKind::Image,
                "src",
                "i",
                "n",
                &["queued"]
            ),
            Duration::from_millis(2500)
        );
        assert!(f.add(json!({"kind": "http", "path": "("})).is_err());
        assert!(f.add(json!({"kind": "nope"})).is_err());
    }
}
