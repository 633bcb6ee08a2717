//! `os_migrate_workloads_filter`: which workloads a run touches.
//!
//! The same semantics as upstream's `stringfilter`: a list whose items are an exact name, or
//! `{regex: ...}` matched anywhere in the name (an unanchored search, Python's `re.search`). An empty
//! list matches nothing; no filter at all matches everything. Patterns are compiled with
//! `fancy-regex`, so what upstream operators write for Python's `re` works: look-ahead and
//! look-behind (upstream's own tests select `'^osm_(?!uch)'`), back-references, `(?P<name>...)`.

use serde_json::Value;

/// A filter item that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FilterError {
    /// The filter is not a list.
    #[error(
        "os_migrate_workloads_filter must be a list of names or {{regex: ...}} items, got {0}"
    )]
    NotAList(String),
    /// An item is neither a string nor a `{regex: ...}` mapping.
    #[error("os_migrate_workloads_filter[{index}]: must be a name or a mapping with the single key 'regex', got {got}")]
    BadItem {
        /// Position in the list.
        index: usize,
        /// What was given.
        got: String,
    },
    /// A regex does not compile.
    #[error("os_migrate_workloads_filter[{index}].regex: invalid regular expression {pattern:?}: {message}")]
    BadRegex {
        /// Position in the list.
        index: usize,
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        message: String,
    },
    /// A regex gave up on a name (a pattern that backtracks without bound, like `(a*)*b`).
    #[error("os_migrate_workloads_filter[{index}].regex: {pattern:?} cannot be matched against {name:?}: {message}; simplify the pattern")]
    Match {
        /// Position in the list.
        index: usize,
        /// The pattern.
        pattern: String,
        /// The name being matched.
        name: String,
        /// The engine's message.
        message: String,
    },
}

#[derive(Debug, Clone)]
enum Item {
    Exact(String),
    Regex(fancy_regex::Regex),
}

/// A compiled filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    items: Option<Vec<Item>>,
}

impl Filter {
    /// The filter that matches every name.
    pub fn all() -> Filter {
        Filter { items: None }
    }

