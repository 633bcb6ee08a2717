//! `osm.workloads.import_workload_src_cleanup`: remove the source side of a transfer, whatever happened.

use crate::{connect_value, optional_hosts, settings, step_spec, workload, StepParts};
use osm_module::{run, Opt, Outcome, Type};
use osm_workload::import::{src_cleanup, Job};

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_src_cleanup",
        StepParts {
            src: true,
            hosts: true,
            hosts_optional: true,
            ..StepParts::default()
        },
    )
    .opt(Opt::new("restart_source", Type::Bool).default(false))
    .no_check_mode();
    run(&spec, |ctx| {
        let Some(mut job) = Job::open_for_cleanup(
            workload(ctx.params())?,
            settings(ctx.params()),
            "src_cleanup",
        )?
        else {
            return Ok(Outcome::changed(false).msg(
                "no state of this server's transfer: it never started, so nothing is cleaned up",
            ));
        };
        let src = connect_value(&ctx.params()["src_cloud"], "src_cloud")?;
        let hosts = optional_hosts(ctx.params())?;
        let restart = ctx.params()["restart_source"].as_bool().unwrap_or(false);
        let r = src_cleanup(&mut job, &src, hosts.as_ref(), restart)?;
        for w in &r.warnings {
            ctx.warn(w.clone());
        }
        let msg = format!(
            "'{}': source cleanup removed {}, attached back {}",
            job.name(),
            r.removed.len(),
            r.reattached.len()
        );
        Ok(Outcome::changed(r.changed())
            .with("removed", &r.removed)
            .with("detached", &r.detached)
            .with("reattached", &r.reattached)
            .msg(msg))
    })
}
