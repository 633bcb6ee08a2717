//! The preflight of every playbook: the `os_migrate_*` variables an operator set, checked against
//! osm's own and upstream OS Migrate's (`roles/common/files/upstream_variables.yml`, passed in as a
//! [`Table`]). Upstream variables osm does not honour are refused, each with what to use instead;
//! names nobody knows are warned about with the closest known name (a typo is otherwise silently
//! without effect: Ansible ignores unknown variables).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// What osm does with an upstream variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The same meaning in osm.
    Honoured,
    /// Refused, unless its value is one of the entry's `accepted` values.
    Refused,
    /// Accepted with no effect, with a warning saying why nothing is lost.
    Ignored,
    /// A variable of another upstream playbook: a warning, no effect.
    Other,
    /// Upstream's roles set it themselves: ignored silently.
    Internal,
}

/// One upstream variable.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// What osm does with it.
    pub status: Status,
    /// The values of a refused variable that match what osm does anyway.
    #[serde(default)]
    pub accepted: Option<Vec<Value>>,
    /// What to use instead (refused), or what osm makes of it.
    #[serde(default)]
    pub note: Option<String>,
    /// The osm variable it sets, where the name differs.
    #[serde(default)]
    pub osm: Option<String>,
}

/// The variables osm and upstream know.
#[derive(Debug, Clone, Deserialize)]
pub struct Table {
    /// Upstream's variables, by name.
    pub upstream: BTreeMap<String, Entry>,
    /// osm's own variables (role defaults and what its roles set).
    pub osm: Vec<String>,
}

/// What the preflight found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Findings {
    /// One line per refused variable: its name, why, and what to use instead.
    pub refused: Vec<String>,
    /// Unknown names (with the closest known one), and upstream variables without effect.
    pub warnings: Vec<String>,
    /// The upstream variables honoured (under their own name or as the osm variable they set).
    pub honoured: Vec<String>,
}

/// Checks the variables set (`names`), with the values of those whose meaning depends on their
/// value (`values`).
pub fn check(table: &Table, names: &[String], values: &BTreeMap<String, Value>) -> Findings {
    let mut f = Findings::default();
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    names.dedup();
    for name in names {
        let Some(entry) = table.upstream.get(name) else {
            if !table.osm.contains(name) {
                f.warnings.push(unknown(table, name));
            }
            continue;
        };
        let note = entry.note.as_deref().unwrap_or("");
        match entry.status {
            Status::Honoured => f.honoured.push(match &entry.osm {
                Some(osm) => format!("{name} (as {osm})"),
                None => name.clone(),
            }),
            Status::Refused => {
                let value = values.get(name).unwrap_or(&Value::Null);
                let accepted = entry.accepted.as_ref().is_some_and(|ok| {
                    values.contains_key(name) && ok.iter().any(|a| same(a, value))
                });
                if !accepted {
                    f.refused.push(format!("{name}: {note}"));
                }
            }
            Status::Ignored | Status::Other => f
                .warnings
                .push(format!("{name} has no effect in osm: {note}")),
            Status::Internal => {}
        }
    }
    f
}

/// An unknown variable, with the known name closest to it when it looks like a typo of one.
fn unknown(table: &Table, name: &str) -> String {
    let best = table
        .osm
        .iter()
        .map(String::as_str)
        .chain(
            table
                .upstream
                .iter()
                .filter(|(_, e)| e.status == Status::Honoured)
                .map(|(n, _)| n.as_str()),
        )
        .map(|k| (distance(name, k), k))
        .min();
    match best {
        Some((d, k)) if d <= 3.max(name.len() / 8) => format!(
            "{name} is not a variable of osm or of upstream OS Migrate (did you mean {k}?); it has no effect"
        ),
        _ => format!(
            "{name} is not a variable of osm or of upstream OS Migrate; it has no effect"
        ),
    }
}

/// Whether two values mean the same to Ansible: a boolean equals its usual spellings (`yes`,
/// `"true"`), a number its decimal string.
fn same(a: &Value, b: &Value) -> bool {
    let as_bool = |v: &Value| match v {
        Value::Bool(x) => Some(*x),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    };
    let as_text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match (a, b) {
        (Value::Bool(_), _) | (_, Value::Bool(_)) => {
            as_bool(a).is_some() && as_bool(a) == as_bool(b)
        }
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            as_text(a) == as_text(b)
        }
        _ => a == b,
    }
}

