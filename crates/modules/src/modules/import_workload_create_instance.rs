//! `osm.workloads.import_workload_create_instance`: the destination server.

use crate::{connect_value, job, step_spec, StepParts};
use osm_module::{run, Outcome};
use osm_workload::import::create_instance;

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_create_instance",
        StepParts {
            dst: true,
            ..StepParts::default()
        },
    )
    .no_check_mode();
    run(&spec, |ctx| {
        let mut job = job(ctx.params(), "create_instance")?;
        let dst = connect_value(&ctx.params()["dst_cloud"], "dst_cloud")?;
        let server = create_instance(&mut job, &dst)?;
        let msg = format!(
            "'{}': destination server {} is {}",
            job.name(),
            server.id,
            server.status
        );
        Ok(Outcome::changed(true).with("server", &server).msg(msg))
    })
}
