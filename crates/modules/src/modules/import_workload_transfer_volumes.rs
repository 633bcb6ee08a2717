//! `osm.workloads.import_workload_transfer_volumes`: destination volumes and the copy of the source disks.

use crate::{connect_value, hosts, job, step_spec, StepParts};
use osm_module::{run, Outcome};
use osm_workload::import::transfer_volumes;

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_transfer_volumes",
        StepParts {
            src: true,
            dst: true,
            hosts: true,
        },
    )
    .no_check_mode();
    run(&spec, |ctx| {
        let mut job = job(ctx.params(), "transfer_volumes")?;
        let src = connect_value(&ctx.params()["src_cloud"], "src_cloud")?;
        let dst = connect_value(&ctx.params()["dst_cloud"], "dst_cloud")?;
        let hosts = hosts(ctx.params())?;
        let volumes = transfer_volumes(&mut job, &src, &dst, &hosts)?;
        let msg = format!(
            "'{}': {} volumes copied to the destination; log: {}",
            job.name(),
            volumes.len(),
            job.paths.log.display()
        );
        Ok(Outcome::changed(!volumes.is_empty())
            .with("volumes", &volumes)
            .with("log_file", &job.paths.log)
            .with("state_file", &job.paths.state)
            .msg(msg))
    })
}
