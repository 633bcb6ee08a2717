//! `osm.workloads.os_migrate_preflight`: the `os_migrate_*` variables of a run, checked before
//! anything else happens.

use std::collections::BTreeMap;

use osm_module::{run, Failure, Opt, Outcome, Spec, Type};
use osm_workload::preflight::{check, Table};
use serde_json::Value;

#[derive(serde::Deserialize)]
struct Options {
    names: Vec<String>,
    values: BTreeMap<String, Value>,
    table: Table,
}

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("os_migrate_preflight")
        .opt(Opt::new("names", Type::List).elements(Type::Str).required())
        .opt(Opt::new("values", Type::Dict).default(serde_json::json!({})))
        .opt(Opt::new("table", Type::Dict).required());
    run(&spec, |ctx| {
        let o: Options = ctx.options()?;
        let f = check(&o.table, &o.names, &o.values);
        for w in &f.warnings {
            ctx.warn(w.clone());
        }
        if !f.refused.is_empty() {
            return Err(Failure::new(format!(
                "upstream OS Migrate variables that osm does not honour (remove or change them): {}",
                f.refused.join("; ")
            ))
            .with("refused", &f.refused));
        }
        let msg = format!(
            "{} os_migrate_* variables checked: {} upstream ones honoured, {} warnings",
            o.names.len(),
            f.honoured.len(),
            f.warnings.len()
        );
        Ok(Outcome::changed(false)
            .with("honoured", &f.honoured)
            .msg(msg))
    })
}