    /// Compiles a filter given as JSON (what the module option holds); null matches everything.
    pub fn from_value(v: &Value) -> Result<Filter, FilterError> {
        let list = match v {
            Value::Null => return Ok(Filter::all()),
            Value::Array(list) => list,
            other => return Err(FilterError::NotAList(other.to_string())),
        };
        let mut items = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            items.push(match item {
                Value::String(s) => Item::Exact(s.clone()),
                Value::Object(m)
                    if m.len() == 1 && m.get("regex").is_some_and(Value::is_string) =>
                {
                    let pattern = m.get("regex").and_then(Value::as_str).unwrap_or_default();
                    let re =
                        fancy_regex::Regex::new(pattern).map_err(|e| FilterError::BadRegex {
                            index,
                            pattern: pattern.to_string(),
                            message: e.to_string(),
                        })?;
                    Item::Regex(re)
                }
                other => {
                    return Err(FilterError::BadItem {
                        index,
                        got: other.to_string(),
                    })
                }
            });
        }
        Ok(Filter { items: Some(items) })
    }

    /// Whether `name` passes the filter. Fails only when a pattern exceeds the engine's
    /// backtracking limit on this name.
    pub fn matches(&self, name: &str) -> Result<bool, FilterError> {
        let Some(items) = &self.items else {
            return Ok(true);
        };
        for (index, item) in items.iter().enumerate() {
            let hit = match item {
                Item::Exact(s) => s == name,
                Item::Regex(re) => re.is_match(name).map_err(|e| FilterError::Match {
                    index,
                    pattern: re.as_str().to_string(),
                    name: name.to_string(),
                    message: e.to_string(),
                })?,
            };
            if hit {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The items whose `name` passes the filter, in their order.
    pub fn select<T>(
        &self,
        items: Vec<T>,
        name: impl Fn(&T) -> &str,
    ) -> Result<Vec<T>, FilterError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if self.matches(name(&item))? {
                out.push(item);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAMES: &[&str] = &[
        "one",
        "two",
        "prefixed-one",
        "prefixed-two",
        "one-suffixed",
        "web 01; $(id)",
    ];

    fn pick(f: Value) -> Vec<&'static str> {
        let f = Filter::from_value(&f).expect("valid filter");
        f.select(NAMES.to_vec(), |n| n).expect("matchable")
    }

    #[test]
    fn upstream_semantics() {
        assert_eq!(pick(json!(["one", "prefixed"])), vec!["one"]);
        assert_eq!(
            pick(json!(["one", {"regex": "^prefixed"}])),
            vec!["one", "prefixed-one", "prefixed-two"]
        );
        assert_eq!(
            pick(json!([{"regex": "one"}])),
            vec!["one", "prefixed-one", "one-suffixed"]
        );
        assert_eq!(pick(json!([])), Vec::<&str>::new());
        assert_eq!(pick(Value::Null).len(), NAMES.len());
        assert_eq!(pick(json!(["web 01; $(id)"])), vec!["web 01; $(id)"]);
    }

    /// What Python's `re.search` accepts and upstream operators write: look-around, back-references,
    /// named groups, inline flags; unanchored unless the pattern anchors itself.
    #[test]
    fn python_re_search_patterns() {
        // upstream's own e2e filter: every osm_ server except osm_uch*.
        let names = vec!["osm_server", "osm_uch_x", "xosm_server", "osm_"];
        let f = Filter::from_value(&json!([{"regex": "^osm_(?!uch)"}])).unwrap();
        assert_eq!(f.select(names, |n| n).unwrap(), vec!["osm_server", "osm_"]);
        assert_eq!(
            pick(json!([{"regex": "(?<=prefixed-)one"}])),
            vec!["prefixed-one"]
        );
        assert_eq!(pick(json!([{"regex": "(?<!prefixed-)one$"}])), vec!["one"]);
        let doubled = vec!["aa-1", "ab-1", "xyzzy", "abab"];
        let f = Filter::from_value(&json!([{"regex": r"(\w)\1"}])).unwrap();
        assert_eq!(
            f.select(doubled.clone(), |n| n).unwrap(),
            vec!["aa-1", "xyzzy"]
        );
        let f = Filter::from_value(&json!([{"regex": r"^(?P<p>ab)(?P=p)$"}])).unwrap();
        assert_eq!(f.select(doubled, |n| n).unwrap(), vec!["abab"]);
        assert_eq!(pick(json!([{"regex": "(?i)^ONE$"}])), vec!["one"]);
        assert_eq!(pick(json!([{"regex": r"\$\(id\)"}])), vec!["web 01; $(id)"]);
    }

    #[test]
    fn runaway_patterns_fail_naming_the_item() {
        let f = Filter::from_value(&json!(["x", {"regex": r"^(a|a)*\1b"}])).unwrap();
        let e = f.matches(&"a".repeat(64)).unwrap_err();
        assert!(matches!(e, FilterError::Match { index: 1, .. }), "{e}");
        assert!(e
            .to_string()
            .contains("os_migrate_workloads_filter[1].regex"));
    }

    #[test]
    fn bad_items_are_named() {
        assert_eq!(
            Filter::from_value(&json!(["a", {"regexp": "x"}])).unwrap_err(),
            FilterError::BadItem {
                index: 1,
                got: r#"{"regexp":"x"}"#.into()
            }
        );
        assert!(matches!(
            Filter::from_value(&json!([{"regex": "("}])),
            Err(FilterError::BadRegex { index: 0, .. })
        ));
        let e = Filter::from_value(&json!(["a", {"regex": "(?<=a+)b"}, {"regex": "[z-a]"}]))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("os_migrate_workloads_filter[1].regex: invalid regular expression"),
            "{e}"
        );
        assert!(matches!(
            Filter::from_value(&json!("a")),
            Err(FilterError::NotAList(_))
        ));
    }
}
