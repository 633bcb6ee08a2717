//! Helpers shared by the service modules: query strings, name-or-ID lookup, waiting.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Query parameters of a `list_*_with` call (filters), in order; a key may repeat.
///
/// ```
/// use osm_openstack::Query;
/// let q = Query::new().with("device_id", "abc").with("fixed_ips", "ip_address=10.0.0.5");
/// assert_eq!(q.pairs().len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// No parameters.
    pub fn new() -> Query {
        Query(Vec::new())
    }

    /// Adds `key=value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Query {
        self.0.push((key.into(), value.into()));
        self
    }

    /// Adds `key=value` when `value` is `Some`.
    pub fn with_opt(self, key: impl Into<String>, value: Option<impl Into<String>>) -> Query {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// The parameters.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Query {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Query {
        Query(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Looks a resource up by ID, then by exact name: `get(name_or_id)` first (a 404 or 400 means
/// "not an ID"), then `list_by_name(name_or_id)` filtered to exact name matches. Several matches
/// fail [`Error::Ambiguous`].
pub(crate) fn find_one<T>(
    kind: &str,
    name_or_id: &str,
    get: impl FnOnce() -> Result<T>,
    list_by_name: impl FnOnce() -> Result<Vec<T>>,
    name_of: impl Fn(&T) -> Option<&str>,
) -> Result<Option<T>> {
    match get() {
        Ok(v) => return Ok(Some(v)),
        // A name that is no usable ID (`..`) is still a name: look for it in the list.
        Err(e)
            if e.is_not_found()
                || e.status() == Some(400)
                || matches!(e, Error::BadSegment { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut matches: Vec<T> = list_by_name()?
        .into_iter()
        .filter(|t| name_of(t) == Some(name_or_id))
        .collect();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.pop()),
        count => Err(Error::Ambiguous {
            kind: kind.to_string(),
            name: name_or_id.to_string(),
            count,
        }),
    }
}

/// The kinds of resource [`crate::Connection::wait_for_status`] can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// A Nova server (`ACTIVE`, `SHUTOFF`, ...; error `ERROR`).
    Server,
    /// A Cinder volume (`available`, `in-use`, ...; errors `error*`).
    Volume,
    /// A Cinder snapshot (`available`; errors `error*`).
    Snapshot,
    /// A Glance image (`active`; errors `killed`, `deleted`).
    Image,
}

impl ResourceKind {
    /// `server`, `volume`, `snapshot` or `image`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ResourceKind::Server => "server",
            ResourceKind::Volume => "volume",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::Image => "image",
        }
    }

    /// The statuses that mean the resource failed.
    pub fn error_statuses(&self) -> &'static [&'static str] {
        match self {
            ResourceKind::Server => &["ERROR"],
            ResourceKind::Volume => &[
                "error",
                "error_restoring",
                "error_extending",
                "error_managing",
                "error_backing-up",
            ],
            ResourceKind::Snapshot => &["error"],
            ResourceKind::Image => &["killed"],
        }
    }

    /// Statuses that mean a deletion failed.
    pub(crate) fn delete_error_statuses(&self) -> &'static [&'static str] {
        match self {
            ResourceKind::Server => &["ERROR"],
            ResourceKind::Volume | ResourceKind::Snapshot => &["error_deleting", "error"],
            ResourceKind::Image => &[],
        }
    }
}

/// What a status poll sees.
pub(crate) struct Observed<T> {
    pub status: String,
    pub fault: Option<String>,
    pub value: T,
}

/// Waits until `fetch` reports one of `targets`; fails fast on `errors`, and on a vanished resource.
pub(crate) fn wait_status<T>(
    kind: &str,
    id: &str,
    targets: &[&str],
    errors: &[&str],
    timeout: Duration,
    mut fetch: impl FnMut() -> Result<Observed<T>>,
    mut fault_on_error: impl FnMut(&Observed<T>) -> Option<String>,
) -> Result<T> {
    let mut last = String::from("(none)");
    let outcome = poll_until(timeout, || {
        let seen = fetch().map_err(|e| e.not_found_as(kind, id))?;
        last = seen.status.clone();
        if targets.iter().any(|t| t.eq_ignore_ascii_case(&seen.status)) {
            return Ok(Some(seen.value));
        }
        if errors.iter().any(|t| t.eq_ignore_ascii_case(&seen.status))
            && !targets.iter().any(|t| t.eq_ignore_ascii_case(&seen.status))
        {
            let fault = seen.fault.clone().or_else(|| fault_on_error(&seen));
            return Err(Error::ErrorState {
                kind: kind.to_string(),
                id: id.to_string(),
                status: seen.status,
                fault,
            });
        }
        Ok(None)
    })?;
    outcome.map_err(|waited| Error::Timeout {
        kind: kind.to_string(),
        id: id.to_string(),
        wanted: targets.join(" or "),
        last_status: last,
        waited,
    })
}

