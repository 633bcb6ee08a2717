//! `osm.workloads.import_workload_dst_check`: every reference of the workload must exist in the destination.

use crate::{connect_value, job, step_spec, StepParts};
use osm_module::{run, Outcome};
use osm_workload::import::dst_check;

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_dst_check",
        StepParts {
            dst: true,
            ..StepParts::default()
        },
    );
    run(&spec, |ctx| {
        let mut job = job(ctx.params(), "dst_check")?;
        let dst = connect_value(&ctx.params()["dst_cloud"], "dst_cloud")?;
        let r = dst_check(&mut job, &dst)?;
        Ok(Outcome::changed(false)
            .with("resolved", &r.resolved)
            .msg(format!(
                "'{}': the destination has everything it needs",
                job.name()
            )))
    })
}
