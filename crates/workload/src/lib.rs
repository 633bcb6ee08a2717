/*!
The workload domain of osm: what a migrated server is, and how the import steps treat it.

- [`model`]: the serialized workload of DESIGN.md section 5 ([`Server`] and its ports, floating IPs
  and volumes), compatible with upstream OS Migrate's 1.x `workloads.yml`;
- [`WorkloadsFile`]: reading with validation (errors name the resource and the key path), writing with
  sorted keys, atomically, mode 0600 (user_data often carries secrets), and add-or-replace by `_info.id`;
- [`Filter`]: `os_migrate_workloads_filter` (exact names and `{regex: ...}` items, as upstream);
- [`preflight`]: the `os_migrate_*` variables of a run checked against osm's and upstream's.

```
use osm_workload::{Filter, WorkloadsFile};
use std::path::Path;

let text = "os_migrate_version: 1.0.5\nresources: []\n";
let file = WorkloadsFile::parse(Path::new("workloads.yml"), text)?;
let filter = Filter::from_value(&serde_json::json!([{"regex": "^web"}]))?;
let selected = filter.select(file.resources, |s| s.name())?;
assert!(selected.is_empty());
# Ok::<(), Box<dyn std::error::Error>>(())
```
*/
#![deny(missing_docs)]

pub mod conversion;
pub mod device_access;
pub mod export;
mod file;
mod filter;
pub mod hosts;
pub mod import;
pub mod leftovers;
pub mod model;
pub mod preflight;
pub mod queue;
pub mod state;
pub mod summary;

pub use crate::file::{sorted, write_atomic, FileError, WorkloadsFile, FORMAT_VERSION};
pub use crate::filter::{Filter, FilterError};
pub use crate::model::{MigrationParams, Ref, Server};
pub use crate::state::Phase;

/// A Nova `name` filter that matches exactly `name`: the filter is a regular expression, so a name
/// is data only once escaped and anchored.
pub(crate) fn nova_exact_name(name: &str) -> String {
    format!("^{}$", fancy_regex::escape(name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn nova_exact_name_escapes_every_metacharacter() {
        assert_eq!(
            super::nova_exact_name("web 01; $(id)"),
            r"^web 01; \$\(id\)$"
        );
        assert_eq!(super::nova_exact_name("a.b*"), r"^a\.b\*$");
        let re = fancy_regex::Regex::new(&super::nova_exact_name("x `y` | [z] ^$")).unwrap();
        assert!(re.is_match("x `y` | [z] ^$").unwrap());
        assert!(!re.is_match("x `y` | [z] ^$ more").unwrap());
    }
}
