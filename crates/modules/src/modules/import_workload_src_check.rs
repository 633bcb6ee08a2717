//! `osm.workloads.import_workload_src_check`: the source server must be SHUTOFF with its serialized volumes.

use crate::{connect_value, job, step_spec, StepParts};
use osm_module::{run, Outcome};
use osm_workload::import::src_check;

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_src_check",
        StepParts {
            src: true,
            ..StepParts::default()
        },
    );
    run(&spec, |ctx| {
        let mut job = job(ctx.params(), "src_check")?;
        let src = connect_value(&ctx.params()["src_cloud"], "src_cloud")?;
        let volumes = src_check(&mut job, &src)?;
        Ok(Outcome::changed(false)
            .with("volume_ids", &volumes)
            .msg(format!("'{}': the source server is ready", job.name())))
    })
}
