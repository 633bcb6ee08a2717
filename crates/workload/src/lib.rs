/*!
The workload domain of osm: what a migrated server is, and how the import steps treat it.

- [`model`]: the serialized workload of DESIGN.md section 5 ([`Server`] and its ports, floating IPs
  and volumes), compatible with upstream OS Migrate's 1.x `workloads.yml`;
- [`WorkloadsFile`]: reading with validation (errors name the resource and the key path), writing with
  sorted keys, atomically, mode 0640, and add-or-replace by `_info.id`;
- [`Filter`]: `os_migrate_workloads_filter` (exact names and `{regex: ...}` items, as upstream).

```
use osm_workload::{Filter, WorkloadsFile};
use std::path::Path;

let text = "os_migrate_version: 1.0.4\nresources: []\n";
let file = WorkloadsFile::parse(Path::new("workloads.yml"), text)?;
let filter = Filter::from_value(&serde_json::json!([{"regex": "^web"}]))?;
assert!(file.resources.iter().all(|s| filter.matches(s.name())));
# Ok::<(), Box<dyn std::error::Error>>(())
```
*/
#![deny(missing_docs)]

pub mod conversion;
pub mod export;
mod file;
mod filter;
pub mod hosts;
pub mod import;
pub mod leftovers;
pub mod state;
pub mod model;

pub use crate::file::{sorted, write_atomic, FileError, WorkloadsFile, FORMAT_VERSION};
pub use crate::filter::{Filter, FilterError};
pub use crate::model::{MigrationParams, Ref, Server};
