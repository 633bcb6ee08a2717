//! `osm.workloads.import_workload_prelim`: the workload's log and state files, and whether to migrate it.

use crate::{connect_value, settings, step_spec, workload, StepParts};
use osm_module::{run, Opt, Outcome, Type};
use osm_workload::import::prelim;
use osm_workload::state::{State, StateError};
use std::path::Path;

/// Records the pair in the state file, so that a retry goes back to the pair of its kept volumes.
fn record_pair(path: &Path, pair: &str) -> Result<(), StateError> {
    if let Some(mut st) = State::load(path)? {
        if st.conversion_host_pair.as_deref() != Some(pair) {
            st.conversion_host_pair = Some(pair.to_string());
            st.save(path)?;
        }
    }
    Ok(())
}

pub fn main() -> std::process::ExitCode {
    let spec = step_spec(
        "import_workload_prelim",
        StepParts {
            dst: true,
            ..StepParts::default()
        },
    )
    .opt(Opt::new("src_conversion_host", Type::Dict))
    .opt(Opt::new("conversion_host_pair", Type::Str));
    run(&spec, |ctx| {
        let server = workload(ctx.params())?;
        let dst = connect_value(&ctx.params()["dst_cloud"], "dst_cloud")?;
        let host = ctx.params()["src_conversion_host"].clone();
        let host_id = host.get("id").and_then(|v| v.as_str()).unwrap_or_default();
        let host_name = host
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let conv = (!host_id.is_empty() || !host_name.is_empty()).then_some((host_id, host_name));
        let p = prelim(
            &server,
            &dst,
            conv,
            &settings(ctx.params()),
            ctx.check_mode(),
        )?;
        if let Some(pair) = ctx.params()["conversion_host_pair"].as_str() {
            if p.migrate && !ctx.check_mode() {
                record_pair(Path::new(&p.state_file), pair)?;
            }
        }
        let mut msg = match &p.skip_reason {
            Some(r) => format!("skipping '{}': {r}", p.server_name),
            None => format!(
                "'{}' will be migrated; log: {}; state: {}",
                p.server_name, p.log_file, p.state_file
            ),
        };
        if let Some(aside) = &p.superseded_state {
            msg.push_str(&format!(
                "; the state file of another server of that name (or of another destination project) was set aside as {aside}, its transfer not resumed"
            ));
        }
        let skipped = !p.migrate;
        let mut out = Outcome::changed(p.migrate).with("prelim", &p).msg(msg);
        for (k, v) in [
            ("server_name", &p.server_name),
            ("log_file", &p.log_file),
            ("state_file", &p.state_file),
        ] {
            out = out.with(k, v);
        }
        Ok(out
            .with("migrate", p.migrate)
            .with("transfer_id", &p.transfer_id)
            .with("already_migrated", skipped))
    })
}
