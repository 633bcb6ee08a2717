//! `osm.workloads.import_workload_dst_failure_cleanup`: after a failure, remove what the run made in the destination.

use crate::{connect_value, optional_hosts, settings, step_spec, workload, StepParts};
use osm_module::{run, Opt, Outcome, Type};
use osm_workload::import::{dst_failure_cleanup, Job};

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_dst_failure_cleanup",
        StepParts {
            dst: true,
            hosts: true,
            hosts_optional: true,
            ..StepParts::default()
        },
    )
    .opt(Opt::new("failure", Type::Str))
    .opt(Opt::new("discard_kept", Type::Bool).default(false))
    .no_check_mode();
    run(&spec, |ctx| {
        let Some(mut job) = Job::open_for_cleanup(
            workload(ctx.params())?,
            settings(ctx.params()),
            "dst_failure_cleanup",
        )?
        else {
            return Ok(Outcome::changed(false).msg(
                "no state of this server's transfer: it never started, so nothing is cleaned up",
            ));
        };
        let dst = connect_value(&ctx.params()["dst_cloud"], "dst_cloud")?;
        let hosts = optional_hosts(ctx.params())?;
        let failure = ctx.params()["failure"].as_str().map(str::to_string);
        let discard = ctx.params()["discard_kept"].as_bool().unwrap_or(false);
        let r = dst_failure_cleanup(&mut job, &dst, hosts.as_ref(), failure.as_deref(), discard)?;
        for w in &r.warnings {
            ctx.warn(w.clone());
        }
        let msg = format!(
            "'{}': destination cleanup removed {}, kept {}",
            job.name(),
            r.removed.len(),
            r.kept.len()
        );
        Ok(Outcome::changed(r.changed())
            .with("removed", &r.removed)
            .with("detached", &r.detached)
            .with("kept", &r.kept)
            .msg(msg))
    })
}
