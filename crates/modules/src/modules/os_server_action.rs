//! `osm.workloads.os_server_action`: stop or start a server and wait for it.

use crate::{cloud_options, connect};
use osm_module::{run, Failure, Opt, Outcome, Spec, Type};

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("os_server_action")
        .opts(cloud_options())
        .opt(
            Opt::new("server", Type::Str)
                .required()
                .aliases(&["name", "id"]),
        )
        .opt(
            Opt::new("action", Type::Str)
                .required()
                .choices(&["start", "stop"]),
        )
        .opt(Opt::new("timeout", Type::Int).default(600));
    run(&spec, |ctx| {
        let p = ctx.params().clone();
        let name = p["server"].as_str().unwrap_or_default().to_string();
        let action = p["action"].as_str().unwrap_or_default();
        let conn = connect(&p)?;
        let compute = conn.compute();
        let srv = compute
            .find_server(&name)?
            .ok_or_else(|| Failure::new(format!("server {name:?} not found")))?;
        let (wanted, from) = if action == "stop" {
            ("SHUTOFF", "ACTIVE")
        } else {
            ("ACTIVE", "SHUTOFF")
        };
        if srv.status == wanted {
            return Ok(Outcome::changed(false)
                .with("id", &srv.id)
                .with("status", &srv.status)
                .msg(format!("server '{}' is already {wanted}", srv.name)));
        }
        if srv.status != from {
            let verb = if action == "stop" {
                "stopped"
            } else {
                "started"
            };
            return Err(Failure::new(format!(
                "server '{}' ({}) is {}: it can only be {verb} from {from}",
                srv.name, srv.id, srv.status
            )));
        }
        if ctx.check_mode() {
            return Ok(Outcome::changed(true)
                .with("id", &srv.id)
                .with("status", &srv.status));
        }
        // The moment of the request: a migration's downtime starts here.
        let requested_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        if action == "stop" {
            compute.stop_server(&srv.id)?
        } else {
            compute.start_server(&srv.id)?
        }
        let mut status = srv.status.clone();
        if p["wait"].as_bool().unwrap_or(true) {
            let secs = p["timeout"].as_u64().unwrap_or(600);
            status = compute
                .wait_for_server(&srv.id, &[wanted], std::time::Duration::from_secs(secs))?
                .status;
        }
        Ok(Outcome::changed(true)
            .with("id", &srv.id)
            .with("status", &status)
            .with("requested_at", requested_at)
            .msg(format!(
                "server '{}' {action} requested; now {status}",
                srv.name
            )))
    })
}