/// Waits until `fetch` answers 404; fails fast on `errors`.
pub(crate) fn wait_deleted(
    kind: &str,
    id: &str,
    errors: &[&str],
    timeout: Duration,
    mut fetch: impl FnMut() -> Result<(String, Option<String>)>,
) -> Result<()> {
    let mut last = String::from("(none)");
    let outcome = poll_until(timeout, || match fetch() {
        Err(e) if e.is_not_found() => Ok(Some(())),
        Err(e) => Err(e),
        Ok((status, fault)) => {
            last = status.clone();
            if status.eq_ignore_ascii_case("deleted") {
                return Ok(Some(()));
            }
            if errors.iter().any(|t| t.eq_ignore_ascii_case(&status)) {
                return Err(Error::ErrorState {
                    kind: kind.to_string(),
                    id: id.to_string(),
                    status,
                    fault,
                });
            }
            Ok(None)
        }
    })?;
    outcome.map_err(|waited| Error::Timeout {
        kind: kind.to_string(),
        id: id.to_string(),
        wanted: "deleted".into(),
        last_status: last,
        waited,
    })
}

/// The first pause between two polls of a status.
const POLL_FIRST: Duration = Duration::from_millis(100);
/// The longest pause: openstacksdk's fixed interval, so a long wait costs a cloud no more requests
/// than the tools operators already run.
const POLL_MAX: Duration = Duration::from_secs(2);
/// How the pause grows. A wait overshoots what it waits for by at most this fraction (and
/// [`POLL_MAX`]): a warm cutover waits for a snapshot, a volume, a detach and attachments in turn,
/// all within the downtime, and with pauses growing by 1.5x up to 5 s those overshoots summed to
/// seconds.
const POLL_GROWTH: f64 = 1.25;

/// Polls `fetch` with backoff ([`POLL_FIRST`] growing by [`POLL_GROWTH`] to [`POLL_MAX`]) until
/// `done` or the deadline.
pub(crate) fn poll_until<T>(
    timeout: Duration,
    mut step: impl FnMut() -> Result<Option<T>>,
) -> Result<std::result::Result<T, Duration>> {
    let start = Instant::now();
    let mut delay = POLL_FIRST;
    loop {
        if let Some(v) = step()? {
            return Ok(Ok(v));
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Ok(Err(waited));
        }
        std::thread::sleep(delay.min(timeout - waited));
        delay = delay.mul_f64(POLL_GROWTH).min(POLL_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nf() -> Error {
        Error::Api {
            service: "s",
            method: "GET",
            path: "/x".into(),
            status: 404,
            message: "nope".into(),
            request_id: None,
        }
    }

    #[test]
    fn find_by_id_then_name() {
        let r = find_one(
            "thing",
            "a",
            || Ok("a".to_string()),
            || panic!("no list"),
            |s: &String| Some(s.as_str()),
        )
        .unwrap();
        assert_eq!(r.as_deref(), Some("a"));
        let r = find_one(
            "thing",
            "web",
            || Err(nf()),
            || Ok(vec!["web".to_string(), "web2".into()]),
            |s| Some(s.as_str()),
        )
        .unwrap();
        assert_eq!(r.as_deref(), Some("web"));
        let r = find_one(
            "thing",
            "x",
            || Err(nf()),
            || Ok(vec!["web".to_string()]),
            |s| Some(s.as_str()),
        )
        .unwrap();
        assert_eq!(r, None);
        let e = find_one(
            "thing",
            "web",
            || Err(nf()),
            || Ok(vec!["web".to_string(), "web".into()]),
            |s| Some(s.as_str()),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 things are named \"web\"; give an ID instead"
        );
        let other = Error::Api {
            service: "s",
            method: "GET",
            path: "/x".into(),
            status: 500,
            message: "boom".into(),
            request_id: None,
        };
        assert!(find_one(
            "thing",
            "x",
            || Err(other),
            || Ok(Vec::<String>::new()),
            |s| Some(s.as_str())
        )
        .is_err());
    }

    #[test]
    fn waiting() {
        let mut n = 0;
        let v = wait_status(
            "volume",
            "v1",
            &["available"],
            &["error"],
            Duration::from_secs(5),
            || {
                n += 1;
                Ok(Observed {
                    status: if n < 3 {
                        "creating".into()
                    } else {
                        "available".into()
                    },
                    fault: None,
                    value: n,
                })
            },
            |_| None,
        )
        .unwrap();
        assert_eq!(v, 3);
        let e = wait_status(
            "server",
            "s1",
            &["ACTIVE"],
            &["ERROR"],
            Duration::from_secs(5),
            || {
                Ok(Observed {
                    status: "ERROR".into(),
                    fault: Some("No valid host was found.".into()),
                    value: (),
                })
            },
            |_| None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "server s1 went to status ERROR: No valid host was found."
        );
        let e = wait_status(
            "image",
            "i1",
            &["active"],
            &["killed"],
            Duration::from_millis(250),
            || {
                Ok(Observed {
                    status: "saving".into(),
                    fault: None,
                    value: (),
                })
            },
            |_| None,
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::Timeout { ref last_status, .. } if last_status == "saving"),
            "{e}"
        );
        let mut n = 0;
        wait_deleted(
            "volume",
            "v",
            &["error_deleting"],
            Duration::from_secs(5),
            || {
                n += 1;
                if n < 2 {
                    Ok(("deleting".into(), None))
                } else {
                    Err(nf())
                }
            },
        )
        .unwrap();
        let e = wait_deleted(
            "volume",
            "v",
            &["error_deleting"],
            Duration::from_secs(5),
            || Ok(("error_deleting".into(), None)),
        )
        .unwrap_err();
        assert!(matches!(e, Error::ErrorState { .. }));
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
