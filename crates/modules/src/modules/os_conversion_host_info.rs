//! `osm.workloads.os_conversion_host_info`: find a conversion host and the address to reach it.

use crate::{cloud_options, connect, ssh_silence, ssh_silence_option, unused_timeout};
use osm_module::{run, Failure, Opt, Outcome, Spec, Type};
use osm_ssh::{Host, HostKeyPolicy};
use osm_workload::conversion::reach_address;
use osm_workload::device_access;

pub fn main() -> std::process::ExitCode {
    let spec = Spec::new("os_conversion_host_info")
        .opts(cloud_options())
        .opt(unused_timeout())
        .opt(
            Opt::new("server", Type::Str)
                .required()
                .aliases(&["name", "id", "server_id"]),
        )
        .opt(Opt::new("network", Type::Str))
        .opt(Opt::new("ssh_port", Type::Int).default(22))
        .opt(ssh_silence_option())
        .opt(Opt::new("ssh_user", Type::Str))
        .opt(Opt::new("ssh_key", Type::Path))
        .opt(Opt::new("known_hosts", Type::Path))
        .opt(Opt::new("trust_on_first_use", Type::Bool).default(false))
        .opt(Opt::new("ssh_timeout", Type::Int).default(300))
        .required_if("trust_on_first_use", "true", &["ssh_key"]);
    run(&spec, |ctx| {
        let p = ctx.params().clone();
        let silence = ssh_silence(&p)?;
        let name = p["server"].as_str().unwrap_or_default().to_string();
        let conn = connect(&p)?;
        let srv = conn
            .compute()
            .find_server(&name)?
            .ok_or_else(|| Failure::new(format!("conversion host {name:?} not found; deploy it with the deploy_conversion_hosts playbook")))?;
        if srv.status != "ACTIVE" {
            return Err(Failure::new(format!(
                "conversion host '{}' ({}) is {}, not ACTIVE",
                srv.name, srv.id, srv.status
            )));
        }
        let address = reach_address(&srv, p["network"].as_str()).ok_or_else(|| {
            Failure::new(format!(
                "conversion host '{}' ({}) has no address to reach it by: no access IPv4, floating IP or fixed address",
                srv.name, srv.id
            ))
        })?;
        let port = p["ssh_port"]
            .as_u64()
            .and_then(|x| u16::try_from(x).ok())
            .unwrap_or(22);
        let host = serde_json::json!({
            "id": srv.id, "name": srv.name, "status": srv.status, "address": address, "ssh_port": port,
        });
        let mut out = Outcome::changed(false).with("openstack_conversion_host", host);
        if let Some(key) = p["ssh_key"].as_str() {
            let known_hosts = p["known_hosts"].as_str().map(std::path::PathBuf::from).ok_or_else(|| {
                Failure::new("option 'known_hosts' is required with 'ssh_key': the host key is checked against it")
            })?;
            let user = p["ssh_user"].as_str().unwrap_or("cloud-user");
            let policy = if p["trust_on_first_use"].as_bool().unwrap_or(false) {
                HostKeyPolicy::TrustOnFirstUse
            } else {
                HostKeyPolicy::Verify
            };
            let before = std::fs::read_to_string(&known_hosts).unwrap_or_default();
            let timeout = std::time::Duration::from_secs(p["ssh_timeout"].as_u64().unwrap_or(300));
            let h = Host::new(address.clone(), port, user, key, &known_hosts);
            let mut conn = h
                .wait_reachable(policy, timeout)
                .map_err(|e| Failure::new(format!("conversion host '{}': {e}", srv.name)))?;
            conn.set_silence(silence);
            // The agent runs as this user and opens the attached volumes: a user who cannot is
            // told now, before any volume is attached.
            let access = device_access::probe(&conn)
                .map_err(|e| Failure::new(format!("conversion host '{}': {e}", srv.name)))?
                .ok_or_else(|| {
                    Failure::new(format!(
                        "conversion host '{}': {}",
                        srv.name,
                        device_access::refusal(user)
                    ))
                })?;
            let recorded = std::fs::read_to_string(&known_hosts).unwrap_or_default() != before;
            out = out
                .with("ssh_reachable", true)
                .with("device_access", access)
                .with("host_key_recorded", recorded);
            out.changed = recorded;
        }
        Ok(out.msg(format!("conversion host '{}' at {address}", srv.name)))
    })
}
