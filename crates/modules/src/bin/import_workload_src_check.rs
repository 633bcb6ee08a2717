//! `osm.workloads.import_workload_src_check`: the source server must be SHUTOFF with its serialized volumes.

use osm_module::{run, Outcome};
use osm_modules::{connect_value, job, step_spec, StepParts};
use osm_workload::import::src_check;

fn main() -> std::process::ExitCode {
    let spec = step_spec("import_workload_src_check", StepParts { src: true, ..StepParts::default() });
    run(&spec, |ctx| {
        let mut job = job(ctx.params(), "src_check")?;
        let src = connect_value(&ctx.params()["src_cloud"], "src_cloud")?;
        src_check(&mut job, &src)?;
        Ok(Outcome::changed(false).msg(format!("'{}': the source server is ready", job.name())))
    })
}
