//! `osm.workloads.import_workload_create_instance`: the destination server.

use crate::{connect_value, job, step_spec, StepParts};
use osm_module::{run, Opt, Outcome, Type};
use osm_workload::import::create_instance;

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_create_instance",
        StepParts {
            dst: true,
            ..StepParts::default()
        },
    )
    .opt(Opt::new("downtime_since", Type::Float))
    .no_check_mode();
    run(&spec, |ctx| {
        let mut job = job(ctx.params(), "create_instance")?;
        let dst = connect_value(&ctx.params()["dst_cloud"], "dst_cloud")?;
        let since = ctx.params()["downtime_since"].as_f64();
        let server = create_instance(&mut job, &dst, since)?;
        let msg = format!(
            "'{}': destination server {} is {}{}",
            job.name(),
            server.id,
            server.status,
            server
                .downtime_s
                .map(|d| format!("; downtime {d:.1} s (from the stop request to ACTIVE)"))
                .unwrap_or_default()
        );
        Ok(Outcome::changed(true).with("server", &server).msg(msg))
    })
}
