//! `osm.workloads.os_migrate_leftovers`: report (and with `state: absent`, remove) what osm left in a cloud.

use std::time::Duration;

use osm_module::{run, Failure, Opt, Outcome, Spec, Type};

use crate::{cloud_options, connect, must_wait};
use osm_workload::leftovers::{find, remove};

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("os_migrate_leftovers")
        .opts(cloud_options())
        .opt(
            Opt::new("state", Type::Str)
                .choices(&["present", "absent"])
                .default("present"),
        )
        .opt(Opt::new("transfer_id", Type::Str))
        .opt(Opt::new("timeout", Type::Int).default(600));
    run(&spec, |ctx| {
        let p = ctx.params().clone();
        if p["state"].as_str() == Some("absent") {
            must_wait(
                &p,
                "leftovers are removed one after the other, each removal awaited (a server gone, a \
                 volume detached, before the next); 'timeout' bounds each wait",
            )?;
        }
        let conn = connect(&p)?;
        let found = find(&conn, p["transfer_id"].as_str())?;
        if p["state"].as_str() != Some("absent") {
            let msg = format!("{} leftovers of osm", found.len());
            return Ok(Outcome::changed(false).with("leftovers", &found).msg(msg));
        }
        if ctx.check_mode() || found.is_empty() {
            return Ok(Outcome::changed(!found.is_empty())
                .with("leftovers", &found)
                .with("removed", Vec::<String>::new()));
        }
        let (removed, failed) = remove(
            &conn,
            &found,
            Duration::from_secs(p["timeout"].as_u64().unwrap_or(600)),
        );
        if !failed.is_empty() {
            return Err(Failure::new(format!(
                "could not remove {} leftovers: {}",
                failed.len(),
                failed.join("; ")
            ))
            .with("removed", &removed)
            .with("changed", !removed.is_empty()));
        }
        let msg = format!("removed {} leftovers of osm", removed.len());
        Ok(Outcome::changed(!removed.is_empty())
            .with("leftovers", &found)
            .with("removed", &removed)
            .msg(msg))
    })
}
