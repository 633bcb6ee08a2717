//! `osm.workloads.import_workload_export_volumes`: the source disks, exported read-only on the source conversion host.

use crate::{connect_value, hosts, job, step_spec, StepParts};
use osm_module::{run, Opt, Outcome, Type};
use osm_workload::import::export_volumes;

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_export_volumes",
        StepParts {
            src: true,
            hosts: true,
            ..StepParts::default()
        },
    )
    .opt(Opt::new("sparsify", Type::Bool))
    .no_check_mode();
    run(&spec, |ctx| {
        let mut job = job(ctx.params(), "export_volumes")?;
        let src = connect_value(&ctx.params()["src_cloud"], "src_cloud")?;
        let hosts = hosts(ctx.params())?;
        let sparsify = ctx.params()["sparsify"]
            .as_bool()
            .unwrap_or_else(|| job.server.migration_params.sparsify());
        let volumes = export_volumes(&mut job, &src, &hosts, sparsify)?;
        let msg = format!(
            "'{}': {} volumes exported on the source conversion host",
            job.name(),
            volumes.len()
        );
        Ok(Outcome::changed(!volumes.is_empty())
            .with("volumes", &volumes)
            .with("transfer_id", &job.state.transfer_id)
            .msg(msg))
    })
}
