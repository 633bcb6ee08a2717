//! `osm.workloads.import_workload_transfer_volumes`: destination volumes and the copy of the source disks.

use crate::{connect_value, hosts, job, step_spec, StepParts};
use osm_module::{run, Opt, Outcome, Type};
use osm_workload::import::{transfer_volumes, TransferOptions};

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_transfer_volumes",
        StepParts {
            src: true,
            dst: true,
            hosts: true,
            ..StepParts::default()
        },
    )
    .opt(Opt::new("streams", Type::Int).default(4))
    .opt(Opt::new("compression", Type::Bool).default(true))
    .opt(Opt::new("verify", Type::Bool).default(true))
    .opt(Opt::new("prepare", Type::Bool).default(false))
    .opt(
        Opt::new("boot_volume_prefix", Type::Str)
            .aliases(&["os_migrate_workload_boot_volume_prefix"]),
    )
    .no_check_mode();
    run(&spec, |ctx| {
        let p = ctx.params();
        let streams = p["streams"].as_u64().unwrap_or(4);
        if !(1..=16).contains(&streams) {
            return Err(osm_module::Failure::new(format!(
                "option 'streams': {streams} is out of range (1 to 16 SSH connections per volume)"
            )));
        }
        let opts = TransferOptions {
            streams: streams as usize,
            compression: p["compression"].as_bool().unwrap_or(true),
            verify: p["verify"].as_bool().unwrap_or(true),
            boot_volume_prefix: p["boot_volume_prefix"].as_str().map(str::to_string),
            prepare: p["prepare"].as_bool().unwrap_or(false),
        };
        let step = if opts.prepare {
            "prepare_cutover"
        } else {
            "transfer_volumes"
        };
        let mut job = job(p, step)?;
        let src = connect_value(&p["src_cloud"], "src_cloud")?;
        let dst = connect_value(&p["dst_cloud"], "dst_cloud")?;
        let hosts = hosts(p)?;
        let volumes = transfer_volumes(&mut job, &src, &dst, &hosts, &opts)?;
        if opts.prepare {
            let msg = format!(
                "'{}': {} destination volumes attached to the destination conversion host, ready for the cutover; log: {}",
                job.name(),
                volumes.len(),
                job.paths.log.display()
            );
            return Ok(Outcome::changed(!volumes.is_empty())
                .with("volumes", &volumes)
                .with("verified", false)
                .with("log_file", &job.paths.log)
                .with("state_file", &job.paths.state)
                .msg(msg));
        }
        let verified = !volumes.is_empty() && volumes.iter().all(|v| v.verified);
        let msg = format!(
            "'{}': {} volumes synced to the destination{}; log: {}",
            job.name(),
            volumes.len(),
            if verified {
                ", every one proven equal to its source"
            } else {
                ""
            },
            job.paths.log.display()
        );
        Ok(Outcome::changed(!volumes.is_empty())
            .with("volumes", &volumes)
            .with("verified", verified)
            .with("log_file", &job.paths.log)
            .with("state_file", &job.paths.state)
            .msg(msg))
    })
}
