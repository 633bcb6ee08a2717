//! Lenient deserializers for what clouds and config files actually send.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

struct ScalarString;

impl<'de> Visitor<'de> for ScalarString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A string, also from a YAML/JSON number or boolean (`project_id: 12345`).
pub(crate) fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(ScalarString)
}

/// An optional string, also from a number or boolean; `null` is `None`.
pub(crate) fn opt_scalar_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrap(#[serde(deserialize_with = "scalar_string")] String);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// `T::default()` for a missing field (with `#[serde(default)]`) and for an explicit `null`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

struct LenientBool;

impl<'de> Visitor<'de> for LenientBool {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean or one of \"true\", \"false\", \"yes\", \"no\", \"1\", \"0\"")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<bool>, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<bool>, E> {
        Ok(Some(v != 0))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<bool>, E> {
        Ok(Some(v != 0))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<bool>, E> {
        parse_bool(v)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<bool>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<bool>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(LenientBool)
    }
}

/// An optional boolean that also accepts `"true"`, `"False"`, `"yes"`, `"1"`, ... (Cinder's
/// `bootable` is the string `"true"`; config files and env vars spell booleans many ways).
pub(crate) fn opt_lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_option(LenientBool)
}

/// A boolean as [`opt_lenient_bool`]; missing or `null` is `false`.
pub(crate) fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(opt_lenient_bool(d)?.unwrap_or(false))
}

/// An optional list of strings, also from one comma-separated string (openstacksdk reads
/// `auth_methods: v3password,v3totp` so, as `OS_AUTH_METHODS` must be); `null` is `None`.
pub(crate) fn opt_string_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(Option::<ListOrCsv>::deserialize(d)?.map(|v| match v {
        ListOrCsv::List(items) => items,
        ListOrCsv::Csv(s) => split_csv(&s),
    }))
}

/// The non-empty, trimmed items of a comma-separated string.
pub(crate) fn split_csv(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(String::from)
        .collect()
}

/// Parses the usual spellings of a boolean.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" | "y" => Some(true),
        "false" | "no" | "0" | "off" | "n" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_lenient_bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "null_default")]
        v: Vec<String>,
        #[serde(default, deserialize_with = "opt_scalar_string")]
        s: Option<String>,
    }

    #[test]
    fn lenient_values() {
        let t: T = serde_json::from_str(r#"{"b": "True", "v": null, "s": 42}"#).unwrap();
        assert_eq!(t.b, Some(true));
        assert!(t.v.is_empty());
        assert_eq!(t.s.as_deref(), Some("42"));
        let t: T = serde_json::from_str(r#"{"b": null}"#).unwrap();
        assert_eq!(t.b, None);
        let t: T = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(t.b, None);
        assert!(serde_json::from_str::<T>(r#"{"b": "maybe"}"#).is_err());
    }

    #[test]
    fn lists_from_lists_or_commas() {
        #[derive(serde::Deserialize)]
        struct L {
            #[serde(default, deserialize_with = "opt_string_list")]
            l: Option<Vec<String>>,
        }
        let l: L = serde_json::from_str(r#"{"l": ["v3password", "v3totp"]}"#).unwrap();
        assert_eq!(l.l.unwrap(), ["v3password", "v3totp"]);
        let l: L = serde_json::from_str(r#"{"l": "v3password, v3totp,"}"#).unwrap();
        assert_eq!(l.l.unwrap(), ["v3password", "v3totp"]);
        let l: L = serde_json::from_str(r#"{"l": null}"#).unwrap();
        assert!(l.l.is_none());
    }
}
