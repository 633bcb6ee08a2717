//! Listing: Neutron's generic filters on rendered resources, sorting, pagination and `fields`.

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, Q};
use crate::util;

const RESERVED: &[&str] = &[
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "fields",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "page_reverse",
    "fixed_ips",
    "ip_address",
    "subnet_id",
];

fn value_matches(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => util::parse_bool_str(want) == Some(*b) && !want.is_empty(),
        Value::Number(n) => n.to_string() == want,
        Value::Null => want.is_empty() || want == "None" || want == "null",
        Value::Array(items) => items.iter().any(|i| value_matches(i, want)),
        Value::Object(_) => *v.to_string() == *want,
    }
}

fn tags_of(item: &Value) -> HashSet<&str> {
    item.get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn split_tags(q: &Q, key: &str) -> Vec<String> {
    q.all(key)
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn passes(item: &Value, q: &Q) -> bool {
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, v) in &q.0 {
        if !RESERVED.contains(&k.as_str()) {
            by_key.entry(k.as_str()).or_default().push(v.as_str());
        }
    }
    for (k, wants) in by_key {
        let Some(v) = item.get(k) else { continue };
        if !wants.iter().any(|w| value_matches(v, w)) {
            return false;
        }
    }
    // fixed_ips=ip_address=1.2.3.4 / fixed_ips=subnet_id=X (and the sdk's ip_address= / subnet_id=).
    let mut fixed: Vec<(String, String)> = q
        .all("fixed_ips")
        .iter()
        .filter_map(|f| {
            f.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    for key in ["ip_address", "subnet_id"] {
        if let Some(v) = q.get(key) {
            fixed.push((key.to_string(), v.to_string()));
        }
    }
    if !fixed.is_empty() {
        let Some(ips) = item.get("fixed_ips").and_then(Value::as_array) else {
            return false;
        };
        for (k, v) in &fixed {
            if !ips
                .iter()
                .any(|ip| ip.get(k.as_str()).and_then(Value::as_str) == Some(v.as_str()))
            {
                return false;
            }
        }
    }
    let tags = tags_of(item);
    let all = split_tags(q, "tags");
    if !all.iter().all(|t| tags.contains(t.as_str())) {
        return false;
    }
    let any = split_tags(q, "tags-any");
    if !any.is_empty() && !any.iter().any(|t| tags.contains(t.as_str())) {
        return false;
    }
    let not_all = split_tags(q, "not-tags");
    if !not_all.is_empty() && not_all.iter().all(|t| tags.contains(t.as_str())) {
        return false;
    }
    let not_any = split_tags(q, "not-tags-any");
    if not_any.iter().any(|t| tags.contains(t.as_str())) {
        return false;
    }
    true
}

pub(super) fn select_fields(item: Value, fields: &[&str]) -> Value {
    if fields.is_empty() {
        return item;
    }
    match item {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

pub(super) fn list_response(
    ctx: &Ctx,
    q: &Q,
    collection: &str,
    items: Vec<Value>,
) -> Result<Response, ApiError> {
    let mut items: Vec<Value> = items.into_iter().filter(|i| passes(i, q)).collect();
    if let Some(key) = q.get("sort_key") {
        let desc = q
            .get("sort_dir")
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        items.sort_by(|a, b| {
            let (x, y) = (
                a.get(key).map(|v| v.to_string()),
                b.get(key).map(|v| v.to_string()),
            );
            if desc {
                y.cmp(&x)
            } else {
                x.cmp(&y)
            }
        });
    }
    let page = http::paginate(
        items,
        |i| {
            i.get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        },
        q,
        usize::MAX,
    )
    .map_err(|e| ApiError::neutron(StatusCode::BAD_REQUEST, "BadRequest", e.message))?;
    let fields = q.all("fields");
    let out: Vec<Value> = page
        .items
        .into_iter()
        .map(|i| select_fields(i, &fields))
        .collect();
    let mut body = Map::new();
    body.insert(collection.into(), Value::Array(out));
    if let Some(m) = page.next_marker {
        let href = ctx.url(&format!(
            "/network/v2.0/{collection}?{}",
            http::next_query(q, &m)
        ));
        body.insert(
            format!("{collection}_links"),
            json!([{"rel": "next", "href": href}]),
        );
    }
    Ok(http::ok(Value::Object(body)))
}

pub(super) fn sorted<T, F: Fn(&T) -> u64>(items: impl Iterator<Item = T>, key: F) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort_by_key(|x| key(x));
    v
}
