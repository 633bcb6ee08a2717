//! `osm.workloads.read_workloads`: validate a workloads file and return the workloads a filter selects.

use std::path::PathBuf;

use osm_module::{run, Opt, Outcome, Spec, Type};
use osm_workload::{Filter, WorkloadsFile};

#[derive(serde::Deserialize)]
struct Options {
    path: PathBuf,
    filters: serde_json::Value,
}

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("read_workloads")
        .opt(Opt::new("path", Type::Path).required())
        .opt(Opt::new("filters", Type::Raw).aliases(&["os_migrate_workloads_filter"]));
    run(&spec, |ctx| {
        let o: Options = ctx.options()?;
        let filter = Filter::from_value(&o.filters)?;
        let file = WorkloadsFile::load(&o.path)?;
        let total = file.resources.len();
        let selected = filter.select(file.resources, |s| s.name())?;
        let names: Vec<&str> = selected.iter().map(|s| s.name()).collect();
        let msg = format!(
            "{} of {total} workloads selected from {}",
            selected.len(),
            o.path.display()
        );
        Ok(Outcome::changed(false)
            .with("names", &names)
            .with("total", total)
            .with("os_migrate_version", &file.os_migrate_version)
            .with("workloads", &selected)
            .msg(msg))
    })
}
