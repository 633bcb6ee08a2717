//! `osm.workloads.os_conversion_host_link`: push the agent to both conversion hosts and let the destination one reach the source one.

use crate::{hosts, step_spec, StepParts};
use osm_module::{run, Outcome};
use osm_workload::hosts::{ensure_link, ConvHost};

pub fn main() -> std::process::ExitCode {
    let mut spec = step_spec(
        "os_conversion_host_link",
        StepParts {
            hosts: true,
            ..StepParts::default()
        },
    )
    .no_check_mode();
    spec = spec.without(&["data", "resume", "phase"]);
    run(&spec, |ctx| {
        let h = hosts(ctx.params())?;
        let src = ConvHost::connect("source", &h.src, &h.login)?;
        let dst = ConvHost::connect("destination", &h.dst, &h.login)?;
        let mut changes = Vec::new();
        if src.ensure_agent(&h.agent)? {
            changes.push(format!("uploaded osm-agent to {}", h.src.name));
        }
        if dst.ensure_agent(&h.agent)? {
            changes.push(format!("uploaded osm-agent to {}", h.dst.name));
        }
        changes.extend(ensure_link(&src, &dst, &h.login.known_hosts)?);
        Ok(Outcome::changed(!changes.is_empty()).with("changes", &changes))
    })
}
