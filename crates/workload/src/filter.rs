//! `os_migrate_workloads_filter`: which workloads a run touches.
//!
//! The same semantics as upstream's `stringfilter`: a list whose items are an exact name, or
//! `{regex: ...}` matched anywhere in the name (an unanchored search). An empty list matches nothing;
//! no filter at all matches everything.

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
}

#[derive(Debug, Clone)]
enum Item {
    Exact(String),
    Regex(regex_lite::Regex),
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
                        regex_lite::Regex::new(pattern).map_err(|e| FilterError::BadRegex {
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

    /// True when `name` passes the filter.
    pub fn matches(&self, name: &str) -> bool {
        match &self.items {
            None => true,
            Some(items) => items.iter().any(|i| match i {
                Item::Exact(s) => s == name,
                Item::Regex(re) => re.is_match(name),
            }),
        }
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
        NAMES.iter().copied().filter(|n| f.matches(n)).collect()
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
        assert!(matches!(
            Filter::from_value(&json!("a")),
            Err(FilterError::NotAList(_))
        ));
    }
}
