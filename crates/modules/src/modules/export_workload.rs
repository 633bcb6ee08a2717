//! `osm.workloads.export_workload`: serialize source servers into the workloads file.

use std::path::PathBuf;

use crate::{cloud_options, connect, unused_timeout};
use osm_module::{run, Opt, Outcome, Spec, Type};
use osm_workload::export::{export, ExportSettings, Selection};
use osm_workload::Filter;

#[derive(serde::Deserialize)]
struct Options {
    path: PathBuf,
    name: Option<String>,
    filters: serde_json::Value,
    boot_disk_copy: Option<bool>,
}

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("export_workload")
        .opts(cloud_options())
        .opt(unused_timeout())
        .opt(Opt::new("path", Type::Path).required())
        .opt(Opt::new("name", Type::Str).aliases(&["id"]))
        .opt(Opt::new("filters", Type::Raw).aliases(&["os_migrate_workloads_filter"]))
        .opt(
            Opt::new("boot_disk_copy", Type::Bool)
                .aliases(&["os_migrate_workloads_boot_disk_copy"]),
        )
        .mutually_exclusive(&["name", "filters"]);
    run(&spec, |ctx| {
        let o: Options = ctx.options()?;
        let selection = match o.name {
            Some(n) => Selection::One(n),
            None => Selection::Matching(Filter::from_value(&o.filters)?),
        };
        let conn = connect(ctx.params())?;
        let settings = ExportSettings {
            boot_disk_copy: o.boot_disk_copy,
        };
        let report = export(&conn, &o.path, &selection, &settings, ctx.check_mode())?;
        for w in &report.warnings {
            ctx.warn(w.clone());
        }
        let msg = format!(
            "{} servers exported to {}: {} added, {} updated",
            report.exported.len(),
            o.path.display(),
            report.added.len(),
            report.updated.len()
        );
        Ok(Outcome::changed(report.changed)
            .with("path", &o.path)
            .with("exported", &report.exported)
            .with("added", &report.added)
            .with("updated", &report.updated)
            .diff(report.before.clone().into(), report.after.clone().into())
            .msg(msg))
    })
}