/// Levenshtein distance between two names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Table {
        serde_json::from_value(json!({
            "upstream": {
                "os_migrate_src_auth": {"status": "honoured"},
                "os_migrate_src_conversion_manage_fip": {"status": "honoured", "osm": "os_migrate_src_conversion_floating_ip"},
                "os_migrate_link_conversion_hosts": {"status": "refused", "accepted": [true], "note": "osm needs its link"},
                "os_migrate_conversion_rhsm_username": {"status": "refused", "note": "no RHSM; use content tasks"},
                "os_migrate_conversion_rhsm_retries": {"status": "ignored", "note": "no RHSM"},
                "os_migrate_networks_filter": {"status": "other", "note": "another playbook's"},
                "os_migrate_src_project_id": {"status": "internal"},
                "os_migrate_src_block_storage_api_version": {"status": "refused", "accepted": [3, null], "note": "v3 only"},
            },
            "osm": ["os_migrate_data_dir", "os_migrate_workload_parallelism", "os_migrate_src_conversion_floating_ip"],
        }))
        .unwrap()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn refuses_naming_what_to_use_instead() {
        let values = BTreeMap::from([
            ("os_migrate_link_conversion_hosts".to_string(), json!("no")),
            (
                "os_migrate_src_block_storage_api_version".to_string(),
                json!("2"),
            ),
        ]);
        let f = check(
            &table(),
            &names(&[
                "os_migrate_link_conversion_hosts",
                "os_migrate_conversion_rhsm_username",
                "os_migrate_src_block_storage_api_version",
                "os_migrate_src_auth",
            ]),
            &values,
        );
        assert_eq!(
            f.refused,
            vec![
                "os_migrate_conversion_rhsm_username: no RHSM; use content tasks",
                "os_migrate_link_conversion_hosts: osm needs its link",
                "os_migrate_src_block_storage_api_version: v3 only",
            ]
        );
        assert_eq!(f.honoured, vec!["os_migrate_src_auth"]);
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn accepts_what_osm_does_anyway() {
        let values = BTreeMap::from([
            ("os_migrate_link_conversion_hosts".to_string(), json!("yes")),
            (
                "os_migrate_src_block_storage_api_version".to_string(),
                json!("3"),
            ),
        ]);
        let f = check(
            &table(),
            &names(&[
                "os_migrate_link_conversion_hosts",
                "os_migrate_src_block_storage_api_version",
                "os_migrate_src_project_id",
                "os_migrate_data_dir",
                "os_migrate_src_conversion_manage_fip",
            ]),
            &values,
        );
        assert!(f.refused.is_empty(), "{f:?}");
        assert!(f.warnings.is_empty(), "{f:?}");
        assert_eq!(
            f.honoured,
            vec!["os_migrate_src_conversion_manage_fip (as os_migrate_src_conversion_floating_ip)"]
        );
        // A refused variable whose value was not passed is refused: nothing proves it harmless.
        let f = check(
            &table(),
            &names(&["os_migrate_link_conversion_hosts"]),
            &BTreeMap::new(),
        );
        assert_eq!(f.refused.len(), 1);
    }

    #[test]
    fn warns_about_typos_and_variables_without_effect() {
        let f = check(
            &table(),
            &names(&[
                "os_migrate_workload_paralelism",
                "os_migrate_totally_new_thing",
                "os_migrate_conversion_rhsm_retries",
                "os_migrate_networks_filter",
            ]),
            &BTreeMap::new(),
        );
        assert_eq!(
            f.warnings,
            vec![
                "os_migrate_conversion_rhsm_retries has no effect in osm: no RHSM",
                "os_migrate_networks_filter has no effect in osm: another playbook's",
                "os_migrate_totally_new_thing is not a variable of osm or of upstream OS Migrate; it has no effect",
                "os_migrate_workload_paralelism is not a variable of osm or of upstream OS Migrate (did you mean os_migrate_workload_parallelism?); it has no effect",
            ]
        );
    }

    #[test]
    fn ansible_spellings_compare_equal() {
        assert!(same(&json!(true), &json!("True")));
        assert!(same(&json!(false), &json!("no")));
        assert!(!same(&json!(false), &json!("maybe")));
        assert!(same(&json!(3), &json!("3")));
        assert!(same(&json!({}), &json!({})));
        assert!(!same(&json!({}), &json!({"project_id": "x"})));
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
